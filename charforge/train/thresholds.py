"""Per-tag decision thresholds fitted on labelled images (`charforge tagger thresholds`).

A temperature makes probabilities honest on average but leaves every decision where it was: a tag is on when its
probability passes the file's threshold (0.5 for a calibrated tagger). On art the tagger was not trained on, a tag
can be *ranked* well (wearers of glasses above non-wearers) and still decided badly (few pass 0.5). This module
chooses, per independent tag, the threshold that maximises the mean F1 over one or more labelled sets, and stores
it in a copy of the tagger file as a log-odds offset (`charforge.tagger.net.shift_decisions`), so every caller
(import, the studio, the benches) decides at the fitted threshold with no change of its own.

Labelled sets are either a packed charforge dataset (every tag known) or an .npz in the tagger trainer's
`--extra` format (1 shown, 0 not shown, NaN unknown: masked). Fit on images the tagger did not train on, and
judge the result on others again: the thresholds are chosen on these sets, so F1 on them is optimistic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charforge.core.tags import TagSchema
from charforge.errors import UserError

GRID = np.round(np.arange(0.05, 0.9501, 0.025), 3)  # candidate thresholds
MIN_EACH = 10  # a set counts for a tag only with at least this many labelled positives and negatives


@dataclass
class LabelledSet:
    name: str
    images: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # (N, T) float32 in the tagger schema's order: 1, 0, NaN unknown
    sha256: str


def load_labelled(path: str | Path, schema: TagSchema, *, limit: int | None = None) -> LabelledSet:
    """A packed dataset folder (tags paired by name; tags it lacks are unknown) or an --extra style .npz."""
    from charforge.utils.io import sha256_file

    p = Path(path)
    if p.is_dir():
        from charforge.data.packed import load_packed

        data = load_packed(p)
        n = len(data) if limit is None else min(limit, len(data))
        labels = np.full((n, len(schema)), np.nan, np.float32)
        src = np.asarray(data.tags[:n], np.float32)
        shared = [t for t in schema.tags if t in data.schema.tags]
        if not shared:
            raise UserError(
                f"--on {p}: the dataset's tags share no name with the tagger's; give images labelled with the "
                "tagger's tags",
                field="on",
            )
        for t in shared:
            labels[:, schema.index(t)] = src[:, data.schema.index(t)]
        return LabelledSet(p.name, np.asarray(data.images[:n]), labels, data.manifest_hash())
    if p.suffix.lower() != ".npz" or not p.is_file():
        raise UserError(
            f"--on {p}: not a packed dataset folder or an .npz file; give either (a dataset from `charforge data "
            "build` / `data import`, or labelled images as for `tagger train --extra`)",
            field="on",
        )
    from charforge.train.tagger import load_extra

    extra = load_extra(p, schema, flag="--on")
    n = len(extra.images) if limit is None else min(limit, len(extra.images))
    return LabelledSet(p.stem, extra.images[:n], extra.labels[:n], sha256_file(p))


def f1_curve(p: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 of deciding p >= t for each t in grid; y bool."""
    on = p[None, :] >= grid[:, None]  # (G, N)
    tp = (on & y).sum(axis=1)
    fp = (on & ~y).sum(axis=1)
    fn = (~on & y).sum(axis=1)
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)


