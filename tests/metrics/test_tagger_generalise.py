"""The generalising tag estimator: colour-keeping augmentation, part recolouring, calibration, abstention,
and the shipped tagger_estimate file (issue 13 point 3)."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from charforge.core.tags import HAIR_COLORS, make_girls_moe_schema
from charforge.tagger.net import (
    decide_or_unknown,
    default_tagger_path,
    estimate_tagger_path,
    fit_temperatures,
    load_tagger,
    tag_probabilities,
)
from charforge.train import tagger_augment as ta


def _flat(rgb, n=4, s=32):
    c = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1) * 2 - 1
    return c.expand(n, 3, s, s).clone()


def _hue(x: torch.Tensor) -> float:
    """Hue (turns) of the centre pixel of image 0."""
    r, g, b = ((x[0, :, x.shape[2] // 2, x.shape[3] // 2].clamp(-1, 1) + 1) / 2).tolist()
    return colorsys.rgb_to_hsv(r, g, b)[0]


@pytest.mark.parametrize("rgb", [(0.8, 0.4, 0.2), (0.2, 0.5, 0.9), (0.3, 0.8, 0.4)])
def test_style_steps_keep_the_hue_of_a_flat_patch(rgb):
    g = torch.Generator().manual_seed(0)
    x = _flat(rgb)
    h0 = _hue(x)
    exact = {
        "posterise": ta.posterise(x, torch.full((4,), 6.0)),
        "median": ta.median3(x),
        "thicken": ta.thicken_lines(x),
        "outlines": ta.add_outlines(x, g),
        "blur": ta.blur(x, torch.full((4,), 1.0)),
        "resample": ta.resample(x, g),
        "frame": ta.frame(x, g),
        "texture": ta.texture(x, g),
    }
    for name, y in exact.items():
        assert y.shape == x.shape, name
        # posterise rounds each channel to 6 levels: the hue moves by up to ~1/30 turn, the others keep it
        assert abs(_hue(y) - h0) < (0.05 if name == "posterise" else 1e-3), (name, _hue(y), h0)
    for y in (exact["median"], exact["thicken"], exact["blur"]):
        torch.testing.assert_close(y, x, atol=1e-5, rtol=0)  # a flat patch has no edge to move: unchanged
    # tone: scalar contrast/brightness/saturation keep the hue exactly; the per-channel gamma moves it a little
    assert abs(_hue(ta.tone(x, g)) - h0) < 0.02
    assert abs(_hue(ta.jpeg(x, g)) - h0) < 0.03
    y = ta.style_augment(x, g)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1


def test_outline_steps_keep_shapes():
    """A dark 1 px line on a flat patch: thickening widens it, the median removes it, and neither moves the
    coloured square beside it."""
    x = _flat((0.9, 0.8, 0.3), n=1, s=24)
    x[:, :, :, 12] = -0.9  # a dark vertical line
    x[:, :, 4:10, 2:8] = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1) * 2 - 1  # a blue square
    thick = ta.thicken_lines(x)
    assert (thick[0, 0, :, 11:14] < -0.5).all() and (thick[0, 0, :, 15] > 0).all()
    med = ta.median3(x)
    assert (med[0, 0, :, 12] > 0).all()  # the 1 px line is gone
    torch.testing.assert_close(med[:, :, 5:9, 3:7], x[:, :, 5:9, 3:7])  # the square's inside is kept
    torch.testing.assert_close(thick[:, :, 4:10, 2:8], x[:, :, 4:10, 2:8])


def test_cutouts_are_small():
    g = torch.Generator().manual_seed(1)
    x = _flat((0.5, 0.5, 0.5), n=64, s=32)
    y = ta.cutouts(x, g, frac=0.2)
    changed = (y != x).any(dim=1).float().mean(dim=(1, 2))
    assert changed.max() <= (0.2 * 32 + 1) ** 2 / 32**2 + 1e-6


def test_nearest_tag_is_the_palette_colour_and_ambiguous_is_unlabelled():
    from charforge.creators.builtin import palette

    table = palette.table(palette.HAIR_RGB, HAIR_COLORS)
    fam = ta.colour_family(HAIR_COLORS)
    assert list(ta.nearest_tag(table, table, fam)) == list(range(len(HAIR_COLORS)))
    mid = (table[HAIR_COLORS.index("blue")] + table[HAIR_COLORS.index("green")]) / 2
    lab = ta.srgb_to_lab(np.stack([table[HAIR_COLORS.index("blue")], table[HAIR_COLORS.index("green")]]))
    assert np.allclose(
        ta.lab_to_srgb(lab), table[[HAIR_COLORS.index("blue"), HAIR_COLORS.index("green")]], atol=1e-6
    )
    far = ta.nearest_tag(mid[None], table, fam, margin=1000.0)
    assert far[0] == -1


def test_part_recolouring_reproduces_the_creator_render():
    """Painting the hair in the palette's blue reproduces the creator's own render with blue hair."""
    from charforge.creators.builtin import BuiltinCreator, palette

    creator = BuiltinCreator()
    batch = creator.sample(6, np.random.default_rng(3))
    j = creator.space.cat_index("hair_color")
    batch.cat[:, j] = HAIR_COLORS.index("brown")
    batch.cat[:, creator.space.cat_index("ribbon")] = 0  # the ribbon swaps colour with the hair: keep it off
    parts = ta.render_parts(creator, batch, 32)
    blue = palette.table(palette.HAIR_RGB, HAIR_COLORS)[HAIR_COLORS.index("blue")]
    img = (
        parts.base.astype(np.float32) / 255
        + parts.coef["hair"].astype(np.float32)
        / ta.COEF_SCALE
        * (blue - parts.colour["hair"])[:, None, None, :]
    )
    cat = batch.cat.copy()
    cat[:, j] = HAIR_COLORS.index("blue")
    cont = batch.cont.copy()
    for name in ta.ZEROED:
        cont[:, [p.name for p in creator.space.continuous].index(name)] = 0
    truth = creator.render(type(batch)(cat, cont), 32).astype(np.float32) / 255
    err = np.abs(np.clip(img, 0, 1) - truth)
    assert err.mean() < 2 / 255 and np.quantile(err, 0.99) < 8 / 255

    schema = make_girls_moe_schema()
    out, tags = ta.recolour(parts, np.arange(6), np.random.default_rng(0), schema, p_part=1.0)
    assert out.shape == (6, 32, 32, 3) and 0 <= out.min() and out.max() <= 1
    hair = tags[:, :13]
    assert set(hair.sum(axis=1)) <= {0.0, 1.0}  # one hair tag, or unlabelled (ambiguous colour)


def test_temperature_calibration_reduces_the_nll():
    schema = make_girls_moe_schema()
    rng = np.random.default_rng(0)
    n, t = 400, len(schema)
    targets = np.zeros((n, t), np.float32)
    targets[np.arange(n), rng.integers(0, 13, n)] = 1
    targets[np.arange(n), 13 + rng.integers(0, 10, n)] = 1
    targets[:, 23:] = rng.random((n, 11)) < 0.3
    # over-confident logits: the right answer 70 % of the time, stated at ~x8 the scale it deserves
    signal = np.where(rng.random((n, t)) < 0.7, targets, 1 - targets) * 2 - 1
    logits = (signal * 8 + rng.normal(0, 1, (n, t))).astype(np.float32)
    fit, val = slice(0, 200), slice(200, None)
    temp = fit_temperatures(logits[fit], targets[fit], schema)
    assert temp.shape == (t,) and (temp > 1).all()

    def nll(tmp):
        p = tag_probabilities(torch.from_numpy(logits[val] / tmp), schema).numpy()
        y = targets[val]
        eps = 1e-7
        group = -np.log(np.maximum((p[:, :23] * y[:, :23]).sum(axis=1) / 2, eps)).mean()
        ind = -(y[:, 23:] * np.log(p[:, 23:] + eps) + (1 - y[:, 23:]) * np.log(1 - p[:, 23:] + eps)).mean()
        return group + ind

    assert nll(temp) < 0.7 * nll(np.ones(t, np.float32))


def test_abstention_says_unknown_below_the_confidence():
    schema = make_girls_moe_schema()
    p = np.zeros((3, len(schema)), np.float32)
    p[:, :13] = 0.5 / 12
    p[0, 2] = 0.5 + 0.5 / 12  # sure enough: black hair at 0.54
    p[1, :13] = 1 / 13  # flat: unknown
    p[2, :13] = 0.1
    p[2, 4] = 1 - 0.1 * 12  # 0.4 < 0.5
    p[:, 13:23] = 0.1
    hat, glasses = schema.index("hat"), schema.index("glasses")
    p[:, hat] = [0.95, 0.6, 0.1]
    p[:, glasses] = [0.05, 0.35, 0.8]
    tags, unknown = decide_or_unknown(p, schema, {"group": 0.5, "independent": 0.7})
    assert tags[0, 2] == 1 and not unknown[0, :13].any()
    assert unknown[1, :13].all() and tags[1, :13].sum() == 0  # an unknown group is an all-zero row
    assert unknown[2, :13].all() and tags[2, :13].sum() == 0
    assert list(tags[:, hat]) == [1, 0, 0] and list(unknown[:, hat]) == [False, True, False]
    assert list(tags[:, glasses]) == [0, 0, 1] and list(unknown[:, glasses]) == [False, True, False]
    # a float sets both; 0 abstains never
    _, none = decide_or_unknown(p, schema, 0.0)
    assert not none.any()


ESTIMATE = estimate_tagger_path()


@pytest.mark.skipif(ESTIMATE is None, reason="this install ships no tagger_estimate")
def test_shipped_estimator_loads_calibrated_and_reads_creator_renders():
    from charforge.creators.builtin import BuiltinCreator

    assert default_tagger_path() != ESTIMATE and default_tagger_path("estimate") == ESTIMATE
    tagger = load_tagger(ESTIMATE)
    assert tagger.calibrated and tagger.temperature.shape == (len(tagger.schema),)
    # session 11: hats and glasses blend in a probe on ImageNet features (read with the shipped part reader)
    assert tagger.probe is not None and tagger.probe.tags == ["hat", "glasses"] and tagger.parts is not None
    assert tagger.probe.crops == ["full", "top", "eyes"] and tagger.probe.blend == 0.75
    assert np.all(tagger.temperature > 0)
    creator = BuiltinCreator()
    batch = creator.sample(24, np.random.default_rng(12345))
    images, truth = creator.render(batch, 64), creator.derive_tags(batch)
    proba = tagger.predict_proba(images)
    assert proba.shape == (24, len(tagger.schema))
    assert (proba[:, :13].argmax(1) == truth[:, :13].argmax(1)).mean() >= 0.9
    pred = tagger.predict_tags(images)
    for tag in ("glasses", "hat"):
        j = tagger.schema.index(tag)
        assert (pred[:, j] == truth[:, j]).mean() >= 0.9, tag
    tags, unknown = tagger.predict_tags(images, abstain=True)
    assert tags.shape == unknown.shape == (24, len(tagger.schema)) and unknown.mean() < 0.3


@pytest.mark.parametrize("style", ["painterly", "manga", "pixel", "chibi"])
def test_multi_style_part_recolouring_reproduces_the_styled_render(style):
    """A multi-style character's hair painted blue before its finishing pass (halftone dots, pixel grid,
    brush texture) matches the creator's own render of that character with blue hair in that style."""
    from charforge.creators.builtin import BuiltinCreator, palette

    creator = BuiltinCreator(styles=("cel", style))
    space = creator.space
    batch = creator.sample(6, np.random.default_rng(5))
    batch.cat[:, space.cat_index("style")] = 1
    j = space.cat_index("hair_color")
    batch.cat[:, j] = HAIR_COLORS.index("brown")
    batch.cat[:, space.cat_index("ribbon")] = 0
    parts = ta.render_parts(creator, batch, 32)
    assert list(parts.style) == [ta.STYLE_CODES[style]] * 6
    blue = palette.table(palette.HAIR_RGB, HAIR_COLORS)[HAIR_COLORS.index("blue")]
    img = (
        parts.base.astype(np.float32) / 255
        + parts.coef["hair"].astype(np.float32)
        / ta.COEF_SCALE
        * (blue - parts.colour["hair"])[:, None, None, :]
    )
    painted = np.clip(img, 0, 1).astype(np.float32)
    img = ta.finish(painted, parts.style)
    cat, cont = batch.cat.copy(), batch.cont.copy()
    cat[:, j] = HAIR_COLORS.index("blue")
    for name in ta.ZEROED:
        cont[:, [p.name for p in space.continuous].index(name)] = 0
    truth = creator.render(type(batch)(cat, cont), 32).astype(np.float32) / 255
    err = np.abs(img - truth)
    # pixel art snaps cell means to 8 levels: a cell on a rounding edge may land one level (36/255) away
    assert err.mean() < 3 / 255 and np.quantile(err, 0.95) < (40 if style == "pixel" else 10) / 255
    # the parts were drawn before the finishing pass: without `finish` the picture is not the style's
    if style != "chibi":  # (chibi has no finishing pass)
        assert np.abs(painted - truth).mean() > 2 * err.mean()


