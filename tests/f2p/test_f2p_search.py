"""Search through a frozen imitator: it must find parameters the imitator maps onto the target."""

from __future__ import annotations

import numpy as np
import torch

from charforge.f2p.imitator import Imitator, ImitatorConfig
from charforge.f2p.search import SearchConfig, _dedupe_mask, search


def _frozen_imitator(cat_sizes, n_cont, seed=0):
    torch.manual_seed(seed)
    return Imitator(
        ImitatorConfig(in_dim=sum(cat_sizes) + n_cont, emb_dim=16, hidden=32, depth=2, img_size=8, img_ch=16)
    ).eval()


def _random_vectors(cat_sizes, n_cont, n, rng):
    cats = [np.eye(k, dtype=np.float32)[rng.integers(0, k, n)] for k in cat_sizes]
    return np.concatenate(cats + [rng.random((n, n_cont), dtype=np.float32)], axis=1)


def _run(cat_sizes, cfg):
    rng = np.random.default_rng(1)
    net = _frozen_imitator(cat_sizes, 3)
    truth = _random_vectors(cat_sizes, 3, 4, rng)
    with torch.no_grad():
        targets = net.embed(torch.from_numpy(truth)).numpy()
    start = _random_vectors(cat_sizes, 3, 4, rng)
    with torch.no_grad():
        start_cos = (net.embed(torch.from_numpy(start)).numpy() * targets).sum(1)
    vec, score = search(net, cat_sizes, targets, start, cfg)
    with torch.no_grad():
        check = (net.embed(torch.from_numpy(vec)).numpy() * targets).sum(1)
    return start_cos, vec, score, check


def test_search_enumerates_and_beats_start():
    start_cos, vec, score, check = _run([3, 2], SearchConfig(iters=150, lr=0.1, max_enumerate=64))
    np.testing.assert_allclose(score, check, atol=1e-5)  # reported score is the imitator cosine of the answer
    assert (score >= start_cos - 1e-6).all()
    assert score.mean() > 0.98
    assert (
        vec[:, :3].sum(1).tolist() == [1.0] * 4 and vec[:, 3:5].sum(1).tolist() == [1.0] * 4
    )  # valid one-hots
    assert ((vec[:, -3:] >= 0) & (vec[:, -3:] <= 1)).all()


def test_search_beam_mode_when_combinations_are_many():
    start_cos, _, score, check = _run(
        [4, 4, 3, 3], SearchConfig(iters=150, lr=0.1, max_enumerate=8, beam=6, rounds=2)
    )
    np.testing.assert_allclose(score, check, atol=1e-5)
    assert (score >= start_cos - 1e-6).all()
    assert score.mean() > 0.95


def test_dedupe_mask_matches_a_reference():
    rng = np.random.default_rng(3)
    cats = torch.from_numpy(rng.integers(0, 3, (2, 30, 4)))
    mask = _dedupe_mask(cats, torch.tensor([11, 101, 1009, 10007]))
    for t in range(2):
        rows = [tuple(r) for r in cats[t].tolist()]
        assert int((~mask[t]).sum()) == len(set(rows))  # exactly one survivor per distinct row
        assert {rows[i] for i in range(30) if not mask[t, i]} == set(rows)
