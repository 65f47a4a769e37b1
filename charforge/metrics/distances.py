"""The distribution metrics: FID/KID in three feature spaces (the third, Inception-v3, only with user weights), and an Inception-Score analogue from the tagger.

Each runs `ctx.runs` times (5 by default). Run r draws two disjoint halves A, B of the dataset; the
generator draws one image per row of A *with A's tag vector* (paper §5.3.2), and the metric compares
generated vs A. The real-vs-real baseline compares A vs B, the same way with the same sample size, so a
reader can see how far the model is from the floor that finite samples allow.
"""

from __future__ import annotations

import numpy as np

from charforge.metrics.fid import fid, kid, summarise_runs
from charforge.metrics.registry import EvalContext

EPS = 1e-12  # probability floor inside logarithms
KID_SUBSETS = 20  # random subsets (of up to 1000 per side) averaged per KID run


def _distance_metric(ctx: EvalContext, space: str, kind: str) -> dict:
    model, base = [], []
    for r in range(ctx.runs):
        a, b = ctx.split(r)
        real_a, real_b = ctx.real_features(space, a), ctx.real_features(space, b)
        gen = ctx.run_features(space, r)
        if kind == "fid":
            model.append(fid(gen, real_a))
            base.append(fid(real_b, real_a))
        else:
            model.append(kid(gen, real_a, n_subsets=KID_SUBSETS, seed=ctx.seed + r)[0])
            base.append(kid(real_b, real_a, n_subsets=KID_SUBSETS, seed=ctx.seed + r)[0])
    dim = int(gen.shape[1])
    return {
        "space": space,
        "feature_dim": dim,
        "samples_per_run": ctx.run_size,
        "runs": ctx.runs,
        "model": summarise_runs(model),
        "real_baseline": summarise_runs(base),
        # FID is positive and biased by sample size: read it as a ratio; KID is unbiased around 0: a difference
        "vs_baseline": (
            float(np.mean(model) / max(np.mean(base), EPS))
            if kind == "fid"
            else float(np.mean(model) - np.mean(base))
        ),
    }


def fid_domain(ctx: EvalContext) -> dict:
    return _distance_metric(ctx, "domain", "fid")


def kid_domain(ctx: EvalContext) -> dict:
    return _distance_metric(ctx, "domain", "kid")


def fid_generic(ctx: EvalContext) -> dict:
    return _distance_metric(ctx, "generic", "fid")


def kid_generic(ctx: EvalContext) -> dict:
    return _distance_metric(ctx, "generic", "kid")


def fid_inception(ctx: EvalContext) -> dict:
    return _distance_metric(ctx, "inception", "fid")


def kid_inception(ctx: EvalContext) -> dict:
    return _distance_metric(ctx, "inception", "kid")


def _kl_rows(p: np.ndarray) -> np.ndarray:
    """Per-image KL(p(y|x) || p(y)) for a categorical block p (N, K)."""
    p = np.clip(p, EPS, 1.0)
    marginal = p.mean(axis=0, keepdims=True)
    return (p * (np.log(p) - np.log(marginal))).sum(axis=1)


def _bernoulli_kl_rows(p: np.ndarray) -> np.ndarray:
    """Per-image sum over independent tags of KL(Bern(p_j(x)) || Bern(mean p_j))."""
    both = np.stack([p, 1.0 - p], axis=-1)  # (N, J, 2)
    return sum(_kl_rows(both[:, j]) for j in range(p.shape[1])) if p.shape[1] else np.zeros(len(p))


def tag_inception_score(proba: np.ndarray, schema) -> dict:
    """exp(E_x KL(p(y|x) || p(y))) per exclusive group, over the independent tags, and in total.

    The tagger's output is a product of one categorical per group and one Bernoulli per independent tag,
    so KLs add across blocks and the total score is the product of the block scores. A group's score lies
    in [1, K]: high when each image is confidently one tag and the tags are spread evenly over images.
    """
    blocks = {g.name: _kl_rows(proba[:, sl]) for g, sl in zip(schema.groups, schema.group_slices())}
    blocks["independent tags"] = _bernoulli_kl_rows(proba[:, schema.independent_slice])
    scores = {k: float(np.exp(v.mean())) for k, v in blocks.items()}
    scores["total"] = float(np.exp(sum(v.mean() for v in blocks.values())))
    return scores


def is_domain(ctx: EvalContext) -> dict:
    """IS analogue per run; the real baseline scores real half A the same way (the ceiling to aim for)."""
    model, base = [], []
    for r in range(ctx.runs):
        a, _ = ctx.split(r)
        model.append(tag_inception_score(ctx.run_features("proba", r), ctx.data.schema))
        base.append(tag_inception_score(ctx.real_features("proba", a), ctx.data.schema))
    keys = list(model[0])
    return {
        "samples_per_run": ctx.run_size,
        "runs": ctx.runs,
        "model": {k: summarise_runs([m[k] for m in model]) for k in keys},
        "real_baseline": {k: summarise_runs([b[k] for b in base]) for k in keys},
        "note": "exp(E KL(p(y|x)||p(y))) from the tagger: per exclusive group, over independent tags, and total",
    }
