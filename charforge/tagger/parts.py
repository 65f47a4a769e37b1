"""Where the hair and the hat are: a small segmentation network, and hair colour read from the pixels it marks.

The tag estimator's hair colour is a guess from the whole picture; on art charforge did not draw (flat
cartoon avatars, game portraits) it confuses skin, clothes and background with hair (issue 13). This module
finds the hair instead and reads its colour, the way a person would name it:

* `PartSegNet`: a U-Net of about 0.4 M parameters that marks, per pixel, the parts it was trained on
  (default hair, hat, skin, clothes and background; a pixel belongs to the part that scores highest). It is trained on the built-in creator's renders, whose part masks are exact (two
  renders that differ only in a part's colour differ exactly on that part; `charforge.train.partseg`),
  under recolouring and style augmentation, so it learns the shape and place of hair, not its colour.
* `PartReader.hair_colour`: among the pixels marked hair (hair scores highest there), the most common colour (a mode over
  a coarse RGB histogram, so outlines and shading do not vote for "black"), named as the nearest colour of
  the tag schema's hair palette in CIELAB. Its confidence is the share of hair pixels whose nearest
  palette colour is the answer; too few hair pixels (bald, hooded, a hat over everything) is "unknown".
* `PartReader.hat`: the share of the picture marked hat, as a probability-like score.

A reader may take some parts from a second network (`combine_readers`, `charforge tagger parts-combine`): one
trained on foreign art may mark hair well and glasses badly, and the creator-trained one the opposite. The second
network's tensors sit in the same file under `borrow<i>.`, its config in the metadata ("borrowed").

The network file is `charforge/weights/parts_default.safetensors` (kind "partseg"); `charforge.tagger.net`
attaches a reader to the shipped tag estimator (`Tagger.parts`), so imports and the foreign benchmarks use
it without a new flag.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from charforge.core.colour import srgb_to_lab
from charforge.errors import UserError
from charforge.models.io import load_model, save_model
from charforge.utils.io import sha256_file

KIND = "partseg"
WEIGHTS_NAME = "parts.safetensors"
MIN_HAIR_SHARE = 0.02  # of the picture: fewer hair pixels than this and the hair colour is unknown
HAIR_THRESHOLD = 0.5  # a pixel is hair when p(hair) passes this and p(hat) does not
BINS = 8  # levels per RGB channel of the histogram whose mode is the hair colour
SKIN_DELTA_E = 12.0  # hair pixels this near (CIELAB) to the skin's modal colour are taken for skin


@dataclass
class PartSegConfig:
    parts: tuple[str, ...] = ("hair", "hat", "skin", "cloth", "bg")
    image_size: int = 32  # px: images are resized to this square; masks come back at the image's own size
    channels: int = (
        16  # width of the full-resolution stage; each of the three downsamplings doubles it (cap 96)
    )

    def widths(self) -> list[int]:
        return [min(self.channels * 2**k, 96) for k in range(4)]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PartSegNet(nn.Module):
    """(B, 3, S, S) in [-1, 1] -> (B, P, S, S) logits, one channel per part (S = cfg.image_size)."""

    def __init__(self, cfg: PartSegConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths()
        self.down = nn.ModuleList([_block(3, w[0])] + [_block(w[k - 1], w[k]) for k in range(1, 4)])
        self.up = nn.ModuleList([_block(w[k + 1] + w[k], w[k]) for k in range(3)])
        self.head = nn.Conv2d(w[0], len(cfg.parts), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, blk in enumerate(self.down):
            x = blk(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for k in (2, 1, 0):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.up[k](torch.cat([x, skips[k]], 1))
        return self.head(x)


BORROW_PREFIX = "borrow"  # tensors of the i-th borrowed network are stored as borrow<i>.<name>


def _config_dict(cfg: PartSegConfig) -> dict:
    d = asdict(cfg)
    d["parts"] = list(d["parts"])
    return d


def save_partseg(
    path: str | Path,
    net: PartSegNet,
    *,
    extra: dict | None = None,
    borrowed: list[tuple[PartSegNet, tuple[str, ...], str]] | None = None,
) -> Path:
    """Write a reader. `borrowed`: (network, the parts it marks in this reader, where it came from) each."""
    tensors = dict(net.state_dict())
    info = []
    for i, (donor, parts, source) in enumerate(borrowed or []):
        tensors.update({f"{BORROW_PREFIX}{i}.{k}": v for k, v in donor.state_dict().items()})
        info.append({"parts": list(parts), "config": _config_dict(donor.cfg), "source": source})
    extra = dict(extra or {})
    if info:
        extra["borrowed"] = info
    return save_model(path, tensors, kind=KIND, config=_config_dict(net.cfg), extra=extra)


@dataclass
class HairReading:
    """Hair colour read from the pixels, per image."""

    names: tuple[str, ...]  # the palette's colour names (the schema's hair tags without " hair")
    votes: np.ndarray  # (N, K) share of hair pixels nearest each palette colour (rows sum to 1; 0 if unknown)
    answer: np.ndarray  # (N,) index into names of the hair's modal colour, -1 when unknown
    rgb: np.ndarray  # (N, 3) uint8 the modal hair colour (0 when unknown)
    share: np.ndarray  # (N,) fraction of the picture marked hair
    delta_e: np.ndarray | None = None  # (N, K) CIELAB distance of the modal colour to each palette colour

    def likelihood(self, scale: float) -> np.ndarray:
        """(N, K) exp(-Delta E / scale), normalised per row: how well each palette colour names the modal
        colour (near-uniform between two palette colours, sharp at one); uniform where unknown."""
        n, k = self.votes.shape
        if self.delta_e is None:
            return np.full((n, k), 1.0 / k, np.float32)
        z = np.exp(-(self.delta_e - self.delta_e.min(axis=1, keepdims=True)) / scale)
        z[~self.known] = 1.0
        return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)

    @property
    def known(self) -> np.ndarray:
        return self.answer >= 0

    @property
    def confidence(self) -> np.ndarray:
        """(N,) the share of hair pixels nearest the answer's colour, votes[answer] (0 when unknown)."""
        picked = self.votes[np.arange(len(self.answer)), np.maximum(self.answer, 0)]
        return np.where(self.known, picked, 0.0).astype(np.float32)


