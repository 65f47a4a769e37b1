"""Where does the generator's softness come from? Sharpness (variance of the Laplacian, metrics.sharpness) of
a generator's images against real renders, with the parts that could blur switched off one at a time.

    python bench/sharpness_diag.py --data data/builtin64 [--model FILE] [--state STATE] [--n 512]

Rows: real renders, real renders blurred at sigma 0.5 / 0.8 and resampled through half size (what "soft"
looks like in this measure), the generator as shipped, its fixed low-pass (g_antialias) removed after the
last upscaler only and after every upscaler, and, when a training state is given, its raw (non-EMA) G.
With --state, D's view too: D's mean real/fake logit on real renders, on the same renders blurred, and on
generated images (can D tell a sharp render from a soft one at all?). Same tags and seeds for every row.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from charforge.core.images import to_uint8  # noqa: E402
from charforge.data.packed import load_packed  # noqa: E402
from charforge.metrics.sharpness import laplacian_variance  # noqa: E402
from charforge.models.generator import read_generator, shipped_generators  # noqa: E402


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return np.stack([cv2.GaussianBlur(im, (0, 0), sigma) for im in images])


def halfres(images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    s = x.shape[-1]
    x = torch.nn.functional.interpolate(x, size=(s // 2, s // 2), mode="bilinear", antialias=True)
    x = torch.nn.functional.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
    return to_uint8(x)


@torch.no_grad()
def generate(net: torch.nn.Module, tags: np.ndarray, seed: int, z_dim: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(tags), z_dim, generator=g)
    out = [net(z[i : i + 128], torch.from_numpy(tags[i : i + 128])) for i in range(0, len(tags), 128)]
    return to_uint8(torch.cat(out))


def without_antialias(net: torch.nn.Module, which: str) -> torch.nn.Module:
    import copy

    net = copy.deepcopy(net)
    ups = list(net.up)
    for up in ups if which == "all" else ups[-1:]:
        up.aa = None
    return net


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default=None, help="generator file (default: the shipped one)")
    ap.add_argument("--state", default=None, help="a training state-*.safetensors (raw G and D)")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the rows here too")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = load_packed(a.data)
    rng = np.random.default_rng(a.seed)
    idx = np.sort(rng.choice(len(data), size=a.n, replace=False))
    real = np.asarray(data.images[idx])
    tags = np.asarray(data.tags[idx], dtype=np.float32)
    gf = read_generator(a.model or shipped_generators()["default"])
    net = gf.build()
    z_dim = gf.config.z_dim
    base = laplacian_variance(real).mean()
    rows: list[tuple[str, float]] = [
        ("real renders", base),
        ("real, Gaussian blur sigma 0.5", laplacian_variance(blur(real, 0.5)).mean()),
        ("real, Gaussian blur sigma 0.8", laplacian_variance(blur(real, 0.8)).mean()),
        ("real, through half size and back", laplacian_variance(halfres(real)).mean()),
        (
            "generator (EMA weights, as shipped)",
            laplacian_variance(generate(net, tags, a.seed, z_dim)).mean(),
        ),
    ]
    if getattr(net, "up", None) is not None and any(up.aa is not None for up in net.up):
        for which in ("last", "all"):
            imgs = generate(without_antialias(net, which), tags, a.seed, z_dim)
            rows.append(
                (f"generator, low-pass removed after {which} upscaler(s)", laplacian_variance(imgs).mean())
            )
    if a.state:
        from charforge.models.io import load_model
        from charforge.train import checkpoint as ck
        from charforge.train.presets import build_discriminator, preset_from_dict

        tensors, meta = load_model(a.state)
        raw = gf.build()
        raw.load_state_dict(ck.unprefixed("G", tensors))
        rows.append(
            (
                "generator, raw G weights (not EMA)",
                laplacian_variance(generate(raw, tags, a.seed, z_dim)).mean(),
            )
        )
        preset = preset_from_dict(meta["charforge_config"])
        D = build_discriminator(preset, len(gf.schema))
        D.load_state_dict(ck.unprefixed("D", tensors))
        D.eval()

        def d_logit(imgs: np.ndarray) -> float:
            x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
            with torch.no_grad():
                adv, _ = D(x, torch.from_numpy(tags)) if getattr(D, "proj", None) is not None else D(x)
            return float(adv.mean())

        for name, imgs in [
            ("D logit: real", real),
            ("D logit: real blurred sigma 0.8", blur(real, 0.8)),
            ("D logit: real through half size", halfres(real)),
            ("D logit: generated (EMA)", generate(net, tags, a.seed, z_dim)),
        ]:
            rows.append((name, d_logit(imgs)))
    print("| row | Laplacian variance or D logit | ratio to real |\n|---|---:|---:|")
    for name, v in rows:
        ratio = f"{v / base:.3f}" if not name.startswith("D logit") else ""
        print(f"| {name} | {v:.1f} | {ratio} |" if ratio else f"| {name} | {v:+.3f} | |")
    if a.json:
        Path(a.json).write_text(json.dumps({k: float(v) for k, v in rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
