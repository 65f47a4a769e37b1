"""Honest similarity, attribute constraints in the search, one source for defaults, bf16 only where native."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from f2p_helpers import TOY_SPEC

from charforge.f2p import fit, load_f2p


def _collapse(f2p):
    """A collapsed model: the embedder and the imitator map everything onto one vector (so the search's own
    cosine is ~1 for any answer), as a training run gone wrong does."""
    b = torch.randn(f2p.embedder.dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        f2p.embedder.encoder.proj.weight.zero_()
        f2p.embedder.encoder.proj.bias.copy_(b)
        f2p.imitator.emb_head.weight.zero_()
        f2p.imitator.emb_head.bias.copy_(b)
    return f2p


def test_a_collapsed_model_shows_a_low_percentile_and_a_warning(toy_model, toy):
    good = load_f2p(toy_model, creator=TOY_SPEC)
    bad = _collapse(load_f2p(toy_model, creator=TOY_SPEC))
    images = toy.render(toy.space.sample(8, np.random.default_rng(11)), 32)
    ok = [fit(good, [im], "fast") for im in images]
    res = [fit(bad, [im], "fast") for im in images]
    assert min(r.search_cosine for r in res) > 0.999  # the old number: looks perfect
    assert len({tuple(sorted(r.params.items())) for r in res}) == 1  # one answer for every input
    assert np.mean([r.percentile for r in res]) < 65 < np.mean([r.percentile for r in ok])
    assert sum(bool(r.warnings) for r in res) >= 5
    assert any("means nothing here" in w for r in res for w in r.warnings)


def test_calibration_and_check_spaces():
    from charforge.f2p.check import calibrate, check_features, check_space_for

    assert check_space_for("learned") == "generic" and check_space_for("generic") == "colour"
    imgs = np.random.default_rng(0).integers(0, 255, (3, 40, 50, 3), dtype=np.uint8)
    f = check_features(imgs, "colour")
    assert f.shape[0] == 3 and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    ref = np.eye(4, dtype=np.float32)
    inp = np.array([1, 0, 0, 0], np.float32)
    assert calibrate(inp, inp, ref)[1] == pytest.approx(87.5)  # beats 3 of 4, ties with 1
    assert calibrate(inp, np.array([0, 0, 0, 1.0], np.float32), ref)[1] == pytest.approx(37.5)


def test_the_reference_is_cached_per_creator(toy_model, tmp_path, monkeypatch):
    from charforge.f2p import check

    monkeypatch.setenv("CHARFORGE_CACHE", str(tmp_path))
    monkeypatch.setattr(check, "_MEMO", {})
    f2p = load_f2p(toy_model, creator=TOY_SPEC)
    a = check.reference_features(f2p, "colour")
    files = list((tmp_path / "f2p").glob("reference-*.npy"))
    assert a.shape[0] == check.CHECK_N and len(files) == 1
    check._MEMO.clear()
    np.testing.assert_array_equal(check.reference_features(f2p, "colour"), a)  # read back from disk


def test_constraints_keep_translator_and_search_inside(toy_model, toy):
    from charforge.f2p.fit import search_from, translate
    from charforge.f2p.search import allowed_options, project

    f2p = load_f2p(toy_model, creator=TOY_SPEC)
    images = toy.render(toy.space.sample(4, np.random.default_rng(3)), 16)
    allowed = allowed_options(f2p.space, {"face_color": ("blue",), "eyes": ("none",)})
    assert allowed[0] == [2] and allowed[2] == [0] and allowed[1] == [0, 1]
    targets = f2p.embedder.embed(images)
    fast = project(translate(f2p, targets), f2p.space.cat_sizes, allowed)
    vec = search_from(f2p, targets, fast, iters=5, allowed=allowed)
    for v in (fast, vec):
        for d in f2p.space.to_dicts(f2p.space.decode(v)):
            assert d["face_color"] == "blue" and d["eyes"] == "none"


def test_cli_train_defaults_come_from_the_config():
    import typer

    from charforge.cli.f2p import MODES as CLI_MODES
    from charforge.cli.f2p import f2p_app
    from charforge.f2p.fit import MODES
    from charforge.f2p.pipeline import TrainConfig
    from charforge.f2p.search import SearchConfig

    cmd = typer.main.get_command(f2p_app).commands["train"]
    defaults = {p.name: p.default for p in cmd.params}
    cfg = TrainConfig()
    shared = [k for k in cfg.__dict__ if k in defaults]
    assert len(shared) >= 15 and "n_search" in shared
    assert {k: defaults[k] for k in shared} == {k: getattr(cfg, k) for k in shared}
    assert defaults["search_iters"] == SearchConfig().iters
    assert CLI_MODES == MODES


@pytest.mark.parametrize("native", ["0", "1"])
def test_embedder_training_uses_bf16_only_where_native(monkeypatch, native):
    from charforge.f2p import learned

    monkeypatch.setenv("CHARFORGE_BF16", native)
    seen = []
    real = torch.autocast

    def spy(*a, **kw):
        seen.append(kw.get("enabled", True))
        return real(*a, **kw)

    monkeypatch.setattr(learned.torch, "autocast", spy)
    imgs = np.random.default_rng(0).integers(0, 255, (8, 16, 16, 3), dtype=np.uint8)
    vecs = np.random.default_rng(1).random((8, 3)).astype(np.float32)
    learned.train_encoder(
        imgs,
        vecs,
        [],
        3,
        learned.EncoderConfig(in_size=16, width=4, stages=2, dim=8, out_dim=3),
        learned.EncoderTrainConfig(steps=2, batch=4),
    )
    assert seen == [native == "1"] * 2
