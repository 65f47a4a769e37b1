"""torch.compile for the generator's training passes (and D's first-order ones), with a fall-back to eager.

On a CPU without native bf16 the trainer's step runs fp32, and a quarter of it is G: convs near the core's
fp32 peak, and between them batch norm, ReLU and layout copies that each read and write whole feature maps
once, plus per-op dispatch. Inductor fuses those elementwise passes into generated C++ loops (forward and
backward). The math is the same; values differ from eager by float rounding only (tests/train). The convs
stay oneDNN's.

Compilation happens on G's first call in each grad mode (D's phase runs G under no_grad, G's phase with
grad): tens of seconds on one core, once per process (inductor's on-disk cache makes a later run faster).
It needs a C++ compiler; without one, or on any error while compiling, the wrapper says so once on stderr
and runs G eagerly from then on.

D (preset compile_d, with d_fast): the loss calls the compiled D for D's phase (batch [fake; real], weights
trainable) and G's phase (D frozen, gradient to the image), `dynamic=False` so each batch shape gets its own
graph; the DRAGAN/R1 penalty differentiates D's input gradient again, which compiled graphs do not support, so
it runs the module itself. The compiled D fuses the leaky ReLUs and residual adds around oneDNN's convs. With
torch's leaky ReLU it saves bool masks for the backward, and inductor's bool stores were 27x slower than
eager on the AMD EPYC of session 14 (bench/compile_d_probe.py), so compile_d needs d_fast's leaky ReLU, which
saves its float output instead.
"""

from __future__ import annotations

import sys

import torch
from torch import nn


class CompiledOrEager:
    """Calls `torch.compile(module)`; any failure of a compiled call (the first compile, or a recompile for a new
    shape later) switches to the module itself for good, and the failed call is rerun eagerly: an error of G's
    own then surfaces from the eager run as it would without compiling. Parameters, buffers and state dict are the
    module's own."""

    def __init__(self, module: nn.Module, what: str = "G", option: str = "compile_g", **compile_kwargs):
        self.module, self.what, self.option = module, what, option
        self.compiled = torch.compile(module, **compile_kwargs)
        self.failed = False
        self.calls = {
            False: 0,
            True: 0,
        }  # compiled calls that returned, by grad mode (G under no_grad: D's phase)

    def __call__(self, *args, **kwargs):
        if self.failed:
            return self.module(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as e:  # compilation: no C++ compiler, an unsupported op, ...
            self.failed = True
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            print(
                f"note: torch.compile of {self.what} failed ({type(e).__name__}: {msg}); "
                f"{self.what} runs eagerly (--set {self.option}=false skips the attempt)",
                file=sys.stderr,
            )
            return self.module(*args, **kwargs)
        self.calls[torch.is_grad_enabled()] += 1
        return out

    def __getattr__(self, name):  # attributes the loss reads (z_dim, n_tags, ...) are the module's
        return getattr(self.module, name)
