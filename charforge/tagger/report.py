"""How well a tagger reads tags: per-tag precision/recall and a confusion matrix per exclusive group."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from charforge.core.tags import TagSchema
from charforge.utils.io import save_figure, write_json_atomic, write_text_atomic


def per_tag_precision_recall(pred: np.ndarray, true: np.ndarray, schema: TagSchema) -> list[dict]:
    """One row per tag: precision TP/(TP+FP), recall TP/(TP+FN) (None when undefined), support = true count.

    For an exclusive group only rows that carry a label in that group count (unlabelled rows are unknown).
    """
    pred, true = np.asarray(pred, bool), np.asarray(true, bool)
    labelled = np.ones((len(true), len(schema)), dtype=bool)
    for sl in schema.group_slices():
        labelled[:, sl] = true[:, sl].any(axis=1, keepdims=True)
    rows = []
    for j, tag in enumerate(schema.tags):
        m = labelled[:, j]
        tp = int((pred[m, j] & true[m, j]).sum())
        fp = int((pred[m, j] & ~true[m, j]).sum())
        fn = int((~pred[m, j] & true[m, j]).sum())
        rows.append(
            {
                "tag": tag,
                "group": schema.group_of(tag) or "independent",
                "precision": tp / (tp + fp) if tp + fp else None,
                "recall": tp / (tp + fn) if tp + fn else None,
                "support": tp + fn,
            }
        )
    return rows


def group_confusions(pred: np.ndarray, true: np.ndarray, schema: TagSchema) -> dict[str, np.ndarray]:
    """{group: (K, K) counts}, rows = true tag, columns = predicted tag, over rows labelled in that group."""
    out = {}
    for g, sl in zip(schema.groups, schema.group_slices()):
        t, p = np.asarray(true)[:, sl], np.asarray(pred)[:, sl]
        has = t.sum(axis=1) > 0
        k = sl.stop - sl.start
        m = np.zeros((k, k), dtype=np.int64)
        np.add.at(m, (t[has].argmax(axis=1), p[has].argmax(axis=1)), 1)
        out[g.name] = m
    return out


def plot_confusion(matrix: np.ndarray, labels: list[str], title: str, path: Path) -> None:
    """Row-normalised confusion matrix as a PNG (counts written in the cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * k, 1.0 + 0.45 * k), dpi=100)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    plt.close(fig)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def summarise(rows: list[dict]) -> dict:
    prec = [r["precision"] for r in rows if r["precision"] is not None]
    rec = [r["recall"] for r in rows if r["recall"] is not None]
    return {
        "mean_precision": float(np.mean(prec)) if prec else None,
        "min_precision": float(np.min(prec)) if prec else None,
        "mean_recall": float(np.mean(rec)) if rec else None,
        "min_recall": float(np.min(rec)) if rec else None,
    }


def _calibration_md(cal: dict) -> list[str]:
    b, a = cal["before"], cal["after"]
    md = [
        "## Calibration and abstention",
        "",
        f"Temperatures fitted on {cal['fitted_on']}; measured on {cal['measured_on']}. "
        f"Abstention: min_confidence {cal['min_confidence']}.",
        "",
        "| measure | before (T = 1) | after |",
        "|---|---|---|",
        f"| mean NLL over groups and tags | {_fmt(b['nll_mean'])} | {_fmt(a['nll_mean'])} |",
    ]
    for g in ("hair color", "eye color"):
        if g in b:
            for k in ("accuracy", "ece", "abstained", "accuracy_answered"):
                md.append(f"| {g}: {k} | {_fmt(b[g][k])} | {_fmt(a[g][k])} |")
    return md + [""]


def write_tagger_report(out: Path, tagger, images: np.ndarray, tags: np.ndarray, *, info: dict) -> dict:
    """Judge the held-out images, write report.json, report.md and confusion_<group>.png into `out`."""
    schema = tagger.schema
    pred = tagger.predict_tags(images) if len(images) else np.zeros((0, len(schema)), np.uint8)
    rows = per_tag_precision_recall(pred, tags, schema)
    report = {"info": info, "summary": summarise(rows), "per_tag": rows, "confusion": {}}
    thr = getattr(tagger, "threshold", 0.25)
    md = [
        "# Tagger held-out report",
        "",
        f"Held-out images: {len(images)}. Independent tags are on at p >= {thr:g}"
        + (" (calibrated probabilities)" if getattr(tagger, "calibrated", False) else "")
        + "; exclusive groups take their argmax.",
        "",
        "| tag | group | precision | recall | support |",
        "|---|---|---|---|---|",
    ]
    md += [
        f"| {r['tag']} | {r['group']} | {_fmt(r['precision'])} | {_fmt(r['recall'])} | {r['support']} |"
        for r in rows
    ]
    s = report["summary"]
    md += [
        "",
        f"Mean precision {_fmt(s['mean_precision'])} (min {_fmt(s['min_precision'])}), "
        f"mean recall {_fmt(s['mean_recall'])} (min {_fmt(s['min_recall'])}).",
        "",
    ]
    confusions = group_confusions(pred, tags, schema)
    for g in schema.groups:
        m = confusions[g.name]
        name = f"confusion_{g.name.replace(' ', '_')}.png"
        plot_confusion(m, list(g.tags), f"{g.name}: held-out confusion", out / name)
        report["confusion"][g.name] = {
            "png": name,
            "matrix": m.tolist(),
            "accuracy": float(np.trace(m) / max(m.sum(), 1)),
        }
        md += [
            f"## {g.name} (accuracy {report['confusion'][g.name]['accuracy']:.3f})",
            "",
            f"![{g.name}]({name})",
            "",
        ]
    cal = info.get("calibration")
    if cal:
        md += _calibration_md(cal)
    write_json_atomic(out / "report.json", report)
    write_text_atomic(out / "report.md", "\n".join(md))
    return report
