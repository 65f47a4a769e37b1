"""Progress bars: one place so every long job shows rate and ETA the same way."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress(total: int | None = None, desc: str = "", unit: str = "it", disable: bool | None = None, **kw):
    """A tqdm bar on stderr. `disable=None` follows the environment: CHARFORGE_PROGRESS=0 silences every bar."""
    import os

    if disable is None:
        disable = os.environ.get("CHARFORGE_PROGRESS", "1") == "0"
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=disable,
        mininterval=0.5,
        **kw,
    )