class PartReader:
    """A trained PartSegNet ready for inference on uint8 (N, H, W, 3) images of any size."""

    def __init__(
        self,
        net: PartSegNet,
        *,
        path: Path | None = None,
        batch_size: int = 128,
        borrowed: list[tuple[PartSegNet, tuple[str, ...]]] | None = None,
    ):
        self.net = net.eval()
        self.cfg = net.cfg
        self.path = path
        self.batch_size = batch_size
        self.borrowed = [(donor.eval(), tuple(parts)) for donor, parts in borrowed or []]
        _check_borrowed(net, self.borrowed, path)

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise UserError(
                f"part reader input: expected uint8 images shaped (N, H, W, 3), got {images.dtype} {images.shape}"
            )
        return images

    def masks(self, images: np.ndarray) -> np.ndarray:
        """(N, P, H, W) float32 probabilities per part (order `cfg.parts`), at the images' own size. A borrowed
        part's channel comes from its own network."""
        images = self._check(images)
        out = _probabilities(self.net, images, self.batch_size)
        for donor, parts in self.borrowed:
            theirs = _probabilities(donor, images, self.batch_size)
            for part in parts:
                out[:, self.cfg.parts.index(part)] = theirs[:, donor.cfg.parts.index(part)]
        return out

    def part_index(self, part: str) -> int | None:
        return self.cfg.parts.index(part) if part in self.cfg.parts else None

    def hair_colour(
        self, images: np.ndarray, palette: dict[str, tuple[int, int, int]], *, masks: np.ndarray | None = None
    ) -> HairReading:
        """The hair's colour per image, named from `palette` (name -> sRGB 0-255), see the module doc."""
        images = self._check(images)
        masks = self.masks(images) if masks is None else masks
        names = tuple(palette)
        ref = srgb_to_lab(np.array([palette[k] for k in names], np.float64) / 255.0)
        ih, isk = self.part_index("hair"), self.part_index("skin")
        if ih is None:
            raise UserError(
                f"part reader {self.path}: this network does not mark hair (parts {self.cfg.parts})"
            )
        n, k = len(images), len(names)
        votes = np.zeros((n, k), np.float32)
        answer = np.full(n, -1, np.int64)
        rgb = np.zeros((n, 3), np.uint8)
        share = np.zeros(n, np.float32)
        delta_e = np.zeros((n, k), np.float32)
        won = _wins(masks, ih)  # hair scores highest there (not hat, skin, clothes)
        for i in range(n):
            hair = won[i]
            if isk is not None:  # the skin's own colour never counts as hair (faces inside the hair outline)
                skin = masks[i, isk] > HAIR_THRESHOLD
                hair &= ~skin
                if skin.sum() >= 4:
                    sk = _mode_colour(images[i][skin].astype(np.int64))
                    lab = srgb_to_lab(images[i] / 255.0)
                    hair &= np.linalg.norm(lab - srgb_to_lab(sk / 255.0), axis=-1) >= SKIN_DELTA_E
            share[i] = hair.mean()
            if share[i] < MIN_HAIR_SHARE:
                continue
            px = images[i][hair].astype(np.int64)  # (M, 3)
            nearest = np.linalg.norm(srgb_to_lab(px / 255.0)[:, None] - ref[None], axis=2).argmin(axis=1)
            votes[i] = np.bincount(nearest, minlength=k) / len(px)
            colour = _mode_colour(px)
            rgb[i] = np.round(colour).astype(np.uint8)
            delta_e[i] = np.linalg.norm(ref - srgb_to_lab(colour / 255.0), axis=1)
            answer[i] = int(delta_e[i].argmin())
        return HairReading(names, votes, answer, rgb, share, delta_e)

    def part_share(
        self, images: np.ndarray, part: str, *, masks: np.ndarray | None = None
    ) -> np.ndarray | None:
        """(N,) fraction of the picture where `part` passes HAIR_THRESHOLD and scores highest (None when the
        network does not mark that part)."""
        k = self.part_index(part)
        if k is None:
            return None
        masks = self.masks(images) if masks is None else masks
        return _wins(masks, k).mean(axis=(1, 2)).astype(np.float32)

    def hat(self, images: np.ndarray, *, masks: np.ndarray | None = None) -> np.ndarray | None:
        """(N,) fraction of the picture marked hat (None when the network does not mark hats)."""
        return self.part_share(images, "hat", masks=masks)


