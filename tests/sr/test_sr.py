"""The upscaler: network, tiling, training (exact resume), ONNX parity, the `upscale` command."""

import json

import numpy as np
import pytest
import torch

import charforge.sr as sr
from charforge.errors import UserError
from charforge.models.sr import SRConfig, SRNet, bicubic, load_upscaler_file, save_upscaler


def _random_net(cfg=None, seed=0):
    torch.manual_seed(seed)
    net = SRNet(cfg or SRConfig(channels=8, blocks=2, up_channels=8))
    with torch.no_grad():  # non-zero tails, so the network is more than bicubic
        for t in net.tails.values():
            t.out.weight.normal_(0, 0.05)
    return net.eval()


@pytest.fixture
def upscaler_file(tmp_path):
    return save_upscaler(tmp_path / "up.safetensors", _random_net(), model_id="tiny-sr", provenance={})


def test_config_is_validated():
    with pytest.raises(UserError, match="channels"):
        SRConfig.from_dict({"channels": 100000})
    with pytest.raises(UserError, match="unknown fields"):
        SRConfig.from_dict({"channels": 8, "evil": 1})
    with pytest.raises(UserError, match="scales"):
        SRConfig.from_dict({"scales": [3]})
    assert SRConfig.from_dict(SRConfig().to_dict()) == SRConfig()


def test_untrained_net_is_exactly_bicubic():
    net = SRNet(SRConfig(channels=8, blocks=1, up_channels=4)).eval()
    x = torch.rand(2, 3, 16, 12)
    for s in (2, 4):
        assert torch.equal(net(x, s), bicubic(x, s))
        assert net(x, s).shape == (2, 3, 16 * s, 12 * s)


def test_file_round_trip_and_kind_check(tmp_path, upscaler_file):
    net, meta = load_upscaler_file(upscaler_file)
    assert meta["model_id"] == "tiny-sr"
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(net(x, 4), _random_net()(x, 4))
    from charforge.models.io import save_model

    other = save_model(tmp_path / "t.safetensors", {"w": torch.zeros(1)}, kind="tagger", config={})
    with pytest.raises(UserError, match="expected a 'upscaler' model"):
        load_upscaler_file(other)