def test_skin_any_paints_skin_off_the_skin_tones_and_keeps_the_hair_tags():
    from charforge.creators.builtin import BuiltinCreator

    creator = BuiltinCreator()
    batch = creator.sample(8, np.random.default_rng(2))
    parts = ta.render_parts(creator, batch, 32)
    schema = make_girls_moe_schema()
    a, ta_ = ta.recolour(parts, np.arange(8), np.random.default_rng(0), schema, p_part=1.0)
    b, tb = ta.recolour(parts, np.arange(8), np.random.default_rng(0), schema, p_part=1.0, skin_any=0.0)
    np.testing.assert_array_equal(a, b)  # the default is the old behaviour, stream for stream
    np.testing.assert_array_equal(ta_, tb)
    c, tc = ta.recolour(parts, np.arange(8), np.random.default_rng(0), schema, p_part=1.0, skin_any=1.0)
    np.testing.assert_array_equal(ta_, tc)  # same draws for hair and eyes: same tags
    skin = parts.coef["skin"].astype(np.float32).sum(-1) > 150  # pixels that are mostly skin
    assert np.abs(c - a)[skin].mean() > 0.05


def test_multi_style_dataset_trains_a_34_tag_estimator(tmp_path):
    """`drop_groups=("style",)` on a multi-style dataset: recoloured multi-style parts, a 34-tag calibrated
    tagger (the importer's width), and a fingerprint that leaves the new options out at their defaults."""
    from charforge.data.build import build_from_creator
    from charforge.train.tagger import TaggerTrainOptions, learned_schema, train_tagger

    data = build_from_creator(
        tmp_path / "ds", creator="builtin-styles=manga,pixel", n=40, size=32, seed=0, show_progress=False
    )
    assert len(data.schema) == 40
    schema, cols = learned_schema(data.schema, ("style",))
    assert schema.tags == make_girls_moe_schema().tags and len(cols) == 34
    assert [data.schema.tags[c] for c in cols] == list(schema.tags)
    with pytest.raises(Exception, match="no exclusive tag group"):
        learned_schema(data.schema, ("mood",))
    opts = TaggerTrainOptions(
        steps=3,
        batch_size=8,
        recolour=0.7,
        recolour_n=16,
        clean_share=0.5,
        style=True,
        calibrate=True,
        skin_any=0.3,
        drop_groups=("style",),
        colour_true=True,
        zoom=(0.5, 1.8),
        threads=1,
    )
    res = train_tagger(tmp_path / "ds", tmp_path / "t", opts=opts, image_size=32, channels=4, feat_dim=8)
    tagger = load_tagger(res.path)
    assert tagger.calibrated and len(tagger.schema) == 34 and tagger.schema.tags == schema.tags
    assert tagger.predict_proba(np.asarray(data.images[:4])).shape == (4, 34)
    assert any(f.name.startswith("parts_") for f in (tmp_path / "t" / "part_renders").iterdir())
    from charforge.models.io import load_model

    fp = load_model(res.path, kind="tagger")[1]["fingerprint"]["opts"]
    assert fp["zoom"] == [0.5, 1.8] and fp["drop_groups"] == ["style"] and fp["colour_true"] is True
    plain = train_tagger(tmp_path / "ds", tmp_path / "u", opts=TaggerTrainOptions(steps=1, batch_size=4))

    fp = load_model(plain.path, kind="tagger")[1]["fingerprint"]["opts"]
    assert (
        "skin_any" not in fp
        and "drop_groups" not in fp
        and "colour_true" not in fp
        and len(load_tagger(plain.path).schema) == 40
    )


