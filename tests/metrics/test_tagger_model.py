"""The tagger: schema-aware loss and decisions, training report, load/save, features, resume."""

import json

import numpy as np
import pytest
import torch
from metrics_toydata import toy_schema
from safetensors import safe_open

from charforge.data.packed import load_packed
from charforge.errors import UserError
from charforge.models.io import save_model
from charforge.tagger.net import (
    TaggerConfig,
    TaggerNet,
    decide_tags,
    load_tagger,
    tag_loss,
    tag_probabilities,
)
from charforge.train.tagger import TaggerTrainOptions, split_indices, train_tagger


def test_loss_masks_rows_without_a_group_tag():
    schema = toy_schema()  # hair (3), eyes (2), hat, smile
    logits = torch.randn(2, len(schema), requires_grad=True)
    targets = torch.tensor(
        [[1, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 1, 0, 1]], dtype=torch.float32
    )  # row 1: no hair tag
    tag_loss(logits, targets, schema).backward()
    hair = schema.group_slices()[0]
    assert torch.all(logits.grad[1, hair] == 0)  # unlabelled group: no gradient
    assert torch.any(logits.grad[0, hair] != 0)
    assert torch.all(logits.grad[:, schema.independent_slice] != 0)  # BCE on every row


def test_probabilities_and_decisions_follow_the_schema():
    schema = toy_schema()
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0, 3.0, -1.5, -0.5]])
    p = tag_probabilities(logits, schema).numpy()
    for sl in schema.group_slices():
        assert p[0, sl].sum() == pytest.approx(1.0, abs=1e-6)
    # sigmoid(-1.5) = 0.18 < 0.25 (off), sigmoid(-0.5) = 0.38 >= 0.25 (on): the paper's 0.25 threshold
    np.testing.assert_array_equal(decide_tags(p, schema), [[1, 0, 0, 0, 1, 0, 1]])


def test_trained_tagger_reads_the_toy_tags(toy_tagger, toy_tagger_dir, toy_data_dir):
    report = json.loads((toy_tagger_dir / "report.json").read_text())
    assert report["summary"]["mean_precision"] >= 0.9 and report["summary"]["mean_recall"] >= 0.9
    for name in ("report.md", "confusion_hair_color.png", "confusion_eye_color.png", "tagger.safetensors"):
        assert (toy_tagger_dir / name).stat().st_size > 0
    assert not (toy_tagger_dir / "checkpoint.safetensors").exists()
    data = load_packed(toy_data_dir)
    pred = toy_tagger.predict_tags(data.images)
    assert (pred == data.tags).all(axis=1).mean() >= 0.9  # whole tag vector right on >= 90 % of images
    proba = toy_tagger.predict_proba(data.images[:8])
    assert proba.shape == (8, 7) and np.all((proba >= 0) & (proba <= 1))


def test_features_are_the_penultimate_layer(toy_tagger, toy_data_dir):
    imgs = np.asarray(load_packed(toy_data_dir).images[:10])
    f = toy_tagger.features(imgs)
    assert f.shape == (10, 32) and f.dtype == np.float32
    np.testing.assert_allclose(f, toy_tagger.features(imgs), rtol=0, atol=0)
    head = toy_tagger.net.head
    logits = torch.from_numpy(f) @ head.weight.T + head.bias
    np.testing.assert_allclose(logits.detach().numpy(), toy_tagger.logits(imgs), rtol=1e-4, atol=1e-4)
    # any input size is resized to the tagger's own
    big = np.repeat(np.repeat(imgs, 2, axis=1), 2, axis=2)  # (10, 32, 32, 3)
    assert toy_tagger.predict_tags(big).shape == (10, 7)


def test_split_is_deterministic_and_disjoint():
    a1, h1 = split_indices(100, 0.1, 3)
    a2, h2 = split_indices(100, 0.1, 3)
    np.testing.assert_array_equal(h1, h2)
    assert len(h1) == 10 and not set(a1) & set(h1) and len(a1) + len(h1) == 100
    assert not np.array_equal(h1, split_indices(100, 0.1, 4)[1])


def test_resume_after_a_kill_matches_an_uninterrupted_run(toy_data_dir, tmp_path, monkeypatch):
    import charforge.train.tagger as tt

    kw = dict(image_size=16, channels=4, feat_dim=8)
    opts = TaggerTrainOptions(steps=12, batch_size=8, checkpoint_every=5, amp=False)
    full = train_tagger(toy_data_dir, tmp_path / "full", opts=opts, **kw)
    real_batch = tt._batch

    def dying_batch(data, idx, step, o, size):
        if step == 7:
            raise KeyboardInterrupt
        return real_batch(data, idx, step, o, size)

    monkeypatch.setattr(tt, "_batch", dying_batch)
    with pytest.raises(KeyboardInterrupt):
        train_tagger(toy_data_dir, tmp_path / "resumed", opts=opts, **kw)
    assert (tmp_path / "resumed" / "checkpoint.safetensors").exists()  # step 5 was saved
    monkeypatch.setattr(tt, "_batch", real_batch)
    resumed = train_tagger(toy_data_dir, tmp_path / "resumed", opts=opts, **kw)
    a, b = load_tagger(full.path).net.state_dict(), load_tagger(resumed.path).net.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_load_tagger_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="no such tagger"):
        load_tagger(tmp_path / "missing.safetensors")
    with pytest.raises(UserError, match="holds no tagger.safetensors"):
        load_tagger(tmp_path)
    other = tmp_path / "gen.safetensors"
    save_model(other, {"w": torch.zeros(1)}, kind="generator", config={})
    with pytest.raises(UserError, match="expected a 'tagger'"):
        load_tagger(other)
    net = TaggerNet(TaggerConfig(n_tags=7, image_size=16, channels=4, feat_dim=8))
    bad = tmp_path / "bad.safetensors"
    save_model(
        bad,
        net.state_dict(),
        kind="tagger",
        config={"n_tags": 7, "image_size": 16, "channels": 8, "feat_dim": 8},
        extra={"tag_schema": toy_schema().to_dict()},
    )
    with pytest.raises(UserError, match="do not match"):
        load_tagger(bad)