def fit_thresholds(
    probas: list[np.ndarray],
    labels: list[np.ndarray],
    names: list[str],
    schema: TagSchema,
    *,
    tags: list[str] | None = None,
    base: float = 0.5,
    grid: np.ndarray = GRID,
    min_each: int = MIN_EACH,
) -> dict[str, dict]:
    """{tag: record} for each independent tag (or `tags`): the grid threshold maximising the mean F1 over the sets
    with >= min_each labelled positives and negatives (ties: the one nearest `base`), with F1 at `base` and at the
    threshold per set. A tag no set can judge keeps `base` and says why."""
    out: dict[str, dict] = {}
    wanted = list(schema.independent) if tags is None else tags
    for tag in wanted:
        if tag not in schema.independent:
            raise UserError(
                f"--tags: {tag!r} is not an independent tag of this tagger (choose from "
                f"{', '.join(schema.independent)}); exclusive groups are decided by their argmax",
                field="tags",
            )
        j = schema.index(tag)
        curves, per_set = [], {}
        for p, lab, name in zip(probas, labels, names):
            known = ~np.isnan(lab[:, j])
            y = lab[known, j] == 1
            pos, neg = int(y.sum()), int((~y).sum())
            per_set[name] = {"positives": pos, "negatives": neg}
            if pos < min_each or neg < min_each:
                per_set[name]["used"] = False
                continue
            curve = f1_curve(p[known, j], y, grid)
            at_base = f1_curve(p[known, j], y, np.array([base]))[0]
            per_set[name].update(used=True, f1_at_base=round(float(at_base), 4), _curve=curve)
            curves.append(curve)
        if not curves:
            out[tag] = {
                "threshold": base,
                "sets": per_set,
                "note": f"no set has {min_each} labelled positives and negatives: left at {base}",
            }
            continue
        mean = np.mean(curves, axis=0)
        best = np.flatnonzero(mean >= mean.max() - 1e-9)
        k = int(best[np.argmin(np.abs(grid[best] - base))])
        for v in per_set.values():
            if v.get("used"):
                v["f1_at_threshold"] = round(float(v.pop("_curve")[k]), 4)
        out[tag] = {
            "threshold": float(grid[k]),
            "mean_f1_at_base": round(
                float(np.mean([v["f1_at_base"] for v in per_set.values() if v.get("used")])), 4
            ),
            "mean_f1_at_threshold": round(float(mean[k]), 4),
            "sets": per_set,
            "curve": [round(float(x), 4) for x in mean],
        }
    return out


def offsets(fitted: dict[str, dict], schema: TagSchema, base: float = 0.5) -> np.ndarray:
    """(T,) log-odds offsets: deciding shifted p >= base is deciding p >= threshold."""

    def logit(t: float) -> float:
        return float(np.log(t / (1 - t)))

    bias = np.zeros(len(schema), np.float32)
    for tag, rec in fitted.items():
        bias[schema.index(tag)] = logit(base) - logit(rec["threshold"])
    return bias


