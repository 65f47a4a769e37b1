"""Domain FID split by accessory: does a generator's domain-FID gap come from hats, ribbons and glasses?

    python bench/accessory_fid.py --data data/builtin64 --models default,runs/X/checkpoints/generator-N.safetensors \
        --labels "shipped;candidate" --n 500 --runs 2 --threads 1 -o reports/accessory_fid.json

For each subset of the dataset (rows with a tag, rows without it, rows with none of the tags, and all rows) it
does what `charforge eval`'s fid_domain does, restricted to that subset: run r splits a fixed pool of 2n rows of
the subset into two disjoint halves A and B, the generator draws one image per row of A with A's tag vector
(noise seeds from the run's rng), and the script reports FID(generated, A) and the real-vs-real floor
FID(B, A), both in the judge tagger's penultimate-layer features (the "domain" space; default judge: the shipped
tagger that reads the dataset's tags, as `charforge eval` picks it). The ratio model / floor is comparable
across subsets of the same n; n below `charforge eval`'s 1,000 makes both FIDs larger, so compare ratios within
this script's output, not with the eval report. Keep n well above the judge's feature width (128): with fewer
rows than dimensions the covariances are singular and the FIDs mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from charforge import sampling  # noqa: E402
from charforge.data.packed import load_packed  # noqa: E402
from charforge.metrics.fid import fid  # noqa: E402
from charforge.models.features import domain_features  # noqa: E402


def subsets(tags: np.ndarray, names: list[str], accessories: list[str]) -> dict[str, np.ndarray]:
    """Subset name -> dataset row indices: '+tag', '-tag' per accessory, 'none' (no accessory), 'all'."""
    on = {a: tags[:, names.index(a)] > 0 for a in accessories}
    out: dict[str, np.ndarray] = {}
    for a in accessories:
        out[f"+{a}"] = np.flatnonzero(on[a])
        out[f"-{a}"] = np.flatnonzero(~on[a])
    out["none"] = np.flatnonzero(~np.any(np.stack(list(on.values())), axis=0))
    out["all"] = np.arange(len(tags))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="packed dataset folder")
    ap.add_argument("--models", required=True, help="comma list: shipped names or generator files")
    ap.add_argument("--labels", default="", help="column labels separated by ; (default: the model ids)")
    ap.add_argument("--accessories", default="hat,ribbon,glasses", help="comma list of tags to split by")
    ap.add_argument("--tagger", default=None, help="judge tagger (default: the shipped judge for the data)")
    ap.add_argument("--n", type=int, default=500, help="rows in each half A, B of a subset's pool")
    ap.add_argument(
        "--runs", type=int, default=2, help="repeated splits (mean reported, max-min kept in JSON)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "-o", "--out", required=True, help="JSON file for the numbers (a Markdown table is printed)"
    )
    a = ap.parse_args(argv)

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from charforge.tagger.net import judge_for, load_tagger

    data = load_packed(a.data)
    names = list(data.schema.tags)
    tagger = load_tagger(a.tagger or judge_for(names))
    specs = [m.strip() for m in a.models.split(",")]
    labels = a.labels.split(";") if a.labels else specs
    if len(labels) != len(specs):
        ap.error("--labels needs one label per model")
    tags = np.asarray(data.tags)
    subs = subsets(tags, names, [t.strip() for t in a.accessories.split(",")])

    # fixed pool of 2n rows per subset, split afresh per run (as charforge eval does for the whole set)
    splits: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for k, (name, rows) in enumerate(subs.items()):
        m = min(a.n, len(rows) // 2)
        pool = rows[np.random.default_rng([a.seed, k, 17]).permutation(len(rows))[: 2 * m]]
        splits[name] = []
        for r in range(a.runs):
            perm = np.random.default_rng([a.seed, k, r, 19]).permutation(pool)
            splits[name].append((np.sort(perm[:m]), np.sort(perm[m:])))

    t0 = time.perf_counter()
    need = np.unique(np.concatenate([np.concatenate(ab) for sp in splits.values() for ab in sp]))
    feats = dict(zip(need.tolist(), domain_features(tagger, np.asarray(data.images[need]))))

    def real(idx: np.ndarray) -> np.ndarray:
        return np.stack([feats[i] for i in idx.tolist()])

    result: dict = {"data": a.data, "tagger": str(tagger.path), "n": a.n, "runs": a.runs, "seed": a.seed}
    result["subsets"] = {s: {"rows": int(len(subs[s])), "half": int(len(splits[s][0][0]))} for s in subs}
    for s in subs:
        result["subsets"][s]["floor"] = [fid(real(b), real(a_)) for a_, b in splits[s]]
    result["models"] = {}
    for spec, label in zip(specs, labels):
        bundle = sampling.load_generator(spec, device="cpu")
        per = {}
        for k, s in enumerate(subs):
            vals = []
            for r, (a_, _) in enumerate(splits[s]):
                seeds = np.random.default_rng([a.seed, k, r, 29]).integers(0, 2**31 - 1, size=len(a_))
                imgs = sampling.generate(bundle, tags[a_].astype(np.float32), seeds=[int(x) for x in seeds])
                vals.append(fid(domain_features(tagger, imgs), real(a_)))
            per[s] = vals
        result["models"][label] = {"path": str(bundle.path), "sha256": bundle.sha256, "fid": per}
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)

    head = "| subset | rows (half) | real floor | " + " | ".join(f"{lb} (x floor)" for lb in labels) + " |"
    print(head)
    print("|---|---:|---:|" + "---:|" * len(labels))
    for s, info in result["subsets"].items():
        floor = float(np.mean(info["floor"]))
        cells = []
        for lb in labels:
            v = float(np.mean(result["models"][lb]["fid"][s]))
            cells.append(f"{v:.1f} (x{v / floor:.2f})")
        print(f"| {s} | {info['rows']} ({info['half']}) | {floor:.1f} | " + " | ".join(cells) + " |")
    print(f"wall {result['wall_seconds']} s")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
