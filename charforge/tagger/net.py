"""The tagger: a multi-label CNN that reads a character's tags from its picture (our Illustration2Vec).

It honours the tag schema: one softmax over each exclusive group (hair colour, eye colour) and one sigmoid
per independent tag (smile, hat). Its penultimate layer is the domain feature space for FID/KID, and its
decisions (argmax per group, threshold 0.25 per independent tag, make.girls.moe §3.2) fill the tags of
untagged imports and judge generated images.

This module holds the network, the loss and the `Tagger` wrapper; training lives in
`charforge.train.tagger`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from charforge.core.tags import TagSchema
from charforge.errors import UserError
from charforge.models.io import load_model, save_model

KIND = "tagger"
WEIGHTS_NAME = "tagger.safetensors"
INDEPENDENT_THRESHOLD = 0.25  # an independent tag is on when its sigmoid passes this (paper §3.2)
# Abstention (`decide_or_unknown`): an exclusive group is unknown when its top probability is below the
# group value; an independent tag is unknown when the probability of the decided value (on: p, off: 1 - p,
# decided at 0.5) is below the independent value. Meant for calibrated probabilities (a tagger file with
# a "calibration" entry); a file may store its own defaults.
MIN_CONFIDENCE = {"group": 0.5, "independent": 0.7}
# With a part reader (`Tagger.parts`), the hair colour group is the product of the network's probabilities and
# the reading's likelihood exp(-Delta E / HAIR_READER_SCALE) over the palette (`HairReading.likelihood`): a
# modal hair colour clearly nearest one palette colour decides; one between two palette colours leaves the
# choice between them to the network. 8 CIE76 units: about where two flat colours stop looking the same.
HAIR_READER_SCALE = 8.0
# The network's hair probabilities enter the product raised to this power (1 = as they are; lower tempers a
# network that is sure and wrong, e.g. "blonde" for a yellow-skinned cartoon). Chosen on the validation style
# (bench/foreign/validation.py, DiceBear micah; never a test set) as the best hair colour there among powers
# keeping the creator's own held-out renders within 2 points of the network alone: 0.6 (micah 0.612 -> 0.667,
# creator 0.934 -> 0.929; the network alone: 0.345 and 0.945).
HAIR_NETWORK_POWER = 0.6
# With a part reader that marks glasses: the odds of the "glasses" tag are multiplied by GLASSES_READER_ODDS[0]
# where the rims cover at least GLASSES_SHARE[1] of the picture, by GLASSES_READER_ODDS[1] where they cover
# under GLASSES_SHARE[0], and left alone between. On the creator's held-out renders the shares separate
# cleanly (wearers >= 0.025 in 95 %, others 0 in 99 %); on foreign art thin rims read smaller, so the factor
# is a nudge, not a verdict.
GLASSES_SHARE = (0.0005, 0.004)
GLASSES_READER_ODDS = (4.0, 0.25)
# Per-tag decision thresholds (`charforge tagger thresholds`, charforge.train.thresholds): a file may store one
# logit offset per independent tag under calibration["bias"], added to the final log-odds (after the temperature,
# the views and the part reader), so that "p >= 0.5" decides at the fitted threshold t (offset -logit(t)) and the
# abstention band sits around the new decision point. Groups keep 0 (their argmax needs no threshold).


@dataclass
class TaggerConfig:
    n_tags: int  # width of the tag vector, len(schema)
    image_size: int = 64  # px: images are resized to this square before the network sees them
    channels: int = 32  # width of the first stage; each downsampling stage doubles it
    max_channels: int = 256  # cap on stage width
    feat_dim: int = 256  # width of the penultimate (feature) layer
    min_resolution: int = 4  # px: downsample until the feature map is this small
    stem_stride: int = 2  # the first conv's stride: 2 halves the cost of everything after it
    pool: str = "flatten"  # "flatten": keep the 4x4 layout (where a colour sits tells eyes from hair); "avg": global mean

    def stage_widths(self) -> list[int]:
        widths, res, c = [], self.image_size // self.stem_stride, self.channels
        while res > self.min_resolution:
            widths.append(min(c, self.max_channels))
            res //= 2
            c *= 2
        return widths


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class TaggerNet(nn.Module):
    """Stem conv -> stages (stride-2 conv + conv) -> 4x4 map flattened (or averaged) -> feature layer -> tag logits."""

    def __init__(self, cfg: TaggerConfig):
        super().__init__()
        self.cfg = cfg
        widths = cfg.stage_widths()
        if cfg.pool not in ("flatten", "avg") or cfg.stem_stride not in (1, 2):
            raise ValueError(
                f"tagger config: pool must be flatten/avg and stem_stride 1/2, got {cfg.pool!r}, {cfg.stem_stride}"
            )
        layers: list[nn.Module] = [_conv_bn(3, cfg.channels, cfg.stem_stride)]
        cin, res = cfg.channels, cfg.image_size // cfg.stem_stride
        for w in widths:
            layers += [_conv_bn(cin, w, 2), _conv_bn(w, w, 1)]
            cin, res = w, res // 2
        self.body = nn.Sequential(*layers)
        flat = cin * res * res if cfg.pool == "flatten" else cin
        self.feat = nn.Sequential(nn.Linear(flat, cfg.feat_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(cfg.feat_dim, cfg.n_tags)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [-1, 1] -> (B, feat_dim)."""
        h = self.body(x)  # (B, C, r, r), r = min_resolution
        h = h.flatten(1) if self.cfg.pool == "flatten" else h.mean(dim=(2, 3))  # (B, C*r*r) or (B, C)
        return self.feat(h)  # (B, feat_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, T) logits