def plot_curves(path: Path, fitted: dict[str, dict], grid: np.ndarray = GRID) -> Path | None:
    """One panel per fitted tag: the mean F1 over the sets against the threshold, the chosen point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from charforge.utils.io import atomic_path

    shown = [(t, r) for t, r in fitted.items() if "curve" in r]
    if not shown:
        return None
    cols = min(4, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (tag, rec) in zip(axes.flat, shown):
        ax.plot(grid, rec["curve"], color="tab:blue")
        ax.axvline(0.5, color="0.6", lw=0.8, ls="--")
        ax.axvline(rec["threshold"], color="tab:red", lw=1.2)
        ax.set_title(f"{tag}: {rec['mean_f1_at_base']:.2f} -> {rec['mean_f1_at_threshold']:.2f}", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("threshold", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.suptitle("mean F1 over the labelled sets (red: chosen, dashed: 0.5)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def write_thresholded(src: Path, out: Path, bias: np.ndarray, record: dict, part_reader: str | None) -> Path:
    """A copy of the tagger file `src` with calibration["bias"] = bias and the fitting record; the weights are
    byte-identical."""

    def edit(extra: dict) -> None:
        cal = dict(extra.get("calibration") or {})
        cal["bias"] = [round(float(b), 5) for b in bias]
        cal["thresholds"] = record
        extra["calibration"] = cal

    return copy_tagger_file(src, out, edit, part_reader)


def copy_tagger_file(
    src: Path,
    out: Path,
    edit,
    part_reader: str | None,
    add_tensors: dict | None = None,
    drop_prefix: str | None = None,
) -> Path:
    """Write a copy of the tagger file `src` to `out`: the same tensors (less those named `drop_prefix`..., plus
    `add_tensors`), its metadata changed in place by `edit(extra)`, and `part_reader` recorded ("shipped") or
    dropped (None)."""
    from charforge.models.io import load_model, save_model

    tensors, meta = load_model(src, kind="tagger")
    extra = {k: v for k, v in meta.items() if not k.startswith("charforge_")}
    edit(extra)
    if part_reader is not None:
        extra["part_reader"] = part_reader
    else:
        extra.pop("part_reader", None)
    if drop_prefix:
        tensors = {k: v for k, v in tensors.items() if not k.startswith(drop_prefix)}
    tensors = {**tensors, **(add_tensors or {})}
    return save_model(out, tensors, kind="tagger", config=meta["charforge_config"], extra=extra)


def open_for_copy(tagger: str | Path, out: str | Path, parts: str):
    """(source path, output path, loaded Tagger) for a command that writes a fitted copy of a tagger file
    (`tagger thresholds`, `tagger probe`): checks -o and --parts (auto, shipped or none) and loads the source
    with that part reader."""
    from charforge.tagger.net import load_tagger, resolve_tagger_path

    out = Path(out)
    if parts not in ("auto", "shipped", "none"):
        raise UserError(f"--parts {parts!r}: choose auto, shipped or none", field="parts")
    if out.suffix != ".safetensors":
        raise UserError(f"-o {out}: give a .safetensors file name for the new tagger", field="out")
    src = resolve_tagger_path(tagger)
    if out.resolve() == src.resolve():
        raise UserError(f"-o {out}: is the tagger itself; write the fitted copy to a new file", field="out")
    t = load_tagger(src, parts={"auto": None, "shipped": True, "none": False}[parts])
    if parts == "shipped" and t.parts is None:
        raise UserError("--parts shipped: this install ships no part reader; use --parts none", field="parts")
    return src, out, t


def fit_tagger_thresholds(
    tagger: str | Path,
    on: list[str | Path],
    out: str | Path,
    *,
    tags: list[str] | None = None,
    parts: str = "auto",
    limit: int | None = None,
    log=print,
):
    """`charforge tagger thresholds`: load the tagger (with the part reader `parts`: auto, shipped or none), read
    the labelled sets `on`, fit the thresholds and write the copy to `out` with its curve plot beside it.
    Returns (path, fitted records, part reader recorded or None, plot path or None)."""
    from charforge.tagger.familiar import UNFAMILIAR_MOST

    src, out, t = open_for_copy(tagger, out, parts)
    base = t.threshold
    t.bias = None  # fit from the network's own decisions, not from an earlier fit
    sets = [load_labelled(p, t.schema, limit=limit) for p in on]
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        names = [f"{i}:{n}" for i, n in enumerate(names)]
    probas = []
    for s, name in zip(sets, names):
        log(f"reading      {name}: {len(s.images)} images")
        seen = t.read(s.images)
        probas.append(seen.proba)
        far = seen.unfamiliar
        if far is not None and len(far) == len(s.images) and far.mean() >= UNFAMILIAR_MOST:
            log(
                f"note         {name}: {far.mean():.0%} of it is past the file's familiarity line, so `data import "
                "--estimate-tags` with the new file would leave its tags unknown: import such art with "
                "--keep-unfamiliar, or refit the line with `charforge tagger familiarity` on sets that include it"
            )
    fitted = fit_thresholds(probas, [s.labels for s in sets], names, t.schema, tags=tags, base=base)
    record = {
        "fitted_on": [{"name": n, "images": len(s.images), "sha256": s.sha256} for n, s in zip(names, sets)],
        "base": base,
        "grid": [float(GRID[0]), float(GRID[-1]), 0.025],
        "min_each": MIN_EACH,
        "tags": {k: {kk: vv for kk, vv in v.items() if kk != "curve"} for k, v in fitted.items()},
    }
    reader = "shipped" if t.parts is not None else None
    path = write_thresholded(src, out, offsets(fitted, t.schema, base), record, reader)
    return path, fitted, reader, plot_curves(out.with_suffix(".png"), fitted)
