"""MODEL_CARD.md stub for a run folder. The provenance package may replace this with a fuller card."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from charforge.utils.io import write_text_atomic


def write_model_card(run_dir: str | Path, *, config: dict[str, Any], dataset, command: str, steps: int,
                     wall_time_s: float, metrics: dict[str, Any] | None = None, warn: bool = True) -> Path:
    """Data sources and licence counts from the dataset manifest, tag distribution, command, steps, time."""
    run_dir = Path(run_dir)
    licences = dataset.licence_counts()
    sources: dict[str, int] = {}
    for item in dataset.manifest.get("items", []):
        src = str(item.get("source", "unknown")).split(":", 1)[0]
        sources[src] = sources.get(src, 0) + 1
    freqs = np.asarray(dataset.tag_frequencies)
    lines = [
        f"# Model card: {run_dir.name}", "",
        f"- family / preset: {config.get('family')} / {config.get('name')}, {config.get('resolution')} px",
        f"- command: `{command}`",
        f"- steps: {steps}, wall time: {wall_time_s / 3600:.2f} h",
        f"- training data: {dataset.root} ({len(dataset)} images)", "",
        "## Data sources", "", "| source | images |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(sources.items())], "",
        "## Licences", "", "| licence | images |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(licences.items())], "",
        "## Tag distribution (fraction of training images)", "", "| tag | fraction |", "|---|---|",
        *[f"| {t} | {f:.3f} |" for t, f in zip(dataset.schema.tags, freqs)], "",
    ]
    if metrics:
        lines += ["## Metrics", "", *[f"- {k}: {v}" for k, v in metrics.items()], ""]
    if licences.get("unknown"):
        note = f"{licences['unknown']} training images have an unknown licence; check their terms before sharing this model."
        lines += [f"**Warning:** {note}", ""]
        if warn:
            print(f"warning: {note}", file=sys.stderr)
    path = run_dir / "MODEL_CARD.md"
    write_text_atomic(path, "\n".join(lines))
    return path