def test_colour_steps_move_the_tracked_colours_like_the_pixels():
    """`style_augment(colours=...)`: posterisation and tone move a flat patch and its tracked colour alike,
    the random draws do not change, and `relabel_colours` names the moved colour."""
    from charforge.creators.builtin import palette

    rgb = [(0.52, 0.33, 0.20), (0.96, 0.53, 0.17), (0.73, 0.76, 0.84), (0.81, 0.17, 0.19)]
    x = torch.cat([_flat(c, n=1, s=16) for c in rgb])  # (4, 3, 16, 16)
    col = torch.tensor(rgb, dtype=torch.float32).view(4, 3, 1, 1) * 2 - 1  # (B, 3, K=1, 1)
    only = ta.StyleOptions(
        zoom=(1.0, 1.0), **{f: 0.0 for f in ta.StyleOptions.__dataclass_fields__ if f.startswith("p_")}
    )
    only.p_tone, only.p_posterise = 1.0, 1.0
    y, moved = ta.style_augment(x, torch.Generator().manual_seed(3), only, colours=col)
    torch.testing.assert_close(moved[:, :, 0, 0], y[:, :, 8, 8], atol=1e-5, rtol=0)
    assert (moved - col).abs().max() > 0.02  # the colours did move
    y0 = ta.style_augment(x, torch.Generator().manual_seed(3), only)
    torch.testing.assert_close(y, y0)  # tracking colours draws nothing extra
    full, _ = ta.style_augment(x, torch.Generator().manual_seed(4), colours=col)
    torch.testing.assert_close(full, ta.style_augment(x, torch.Generator().manual_seed(4)))

    schema = make_girls_moe_schema()
    hair = palette.table(palette.HAIR_RGB, HAIR_COLORS)
    tags = np.zeros((3, len(schema)), np.float32)
    grey_edge = (hair[HAIR_COLORS.index("gray")] + hair[HAIR_COLORS.index("brown")]) / 2
    shown = {
        "hair": np.stack([hair[HAIR_COLORS.index("orange")], hair[HAIR_COLORS.index("silver")], grey_edge])
    }
    out = ta.relabel_colours(tags, shown, schema)
    assert out[0, HAIR_COLORS.index("orange")] == 1 and out[1, HAIR_COLORS.index("silver")] == 1
    assert out[:2, :13].sum() == 2 and out[:, 13:].sum() == 0


