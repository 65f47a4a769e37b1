"""fit(): images of one person or character -> creator parameters, a preview and an honest similarity.

The fit modes are `MODES` (the one list; the CLI, the studio and the docs name these):
`fast` runs the translator only; `search` starts from the translator's answer and searches through the frozen
imitator (then refines on real renders where the creator renders); `both` runs the two and keeps whichever is
closer to the input in embedder space; `attributes` skips the embedding and maps measured attributes (hair/eye/skin
colour, glasses, hat, smile...) onto the creator's parameters.

Every input first goes through face detection. A detected face is cropped like a creator portrait, and its visible
attributes (hair-colour family, hair length, glasses, hat, eye colour where the eyes are large enough, skin tone)
constrain every mode: the translator's answer is projected inside them and the search only tries allowed options,
so the face geometry is fitted within what the input shows. A drawing without a detectable face is used whole
(unconstrained, with a note); a photo without one is an error naming the file.

The reported `similarity` is not the search's own objective: it is the percentile (as a 0-1 fraction) of the fit
among random creator renders, in a feature space the search never saw (`charforge.f2p.check`). The search-space
cosine stays available as `search_cosine`.
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
from charforge.f2p.search import SearchConfig, allowed_options, project, search

MODES = ("fast", "search", "both", "attributes")
PREVIEW_RENDER = "re-render of the fitted parameters"
PREVIEW_NEAREST = "nearest recorded capture"
PREVIEW_IMITATOR = "imitator image"


@dataclass
class FitResult:
    params: dict[str, Any]  # named parameters in creator units
    preview: np.ndarray  # (S, S, 3) uint8: see preview_kind
    # calibrated similarity, 0-1: the share of random creator renders the preview beats in an independent feature
    # space (percentile / 100); the search-space cosine when no check could run (check_space == "")
    similarity: float
    timings: dict[str, float]  # seconds per step and in total
    mode: str = "fast"  # the mode whose answer was kept
    scores: dict[str, float] = field(default_factory=dict)  # search-space cosine of every mode tried
    notes: list[str] = field(default_factory=list)  # messages for the user (several faces, preview source)
    model: dict[str, str] = field(
        default_factory=dict
    )  # path, sha256, creator and embedder of the f2p model used
    search_cosine: float = (
        0.0  # cosine in the model's embedder space (what the search maximised; the old number)
    )
    percentile: float | None = None  # 0-100, see similarity; None when the creator is unavailable
    check_cosine: float | None = None  # raw cosine input vs preview in check_space
    check_space: str = ""  # "generic" (EfficientNet-Lite0) or "colour"; "" = no independent check ran
    preview_kind: str = PREVIEW_RENDER  # PREVIEW_RENDER, PREVIEW_NEAREST or PREVIEW_IMITATOR
    fit_similarity: float | None = None  # recorded creators: the imitator's cosine for the fitted parameters
    attributes: dict[str, Any] = field(
        default_factory=dict
    )  # what was read off the input (hair family, hat...)
    constraints: dict[str, list[str]] = field(
        default_factory=dict
    )  # allowed options per constrained parameter
    agreement: dict[str, bool] = field(
        default_factory=dict
    )  # fitted value within the constraint, per parameter
    warnings: list[str] = field(default_factory=list)  # results to distrust (low percentile, collapsed model)
    faces: list[str] = field(
        default_factory=list
    )  # per input: "face", "drawing (anime face | head of a standing figure | whole image)" or "whole image"

    @property
    def attribute_agreement(self) -> float | None:
        """Share of the visible attributes the fit agrees with (None when none was estimated)."""
        return float(np.mean(list(self.agreement.values()))) if self.agreement else None


@dataclass
class Prepared:
    """What fit() works on after face detection."""

    crops: list[np.ndarray]  # per input: the portrait crop of its face, or the whole image
    attributes: list[Any]  # per input: FaceAttributes, or None where no face was used
    faces: list[str]


def frame_drawing(image: np.ndarray, photo_face: bool = False) -> tuple[np.ndarray, str, str]:
    """(crop, how, note) for a drawing, framed as `data import` frames it: the square around an anime face
    (--faces anime, DEFAULT_CROP_SCALE), else the head square of a standing sprite (--faces none), else the whole
    image. `photo_face`: dlib found a face in it all the same (the note says so)."""
    from charforge.data.faces import DEFAULT_CROP_SCALE, crop_padded, detect_faces, head_square, zoom_box

    unconstrained = "without attribute constraints"
    why = (
        "a drawing (the photo face detector fired, but a drawing is read as a drawing)"
        if photo_face
        else "no face detected in a drawing"
    )
    anime = detect_faces(image, "anime")
    if anime:
        square = zoom_box(anime[0], DEFAULT_CROP_SCALE)
        first = "a drawing" if photo_face else "no photo face detected"
        note = f"{first}; the anime face detector found one: used the {square.w} px square around it"
        return crop_padded(image, square), "anime face", f"{note}, {unconstrained}"
    head = head_square(image)
    if head is not None:
        note = f"{why}; used the head of the standing figure ({head.w} px square at the top)"
        return crop_padded(image, head), "head of a standing figure", f"{note}, {unconstrained}"
    return image, "whole image", f"{why}; used the whole image, {unconstrained}"


def prepare_inputs(
    images: Sequence[np.ndarray],
    *,
    detect: bool = True,
    sources: Sequence[str] | None = None,
    notes: list[str] | None = None,
) -> Prepared:
    """Detect the largest face of every input: crop it like a portrait and read its attributes. A drawing with no
    photo face, or that looks drawn whatever dlib finds, is framed as `data import` frames it (`frame_drawing`); a
    photo with no face is a UserError naming it.
    detect=False uses every image whole."""
    from charforge.f2p.attributes import attributes_from_box
    from charforge.f2p.faces import find_face, looks_like_drawing, portrait_crop

    notes = notes if notes is not None else []
    out = Prepared([], [], [])
    for i, im in enumerate(images):
        im = np.asarray(im)
        src = sources[i] if sources is not None and i < len(sources) else f"image {i}"
        if not detect:
            out.crops.append(im)
            out.attributes.append(None)
            out.faces.append("whole image")
            continue
        drawn = looks_like_drawing(im)
        try:
            box = find_face(im, source=src)
        except UserError:
            box = None
            if not drawn:
                raise UserError(
                    f"{src}: no face found in this photo. Use a clear, front-facing photo, or pass --no-detect "
                    "to use the whole image as the face (crops, drawings)"
                ) from None
        # dlib finds "faces" in many cartoons; the photo attribute reader (sampled skin and hair, nose-bridge
        # edges) then misreads them (session 15, rule D), so anything that looks drawn is fitted as a drawing
        if drawn:
            crop, how, note = frame_drawing(im, photo_face=box is not None)
            notes.append(f"{src}: {note}")
            out.crops.append(crop)
            out.faces.append(f"drawing ({how})")
            out.attributes.append(None)
            continue
        if box.n_found > 1:
            notes.append(f"{src}: {box.n_found} faces found, used the largest")
        out.crops.append(portrait_crop(im, box))
        out.attributes.append(attributes_from_box(im, box))
        out.faces.append("face")
    return out


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


def can_render(f2p: F2P) -> bool:
    creator = f2p.creator
    return creator is not None and getattr(creator, "can_render", True)


def search_from(
    f2p: F2P, targets: np.ndarray, init: np.ndarray, iters: int | None = None, allowed=None
) -> np.ndarray:
    """Search through the imitator from `init`, then (creators that render) refine each answer on real renders.
    `allowed` (search.allowed_options) keeps both inside the input's visible attributes."""
    from charforge.f2p.refine import refine

    cfg = f2p.search if iters is None else SearchConfig(**{**f2p.search.__dict__, "iters": int(iters)})
    vec, _ = search(f2p.imitator, f2p.space.cat_sizes, targets, init, cfg, allowed=allowed)
    if cfg.refine_sweeps > 0 and can_render(f2p):
        emb = render_embedder(f2p)
        vec = np.stack(
            [
                refine(f2p, v, t, emb, cfg.refine_sweeps, cfg.refine_step, allowed)[0]
                for v, t in zip(vec, targets)
            ]
        )
    return vec


