"""fit(): images of one person or character -> creator parameters, a preview and a similarity score.

`fast` runs the translator only; `search` starts from the translator's answer and searches through the frozen
imitator; `both` runs the two and keeps whichever re-render is closer to the input in embedder space; `attributes` skips
the embedding and maps photo attributes (hair/eye/skin colour, glasses, smile...) onto the creator's parameters.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from charforge.errors import UserError
from charforge.f2p.embedders import IdentityEmbedder
from charforge.f2p.model import F2P
from charforge.f2p.search import SearchConfig, search

MODES = ("fast", "search", "both", "attributes")


@dataclass
class FitResult:
    params: dict[str, Any]  # named parameters in creator units
    preview: np.ndarray  # (S, S, 3) uint8: the creator's render of `params` (or its nearest recorded sample)
    similarity: float  # cosine, in embedder space, between the input and the preview
    timings: dict[str, float]  # seconds per step and in total
    mode: str = "fast"  # the mode whose answer was kept
    scores: dict[str, float] = field(default_factory=dict)  # similarity of every mode tried
    notes: list[str] = field(default_factory=list)  # messages for the user (several faces, preview source)
    model: dict[str, str] = field(
        default_factory=dict
    )  # path, sha256, creator and embedder of the f2p model used


def embed_inputs(f2p: F2P, images: Sequence[np.ndarray], notes: list[str] | None = None) -> np.ndarray:
    """Average of the unit embeddings of several images of one subject -> (D,) unit vector."""
    if len(images) == 0:
        raise UserError("fit: give at least one image")
    embs = np.concatenate([f2p.embedder.embed(np.asarray(im)[None], notes) for im in images])  # (N, D)
    mean = embs.mean(0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def render_embedder(f2p: F2P):
    """Renders are framed faces: the identity embedder skips detection on them."""
    return IdentityEmbedder(detect=False) if f2p.embedder.name == "identity" else f2p.embedder


def translate(f2p: F2P, targets: np.ndarray) -> np.ndarray:
    """(T, D) unit embeddings -> (T, V) encoded parameter vectors."""
    return f2p.translator.predict(torch.from_numpy(np.asarray(targets, np.float32))).numpy()


def search_from(f2p: F2P, targets: np.ndarray, init: np.ndarray, iters: int | None = None) -> np.ndarray:
    """Search through the imitator from `init`, then (creators that render) refine each answer on real renders."""
    from charforge.f2p.refine import refine

    cfg = f2p.search if iters is None else SearchConfig(**{**f2p.search.__dict__, "iters": int(iters)})
    vec, _ = search(f2p.imitator, f2p.space.cat_sizes, targets, init, cfg)
    creator = f2p.creator
    if cfg.refine_sweeps > 0 and creator is not None and getattr(creator, "can_render", True):
        emb = render_embedder(f2p)
        vec = np.stack(
            [refine(f2p, v, t, emb, cfg.refine_sweeps, cfg.refine_step)[0] for v, t in zip(vec, targets)]
        )
    return vec


def preview_and_similarity(
    f2p: F2P, vecs: np.ndarray, targets: np.ndarray, notes: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(T, V) encoded -> previews (T, S, S, 3) uint8 and cosine (T,) between each target and its preview."""
    batch = f2p.space.decode(vecs)
    creator, size = f2p.creator, f2p.render_size
    if creator is not None and getattr(creator, "can_render", True):
        images = creator.render(batch, size)
    elif creator is not None and hasattr(creator, "nearest"):
        images = creator.nearest(batch, size)
        if notes is not None:
            notes.append("preview: the nearest recorded sample (a recorded creator cannot render)")
    else:
        return _imitator_preview(f2p, vecs, targets, notes)
    embs = render_embedder(f2p).embed(images)
    return images, (embs * np.asarray(targets, np.float32)).sum(1)


@torch.no_grad()
def _imitator_preview(f2p: F2P, vecs: np.ndarray, targets: np.ndarray, notes: list[str] | None):
    emb, img = f2p.imitator(torch.from_numpy(np.asarray(vecs, np.float32)))  # (T, D), (T, 3, s, s)
    img = F.interpolate(img, size=(f2p.render_size, f2p.render_size), mode="bilinear", align_corners=False)
    if notes is not None:
        notes.append(f"preview: the imitator's image (creator {f2p.creator_spec!r} is not available)")
    images = (img.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()  # (T, S, S, 3)
    return images, (emb.numpy() * np.asarray(targets, np.float32)).sum(1)


def _attribute_vector(f2p: F2P, images: Sequence[np.ndarray], detect: bool, notes: list[str]) -> np.ndarray:
    from charforge.f2p.attributes import attributes_to_params, average_attributes, estimate_attributes

    attrs = [
        estimate_attributes(np.asarray(im), detect=detect, source=f"image {i}") for i, im in enumerate(images)
    ]
    if any(a.n_faces > 1 for a in attrs):
        notes.append("several faces found in an image, used the largest")
    params = attributes_to_params(average_attributes(attrs), f2p.space)
    return f2p.space.encode(f2p.space.from_dicts([params]))


def fit(
    f2p: F2P,
    images: Sequence[np.ndarray],
    mode: str = "fast",
    *,
    iters: int | None = None,
    detect: bool = True,
    preview_size: int | None = 256,
) -> FitResult:
    """Fit the creator to `images` (several images of one subject are averaged in embedding space).

    The similarity is measured at the model's render size; the returned preview is re-rendered at
    `preview_size` px when the creator can render (None keeps the render-size image).
    """
    if mode not in MODES:
        raise UserError(f"unknown fit mode {mode!r}. Valid: {', '.join(MODES)}", field="mode")
    notes: list[str] = []
    t0 = time.perf_counter()
    target = embed_inputs(f2p, images, notes)[None]  # (1, D)
    timings = {"embed": time.perf_counter() - t0}
    t = time.perf_counter()
    if mode == "attributes":
        candidates = {"attributes": _attribute_vector(f2p, images, detect, notes)}
    else:
        candidates = {"fast": translate(f2p, target)}
    timings["translate"] = time.perf_counter() - t
    if mode in ("search", "both"):
        t = time.perf_counter()
        candidates["search"] = search_from(f2p, target, candidates["fast"], iters)
        timings["search"] = time.perf_counter() - t
    if mode == "search":
        candidates.pop("fast")
    t = time.perf_counter()
    results = {m: preview_and_similarity(f2p, v, target, notes) for m, v in candidates.items()}
    timings["render"] = time.perf_counter() - t
    best = max(results, key=lambda m: float(results[m][1][0]))
    timings["total"] = time.perf_counter() - t0
    params = f2p.space.to_dicts(f2p.space.decode(candidates[best]))[0]
    preview = results[best][0][0]
    creator = f2p.creator
    if (
        preview_size
        and preview_size != f2p.render_size
        and creator is not None
        and getattr(creator, "can_render", True)
    ):
        preview = creator.render(f2p.space.decode(candidates[best]), preview_size)[0]
    scores = {m: float(r[1][0]) for m, r in results.items()}
    model = {
        "path": str(f2p.path),
        "sha256": f2p.sha256,
        "creator": f2p.creator_spec,
        "embedder": f2p.embedder.name,
    }
    return FitResult(params, preview, scores[best], timings, best, scores, list(dict.fromkeys(notes)), model)