def test_test_time_views_average_the_probabilities_and_travel_in_the_file(tmp_path):
    from charforge.errors import UserError
    from charforge.tagger.net import Tagger, TaggerConfig, TaggerNet, save_tagger, view

    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(view(x, "flip"), x.flip(-1))
    torch.testing.assert_close(view(x, "zoom:1"), x, atol=1e-5, rtol=0)
    big = view(x, "zoom:2")  # the centre half, scaled up: its centre 2x2 block is x's centre
    torch.testing.assert_close(big[:, :, 7:9, 7:9].mean(), x[:, :, 7:9, 7:9].mean(), atol=0.1, rtol=0)
    small = view(
        torch.ones(1, 3, 16, 16), "zoom:0.5"
    )  # shrinks onto the edge colours: a flat image stays flat
    torch.testing.assert_close(small, torch.ones(1, 3, 16, 16))
    for bad in ("rotate", "zoom:", "zoom:9"):
        with pytest.raises(UserError):
            view(x, bad)

    schema = make_girls_moe_schema()
    torch.manual_seed(0)
    net = TaggerNet(TaggerConfig(n_tags=len(schema), image_size=16, channels=4, feat_dim=8))
    images = (np.random.default_rng(0).random((3, 16, 16, 3)) * 255).astype(np.uint8)
    plain = Tagger(net, schema)
    both = Tagger(net, schema, views=("flip",))
    want = (plain.predict_proba(images) + plain.predict_proba(images[:, :, ::-1].copy())) / 2
    np.testing.assert_allclose(both.predict_proba(images), want, atol=1e-5)
    with pytest.raises(UserError):
        Tagger(net, schema, views=("blur",))
    path = save_tagger(tmp_path / "t.safetensors", net, schema, extra={"views": ["flip", "zoom:1.25"]})
    assert load_tagger(path).views == ("flip", "zoom:1.25")
    assert load_tagger(save_tagger(tmp_path / "u.safetensors", net, schema)).views == ()


