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

    def __init__(self, module: nn.Module, what: str = "G"):
        self.module, self.what = module, what
        self.compiled = torch.compile(module)
        self.failed = False
        self.calls = {False: 0, True: 0}  # compiled calls that returned, by grad mode (no_grad: D's phase)

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
                f"{self.what} runs eagerly (--set compile_g=false skips the attempt)",
                file=sys.stderr,
            )
            return self.module(*args, **kwargs)
        self.calls[torch.is_grad_enabled()] += 1
        return out

    def __getattr__(self, name):  # attributes the loss reads (z_dim, n_tags, ...) are the module's
        return getattr(self.module, name)
