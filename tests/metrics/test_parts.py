"""The part segmenter and the hair-colour reader (issue 13 point 3): exact part masks from the creator, exact
resume, the colour rule on known pixels, clear errors."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from charforge.creators.builtin import palette
from charforge.errors import UserError
from charforge.tagger import parts as tp
from charforge.train import partseg
from charforge.train import tagger_augment as ta

HAIR = {c: palette.HAIR_RGB[c] for c in ("blonde", "brown", "black", "blue", "pink", "white", "gray")}


def _cli(capsys, *args):
    """(exit code, captured output) of `charforge ARGS...`."""
    from charforge.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr()


class _Fixed(tp.PartReader):
    """A reader whose masks are given (the colour rule tested apart from any network)."""

    def __init__(self, masks: np.ndarray, parts=("hair", "hat", "skin")):
        super().__init__(tp.PartSegNet(tp.PartSegConfig(parts=parts, channels=4)))
        self._m = masks

    def masks(self, images):
        return self._m


def _portrait(hair_rgb, skin_rgb=(240, 200, 170), bg=(255, 255, 255)):
    """A 32 px portrait: hair (with a dark outline ring and shading) around a skin face, hat-free."""
    img = np.zeros((1, 32, 32, 3), np.uint8)
    img[:] = bg
    yy, xx = np.mgrid[:32, :32]
    r = np.hypot(yy - 16, xx - 16)
    hair, face = r < 13, r < 8
    img[0][hair] = hair_rgb
    img[0][(r >= 12) & (r < 13)] = (30, 20, 25)  # outline
    img[0][hair & (yy > 22)] = np.array(hair_rgb) * 0.7  # shading on a minority of the hair
    img[0][face] = skin_rgb
    masks = np.zeros((1, 3, 32, 32), np.float32)
    masks[0, 0] = hair & ~face
    masks[0, 2] = face
    return img, masks


@pytest.mark.parametrize("colour", ["blue", "blonde", "pink", "brown"])
def test_hair_colour_is_the_modal_hair_pixel_named_from_the_palette(colour):
    img, masks = _portrait(palette.HAIR_RGB[colour])
    r = _Fixed(masks).hair_colour(img, HAIR)
    assert r.known[0] and r.names[r.answer[0]] == colour
    assert np.abs(r.rgb[0].astype(int) - palette.HAIR_RGB[colour]).max() <= 16
    assert 0.4 < r.confidence[0] <= 1.0 and abs(r.votes[0].sum() - 1) < 1e-5


def test_skin_inside_the_hair_mask_is_not_read_as_hair():
    """A mask that wrongly covers the face too (as on flat avatars): the face's colour is the skin's mode and
    is left out, so the hair is read, not the face."""
    img, masks = _portrait(palette.HAIR_RGB["blue"], skin_rgb=(250, 220, 190))
    masks[0, 0] = np.maximum(masks[0, 0], masks[0, 2])  # hair mask covers the face as well
    masks[0, 0, :, :] = masks[0, 0]
    r = _Fixed(masks).hair_colour(img, HAIR)
    assert r.names[r.answer[0]] == "blue"
    no_skin = _Fixed(masks[:, :2], parts=("hair", "hat")).hair_colour(img, HAIR)
    assert (
        no_skin.names[no_skin.answer[0]] != "blue"
    )  # without the skin part the face wins: the reason for it


def test_too_little_hair_is_unknown_and_a_hat_hides_hair():
    img, masks = _portrait(palette.HAIR_RGB["blue"])
    small = masks.copy()
    small[0, 0] = 0
    small[0, 0, 0:2, 0:2] = 1
    r = _Fixed(small).hair_colour(img, HAIR)
    assert not r.known[0] and r.answer[0] == -1 and r.confidence[0] == 0 and r.votes[0].sum() == 0
    hat = masks.copy()
    hat[0, 1] = masks[0, 0]  # a hat over all the hair
    assert not _Fixed(hat).hair_colour(img, HAIR).known[0]
    assert _Fixed(hat).hat(img)[0] == 0  # a tie is nobody's: hair and hat score the same everywhere
    hat[0, 0] *= 0.9
    assert _Fixed(hat).hat(img)[0] > 0.2 and _Fixed(masks).hat(img)[0] == 0
    assert _Fixed(masks).part_share(img, "glasses") is None


def test_reader_refuses_bad_input_and_missing_files(tmp_path):
    reader = tp.PartReader(tp.PartSegNet(tp.PartSegConfig(channels=4)))
    with pytest.raises(UserError, match="uint8"):
        reader.masks(np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(UserError, match="no such file"):
        tp.load_partseg(tmp_path / "nope.safetensors")
    m = reader.masks(np.zeros((2, 48, 40, 3), np.uint8))
    assert m.shape == (2, 5, 48, 40) and (m >= 0).all() and (m <= 1).all()


def test_part_targets_and_augmented_batches_follow_the_picture(tmp_path):
    """The training masks are the creator's exact part masks, and framing moves them with the image."""
    from charforge.data.build import build_from_creator
    from charforge.train.tagger import split_indices

    data = build_from_creator(
        tmp_path / "ds", creator="builtin-styles=cel,flat", n=12, size=32, seed=0, show_progress=False
    )
    train_idx, _ = split_indices(len(data), 0.1, 0)
    parts = ta.cached_part_renders(data, train_idx, None)
    t = partseg.part_targets(parts, np.arange(len(parts)), ("hair", "skin"))
    assert t.shape == (len(parts), 2, 32, 32)
    hair_share = t[:, 0].mean().item()
    assert 0.1 < hair_share < 0.6
    assert (t[:, 0] * t[:, 1]).sum() == 0  # a pixel is one part only, even on anti-aliased edges
    # where the target says hair, the render shows the hair's own colour more than anywhere else
    base = torch.from_numpy(parts.base.astype(np.float32))
    col = torch.from_numpy(parts.colour["hair"] * 255).view(-1, 1, 1, 3)
    dist = (base - col).abs().mean(-1)
    assert dist[t[:, 0] > 0].mean() < 0.5 * dist[t[:, 0] == 0].mean()
    # glasses: a mask-only part (never repainted), rendered on demand; it shows exactly where glasses are worn
    gl = ta.cached_mask_parts(data, train_idx, parts, ("glasses",), str(tmp_path / "cache"))
    assert set(gl.coef) == set(parts.coef) | {"glasses"} and gl.base is parts.base
    wears = data.schema.tags.index("glasses")
    on = gl.coef["glasses"].astype(np.float32).mean(-1) > ta.COEF_SCALE * partseg.MASK_COEF
    worn = parts.tags[:, wears] > 0
    assert on[~worn].sum() == 0 and (worn.sum() == 0 or on[worn].any(axis=(1, 2)).all())
    again = ta.cached_mask_parts(data, train_idx, parts, ("glasses",), str(tmp_path / "cache"))  # from cache
    np.testing.assert_array_equal(again.coef["glasses"], gl.coef["glasses"])
    opts = partseg.PartSegOptions(batch_size=6)
    x1, m1, w1 = partseg.make_batch(parts, 3, opts, data.schema, ("hair", "hat", "skin"), 32)
    x2, m2, _ = partseg.make_batch(parts, 3, opts, data.schema, ("hair", "hat", "skin"), 32)
    assert w1 is None  # no foreign masks: every pixel counts
    torch.testing.assert_close(x1, x2)  # a step's batch depends on (seed, step) only
    torch.testing.assert_close(m1, m2)
    assert x1.shape == (6, 3, 32, 32) and m1.shape == (6, 3, 32, 32)
    assert set(torch.unique(m1).tolist()) <= {0.0, 1.0}


