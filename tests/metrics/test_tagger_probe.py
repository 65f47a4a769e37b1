"""The tag estimator's probe on ImageNet features (charforge.tagger.probe, charforge.train.probe, `charforge
tagger probe`): fitted on labelled images, stored in a copy of the tagger file, blended with the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_toydata import make_toy_dataset, toy_schema

from charforge.errors import UserError
from charforge.models.io import load_model, save_model
from charforge.tagger.net import load_tagger, save_tagger


def _untrained_tagger(path):
    """A calibrated tagger that knows nothing (random weights): whatever reads the hat bar is the probe."""
    from charforge.tagger.net import TaggerConfig, TaggerNet

    schema = toy_schema()
    torch.manual_seed(0)
    net = TaggerNet(TaggerConfig(n_tags=len(schema), image_size=16, channels=4, feat_dim=8))
    bias = [0.0] * len(schema)
    bias[schema.index("hat")], bias[schema.index("smile")] = 0.7, -0.4
    cal = {"temperature": [1.0] * len(schema), "bias": bias}
    return save_tagger(path, net, schema, extra={"calibration": cal})


@pytest.fixture(scope="module")
def probe_setup(tmp_path_factory):
    from charforge.train.probe import fit_probe

    root = tmp_path_factory.mktemp("probe")
    mp = pytest.MonkeyPatch()
    mp.setenv("CHARFORGE_CACHE", str(root / "cache"))  # the features cache, per test run
    make_toy_dataset(root / "fit", n=60, size=16, seed=0)
    make_toy_dataset(root / "check", n=40, size=16, seed=1)
    src = _untrained_tagger(root / "t.safetensors")
    res = fit_probe(
        src, [root / "fit"], root / "p.safetensors", tags=("hat",), crops=("full", "top"), blend=1.0, c=0.1
    )
    yield root, src, res
    mp.undo()


def test_the_probe_reads_a_tag_the_network_cannot(probe_setup):
    from charforge.data.packed import load_packed

    root, src, res = probe_setup
    check = load_packed(root / "check")
    schema = toy_schema()
    y = np.asarray(check.tags)[:, schema.index("hat")] > 0
    before, after = load_tagger(src), load_tagger(res.path)
    assert before.probe is None and after.probe is not None and after.probe.tags == ["hat"]
    assert after.probe.crops == ["full", "top"] and after.probe.blend == 1.0
    p_before = before.predict_proba(np.asarray(check.images))
    p_after = after.predict_proba(np.asarray(check.images))
    acc = lambda p: float(((p[:, schema.index("hat")] >= 0.5) == y).mean())  # noqa: E731
    assert acc(p_after) >= 0.9 > acc(p_before) + 0.2, (acc(p_before), acc(p_after))
    # the network's weights and every other column are untouched
    a, b = before.net.state_dict(), after.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    others = [j for j in range(len(schema)) if j != schema.index("hat")]
    np.testing.assert_allclose(p_after[:, others], p_before[:, others], atol=1e-6)
    # the hat's fitted offset is dropped (its probabilities moved), smile's stays
    bias = after.bias
    assert bias[schema.index("hat")] == 0.0 and bias[schema.index("smile")] == pytest.approx(-0.4)
    row = res.rows[0]
    assert row["tag"] == "hat" and row["n"] == 60 and 0 < row["positives"] < 60
    _, meta = load_model(res.path, kind="tagger")
    assert (
        meta["probe"]["fitted_on"][0]["images"] == 60 and len(meta["probe"]["fitted_on"][0]["sha256"]) == 64
    )


def test_blend_mixes_log_odds_and_thresholds_keep_the_probe(probe_setup, tmp_path):
    from charforge.data.packed import load_packed
    from charforge.train.thresholds import fit_tagger_thresholds

    root, src, res = probe_setup
    schema = toy_schema()
    images = np.asarray(load_packed(root / "check").images)[:12]
    full = load_tagger(res.path)
    full.bias = None
    net_only = load_tagger(src)
    net_only.bias = None
    z_probe = full.probe.logits(images)[:, 0]
    full.probe.blend = 0.25
    p = net_only.predict_proba(images)[:, schema.index("hat")].astype(np.float64)
    z = 0.75 * np.log(p / (1 - p)) + 0.25 * z_probe
    np.testing.assert_allclose(
        full.predict_proba(images)[:, schema.index("hat")], 1 / (1 + np.exp(-z)), atol=1e-5
    )
    # thresholds fitted on a probed file write a copy that still holds the probe
    path, *_ = fit_tagger_thresholds(
        res.path, [root / "check"], tmp_path / "th.safetensors", parts="none", log=lambda m: None
    )
    again = load_tagger(path)
    assert again.probe is not None and again.probe.tags == ["hat"]


def test_bad_input_is_a_message(probe_setup, tmp_path):
    from charforge.cli import main
    from charforge.train.probe import fit_probe

    root, src, res = probe_setup
    with pytest.raises(UserError, match="not independent tags"):
        fit_probe(src, [root / "fit"], tmp_path / "x.safetensors", tags=("red hair",))
    with pytest.raises(UserError, match="already holds a probe; --replace"):
        fit_probe(res.path, [root / "fit"], tmp_path / "x.safetensors", tags=("hat",))
    with pytest.raises(UserError, match="--crops"):
        fit_probe(src, [root / "fit"], tmp_path / "x.safetensors", crops=("hair",))
    with pytest.raises(UserError, match="at least 20 of each"):
        fit_probe(src, [root / "fit"], tmp_path / "x.safetensors", tags=("hat",), limit=8)
    with pytest.raises(UserError, match="is the tagger itself"):
        fit_probe(src, [root / "fit"], src, tags=("hat",))
    # a damaged probe in a file is an error naming the file, not a traceback
    tensors, meta = load_model(res.path, kind="tagger")
    del tensors["probe.bias"]
    extra = {
        k: v for k, v in meta.items() if k not in ("charforge_kind", "charforge_config", "charforge_version")
    }
    bad = save_model(
        tmp_path / "bad.safetensors", tensors, kind="tagger", config=meta["charforge_config"], extra=extra
    )
    with pytest.raises(
        UserError, match="bad.safetensors: the probe stored in this tagger file is incomplete"
    ):
        load_tagger(bad)
    with pytest.raises(SystemExit) as e:
        main(
            [
                "tagger",
                "probe",
                str(src),
                "--on",
                str(root / "fit"),
                "-o",
                str(tmp_path / "y.safetensors"),
                "--tags",
                "smile,nope",
            ]
        )
    assert e.value.code == 2


def test_cli_writes_the_probed_copy(probe_setup, tmp_path, capsys):
    from charforge.cli import main

    root, src, _ = probe_setup
    out = tmp_path / "cli.safetensors"
    main(
        ["tagger", "probe", str(src), "--on", str(root / "fit"), "-o", str(out), "--tags", "hat"]
        + ["--crops", "top", "--blend", "0.5", "--parts", "none"]
    )
    text = capsys.readouterr().out
    assert "hat" in text and "blended" in text and "tagger thresholds" in text
    t = load_tagger(out)
    assert t.probe.crops == ["top"] and t.probe.blend == 0.5


def test_refitting_on_the_same_sets_reads_the_features_cache(probe_setup, tmp_path, monkeypatch):
    import charforge.models.features as features
    from charforge.train.probe import fit_probe

    root, src, res = probe_setup
    cached = sorted(p.name for p in (root / "cache" / "probe").glob("*.npy"))
    assert len(cached) >= 2 and {n.split("-")[0] for n in cached} >= {"full", "top"}
    monkeypatch.setattr(features, "generic_features", lambda *a, **k: pytest.fail("features recomputed"))
    again = fit_probe(
        src,
        [root / "fit"],
        tmp_path / "q.safetensors",
        tags=("hat",),
        crops=("full", "top"),
        blend=1.0,
        c=0.1,
    )
    np.testing.assert_allclose(load_tagger(again.path).probe.weight, load_tagger(res.path).probe.weight)


def test_a_smaller_feature_size_is_stored_used_and_cached_apart(probe_setup, tmp_path):
    from charforge.data.packed import load_packed
    from charforge.models.features import generic_features
    from charforge.tagger.probe import probe_features
    from charforge.train.probe import fit_probe

    root, src, res = probe_setup
    small = fit_probe(
        src,
        [root / "fit"],
        tmp_path / "s.safetensors",
        tags=("hat",),
        crops=("full",),
        blend=1.0,
        c=0.1,
        size=64,
    )
    t = load_tagger(small.path)
    assert t.probe.size == 64 and load_tagger(res.path).probe.size == 224  # a file without "size" reads 224
    _, meta = load_model(small.path, kind="tagger")
    assert meta["probe"]["size"] == 64
    assert list(
        (root / "cache" / "probe").glob("full@64-*.npy")
    )  # its own cache entries, beside the 224 ones
    images = np.asarray(load_packed(root / "check").images)[:8]
    np.testing.assert_allclose(
        t.probe.logits(images), t.probe.logits(None, features=generic_features(images, size=64)), atol=1e-4
    )
    assert not np.allclose(probe_features(images, ("full",), size=64), probe_features(images, ("full",)))
    with pytest.raises(UserError, match="feature input size 8"):
        generic_features(images, size=8)


def test_replace_fits_a_new_probe_on_the_networks_own_answers(probe_setup, tmp_path):
    from charforge.train.probe import fit_probe

    root, src, res = probe_setup
    again = fit_probe(
        res.path, [root / "fit"], tmp_path / "r.safetensors", tags=("hat",), crops=("top",), blend=0.5, c=0.1,
        replace=True,
    )  # fmt: skip
    t = load_tagger(again.path)
    assert t.probe.crops == ["top"] and t.probe.blend == 0.5
    tensors, _ = load_model(again.path, kind="tagger")
    assert tensors["probe.weight"].shape[1] == 1280  # the new probe's, not the old one's (2 crops)
    # its fit rows compare with the network alone, as a fit on the probe-free file does
    fresh = fit_probe(
        src, [root / "fit"], tmp_path / "f.safetensors", tags=("hat",), crops=("top",), blend=0.5, c=0.1
    )
    assert again.rows[0]["f1_network"] == pytest.approx(fresh.rows[0]["f1_network"])
    np.testing.assert_allclose(t.probe.weight, load_tagger(fresh.path).probe.weight, atol=1e-6)
