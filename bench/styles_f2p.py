"""Face-to-parameter per render style (issue 16 point 5): fit fresh renders of each style and judge the fit.

    python bench/styles_f2p.py builtin=charforge/weights/f2p_builtin.safetensors \\
        styles=charforge/weights/f2p_styles.safetensors --n 40 --seed 77

For each style, `--n` fresh characters (seed 77: no training seed) are drawn in that style and fitted with
`fit(mode="fast", detect=False)`. The fit is judged in a space no f2p model optimised: the fitted parameters
are rendered by the plain cel creator and the shipped 34-tag judge (`tagger_default`) reads them; its hair
colour, eye colour and independent tags are compared with the character's true tags. The chance line fits
random parameters (uniform creator draws) and is judged the same way. For a model of the multi-style creator
the fitted style is reported too (style accuracy; chance 1/6).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from styles_tagger import cpu_flags  # noqa: E402


def judged(judge, plain, params_list) -> np.ndarray:
    batch = plain.space.from_dicts([{k: v for k, v in p.items() if k != "style"} for p in params_list])
    return judge.predict_tags(plain.render(batch, 64))


def agreement(pred: np.ndarray, truth: np.ndarray, schema) -> dict[str, float]:
    out = {}
    for g, sl in zip(schema.groups, schema.group_slices()):
        out[g.name] = float((pred[:, sl].argmax(1) == truth[:, sl].argmax(1)).mean())
    ind = schema.independent_slice
    out["independent"] = float(((pred[:, ind] > 0) == (truth[:, ind] > 0)).mean())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="name=path of f2p bundles")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results", help="writes styles_f2p.md and .json"
    )
    args = ap.parse_args()

    from charforge.creators.builtin import BuiltinCreator
    from charforge.creators.builtin.styles import STYLES
    from charforge.f2p import fit, load_f2p
    from charforge.tagger.net import default_tagger_path, load_tagger
    from charforge.utils.progress import progress

    plain = BuiltinCreator()
    judge = load_tagger(default_tagger_path())
    params = plain.sample(args.n, np.random.default_rng(args.seed))
    truth = plain.derive_tags(params)
    models = {name: load_f2p(path, detect=False) for name, path in (s.split("=", 1) for s in args.models)}
    rows = []
    t0 = time.time()
    rand = plain.sample(10 * args.n, np.random.default_rng(args.seed + 1))  # 10 random fits per character
    chance = agreement(
        judged(judge, plain, plain.space.to_dicts(rand)), np.tile(truth, (10, 1)), plain.schema
    )
    for style in STYLES:
        images = BuiltinCreator(style=style).render(params, 64)
        for name, model in models.items():
            fitted = []
            with progress(total=len(images), desc=f"fit {name} {style}", unit="img") as bar:
                for im in images:
                    fitted.append(
                        fit(model, [im], "fast", detect=False, check=False, preview_size=None).params
                    )
                    bar.update(1)
            row = {
                "style": style,
                "model": name,
                **agreement(judged(judge, plain, fitted), truth, plain.schema),
            }
            if "style" in model.space.names:
                row["style acc"] = float(np.mean([p.get("style") == style for p in fitted]))
            rows.append(row)
            print(json.dumps(row), flush=True)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_flags(),
        "n_per_style": args.n,
        "seed": args.seed,
        "seconds": round(time.time() - t0, 1),
        "chance": chance,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "styles_f2p.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [
        f"## Face-to-parameter per render style (fresh renders, seed {args.seed}, {args.n} per style)",
        "",
        f"{meta['date']}, {meta['cpu']}. `fit --mode fast` (no detection), judged by rendering the fit with the "
        "cel creator and reading it with the 34-tag judge (a space no f2p model optimised). Chance (random "
        f"parameters): hair {chance['hair color']:.2f}, eyes {chance['eye color']:.2f}, independent tags "
        f"{chance['independent']:.2f}; style 0.17.",
        "",
        "| style | model | hair colour | eye colour | independent tags | fitted style |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['style']} | {r['model']} | {fmt(r['hair color'])} | {fmt(r['eye color'])} | "
            f"{fmt(r['independent'])} | {fmt(r.get('style acc'))} |"
        )
    (args.out / "styles_f2p.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
