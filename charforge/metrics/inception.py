"""Inception-v3 as the FID papers use it: the third feature space, only with weights the user supplies.

FID as published (Heusel et al. 2017, and every paper since) is the Fréchet distance between 2048-D "pool3"
features of the Inception-v3 network in TensorFlow's 2015-12-05 release. charforge's own FIDs (`fid_domain`,
`fid_generic`) use other networks, so their values cannot be compared with published numbers. With that
network's weights, `fid_inception` / `kid_inception` give a figure that can.

The network here is written out in plain torch, following the FID variant of Inception-v3 (the one the
reference TensorFlow code runs, and that the common PyTorch port `pt_inception-2015-12-05-*.pth` stores):

* every convolution is bias-free, followed by BatchNorm (eps 0.001) and ReLU;
* the average pools inside the blocks exclude the zero padding from the mean (TensorFlow's behaviour);
* the last block (Mixed_7c) pools its side branch with a 3x3 max pool instead of an average pool;
* the classifier has 1008 outputs (the 2015 graph's label set); it is in the file and is checked, but FID
  reads the 2048-D global average pool before it.

Input: uint8 images of any size are resized to 299 x 299 with bilinear interpolation (half-pixel centres, no
antialiasing, as the PyTorch port does; the TensorFlow graph's own resize differs slightly, so figures are
close to, not bit for bit equal to, the TensorFlow code's) and scaled from [0, 255] to [-1, 1].

Weights are never downloaded. `load_inception(path)` reads a `.safetensors` file directly, or a `.pth` file
through `torch.load(..., weights_only=True)` only (no arbitrary unpickling), and checks every tensor name and
shape against the network before loading; the first mismatch is named in a UserError.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from charforge.errors import UserError

INCEPTION_SIZE = 299  # px: the network's input resolution
INCEPTION_DIM = 2048  # pool3 feature width
INCEPTION_CLASSES = 1008  # the 2015-12-05 graph's classifier width
WEIGHTS_HINT = (
    "charforge needs the FID Inception-v3 weights as a file you supply (it never downloads them): "
    "docs/eval/METRICS.md says where to get pt_inception-2015-12-05-6726825d.pth"
)


class _Conv(nn.Module):
    """Bias-free convolution, BatchNorm (eps 0.001), ReLU: state-dict names `conv.weight`, `bn.*`."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool whose border means ignore the padding (TensorFlow's SAME average pool)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):  # Mixed_5b/5c/5d: 35 x 35
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _Conv(cin, 64, 1)
        self.branch5x5_1 = _Conv(cin, 48, 1)
        self.branch5x5_2 = _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg3(x))
        return torch.cat([a, b, c, d], 1)  # 224 + pool_features channels


class _BlockB(nn.Module):  # Mixed_6a: 35 -> 17
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)  # 384 + 96 + cin


