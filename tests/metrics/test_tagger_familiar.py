"""The tag estimator's familiarity model (charforge.tagger.familiar, charforge.train.familiar, `charforge tagger
familiarity`): pictures unlike the fitting sets are flagged, their tags are unknown where the estimator may
abstain, and `data import --estimate-tags` estimates none for them and says so."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_toydata import make_toy_dataset, toy_schema
from PIL import Image

from charforge.errors import UserError
from charforge.models.io import load_model, save_model
from charforge.tagger.net import decide_or_unknown, load_tagger, save_tagger


def _tagger(path, schema=None):
    from charforge.tagger.net import TaggerConfig, TaggerNet

    schema = schema or toy_schema()
    torch.manual_seed(0)
    net = TaggerNet(TaggerConfig(n_tags=len(schema), image_size=16, channels=4, feat_dim=8))
    return save_tagger(path, net, schema, extra={"calibration": {"temperature": [1.0] * len(schema)}})


def _noise(n: int, size: int = 16, seed: int = 5) -> np.ndarray:
    """Pictures nothing like the toy renders: coloured noise."""
    return (np.random.default_rng(seed).random((n, size, size, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from charforge.train.familiar import fit_familiarity

    root = tmp_path_factory.mktemp("familiar")
    mp = pytest.MonkeyPatch()
    mp.setenv("CHARFORGE_CACHE", str(root / "cache"))
    make_toy_dataset(root / "fit", n=80, size=16, seed=0)
    make_toy_dataset(root / "line", n=40, size=16, seed=1)
    make_toy_dataset(root / "check", n=40, size=16, seed=2)
    src = _tagger(root / "t.safetensors")
    res = fit_familiarity(
        src, [root / "fit"], [root / "line"], root / "f.safetensors", components=8, progress=False
    )
    yield root, src, res
    mp.undo()


def test_the_model_separates_a_gaussian_from_points_far_from_it():
    from charforge.train.familiar import fit_model

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(6, 1280))
    x = rng.normal(size=(600, 6)) @ basis + 0.1 * rng.normal(size=(600, 1280))
    held = rng.normal(size=(300, 6)) @ basis + 0.1 * rng.normal(size=(300, 1280))
    far = rng.normal(size=(100, 6)) @ basis + 0.1 * rng.normal(size=(100, 1280)) + 3.0 * rng.normal(size=1280)
    m = fit_model(x[:400], x[400:], components=6, quantile=0.99)
    assert m.components.shape == (6, 1280) and m.variances.shape == (6,)
    np.testing.assert_allclose(m.components @ m.components.T, np.eye(6), atol=1e-8)  # orthonormal
    assert m.unfamiliar(held).mean() <= 0.05  # fresh pictures of the same kind: about 1 in 100
    assert m.unfamiliar(far).mean() == 1.0
    assert m.score(far).min() > m.score(held).max()
    with pytest.raises(UserError, match="too few for 64 components"):
        fit_model(x[:100], x[400:], components=64)
    with pytest.raises(UserError, match="--quantile"):
        fit_model(x[:400], x[400:], components=6, quantile=1.0)


def test_decide_or_unknown_leaves_every_tag_of_an_unfamiliar_picture_unknown():
    schema = toy_schema()
    p = np.full((3, len(schema)), 0.97, np.float32)
    tags, unknown = decide_or_unknown(p, schema, unfamiliar=np.array([False, True, False]))
    assert not unknown[0].any() and unknown[1].all() and tags[1].sum() == 0
    np.testing.assert_array_equal(tags[0], tags[2])
    same, _ = decide_or_unknown(p, schema)  # without the model: unchanged
    np.testing.assert_array_equal(same[0], tags[0])


def test_a_fitted_file_flags_noise_and_keeps_renders(fitted):
    from charforge.data.packed import load_packed

    root, src, res = fitted
    t = load_tagger(res.path)
    assert t.familiarity is not None and load_tagger(src).familiarity is None
    assert res.fitted == 80 and res.line_images == 40 and res.line == pytest.approx(t.familiarity.line)
    renders = np.asarray(load_packed(root / "check").images)
    p_with = t.predict_proba(renders)
    assert t.last_unfamiliar.mean() <= 0.1, t.last_familiarity
    t.predict_proba(_noise(20))
    assert t.last_unfamiliar.all() and (t.last_familiarity > t.familiarity.line).all()
    # the probabilities themselves are untouched; only abstaining decisions change
    np.testing.assert_allclose(p_with, load_tagger(src).predict_proba(renders), atol=1e-6)
    tags, unknown = t.predict_tags(_noise(4), abstain=True)
    assert unknown.all() and tags.sum() == 0


def test_readings_from_several_threads_keep_their_own_familiarity(fitted):
    """`Tagger.read` returns what one call saw (probabilities, familiarity, hair) instead of keeping it on the
    Tagger, so the studio's request threads can share one: renders and noise read at once, from 4 threads
    each, get exactly the answers they get alone, and `read` leaves `last_*` alone."""
    from concurrent.futures import ThreadPoolExecutor

    from charforge.data.packed import load_packed

    root, _, res = fitted
    t = load_tagger(res.path)
    renders, noise = np.asarray(load_packed(root / "check").images)[:6], _noise(6)
    alone = {k: t.read(x) for k, x in (("renders", renders), ("noise", noise))}
    assert (
        t.last_familiarity is None
        and not alone["renders"].unfamiliar.all()
        and alone["noise"].unfamiliar.all()
    )
    with ThreadPoolExecutor(4) as pool:
        jobs = [(k, pool.submit(t.read, x)) for k, x in (("renders", renders), ("noise", noise)) * 4]
        for k, job in jobs:
            got = job.result()
            np.testing.assert_array_equal(got.familiarity, alone[k].familiarity)
            np.testing.assert_array_equal(got.proba, alone[k].proba)
            np.testing.assert_array_equal(
                t.tags_of(got, abstain=True)[1], t.tags_of(alone[k], abstain=True)[1]
            )
    _, meta = load_model(res.path, kind="tagger")
    fam = meta["familiarity"]
    assert fam["components"] == 8 and fam["quantile"] == 0.99 and fam["fitted_on"][0]["images"] == 80
    assert fam["line_on"][0]["images"] == 40 and "line" in fam["above_line"]


def test_refitting_replaces_the_model_and_damage_is_a_message(fitted, tmp_path):
    from charforge.train.familiar import fit_familiarity

    root, _, res = fitted
    again = fit_familiarity(
        res.path, [root / "fit"], [root / "line"], tmp_path / "g.safetensors", components=4
    )
    tensors, _ = load_model(again.path, kind="tagger")
    assert tensors["familiar.components"].shape[0] == 4  # replaced, not stacked
    tensors, meta = load_model(res.path, kind="tagger")
    del tensors["familiar.variances"]
    extra = {k: v for k, v in meta.items() if not k.startswith("charforge_")}
    bad = save_model(
        tmp_path / "bad.safetensors", tensors, kind="tagger", config=meta["charforge_config"], extra=extra
    )
    with pytest.raises(
        UserError, match="bad.safetensors: the familiarity model stored in this tagger file is incomplete"
    ):
        load_tagger(bad)
    for kw, msg in (
        ({"components": 0}, "--components 0"),
        ({"quantile": 1.0}, "--quantile"),
        ({"size": 8}, "--size 8"),
    ):
        with pytest.raises(UserError, match=msg):  # refused before any feature is read
            fit_familiarity(res.path, [root / "nope"], [root / "line"], tmp_path / "k.safetensors", **kw)
    with pytest.raises(UserError, match="--line-on: 5 images are too few"):
        fit_familiarity(
            res.path, [root / "fit"], [root / "line"], tmp_path / "h.safetensors", components=1, limit=5
        )


def test_cli_prints_the_line_and_the_share_above_it(fitted, tmp_path, capsys):
    from charforge.cli import main

    root, src, _ = fitted
    out = tmp_path / "cli.safetensors"
    main(["tagger", "familiarity", str(src), "--on", str(root / "fit"), "--line-on", str(root / "line")]
         + ["-o", str(out), "--components", "8", "--quantile", "0.95"])  # fmt: skip
    text = capsys.readouterr().out
    assert "fitted on    80 images" in text and "above line   line:" in text and str(out) in text
    assert load_tagger(out).familiarity.meta["quantile"] == 0.95
    # `tagger predict` says when its answer is a guess
    Image.fromarray(_noise(1)[0]).save(tmp_path / "noise.png")
    main(["tagger", "predict", str(out), str(tmp_path / "noise.png")])
    line = capsys.readouterr().out
    assert "noise.png:" in line and "unlike the art this estimator learned from" in line


def _girls_estimator(res, tmp_path):
    """The import's schema is make.girls.moe's: a tagger of that schema carrying the model fitted above."""
    from charforge.core.tags import make_girls_moe_schema
    from charforge.train.thresholds import copy_tagger_file

    tensors, meta = load_model(res.path, kind="tagger")
    model = {k: v for k, v in tensors.items() if k.startswith("familiar.")}
    girls = _tagger(tmp_path / "girls.safetensors", make_girls_moe_schema())
    edit = lambda extra: extra.update(familiarity=meta["familiarity"])  # noqa: E731
    return copy_tagger_file(girls, tmp_path / "est.safetensors", edit, None, model)


def _folder(root, tmp_path, name, n_renders, n_noise):
    from charforge.data.packed import load_packed

    src = tmp_path / name
    src.mkdir()
    renders = np.asarray(load_packed(root / "check").images)[:n_renders]
    for i, im in enumerate(renders):
        Image.fromarray(im).save(src / f"render{i}.png")
    for i, im in enumerate(_noise(n_noise)):
        Image.fromarray(im).save(src / f"noise{i}.png")
    return src, renders


def _imported(tmp_path, out, src, est, **kw):
    import json

    from charforge.data.importer import import_folder
    from charforge.data.packed import load_packed

    r = import_folder(src, tmp_path / out, size=16, min_size=16, estimate_tags=est, progress=False, **kw)
    report = json.loads((tmp_path / out / "import_report.json").read_text())
    ds = load_packed(tmp_path / out)
    rows = {it["source"].split("/")[-1]: row for it, row in zip(ds.manifest["items"], np.asarray(ds.tags))}
    return r, report, rows


def test_import_estimates_no_tags_for_mostly_unfamiliar_art_and_says_so(fitted, tmp_path):
    root, _, res = fitted
    est = _girls_estimator(res, tmp_path)
    src, renders = _folder(root, tmp_path, "art", 2, 8)  # mostly unlike the fitting sets
    t = load_tagger(est)
    t.predict_proba(renders)
    familiar_renders = int((~t.last_unfamiliar).sum())
    r, report, rows = _imported(tmp_path, "out", src, est)
    flagged = {u["path"] for u in report["unfamiliar"]}
    assert {f"noise{i}.png" for i in range(8)} <= flagged and len(flagged) == 10 - familiar_renders
    assert all(u["score_over_line"] > 1 and u["estimated"] is None for u in report["unfamiliar"])
    warn = [w for w in r.warnings if "estimated no tags for them" in w]
    assert warn and warn[0].startswith(f"{len(flagged)} of 10") and "--tags" in warn[0]
    for n in flagged:
        assert rows[n].sum() == 0, n  # no guess: every group unknown, no independent tag claimed
    assert (
        r.withheld == len(flagged) and f"tagger: {len(flagged)} left unknown as unfamiliar art" in r.summary()
    )
    md = (tmp_path / "out" / "import_report.md").read_text()
    assert "## Unfamiliar art" in md and "| noise0.png |" in md and "not estimated" in md
    # --keep-unfamiliar: estimated anyway, still listed, and the warning says so
    r2, report2, rows2 = _imported(tmp_path, "kept", src, est, keep_unfamiliar=True)
    assert {u["path"] for u in report2["unfamiliar"]} == flagged
    assert all(u["estimated"] == "--keep-unfamiliar" for u in report2["unfamiliar"])
    assert any("estimated anyway (--keep-unfamiliar)" in w for w in r2.warnings)
    assert not any("estimated no tags" in w for w in r2.warnings)
    assert sum(int(rows2[n].sum()) for n in flagged) > 0


def test_a_few_unfamiliar_images_among_familiar_ones_are_estimated_and_listed(fitted, tmp_path):
    root, _, res = fitted
    est = _girls_estimator(res, tmp_path)
    src, renders = _folder(root, tmp_path, "art", 12, 2)
    t = load_tagger(est)
    t.predict_proba(renders)
    assert (~t.last_unfamiliar).sum() >= 8  # the renders are mostly familiar: the noise is the minority
    r, report, rows = _imported(tmp_path, "out", src, est)
    flagged = {u["path"] for u in report["unfamiliar"]}
    assert {"noise0.png", "noise1.png"} <= flagged
    assert all(u["estimated"] == "among familiar images" for u in report["unfamiliar"])
    assert any("sit among images it knows" in w for w in r.warnings)
    assert r.withheld == 0 and "left unknown" not in r.summary()
    assert not any("estimated no tags" in w for w in r.warnings)
    assert sum(int(rows[n].sum()) for n in flagged) > 0


def test_familiarity_at_another_size_than_the_probe_reads_its_own_features(fitted, tmp_path, monkeypatch):
    import charforge.tagger.probe as probe_mod
    from charforge.train.familiar import fit_familiarity

    root, src, _ = fitted
    res = fit_familiarity(
        src, [root / "fit"], [root / "line"], tmp_path / "s.safetensors", components=4, size=64
    )
    t = load_tagger(res.path)
    assert t.familiarity.size == 64 and t.familiarity.meta["size"] == 64
    seen = []
    real = probe_mod.probe_features
    monkeypatch.setattr(
        probe_mod, "probe_features", lambda *a, **k: seen.append(k.get("size")) or real(*a, **k)
    )
    t.predict_proba(_noise(3))
    assert seen == [64] and t.last_unfamiliar.all()


def test_thresholds_fitted_on_unfamiliar_art_say_how_to_import_it(fitted, tmp_path):
    from charforge.data.packed import write_packed
    from charforge.train.thresholds import fit_tagger_thresholds

    root, _, res = fitted
    schema = toy_schema()
    tags = schema.sample_training(40, np.random.default_rng(3)).astype(np.uint8)
    noise = write_packed(tmp_path / "noise", _noise(40), tags, schema).root
    said = []
    fit_tagger_thresholds(res.path, [noise], tmp_path / "th.safetensors", parts="none", log=said.append)
    note = [m for m in said if "familiarity line" in m]
    assert note and "100%" in note[0] and "--keep-unfamiliar" in note[0]
    said.clear()
    fit_tagger_thresholds(
        res.path, [root / "check"], tmp_path / "th2.safetensors", parts="none", log=said.append
    )
    assert not any("familiarity line" in m for m in said)
