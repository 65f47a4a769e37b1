"""The foreign-style benchmark's label logic (bench/foreign/mapping.py): pure Python, no npm, tiny inputs."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

FOREIGN = Path(__file__).resolve().parents[2] / "bench" / "foreign"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"foreign_{name}", FOREIGN / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


m = _load("mapping")
hand = _load("handlabels")


# ---- colour rule ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "hex_colour, name, family",
    [
        ("0e0e0e", "black", "black/brown"),
        ("6a4e35", "brown", "black/brown"),
        ("d6b370", "blonde", "blonde/orange"),
        ("d56c0c", "orange", "blonde/orange"),
        ("c93305", "red", "red/pink"),
        ("f59797", "pink", "red/pink"),
        ("3eac2c", "green", "green"),
        ("605de4", "blue", "blue/aqua/purple"),
        ("e8e1e1", "white", "white/grey/silver"),
        ("#afafaf", "silver", "white/grey/silver"),
    ],
)
def test_nearest_hair_colour(hex_colour, name, family):
    lab = m.hair_colour_label(hex_colour)
    assert (lab.name, lab.family) == (name, family)


def test_reference_colours_label_themselves():
    for c, rgb in m.HAIR_REFERENCE_RGB.items():
        lab = m.hair_colour_label("".join(f"{v:02x}" for v in rgb))
        assert lab.name == c and lab.delta_e < 1e-6


def test_ambiguous_colours_are_not_sampled():
    lab = m.hair_colour_label("f27d65")  # salmon: red 27.7, orange 30.7
    assert lab.ambiguous and (lab.name, lab.other_family) == ("red", "orange")
    assert not m.hair_colour_label("0e0e0e").ambiguous
    for spec in m.STYLES.values():
        usable = spec.usable_palette()
        assert usable, spec.name
        assert not any(m.hair_colour_label(h).ambiguous or h in m.EXCLUDED_HEX for h in usable)
        assert set(usable) | set(spec.ambiguous_palette()) | set(m.EXCLUDED_HEX) >= set(spec.hair_palette)


def test_lab_of_white_and_black():
    assert np.allclose(m.srgb_to_lab((255, 255, 255)), (100, 0, 0), atol=0.05)
    assert np.allclose(m.srgb_to_lab((0, 0, 0)), (0, 0, 0), atol=1e-6)
    with pytest.raises(ValueError):
        m.hex_to_rgb("fff")


def test_families_partition_the_13_colours():
    members = [c for cs in m.HAIR_FAMILIES.values() for c in cs]
    assert sorted(members) == sorted(m.HAIR_COLORS) and len(members) == 13
    assert len(m.TAGS) == 34


# ---- option -> tag tables ------------------------------------------------------------------------------
def test_every_choice_labels_known_tags_only():
    for spec in m.STYLES.values():
        for slot, choices in spec.slots.items():
            assert choices, (spec.name, slot)
            for ch in choices:
                assert set(ch.labels) <= set(m.TAGS), (spec.name, ch.labels)
                assert all(v in (0, 1, None) for v in ch.labels.values())
                assert ch.weight > 0
                if ch.labels.get("long hair") == 1:
                    assert ch.labels.get("short hair") == 0  # the schema's long/short conflict


def test_sampled_avatars_are_deterministic_and_consistent():
    a = m.sample_style("avataaars", 40, seed=3)
    assert a == m.sample_style("avataaars", 40, seed=3)
    assert a != m.sample_style("avataaars", 40, seed=4)
    for it in a:
        lab = it["labels"]
        hairs = [lab[f"{c} hair"] for c in m.HAIR_COLORS]
        if lab["hat"] == 1:  # avataaars hats hide the hair: colour not scored
            assert it["hair_color"] is None and all(v is None for v in hairs)
        else:
            assert sum(hairs) == 1 and lab[f"{it['hair_color']} hair"] == 1
            assert it["hair_family"] == m.FAMILY_OF[it["hair_color"]]
        assert all(lab[f"{c} eyes"] is None for c in m.EYE_COLORS)  # no style shows eye colour
        assert it["options"]["hairColor"] == [it["hair_hex"]]
        assert it["hair_hex"] in m.STYLES["avataaars"].usable_palette()


def test_known_absent_and_glasses_options():
    for it in m.sample_style("adventurer", 30):
        assert it["labels"]["hat"] == 0  # the style has no headwear
        glasses = it["labels"]["glasses"]
        assert it["options"]["glassesProbability"] == 100 * glasses
        if glasses:
            assert "variant01" not in it["options"]["glasses"]  # variant01 is sunglasses
    for it in m.sample_style("personas", 30):
        assert (it["options"]["eyes"] == ["glasses"]) == (it["labels"]["glasses"] == 1)


def test_hand_labels_use_known_tags():
    assert len(hand.RENPY) == 13 and all(f.endswith(".png") and " " not in f for f in hand.RENPY)
    for labels in list(hand.PHOTOS.values()) + list(hand.WESNOTH.values()) + list(hand.RENPY.values()):
        for k, v in labels.items():
            if k == "hair color":
                assert v in m.HAIR_COLORS
            elif k == "hair family":
                assert v in m.HAIR_FAMILIES
            elif k != "face":
                assert k in m.TAGS and v in (0, 1)


# ---- metrics -------------------------------------------------------------------------------------------
def test_wilson_interval():
    lo, hi = m.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert m.wilson(0, 5)[0] == 0.0 and m.wilson(5, 5)[1] == pytest.approx(1.0)
    assert all(math.isnan(x) for x in m.wilson(0, 0))


def test_binary_metrics_skip_not_applicable():
    truth = [1, 1, 0, 0, None, 1]
    pred = [1, 0, 1, 0, 1, 1]
    r = m.binary_metrics(truth, pred)
    assert (r["n"], r["tp"], r["fp"], r["fn"], r["tn"]) == (5, 2, 1, 1, 1)
    assert r["precision"]["value"] == pytest.approx(2 / 3)
    assert r["recall"]["value"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3)
    assert r["chance"]["base_rate"] == pytest.approx(0.6)
    assert r["chance"]["f1_always_yes"] == pytest.approx(2 * 0.6 / 1.6)
    assert r["chance"]["accuracy_majority"] == pytest.approx(0.6)
    lo, hi = r["f1_ci95"]
    assert 0.0 <= lo <= r["f1"] <= hi <= 1.0


def test_binary_metrics_without_positives():
    r = m.binary_metrics([0, 0, 0, 0], [1, 0, 0, 1])
    assert r["f1"] is None and r["f1_ci95"] is None
    assert r["false_positive_rate"]["value"] == pytest.approx(0.5)


def test_multiclass_metrics():
    r = m.multiclass_metrics(["red", "red", "blue", None], ["red", "blue", "blue", "green"])
    assert r["accuracy"]["k"] == 2 and r["accuracy"]["n"] == 3
    assert r["chance"]["majority"] == pytest.approx(2 / 3)
    assert r["chance"]["random_at_label_distribution"] == pytest.approx((2 / 3) ** 2 + (1 / 3) ** 2)
    assert r["confusion"]["red"] == {"red": 1, "blue": 1}


# ---- the runner's reporting (no npm, no torch: fed a tiny made-up result) --------------------------------
def test_summary_and_markdown_from_a_tiny_result(tmp_path):
    import json

    run = _load("run")
    truth, pred = [1, 0, 1, None], [1, 1, 0, 0]
    res = {
        "set": "tiny",
        "images": 4,
        "command": "python bench/foreign/run.py --set tiny",
        "commit": "abc",
        "date": "2026-12-01",
        "tagger": {
            "threshold": 0.25,
            "images": 4,
            "hair_color_13": m.multiclass_metrics(["red", "blue", None, "red"], ["red", "red", "red", "red"]),
            "hair_family": m.multiclass_metrics(["red/pink"] * 3 + [None], ["red/pink"] * 4),
            "per_tag": {
                "glasses": m.binary_metrics(truth, pred),
                "hat": m.binary_metrics([0, 0, 0, 0], [1, 0, 0, 0]),
            },
            "predicted_hair_counts": {"red": 4},
        },
    }
    (tmp_path / "tiny.json").write_text(json.dumps(res))
    text = run.summary(tmp_path)
    assert "| tiny | 0.67 [" in text and "(2/3)" in text  # hair colour 13-way: 2 of 3 labelled
    assert "| **pooled** |" in text
    md = run.markdown(res)
    assert "| glasses | 3 | 2 |" in md and "hair colour, 13-way" in md
    by_file = {"a": {"labels": {"hat": 1, "smile": None}}, "b": {"labels": {"hat": 1, "smile": 0}}}
    assert not run._differ(by_file, "a", "b")  # a tag one image does not know is no disagreement
    by_file["b"]["labels"]["hat"] = 0
    assert run._differ(by_file, "a", "b")


def test_the_validation_style_is_apart_from_the_test_sets():
    """bench/foreign/validation.py (micah) samples deterministically with the same label rules, and does not
    touch mapping.STYLES, whose order seeds the test sets."""
    sys.path.insert(0, str(FOREIGN))
    try:
        import mapping as plain  # validation.py imports it by this name

        v = _load("validation")
    finally:
        sys.path.remove(str(FOREIGN))
    assert set(v.STYLES) == {"micah"} and not set(v.STYLES) & set(plain.STYLES)
    a, b = v.sample_style("micah", 40, 0), v.sample_style("micah", 40, 0)
    assert a == b and len({it["seed"] for it in a}) == 40
    for it in a:
        hides = it["options"]["hair"][0] in ("turban", "dougFunny")
        assert (it["hair_color"] is None) == hides
        assert it["hair_color"] is None or it["hair_color"] == plain.hair_colour_label(it["hair_hex"]).name
        assert it["labels"]["glasses"] == int(it["options"].get("glassesProbability", 0) == 100)
        assert it["labels"]["hat"] == int(it["options"]["hair"][0] == "turban")


def test_the_training_styles_are_apart_from_test_and_validation_and_label_consistently():
    """bench/foreign/training_styles.py: training data only, so none of its styles is a test or validation
    style; the hair hexes cover the 13 colours equally and are never ambiguous; hats hide the hair colour;
    open-peeps and notionists never name one (a colour option that tints accents; none at all); glasses and hat labels follow the
    options; and training_set.labels_row turns unknown labels into NaN."""
    sys.path.insert(0, str(FOREIGN))
    try:
        import mapping as plain

        v = _load("validation")
        t = _load("training_styles")
    finally:
        sys.path.remove(str(FOREIGN))
    assert not set(t.STYLES) & (set(plain.STYLES) | set(v.STYLES))
    counts = {c: 0 for c in plain.HAIR_COLORS}
    for h in t.TRAINING_HAIR_HEX:
        lab = plain.hair_colour_label(h)
        assert not lab.ambiguous
        counts[lab.name] += 1
    assert set(counts.values()) == {12}
    hats = 0
    for style in t.STYLES:
        items = t.sample_style(style, 60, 0)
        assert items == t.sample_style(style, 60, 0)
        for it in items:
            o, lab = it["options"], it["labels"]
            hat = int(
                o.get("hatProbability", 0) == 100
                or o.get("head", [""])[0] in ("hatBeanie", "hatHip", "turban", "hijab")
                or (style == "notionists" and o["hair"] == ["hat"])
                or (style == "bigheads" and o["hat"] in ("beanie", "turban"))
            )
            assert lab["hat"] == hat
            hats += hat
            if hat or style in ("open-peeps", "notionists"):
                assert it["hair_color"] is None and all(lab[f"{c} hair"] is None for c in plain.HAIR_COLORS)
            else:
                assert it["hair_color"] == plain.hair_colour_label(it["hair_hex"]).name
            on = o.get("glassesProbability", o.get("accessoriesProbability", 0)) == 100
            if style == "bigheads":  # props, not DiceBear options: every one is given, none is random
                on = o["accessory"] != "none"
                assert o["accessory"] != "shades" and o["mouth"] != "tongue" and o["facialHair"] == "none"
            assert lab["glasses"] == (0 if style == "toon-head" else int(on))
    assert hats > 20
    # a style added after the shipped recipes (bigheads) changes no earlier style's avatars: each style's seed is
    # its rank among the recipe's seven, as it was when they were the only ones
    assert list(t.RECIPE_STYLES) == [s for s in t.STYLES if s != "bigheads"]
    first = t.sample_style("toon-head", 3, 0)
    rank7 = sorted(t.RECIPE_STYLES).index("toon-head")
    again = [
        t.sample_avatar(t.STYLES["toon-head"], rng, f"toon-head-0-{i:04d}")
        for rng in [np.random.default_rng([0, 2000 + rank7])]
        for i in range(3)
    ]
    assert first == again
    sys.path.insert(0, str(FOREIGN))
    try:
        ts = _load("training_set")
    finally:
        sys.path.remove(str(FOREIGN))
    row = ts.labels_row({"labels": {**plain.empty_labels(), "hat": 1, "glasses": 0}})
    assert row[plain.TAGS.index("hat")] == 1 and row[plain.TAGS.index("glasses")] == 0
    assert np.isnan(row).sum() == len(plain.TAGS) - 2


def test_part_mask_twins_differ_in_one_option_and_masks_are_the_changed_pixels(tmp_path):
    """bench/foreign/part_masks.py: each avatar's twins change only the hair colour (to a far colour) or turn the
    glasses off; a mask is the pixels that changed, reduced to the sample size; unknown where no twin exists."""
    from PIL import Image

    sys.path.insert(0, str(FOREIGN))
    try:
        pm = _load("part_masks")
    finally:
        sys.path.remove(str(FOREIGN))
    items, jobs = pm.jobs_for("big-smile", 12, 0)
    by = {j["file"]: j for j in jobs}
    wearers = 0
    for it in items:
        stem = it["file"].removesuffix(".png")
        base, hair = by[f"{stem}.png"], by[f"{stem}-hair.png"]
        assert {k for k in base["options"] if base["options"][k] != hair["options"][k]} == {"hairColor"}
        assert hair["options"]["hairColor"] != base["options"]["hairColor"] and base["seed"] == hair["seed"]
        if it["labels"]["glasses"] == 1:
            wearers += 1
            off = by[f"{stem}-noglasses.png"]["options"]
            assert off["accessoriesProbability"] == 0 and {
                k for k in off if off[k] != base["options"][k]
            } == {"accessoriesProbability"}
        else:
            assert f"{stem}-noglasses.png" not in by
    assert (
        wearers > 0 and pm.mapping.far_colour("00ff10") == "ff00ff" and pm._glasses_off("toon-head") is None
    )
    assert all(not j["file"].endswith("-hair.png") for j in pm.jobs_for("open-peeps", 4, 0)[1])
    # masks from three synthetic renders at 256 px: a hair block and a thin glasses line
    base = np.full((256, 256, 3), 200, np.uint8)
    hair, nog = base.copy(), base.copy()
    hair[:128] = (0, 255, 0)
    base[140:142, 40:200] = 20  # a 2 px rim: glasses (the no-glasses twin lacks it)
    hair[140:142, 40:200] = 20
    for name, im in (("a.png", base), ("a-hair.png", hair), ("a-noglasses.png", nog)):
        Image.fromarray(im).save(tmp_path / name)
    m = pm.masks_of(tmp_path, {"file": "a.png", "labels": {"glasses": 1}}, "big-smile", 64)
    assert m.shape == (2, 64, 64) and m[0, :32].all() and not m[0, 32:].any()
    assert m[1, 35, 10:50].all() and m[1].sum() == 40  # one 64 px row: 2 of 4 source rows = 0.5 > 0.25
    (tmp_path / "a-hair.png").unlink()
    assert (
        pm.masks_of(tmp_path, {"file": "a.png", "labels": {"glasses": 1}}, "open-peeps", 64)[0] == 255
    ).all()


# ---- hair colour from what the render shows ---------------------------------------------------------------
def _twin_pair(option: str, twin: str, under=(230, 190, 170), sheen: float = 0.0, alpha: float = 1.0):
    """Two 64 px renders: a head (skin `under`) with hair over the top third drawn at `alpha`, then a white
    sheen of strength `sheen` over the hair, once in hair colour `option` and once in `twin`."""

    def render(hex_colour):
        im = np.zeros((64, 64, 3)) + np.array(under, float)
        hair = alpha * np.array(m.hex_to_rgb(hex_colour), float) + (1 - alpha) * np.array(under, float)
        im[:22] = (1 - sheen) * hair + sheen * 255.0
        return im.round().astype(np.uint8)

    return render(option), render(twin)


def test_drawn_hair_reads_the_colour_the_picture_shows():
    # flat hair: the option itself
    a, b = _twin_pair("c93305", m.far_colour("c93305"))
    d = m.drawn_hair(a, b, "c93305", m.far_colour("c93305"))
    assert d.hex == "c93305" and d.share == pytest.approx(22 / 64) and d.mode_share == 1.0
    # under a white sheen (personas draws some hair so): red option, drawn light enough to read as pink
    a, b = _twin_pair("e15c66", m.far_colour("e15c66"), sheen=0.3)
    d = m.drawn_hair(a, b, "e15c66", m.far_colour("e15c66"))
    assert d.hex != "e15c66" and m.hair_colour_label("e15c66").name == "red"
    item = {"labels": m.empty_labels(), "hair_color": "red", "hair_family": "red/pink"}
    assert m.relabel_drawn(item, d) and item["hair_color"] == "pink" and item["labels"]["pink hair"] == 1
    assert (
        item["labels"]["red hair"] == 0
        and item["hair_color_option"] == "red"
        and item["hair_drawn_hex"] == d.hex
    )
    # hair drawn thinly over the skin (a buzzcut): not visible, so no label at all
    a, b = _twin_pair("362c47", m.far_colour("362c47"), alpha=0.3)
    d = m.drawn_hair(a, b, "362c47", m.far_colour("362c47"))
    assert d.hex is None and d.share == 0.0
    item = {"labels": m.empty_labels(), "hair_color": "black", "hair_family": "black/brown"}
    assert m.relabel_drawn(item, d) and item["hair_color"] is None and item["hair_family"] is None
    assert all(item["labels"][f"{c} hair"] is None for c in m.HAIR_COLORS)
    # an unchanged label reports no change
    a, b = _twin_pair("3eac2c", m.far_colour("3eac2c"))
    item = {"labels": m.empty_labels(), "hair_color": "green", "hair_family": "green"}
    assert not m.relabel_drawn(item, m.drawn_hair(a, b, "3eac2c", m.far_colour("3eac2c")))
