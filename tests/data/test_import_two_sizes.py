"""`--faces` on pictures that are already framed heads: where the detector finds some faces and the close-up
rule keeps the rest whole, the dataset shows heads at two sizes, and the import says so (walked on 600 DiceBear
lorelei avatars: 421 face crops of a median 74 % of the picture, 179 whole pictures)."""

from __future__ import annotations

from charforge.data.importer import _drop_warnings


def _report(items):
    found: dict[str, int] = {}
    for it in items:
        found[it["found_by"]] = found.get(it["found_by"], 0) + 1
    return {"candidates": len(items), "kept": len(items), "found_by": found, "duplicates": [], "skipped": []}


def _items(n_whole, n_face, face_side):
    whole = [{"found_by": "close-up", "crop": [0, 0, 256, 256], "image_size": [256, 256]}] * n_whole
    face = [{"found_by": "face", "crop": [60, 50, face_side, face_side], "image_size": [256, 256]}] * n_face
    return whole + face


def test_close_ups_beside_much_tighter_face_crops_say_heads_come_at_two_sizes():
    items = _items(179, 382, 190) + _items(0, 39, 144)  # as the lorelei import: crops of 74 % and 56 %
    items[-39:] = [{**it, "found_by": "face (padded close-up)"} for it in items[-39:]]
    (w,) = [w for w in _drop_warnings(_report(items), "anime", 6, True, items) if "close-ups" in w]
    assert "179 samples were kept as close-ups" in w and "--no-closeups" in w
    assert "100% of their picture" in w and "421 detected faces show 74%" in w, w
    assert "two sizes" in w and "without --faces" in w


def test_no_two_sizes_note_when_the_crops_match_or_one_kind_is_rare():
    for items in (_items(179, 421, 230), _items(179, 10, 190)):  # crops 90 % of the picture; 10 faces in 189
        (w,) = [w for w in _drop_warnings(_report(items), "anime", 6, True, items) if "close-ups" in w]
        assert "two sizes" not in w, w
    assert _drop_warnings(_report(_items(179, 421, 144)), "anime", 6, True) == [  # no items given: as before
        "179 samples were kept as close-ups without a detected face (see 'Kept without a detected face' in the "
        "report); --no-closeups skips them instead"
    ]