def tag_loss(logits: torch.Tensor, targets: torch.Tensor, schema: TagSchema) -> torch.Tensor:
    """Softmax cross-entropy per exclusive group (rows with no tag in the group are masked) + BCE for
    independent tags. Each group's CE and each tag's BCE is a mean over its labelled rows; all are summed.
    NaN targets are unknown (an extra set's labels): masked, in a group and in an independent tag alike."""
    total = logits.new_zeros(())
    known = ~torch.isnan(targets)
    partly = not bool(known.all())
    if partly:
        targets = torch.nan_to_num(targets, nan=0.0)
    for sl in schema.group_slices():
        tgt = targets[:, sl]  # (B, K)
        has = tgt.sum(dim=1) > 0
        if partly:
            has = has & known[:, sl].all(dim=1)
        if has.any():
            total = total + F.cross_entropy(logits[has, sl].float(), tgt[has].argmax(dim=1))
    isl = schema.independent_slice
    if isl.stop > isl.start:
        # summed over tags (mean over rows), so each independent tag weighs as much as one exclusive group;
        # a mean over tags would give 11 tags the weight of one group and they would learn 11x slower
        bce = F.binary_cross_entropy_with_logits(
            logits[:, isl].float(), targets[:, isl].float(), reduction="none"
        )
        if partly:
            bce = bce * known[:, isl]
        total = total + bce.sum(dim=1).mean()
    return total


def tag_probabilities(logits: torch.Tensor, schema: TagSchema) -> torch.Tensor:
    """(B, T) logits -> (B, T) probabilities: softmax within each exclusive group, sigmoid elsewhere."""
    out = torch.empty_like(logits, dtype=torch.float32)
    for sl in schema.group_slices():
        out[:, sl] = torch.softmax(logits[:, sl].float(), dim=1)
    isl = schema.independent_slice
    out[:, isl] = torch.sigmoid(logits[:, isl].float())
    return out


def decide_tags(proba: np.ndarray, schema: TagSchema, threshold: float = INDEPENDENT_THRESHOLD) -> np.ndarray:
    """(N, T) probabilities -> (N, T) uint8 0/1: argmax per exclusive group, `threshold` per independent tag."""
    proba = np.asarray(proba)
    out = np.zeros(proba.shape, dtype=np.uint8)
    rows = np.arange(len(proba))
    for sl in schema.group_slices():
        out[rows, sl.start + proba[:, sl].argmax(axis=1)] = 1
    isl = schema.independent_slice
    out[:, isl] = proba[:, isl] >= threshold
    return out