@torch.no_grad()
def _probabilities(net: PartSegNet, images: np.ndarray, batch_size: int) -> np.ndarray:
    """(N, P, H, W) float32 sigmoid outputs of one network, at the images' own size."""
    n, h, w = images.shape[:3]
    s = net.cfg.image_size
    out = np.zeros((n, len(net.cfg.parts), h, w), np.float32)
    for start in range(0, n, batch_size):
        # a copy: read-only inputs (an .npz array, a memory map) would make torch warn
        x = torch.from_numpy(np.array(images[start : start + batch_size]))
        x = x.permute(0, 3, 1, 2).float() / 127.5 - 1
        if (h, w) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        p = torch.sigmoid(net(x))
        if (h, w) != (s, s):
            p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
        out[start : start + len(x)] = p.numpy()
    return out


def _wins(masks: np.ndarray, k: int) -> np.ndarray:
    """(N, H, W) bool: part k passes HAIR_THRESHOLD and scores strictly above every other part (a tie is
    nobody's)."""
    mine = masks[:, k]
    won = mine > HAIR_THRESHOLD
    others = np.delete(masks, k, axis=1)
    if others.shape[1]:
        won &= mine > others.max(axis=1)
    return won


def _mode_colour(px: np.ndarray) -> np.ndarray:
    """The mean of the most common cell of a coarse RGB histogram of (M, 3) int pixels: a flat region's own
    colour, not pulled towards its outlines and shading as a mean or median would be."""
    code = (px * BINS // 256) @ np.array([BINS * BINS, BINS, 1])
    return px[code == np.bincount(code).argmax()].mean(axis=0)


def load_partseg(path: str | Path, *, batch_size: int = 128) -> PartReader:
    """A part reader from a `.safetensors` file (kind "partseg") or a training run folder holding one."""
    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS_NAME
    if not p.is_file():
        raise UserError(f"part reader {path}: no such file; give a parts .safetensors or its training folder")
    tensors, meta = load_model(p, kind=KIND)
    own = {k: v for k, v in tensors.items() if not k.startswith(BORROW_PREFIX)}
    net = _network(p, meta["charforge_config"], own)
    borrowed = []
    for i, b in enumerate(meta.get("borrowed") or []):
        prefix = f"{BORROW_PREFIX}{i}."
        mine = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        borrowed.append((_network(p, b["config"], mine), tuple(b["parts"])))
    return PartReader(net, path=p, batch_size=batch_size, borrowed=borrowed)


def _check_borrowed(net: PartSegNet, borrowed, path) -> None:
    """Every borrowed part must be marked by both networks (its channel replaces the main network's)."""
    for donor, parts in borrowed:
        for part in parts:
            if part not in net.cfg.parts or part not in donor.cfg.parts:
                raise UserError(
                    f"part reader {path or ''}: a borrowed {part!r} must be marked by both networks "
                    f"(parts {net.cfg.parts} and {donor.cfg.parts})"
                )


def _network(path: Path, cfg: dict, tensors: dict[str, torch.Tensor]) -> PartSegNet:
    try:
        net = PartSegNet(PartSegConfig(**{**cfg, "parts": tuple(cfg["parts"])}))
        net.load_state_dict(tensors)
    except (RuntimeError, TypeError, KeyError) as e:
        raise UserError(
            f"part reader {path}: the weights do not match the network in its config ({e})"
        ) from e
    return net


def reader_file(spec: str | Path) -> Path:
    """A part reader file from a path or the word "shipped" (this install's `parts_default.safetensors`)."""
    if str(spec) != "shipped":
        return Path(spec)
    path = default_parts_path()
    if path is None:
        raise UserError("'shipped': this install has no shipped part reader; give a reader file")
    return path


def combine_readers(main: str | Path, take: dict[str, str | Path], out: str | Path) -> Path:
    """Write a reader that marks every part with `main`'s network except the parts in `take` (part -> reader
    file or "shipped"), which come from that reader's network. Both must mark the part; neither may itself
    borrow parts."""
    base = load_partseg(reader_file(main))
    if base.borrowed:
        raise UserError(f"part reader {main}: it already borrows parts; combine from plain readers")
    donors: dict[Path, tuple[PartReader, list[str]]] = {}
    for part, src in take.items():
        path = reader_file(src)
        if path not in donors:
            donors[path] = (load_partseg(path), [])
        r = donors[path][0]
        if r.borrowed:
            raise UserError(
                f"part reader {src}: it borrows parts itself; give a plain reader to take {part!r} from"
            )
        donors[path][1].append(part)
    borrowed = [(r.net, tuple(parts)) for r, parts in donors.values()]
    _check_borrowed(base.net, borrowed, out)
    sources = [f"{r.path.name} sha256 {sha256_file(r.path)[:16]}" for r, _ in donors.values()]
    return save_partseg(
        out,
        base.net,
        extra={"combined_from": f"{base.path.name} sha256 {sha256_file(base.path)[:16]}"},
        borrowed=[(n, ps, src) for (n, ps), src in zip(borrowed, sources)],
    )


@functools.cache
def shipped_reader() -> PartReader | None:
    """The shipped part reader, loaded once per process (None when this install has none)."""
    path = default_parts_path()
    return None if path is None else load_partseg(path)


def default_parts_path() -> Path | None:
    p = Path(__file__).resolve().parent.parent / "weights" / "parts_default.safetensors"
    return p if p.is_file() else None
