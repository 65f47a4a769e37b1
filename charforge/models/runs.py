"""The layout of a run folder as readers see it: which checkpoints are finished, and where their files are.

Training writes (charforge.train.checkpoint); inference only reads. A checkpoint at step N is
`checkpoints/generator-000000N.safetensors` (the EMA generator, an ordinary model file) and
`checkpoints/state-000000N.safetensors` (the full training state), the state file written last, so a step
counts as finished only when both exist.
"""

from __future__ import annotations

import re
from pathlib import Path

STATE_RE = re.compile(r"^state-(\d{7,})\.safetensors$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def state_path(run_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"state-{step:07d}.safetensors"


def generator_path(run_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"generator-{step:07d}.safetensors"


def best_generator_path(run_dir: str | Path) -> Path:
    """The EMA generator at the best early-stop metric so far (written by the trainer when it improves)."""
    return checkpoint_dir(run_dir) / "generator-best.safetensors"


def finished_steps(run_dir: str | Path) -> list[int]:
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = [int(m.group(1)) for p in d.iterdir() if (m := STATE_RE.match(p.name))]
    return sorted(s for s in found if generator_path(run_dir, s).exists())


def latest_step(run_dir: str | Path) -> int | None:
    steps = finished_steps(run_dir)
    return steps[-1] if steps else None


def best_step(run_dir: str | Path) -> int | None:
    """The training step of the run's generator-best file (its provenance), or None without one."""
    path = best_generator_path(run_dir)
    if not path.is_file():
        return None
    try:
        import json

        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            step = json.loads((f.metadata() or {}).get("provenance", "{}")).get("step")
        return int(step) if step is not None else None
    except Exception:  # an unreadable or foreign file: no step to report
        return None