def keep_likelier_of_conflicts(tags: np.ndarray, proba: np.ndarray, schema: TagSchema) -> np.ndarray:
    """In place and returned: where both tags of one of `schema.conflicts` are on (e.g. "long hair" and "short
    hair", which no training image shows together), the less probable one is turned off; a tie keeps the first
    of the pair. Deterministic, unlike `TagSchema.resolve_conflicts` (which draws labels for generation)."""
    proba, names = np.asarray(proba), schema.tags
    for a, b in schema.conflicts:
        if a not in names or b not in names:
            continue
        ia, ib = names.index(a), names.index(b)
        both = (tags[:, ia] > 0) & (tags[:, ib] > 0)
        drop_b = both & (proba[:, ia] >= proba[:, ib])
        tags[drop_b, ib] = 0
        tags[both & ~drop_b, ia] = 0
    return tags


def decide_or_unknown(
    proba: np.ndarray,
    schema: TagSchema,
    min_confidence: dict | float | None = None,
    *,
    unfamiliar: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(N, T) probabilities -> (tags (N, T) uint8, unknown (N, T) bool).

    Exclusive group: the argmax, or unknown (the group's row is all zero: "unlabelled", which training and
    the importer already treat as not known) when the top probability is below min_confidence["group"].
    Independent tag: on at p >= 0.5, unknown (and 0 in `tags`) when max(p, 1 - p) is below
    min_confidence["independent"]. A float sets both. Defaults: MIN_CONFIDENCE. `unfamiliar` (N,) bool: rows
    whose every tag is unknown (pictures unlike anything the tagger learned from; charforge.tagger.familiar)."""
    mc = dict(MIN_CONFIDENCE)
    if isinstance(min_confidence, (int, float)):
        mc = {"group": float(min_confidence), "independent": float(min_confidence)}
    elif min_confidence:
        mc.update(min_confidence)
    proba = np.asarray(proba, dtype=np.float32)
    tags = np.zeros(proba.shape, dtype=np.uint8)
    unknown = np.zeros(proba.shape, dtype=bool)
    rows = np.arange(len(proba))
    for sl in schema.group_slices():
        top = proba[:, sl].max(axis=1) if sl.stop > sl.start else np.zeros(len(proba))
        known = top >= mc["group"]
        tags[rows[known], sl.start + proba[known, sl].argmax(axis=1)] = 1
        unknown[~known, sl] = True
    isl = schema.independent_slice
    p = proba[:, isl]
    unknown[:, isl] = np.maximum(p, 1 - p) < mc["independent"]
    tags[:, isl] = (p >= 0.5) & ~unknown[:, isl]
    if unfamiliar is not None and len(unfamiliar) == len(proba):
        far = np.asarray(unfamiliar, bool)
        tags[far] = 0
        unknown[far] = True
    return tags, unknown


def shift_decisions(proba: np.ndarray, bias: np.ndarray | None, schema: TagSchema) -> np.ndarray:
    """The independent tags' probabilities with `bias` (T,) added to their log-odds; groups unchanged."""
    if bias is None or not np.any(bias[schema.independent_slice]):
        return proba
    isl = schema.independent_slice
    p = np.clip(proba[:, isl].astype(np.float64), 1e-7, 1 - 1e-7)
    z = np.log(p / (1 - p)) + bias[isl]
    proba = proba.copy()
    proba[:, isl] = 1 / (1 + np.exp(-z))
    return proba


def _scaled(logits: torch.Tensor | np.ndarray, temperature: np.ndarray | None):
    if temperature is None:
        return logits
    if isinstance(logits, np.ndarray):
        return logits / temperature
    return logits / torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)


