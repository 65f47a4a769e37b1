"""Face-to-parameter benchmark: self-reconstruction quality and time per image on the built-in creator.

    .venv/bin/python bench/bench_f2p.py [--f2p DIR] [--n 200] [--n-search 50] [--repeats 5]

Quality: held-out builtin renders (a seed the model never saw) are embedded, fitted with `fast` and `search`,
re-rendered and re-embedded; mean cosine in embedder space. Timing: median over `repeats` runs of fitting
single images one at a time (embedding included), `fast` and `search` side by side in this process, and
their ratio. Imitator fidelity (held-out embedding MSE and cosine) comes from the training record.
Writes bench/results/f2p.md.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from charforge.core.device import cpu_name  # noqa: E402
from charforge.f2p import load_f2p  # noqa: E402
from charforge.f2p.evaluate import evaluate_f2p, heldout_targets  # noqa: E402
from charforge.f2p.fit import search_from, translate  # noqa: E402


def time_per_image(f2p, images: np.ndarray, mode: str, repeats: int) -> list[float]:
    """Median-ready list: mean seconds per image of each repeat (embed + translate [+ search])."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for im in images:
            target = f2p.embedder.embed(im[None])
            vec = translate(f2p, target)
            if mode == "search":
                search_from(f2p, target, vec)
        runs.append((time.perf_counter() - t0) / len(images))
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--f2p", default=None, help="trained folder or .safetensors (default: the shipped model)")
    ap.add_argument("--n", type=int, default=200, help="held-out renders for the quality numbers")
    ap.add_argument("--n-search", type=int, default=50, help="of which fitted with search too")
    ap.add_argument("--n-time", type=int, default=10, help="images per timing repeat")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats (the median is reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "f2p.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    f2p = load_f2p(args.f2p)
    quality = evaluate_f2p(f2p, n=args.n, seed=2024, n_search=args.n_search)
    images, _ = heldout_targets(f2p, args.n_time, seed=77)
    fast = time_per_image(f2p, images, "fast", args.repeats)
    slow = time_per_image(f2p, images, "search", args.repeats)
    write(args, f2p, quality, fast, slow)


def write(args, f2p, q, fast, slow) -> None:
    fm, sm = q["modes"]["fast"], q["modes"]["search"]
    imi = f2p.metrics.get("imitator", {}).get("heldout", {})
    med_f, med_s = statistics.median(fast), statistics.median(slow)
    lines = [
        "## Face-to-parameter (f2p)",
        "",
        f"Machine: {cpu_name()}, {torch.get_num_threads()} torch thread(s), shared 2-core VM; "
        f"date {datetime.date.today().isoformat()}; model `{Path(str(f2p.path)).name}` (sha256 {f2p.sha256[:12]}), "
        f"embedder `{f2p.embedder.name}`, search {f2p.search.iters} Adam steps, beam {f2p.search.beam}.",
        "",
        "| metric | value | target |",
        "|---|---|---|",
        f"| self-reconstruction mean cosine, search (n={sm['n']}) | {sm['mean_cosine']:.3f} | >= 0.95 |",
        f"| self-reconstruction mean cosine, fast (n={fm['n']}) | {fm['mean_cosine']:.3f} | >= 0.90 |",
        f"| cosine of random pairs of targets (context) | {q['random_pair_cosine']:.3f} | |",
        f"| categorical accuracy, fast / search | {fm['cat_accuracy_mean']:.3f} / {sm['cat_accuracy_mean']:.3f} | |",
        f"| continuous MAE (0-1 units), fast / search | {fm['cont_mae']:.3f} / {sm['cont_mae']:.3f} | |",
        f"| time per image, fast (median of {len(fast)} x {args.n_time} images, incl. embedding) | {1000 * med_f:.1f} ms | <= 50 ms |",
        f"| time per image, search (median of {len(slow)} x {args.n_time} images, incl. embedding) | {1000 * med_s:.0f} ms | <= 2000 ms |",
        f"| search / fast time ratio (same process, side by side) | {med_s / med_f:.0f}x | |",
        f"| imitator held-out embedding MSE (squared L2, unit vectors) | {imi.get('embedding_mse', float('nan')):.4f} | |",
        f"| imitator held-out embedding cosine (n={imi.get('n', 0)}) | {imi.get('embedding_cosine', float('nan')):.3f} | |",
        "",
        f"Timing runs (s/image): fast {[round(x, 4) for x in fast]}, search {[round(x, 3) for x in slow]}.",
        "Reproduce: `.venv/bin/python bench/bench_f2p.py`.",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