def preview_and_similarity(
    f2p: F2P, vecs: np.ndarray, targets: np.ndarray, notes: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(T, V) encoded -> previews (T, S, S, 3) uint8 and cosine (T,) between each target and its preview, in the
    model's embedder space (for a recorded creator: the nearest capture's cosine, not the fit's)."""
    batch = f2p.space.decode(vecs)
    creator, size = f2p.creator, f2p.render_size
    if can_render(f2p):
        images = creator.render(batch, size)
    elif creator is not None and hasattr(creator, "nearest"):
        images = creator.nearest(batch, size)
        if notes is not None:
            notes.append(
                f"preview: the {PREVIEW_NEAREST}, not a render of the fitted parameters (a recorded creator "
                "cannot render); its similarity describes that capture, fit_similarity the fit itself"
            )
    else:
        return _imitator_preview(f2p, vecs, targets, notes)
    embs = render_embedder(f2p).embed(images)
    return images, (embs * np.asarray(targets, np.float32)).sum(1)


@torch.no_grad()
def imitator_cosine(f2p: F2P, vecs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(T,) cosine between the imitator's embedding of each fitted vector and its target: the fit's own similarity
    where the creator cannot render it."""
    emb = f2p.imitator.embed(torch.from_numpy(np.asarray(vecs, np.float32))).numpy()
    return (emb * np.asarray(targets, np.float32)).sum(1)


@torch.no_grad()
def _imitator_preview(f2p: F2P, vecs: np.ndarray, targets: np.ndarray, notes: list[str] | None):
    emb, img = f2p.imitator(torch.from_numpy(np.asarray(vecs, np.float32)))  # (T, D), (T, 3, s, s)
    img = F.interpolate(img, size=(f2p.render_size, f2p.render_size), mode="bilinear", align_corners=False)
    if notes is not None:
        notes.append(f"preview: the imitator's image (creator {f2p.creator_spec!r} is not available)")
    images = (img.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()  # (T, S, S, 3)
    return images, (emb.numpy() * np.asarray(targets, np.float32)).sum(1)


def _constraints(
    f2p: F2P, prepared: Prepared, notes: list[str]
) -> tuple[dict[str, Any], dict[str, tuple[str, ...]]]:
    """(attributes summary, allowed options per parameter) from the inputs where a face was read; for drawings
    without a detectable face that do not look like the creator's own renders, the hair-colour family alone."""
    from charforge.f2p.attributes import attribute_constraints, average_attributes, drawing_constraints
    from charforge.f2p.check import familiar

    attrs = [a for a in prepared.attributes if a is not None]
    if not attrs:
        drawings = [c for c, k in zip(prepared.crops, prepared.faces) if k.startswith("drawing")]
        if not drawings:
            return {}, {}
        if familiar(f2p, drawings):
            notes.append(
                "the drawing looks like this creator's own renders: fitted without attribute constraints"
            )
            return {}, {}
        summary, constraints = drawing_constraints(drawings, f2p.space)
        if "hair_family" in summary:
            notes.append(f"drawing: hair colour read from the layout as {summary['hair_family']}")
        return summary, constraints
    avg = average_attributes(attrs)
    summary = {
        k: v
        for k, v in avg.to_dict().items()
        if k in ("hair_family", "hair_length", "glasses", "hat", "eye_family", "skin_rgb", "hair_rgb")
    }
    return summary, attribute_constraints(avg, f2p.space)


def _attribute_vector(f2p: F2P, prepared: Prepared, images, detect: bool) -> np.ndarray:
    from charforge.f2p.attributes import attributes_to_params, average_attributes, estimate_attributes

    attrs = [a for a in prepared.attributes if a is not None]
    if not attrs:  # no face read (drawings, --no-detect): landmarks on the whole image
        attrs = [
            estimate_attributes(np.asarray(im), detect=detect, source=f"image {i}")
            for i, im in enumerate(images)
        ]
    params = attributes_to_params(average_attributes(attrs), f2p.space)
    return f2p.space.encode(f2p.space.from_dicts([params]))


def _check(
    f2p: F2P, crops: Sequence[np.ndarray], preview: np.ndarray, check_space: str | None
) -> tuple[str, float | None, float | None]:
    """(space, cosine, percentile) of the preview against the inputs in the independent space; percentile None
    when no reference can be built (creator unavailable)."""
    from charforge.f2p.check import calibrate, check_features, check_space_for, reference_features

    space = check_space or check_space_for(f2p.embedder.name)
    ref = reference_features(f2p, space)
    if ref is None:
        return "", None, None
    feats = check_features(np.stack([_resize(c) for c in crops]), space)
    inp = feats.mean(0)
    inp = inp / max(float(np.linalg.norm(inp)), 1e-12)
    fit_feat = check_features(_resize(preview)[None], space)[0]
    cos, pct = calibrate(inp, fit_feat, ref)
    return space, cos, pct


def _resize(image: np.ndarray) -> np.ndarray:
    from charforge.f2p.check import CHECK_SIZE, square_resize

    return square_resize(np.asarray(image)[None], CHECK_SIZE)[0]


def fit(
    f2p: F2P,
    images: Sequence[np.ndarray],
    mode: str = "fast",
    *,
    iters: int | None = None,
    detect: bool = True,
    preview_size: int | None = 256,
    sources: Sequence[str] | None = None,
    constrain: bool = True,
    check: bool = True,
    check_space: str | None = None,
) -> FitResult:
    """Fit the creator to `images` (several images of one subject are averaged in embedding space).

    `sources` names the inputs in messages (file paths); `constrain=False` ignores the visible attributes (they are
    still estimated and their agreement reported); `check=False` skips the independent similarity (then
    `similarity` is the search-space cosine). The search-space similarity is measured at the model's render size; the
    returned preview is re-rendered at `preview_size` px when the creator can render (None keeps the render size).
    """
    from charforge.f2p.attributes import agreement

    if mode not in MODES:
        raise UserError(f"unknown fit mode {mode!r}. Valid: {', '.join(MODES)}", field="mode")
    if len(images) == 0:
        raise UserError("fit: give at least one image")
    notes: list[str] = []
    t0 = time.perf_counter()
    prepared = prepare_inputs(images, detect=detect, sources=sources, notes=notes)
    attrs, constraints = _constraints(f2p, prepared, notes)
    allowed = allowed_options(f2p.space, constraints) if constrain else None
    timings = {"detect": time.perf_counter() - t0}
    t = time.perf_counter()
    target = embed_inputs(f2p, prepared.crops, notes)[None]  # (1, D)
    timings["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    if mode == "attributes":
        candidates = {"attributes": _attribute_vector(f2p, prepared, images, detect)}
    else:
        candidates = {"fast": project(translate(f2p, target), f2p.space.cat_sizes, allowed)}
    timings["translate"] = time.perf_counter() - t
    if mode in ("search", "both"):
        t = time.perf_counter()
        candidates["search"] = search_from(f2p, target, candidates["fast"], iters, allowed)
        timings["search"] = time.perf_counter() - t
    if mode == "search":
        candidates.pop("fast")
    t = time.perf_counter()
    results = {m: preview_and_similarity(f2p, v, target, notes) for m, v in candidates.items()}
    timings["render"] = time.perf_counter() - t
    best = max(results, key=lambda m: float(results[m][1][0]))
    params = f2p.space.to_dicts(f2p.space.decode(candidates[best]))[0]
    preview = results[best][0][0]
    creator = f2p.creator
    kind = PREVIEW_RENDER if can_render(f2p) else PREVIEW_NEAREST if creator is not None else PREVIEW_IMITATOR
    fit_sim = float(imitator_cosine(f2p, candidates[best], target)[0]) if kind != PREVIEW_RENDER else None
    if preview_size and preview_size != f2p.render_size and can_render(f2p):
        preview = creator.render(f2p.space.decode(candidates[best]), preview_size)[0]
    scores = {m: float(r[1][0]) for m, r in results.items()}
    space, cos, pct = ("", None, None)
    if check:
        t = time.perf_counter()
        space, cos, pct = _check(f2p, prepared.crops, preview, check_space)
        timings["check"] = time.perf_counter() - t
    warnings = _warnings(scores[best], pct, space)
    timings["total"] = time.perf_counter() - t0
    model = {
        "path": str(f2p.path),
        "sha256": f2p.sha256,
        "creator": f2p.creator_spec,
        "embedder": f2p.embedder.name,
    }
    return FitResult(
        params,
        preview,
        pct / 100.0 if pct is not None else scores[best],
        timings,
        best,
        scores,
        list(dict.fromkeys(notes)),
        model,
        search_cosine=scores[best],
        percentile=pct,
        check_cosine=cos,
        check_space=space,
        preview_kind=kind,
        fit_similarity=fit_sim,
        attributes=attrs,
        constraints={k: list(v) for k, v in constraints.items()},
        agreement=agreement(params, constraints),
        warnings=warnings,
        faces=prepared.faces,
    )


def _warnings(search_cos: float, pct: float | None, space: str) -> list[str]:
    from charforge.f2p.check import WARN_PERCENTILE

    out = []
    if pct is not None and pct < WARN_PERCENTILE:
        out.append(
            f"the fit is not clearly closer to the input than a random character: it beats {pct:.0f} % of random "
            f"renders in {space} features (a good fit beats nearly all). The model may be collapsed or far from "
            "this kind of input"
            + (
                f"; its own search-space cosine {search_cos:.3f} means nothing here"
                if search_cos > 0.9
                else ""
            )
        )
    return out
