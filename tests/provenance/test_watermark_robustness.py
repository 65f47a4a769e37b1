import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from charforge.provenance import watermark as wm

sys.path.insert(0, str(Path(__file__).parent))
from wm_images import synthetic_images  # noqa: E402


def _jpeg(a: np.ndarray, quality: int = 75) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _up_down(a: np.ndarray) -> np.ndarray:
    s = a.shape[0]
    return np.asarray(Image.fromarray(a).resize((2 * s, 2 * s), Image.BICUBIC).resize((s, s), Image.BICUBIC))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def marked():
    imgs = synthetic_images(24, 64, seed=1)
    return imgs, [wm.embed_watermark(a, 0xBEEF) for a in imgs]


@pytest.mark.parametrize("attack", [lambda a: a, _jpeg, _up_down], ids=["clean", "jpeg75", "rescale2x"])
def test_detected_after_attack_with_payload(marked, attack):
    _, wms = marked
    results = [wm.detect_watermark(attack(a)) for a in wms]
    assert all(r[0] for r in results), [round(r[1], 3) for r in results]
    assert np.mean([r[2] == "beef" for r in results]) >= 0.9


def test_invisible_enough(marked):
    imgs, wms = marked
    assert min(_psnr(a, b) for a, b in zip(imgs, wms)) > 40.0
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(imgs, wms)) <= 16


def test_unmarked_images_are_not_detected():
    imgs = synthetic_images(60, 64, seed=2) + [_jpeg(a) for a in synthetic_images(20, 64, seed=3)]
    imgs.append(np.full((64, 64, 3), 255, np.uint8))
    imgs.append(np.zeros((96, 64, 3), np.uint8))
    scores = np.array([wm.detect_watermark(a)[1] for a in imgs])
    assert not any(wm.detect_watermark(a)[0] for a in imgs)
    assert abs(scores.mean()) < 0.05  # the null is centred on 0


def test_nonsquare_and_odd_sizes_roundtrip():
    rng = np.random.default_rng(5)
    for h, w in [(37, 53), (128, 72)]:
        a = rng.integers(60, 200, (h, w, 3), dtype=np.uint8)
        assert wm.detect_watermark(wm.embed_watermark(a, 7))[0]


def test_too_small_images_are_refused_not_faked():
    a = np.zeros((16, 16, 3), np.uint8)
    assert not wm.can_watermark(a)
    with pytest.raises(ValueError, match="minimum"):
        wm.embed_watermark(a)
    assert wm.detect_watermark(a) == (False, 0.0, None)


def test_builtin_renders_if_available():
    builtin = pytest.importorskip("charforge.creators.builtin")
    if not hasattr(builtin, "BuiltinCreator"):
        pytest.skip("the built-in creator is not written yet")
    creator = builtin.BuiltinCreator()
    rng = np.random.default_rng(0)
    imgs = creator.render(creator.sample(8, rng), 64)
    for a in imgs:
        marked = wm.embed_watermark(np.ascontiguousarray(a), 1)
        assert wm.detect_watermark(_jpeg(marked))[0]
        assert not wm.detect_watermark(np.ascontiguousarray(a))[0]