def test_cli_exposes_the_estimator_options(tmp_path, capsys):
    """`tagger train` takes --drop-groups, --skin-any, --colour-true and --zoom (the estimator candidates'
    options) and refuses a bad zoom with a message, not a traceback."""
    from charforge.cli import main
    from charforge.data.build import build_from_creator
    from charforge.models.io import load_model

    build_from_creator(
        tmp_path / "ds", creator="builtin-styles=manga,pixel", n=24, size=32, seed=0, show_progress=False
    )
    args = ["tagger", "train", "--data", str(tmp_path / "ds"), "--size", "32", "--steps", "2"]
    args += ["--batch-size", "8", "--channels", "4", "--feat-dim", "8", "--threads", "1"]
    main([*args, "-o", str(tmp_path / "t"), "--recolour", "0.7", "--recolour-n", "16", "--style"]
         + ["--drop-groups", "style", "--skin-any", "0.3", "--colour-true", "--zoom", "0.5,1.8"])  # fmt: skip
    meta = load_model(tmp_path / "t" / "tagger.safetensors", kind="tagger")[1]
    fp = meta["fingerprint"]["opts"]
    assert fp["drop_groups"] == ["style"] and fp["skin_any"] == 0.3 and fp["colour_true"] is True
    assert fp["zoom"] == [0.5, 1.8] and len(meta["tag_schema"]["groups"]) == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([*args, "-o", str(tmp_path / "u"), "--zoom", "big"])
    err = capsys.readouterr().err
    assert e.value.code != 0 and "--zoom" in err and "Traceback" not in err


