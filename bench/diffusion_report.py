"""Write bench/results/diffusion.md from the side-by-side eval reports (charforge eval, same data, seeds and
settings for both models), bench_diffusion.py's speed/sharpness JSON and diffusion_sheets.py's negative-tag
JSON. Prints the markdown table rows the model card and docs/diffusion.md quote.

    python bench/diffusion_report.py --diffusion docs/eval/diffusion_vs_gan/diffusion --gan docs/eval/diffusion_vs_gan/gan
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(p: Path) -> dict:
    return json.loads(Path(p).read_text())


def fid_row(name: str, d: dict, g: dict) -> str:
    dm, gm = d["metrics"][name], g["metrics"][name]
    base = dm["real_baseline"]["mean"]
    ratio = name.startswith("fid")

    def cell(m: dict) -> str:
        v = m["model"]["mean"]
        rel = f"x{v / base:.2f}" if ratio else f"+{v - base:.3g}"
        return f"{v:.4g} ({rel})"

    return f"| {name} | {cell(dm)} | {cell(gm)} | {base:.4g} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--diffusion", type=Path, required=True)
    ap.add_argument("--gan", type=Path, required=True)
    ap.add_argument("--speed", type=Path, default=ROOT / "bench" / "results" / "diffusion_speed.json")
    ap.add_argument("--negatives", type=Path, default=ROOT / "bench" / "results" / "diffusion_negatives.json")
    ap.add_argument("--notes", type=Path, default=None, help="a markdown file appended as the notes")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "diffusion.md")
    a = ap.parse_args()
    d, g = load(a.diffusion / "report.json"), load(a.gan / "report.json")
    o = d["options"]
    lines = [
        "## Diffusion beside the GAN",
        "",
        f"- machine: {(d.get('machine') or {}).get('cpu', '?')}, 2 cores, no GPU; one torch thread each; the cores "
        "were shared with other engineers' jobs while measured: timings are shared, indicative",
        f"- models: diffusion `{d['model'].get('model_id')}` ({d['model'].get('image_size')} px, sampler "
        f"{d['model'].get('sampler')}, {d['model'].get('steps')} steps, guidance {d['model'].get('guidance')}); "
        f"GAN `{g['model'].get('model_id')}` ({g['model'].get('image_size')} px)",
        f"- `charforge eval` on `{d['data']['path']}` for both, the same options and seed: {o.get('runs')} runs of "
        f"{o.get('n')} images for FID/KID, {o.get('precision_n')} images per tag for precision, "
        f"{o.get('sample_n')} for diversity and memorisation, seed {o.get('seed')}. Reports: "
        f"`{a.diffusion / 'report.md'}`, `{a.gan / 'report.md'}`",
        "",
        "| metric | diffusion | GAN | real vs real |",
        "|---|---:|---:|---:|",
    ]
    for name in ("fid_domain", "kid_domain", "fid_generic", "kid_generic"):
        if name in d["metrics"] and name in g["metrics"]:
            lines.append(fid_row(name, d, g))
    dp, gp = d["metrics"]["precision"], g["metrics"]["precision"]
    lines.append(
        f"| precision mean / min (free tags skip unseen pairs) | {dp['mean']:.3f} / {dp['min']:.2f} ({dp['min_tag']}) | "
        f"{gp['mean']:.3f} / {gp['min']:.2f} ({gp['min_tag']}) | |"
    )
    di, gi = dp["independent_sampling"], gp["independent_sampling"]
    lines.append(
        f"| precision mean / min (independent draw) | {di['mean']:.3f} / {di['min']:.2f} ({di['min_tag']}) | "
        f"{gi['mean']:.3f} / {gi['min']:.2f} ({gi['min_tag']}) | |"
    )
    dd, gd = d["metrics"]["diversity"], g["metrics"]["diversity"]
    lines.append(f"| diversity ratio (generated / real) | {dd['ratio']:.3f} | {gd['ratio']:.3f} | 1 |")
    dmem, gmem = d["metrics"]["memorisation"], g["metrics"]["memorisation"]
    lines.append(
        f"| near copies of training images | {dmem['near_copies']} of {dmem['generated']} | "
        f"{gmem['near_copies']} of {gmem['generated']} | |"
    )
    if a.speed.is_file():
        sp = load(a.speed)
        sh = sp.get("sharpness") or {}
        if sh:
            keys = list(k for k in sh if k.endswith("px"))
            lines.append(
                "| sharpness ratio (Laplacian variance / real's, same size) | "
                + " ; ".join(f"{sh[k]:.2f}" for k in keys if k.startswith("diffusion"))
                + " | "
                + " ; ".join(
                    f"{k.replace('_vs_real_at_', ' at ')}: {sh[k]:.2f}" for k in keys if k.startswith("gan")
                )
                + " | 1 |"
            )
        lines += [
            "",
            f"### Sampling speed (CPU, {sp['threads']} thread; {sp['cpu']}, flags {', '.join(sp['flags'])}; "
            f"load average {sp['load_average_start_end'][0]} -> {sp['load_average_start_end'][1]}: shared, indicative)",
            "",
            f"Median of repeated runs in one process; batched = {sp['batch']} images in one call. The GAN row is the "
            "shipped GAN at its 64 px.",
            "",
            "| model | steps | guidance | ms for one image | images/s batched |",
            "|---|---:|---|---:|---:|",
        ]
        for r in sp["rows"]:
            lines.append(
                f"| {r['model']} | {r['steps']} | {r['mode']} | {r['ms_one']:.0f} | {r['img_per_s_batched']:.1f} |"
            )
    if a.negatives.is_file():
        ng = load(a.negatives)
        lines += [
            "",
            f"### Negative tags (tagger-judged share of images showing the tag; {ng['n']} characters, seeds "
            f"{ng['seeds'][0]}..{ng['seeds'][1]}, free tags drawn as `generate` draws them)",
            "",
            "| request | " + " | ".join(ng["rates"]) + " |",
            "|---|" + "---:|" * len(ng["rates"]),
        ]
        rows = list(next(iter(ng["rates"].values())).keys())
        for r in rows:
            label = r.replace("-hat", "-tag").replace("-glasses", "-tag")
            vals = []
            for tag, rr in ng["rates"].items():
                key = next((k for k in rr if k.replace(f"-{tag}", "-tag") == label), None)
                vals.append(f"{rr[key]:.2f}" if key else "")
            lines.append(f"| {label} | " + " | ".join(vals) + " |")
        sw = (ng.get("guidance_sweep") or {}).get("scales")
        if sw:
            tags = list(next(iter(sw.values()))["per_tag"])
            lines += [
                "",
                f"### Guidance: tag precision per scale ({ng['guidance_sweep']['n']} images a tag, seeds "
                f"{ng['guidance_sweep']['seeds'][0]}..{ng['guidance_sweep']['seeds'][1]}, tagger-judged)",
                "",
                "| guidance | " + " | ".join(tags) + " | mean |",
                "|---|" + "---:|" * (len(tags) + 1),
            ]
            for w, r in sw.items():
                lines.append(
                    f"| {w} | " + " | ".join(f"{r['per_tag'][t]:.2f}" for t in tags) + f" | {r['mean']:.3f} |"
                )
    if a.notes and a.notes.is_file():
        lines += ["", a.notes.read_text().strip()]
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
