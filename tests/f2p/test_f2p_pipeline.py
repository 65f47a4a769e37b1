"""Training pipeline on the toy creator (a module:function user creator): stages, resume, bundle, fit modes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from f2p_helpers import TINY_TRAIN, TOY_SPEC, run_cli

from charforge.errors import UserError
from charforge.f2p import FitResult, fit, load_f2p
from charforge.f2p.pipeline import TrainConfig, train_f2p

STAGES = ["data", "embedder", "embed", "imitator", "translator_gt", "search", "translator"]


def test_train_writes_every_stage_and_a_loadable_bundle(toy_model):
    state = json.loads((toy_model / "f2p.json").read_text())
    assert list(state["stages"]) == STAGES
    held = state["stages"]["imitator"]["heldout"]
    assert held["n"] == 12 and -1 <= held["embedding_cosine"] <= 1 and held["embedding_mse"] >= 0
    f2p = load_f2p(toy_model)  # no creator loaded: the file's module:function spec is only recorded
    assert f2p.creator_spec == TOY_SPEC and f2p.embedder.name == "learned" and f2p.embedder.dim == 16
    assert f2p.space.names == ["face_color", "background", "eyes", "width", "height", "x"]


def test_rerun_resumes_without_retraining(toy_model):
    before = {p.name: p.stat().st_mtime_ns for p in toy_model.glob("*.safetensors")}
    code, log = run_cli(["f2p", "train", "--creator", TOY_SPEC, "-o", str(toy_model), *TINY_TRAIN])
    assert code == 0, log
    after = {p.name: p.stat().st_mtime_ns for p in toy_model.glob("*.safetensors")}
    for name in (
        "embedder.safetensors",
        "imitator.safetensors",
        "translator_gt.safetensors",
        "translator.safetensors",
    ):
        assert before[name] == after[name], f"{name} was retrained on resume"


def test_changed_options_are_refused(toy_model):
    code, log = run_cli(
        ["f2p", "train", "--creator", TOY_SPEC, "-o", str(toy_model), "--n", "999", "--size", "16"]
    )
    assert code == 2 and "different options" in log and "n" in log


def test_fit_modes_return_valid_parameters(toy_model, toy, toy_renders):
    f2p = load_f2p(toy_model, creator=TOY_SPEC)
    batch, images = toy_renders
    for mode in ("fast", "search", "both"):
        r = fit(f2p, [images[0]], mode, iters=15, preview_size=None)
        assert isinstance(r, FitResult)
        toy.space.validate(r.params, partial=False)  # named, in range
        assert r.preview.shape == (16, 16, 3) and r.preview.dtype == np.uint8
        assert -1.0 <= r.similarity <= 1.0001 and r.timings["total"] > 0
        np.testing.assert_array_equal(r.preview, toy.render(toy.space.from_dicts([r.params]), 16)[0])
    both = fit(f2p, [images[0]], "both", iters=15)
    assert set(both.scores) == {"fast", "search"} and both.search_cosine == max(both.scores.values())
    # the reported similarity is the calibrated check, not the search objective
    assert (
        both.check_space == "generic"
        and 0 <= both.similarity <= 1
        and both.similarity == both.percentile / 100
    )


def test_fit_learns_the_obvious_parameter(toy_model, toy):
    """The face colour covers most of the image: the fast fit must get it right far above chance (1/4)."""
    f2p = load_f2p(toy_model, creator=TOY_SPEC)
    batch = toy.space.sample(24, np.random.default_rng(7))
    images = toy.render(batch, 16)
    got = [fit(f2p, [im], "fast").params["face_color"] for im in images]
    truth = [d["face_color"] for d in toy.space.to_dicts(batch)]
    assert np.mean([g == t for g, t in zip(got, truth)]) >= 0.6


def test_several_images_average_their_embeddings(toy_model, toy_renders):
    from charforge.f2p.fit import embed_inputs

    f2p = load_f2p(toy_model, creator=TOY_SPEC)
    _, images = toy_renders
    e = embed_inputs(f2p, [images[0], images[1]])
    ref = f2p.embedder.embed(images[:2]).mean(0)
    np.testing.assert_allclose(e, ref / np.linalg.norm(ref), atol=1e-5)


def test_bad_mode_and_empty_input(toy_model):
    f2p = load_f2p(toy_model, creator=TOY_SPEC)
    with pytest.raises(UserError, match="unknown fit mode"):
        fit(f2p, [np.zeros((16, 16, 3), np.uint8)], "magic")
    with pytest.raises(UserError, match="at least one image"):
        fit(f2p, [], "fast")


def test_too_few_samples_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="at least 20"):
        train_f2p(tmp_path / "m", TrainConfig(creator=TOY_SPEC, n=10, size=16))


def test_identity_embedder_pipeline_skips_detection_on_renders(tmp_path, toy_renders):
    """dlib finds no face in toy renders: training embeds them whole; fitting one needs --no-detect."""
    cfg = TrainConfig(
        creator=TOY_SPEC,
        embedder="identity",
        n=20,
        size=32,
        hidden=32,
        imitator_steps=20,
        translator_steps=20,
        finetune_steps=5,
        n_search=4,
        search={"iters": 3},
    )
    train_f2p(tmp_path / "m", cfg)
    _, images = toy_renders
    with pytest.raises(UserError, match="no face found"):
        fit(load_f2p(tmp_path / "m", creator=TOY_SPEC), [images[0]], "fast")
    r = fit(load_f2p(tmp_path / "m", detect=False, creator=TOY_SPEC), [images[0]], "fast")
    assert load_f2p(tmp_path / "m").embedder.dim == 128 and -1 <= r.similarity <= 1.0001


def test_refine_on_real_renders_never_lowers_the_cosine(toy_model, toy_renders):
    from charforge.f2p.refine import refine

    f2p = load_f2p(toy_model, creator=TOY_SPEC)
    _, images = toy_renders
    target = f2p.embedder.embed(images[:1])[0]
    start = f2p.space.encode(f2p.space.defaults())[0]
    base = float(f2p.embedder.embed(f2p.creator.render(f2p.space.decode(start[None]), 16))[0] @ target)
    vec, score = refine(f2p, start, target, f2p.embedder, sweeps=2)
    again = float(f2p.embedder.embed(f2p.creator.render(f2p.space.decode(vec[None]), 16))[0] @ target)
    assert score >= base - 1e-6 and abs(score - again) < 1e-5
    f2p.space.validate(f2p.space.to_dicts(f2p.space.decode(vec[None]))[0], partial=False)