def test_unknown_labels_are_masked_in_the_tag_loss():
    """NaN targets (an --extra set's unknown labels) add nothing and pull no gradient; known ones are as before."""
    from charforge.tagger.net import tag_loss

    schema = make_girls_moe_schema()
    torch.manual_seed(0)
    logits = torch.randn(3, len(schema), requires_grad=True)
    known = torch.zeros(3, len(schema))
    known[:, schema.tags.index("blonde hair")] = 1
    known[:, schema.tags.index("hat")] = 1
    partial = known.clone()
    hair = schema.group_slices()[0]
    partial[1, hair] = float("nan")  # row 1: hair colour unknown
    partial[2, schema.tags.index("glasses")] = float("nan")  # row 2: glasses unknown
    loss = tag_loss(logits, partial, schema)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad[1, hair].abs().sum() == 0 and logits.grad[2, schema.tags.index("glasses")] == 0
    assert logits.grad[0, hair].abs().sum() > 0 and logits.grad[1, schema.tags.index("hat")] != 0
    # all known: the same loss as without the masking path
    full = tag_loss(logits.detach(), known, schema)
    ref = tag_loss(logits.detach(), known.clone(), schema)
    assert torch.equal(full, ref)


def _extra_file(path, schema, n=10, size=32, **override):
    rng = np.random.default_rng(0)
    tags = ["hat", "glasses", "red hair", "blue hair"]
    labels = rng.integers(0, 2, (n, 4)).astype(np.float32)
    labels[::3, 2:] = np.nan
    labels[1, 0] = np.nan
    arrays = {
        "images": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        "labels": labels,
        "tags": np.array(tags),
    } | override
    np.savez(path, **arrays)
    return path