class _BlockC(nn.Module):  # Mixed_6b..6e: 17 x 17, factorised 7x7
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = _Conv(cin, 192, 1)
        self.branch7x7_1 = _Conv(cin, c7, 1)
        self.branch7x7_2 = _Conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _Conv(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _Conv(cin, c7, 1)
        self.branch7x7dbl_2 = _Conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _Conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _Conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _Conv(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            c = layer(c)
        d = self.branch_pool(_avg3(x))
        return torch.cat([a, b, c, d], 1)  # 768


class _BlockD(nn.Module):  # Mixed_7a: 17 -> 8
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = _Conv(cin, 192, 1)
        self.branch3x3_2 = _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)  # 320 + 192 + 768 = 1280


class _BlockE(nn.Module):  # Mixed_7b (average pool branch), Mixed_7c (max pool branch): 8 x 8
    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _Conv(cin, 320, 1)
        self.branch3x3_1 = _Conv(cin, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _Conv(cin, 448, 1)
        self.branch3x3dbl_2 = _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([a, b, c, self.branch_pool(pooled)], 1)  # 320 + 768 + 768 + 192 = 2048


class FIDInceptionV3(nn.Module):
    """Inception-v3, FID variant. `forward(x)`: (B, 3, 299, 299) in [-1, 1] -> pool3 features (B, 2048)."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b = _BlockA(192, 32)
        self.Mixed_5c = _BlockA(256, 64)
        self.Mixed_5d = _BlockA(288, 64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b = _BlockC(768, 128)
        self.Mixed_6c = _BlockC(768, 160)
        self.Mixed_6d = _BlockC(768, 160)
        self.Mixed_6e = _BlockC(768, 192)
        self.Mixed_7a = _BlockD(768)
        self.Mixed_7b = _BlockE(1280, max_pool=False)
        self.Mixed_7c = _BlockE(2048, max_pool=True)
        self.fc = nn.Linear(INCEPTION_DIM, INCEPTION_CLASSES)  # in the weights file; not used by FID

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (B, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (B, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 192, 35, 35)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)  # -> (B, 768, 17, 17)
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a):
            x = block(x)  # -> (B, 1280, 8, 8)
        x = self.Mixed_7c(self.Mixed_7b(x))  # (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # pool3: (B, 2048)


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor name the weights file must hold, with its shape (from a meta-device build: no memory)."""
    with torch.device("meta"):
        net = FIDInceptionV3()
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _optional(name: str) -> bool:
    """BatchNorm's step counter: older files (the PyTorch port among them) lack it; it does not affect eval."""
    return name.endswith(".num_batches_tracked")


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of an Inception weights file, checked by name and shape against the network.

    `.safetensors` is read directly; `.pth` / `.pt` only with `torch.load(weights_only=True)`, which refuses
    any pickled object that is not a tensor or a plain container. Raises UserError naming the file and the
    first mismatch (missing name, unexpected name, wrong shape, non-finite values)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"--inception-weights {path}: no such file. {WEIGHTS_HINT}", field="inception_weights"
        )
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own error types for bad headers
            raise UserError(
                f"--inception-weights {path}: not a readable .safetensors file ({e})",
                field="inception_weights",
            ) from e
    elif suffix in (".pth", ".pt"):
        import pickle

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise UserError(
                f"--inception-weights {path}: not a plain tensor state dict that loads with "
                f"torch.load(weights_only=True) ({first}); charforge never unpickles other objects. "
                "Convert it to .safetensors, or use the pt_inception-2015-12-05 file as published",
                field="inception_weights",
            ) from e
    else:
        raise UserError(
            f"--inception-weights {path}: expected a .safetensors or .pth file, got {suffix or 'no suffix'!r}",
            field="inception_weights",
        )
    if not isinstance(state, dict):
        raise UserError(
            f"--inception-weights {path}: expected a flat dict of named tensors (a state dict), "
            f"got {type(state).__name__}",
            field="inception_weights",
        )
    for k, v in state.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise UserError(
                f"--inception-weights {path}: entry {k!r} is a {type(v).__name__}, not a tensor: expected a flat "
                "state dict of named tensors (a training checkpoint that nests one is not read; save its "
                "state dict on its own)",
                field="inception_weights",
            )
    _check_layout(path, state)
    return state


def _check_layout(path: Path, state: dict[str, torch.Tensor]) -> None:
    want = expected_shapes()
    for name, shape in want.items():  # the network's order: the first mismatch is the earliest layer
        if name not in state:
            if _optional(name):
                continue
            raise UserError(
                f"--inception-weights {path}: tensor {name!r} {shape} is missing ({len(state)} tensors in the "
                f"file, {len(want)} expected): not the FID Inception-v3 layout. {WEIGHTS_HINT}",
                field="inception_weights",
            )
        got = tuple(state[name].shape)
        if got != shape:
            raise UserError(
                f"--inception-weights {path}: tensor {name!r} has shape {got}, the FID Inception-v3 network "
                f"needs {shape}",
                field="inception_weights",
            )
        if state[name].is_floating_point() and not bool(torch.isfinite(state[name]).all()):
            raise UserError(
                f"--inception-weights {path}: tensor {name!r} holds NaN or infinite values",
                field="inception_weights",
            )
    extra = [k for k in state if k not in want]
    if extra:
        raise UserError(
            f"--inception-weights {path}: unexpected tensor {extra[0]!r} ({len(extra)} unexpected in all): not "
            "the FID Inception-v3 layout (an AuxLogits head or a torchvision ImageNet model is a different "
            f"network). {WEIGHTS_HINT}",
            field="inception_weights",
        )


def _file_key(path: str | Path) -> tuple[str, int, int]:
    p = Path(path).resolve()
    st = os.stat(p)
    return str(p), st.st_size, st.st_mtime_ns


def load_inception(path: str | Path) -> FIDInceptionV3:
    """The checked network in eval mode, frozen; built once per file (and again if the file changes)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"--inception-weights {path}: no such file. {WEIGHTS_HINT}", field="inception_weights"
        )
    return _load_cached(_file_key(path))


@functools.lru_cache(maxsize=1)
def _load_cached(key: tuple[str, int, int]) -> FIDInceptionV3:
    state = read_weights(key[0])
    net = FIDInceptionV3()
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    net.load_state_dict(state, strict=False)  # layout already checked; only num_batches_tracked may be absent
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def preprocess(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, 299, 299) in [-1, 1], bilinear resize."""
    from charforge.models.features import images_to_tensor

    x = images_to_tensor(images)  # (B, 3, H, W) in [0, 1]
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
    return x * 2.0 - 1.0


def inception_features(
    images: np.ndarray, weights: str | Path, batch_size: int = 32, desc: str | None = None
) -> np.ndarray:
    """FID Inception-v3 pool3 features: uint8 (N, S, S, 3) -> float32 (N, 2048)."""
    from charforge.models.features import batched, check_images

    images = check_images(images)
    net = load_inception(weights)
    if len(images) == 0:
        return np.zeros((0, INCEPTION_DIM), np.float32)

    @torch.no_grad()
    def run(chunk: np.ndarray) -> np.ndarray:
        return net(preprocess(chunk)).numpy()  # (B, 2048)

    return batched(run, images, batch_size, desc)


def save_weights(net: FIDInceptionV3, path: str | Path) -> Path:
    """Write a network's state dict in the expected layout (.safetensors or .pth by suffix): for tests and for
    converting a .pth file once (`save_weights(load_inception('x.pth'), 'x.safetensors')`)."""
    path = Path(path)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path