def _nll_terms(logits: np.ndarray, targets: np.ndarray, schema: TagSchema, temperature: np.ndarray | None):
    """{name: mean NLL over labelled rows} per exclusive group and per independent tag."""
    z = np.asarray(_scaled(np.asarray(logits, np.float64), temperature))
    t = np.asarray(targets)
    out = {}
    for g, sl in zip(schema.groups, schema.group_slices()):
        has = t[:, sl].sum(axis=1) > 0
        if has.any():
            zz = z[has, sl]
            m = zz.max(axis=1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(zz - m).sum(axis=1))
            out[g.name] = float(np.mean(lse - zz[np.arange(len(zz)), t[has, sl].argmax(axis=1)]))
    isl = schema.independent_slice
    for j, tag in zip(range(isl.start, isl.stop), schema.independent):
        zz, yy = z[:, j], t[:, j]
        out[tag] = float(np.mean(np.logaddexp(0, zz) - yy * zz))
    return out


def fit_temperatures(
    logits: np.ndarray, targets: np.ndarray, schema: TagSchema, grid: np.ndarray | None = None
) -> np.ndarray:
    """(T,) temperatures, one per exclusive group (shared by its tags) and one per independent tag, each the
    value on a log grid (0.05-20) that minimises the NLL on (logits, targets). Groups with no labelled row
    and tags keep 1."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241)) if grid is None else grid
    logits, targets = np.asarray(logits, np.float64), np.asarray(targets)
    temp = np.ones(logits.shape[1], dtype=np.float64)
    for sl in schema.group_slices():
        has = targets[:, sl].sum(axis=1) > 0
        if not has.any():
            continue
        z, y = logits[has, sl], targets[has, sl].argmax(axis=1)
        zs = z[None] / grid[:, None, None]  # (G, N, K)
        m = zs.max(axis=2, keepdims=True)
        lse = m[..., 0] + np.log(np.exp(zs - m).sum(axis=2))
        nll = (lse - zs[:, np.arange(len(z)), y]).mean(axis=1)
        temp[sl] = grid[int(nll.argmin())]
    isl = schema.independent_slice
    for j in range(isl.start, isl.stop):
        zs = logits[None, :, j] / grid[:, None]  # (G, N)
        nll = (np.logaddexp(0, zs) - targets[None, :, j] * zs).mean(axis=1)
        temp[j] = grid[int(nll.argmin())]
    return temp.astype(np.float32)


def calibration_summary(
    logits: np.ndarray, targets: np.ndarray, schema: TagSchema, temperature: np.ndarray | None
) -> dict:
    """Mean NLL (per group / tag and overall), expected calibration error of the hair group's top
    probability, and abstention at MIN_CONFIDENCE with the accuracy of what is left."""
    terms = _nll_terms(logits, targets, schema, temperature)
    proba = tag_probabilities(
        torch.as_tensor(np.asarray(_scaled(np.asarray(logits, np.float32), temperature))), schema
    ).numpy()
    tags, unknown = decide_or_unknown(proba, schema)
    out: dict = {"nll_mean": float(np.mean(list(terms.values()))) if terms else None, "nll": terms}
    for g, sl in zip(schema.groups, schema.group_slices()):
        has = np.asarray(targets)[:, sl].sum(axis=1) > 0
        if not has.any():
            continue
        p = proba[has, sl]
        truth = np.asarray(targets)[has, sl].argmax(axis=1)
        conf, pred = p.max(axis=1), p.argmax(axis=1)
        correct = pred == truth
        bins = np.minimum((conf * 10).astype(int), 9)
        ece = sum(
            abs(correct[bins == k].mean() - conf[bins == k].mean()) * (bins == k).mean()
            for k in range(10)
            if (bins == k).any()
        )
        answered = ~unknown[has, sl.start]
        out[g.name] = {
            "accuracy": float(correct.mean()),
            "ece": float(ece),
            "abstained": float(1 - answered.mean()),
            "accuracy_answered": float(correct[answered].mean()) if answered.any() else None,
            "n": int(has.sum()),
        }
    return out


def preprocess(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, size, size) in [-1, 1]."""
    x = (
        torch.from_numpy(np.require(images, requirements=["C", "W"])).permute(0, 3, 1, 2).float()
    )  # (B, 3, H, W)
    x = x.div_(127.5).sub_(1.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size
        )
    return x


