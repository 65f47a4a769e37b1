"""Refinement with the real creator in the loop, for creators that can render.

The imitator is an approximation; search through it can land where the real re-render disagrees. When the
creator renders cheaply (the built-in one does hundreds of images a second), a greedy coordinate sweep on real
renders fixes that: every option of each categorical parameter, and a step up and down for each continuous one,
rendered and embedded in one batch per sweep; the best change per parameter is kept when it helps.
"""

from __future__ import annotations

import numpy as np


def _variants(
    vec: np.ndarray, cat_slices: list[slice], n_cont: int, step: float, allowed: list[list[int]] | None = None
) -> np.ndarray:
    """All single-parameter changes of one encoded vector (V,) -> (M, V) (categorical ones within `allowed`)."""
    out = []
    for j, sl in enumerate(cat_slices):
        for k in allowed[j] if allowed is not None else range(sl.stop - sl.start):
            v = vec.copy()
            v[sl] = 0.0
            v[sl.start + k] = 1.0
            out.append(v)
    base = len(vec) - n_cont
    for j in range(n_cont):
        for d in (-step, step):
            v = vec.copy()
            v[base + j] = np.clip(v[base + j] + d, 0.0, 1.0)
            out.append(v)
    return np.stack(out)


def _score(f2p, vecs: np.ndarray, target: np.ndarray, embedder) -> np.ndarray:
    images = f2p.creator.render(f2p.space.decode(vecs), f2p.render_size)
    return embedder.embed(images) @ target


def refine(
    f2p,
    vec: np.ndarray,
    target: np.ndarray,
    embedder,
    sweeps: int = 1,
    step: float = 0.12,
    allowed: list[list[int]] | None = None,
) -> tuple[np.ndarray, float]:
    """Greedy coordinate refinement of one encoded vector (V,) toward a unit target (D,) -> (vec, real cosine).
    `allowed` (see search.allowed_options) keeps every categorical change inside what the input shows."""
    best = np.asarray(vec, np.float32).copy()
    best_score = float(_score(f2p, best[None], target, embedder)[0])
    for s in range(max(0, sweeps)):
        cands = _variants(best, f2p.space.cat_slices(), f2p.space.n_cont, step / (s + 1), allowed)
        scores = _score(f2p, cands, target, embedder)  # (M,)
        # apply every single-parameter change that helped, then keep the combination only if it is better still
        gain = scores - best_score
        combo = best.copy()
        for i in np.argsort(-gain):
            if gain[i] <= 0:
                break
            changed = np.nonzero(cands[i] != best)[0]
            combo[changed] = cands[i][changed]
        both = np.stack([cands[int(np.argmax(scores))], combo])
        both_scores = _score(f2p, both, target, embedder)
        j = int(np.argmax(both_scores))
        if both_scores[j] <= best_score:
            break
        best, best_score = both[j], float(both_scores[j])
    return best, best_score
