"""Sheets and the negative-tag measurement for the shipped diffusion model (docs/diffusion.md).

Sheets (docs/diffusion_sheets/): one per tag set, the same tag sets and seeds as the GAN's
docs/generator_sheets (16 each, tag seeds s..s+15), one of random tags (seed 100, 64), one for negative tags
(rows: the tag on; "-tag" switched off only; "-tag" with the negative term; the GAN's "-tag") and one for
variations (img2img of one character at three strengths, and new tags on its look). Every sheet goes through
`charforge.sampling` and `save_png` (metadata + watermark), like `charforge generate`.

The negative-tag measurement: for hat and glasses, N characters with free tags drawn as `generate` draws them
and the tag turned off ("-hat"); the shipped tagger judges how many still show it, for the diffusion model with
the negative term at several weights (0 = the tag only switched off, like a GAN) and for the shipped GAN.

    OMP_NUM_THREADS=1 python bench/diffusion_sheets.py --threads 1 [--n 64] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from charforge import sampling
from charforge.core.images import image_grid
from charforge.provenance import save_png

ROOT = Path(__file__).resolve().parents[1]
SHEETS = [  # the GAN's sheets: (tags, seed)
    ("blonde hair, blue eyes", 0),
    ("red hair, green eyes, smile", 1),
    ("black hair, purple eyes, glasses", 2),
    ("silver hair, red eyes, hat", 3),
    ("pink hair, twintails, blush", 4),
    ("aqua hair, yellow eyes, ribbon, open mouth", 5),
]


def slug(tags: str) -> str:
    return "_".join(t.strip().replace(" ", "_") for t in tags.split(",")) or "random_tags"


def tag_sheets(bundle, out: Path) -> list[Path]:
    paths = []
    for tags, seed in SHEETS:
        paths.append(sampling.generate_sheet(bundle, tags, n=16, seed=seed, path=out / f"{slug(tags)}.png"))
    paths.append(sampling.generate_sheet(bundle, "", n=64, seed=100, path=out / "random_tags.png"))
    return paths


def negative_sheet(bundle, gan, out: Path, tag: str = "hat", n: int = 8, seed: int = 20) -> Path:
    """Rows: '<tag>' on; '-<tag>' switched off only (negative_guidance 0); '-<tag>' with the negative term
    (negative_guidance = 4); the GAN's '-<tag>'. Same seeds in every row."""
    rows = [
        sampling.characters_for_request(bundle, tag, n, seed)[0],
        sampling.characters_for_request(bundle.with_options(negative_guidance=0.0), f"-{tag}", n, seed)[0],
        sampling.characters_for_request(bundle.with_options(negative_guidance=4.0), f"-{tag}", n, seed)[0],
    ]
    g = sampling.characters_for_request(gan, f"-{tag}", n, seed)[0]
    s = bundle.image_size
    g = torch.nn.functional.interpolate(  # the 64 px GAN row at the diffusion model's size, area-averaged
        torch.from_numpy(g).permute(0, 3, 1, 2).float(), size=(s, s), mode="area"
    )
    rows.append(g.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    meta = {
        **bundle.png_meta(seed, np.zeros(len(bundle.schema)), "torch-v1"),
        "sheet": f"negative tags, seeds {seed}..{seed + n - 1}; rows: '{tag}'; '-{tag}' with negative_guidance 0 "
        f"(switched off only); '-{tag}' with negative_guidance 4; the GAN ({gan.model_id}) with '-{tag}', "
        f"downsampled to {s} px",
    }
    return save_png(out / f"negative_{tag}.png", image_grid(np.concatenate(rows), n), meta)


def variations_sheet(bundle, out: Path, seed: int = 7, n: int = 8) -> Path:
    """Row 0: the character (seed 7, 'blonde hair, blue eyes') repeated; rows 1-3: img2img variations of it at
    strength 0.3, 0.5, 0.7 (tag seeds seed+1.., the same tag request); row 4: its look with 'red hair, green eyes'
    at strength 0.6."""
    base, _, _ = sampling.characters_for_request(bundle, "blonde hair, blue eyes", 1, seed)
    init = base[0]
    rows = [np.repeat(base, n, axis=0)]
    for s in (0.3, 0.5, 0.7):
        b = bundle.with_options(strength=s)
        rows.append(sampling.characters_for_request(b, "blonde hair, blue eyes", n, seed + 1, init=init)[0])
    b = bundle.with_options(strength=0.6)
    rows.append(sampling.characters_for_request(b, "red hair, green eyes", n, seed + 1, init=init)[0])
    meta = {
        **bundle.png_meta(seed, np.zeros(len(bundle.schema)), "torch-v1"),
        "sheet": "variations (img2img): row 1 the character (seed 7, 'blonde hair, blue eyes'); rows 2-4 "
        "variations at strength 0.3, 0.5, 0.7 (tag seeds 8..15); row 5 'red hair, green eyes' on its look at "
        "strength 0.6",
    }
    return save_png(out / "variations.png", image_grid(np.concatenate(rows), n), meta)


def negative_rates(bundle, gan, tagger, n: int, tags=("hat", "glasses"), weights=(0.0, 2.0, 4.0)) -> dict:
    out: dict = {}
    seeds = list(range(1000, 1000 + n))
    for tag in tags:
        j = bundle.schema.index(tag)
        row: dict = {}
        free = sampling.characters_for_seeds(bundle, None, seeds)[0]
        row["diffusion, tag free"] = float(tagger.predict_tags(free)[:, j].mean())
        c = bundle.schema.parse(f"-{tag}")
        for w in weights:
            imgs = sampling.characters_for_seeds(bundle.with_options(negative_guidance=w), c, seeds)[0]
            row[f"diffusion, -{tag}, negative_guidance {w:g}"] = float(tagger.predict_tags(imgs)[:, j].mean())
        imgs = sampling.characters_for_seeds(gan, gan.schema.parse(f"-{tag}"), seeds)[0]
        row[f"GAN, -{tag}"] = float(tagger.predict_tags(imgs)[:, j].mean())
        imgs = sampling.characters_for_seeds(gan, None, seeds)[0]
        row["GAN, tag free"] = float(tagger.predict_tags(imgs)[:, j].mean())
        out[tag] = row
        print(tag, row, flush=True)
    return out


SWEEP_TAGS = ("blonde hair", "green eyes", "twintails", "hat", "glasses", "smile")


def guidance_sweep(bundle, tagger, n: int, scales=(1.0, 2.0, 4.0)) -> dict:
    """Tagger-judged precision of a few tags (each fixed on in turn, n images, free tags as `generate` draws
    them) at several guidance scales: what guidance buys for its second network pass a step."""
    out = {}
    seeds = list(range(2000, 2000 + n))
    for w in scales:
        b = bundle.with_options(guidance=w)
        per = {}
        for tag in SWEEP_TAGS:
            imgs = sampling.characters_for_seeds(b, bundle.schema.parse(tag), seeds)[0]
            j = bundle.schema.index(tag)
            if bundle.schema.group_of(tag) is not None:  # exclusive group: the argmax must be this tag
                g = bundle.schema.group_of(tag)
                sl = next(
                    s for grp, s in zip(bundle.schema.groups, bundle.schema.group_slices()) if grp.name == g
                )
                p = tagger.predict_proba(imgs)[:, sl]
                per[tag] = float((p.argmax(1) == j - sl.start).mean())
            else:
                per[tag] = float(tagger.predict_tags(imgs)[:, j].mean())
        out[f"{w:g}"] = {"per_tag": per, "mean": float(np.mean(list(per.values())))}
        print("guidance", w, out[f"{w:g}"], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="diffusion")
    ap.add_argument("--gan", default="default")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--n", type=int, default=64, help="characters per negative-tag measurement")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "diffusion_sheets")
    ap.add_argument("--skip-sheets", action="store_true")
    ap.add_argument("--sweep-n", type=int, default=32, help="images per tag in the guidance sweep (0 = skip)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bundle = sampling.load_generator(a.model, device="cpu")
    if a.steps:
        bundle = bundle.with_options(steps=a.steps)
    gan = sampling.load_generator(a.gan, device="cpu")
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if not a.skip_sheets:
        for p in tag_sheets(bundle, a.out):
            print("wrote", p, flush=True)
        print("wrote", negative_sheet(bundle, gan, a.out), flush=True)
        print("wrote", variations_sheet(bundle, a.out), flush=True)
    from charforge.tagger.net import load_tagger

    tagger = load_tagger(ROOT / "charforge" / "weights" / "tagger_default.safetensors")
    rates = negative_rates(bundle, gan, tagger, a.n)
    sweep = guidance_sweep(bundle, tagger, a.sweep_n) if a.sweep_n else None
    doc = {
        "model_id": bundle.model_id,
        "gan_model_id": gan.model_id,
        "sampling": bundle.sampling_record(),
        "n": a.n,
        "seeds": [1000, 1000 + a.n - 1],
        "judge": "charforge/weights/tagger_default.safetensors, threshold 0.5",
        "rates": rates,
        "guidance_sweep": {"n": a.sweep_n, "seeds": [2000, 2000 + a.sweep_n - 1], "scales": sweep},
        "wall_s": round(time.time() - t0, 1),
    }
    path = ROOT / "bench" / "results" / "diffusion_negatives.json"
    path.write_text(json.dumps(doc, indent=2))
    print("wrote", path)


if __name__ == "__main__":
    main()
