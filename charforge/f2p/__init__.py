"""Face-to-parameter: a photo or drawing -> character-creator parameters.

`load_f2p(path=None)` loads a trained bundle (None = the shipped default for the built-in creator);
`fit(f2p, images, mode=...)` returns a `FitResult`; the modes are `charforge.f2p.fit.MODES` (fast, search, both,
attributes). Training lives in `pipeline.train_f2p`.
"""

from charforge.f2p.fit import FitResult, fit
from charforge.f2p.model import F2P, load_f2p
from charforge.f2p.report import load_inputs, write_fit_outputs

__all__ = ["F2P", "FitResult", "fit", "load_f2p", "load_inputs", "write_fit_outputs"]
