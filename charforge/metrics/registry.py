"""Metrics by name, and the shared evaluation context they draw samples and features from.

Every metric is a function `metric(ctx: EvalContext) -> dict` registered in METRICS; the CLI validates
`--metrics` against this table. The context owns the expensive parts so metrics share them:
generated images per run (made once, with the SAME tag vectors as the real images they are compared with,
paper §5.3.2) and feature vectors (computed once per image and feature space).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charforge.core.tags import TagConstraints
from charforge.data.packed import PackedDataset
from charforge.errors import UserError
from charforge.models.features import check_images, domain_features, generic_features

GenerateFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (tags (N, T), seeds (N,)) -> uint8 (N, S, S, 3)
SampleTagsFn = Callable[[TagConstraints, int, np.random.Generator], np.ndarray]  # -> (N, T)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    target: str  # "module:function" taking an EvalContext, returning a JSON-able dict
    spaces: tuple[
        str, ...
    ]  # feature spaces it reads of the generated FID runs ("domain", "generic", "proba", "auto")
    needs_tagger: bool
    help: str
    needs_inception: bool = False  # needs a user-supplied Inception-v3 weights file (--inception-weights)

    def fn(self) -> Callable[[EvalContext], dict]:
        mod, name = self.target.split(":")
        return getattr(importlib.import_module(mod), name)


_M = "charforge.metrics"
METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in [
        MetricSpec(
            "fid_domain",
            f"{_M}.distances:fid_domain",
            ("domain",),
            True,
            "FID in the tagger's feature space, 5 runs",
        ),
        MetricSpec(
            "kid_domain",
            f"{_M}.distances:kid_domain",
            ("domain",),
            True,
            "KID in the tagger's feature space, 5 runs",
        ),
        MetricSpec(
            "fid_generic",
            f"{_M}.distances:fid_generic",
            ("generic",),
            False,
            "FID in EfficientNet-Lite0 ImageNet features",
        ),
        MetricSpec(
            "kid_generic",
            f"{_M}.distances:kid_generic",
            ("generic",),
            False,
            "KID in EfficientNet-Lite0 ImageNet features",
        ),
        MetricSpec(
            "fid_inception",
            f"{_M}.distances:fid_inception",
            ("inception",),
            False,
            "FID in Inception-v3 pool3 features, comparable with papers (needs --inception-weights)",
            needs_inception=True,
        ),
        MetricSpec(
            "kid_inception",
            f"{_M}.distances:kid_inception",
            ("inception",),
            False,
            "KID in Inception-v3 pool3 features (needs --inception-weights)",
            needs_inception=True,
        ),
        MetricSpec(
            "is_domain",
            f"{_M}.distances:is_domain",
            ("proba",),
            True,
            "Inception-Score-style, from the tagger's predictions",
        ),
        MetricSpec(
            "precision",
            f"{_M}.precision:attribute_precision",
            (),
            True,
            "per-tag attribute precision (paper Table 2)",
        ),
        MetricSpec(
            "diversity",
            f"{_M}.diversity:diversity",
            ("auto",),
            False,
            "mean pairwise feature distance vs real; mode-collapse flag",
        ),
        MetricSpec(
            "memorisation",
            f"{_M}.memorisation:memorisation",
            (),
            False,
            "nearest training neighbours of generated images",
        ),
        MetricSpec(
            "sharpness",
            f"{_M}.sharpness:sharpness",
            (),
            False,
            "variance of the Laplacian, generated over real with the same tags (1 = as crisp as the data)",
        ),
        MetricSpec(
            "tsne", f"{_M}.tsne:tsne_map", (), False, "t-SNE map of dataset features coloured by a tag group"
        ),
    ]
}
DEFAULT_METRICS = list(METRICS)


def parse_metrics(
    spec: str | list[str] | None, *, have_tagger: bool, have_inception: bool = False
) -> list[str]:
    """'fid_domain,precision' -> validated names. None/'all' = every metric the inputs allow (the Inception
    metrics only when an Inception weights file is given)."""
    if spec is None or spec == "all" or spec == ["all"]:
        return [
            m
            for m in DEFAULT_METRICS
            if (have_tagger or not METRICS[m].needs_tagger)
            and (have_inception or not METRICS[m].needs_inception)
        ]
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise UserError(
            f"--metrics: unknown metric(s) {', '.join(map(repr, unknown)) or '(none given)'}. "
            f"Valid: {', '.join(METRICS)} (or all)",
            field="metrics",
        )
    need = [n for n in names if METRICS[n].needs_tagger and not have_tagger]
    if need:
        raise UserError(
            f"--metrics: {', '.join(need)} need a tagger; pass --tagger PATH "
            "(train one with `charforge tagger train`) or drop them",
            field="tagger",
        )
    need = [n for n in names if METRICS[n].needs_inception and not have_inception]
    if need:
        raise UserError(
            f"--metrics: {', '.join(need)} need the FID Inception-v3 weights; pass --inception-weights FILE "
            "(charforge never downloads them: docs/eval/METRICS.md says where to get the file) or drop them",
            field="inception_weights",
        )
    return list(dict.fromkeys(names))


@dataclass
class EvalContext:
    data: PackedDataset
    generate: GenerateFn
    sample_tags: SampleTagsFn
    out: Path
    tagger: object | None = None  # charforge.tagger.net.Tagger
    inception_weights: Path | None = None  # user-supplied FID Inception-v3 weights (the "inception" space)
    n: int = 1000  # real and generated images per FID/KID run (capped at half the dataset)
    runs: int = 5  # repeated FID/KID runs, reported as mean and max-min (paper Table 3)
    precision_n: int = 100  # generated images judged per tag by `precision`
    sample_n: int = 500  # generated images for diversity and memorisation
    tsne_n: int = 1000  # dataset images on the t-SNE map
    tsne_group: str | None = None  # tag group colouring the t-SNE map (None: the first exclusive group)
    collapse_threshold: float = 0.5  # diversity ratio (generated / real) below which mode collapse is flagged
    seed: int = 0
    batch_size: int = 64  # images per generator / feature-extractor call
    spaces: set[str] = field(default_factory=set)  # feature spaces computed for every generated run
    untrained_tags: tuple[str, ...] = ()  # tags with no training example: reported apart, not averaged
    _real: dict = field(default_factory=dict, repr=False)
    _runs: dict = field(default_factory=dict, repr=False)

    @property
    def auto_space(self) -> str:
        """The feature space for diversity/memorisation/t-SNE: the tagger's when there is one."""
        return "domain" if self.tagger is not None else "generic"

    @property
    def run_size(self) -> int:
        return max(2, min(self.n, len(self.data) // 2))

    def split(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """Run r: two disjoint halves A, B (sorted indices) of a fixed pool of 2 * run_size real images, split
        afresh each run. A's tags drive the generator. Reusing one pool means real features are computed once."""
        if len(self.data) < 4:
            raise UserError(f"{self.data.root}: {len(self.data)} images; evaluation needs at least 4")
        m = self.run_size
        pool = np.random.default_rng([self.seed, 17]).permutation(len(self.data))[: 2 * m]
        perm = np.random.default_rng([self.seed, r, 19]).permutation(pool)
        return np.sort(perm[:m]), np.sort(perm[m:])

    def generate_images(self, tags: np.ndarray, seeds: np.ndarray, desc: str = "generate") -> np.ndarray:
        """Batched calls of the generator; checks what it returns."""
        from charforge.utils.progress import progress

        out = []
        with progress(total=len(tags), desc=desc, unit="img") as bar:
            for s in range(0, len(tags), self.batch_size):
                imgs = check_images(
                    self.generate(
                        np.asarray(tags[s : s + self.batch_size], np.float32),
                        np.asarray(seeds[s : s + self.batch_size], np.int64),
                    ),
                    source="generator output",
                )
                out.append(imgs)
                bar.update(len(imgs))
        return np.concatenate(out)

    def embed(self, space: str, images: np.ndarray, desc: str | None = None) -> np.ndarray:
        if space == "auto":
            space = self.auto_space
        if space == "generic":
            return generic_features(images, batch_size=self.batch_size, desc=desc)
        if space == "inception":
            if self.inception_weights is None:
                raise UserError(
                    "this metric needs the FID Inception-v3 weights: pass --inception-weights FILE",
                    field="inception_weights",
                )
            from charforge.metrics.inception import inception_features

            return inception_features(images, self.inception_weights, batch_size=self.batch_size, desc=desc)
        if self.tagger is None:
            raise UserError("this metric needs a tagger: pass --tagger PATH")
        if space == "domain":
            return domain_features(self.tagger, images, batch_size=max(self.batch_size, 128), desc=desc)
        if space == "proba":
            return self.tagger.predict_proba(images)
        raise ValueError(f"unknown feature space {space!r}")

    def real_features(self, space: str, idx: np.ndarray) -> np.ndarray:
        """Features of dataset rows `idx`, each row computed once per space."""
        space = self.auto_space if space == "auto" else space
        store = self._real.setdefault(space, {})
        missing = np.array(sorted(set(np.asarray(idx).tolist()) - store.keys()), dtype=np.int64)
        if len(missing):
            feats = self.embed(space, np.asarray(self.data.images[missing]), desc=f"real features ({space})")
            store.update(zip(missing.tolist(), feats))
        return np.stack([store[i] for i in np.asarray(idx).tolist()])

    def run_features(self, space: str, r: int) -> np.ndarray:
        """Features of run r's generated images. The images are made once and embedded in every space in
        `self.spaces` at once, so they never need regenerating."""
        space = self.auto_space if space == "auto" else space
        if (space, r) not in self._runs:
            a, _ = self.split(r)
            seeds = np.random.default_rng([self.seed, r, 29]).integers(0, 2**31 - 1, size=len(a))
            imgs = self.generate_images(
                np.asarray(self.data.tags[a], np.float32), seeds, desc=f"generate run {r + 1}/{self.runs}"
            )
            for s in sorted(self.spaces | {space}):
                s = self.auto_space if s == "auto" else s
                if (s, r) not in self._runs:
                    self._runs[(s, r)] = self.embed(s, imgs, desc=f"generated features ({s})")
        return self._runs[(space, r)]


def needed_spaces(names: list[str]) -> set[str]:
    return {s for n in names for s in METRICS[n].spaces}
