"""Gather bench/results/*.md (one section per bench script) into BENCHMARKS.md."""

from __future__ import annotations

import re
from pathlib import Path

from charforge.core.device import cpu_name  # noqa: E402

ORDER = [
    "creator",
    "data_import",
    "foreign",
    "styles_tagger",
    "styles_f2p",
    "styles_f2p_foreign",
    "domain_adapt",
    "train",
    "generate",
    "diffusion",
    "diffusion_objective",
    "eval",
    "f2p",
    "serve",
    "provenance",
    "sr",
    "upscale",
    "web",
]


def main() -> None:
    root = Path(__file__).resolve().parent
    results = root / "results"
    files = sorted(
        results.glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem)
    )
    head = [
        "# Benchmarks",
        "",
        "Each section is written by one script in `bench/` (run it with `.venv/bin/python bench/<script>.py`);",
        "`python bench/collect.py` gathers them here. Every number is the median of repeated runs, next to a",
        "baseline measured side by side in the same process. Each section names the machine and CPU flags it was",
        "measured on: sessions 1-5 ran on a 2-core AMD EPYC (AVX-512 BF16), session 6 on a 2-core Intel Xeon",
        f"(AVX-512 BF16, AMX); this file was gathered on: {cpu_name()}, 2 cores, no GPU.",
        "",
    ]
    # a section's images sit next to it in bench/results: from BENCHMARKS.md (the repository root) they are there
    body = [
        re.sub(
            r"\]\((?![a-z]+:|/|bench/)([^)]+\.(?:png|gif|jpg))\)", r"](bench/results/\1)", p.read_text()
        ).strip()
        + "\n"
        for p in files
    ]
    (root.parent / "BENCHMARKS.md").write_text("\n".join(head) + "\n" + "\n".join(body))
    print(f"BENCHMARKS.md: {len(files)} sections")


if __name__ == "__main__":
    main()
