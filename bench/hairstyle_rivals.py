"""Precision on tags the data never shows together, split by how many rival tags the label also asked for.

Usage: python bench/hairstyle_rivals.py [NAME=GENERATOR ...] [--data data/builtin64] [--tagger T] [--n 400]
Without generators it measures the shipped one. For each tag that is in a learned conflict pair (with the
built-in creator: twintails, drill hair, ponytail), it draws --n labels the way the paper's precision protocol
does (the tag fixed on, every other tag independently from the training frequencies), generates one image per
label and has the tagger judge it, then splits the images by how many of the tag's rivals the label also
turned on. All generators get the same labels and noise seeds.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from charforge.data.packed import load_packed
from charforge.metrics.precision import constraints_for
from charforge.sampling import generate, load_generator
from charforge.tagger.net import default_tagger_path, load_tagger


def rival_table(bundle, tagger, data, n: int) -> list[dict]:
    schema = data.schema
    pairs = schema.learn_conflicts(np.asarray(data.tags))
    rows = []
    for tag in dict.fromkeys(t for p in pairs for t in p):
        j = schema.index(tag)
        rivals = [schema.index(b if a == tag else a) for a, b in pairs if tag in (a, b)]
        rng = np.random.default_rng([j, 7])
        labels = schema.sample_conditional(n, rng, data.tag_frequencies, constraints_for(schema, tag)).astype(
            np.float32
        )
        ok = tagger.predict_tags(generate(bundle, labels, seeds=list(range(n))))[:, j].astype(bool)
        k = labels[:, rivals].sum(axis=1).astype(int)
        row = {"tag": tag, "all": float(ok.mean())}
        for r in range(len(rivals) + 1):
            row[r] = (int((k == r).sum()), float(ok[k == r].mean()) if (k == r).any() else None)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="NAME=GENERATOR_FILE (default: the shipped generator)")
    ap.add_argument("--data", default="data/builtin64")
    ap.add_argument("--tagger", default=None, help="judge (default: the shipped tagger)")
    ap.add_argument("--n", type=int, default=400, help="labels per tag")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_packed(args.data)
    tagger = load_tagger(args.tagger or default_tagger_path())
    models = [m.split("=", 1) for m in args.models] or [["shipped", None]]
    print("| model | tag | all | no rival asked | one rival | two rivals |")
    print("|---|---|---|---|---|---|")
    for name, path in models:
        for row in rival_table(load_generator(path), tagger, data, args.n):
            cells = [
                f"{row[r][1]:.2f} (n={row[r][0]})" if row[r][1] is not None else "-"
                for r in range(3)
                if r in row
            ]
            print(f"| {name} | {row['tag']} | {row['all']:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
