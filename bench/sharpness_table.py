"""The side-by-side table of the sharpness fine-tunes (docs/generator.md, session 7) from their eval reports.

    python bench/sharpness_table.py reports/shipped:"shipped" reports/s7_base:"control" ... \
        [--out bench/results/sharpness.md]

Each argument is an eval folder (`charforge eval -o DIR`) and a label. Reads report.json only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def row(folder: Path, label: str) -> str:
    r = json.loads((folder / "report.json").read_text())
    m = r["metrics"]

    def fid(name: str) -> str:
        f = m.get(name)
        return f"{f['model']['mean']:.1f} (x{f['vs_baseline']:.2f})" if f else "-"

    p, s, d = m.get("precision"), m.get("sharpness"), m.get("diversity")
    prec = f"{p['mean']:.3f} / {p['min']:.2f} ({p['min_tag']})" if p else "-"
    trained = ", ".join(r["model"].get("feature_spaces_in_training", [])) or "none"
    return (
        f"| {label} | `{r['model'].get('model_id', '?')}` | {s['ratio']:.3f} | {fid('fid_domain')} | "
        f"{fid('fid_generic')} | {prec} | {d['ratio']:.3f} | {trained} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="DIR:label")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    first = json.loads((Path(a.runs[0].split(":", 1)[0]) / "report.json").read_text())
    m = first["metrics"]
    lines = [
        "## Sharpness fine-tunes (bench/sharpness_table.py)",
        "",
        f"Eval: seed 0, {m['fid_domain']['runs']} runs of {m['fid_domain']['samples_per_run']} images, judge "
        f"`{first['tagger']}`, {first['machine']['cpu']}. Real vs real: sharpness {m['sharpness']['real_vs_real']:.3f}, "
        f"domain FID {m['fid_domain']['real_baseline']['mean']:.1f}, generic FID "
        f"{m['fid_generic']['real_baseline']['mean']:.2f}. Runs and their settings: docs/generator.md, session 7.",
        "",
        "| model | id | sharpness ratio | domain FID (x floor) | generic FID (x floor) | precision mean / min | "
        "diversity | spaces used in training |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for spec in a.runs:
        folder, _, label = spec.partition(":")
        lines.append(row(Path(folder), label or folder))
    md = "\n".join(lines) + "\n"
    print(md)
    if a.out:
        Path(a.out).write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