def test_training_writes_a_loadable_reader_and_resumes_exactly(tmp_path, monkeypatch):
    from charforge.data.build import build_from_creator

    build_from_creator(tmp_path / "ds", creator="builtin", n=12, size=32, seed=0, show_progress=False)
    opts = partseg.PartSegOptions(steps=4, batch_size=4, checkpoint_every=2, threads=1)
    whole = partseg.train_partseg(tmp_path / "ds", tmp_path / "a", opts, channels=4, image_size=16)
    real = partseg.seg_loss
    calls = {"n": 0}

    def dies_at_step_3(logits, target, weight=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed after the step-2 checkpoint
        return real(logits, target, weight)

    monkeypatch.setattr(partseg, "seg_loss", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        partseg.train_partseg(tmp_path / "ds", tmp_path / "b", opts, channels=4, image_size=16)
    assert (tmp_path / "b" / partseg.CHECKPOINT_NAME).is_file()
    monkeypatch.setattr(partseg, "seg_loss", real)
    resumed = partseg.train_partseg(tmp_path / "ds", tmp_path / "b", opts, channels=4, image_size=16)
    a, b = tp.load_partseg(whole), tp.load_partseg(resumed)
    for (k, v), (_, w) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        torch.testing.assert_close(v, w, msg=k)
    assert not (tmp_path / "b" / partseg.CHECKPOINT_NAME).exists()
    assert a.cfg.parts == ("hair", "hat", "skin", "cloth", "bg")
    assert a.masks(np.zeros((1, 40, 40, 3), np.uint8)).shape == (1, 5, 40, 40)


def test_training_refuses_data_without_part_renders(tmp_path):
    from charforge.core.tags import make_girls_moe_schema
    from charforge.data.packed import write_packed

    schema = make_girls_moe_schema()
    write_packed(
        tmp_path / "imp",
        np.zeros((4, 16, 16, 3), np.uint8),
        np.zeros((4, len(schema)), np.uint8),
        schema,
    )
    with pytest.raises(UserError, match="builtin-styles"):
        partseg.train_partseg(tmp_path / "imp", tmp_path / "o", partseg.PartSegOptions(steps=1))
    with pytest.raises(UserError, match="valid parts"):
        partseg.train_partseg(tmp_path / "imp", tmp_path / "o", parts=("hair", "nose"))


def test_cli_trains_a_reader_and_refuses_a_bad_part(tmp_path, capsys):
    from charforge.data.build import build_from_creator

    build_from_creator(tmp_path / "ds", creator="builtin", n=10, size=32, seed=0, show_progress=False)
    run = functools.partial(_cli, capsys)

    code, out = run(
        "tagger", "parts-train", "--data", tmp_path / "ds", "-o", tmp_path / "r", "--steps", 2,
        "--batch-size", 4, "--size", 16, "--channels", 4, "--threads", 1,
    )  # fmt: skip
    assert code == 0, out.err
    assert "held-out IoU hair" in out.out and (tmp_path / "r" / "parts.safetensors").is_file()
    code, out = run(
        "tagger", "parts-train", "--data", tmp_path / "ds", "-o", tmp_path / "q", "--parts", "hair,nose"
    )
    assert code != 0 and "valid parts" in out.err and "Traceback" not in out.err


def test_the_shipped_estimator_reads_hair_and_glasses_with_the_reader():
    """The reader is attached to the shipped estimator only; where it sees the hair, the colour it reads
    decides a group the network is unsure of, and the network still decides between two near colours."""
    from charforge.tagger.net import (
        GLASSES_READER_ODDS,
        default_tagger_path,
        estimate_tagger_path,
        load_tagger,
    )

    est, judge = estimate_tagger_path(), default_tagger_path()
    if est is None or tp.default_parts_path() is None:
        pytest.skip("this install ships no estimator or part reader")
    assert load_tagger(judge).parts is None and load_tagger(est, parts=False).parts is None
    tagger = load_tagger(est)
    assert tagger.parts is not None and tagger.parts.part_index("glasses") is not None
    hair = list(tagger.schema.tags).index("blue hair")
    sl = tagger.schema.group_slices()[[g.name for g in tagger.schema.groups].index("hair color")]
    img, masks = _portrait(palette.HAIR_RGB["blue"])
    masks = np.concatenate([masks, np.zeros((1, 3, 32, 32), np.float32)], axis=1)  # cloth, bg, glasses: none
    # the reader alone: the shipped file's probe (hat, glasses) blends after the reader and would damp its factor
    reference = load_tagger(est, parts=False)
    reference.probe = tagger.probe = None
    net_only = reference.predict_proba(img)
    tagger.parts = _Fixed(masks, parts=("hair", "hat", "skin", "cloth", "bg", "glasses"))
    p = tagger.predict_proba(img)
    assert tagger.last_hair_reading.known[0] and p[0, sl].argmax() == hair - sl.start
    assert abs(p[0, sl].sum() - 1) < 1e-5
    # the same reading against a network sure of another colour: the network's power keeps it from a veto
    from charforge.tagger import net as tn

    blonde = list(tagger.schema.tags).index("blonde hair") - sl.start
    sure = np.full_like(p[:, sl], 1e-7)
    sure[0, blonde] = 1.0
    lik = tagger.last_hair_reading.likelihood(tn.HAIR_READER_SCALE)
    assert (sure * lik).argmax() == blonde  # untempered, the network would veto the pixels
    assert (sure**tn.HAIR_NETWORK_POWER * lik).argmax() == hair - sl.start
    g = list(tagger.schema.tags).index("glasses")  # no rims at all: the odds of glasses fall by the factor
    odds = lambda q: q / (1 - q)  # noqa: E731
    assert odds(p[0, g]) == pytest.approx(odds(net_only[0, g]) * GLASSES_READER_ODDS[1], rel=1e-3)
    # a modal colour half-way between two palette colours: the reading allows both, the network picks
    half = (np.array(palette.HAIR_RGB["blue"]) + np.array(palette.HAIR_RGB["aqua"])) / 2
    reading = tp.HairReading(
        ("blue", "aqua", "red"), np.zeros((1, 3)), np.array([0]), half[None].astype(np.uint8),
        np.ones(1), delta_e=np.array([[10.0, 10.5, 60.0]]),
    )  # fmt: skip
    lik = reading.likelihood(8.0)[0]
    assert lik[0] / lik[1] < 1.1 and lik[2] < 1e-2


def _mask_file(path, n=8, size=32, **override):
    rng = np.random.default_rng(0)
    masks = (rng.random((n, 2, size, size)) < 0.3).astype(np.uint8)
    masks[::2, 0] = 255  # hair unknown on every other image
    arrays = {
        "images": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        "masks": masks,
        "parts": np.array(["hair", "glasses"]),
    } | override
    np.savez(path, **arrays)
    return path


def test_foreign_masks_join_the_batches_and_only_known_pixels_count(tmp_path):
    """--extra for the part reader: a share of each batch from the file, its unknown pixels and the parts it
    does not mark weigh 0; weights of 1 give the unweighted loss; a bad file names itself and the problem."""
    from charforge.data.build import build_from_creator
    from charforge.train.tagger import split_indices

    data = build_from_creator(tmp_path / "ds", creator="builtin", n=12, size=32, seed=0, show_progress=False)
    parts = ta.cached_part_renders(data, split_indices(len(data), 0.1, 0)[0], None)
    names = ("hair", "hat", "skin")  # the file marks hair and glasses: hair is used, glasses is not trained
    extra = partseg.load_extra_masks(_mask_file(tmp_path / "m.npz"), names)
    opts = partseg.PartSegOptions(batch_size=8, extra_share=0.25)
    x, m, w = partseg.make_batch(parts, 5, opts, data.schema, names, 16, extra)
    assert x.shape == (8, 3, 16, 16) and m.shape == w.shape == (8, 3, 16, 16)
    assert (w[:6] == 1).all()  # the creator's six rows: every pixel known
    assert (w[6:, 1:] == 0).all()  # hat and skin: the file does not mark them
    assert 0 < w[6:, 0].mean() < 1  # hair: known on some images, unknown (255) on others
    x2, m2, w2 = partseg.make_batch(parts, 5, opts, data.schema, names, 16, extra)
    assert torch.equal(x, x2) and torch.equal(m, m2) and torch.equal(w, w2)  # (seed, step) only
    logits = torch.randn(8, 3, 16, 16)
    torch.testing.assert_close(partseg.seg_loss(logits, m, torch.ones_like(m)), partseg.seg_loss(logits, m))
    flipped = torch.where(w > 0, m, 1 - m)  # targets changed only where nothing is known
    torch.testing.assert_close(partseg.seg_loss(logits, m, w), partseg.seg_loss(logits, flipped, w))
    with pytest.raises(UserError, match=r"bad.npz: image 0, part 'hair': mask value 7"):
        partseg.load_extra_masks(
            _mask_file(tmp_path / "bad.npz", masks=np.full((8, 2, 32, 32), 7, np.uint8)), names
        )
    with pytest.raises(UserError, match="none of the parts trained here"):
        partseg.load_extra_masks(_mask_file(tmp_path / "m2.npz"), ("skin", "bg"))
    with pytest.raises(UserError, match="no masks array"):
        np.savez(tmp_path / "m3.npz", images=np.zeros((2, 8, 8, 3), np.uint8), parts=np.array(["hair"]))
        partseg.load_extra_masks(tmp_path / "m3.npz", names)


def test_cli_trains_a_reader_with_foreign_masks(tmp_path, capsys):
    from charforge.cli import main
    from charforge.data.build import build_from_creator
    from charforge.models.io import load_model

    build_from_creator(tmp_path / "ds", creator="builtin", n=10, size=32, seed=0, show_progress=False)
    args = ["tagger", "parts-train", "--data", str(tmp_path / "ds"), "--steps", "2", "--batch-size", "4"]
    args += ["--size", "16", "--channels", "4", "--threads", "1", "--parts", "hair,glasses"]
    main([*args, "-o", str(tmp_path / "r"), "--extra", str(_mask_file(tmp_path / "m.npz", size=24))])
    assert "held-out IoU hair" in capsys.readouterr().out
    report = load_model(tmp_path / "r" / "parts.safetensors")[1]["report"]
    assert report["options"]["extra"].endswith("m.npz") and report["options"]["extra_share"] == 0.25
    with pytest.raises(SystemExit) as e:
        main([*args, "-o", str(tmp_path / "q"), "--extra", str(tmp_path / "missing.npz")])
    err = capsys.readouterr().err
    assert e.value.code != 0 and "missing.npz: no such file" in err and "Traceback" not in err


def test_a_thin_foreign_rim_survives_the_reduction_to_the_network_side(tmp_path):
    """A 1 px line marked at 32 px is still marked after framing and the reduction to 16 px (bilinear > 0.5
    would drop it and so teach that thin rims are not the part)."""
    from charforge.data.build import build_from_creator
    from charforge.train.tagger import split_indices

    data = build_from_creator(tmp_path / "ds", creator="builtin", n=12, size=32, seed=0, show_progress=False)
    parts = ta.cached_part_renders(data, split_indices(len(data), 0.1, 0)[0], None)
    masks = np.zeros((4, 1, 32, 32), np.uint8)
    masks[:, 0, 15, 6:26] = 1  # one row of pixels
    extra = partseg.ExtraMasks(np.full((4, 32, 32, 3), 128, np.uint8), masks, ("hair",), "x")
    opts = partseg.PartSegOptions(batch_size=8, extra_share=0.5, zoom=(1.0, 1.0))
    _, m, w = partseg.make_batch(parts, 0, opts, data.schema, ("hair",), 16, extra)
    assert (m[4:, 0].sum(dim=(1, 2)) >= 4).all() and (w[4:, 0].mean(dim=(1, 2)) > 0.5).all()


def _random_reader(path, seed, parts=("hair", "hat", "skin", "cloth", "bg", "glasses"), size=16):
    torch.manual_seed(seed)
    net = tp.PartSegNet(tp.PartSegConfig(parts=parts, channels=4, image_size=size))
    with torch.no_grad():  # a non-trivial output: untrained BN-free logits would be near 0 everywhere
        for prm in net.parameters():
            prm.add_(torch.randn_like(prm) * 0.5)
    return tp.save_partseg(path, net)


def test_a_combined_reader_takes_a_part_from_the_second_network(tmp_path, capsys):
    """`tagger parts-combine`: every part from the main reader except the taken ones, which come from the
    other network, whatever their sides; the file loads alone, and bad combinations are clear errors."""

    a = _random_reader(tmp_path / "a.safetensors", 0)
    b = _random_reader(tmp_path / "b.safetensors", 1, size=24)
    x = np.random.default_rng(3).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    ma, mb = tp.load_partseg(a).masks(x), tp.load_partseg(b).masks(x)
    g = 5
    assert np.abs(ma[:, g] - mb[:, g]).max() > 0.05  # the two networks disagree on glasses

    run = functools.partial(_cli, capsys)
    code, out = run("tagger", "parts-combine", a, "--take", f"glasses={b}", "-o", tmp_path / "k.safetensors")
    assert code == 0, out.err
    k = tp.load_partseg(tmp_path / "k.safetensors")
    mk = k.masks(x)
    np.testing.assert_array_equal(mk[:, g], mb[:, g])
    np.testing.assert_array_equal(np.delete(mk, g, 1), np.delete(ma, g, 1))
    assert k.part_share(x, "glasses") is not None and k.hair_colour(x, HAIR).answer.shape == (3,)
    # errors name what to fix: a part the donor does not mark, a malformed --take, a reader that already borrows
    c = _random_reader(tmp_path / "c.safetensors", 2, parts=("hair", "hat", "skin"))
    code, out = run("tagger", "parts-combine", a, "--take", f"glasses={c}", "-o", tmp_path / "x.safetensors")
    assert code != 0 and "marked by both networks" in out.err and "Traceback" not in out.err
    code, out = run("tagger", "parts-combine", a, "--take", "glasses", "-o", tmp_path / "x.safetensors")
    assert code != 0 and "PART=READER" in out.err
    code, out = run(
        "tagger", "parts-combine", tmp_path / "k.safetensors", "--take", f"hair={b}", "-o", tmp_path / "y"
    )
    assert code != 0 and "already borrows" in out.err
    assert not (tmp_path / "x.safetensors").exists()
