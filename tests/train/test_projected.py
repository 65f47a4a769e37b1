"""The projected discriminator (Projected GAN on frozen EfficientNet-Lite0 features): what it reads, what it
trains, that the feature network stays frozen and out of checkpoints, that the preset fine-tunes the shipped
generator, and that a run with it resumes exactly."""

import pytest
import torch
from safetensors.torch import load_file

from charforge.errors import UserError
from charforge.models.projected import CCM_CHANNELS, ProjectedDiscriminator
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.monitor import read_log
from charforge.train.presets import build_discriminator, build_generator, resolve_preset
from tests.train.test_train_resume import one_thread, tiny_data  # noqa: F401  (fixture)

PROJECTED = {"d_kind": "projected", "d_feat_size": 32, "gp_weight": 0.0, "augment": "translation,cutout"}


def test_it_reads_four_mixed_maps_and_trains_only_its_small_heads():
    d = ProjectedDiscriminator(n_tags=5, image_size=64, feat_size=64, width=8)
    x = (torch.rand(3, 3, 64, 64) * 2 - 1).requires_grad_(True)
    maps = d.features(x)
    assert [m.shape[1:] for m in maps] == [(c, s, s) for c, s in zip(CCM_CHANNELS, (16, 8, 4, 2))]
    adv, cls = d(x)
    assert adv.shape == (3,) and cls.shape == (3, 5)
    (adv.sum() + cls.sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # G learns through the frozen network
    assert all(p.grad is None for p in d.extractor.parameters())  # which itself never learns
    assert not any(k.startswith("_extractor") for k in d.state_dict())  # nor is it saved (19 MB, shipped)
    trainable = {n for n, p in d.named_parameters()}
    assert trainable and all(n.startswith(("minis.", "cls.")) for n in trainable)
    d.train()
    assert not d.extractor.training  # ImageNet batch statistics are kept
    # the random projections are fixed by the seed and saved: a resumed or rebuilt D is the same D
    same, other = (
        ProjectedDiscriminator(n_tags=5, image_size=64, seed=0),
        ProjectedDiscriminator(n_tags=5, image_size=64, seed=1),
    )
    assert torch.equal(same.ccm0, d.ccm0) and not torch.equal(other.ccm0, d.ccm0)
    assert "ccm0" in d.state_dict() and "csm2" in d.state_dict()
    with pytest.raises(ValueError, match="multiple of 32"):
        ProjectedDiscriminator(n_tags=0, image_size=64, feat_size=48)


def test_the_preset_fine_tunes_the_shipped_generator_and_checks_its_options():
    p = resolve_preset("projected-64-cpu")
    assert isinstance(build_discriminator(p, 34), ProjectedDiscriminator) and p.gp_weight == 0
    from charforge.models.io import load_model

    state = load_model("charforge/weights/generator_default.safetensors")[0]
    g = build_generator(p, 34)
    g.load_state_dict(
        {k: v for k, v in state.items()}, strict=True
    )  # `--init-from default` loads every tensor
    with pytest.raises(UserError, match="d_kind 'vit'"):
        resolve_preset("tiny", {"d_kind": "vit"})
    with pytest.raises(UserError, match="d_highpass: the projected discriminator"):
        resolve_preset("tiny", {**PROJECTED, "d_highpass": True})
    with pytest.raises(UserError, match="these sizes do not fit"):
        resolve_preset("tiny", {**PROJECTED, "d_feat_size": 40})


def _opts():
    return TrainOptions(device="cpu", show_progress=False, tensorboard=False)


def test_a_projected_run_learns_and_resumes_exactly(tmp_path):
    data = tiny_data(tmp_path / "d", n=16)
    over = {**PROJECTED, "ckpt_every": 4, "sample_every": 1000, "eval_every": 1000}
    straight = Trainer(data, tmp_path / "a", resolve_preset("tiny", {**over, "steps": 8}), opts=_opts())
    straight.run()
    first = Trainer(data, tmp_path / "b", resolve_preset("tiny", {**over, "steps": 4}), opts=_opts())
    first.run()
    again = Trainer(
        data, tmp_path / "b", resolve_preset("tiny", {**over, "steps": 8}), resume=True, opts=_opts()
    )
    again.run()
    a = {r["step"]: r for r in read_log(tmp_path / "a" / "log.jsonl")}
    b = {r["step"]: r for r in read_log(tmp_path / "b" / "log.jsonl")}
    for s in range(5, 9):
        assert a[s]["loss_D"] == b[s]["loss_D"] and a[s]["loss_G"] == b[s]["loss_G"], s
    assert a[8]["loss_D"] != a[1]["loss_D"]  # it trained
    ga = load_file(str(tmp_path / "a" / "checkpoints" / "generator-0000008.safetensors"))
    gb = load_file(str(tmp_path / "b" / "checkpoints" / "generator-0000008.safetensors"))
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    # eval must know that generic FID is a space this model was trained against
    from charforge.metrics.report import spaces_in_training

    assert spaces_in_training(tmp_path / "a" / "checkpoints" / "generator-0000008.safetensors") == ["generic"]
