"""Domain adaptation, measured (issue 16 point 4): fine-tune a shipped generator on ~300 images of a style
the creator does not draw, against training from scratch on the same images for the same wall time.

    python bench/domain_adapt.py prepare            # 300 DiceBear "adventurer" avatars -> data/da300
    python bench/domain_adapt.py train --minutes 30  # the runs side by side, one thread each, same budget
    python bench/domain_adapt.py evaluate            # FID/KID in two feature spaces, diversity, memorisation
    python bench/domain_adapt.py report              # bench/results/domain_adapt.md + docs/styles/adapt.png

Every stage is a plain charforge command (printed before it runs), so the recipe is the user's own path:
`data import --estimate-tags`, `train --init-from ... --minutes`, `eval`, `generate`. Stages skip work whose
output exists, so a killed stage reruns where it stopped (`train` passes --resume to a started run).

Runs (`--runs`, default all):
  finetune         --init-from default (the shipped 34-tag generator), its fine-tune defaults (DiffAugment:
                   translation, cutout and degrade on every D input)
  scratch          the same architecture (acgan-64-cpu) from random weights, with the same augmentation
  finetune-ada     as finetune, with adaptive augmentation (the kinds applied with probability p, train.ada)
  scratch-ada      as scratch, with adaptive augmentation
  finetune-styles  --init-from runs/styles_ft (the multi-style model; only if that run exists)

The images: DiceBear 9 "adventurer" by Lisa Wischofsky, CC BY 4.0, rendered from the npm registry by
bench/foreign/run.py (cached in ~/.cache/charforge/foreign; never committed).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench" / "foreign"))
sys.path.insert(0, str(ROOT))

DATA = ROOT / "data" / "da300"
RUNS = ROOT / "runs" / "da300"
REPORTS = ROOT / "reports" / "da300"
LICENCE = "CC-BY-4.0"
SCRATCH = ["--preset", "acgan-64-cpu", "--set", "augment=translation,cutout,degrade"]
RUN_ARGS = {
    "finetune": ["--init-from", "default"],
    "scratch": SCRATCH,
    "finetune-ada": ["--init-from", "default", "--set", "ada=true"],
    "scratch-ada": [*SCRATCH, "--set", "ada=true"],
    "finetune-styles": ["--init-from", str(ROOT / "runs" / "styles_ft")],
}
EVAL_METRICS = "fid_domain,kid_domain,fid_generic,kid_generic,diversity,memorisation"


def sh(cmd: list[str], log: Path | None = None) -> subprocess.Popen | int:
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    if log is None:
        return subprocess.call(cmd, cwd=ROOT)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("a"), stderr=subprocess.STDOUT)


def charforge() -> list[str]:
    return [sys.executable, "-m", "charforge"]


def prepare(args) -> None:
    import run as foreign  # bench/foreign/run.py

    if (DATA / "manifest.json").is_file():
        print(f"{DATA} exists")
        return
    set_dir = foreign.build_set("dicebear-adventurer", 600, 0, foreign.cache_dir())
    items = json.loads((set_dir / "manifest.json").read_text())["items"][: args.n]
    folder = ROOT / "data" / "da300_src"
    folder.mkdir(parents=True, exist_ok=True)
    for it in items:
        shutil.copy2(set_dir / "images" / it["file"], folder / it["file"])
    code = sh(
        [
            *charforge(),
            "data",
            "import",
            str(folder),
            "-o",
            str(DATA),
            "--estimate-tags",
            "--license",
            LICENCE,
        ]
    )
    if code:
        raise SystemExit(code)


def _runs(args) -> list[str]:
    names = args.runs.split(",") if args.runs else list(RUN_ARGS)
    if "finetune-styles" in names and not (ROOT / "runs" / "styles_ft").is_dir():
        print("skipping finetune-styles: runs/styles_ft does not exist")
        names.remove("finetune-styles")
    return names


def train(args) -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    procs = {}
    for name in _runs(args):
        out = RUNS / name
        if (out / "done.json").is_file():
            print(f"{name}: done")
            continue
        started = (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("state-*.safetensors"))
        cmd = [*charforge(), "train", "--data", str(DATA), "--out", str(out)]
        cmd += ["--resume"] if started else RUN_ARGS[name]  # a resumed run keeps its saved settings
        cmd += ["--steps", "100000", "--minutes", str(args.minutes), "--threads", "1", "--no-tensorboard"]
        if (
            not started
        ):  # samples, checkpoints and the best-model metric every 200 steps (not every 9-step epoch)
            cmd += ["--set", "sample_every=200", "--set", "ckpt_every=200", "--set", "eval_every=200"]
        procs[name] = (sh(cmd, RUNS / f"{name}.log"), time.time())
    for name, (p, t0) in procs.items():
        code = p.wait()
        (RUNS / name / "done.json").write_text(
            json.dumps({"exit": code, "wall_s": round(time.time() - t0, 1)})
        )
        print(f"{name}: exit {code}")


def evaluate(args) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    models = {"before": "default", **{n: str(RUNS / n) for n in _runs(args)}}
    for name, model in models.items():
        out = REPORTS / name
        if not (out / "report.json").is_file():
            code = sh(
                [
                    *charforge(),
                    "eval",
                    "--model",
                    model,
                    "--data",
                    str(DATA),
                    "-o",
                    str(out),
                    "--metrics",
                    EVAL_METRICS,
                    "--n",
                    str(args.eval_n),
                    "--runs",
                    "3",
                    "--threads",
                    "2",
                ]
            )
            if code:
                raise SystemExit(code)
        sheet = REPORTS / f"{name}_sheet.png"
        if not sheet.is_file():
            sh(
                [
                    *charforge(),
                    "generate",
                    "--model",
                    model,
                    "--n",
                    "8",
                    "--cols",
                    "8",
                    "--seed",
                    "0",
                    "-o",
                    str(sheet),
                ]
            )


def _metric(rep: dict, name: str) -> str:
    """FID as the model's mean and its ratio to the real-vs-real floor; KID as the mean; diversity as the ratio;
    memorisation as near copies and the median nearest-neighbour distance next to real vs real."""
    m = rep.get("metrics", {}).get(name)
    if not isinstance(m, dict):
        return "-"
    if name.startswith("fid"):
        return f"{m['model']['mean']:.0f} (x{m['vs_baseline']:.2f})"
    if name.startswith("kid"):
        return f"{m['model']['mean']:.3g}"
    if name == "diversity":
        return f"{m['ratio']:.2f}"
    if name == "memorisation":
        f = m["feature"]
        return f"{m['near_copies']} copies; NN {f['median']:.1f} (real {f['real_reference']['median']:.1f})"
    return "-"


def report(args) -> None:
    import numpy as np
    from PIL import Image

    rows, sheets = [], []
    from charforge.data.packed import load_packed

    data = load_packed(DATA)
    real = np.asarray(data.images[:8])
    sheets.append(np.concatenate(list(real), axis=1))
    for name in ["before", *_runs(args)]:
        rep_path = REPORTS / name / "report.json"
        if not rep_path.is_file():
            continue
        rep = json.loads(rep_path.read_text())
        done = RUNS / name / "done.json"
        cfg = RUNS / name / "config.json"
        step = "-"
        if (RUNS / name / "checkpoints").is_dir():
            from charforge.train.checkpoint import CheckpointStore

            step = str(CheckpointStore(RUNS / name).latest())
        wall = json.loads(done.read_text())["wall_s"] if done.is_file() else None
        rows.append((name, step, "-" if wall is None else f"{wall / 60:.1f}", rep, cfg.is_file()))
        sheet = REPORTS / f"{name}_sheet.png"
        if sheet.is_file():
            sheets.append(np.asarray(Image.open(sheet).convert("RGB"))[:64, : 64 * 8])
    out_png = ROOT / "docs" / "styles" / "adapt.png"
    Image.fromarray(np.concatenate(sheets, axis=0)).save(out_png)
    names = ("fid_domain", "kid_domain", "fid_generic", "kid_generic", "diversity", "memorisation")
    first = rows[0][3]["metrics"] if rows else {}
    floors = {  # the same data and seed in every report: the first one's real-vs-real means
        k: f"{first[k]['real_baseline']['mean']:.1f}" if k in first else "-"
        for k in ("fid_domain", "fid_generic")
    }
    lines = [
        "## Domain adaptation: 300 DiceBear adventurer avatars (CC BY 4.0), fine-tune vs from scratch",
        "",
        f"{time.strftime('%Y-%m-%d')}; `python bench/domain_adapt.py` (stages prepare, train --minutes "
        f"{args.minutes}, evaluate, report). Each run used one torch thread of the 2-core machine, side by side "
        "with the other runs of its pair and a third training job (so the step counts are what a shared laptop "
        "gets, not a benchmark). FID: the model's mean over 3 runs of 150 images and (x) its ratio to the "
        f"real-vs-real floor of the same data: domain {floors['fid_domain']}, generic {floors['fid_generic']}. "
        "Domain = the 34-tag judge's features, "
        "generic = EfficientNet-Lite0 (ImageNet); neither network was used in any of these trainings. Diversity: "
        "generated / real mean pairwise distance (collapse below 0.5). Memorisation: near copies of training "
        "images, and the median nearest-training-image distance of generated images (real held-out: in brackets).",
        "",
        "| run | steps | wall min | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for name, step, wall, rep, _ in rows:
        lines.append(f"| {name} | {step} | {wall} | " + " | ".join(_metric(rep, n) for n in names) + " |")
    lines += ["", f"Sheet (`docs/styles/adapt.png`): rows = the data, then {', '.join(r[0] for r in rows)}."]
    (ROOT / "bench" / "results" / "domain_adapt.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=("prepare", "train", "evaluate", "report"))
    ap.add_argument("--n", type=int, default=300, help="training images")
    ap.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget per run")
    ap.add_argument("--runs", default="", help="comma list of runs (default: all)")
    ap.add_argument("--eval-n", type=int, default=300, help="images per FID/KID run")
    args = ap.parse_args()
    {"prepare": prepare, "train": train, "evaluate": evaluate, "report": report}[args.stage](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
