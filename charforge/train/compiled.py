"""torch.compile for the generator's training passes, with a fall-back to eager.

On a CPU without native bf16 the trainer's step runs fp32, and a quarter of it is G: convs near the core's
fp32 peak, and between them batch norm, ReLU and layout copies that each read and write whole feature maps
once, plus per-op dispatch. Inductor fuses those elementwise passes into generated C++ loops (forward and
backward). The math is the same; values differ from eager by float rounding only (tests/train). The convs
stay oneDNN's.

Compilation happens on G's first call in each grad mode (D's phase runs G under no_grad, G's phase with
grad): tens of seconds on one core, once per process (inductor's on-disk cache makes a later run faster).
It needs a C++ compiler; without one, or on any error while compiling, the wrapper says so once on stderr
and runs G eagerly from then on.

The compiler can also be wrong without failing. With torch 2.13 the acgan-64-cpu G gave NaN, or outputs off by
up to 28 where eager was exact, when a process limited to AVX2 (ATEN_CPU_CAPABILITY=avx2, the code path of an
AVX2-only CPU) compiled G after a process with AVX-512 had compiled it into the same inductor cache: the cache key
leaves out the vector ISA, so the AVX2 process reused code generated for AVX-512 (which kernel then goes wrong was
not traced; with an empty cache, or each ISA in its own cache, both are right). A cache shared by machines of
different CPU kinds (a network home, a container volume) does the same. So:
- `isa_cache_dir` gives each vector ISA its own inductor cache, below the one torch or the user chose;
- the first compiled call in each grad mode is checked against an eager call from the same buffers and random
  state; a non-finite or different result sends G to eager for good, saying so. In grad mode that call also runs
  the compiled backward once (it is compiled on first use, inside the loss's backward() where a failure could not
  be caught: torch 2.13 failed there on the shipped G under the AVX2 cap); a failure sends G to eager too.
"""

from __future__ import annotations

import os
import re
import sys

import torch
from torch import nn


def isa_cache_dir() -> str:
    """Point inductor's cache at a folder of its own for this process's vector ISA and ATen CPU capability
    (`<cache>/isa-avx2_AVX2`, ...), below TORCHINDUCTOR_CACHE_DIR where set, else below torch's default; returns
    it. Called before compiling: inductor reads the variable at each cache access."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    key = re.sub(
        r"[^A-Za-z0-9_]+", "_", f"{pick_vec_isa() or 'novec'}-{torch.backends.cpu.get_cpu_capability()}"
    )
    base = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or default_cache_dir()
    if os.path.basename(os.path.normpath(base)).startswith("isa-"):  # set by an earlier call in this process
        base = os.path.dirname(os.path.normpath(base))
    path = os.path.join(base, f"isa-{key}")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = path
    return path


class CompiledOrEager:
    """Calls `torch.compile(module)`; any failure of a compiled call (the first compile, or a recompile for a new
    shape later) switches to the module itself for good, and the failed call is rerun eagerly: an error of G's
    own then surfaces from the eager run as it would without compiling. Parameters, buffers and state dict are the
    module's own."""

    def __init__(self, module: nn.Module, what: str = "G"):
        self.module, self.what = module, what
        try:
            isa_cache_dir()
        except Exception as e:  # a torch without these internals: its own cache, still checked below
            print(
                f"note: inductor's cache is not split by vector ISA here ({type(e).__name__})",
                file=sys.stderr,
            )
        self.compiled = torch.compile(module)
        self.failed = False
        self.calls = {False: 0, True: 0}  # compiled calls that returned, by grad mode (no_grad: D's phase)
        self.checked: dict[bool, bool] = {}  # grad modes whose first compiled call matched eager

    def __call__(self, *args, **kwargs):
        if self.failed:
            return self.module(*args, **kwargs)
        first = not self.checked.get(torch.is_grad_enabled())
        try:
            if first:
                return self._checked_call(args, kwargs)
            out = self.compiled(*args, **kwargs)
        except Exception as e:  # compilation: no C++ compiler, an unsupported op, ...
            self.failed = True
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            print(
                f"note: torch.compile of {self.what} failed ({type(e).__name__}: {msg}); "
                f"{self.what} runs eagerly (--set compile_g=false skips the attempt)",
                file=sys.stderr,
            )
            return self.module(*args, **kwargs)
        self.calls[torch.is_grad_enabled()] += 1
        return out

    def _checked_call(self, args, kwargs):
        """The compiled call, then the eager one from the same buffers (batch-norm statistics) and random state.
        When both agree up to float rounding, the compiled result is returned and the buffers and random state are
        put back to where the compiled call left them, so the run continues exactly as an unchecked compiled run
        would (a resumed run checks again; exact resume holds). Otherwise the eager result and state stand and G
        stays eager."""
        from torch.utils._pytree import tree_leaves

        grad = torch.is_grad_enabled()
        bufs = [b.detach().clone() for b in self.module.buffers()]
        rng = torch.get_rng_state()
        broken = ""
        if grad:  # the compiled backward, once, on a graph of its own (the caller's stays unused until its backward)
            broken = _backward_error(self.compiled(*args, **kwargs), self.module)
            _put_back(self.module.buffers(), bufs)
            torch.set_rng_state(rng)
        out = self.compiled(*args, **kwargs)
        after, rng_after = [b.detach().clone() for b in self.module.buffers()], torch.get_rng_state()
        _put_back(self.module.buffers(), bufs)
        torch.set_rng_state(rng)
        ref = self.module(*args, **kwargs)
        why = broken or _mismatch(
            tree_leaves(out) + after, tree_leaves(ref) + [b.detach() for b in self.module.buffers()]
        )
        if why:
            self.failed = True
            what = "failed in its backward" if broken else "computed wrong values on this CPU"
            print(
                f"note: torch.compile of {self.what} {what} ({why}); {self.what} runs "
                "eagerly (--set compile_g=false skips the attempt)",
                file=sys.stderr,
            )
            return ref
        _put_back(self.module.buffers(), after)
        torch.set_rng_state(rng_after)
        self.checked[grad] = True
        self.calls[grad] += 1
        return out

    def __getattr__(self, name):  # attributes the loss reads (z_dim, n_tags, ...) are the module's
        return getattr(self.module, name)


