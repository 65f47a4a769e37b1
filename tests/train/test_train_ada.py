"""Adaptive augmentation (issue 14 point 4): the controller, the per-image coins, and that a run with ADA
resumes exactly (same probability, same losses, same weights)."""

import pytest
import torch
from safetensors.torch import load_file

from charforge.errors import UserError
from charforge.models.augment import augment
from charforge.train.ada import ADA_INTERVAL, AdaptiveAugment
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.monitor import read_log
from charforge.train.presets import resolve_preset
from tests.train.test_train_resume import one_thread, tiny_data  # noqa: F401  (fixture)


def test_controller_moves_p_towards_the_target():
    ada = AdaptiveAugment(target=0.6, kimg=1.0)  # 1000 images from 0 to 1
    for _ in range(ADA_INTERVAL - 1):
        ada.observe(1.0, 50)
    assert ada.p == 0.0  # only every ADA_INTERVAL steps
    ada.observe(1.0, 50)
    assert ada.p == pytest.approx(0.2)  # 4 steps x 50 images / 1000
    for _ in range(4 * ADA_INTERVAL):
        ada.observe(0.9, 50)
    assert ada.p == 1.0  # clamped
    for _ in range(2 * ADA_INTERVAL):
        ada.observe(0.1, 50)
    assert ada.p == pytest.approx(0.6)
    ada.observe(float("nan"), 50)  # a rolled-back step adds nothing
    state = ada.state()
    other = AdaptiveAugment()
    other.load(state)
    assert other.state() == state


def test_coins_per_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    assert torch.equal(augment(x, ("translation", "cutout"), g, p=0.0), x)
    y = augment(x, ("cutout",), torch.Generator().manual_seed(1), p=1.0)
    assert all(not torch.equal(y[i], x[i]) for i in range(16))
    half = augment(x, ("cutout",), torch.Generator().manual_seed(1), p=0.5)
    same = sum(torch.equal(half[i], x[i]) for i in range(16))
    assert 2 <= same <= 14


def _opts():
    return TrainOptions(device="cpu", show_progress=False, tensorboard=False)


def test_ada_rises_on_a_memorised_set_and_resumes_exactly(tmp_path):
    data = tiny_data(tmp_path / "d", n=16)
    over = {"ada": True, "ada_kimg": 0.2, "ckpt_every": 12, "sample_every": 1000, "eval_every": 1000}
    straight = Trainer(data, tmp_path / "a", resolve_preset("tiny", {**over, "steps": 24}), opts=_opts())
    straight.run()
    log = {r["step"]: r for r in read_log(tmp_path / "a" / "log.jsonl")}
    ps = [log[s]["aug_p"] for s in sorted(log)]
    assert ps[0] == 0.0 and ps[-1] > 0.0  # D separates 16 images at once: p goes up
    assert "D_sign" in log[1]

    first = Trainer(data, tmp_path / "b", resolve_preset("tiny", {**over, "steps": 12}), opts=_opts())
    first.run()
    again = Trainer(
        data, tmp_path / "b", resolve_preset("tiny", {**over, "steps": 24}), resume=True, opts=_opts()
    )
    assert again.ada.state() == first.ada.state()
    again.run()
    other = {r["step"]: r for r in read_log(tmp_path / "b" / "log.jsonl")}
    for s in range(13, 25):
        assert other[s]["aug_p"] == log[s]["aug_p"] and other[s]["loss_D"] == log[s]["loss_D"], s
    ga = load_file(str(tmp_path / "a" / "checkpoints" / "generator-0000024.safetensors"))
    gb = load_file(str(tmp_path / "b" / "checkpoints" / "generator-0000024.safetensors"))
    assert all(torch.equal(ga[k], gb[k]) for k in ga)


def test_ada_settings_are_checked():
    with pytest.raises(UserError, match="ada_target"):
        resolve_preset("tiny", {"ada_target": 1.5})
    with pytest.raises(UserError, match="ada_kimg"):
        resolve_preset("tiny", {"ada_kimg": 0})
