"""Per-tag decision thresholds (charforge.train.thresholds, `charforge tagger thresholds`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from charforge.core.tags import make_girls_moe_schema


def test_offsets_move_the_decision_point_to_the_fitted_threshold():
    """With the offset for threshold t, the shifted probability passes 0.5 exactly where the original passes t;
    groups are untouched."""
    from charforge.tagger.net import shift_decisions
    from charforge.train.thresholds import offsets

    schema = make_girls_moe_schema()
    rng = np.random.default_rng(0)
    proba = rng.random((500, len(schema))).astype(np.float32)
    fitted = {"glasses": {"threshold": 0.225}, "hat": {"threshold": 0.8}}
    bias = offsets(fitted, schema)
    shifted = shift_decisions(proba, bias, schema)
    for tag, t in (("glasses", 0.225), ("hat", 0.8)):
        j = schema.index(tag)
        np.testing.assert_array_equal(shifted[:, j] >= 0.5, proba[:, j] >= t)
    others = [j for j in range(len(schema)) if schema.tags[j] not in fitted]
    np.testing.assert_allclose(shifted[:, others], proba[:, others], atol=1e-6)
    assert shift_decisions(proba, None, schema) is proba
    # an uncalibrated tagger decides at 0.25: the offset keeps that as the decision point
    low = shift_decisions(proba, offsets({"smile": {"threshold": 0.6}}, schema, base=0.25), schema)
    j = schema.index("smile")
    np.testing.assert_array_equal(low[:, j] >= 0.25, proba[:, j] >= 0.6)


def test_fit_finds_the_best_threshold_and_ignores_sets_that_cannot_judge():
    from charforge.train.thresholds import GRID, fit_thresholds

    schema = make_girls_moe_schema()
    j = schema.index("glasses")
    n = 400
    rng = np.random.default_rng(1)
    y = rng.random(n) < 0.4
    proba = np.full((n, len(schema)), 0.5, np.float32)
    # wearers score 0.2-0.4, others 0.0-0.15: at 0.5 nothing is on (F1 0); any threshold in (0.15, 0.2] is perfect
    proba[:, j] = np.where(y, 0.2 + 0.2 * rng.random(n), 0.15 * rng.random(n))
    labels = np.full((n, len(schema)), np.nan, np.float32)
    labels[:, j] = y
    few = labels.copy()  # a second set with 5 wearers only: not used for glasses
    few[:, j] = 0
    few[:5, j] = 1
    out = fit_thresholds([proba, proba], [labels, few], ["a", "b"], schema, tags=["glasses", "hat"])
    rec = out["glasses"]
    assert 0.15 < rec["threshold"] <= 0.2 and rec["threshold"] in GRID
    assert rec["sets"]["a"]["f1_at_base"] == 0 and rec["sets"]["a"]["f1_at_threshold"] == 1.0
    assert rec["sets"]["b"]["used"] is False and rec["sets"]["b"]["positives"] == 5
    assert out["hat"]["threshold"] == 0.5 and "no set" in out["hat"]["note"]  # hat is unlabelled everywhere
    # ties go to the threshold nearest the base: a perfectly separated tag stays at 0.5
    proba[:, j] = np.where(y, 0.99, 0.01)
    assert fit_thresholds([proba], [labels], ["a"], schema, tags=["glasses"])["glasses"]["threshold"] == 0.5


def _tiny_tagger(path, schema):
    from charforge.tagger.net import TaggerConfig, TaggerNet, save_tagger

    torch.manual_seed(0)
    net = TaggerNet(TaggerConfig(n_tags=len(schema), image_size=16, channels=4, feat_dim=8))
    temp = [1.0] * len(schema)
    return save_tagger(path, net, schema, extra={"calibration": {"temperature": temp}})


def test_cli_writes_a_copy_that_decides_at_the_fitted_thresholds(tmp_path, capsys):
    """End to end: a tiny calibrated tagger, a packed dataset and an --extra style .npz as the labelled sets; the
    copy has the same weights, the offsets and the record in its metadata, decides at the fitted thresholds when
    loaded, and a plot is written; bad input is a message naming the option."""
    from charforge.cli import main
    from charforge.data.build import build_from_creator
    from charforge.models.io import load_model
    from charforge.tagger.net import load_tagger

    schema = make_girls_moe_schema()
    src = _tiny_tagger(tmp_path / "t.safetensors", schema)
    build_from_creator(tmp_path / "ds", creator="builtin", n=40, size=16, seed=3, show_progress=False)
    rng = np.random.default_rng(0)
    labels = np.full((30, 2), np.nan, np.float32)
    labels[:, 0] = rng.random(30) < 0.5  # hat
    labels[:, 1] = rng.random(30) < 0.5  # glasses
    np.savez(
        tmp_path / "x.npz",
        images=rng.integers(0, 256, (30, 16, 16, 3), dtype=np.uint8),
        labels=labels,
        tags=np.array(["hat", "glasses"]),
    )
    out = tmp_path / "fitted.safetensors"
    main(
        ["tagger", "thresholds", str(src), "--on", str(tmp_path / "ds"), "--on", str(tmp_path / "x.npz")]
        + ["-o", str(out), "--parts", "none"]
    )
    text = capsys.readouterr().out
    assert "glasses" in text and "threshold" in text and out.with_suffix(".png").is_file()
    t0, meta0 = load_model(src, kind="tagger")
    t1, meta1 = load_model(out, kind="tagger")
    assert all(torch.equal(t0[k], t1[k]) for k in t0)
    rec = meta1["calibration"]["thresholds"]
    assert [s["name"] for s in rec["fitted_on"]] == ["ds", "x"]
    assert rec["fitted_on"][1]["images"] == 30 and "part_reader" not in meta1
    assert meta1["calibration"]["temperature"] == meta0["calibration"]["temperature"]
    before, after = load_tagger(src), load_tagger(out)
    assert after.bias is not None and after.bias.shape == (len(schema),)
    images = rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    p0, p1 = before.predict_proba(images), after.predict_proba(images)
    for tag, r in rec["tags"].items():
        j = schema.index(tag)
        np.testing.assert_array_equal(p1[:, j] >= 0.5, p0[:, j] >= r["threshold"])
    g = schema.group_slices()[0]
    np.testing.assert_allclose(p1[:, g], p0[:, g], atol=1e-6)

    for bad, msg in (
        (["--on", str(tmp_path / "nope.txt")], "nope.txt: not a packed dataset folder or an .npz"),
        (["--on", str(tmp_path / "x.npz"), "--tags", "hair"], "'hair' is not an independent tag"),
        (["--on", str(tmp_path / "x.npz"), "--parts", "mine"], "--parts 'mine'"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["tagger", "thresholds", str(src), "-o", str(tmp_path / "y.safetensors"), *bad])
        err = capsys.readouterr().err
        assert e.value.code != 0 and msg in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["tagger", "thresholds", str(src), "--on", str(tmp_path / "x.npz"), "-o", str(src)])
    assert "is the tagger itself" in capsys.readouterr().err


def test_a_file_fitted_with_the_shipped_reader_loads_with_it(tmp_path):
    from charforge.tagger.net import load_tagger
    from charforge.tagger.parts import default_parts_path
    from charforge.train.thresholds import write_thresholded

    if default_parts_path() is None:
        pytest.skip("this install ships no part reader")
    schema = make_girls_moe_schema()
    src = _tiny_tagger(tmp_path / "t.safetensors", schema)
    out = write_thresholded(src, tmp_path / "f.safetensors", np.zeros(len(schema)), {}, "shipped")
    assert load_tagger(out).parts is not None
    assert load_tagger(out, parts=False).parts is None
    assert load_tagger(src).parts is None