def test_tiles_match_one_pass(upscaler_file, monkeypatch):
    """Tiling is exact: the margin covers the receptive field (8 blocks, the shipped depth)."""
    net = _random_net(SRConfig(channels=8, blocks=8, up_channels=8), seed=3)
    up = sr.Upscaler(net, net.cfg.to_dict(), "t", "0" * 64, upscaler_file)
    img = np.random.default_rng(0).integers(0, 256, (1, 70, 90, 3), dtype=np.uint8)
    whole = up.upscale(img, 2)
    monkeypatch.setattr(sr, "TILE", 32)
    tiled = up.upscale(img, 2)
    assert tiled.shape == (1, 140, 180, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_upscale_checks_and_alpha(upscaler_file):
    up = sr.load_upscaler(upscaler_file, precision="fp32")
    rgba = np.zeros((20, 24, 4), np.uint8)
    rgba[5:15, 5:15] = 255
    out = up.upscale(rgba, 4)
    assert out.shape == (80, 96, 4) and out[..., 3].max() == 255 and out[0, 0, 3] == 0
    with pytest.raises(UserError, match="choose 2 or 4"):
        up.upscale(rgba[..., :3], 3)
    with pytest.raises(UserError, match="megapixel"):
        up.upscale(np.zeros((1, 4100, 4100, 3), np.uint8), 4)
    assert up.provenance(4)["upscaler_id"] == "tiny-sr"


def test_resolve_names_the_problem(tmp_path):
    with pytest.raises(UserError, match="not a file, run folder or shipped name"):
        sr.resolve_path(tmp_path / "nope")
    with pytest.raises(UserError, match="no upscaler in this folder"):
        sr.resolve_path(tmp_path)


def test_onnx_export_parity_and_backend(tmp_path, upscaler_file, monkeypatch):
    from charforge.export.sr_onnx import export_upscaler_onnx

    monkeypatch.setenv("CHARFORGE_CACHE", str(tmp_path / "cache"))
    net, _ = load_upscaler_file(upscaler_file)
    summary = export_upscaler_onnx(net, tmp_path / "onnx", model_id="tiny-sr", sha256="ab" * 32)
    assert set(summary) == {"x2", "x4"} and all(v["parity_max_abs"] < 0.05 for v in summary.values())
    side = json.loads((tmp_path / "onnx" / "upscaler_x4.json").read_text())
    assert side["scale"] == 4 and side["model_id"] == "tiny-sr"
    img = np.random.default_rng(1).integers(0, 256, (3, 33, 29, 3), dtype=np.uint8)
    a = sr.load_upscaler(upscaler_file, precision="fp32").upscale(img, 4)
    b = sr.load_upscaler(upscaler_file, backend="onnx").upscale(img, 4)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_training_writes_a_run_and_resumes_exactly(tmp_path, monkeypatch):
    from charforge.train import sr as train_sr

    monkeypatch.setenv("CHARFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(train_sr, "validation_set", lambda n=8: train_sr.render_pairs(8, 5, 0.5))
    kw = dict(n_train=12, batch_size=4, patch=16, eval_every=2, checkpoint_every=2, threads=1)
    kw["model"] = SRConfig(channels=8, blocks=1, up_channels=4)
    straight = train_sr.train_sr(tmp_path / "a", train_sr.SRTrainOptions(steps=4, **kw))
    assert straight.finished and straight.step == 4
    for name in (
        "upscaler.safetensors",
        "upscaler-best.safetensors",
        "curves.png",
        "MODEL_CARD.md",
        "log.jsonl",
    ):
        assert (tmp_path / "a" / name).is_file(), name
    assert list((tmp_path / "a" / "samples").glob("step_*.png"))
    from charforge.provenance.modelcard import split_card

    header, body = split_card((tmp_path / "a" / "MODEL_CARD.md").read_text())
    assert header["library_name"] == "charforge" and header["license"] == "apache-2.0" and "x4_clean" in body
    # the same run in two pieces: stop after 2 steps (a budget), then --resume
    opts = train_sr.SRTrainOptions(steps=4, **kw)
    opts.minutes = 0.0  # the budget is spent before the first step: nothing runs, the state is saved at 0
    first = train_sr.train_sr(tmp_path / "b", opts)
    assert not first.finished and first.step == 0
    half = train_sr.SRTrainOptions(steps=4, **kw)
    half.checkpoint_every = 2
    with pytest.raises(UserError, match="--resume"):
        train_sr.train_sr(tmp_path / "b", half)
    res = train_sr.train_sr(tmp_path / "b", half, resume=True)
    assert res.finished
    a, _ = load_upscaler_file(tmp_path / "a" / "upscaler.safetensors")
    b, _ = load_upscaler_file(tmp_path / "b" / "upscaler.safetensors")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    changed = dict(kw, seed=9)
    with pytest.raises(UserError, match="other settings"):
        train_sr.train_sr(tmp_path / "b", train_sr.SRTrainOptions(steps=6, **changed), resume=True)


def test_batches_are_aligned_and_reproducible(tmp_path, monkeypatch):
    from charforge.train import sr as train_sr

    pairs = train_sr.render_pairs(6, 1, 0.5)
    opts = train_sr.SRTrainOptions(batch_size=6, patch=24, clean_share=1.0)
    x, t = train_sr.make_batch(pairs, 3, opts)
    x2, t2 = train_sr.make_batch(pairs, 3, opts)
    assert torch.equal(x, x2) and torch.equal(t[4], t2[4])
    assert x.shape == (6, 3, 24, 24) and t[2].shape == (6, 3, 48, 48) and t[4].shape == (6, 3, 96, 96)
    down = torch.nn.functional.avg_pool2d(
        t[4], 4
    )  # the 256 px crop, box-averaged, is close to the input crop
    mse = float(((down - x) ** 2).mean())
    assert 10 * np.log10(1 / mse) > 24


def test_degradation_is_seeded():
    from charforge.train import sr as train_sr

    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    opts = train_sr.SRTrainOptions(clean_share=0.0, blur_p=1.0, jpeg_p=1.0)
    a = train_sr.degrade_image(img, np.random.default_rng(4), opts)
    b = train_sr.degrade_image(img, np.random.default_rng(4), opts)
    assert np.array_equal(a, b) and not np.array_equal(a, img)
    clean = train_sr.SRTrainOptions(clean_share=1.0)
    assert np.array_equal(train_sr.degrade_image(img, np.random.default_rng(4), clean), img)
    # the GAN-like degradations: a 1 px dark outline fades, fringes shift colour channels apart, speckle
    # is strongest on edges; each seeded
    from charforge.creators.builtin import BuiltinCreator

    c = BuiltinCreator()
    r = c.render(c.sample(1, np.random.default_rng(3)), 64)[0]
    only = dict(clean_share=0.0, blur_p=0.0, resample_p=0.0, noise_p=0.0, jpeg_p=0.0)
    line = np.full((16, 16, 3), 200, np.uint8)
    line[:, 8] = 20
    faded = train_sr.degrade_image(
        line, np.random.default_rng(1), train_sr.SRTrainOptions(fade_p=1.0, **only)
    )
    assert faded[:, 8].mean() > 60 and abs(float(faded[:, 2].mean()) - 200) < 1
    for kind in ("fade_p", "chroma_p", "speckle_p"):
        o = train_sr.SRTrainOptions(**{kind: 1.0}, **only)
        a = train_sr.degrade_image(r, np.random.default_rng(7), o)
        assert np.array_equal(a, train_sr.degrade_image(r, np.random.default_rng(7), o)), kind
        assert not np.array_equal(a, r), kind
    fringe = train_sr.degrade_image(
        line, np.random.default_rng(2), train_sr.SRTrainOptions(chroma_p=1.0, **only)
    )
    assert np.ptp(fringe[:, 6:11].astype(int), axis=2).max() > 20  # channels no longer agree at the line


def test_adversarial_fine_tune_resumes_exactly(tmp_path, monkeypatch):
    """init_from + edge + adversarial terms: the discriminator and its Adam state are checkpointed too."""
    from charforge.train import sr as train_sr

    monkeypatch.setenv("CHARFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(train_sr, "validation_set", lambda n=8: train_sr.render_pairs(8, 5, 0.5))
    cfg = SRConfig(channels=8, blocks=1, up_channels=4)
    start = save_upscaler(tmp_path / "start.safetensors", _random_net(cfg), model_id="s", provenance={})
    kw = dict(n_train=12, batch_size=4, patch=16, eval_every=2, checkpoint_every=2, threads=1, model=cfg)
    kw |= dict(init_from=str(start), edge_weight=0.5, gan_weight=0.1)
    a = train_sr.train_sr(tmp_path / "a", train_sr.SRTrainOptions(steps=4, **kw))
    rows = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert a.finished and any("sharp_x4_clean" in r for r in rows)
    first = train_sr.SRTrainOptions(steps=4, minutes=0.0, **kw)
    train_sr.train_sr(tmp_path / "b", first)
    train_sr.train_sr(tmp_path / "b", train_sr.SRTrainOptions(steps=4, **kw), resume=True)
    for name in ("upscaler.safetensors",):
        x, _ = load_upscaler_file(tmp_path / "a" / name)
        y, _ = load_upscaler_file(tmp_path / "b" / name)
        assert all(torch.equal(p, q) for p, q in zip(x.state_dict().values(), y.state_dict().values()))
    from charforge.models.io import load_model

    state, meta = load_model(tmp_path / "b" / "checkpoints" / "state.safetensors")
    assert any(k.startswith("d.") for k in state) and "d_opt" in meta["optimizers"]
    assert meta["charforge_config"]["init_sha256"]
    card = (tmp_path / "a" / "MODEL_CARD.md").read_text()
    assert "adversarial" in card and "fine-tuned from" in card
    # a discriminator warm-up: no adversarial gradient to the upscaler at first, then a linear ramp
    o = train_sr.SRTrainOptions(d_warmup=3, adv_ramp=4)
    assert [train_sr.adv_scale(s, o) for s in range(9)] == [0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1]
    assert train_sr.adv_scale(0, train_sr.SRTrainOptions()) == 1.0  # default: in force from the first step
    warm = train_sr.train_sr(tmp_path / "w", train_sr.SRTrainOptions(steps=4, **(kw | {"d_warmup": 4})))
    plain = train_sr.train_sr(tmp_path / "p", train_sr.SRTrainOptions(steps=4, **(kw | {"gan_weight": 0.0})))
    u, _ = load_upscaler_file(warm.path)
    v, _ = load_upscaler_file(plain.path)  # the warm-up's upscaler steps are the plain L1 + edge run's
    assert all(
        torch.allclose(p, q, atol=1e-6) for p, q in zip(u.state_dict().values(), v.state_dict().values())
    )
    assert "learns alone for 4 steps" in (tmp_path / "w" / "MODEL_CARD.md").read_text()
    other = SRConfig(channels=12, blocks=1, up_channels=4)
    with pytest.raises(UserError, match="differs from this run"):
        train_sr.train_sr(tmp_path / "c", train_sr.SRTrainOptions(steps=2, **(kw | {"model": other})))


def test_generator_branch_trains_and_resumes_exactly(tmp_path, monkeypatch):
    """The unpaired branch on the shipped generator's outputs: a cached, seeded pool; batches that leave the
    paired ones unchanged; adversarial + low-frequency fidelity terms; exact resume; its own validation numbers
    and sheet; a clear message for a generator that does not exist."""
    from charforge.train import sr as train_sr

    monkeypatch.setenv("CHARFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(train_sr, "validation_set", lambda n=8: train_sr.render_pairs(8, 5, 0.5))
    pool = train_sr.generator_pool("default", 16, train_sr.GEN_SEED)
    assert pool.shape == (16, 64, 64, 3) and pool.dtype == np.uint8 and pool.std() > 10
    assert list((tmp_path / "cache").rglob("sr_gen/*.npy"))
    assert np.array_equal(train_sr.generator_pool("default", 16, train_sr.GEN_SEED), pool)
    cfg = SRConfig(channels=8, blocks=1, up_channels=4)
    kw = dict(n_train=12, batch_size=4, patch=16, eval_every=2, checkpoint_every=2, threads=1, model=cfg)
    kw |= dict(gen_models=("default",), gen_pool=16, gen_batch=2, gen_gan_weight=0.1, edge_weight=0.5)
    opts = train_sr.SRTrainOptions(steps=4, **kw)
    g = train_sr.make_gen_batch([pool], 3, opts)
    assert g.shape == (2, 3, 16, 16) and torch.equal(g, train_sr.make_gen_batch([pool], 3, opts))
    pairs = train_sr.render_pairs(12, 0, 0.4)
    plain = train_sr.SRTrainOptions(**{k: v for k, v in kw.items() if not k.startswith("gen_")})
    assert torch.equal(train_sr.make_batch(pairs, 3, opts)[0], train_sr.make_batch(pairs, 3, plain)[0])
    flat = torch.full((1, 3, 20, 20), 0.3)
    assert torch.allclose(train_sr.gaussian_lowpass(flat, 1.0), torch.full((1, 3, 14, 14), 0.3))

    from charforge import sampling

    loads, real_load = [], sampling.load_generator
    monkeypatch.setattr(
        sampling, "load_generator", lambda spec, **k: loads.append(spec) or real_load(spec, **k)
    )
    a = train_sr.train_sr(tmp_path / "a", opts)
    assert loads == ["default"]  # read once for the pool, the validation pool and the fingerprint
    rows = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    last = [r for r in rows if "sharp_gen_x4" in r][-1]
    assert a.finished and last["sharp_gen_x4"] > 0 and last["gen_lr_psnr"] > 20
    assert list((tmp_path / "a" / "samples").glob("gen_step_*.png"))
    card = (tmp_path / "a" / "MODEL_CARD.md").read_text()
    assert "unpaired branch" in card and "`default`" in card
    train_sr.train_sr(tmp_path / "b", train_sr.SRTrainOptions(steps=4, minutes=0.0, **kw))
    train_sr.train_sr(tmp_path / "b", train_sr.SRTrainOptions(steps=4, **kw), resume=True)
    x, _ = load_upscaler_file(tmp_path / "a" / "upscaler.safetensors")
    y, _ = load_upscaler_file(tmp_path / "b" / "upscaler.safetensors")
    assert all(torch.equal(p, q) for p, q in zip(x.state_dict().values(), y.state_dict().values()))
    from charforge.models.io import load_model

    state, meta = load_model(tmp_path / "b" / "checkpoints" / "state.safetensors")
    assert any(k.startswith("d.") for k in state) and meta["charforge_config"]["gen_sha256"]
    # the generator branch changes the weights (the same run without it differs)
    c = train_sr.train_sr(tmp_path / "c", plain.__class__(**(vars(plain) | {"steps": 4})))
    z, _ = load_upscaler_file(c.path)
    assert not all(torch.equal(p, q) for p, q in zip(x.state_dict().values(), z.state_dict().values()))
    with pytest.raises(UserError, match="--gen-model no-such-model"):
        train_sr.train_sr(
            tmp_path / "d", train_sr.SRTrainOptions(steps=2, **(kw | {"gen_models": ("no-such-model",)}))
        )
    # both weights 0: the generator's outputs are only measured; training is the plain run's, step for step
    measured = kw | {"gen_gan_weight": 0.0, "gen_fidelity_weight": 0.0}
    m = train_sr.train_sr(tmp_path / "e", train_sr.SRTrainOptions(steps=4, **measured))
    w, _ = load_upscaler_file(m.path)
    assert all(torch.equal(p, q) for p, q in zip(w.state_dict().values(), z.state_dict().values()))
    assert (
        "sharp_gen_x4" in m.metrics
        and "measured, not trained on" in (tmp_path / "e" / "MODEL_CARD.md").read_text()
    )


def test_shipped_upscaler_beats_bicubic_on_held_out_renders():
    """The shipped file on characters no training run drew (seed 90210, the bench's seed): x4 PSNR well above
    bicubic; untrained or damaged weights would sit at bicubic."""
    from charforge.creators.builtin import BuiltinCreator
    from charforge.train.sr import psnr

    if "default" not in sr.shipped_upscalers():
        pytest.skip("no shipped upscaler in charforge/weights")
    c = BuiltinCreator()
    batch = c.sample(12, np.random.default_rng(90210))
    small, big = c.render(batch, 64), c.render(batch, 256)
    up = sr.load_upscaler("default")
    x = torch.from_numpy(small).permute(0, 3, 1, 2).float()
    bic = bicubic(x, 4).clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy()
    gain = psnr(up.upscale(small, 4), big) - psnr(bic, big)
    assert gain > 3.5, gain
    assert up.scales == [2, 4] and up.model_id == "sr_v2g@2000"
