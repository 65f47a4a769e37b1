"""`charforge f2p eval`: self-reconstruction on targets the model never trained on.

For every target: embed it, fit it, preview the fit, and compare in embedder space. Reports mean cosine,
categorical accuracy per parameter, normalised continuous MAE and wall time per image (one image at a time,
embedding included) for `fast` and `search`.

Targets: a creator that renders gets fresh random settings (seed differs from training). A recorded creator's
targets are its held-out captures by default (`split="heldout"`: the captures the model recorded as held out of
training), or `train` / `all` on request; the result says which split it used. For a recorded creator the
preview is the nearest recorded capture, so its cosine is reported as `nearest_capture_cosine`, apart from the
fit's own (imitator) cosine and the parameter accuracy, which judge the fit itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from charforge.errors import UserError
from charforge.f2p.fit import (
    can_render,
    imitator_cosine,
    preview_and_similarity,
    render_embedder,
    search_from,
    translate,
)
from charforge.f2p.model import F2P
from charforge.utils.io import write_json_atomic, write_text_atomic
from charforge.utils.progress import progress

SPLITS = ("heldout", "train", "all")


def recorded_split(f2p: F2P, split: str = "heldout") -> tuple[np.ndarray, dict[str, Any]]:
    """Indices of a recorded creator's captures in `split`, and a description of the split."""
    from charforge.f2p.pipeline import capture_name, n_train_of

    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}. Valid: {', '.join(SPLITS)}", field="split")
    creator = f2p.creator
    data = f2p.metrics.get("data", {}) if isinstance(f2p.metrics, dict) else {}
    names = [capture_name(creator, i) for i in range(len(creator))]
    if "heldout_captures" in data:
        held = set(data["heldout_captures"])
        is_held = np.array([n in held for n in names])
        how = "the captures this model recorded as held out of training"
    else:  # a model trained before the split was recorded: captures were used in file order, the tail held out
        n_train = n_train_of(int(data.get("n", len(creator))), 0.05)
        is_held = np.arange(len(creator)) >= n_train
        how = f"assumed: this model does not record its split, so captures after the first {n_train} (file order)"
    if split == "all":
        idx = np.arange(len(creator))
    else:
        idx = np.flatnonzero(is_held if split == "heldout" else ~is_held)
    info = {
        "name": split,
        "n_available": int(len(idx)),
        "n_heldout": int(is_held.sum()),
        "n_captures": len(creator),
        "how": how,
    }
    if len(idx) == 0:
        raise UserError(
            f"f2p eval: the recorded creator has no captures in the {split!r} split ({info['n_heldout']} of "
            f"{len(creator)} held out); use --split all or retrain with a holdout"
        )
    return idx, info


def heldout_targets(f2p: F2P, n: int, seed: int, split: str = "heldout") -> tuple[np.ndarray, np.ndarray]:
    """(images (n, S, S, 3) uint8, true encoded vectors (n, V)) the model never trained on (see eval_targets)."""
    images, vecs, _ = eval_targets(f2p, n, seed, split)
    return images, vecs


def eval_targets(
    f2p: F2P, n: int, seed: int, split: str = "heldout"
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(images (n, S, S, 3) uint8, true encoded vectors (n, V), split description): targets the model never trained
    on (fresh renders; a recorded creator's held-out captures unless `split` says otherwise)."""
    creator = f2p.creator
    if creator is None:
        raise UserError(
            f"creator {f2p.creator_spec!r} is not available; eval needs it to render held-out targets"
        )
    rng = np.random.default_rng(seed)
    if getattr(creator, "can_render", True):
        batch = creator.sample(n, rng)
        info = {
            "name": "fresh renders",
            "how": f"new random settings, seed {seed} (training used its own seed)",
        }
        return creator.render(batch, f2p.render_size), f2p.space.encode(batch), info
    pool, info = recorded_split(f2p, split)
    idx = np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))
    info["n_used"] = int(len(idx))
    return creator.images(f2p.render_size, idx), f2p.space.encode(creator.batch[idx]), info


