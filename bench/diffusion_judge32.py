"""Can the judge read each tag on real renders at 32 px? The shipped tagger on 2,000 training images at 64 px and
downsampled to 32 px (the trainer's antialiased bilinear resize), scored as the precision metric scores
(argmax within exclusive groups, p >= 0.25 for independent tags). Separates what a 32 px model cannot show from
what it has not learnt. Writes bench/results/diffusion_judge32.json.

    OMP_NUM_THREADS=1 python bench/diffusion_judge32.py
"""

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charforge.data.packed import load_packed
from charforge.tagger.net import load_tagger

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    torch.set_num_threads(1)
    d = load_packed(ROOT / "data" / "builtin64")
    t = load_tagger(ROOT / "charforge" / "weights" / "tagger_default.safetensors")
    idx = np.sort(np.random.default_rng(0).choice(len(d), 2000, replace=False))
    real, tags = np.asarray(d.images[idx]), np.asarray(d.tags[idx])
    x = torch.from_numpy(real).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    x32 = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = {}
    for name, ims in (("64px", real), ("32px", x32)):
        p, res = t.predict_proba(ims), {}
        for g, sl in zip(d.schema.groups, d.schema.group_slices()):
            am = p[:, sl].argmax(1)
            for j, tag in enumerate(g.tags):
                res[tag] = float((am[tags[:, sl.start + j] > 0] == j).mean())
        isl = d.schema.independent_slice
        for j, tag in enumerate(d.schema.independent):
            res[tag] = float((p[tags[:, isl.start + j] > 0, isl.start + j] >= 0.25).mean())
        out[name] = res
    path = ROOT / "bench" / "results" / "diffusion_judge32.json"
    path.write_text(json.dumps({"images": 2000, "seed": 0, **out}, indent=1))
    print({k: round(v, 3) for k, v in out["32px"].items()})


if __name__ == "__main__":
    main()
