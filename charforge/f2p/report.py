"""Reading fit inputs safely and writing fit outputs (params JSON, render, fit summary; side-by-side only on request)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from charforge.errors import UserError
from charforge.f2p.fit import FitResult
from charforge.utils.io import write_json_atomic

MIN_SIDE = 32  # px: smaller inputs carry too little to fit a face


def load_inputs(paths: Sequence[Path]) -> list[np.ndarray]:
    """Decode every input to (H, W, 3) uint8, or raise a UserError naming the file."""
    from charforge.core.images import BadImage, load_image

    out = []
    for p in paths:
        try:
            out.append(load_image(p, min_size=MIN_SIDE))
        except BadImage as e:
            raise UserError(
                f"{p}: {e.reason}. Give a PNG or JPEG photo or drawing at least {MIN_SIDE} px on its shorter side"
            ) from e
    if not out:
        raise UserError("fit: give at least one image")
    return out


def summary_line(result: FitResult) -> str:
    """One line for the terminal: the calibrated similarity, the attribute agreement, the search-space cosine."""
    if result.percentile is not None:
        sim = (
            f"similarity {result.similarity:.2f}: the {result.preview_kind} beats {result.percentile:.0f} % of "
            f"random creator renders ({result.check_space} features, not the ones the search used)"
        )
    else:
        sim = f"similarity {result.similarity:.3f} (search-space cosine; no independent check: creator unavailable)"
    parts = [sim]
    if result.fit_similarity is not None:
        parts.append(f"fit itself (imitator estimate) {result.fit_similarity:.3f}")
    if result.agreement:
        ok = sum(result.agreement.values())
        shown = ", ".join(f"{k} {'/'.join(v)}" for k, v in result.constraints.items())
        parts.append(f"visible attributes agreed {ok}/{len(result.agreement)} ({shown})")
    parts.append(f"search-space cosine {result.search_cosine:.3f} ({result.mode})")
    return "; ".join(parts)


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    return np.asarray(
        Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS), dtype=np.uint8
    )


def side_by_side(
    inputs: Sequence[np.ndarray], preview: np.ndarray, height: int = 256, gap: int = 8
) -> np.ndarray:
    """(H, W, 3) uint8 strip: every input, then the render, at a common height, on white."""
    tiles = [_fit_height(im, height) for im in inputs] + [_fit_height(preview, height)]
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for t in tiles:
        canvas[:, x : x + t.shape[1]] = t
        x += t.shape[1] + gap
    return canvas


def write_fit_outputs(
    result: FitResult,
    images: np.ndarray | Sequence[np.ndarray],
    out: str | Path,
    *,
    input_paths: Sequence[Path] = (),
    keep_inputs: bool = False,
) -> dict[str, Path]:
    """params.json (creator units), render.png, fit.json (score, timings, notes); returns {description: path}.

    Nothing written holds the inputs unless keep_inputs=True: then side_by_side.png (inputs | render) is written
    too and the input files are copied into `out`.
    """
    from charforge.provenance import save_png

    arrays = [images] if isinstance(images, np.ndarray) and images.ndim == 3 else list(images)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "f2p parameters (JSON)": out / "params.json",
        "f2p render": out / "render.png",
        "f2p summary (JSON)": out / "fit.json",
    }
    write_json_atomic(paths["f2p parameters (JSON)"], result.params)
    meta = {
        "kind": "f2p-fit",
        "model_sha256": result.model.get("sha256", ""),
        "creator": result.model.get("creator", ""),
        "mode": result.mode,
        "similarity": round(result.similarity, 4),
        "similarity_percentile": None if result.percentile is None else round(result.percentile, 1),
        "search_cosine": round(result.search_cosine, 4),
        "preview": result.preview_kind,
        "params": result.params,
    }
    save_png(paths["f2p render"], result.preview, meta)
    write_json_atomic(
        paths["f2p summary (JSON)"],
        {
            "similarity": result.similarity,
            "similarity_means": "percentile / 100 of the preview among random creator renders, in check_space"
            if result.percentile is not None
            else "search-space cosine (no independent check ran)",
            "percentile": result.percentile,
            "check_space": result.check_space,
            "check_cosine": result.check_cosine,
            "search_cosine": result.search_cosine,
            "preview": result.preview_kind,
            "fit_similarity": result.fit_similarity,
            "attributes": result.attributes,
            "constraints": result.constraints,
            "agreement": result.agreement,
            "attribute_agreement": result.attribute_agreement,
            "faces": result.faces,
            "warnings": result.warnings,
            "mode": result.mode,
            "scores": result.scores,
            "timings": result.timings,
            "notes": result.notes,
            "model": result.model,
            "n_inputs": len(arrays),
        },
    )
    if keep_inputs:
        paths["f2p input | render"] = out / "side_by_side.png"
        save_png(paths["f2p input | render"], side_by_side(arrays, result.preview), meta)
        for i, p in enumerate(input_paths):
            paths[f"input {i}"] = out / f"input_{i}{Path(p).suffix.lower()}"
            shutil.copyfile(p, paths[f"input {i}"])
    return paths