def param_scores(space, pred: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    acc = {
        p.name: float((pred[:, sl].argmax(1) == true[:, sl].argmax(1)).mean())
        for p, sl in zip(space.categorical, space.cat_slices())
    }
    mae = (
        float(
            np.abs(
                pred[:, space.vector_dim - space.n_cont :] - true[:, space.vector_dim - space.n_cont :]
            ).mean()
        )
        if space.n_cont
        else 0.0
    )
    return {
        "cat_accuracy": acc,
        "cat_accuracy_mean": float(np.mean(list(acc.values()))) if acc else 1.0,
        "cont_mae": mae,
    }


def _fit_one_by_one(f2p: F2P, images: np.ndarray, mode: str, iters: int | None) -> tuple[np.ndarray, float]:
    """Fit each image alone (as a user would) -> (T, V) vectors and mean seconds per image incl. embedding."""
    out, start = [], time.perf_counter()
    with progress(len(images), desc=f"eval {mode}", unit="img") as bar:
        for im in images:
            target = f2p.embedder.embed(im[None])  # (1, D)
            vec = translate(f2p, target)
            if mode == "search":
                vec = search_from(f2p, target, vec, iters)
            out.append(vec)
            bar.update(1)
    return np.concatenate(out), (time.perf_counter() - start) / max(1, len(images))


def evaluate_f2p(
    f2p: F2P,
    n: int = 200,
    seed: int = 12345,
    iters: int | None = None,
    n_search: int | None = None,
    split: str = "heldout",
) -> dict[str, Any]:
    if n < 1:
        raise UserError("f2p eval: --n must be at least 1", field="n")
    images, true, split_info = eval_targets(f2p, n, seed, split)
    renders = can_render(f2p)
    targets = render_embedder(f2p).embed(images)  # (n, D)
    rng = np.random.default_rng(seed + 1)
    perm = rng.permutation(len(targets))
    result: dict[str, Any] = {
        "n": len(images),
        "seed": seed,
        "model": str(f2p.path),
        "embedder": f2p.embedder.name,
        "split": split_info,
        "preview": "re-render of the fitted parameters" if renders else "nearest recorded capture",
        "random_pair_cosine": float((targets * targets[perm]).sum(1).mean()),
        "modes": {},
    }
    counts = {"fast": len(images), "search": min(len(images), n_search if n_search is not None else 50)}
    examples = {}
    for mode, count in counts.items():
        vecs, sec = _fit_one_by_one(f2p, images[:count], mode, iters)
        previews, cos = preview_and_similarity(f2p, vecs, targets[:count])
        examples[mode] = previews[:8]
        if not renders:  # the preview is a capture: its cosine is not the fit's; the imitator's estimate is
            nearest, cos = cos, imitator_cosine(f2p, vecs, targets[:count])
        result["modes"][mode] = {
            "n": count,
            "mean_cosine": float(cos.mean()),
            "median_cosine": float(np.median(cos)),
            "ms_per_image": 1000 * sec,
            **param_scores(f2p.space, vecs, true[:count]),
        }
        if not renders:
            result["modes"][mode]["cosine_source"] = "imitator estimate for the fitted parameters"
            result["modes"][mode]["nearest_capture_cosine"] = float(nearest.mean())
    result["_examples"] = {"target": images[:8], **examples}
    return result


def markdown_table(result: dict[str, Any]) -> str:
    sp = result.get("split", {})
    split_line = f"Split: {sp.get('name', '?')} ({sp.get('how', '')}"
    if "n_available" in sp:
        split_line += (
            f"; {sp['n_available']} captures in it, {sp['n_heldout']} of {sp['n_captures']} held out"
        )
    split_line += ")"
    lines = [
        f"Targets: n = {result['n']} (seed {result['seed']}), embedder `{result['embedder']}`; "
        f"cosine between random pairs of targets: {result['random_pair_cosine']:.3f}",
        "",
        split_line,
        "",
        f"Preview: {result.get('preview', 're-render of the fitted parameters')}"
        + (
            "; the cosines below are the imitator's estimate for the fit itself, the nearest capture's are listed "
            "apart"
            if result.get("preview") == "nearest recorded capture"
            else ""
        ),
        "",
        "| mode | n | mean cosine | median cosine | categorical accuracy | continuous MAE (0-1) | ms / image |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, r in result["modes"].items():
        lines.append(
            f"| {mode} | {r['n']} | {r['mean_cosine']:.3f} | {r['median_cosine']:.3f} | "
            f"{r['cat_accuracy_mean']:.3f} | {r['cont_mae']:.3f} | {r['ms_per_image']:.1f} |"
        )
    lines += [
        "",
        "Categorical accuracy per parameter:",
        "",
        "| parameter | " + " | ".join(result["modes"]) + " |",
        "|---|" + "---|" * len(result["modes"]),
    ]
    if result.get("preview") == "nearest recorded capture":
        lines += [""] + [
            f"- {mode}: nearest recorded capture cosine {r['nearest_capture_cosine']:.3f}"
            for mode, r in result["modes"].items()
        ]
    names = next(iter(result["modes"].values()))["cat_accuracy"]
    for name in names:
        lines.append(
            f"| {name} | "
            + " | ".join(f"{r['cat_accuracy'][name]:.2f}" for r in result["modes"].values())
            + " |"
        )
    return "\n".join(lines) + "\n"


def examples_png(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["_examples"]
    names = [k for k in ("target", "fast", "search") if k in rows and len(rows[k])]
    cols = min(len(rows[k]) for k in names)
    fig, axes = plt.subplots(len(names), cols, figsize=(1.4 * cols, 1.5 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j in range(cols):
            axes[i][j].imshow(rows[name][j])
            axes[i][j].set_xticks([])
            axes[i][j].set_yticks([])
        axes[i][0].set_ylabel(name)
    what = (
        "nearest recorded capture of"
        if result.get("preview") == "nearest recorded capture"
        else "re-render of"
    )
    fig.suptitle(f"f2p: held-out target; {what} the fast and search fits")
    fig.tight_layout()
    from charforge.utils.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def write_report(result: dict[str, Any], out: str | Path) -> Path:
    """eval.md, eval.json and examples.png in `out`; returns the markdown path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "eval.json", {k: v for k, v in result.items() if not k.startswith("_")})
    write_text_atomic(out / "eval.md", markdown_table(result))
    examples_png(result, out / "examples.png")
    return out / "eval.md"
