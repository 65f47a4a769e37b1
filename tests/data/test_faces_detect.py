"""Face detectors and the 1.5x zoomed-out square crop (charforge.data.faces)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from charforge.data.faces import Box, centre_square, crop_padded, crop_sample, detect_faces, zoom_box
from charforge.errors import UserError


def coord_image(h: int, w: int) -> np.ndarray:
    """Pixel (y, x) holds (x, y, 7): a crop tells exactly where it came from."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx, yy, np.full_like(xx, 7)], axis=2).astype(np.uint8)  # (H, W, 3)


def test_zoom_box_geometry():
    # face 20x20 at (40, 20): centre (50, 30); 1.5x -> 30x30 square from (35, 15)
    assert zoom_box(Box(40, 20, 20, 20), 1.5) == Box(35, 15, 30, 30)
    # non-square face: the side follows the longer edge, centred on the box centre (50, 40)
    assert zoom_box(Box(40, 20, 20, 40), 1.5) == Box(20, 10, 60, 60)
    assert zoom_box(Box(10, 10, 10, 10), 1.0) == Box(10, 10, 10, 10)
    assert centre_square(80, 100) == Box(10, 0, 80, 80)


def test_crop_cuts_the_zoomed_square_exactly():
    img = coord_image(80, 100)
    sample, square = crop_sample(img, Box(40, 20, 20, 20), size=30, crop_scale=1.5)  # no resize at 30 px
    assert square == Box(35, 15, 30, 30)
    assert sample.shape == (30, 30, 3)
    assert sample[0, 0].tolist() == [35, 15, 7] and sample[-1, -1].tolist() == [64, 44, 7]


def test_crop_pads_by_edge_replication():
    img = coord_image(60, 60)
    sample, square = crop_sample(img, Box(0, 0, 20, 20), size=30, crop_scale=1.5)
    assert square == Box(-5, -5, 30, 30)
    np.testing.assert_array_equal(
        sample[:5, 5:], np.broadcast_to(sample[5:6, 5:], (5, 25, 3))
    )  # top rows repeat row 0
    np.testing.assert_array_equal(sample[5:, :5, 0], 0)  # left columns repeat column x=0
    np.testing.assert_array_equal(sample[5:, 5:], img[:25, :25])
    far = crop_padded(img, Box(100, 100, 4, 4))  # entirely outside: the nearest corner pixel
    assert (far == img[59, 59]).all()


def test_crop_resize_is_antialiased_and_none_is_centre():
    stripes = np.zeros((200, 200, 3), np.uint8)
    stripes[:, ::2] = 255  # 1-px stripes alias badly under nearest-neighbour
    sample, square = crop_sample(stripes, None, size=20)
    assert square == Box(0, 0, 200, 200)
    assert abs(float(sample.mean()) - 127.5) < 10 and sample.std() < 20


def test_unknown_detector_is_a_user_error():
    with pytest.raises(UserError, match="anime, human, human-dlib, none"):
        detect_faces(np.zeros((32, 32, 3), np.uint8), "cats")


@pytest.mark.parametrize("kind", ["human", "human-dlib"])
def test_human_detectors_find_the_astronaut(kind):
    from skimage import data

    img = data.astronaut()  # (512, 512, 3); her face is around x 175-265, y 65-165
    boxes = detect_faces(img, kind)
    assert boxes, f"{kind} found no face"
    b = boxes[0]
    cx, cy = b.x + b.w / 2, b.y + b.h / 2
    assert 190 < cx < 250 and 90 < cy < 150 and 60 < b.w < 140
    assert detect_faces(np.full((128, 128, 3), 128, np.uint8), kind) == []
    small = detect_faces(img, kind, max_side=256)[0]  # searched at half size, box scaled back
    assert abs(small.x + small.w / 2 - cx) < 12 and abs(small.y + small.h / 2 - cy) < 12


def test_anime_detector_returns_a_list_for_a_blank_image():
    assert detect_faces(np.full((128, 128, 3), 255, np.uint8), "anime") == []


def test_anime_detector_finds_faces_in_builtin_renders(tmp_path):
    """Guards the Pillow < 12 pin: with Pillow 12 animeface silently returns [] for every image."""
    builtin = pytest.importorskip("charforge.creators.builtin")
    if not hasattr(builtin, "BuiltinCreator"):
        pytest.skip("the built-in creator is not written yet")
    creator = builtin.BuiltinCreator()
    images = creator.render(creator.sample(8, np.random.default_rng(0)), 128)  # (8, 128, 128, 3)
    found = [b for im in images for b in detect_faces(np.ascontiguousarray(im), "anime")]
    assert found, "animeface found no face in 8 built-in renders (is Pillow >= 12 installed?)"
    for b in found:  # the portraits are head-and-shoulders: the face sits in the middle of the frame
        assert 20 < b.x + b.w / 2 < 108 and 20 < b.y + b.h / 2 < 108 and 16 < b.w < 110, b
    from charforge.data.importer import import_folder

    (tmp_path / "src").mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / "src" / f"r{i}.png")
    report = import_folder(
        tmp_path / "src", tmp_path / "out", size=32, faces="anime", closeups=False, progress=False
    )
    with_face = [i for i, im in enumerate(images) if detect_faces(np.ascontiguousarray(im), "anime")]
    items = report.dataset.manifest["items"]
    direct = [it["source"] for it in items if it["found_by"] == "face"]
    assert direct == [f"r{i}.png" for i in with_face]  # found at once: exactly what the detector sees
    second = [it for it in items if it["found_by"] != "face"]  # the rest only on the padded second look
    assert all(it["found_by"] == "face (padded close-up)" for it in second)
    assert all(it["face_box"] is not None for it in items)  # close-ups off: nothing kept without a box
    assert report.kept + len(report.skipped) + len(report.duplicates) == 8
    assert report.faces_found == len(with_face) + len(second)


