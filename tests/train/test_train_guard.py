"""NaN guard, early stopping, augmentation and the dataset-size path of the trainer."""

import json

import numpy as np
import pytest
import torch

from charforge.core.tags import make_girls_moe_schema
from charforge.data.packed import write_packed
from charforge.errors import UserError
from charforge.models.augment import augment
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.monitor import read_log
from charforge.train.presets import resolve_preset


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data32(tmp_path_factory):
    """32 px images for a 16 px preset: the trainer must resize on load."""
    schema = make_girls_moe_schema()
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    root = tmp_path_factory.mktemp("ds") / "d32"
    write_packed(root, imgs, schema.sample_training(24, rng).astype(np.uint8), schema)
    return root


def opts():
    return TrainOptions(device="cpu", show_progress=False, tensorboard=False)


def test_nan_rolls_back_and_lowers_lr(data32, tmp_path):
    fired = []

    def hook(step):
        if step == 6 and not fired:
            fired.append(step)
            return True
        return False

    p = resolve_preset("tiny", {"steps": 8, "ckpt_every": 4})
    tr = Trainer(data32, tmp_path / "run", p, opts=opts(), nan_hook=hook)
    assert tr.run()["step"] == 8
    events = [r for r in read_log(tmp_path / "run" / "log.jsonl") if r.get("event") == "nan_rollback"]
    assert events == [{"step": 4, "event": "nan_rollback", "failed_step": 6, "lr_scale": 0.5}]
    assert tr.lr_scale == 0.5 and tr.lr_at(0) == pytest.approx(p.lr * 0.5)


def test_nan_gives_up_after_bounded_retries(data32, tmp_path):
    p = resolve_preset("tiny", {"steps": 6, "ckpt_every": 4, "max_nan_retries": 2})
    tr = Trainer(data32, tmp_path / "run", p, opts=opts(), nan_hook=lambda step: step == 5)
    with pytest.raises(UserError, match="diverged.*after 2 rollbacks"):
        tr.run()
    assert tr.nan_retries == 3 and tr.lr_scale == 0.25


def test_early_stopping_with_patience(data32, tmp_path):
    p = resolve_preset("tiny", {"steps": 200, "eval_every": 1, "patience": 2, "lr": 0.0, "ckpt_every": 50})
    summary = Trainer(data32, tmp_path / "run", p, opts=opts()).run()
    assert (
        summary["step"] < 10 and "early stop" in summary["stop_reason"]
    )  # lr 0: the metric can never improve
    assert (tmp_path / "run" / "checkpoints" / f"state-{summary['step']:07d}.safetensors").exists()


def test_augment_is_seeded_and_differentiable():
    x = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    kinds = ("translation", "cutout", "color", "noise")
    a = augment(x, kinds, torch.Generator().manual_seed(5))
    b = augment(x, kinds, torch.Generator().manual_seed(5))
    c = augment(x, kinds, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == x.shape
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_augmented_bf16_channels_last_run(data32, tmp_path):
    p = resolve_preset(
        "tiny",
        {
            "steps": 3,
            "augment": "translation,cutout,color,noise",
            "bf16": True,
            "channels_last": True,
            "gp_every": 2,
        },
    )
    Trainer(data32, tmp_path / "run", p, opts=opts()).run()
    rows = read_log(tmp_path / "run" / "log.jsonl")
    assert len(rows) == 3 and all(np.isfinite(r["loss_D"]) for r in rows)
    assert "D_gp" in rows[0] and "D_gp" not in rows[1] and "D_gp" in rows[2]  # lazy: step indices 0, 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["preset"]["bf16"] is True


def test_dcgan_family_trains(data32, tmp_path):
    p = resolve_preset("tiny-dcgan", {"steps": 3})
    Trainer(data32, tmp_path / "run", p, opts=opts()).run()
    rows = read_log(tmp_path / "run" / "log.jsonl")
    assert all("D_gp" not in r for r in rows) and len(rows) == 3


def test_ema_half_life_ramps_up(data32, tmp_path):
    p = resolve_preset("tiny", {"ema_half_life": 1000, "ema_rampup": 0.1})
    tr = Trainer(data32, tmp_path / "run", p, opts=opts())
    assert tr.ema_beta() == pytest.approx(0.5 ** (8 / 0.8))  # first step: half-life 0.1 * 8 images
    tr.images_seen = 1_000_000
    assert tr.ema_beta() == pytest.approx(0.5 ** (8 / 1000))  # later: the configured half-life
