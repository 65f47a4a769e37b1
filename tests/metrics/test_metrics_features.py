"""EfficientNet-Lite0 generic features: shape, determinism, and a known ImageNet answer."""

import numpy as np
import pytest
import torch

from charforge.errors import UserError
from charforge.models.features import (
    GENERIC_DIM,
    _generic_preprocess,
    feature_fn,
    generic_features,
    load_generic_model,
)


def _images(n, size, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_generic_features_shape_determinism_and_copies():
    imgs = _images(3, 32, 0)
    batch = np.concatenate([imgs, imgs[:1]])  # the last image is a copy of the first
    f1 = generic_features(batch, batch_size=2)
    assert f1.shape == (4, GENERIC_DIM) and f1.dtype == np.float32
    assert np.isfinite(f1).all()
    np.testing.assert_allclose(f1[0], f1[3], rtol=1e-5, atol=1e-5)  # a copy, in another batch, matches
    f2 = generic_features(batch, batch_size=4)
    np.testing.assert_allclose(f1, f2, rtol=1e-4, atol=1e-4)  # batch size does not matter
    assert np.linalg.norm(f1[0] - f1[1]) > 1e-2 * np.linalg.norm(f1[0])  # different images differ


def test_generic_model_recognises_a_cat():
    skdata = pytest.importorskip("skimage.data")
    cat = skdata.chelsea()[None]  # (1, 300, 451, 3) a tabby cat photo
    with torch.no_grad():
        logits = load_generic_model()(_generic_preprocess(cat))
    assert int(logits.argmax()) in (281, 282, 285)  # tabby / tiger cat / Egyptian cat


def test_feature_space_validation():
    with pytest.raises(UserError, match="tagger"):
        feature_fn("domain", tagger=None)
    with pytest.raises(UserError, match="valid: generic, domain"):
        feature_fn("inception")
    with pytest.raises(UserError, match="uint8"):
        generic_features(np.zeros((2, 8, 8, 3), np.float32))


def test_onnx_and_torch_backends_agree():
    imgs = _images(3, 24, 5)
    a = generic_features(imgs, backend="torch")
    b = generic_features(imgs, backend="onnx")
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(
        a, generic_features(imgs, backend="torch")
    )  # exporting left the model in eval mode