def view(x: torch.Tensor, name: str) -> torch.Tensor:
    """One test-time view of (B, 3, S, S) images in [-1, 1]: "flip" (mirror), "zoom:F" (F > 1 crops the centre
    1/F of the side and scales it up, F < 1 shrinks the picture onto its own edge colours)."""
    if name == "flip":
        return x.flip(-1)
    kind, _, arg = name.partition(":")
    if kind != "zoom" or not arg:
        raise UserError(f"unknown tagger view {name!r}: use flip or zoom:F (e.g. zoom:1.25)")
    z = float(arg)
    if not 0.25 <= z <= 4:
        raise UserError(f"tagger view {name!r}: the zoom must be between 0.25 and 4")
    b = x.shape[0]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / z
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class TagReading:
    """What one `Tagger.read` call saw in a batch of pictures. It is returned, not kept on the Tagger, so
    several threads (the studio's requests) can share one Tagger."""

    proba: np.ndarray  # (N, T) as `predict_proba` returns them
    familiarity: np.ndarray | None = None  # (N,) the familiarity model's scores, None without a model
    line: float | None = None  # the model's line: above it a picture is unlike the art it learned from
    # the part reader's HairReading (charforge.tagger.parts), None without a reader
    hair: object | None = None

    @property
    def unfamiliar(self) -> np.ndarray | None:
        """(N,) bool: pictures above the familiarity line (None without a familiarity model)."""
        return None if self.familiarity is None else self.familiarity > self.line