def test_import_with_human_faces_crops_the_face(tmp_path):
    from skimage import data

    from charforge.data.importer import import_folder

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(data.astronaut()).save(src / "astronaut.png")
    Image.new("RGB", (128, 128), (90, 90, 90)).save(src / "wall.png")
    report = import_folder(src, tmp_path / "out", size=32, faces="human", progress=False)
    assert report.kept == 1 and report.faces_found == 1
    [wall] = report.skipped
    assert wall["path"] == "wall.png" and wall["reason"].startswith("no face found by the 'human' detector")
    assert "not a close-up" in wall["reason"]  # a flat wall is not kept as a face filling the frame
    item = report.dataset.manifest["items"][0]
    x, y, w, h = item["face_box"]
    assert item["source"] == "astronaut.png" and 190 < x + w / 2 < 250
    assert report.dataset.images.shape == (1, 32, 32, 3)


def test_select_faces_keeps_comparable_separate_faces():
    from charforge.data.faces import select_faces

    big, twin, inside, tiny = (
        Box(0, 0, 100, 100),
        Box(150, 0, 90, 90),
        Box(10, 10, 80, 80),
        Box(300, 0, 30, 30),
    )
    assert select_faces([big, twin, inside, tiny], max_faces=8) == [big, twin]  # overlap and a speck dropped
    assert select_faces([big, twin], max_faces=1) == [big]


def test_head_square_of_a_standing_figure():
    from charforge.data.faces import figure_box, head_square

    img = np.full((600, 200, 3), 255, np.uint8)  # white canvas
    img[20:100, 60:140] = (200, 80, 60)  # head
    img[100:580, 40:160] = (30, 30, 120)  # body, wider than the head
    assert figure_box(img) == Box(40, 20, 120, 560)
    head = head_square(img)
    assert head.y <= 20 and head.y + head.h >= 100 and head.h <= 200  # covers the head, not the body
    assert abs(head.x + head.w / 2 - 100) <= 2  # centred on the head
    assert head_square(np.full((100, 100, 3), 255, np.uint8)) is None  # not tall: no head crop
    squat = np.full((400, 200, 3), 255, np.uint8)  # a tall canvas with a compact figure at the top
    squat[10:110, 50:150] = (10, 200, 10)
    sq = head_square(squat)
    assert sq.y <= 10 and sq.y + sq.h >= 110


def test_the_head_square_of_a_visual_novel_sprite_keeps_the_chin():
    """A visual-novel sprite cut at the thigh (the geometry of Debian's renpy sprites: 700 px tall, 320 wide, the
    chin at 0.24-0.39 of the figure's height) keeps the whole face in its head square, not only the eyes."""
    from charforge.data.faces import head_square

    img = np.full((720, 320, 3), 255, np.uint8)
    img[10:120, 30:290] = (240, 150, 60)  # hair
    img[100:277, 70:250] = (250, 220, 200)  # face, chin at (277 - 10) / 710 = 0.38 of the figure
    img[277:720, 20:300] = (60, 90, 160)  # shoulders and body to the bottom edge
    head = head_square(img)
    assert head.y <= 10 and head.y + head.h >= 277 + 8 and head.h <= 320


def test_a_square_portrait_with_a_tall_hat_is_not_a_standing_figure():
    """On a square canvas a head with a tall hat is 1.6-1.9 times taller than wide (DiceBear croodles,
    personas): the centre square is kept, not a head square cut out of the hat. A figure standing on a square
    canvas (3 times taller than wide) still gets its head square."""
    from charforge.data.faces import find_crops, head_square

    img = np.full((256, 256, 3), 255, np.uint8)
    img[10:90, 90:166] = (120, 60, 200)  # a tall hat
    img[90:230, 68:188] = (250, 215, 190)  # the face, 120 wide: the figure is 220 / 120 = 1.83 times taller
    assert head_square(img) is None
    crops, _, _ = find_crops(img, "none")
    assert crops[0].how == "centre" and crops[0].square.h == 256
    standing = np.full((256, 256, 3), 255, np.uint8)
    standing[10:50, 113:143] = (250, 215, 190)  # head
    standing[50:250, 103:153] = (40, 40, 140)  # body: the figure is 240 / 50 = 4.8 times taller than wide
    head = head_square(standing)
    assert head is not None and head.y <= 10 and head.y + head.h >= 50 and head.h <= 70  # not the body


def test_closeup_score_needs_skin_and_features():
    from charforge.data.faces import closeup_score

    assert not closeup_score(np.full((64, 64, 3), 128, np.uint8))[0]  # a grey wall
    assert not closeup_score(np.full((64, 64, 3), (252, 212, 186), np.uint8))[0]  # skin-coloured, featureless
    face = np.full((64, 64, 3), (253, 224, 204), np.uint8)  # light skin with two dark eyes and a mouth
    face[24:32, 18:26] = face[24:32, 38:46] = (40, 30, 60)
    face[44:47, 26:38] = (120, 40, 40)
    ok, detail = closeup_score(face)
    assert ok and "skin-toned" in detail
    assert not closeup_score(np.full((64, 200, 3), (253, 224, 204), np.uint8))[0]  # too wide for a face
