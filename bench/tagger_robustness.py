"""How well taggers read tags from held-out images that are clean, lightly blurred or noisy.

Usage: python bench/tagger_robustness.py [--data data/builtin64] [NAME=TAGGER_PATH ...] [--out FILE]
Without taggers it measures the shipped one. All taggers see the same images in one process. The held-out
split is the one `charforge tagger train` uses (holdout 0.1, seed 0), so no tagger trained on these images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charforge.data.packed import load_packed
from charforge.tagger.net import default_tagger_path, load_tagger
from charforge.train.tagger import split_indices


def variants(imgs: np.ndarray) -> dict[str, np.ndarray]:
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()  # (N, 3, S, S) in 0..255
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
    blur = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=3)
    noise = x + torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) * 16
    to = lambda y: y.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()  # noqa: E731
    return {"clean": imgs, "blur": to(blur), "noise16": to(noise)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("taggers", nargs="*", help="NAME=PATH pairs (default: the shipped tagger)")
    ap.add_argument("--data", default="data/builtin64")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(2)
    pairs = [t.split("=", 1) for t in args.taggers] or [["shipped", str(default_tagger_path())]]
    d = load_packed(args.data)
    s = d.schema
    _, held = split_indices(len(d), 0.1, 0)
    tags = np.asarray(d.tags[held])
    imgs = variants(np.asarray(d.images[held]))
    lines = [
        f"Held-out images: {len(held)} of {args.data}. blur = [1,2,1]^2 kernel; noise16 = Gaussian, sigma 16/255.",
        "",
        "| tagger | images | hair colour acc | eye colour acc | independent tags mean acc | smile precision |",
        "|---|---|---|---|---|---|",
    ]
    for name, path in pairs:
        tg = load_tagger(path)
        for v, im in imgs.items():
            pr = tg.predict_tags(im)
            g = [(pr[:, sl].argmax(1) == tags[:, sl].argmax(1)).mean() for sl in s.group_slices()]
            isl = s.independent_slice
            j = s.index("smile")
            lines.append(
                f"| {name} | {v} | {g[0]:.3f} | {g[1]:.3f} | {(pr[:, isl] == tags[:, isl]).mean():.3f} | "
                f"{tags[pr[:, j] > 0, j].mean():.3f} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