class Tagger:
    """A trained tagger ready for inference. All methods take uint8 (N, S, S, 3) images of any size S.

    `views` (test-time augmentation, e.g. ("flip", "zoom:1.25")): `predict_proba` averages the probabilities
    of the image and of each view (a file may store its own under "views"); `logits` and `features` use the
    image only."""

    def __init__(
        self,
        net: TaggerNet,
        schema: TagSchema,
        *,
        path: Path | None = None,
        batch_size: int = 256,
        temperature: np.ndarray | None = None,
        min_confidence: dict | None = None,
        views: tuple[str, ...] | list[str] = (),
        parts=None,
        bias: np.ndarray | None = None,
        probe=None,
        familiarity=None,
    ):
        self.net = net.eval()
        # a charforge.tagger.parts.PartReader: the hair colour group comes from the pixels it marks as hair
        # where it can read them (`predict_proba`); None: the network's own answer
        self.parts = parts
        self.last_hair_reading = None  # the part reader's HairReading of the last predict_proba call
        self.views = tuple(views)
        for v in self.views:
            view(torch.zeros(1, 3, 8, 8), v)  # an unknown view is refused here, not at the first prediction
        self.schema = schema
        self.cfg = net.cfg
        self.path = path
        self.batch_size = batch_size  # images per forward pass
        # (T,) logits are divided by this before softmax/sigmoid (calibration); None = uncalibrated (1)
        self.temperature = None if temperature is None else np.asarray(temperature, np.float32)
        self.min_confidence = {**MIN_CONFIDENCE, **(min_confidence or {})}
        # (T,) decision offsets in log-odds for the independent tags (0 for group tags); None = none
        self.bias = None if bias is None else np.asarray(bias, np.float32)
        # a charforge.tagger.probe.Probe: some independent tags blended with a linear probe on ImageNet
        # features (`predict_proba`, after the part reader, before the decision offsets); None = none
        self.probe = probe
        # a charforge.tagger.familiar.Familiarity: which pictures look like nothing the estimator learned from
        # (`predict_proba` sets last_unfamiliar; `predict_tags(abstain=True)` leaves their tags unknown)
        self.familiarity = familiarity
        self.last_familiarity = (
            None  # (N,) its scores of the last predict_proba call, or None without a model
        )

    @property
    def last_unfamiliar(self) -> np.ndarray | None:
        """(N,) bool: the last predict_proba call's pictures above the familiarity line (None without a model)."""
        if self.familiarity is None or self.last_familiarity is None:
            return None
        return self.last_familiarity > self.familiarity.line

    @property
    def calibrated(self) -> bool:
        return self.temperature is not None

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images) if not isinstance(images, np.ndarray) else images
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise UserError(
                f"tagger input: expected uint8 images shaped (N, H, W, 3), got {images.dtype} {images.shape}"
            )
        return images

    @torch.no_grad()
    def _map(self, images: np.ndarray, fn) -> np.ndarray:
        images = self._check(images)
        outs = []
        for start in range(0, len(images), self.batch_size):
            x = preprocess(np.asarray(images[start : start + self.batch_size]), self.cfg.image_size)
            outs.append(fn(x).float().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """(N, T) raw logits (before the temperature)."""
        return self._map(images, self.net)  # (N, T)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, T) float32: group softmax + independent sigmoid, of logits / temperature when calibrated. Also
        sets `last_familiarity` / `last_hair_reading` (one caller at a time; `read` is the thread-safe form)."""
        return self._remember(self.read(images)).proba

    def _remember(self, reading: TagReading) -> TagReading:
        self.last_familiarity, self.last_hair_reading = reading.familiarity, reading.hair
        return reading

    def read(self, images: np.ndarray) -> TagReading:
        """`predict_proba`'s probabilities with what the familiarity model and the part reader saw on the way,
        returned together (no state is kept, so one Tagger serves several threads)."""
        if len(images) == 0:
            return TagReading(np.zeros((0, len(self.schema)), np.float32))

        def proba(x: torch.Tensor) -> torch.Tensor:
            p = tag_probabilities(_scaled(self.net(x), self.temperature), self.schema)
            for v in self.views:
                p = p + tag_probabilities(_scaled(self.net(view(x, v)), self.temperature), self.schema)
            return p / (1 + len(self.views))

        out = self._map(images, proba)
        if self.parts is not None or self.probe is not None or self.familiarity is not None:
            images = self._check(images)
        hair = None
        if self.parts is not None:
            out, hair = self._read_parts(images, out)
        feats = self._generic_features(images)
        scores = line = None
        if self.familiarity is not None:
            from charforge.tagger.familiar import CROP

            scores, line = self.familiarity.score(feats[CROP]), float(self.familiarity.line)
        if self.probe is not None:
            out = self.probe.apply(out, images, self.schema, features=feats.get("probe"))
        return TagReading(shift_decisions(out, self.bias, self.schema), scores, line, hair)

    def _generic_features(self, images: np.ndarray) -> dict:
        """The ImageNet features the probe and the familiarity model read: {"probe": (N, D x crops) when there
        is a probe, "full": (N, D) when there is a familiarity model; taken from the probe's when it reads the
        whole picture at the same size}."""
        from charforge.tagger.familiar import CROP
        from charforge.tagger.probe import PROGRESS_FROM, probe_features

        desc = "tag probe" if len(images) >= PROGRESS_FROM else None
        out = {}
        if self.probe is not None and self.probe.blend > 0:  # blend 0: the probe changes nothing
            out["probe"] = probe_features(images, self.probe.crops, desc=desc, size=self.probe.size)
        if self.familiarity is not None:
            fam = self.familiarity
            if "probe" in out and CROP in self.probe.crops and self.probe.size == fam.size:
                k, dim = self.probe.crops.index(CROP), out["probe"].shape[1] // len(self.probe.crops)
                out["full"] = out["probe"][:, k * dim : (k + 1) * dim]  # read once for both
            else:
                out["full"] = probe_features(images, (CROP,), desc=desc, size=fam.size)
        return out

    def _read_parts(self, images: np.ndarray, proba: np.ndarray):
        """(probabilities, HairReading or None): the part reader's evidence on top of the network's
        probabilities: glasses (`_read_glasses`) and the hair colour group where the reader sees enough hair:
        the network's probabilities times the reading's likelihood (HAIR_READER_SCALE), renormalised; elsewhere
        (no hair group, a custom palette, hair hidden or too small) the network's answer stands."""
        from charforge.creators.builtin import palette

        masks = self.parts.masks(images)
        proba = self._read_glasses(images, masks, proba)
        k = next((i for i, g in enumerate(self.schema.groups) if g.name == "hair color"), None)
        if k is None:
            return proba, None
        names = tuple(t.removesuffix(" hair") for t in self.schema.groups[k].tags)
        if not all(n in palette.HAIR_RGB for n in names):
            return proba, None  # a custom hair palette: no reference colours to name the pixels with
        reading = self.parts.hair_colour(images, {n: palette.HAIR_RGB[n] for n in names}, masks=masks)
        sl = self.schema.group_slices()[k]
        rows = np.flatnonzero(reading.known)
        if len(rows):
            joint = proba[rows, sl] ** HAIR_NETWORK_POWER * reading.likelihood(HAIR_READER_SCALE)[rows]
            proba[rows, sl] = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1e-12)
        return proba, reading

    def _read_glasses(self, images: np.ndarray, masks: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """The "glasses" tag's odds times the part reader's evidence (GLASSES_SHARE, GLASSES_READER_ODDS)."""
        if "glasses" not in self.schema.independent:
            return proba
        share = self.parts.part_share(images, "glasses", masks=masks)
        if share is None:
            return proba
        j = self.schema.independent_slice.start + list(self.schema.independent).index("glasses")
        factor = np.where(
            share >= GLASSES_SHARE[1],
            GLASSES_READER_ODDS[0],
            np.where(share < GLASSES_SHARE[0], GLASSES_READER_ODDS[1], 1.0),
        )
        p = np.clip(proba[:, j], 1e-6, 1 - 1e-6)
        odds = p / (1 - p) * factor
        proba[:, j] = odds / (1 + odds)
        return proba

    @property
    def threshold(self) -> float:
        """The independent-tag threshold `predict_tags` uses by default: INDEPENDENT_THRESHOLD (0.25, the
        paper's) for an uncalibrated tagger, 0.5 for a calibrated one (its probabilities mean what they say)."""
        return 0.5 if self.calibrated else INDEPENDENT_THRESHOLD

    def predict_tags(
        self,
        images: np.ndarray,
        threshold: float | None = None,
        *,
        abstain: bool = False,
        min_confidence: dict | float | None = None,
    ):
        """(N, T) uint8 0/1: argmax per exclusive group, `threshold` (default `self.threshold`) for
        independent tags.

        abstain=True returns (tags, unknown) from `decide_or_unknown` instead (independent tags decided at
        0.5, `threshold` unused): unknown groups are all-zero rows in `tags`. min_confidence defaults to the
        file's own (`self.min_confidence`)."""
        return self.tags_of(
            self._remember(self.read(images)), threshold, abstain=abstain, min_confidence=min_confidence
        )

    def tags_of(
        self,
        reading: TagReading,
        threshold: float | None = None,
        *,
        abstain: bool = False,
        min_confidence: dict | float | None = None,
    ):
        """`predict_tags`'s decision on a `read` result (the thread-safe pair: read once, decide, and use the
        reading's familiarity and hair beside the tags)."""
        if abstain:
            return decide_or_unknown(
                reading.proba,
                self.schema,
                min_confidence or self.min_confidence,
                unfamiliar=reading.unfamiliar,
            )
        return decide_tags(reading.proba, self.schema, self.threshold if threshold is None else threshold)

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, feat_dim) float32 penultimate-layer activations: the domain feature space."""
        if len(images) == 0:
            return np.zeros((0, self.cfg.feat_dim), np.float32)
        return self._map(images, self.net.features)


def save_tagger(path: str | Path, net: TaggerNet, schema: TagSchema, *, extra: dict | None = None) -> Path:
    return save_model(
        path,
        net.state_dict(),
        kind=KIND,
        config=asdict(net.cfg),
        extra={"tag_schema": schema.to_dict(), **(extra or {})},
    )


def resolve_tagger_path(path: str | Path) -> Path:
    """A .safetensors file, or a folder made by `charforge tagger train` holding tagger.safetensors."""
    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS_NAME
        if not p.is_file():
            raise UserError(
                f"{path}: folder holds no {WEIGHTS_NAME}; train one with `charforge tagger train --data DIR -o {path}`"
            )
    elif not p.is_file():
        raise UserError(f"{path}: no such tagger file or folder; train one with `charforge tagger train`")
    return p


def load_tagger(path: str | Path, *, batch_size: int = 256, parts: str | Path | bool | None = None) -> Tagger:
    """Load a tagger saved by `save_tagger` (a file, or a training output folder).

    parts: a part reader file (charforge.tagger.parts) whose hair mask gives the hair colour; None (default)
    attaches the shipped reader to the shipped tag estimator only (never to a judge); False attaches none."""
    p = resolve_tagger_path(path)
    tensors, meta = load_model(p, kind=KIND)
    try:
        cfg = TaggerConfig(**meta["charforge_config"])
        schema = TagSchema.from_dict(meta["tag_schema"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(
            f"{p}: tagger metadata is incomplete or from an incompatible version ({e}); retrain it"
        ) from e
    from charforge.tagger.probe import split_probe

    tensors, probe = split_probe(tensors, meta, p, schema)
    from charforge.tagger.familiar import split_familiarity

    tensors, familiarity = split_familiarity(tensors, meta, p)
    net = TaggerNet(cfg)
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise UserError(
            f"{p}: weights do not match the stored configuration ({str(e).splitlines()[0]}); retrain it"
        ) from e
    cal = meta.get("calibration") or {}
    temperature = cal.get("temperature")
    if temperature is not None and len(temperature) != cfg.n_tags:
        raise UserError(
            f"{p}: calibration has {len(temperature)} temperatures for {cfg.n_tags} tags; retrain it"
        )
    bias = cal.get("bias")
    if bias is not None and len(bias) != cfg.n_tags:
        raise UserError(
            f"{p}: calibration has {len(bias)} decision offsets for {cfg.n_tags} tags; refit them with "
            "`charforge tagger thresholds`"
        )
    return Tagger(
        net,
        schema,
        path=p,
        batch_size=batch_size,
        temperature=None if temperature is None else np.asarray(temperature, np.float32),
        min_confidence=cal.get("min_confidence"),
        views=meta.get("views") or (),
        parts=_part_reader(p, parts, meta.get("part_reader")),
        bias=None if bias is None else np.asarray(bias, np.float32),
        probe=probe,
        familiarity=familiarity,
    )


def _part_reader(tagger_path: Path, parts: str | Path | bool | None, declared=None):
    from charforge.tagger.parts import load_partseg, shipped_reader

    if parts is False:
        return None
    if parts is None and declared == "shipped":  # a file whose decisions were fitted with the shipped reader
        return shipped_reader()
    if parts is None:  # the shipped reader goes with the shipped estimator only
        est = estimate_tagger_path()
        return shipped_reader() if est is not None and tagger_path.resolve() == est.resolve() else None
    return shipped_reader() if parts is True else load_partseg(parts)


ROLES = {"judge": "tagger_default.safetensors", "estimate": "tagger_estimate.safetensors"}
JUDGES = ("tagger_default.safetensors", "tagger_styles.safetensors")  # shipped judges, one per tag schema


def judge_for(tags: list[str]) -> Path | None:
    """The shipped judge whose tags are exactly `tags` (the 34-tag creator's, or the multi-style creator's
    40), or None: a custom schema needs its own tagger."""
    from charforge.models.generator import read_tag_schema

    weights = Path(__file__).resolve().parent.parent / "weights"
    for p in (weights / name for name in JUDGES):
        if p.is_file() and read_tag_schema(p).tags == list(tags):
            return p
    return None


def default_tagger_path(role: str = "judge") -> Path | None:
    """A shipped tagger, if this install has it. role "judge" (default): tagger_default, trained and measured
    on the creator's own renders, the judge of generators (precision, domain FID). role "estimate":
    tagger_estimate, trained to hold on art the creator did not draw, calibrated, for estimating the tags
    of imported images (see charforge/weights/tagger_estimate.md)."""
    if role not in ROLES:
        raise ValueError(f"tagger role {role!r}: use one of {', '.join(ROLES)}")
    p = Path(__file__).resolve().parent.parent / "weights" / ROLES[role]
    return p if p.is_file() else None


def estimate_tagger_path() -> Path | None:
    """The shipped tag estimator for imports (`default_tagger_path("estimate")`), or None when not shipped."""
    return default_tagger_path("estimate")