def test_bad_training_arguments(toy_data_dir, tmp_path):
    with pytest.raises(UserError, match="power of two"):
        train_tagger(toy_data_dir, tmp_path / "x", opts=TaggerTrainOptions(steps=1), image_size=48)
    with pytest.raises(UserError, match="no such dataset"):
        train_tagger(tmp_path / "nothing", tmp_path / "y", opts=TaggerTrainOptions(steps=1))
    with pytest.raises(UserError, match="--stem-stride 3"):
        train_tagger(toy_data_dir, tmp_path / "z", opts=TaggerTrainOptions(steps=1), stem_stride=3)


def test_full_resolution_stem_trains(toy_data_dir, tmp_path):
    res = train_tagger(
        toy_data_dir,
        tmp_path / "s1",
        opts=TaggerTrainOptions(steps=2, batch_size=8),
        image_size=16,
        channels=4,
        feat_dim=8,
        stem_stride=1,
    )
    from charforge.tagger.net import load_tagger

    t = load_tagger(res.path)
    assert t.net.cfg.stem_stride == 1 and len(t.net.cfg.stage_widths()) == 2  # 16 -> 8 -> 4


def test_degrade_keeps_colours_and_is_seeded():
    from charforge.models.augment import degrade

    x = torch.zeros(8, 3, 16, 16)
    x[:, 0] = 0.8  # a flat red-ish picture: blur and resampling must not change its colour
    x[:, 1:] = -0.6
    a = degrade(x, torch.Generator().manual_seed(1), 1.0)
    b = degrade(x, torch.Generator().manual_seed(1), 1.0)
    assert torch.equal(a, b) and a.shape == x.shape and a.min() >= -1 and a.max() <= 1
    assert (a.mean(dim=(2, 3)) - x.mean(dim=(2, 3))).abs().max() < 0.05  # noise averages out, the hue stays
    assert not torch.equal(a, x)
    assert torch.equal(degrade(x, torch.Generator().manual_seed(1), 0.0), x)
    edge = torch.zeros(4, 3, 16, 16)
    edge[..., 8:] = 1.0
    soft = degrade(edge, torch.Generator().manual_seed(2), 1.0)
    assert (soft[..., 6:10] - edge[..., 6:10]).abs().mean() > 0.02  # edges are softened


def test_rerun_on_a_finished_folder_reuses_it_and_refuses_other_settings(toy_data_dir, tmp_path, monkeypatch):
    import charforge.train.tagger as tt

    kw = dict(image_size=16, channels=4, feat_dim=8)
    opts = TaggerTrainOptions(steps=3, batch_size=8, amp=False)
    first = train_tagger(toy_data_dir, tmp_path / "t", opts=opts, **kw)
    assert not first.reused
    monkeypatch.setattr(tt, "_train_loop", lambda *a, **k: pytest.fail("a finished tagger was retrained"))
    again = train_tagger(toy_data_dir, tmp_path / "t", opts=opts, **kw)
    assert again.reused and again.seconds == pytest.approx(first.seconds, abs=0.1)
    a, b = load_tagger(first.path).net.state_dict(), load_tagger(again.path).net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "t" / "report.json").read_text())["summary"] == first.report["summary"]
    with pytest.raises(
        UserError, match="already holds a finished tagger trained with other data or settings"
    ):
        train_tagger(
            toy_data_dir, tmp_path / "t", opts=TaggerTrainOptions(steps=4, batch_size=8, amp=False), **kw
        )


def test_split_seed_keeps_the_held_out_images_while_the_seed_changes_the_run(
    toy_data_dir, tmp_path, monkeypatch
):
    import charforge.train.tagger as tt

    held = {}
    real_split = tt.split_indices

    def recording_split(n, holdout, seed):
        train_idx, held_idx = real_split(n, holdout, seed)
        held[len(held)] = held_idx
        return train_idx, held_idx

    monkeypatch.setattr(tt, "split_indices", recording_split)
    kw = dict(image_size=16, channels=4, feat_dim=8)
    runs = {
        "a": TaggerTrainOptions(steps=3, batch_size=8, amp=False, seed=0),
        "b": TaggerTrainOptions(steps=3, batch_size=8, amp=False, seed=1, split_seed=0),
        "c": TaggerTrainOptions(steps=3, batch_size=8, amp=False, seed=1),
    }
    res = {k: train_tagger(toy_data_dir, tmp_path / k, opts=o, **kw) for k, o in runs.items()}
    np.testing.assert_array_equal(held[0], held[1])  # a and b: the same held-out images
    assert not np.array_equal(held[0], held[2])  # c: --seed alone moves the split, as before
    wa, wb = load_tagger(res["a"].path).net.state_dict(), load_tagger(res["b"].path).net.state_dict()
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)  # ... but b is another run

    def file_meta(path):
        with safe_open(str(path), "pt") as f:
            return f.metadata()

    trains = {k: json.loads(file_meta(r.path)["train"]) for k, r in res.items()}
    assert [trains[k]["split_seed"] for k in "abc"] == [0, 0, 1]
    fps = {k: json.loads(file_meta(r.path)["fingerprint"])["opts"] for k, r in res.items()}
    assert "split_seed" not in fps["a"] and fps["b"]["split_seed"] == 0  # unset: old folders still reuse