def _backward_error(out, module: nn.Module) -> str:
    """'' when the compiled graph of `out` backpropagates to the module's parameters, else the error (first line).
    Its backward is compiled on first use, inside the loss's backward() where no fall-back can catch it (torch
    2.13 failed there on the shipped G under the AVX2 cap: a stride assertion in replication_pad2d_backward), so
    the checked call runs it once here, on an extra forward whose graph is then freed: retaining the caller's
    graph instead is refused by a compiled backward with donated buffers (the native AVX-512 case)."""
    from torch.utils._pytree import tree_leaves

    leaves = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor) and t.requires_grad]
    params = [p for p in module.parameters() if p.requires_grad]
    if not leaves or not params:
        return ""
    try:
        torch.autograd.grad(leaves, params, [torch.ones_like(t) for t in leaves], allow_unused=True)
    except Exception as e:
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        return f"{type(e).__name__}: {msg}"
    return ""


def _put_back(buffers, values: list[torch.Tensor]) -> None:
    """Copy `values` into the buffers, without bumping their autograd version. The compiled call saved some
    buffers for its backward (the shipped G's fixed blur kernel, blocks.Blur3); a plain copy_ bumped their
    version and that backward failed ("modified by an inplace operation"). When the check ends, every buffer
    again holds what the compiled call left in it, so what its backward saved is what is there."""
    with torch.no_grad():
        for b, v in zip(buffers, values):
            if not torch.equal(b, v):
                b.data.copy_(v)  # .data: not counted as an in-place change by autograd


def _mismatch(got: list, want: list) -> str:
    """'' when two lists of tensors agree up to float rounding, else what differs."""
    if len(got) != len(want):
        return f"{len(got)} outputs instead of {len(want)}"
    for a, b in zip(got, want):
        if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
            continue
        if a.shape != b.shape:
            return f"shape {tuple(a.shape)} instead of {tuple(b.shape)}"
        if not a.is_floating_point():
            if not torch.equal(a, b):
                return "integer values differ"
            continue
        a, b = a.detach().float(), b.detach().float()
        if not torch.isfinite(a).all() and torch.isfinite(b).all():
            return "non-finite values where eager's are finite"
        err = float((a - b).abs().nan_to_num(0.0).max()) if a.numel() else 0.0
        if err > 1e-3 * (float(b.abs().max()) + 1.0) if b.numel() else False:
            return f"max difference {err:.3g} from eager"
    return ""