def test_extra_labelled_images_join_the_batches_with_their_unknowns(tmp_path, capsys):
    """--extra: a share of every batch comes from the extra file (labels in schema order, NaN where unknown),
    the fingerprint records the file's content, a bad file is a message naming it and the field."""
    from charforge.cli import main
    from charforge.data.build import build_from_creator
    from charforge.data.packed import load_packed
    from charforge.errors import UserError
    from charforge.models.io import load_model
    from charforge.train.tagger import TaggerTrainOptions, _batch, load_extra

    build_from_creator(tmp_path / "ds", creator="builtin", n=24, size=32, seed=0, show_progress=False)
    data = load_packed(tmp_path / "ds")
    extra = load_extra(_extra_file(tmp_path / "x.npz", data.schema), data.schema)
    assert extra.labels.shape == (10, len(data.schema))
    assert np.isnan(extra.labels[:, data.schema.tags.index("smile")]).all()  # not in the file: unknown
    assert extra.labels[0, data.schema.tags.index("hat")] in (0, 1)
    opts = TaggerTrainOptions(batch_size=8, extra=str(tmp_path / "x.npz"), extra_share=0.25)
    x, y = _batch(data, np.arange(20), 0, opts, 32, extra=extra)
    assert x.shape == (8, 3, 32, 32) and y.shape == (8, len(data.schema))
    assert np.isnan(y[:6, data.schema.tags.index("smile")].numpy()).sum() == 2  # the 2 extra rows, first
    assert not np.isnan(y[2:].numpy()).any()
    # without --extra, the batch is exactly what it was
    x0, y0 = _batch(data, np.arange(20), 0, TaggerTrainOptions(batch_size=8), 32)
    x1, y1 = _batch(data, np.arange(20), 0, TaggerTrainOptions(batch_size=8), 32)
    assert torch.equal(x0, x1) and torch.equal(y0, y1)
    args = ["tagger", "train", "--data", str(tmp_path / "ds"), "--size", "32", "--steps", "2"]
    args += ["--batch-size", "8", "--channels", "4", "--feat-dim", "8", "--threads", "1"]
    main([*args, "-o", str(tmp_path / "t"), "--extra", str(tmp_path / "x.npz"), "--extra-share", "0.3"])
    fp = load_model(tmp_path / "t" / "tagger.safetensors", kind="tagger")[1]["fingerprint"]["opts"]
    assert fp["extra"] == extra.sha256 and fp["extra_share"] == 0.3
    bad = _extra_file(tmp_path / "bad.npz", data.schema, labels=np.full((10, 4), 2.0, np.float32))
    with pytest.raises(UserError, match=r"bad.npz: row 0, tag 'hat': label 2.0"):
        load_extra(bad, data.schema)
    with pytest.raises(UserError, match="tags not in the dataset's schema"):
        load_extra(
            _extra_file(tmp_path / "t2.npz", data.schema, tags=np.array(["hat", "x", "y", "z"])), data.schema
        )
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([*args, "-o", str(tmp_path / "u"), "--extra", str(tmp_path / "missing.npz")])
    err = capsys.readouterr().err
    assert e.value.code != 0 and "missing.npz: no such file" in err and "Traceback" not in err
