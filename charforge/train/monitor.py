"""What a run records: JSONL metrics, TensorBoard events, sample grids, loss curves, the early-stop metric."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from charforge.utils.io import write_text_atomic

CURVES = ("loss_D", "loss_G", "D_gp", "G_cls", "D_cls")
HIST_BINS = 4  # per channel, so 4*4*4 = 64 joint colour bins


class MetricsLog:
    """log.jsonl rows plus TensorBoard scalars (rank 0 only)."""

    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.path = run_dir / "log.jsonl"
        self.run_dir = run_dir
        self._tb = None
        self._tb_on = tensorboard

    def truncate_after(self, step: int) -> None:
        """On resume, drop rows a killed run logged after its last checkpoint."""
        if not self.path.exists():
            return
        rows = [r for r in read_log(self.path) if r.get("step", 0) <= step]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in rows))

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb_on:
            self._add_tb(row)

    def _writer(self):
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tb"))
        return self._tb

    def _add_tb(self, row: dict[str, Any]) -> None:
        w, step = self._writer(), int(row["step"])
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                w.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


def read_log(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill mid-write
    return rows


def plot_loss_curves(log_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log_path) if log_path.exists() else []
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    drawn = 0
    for key in CURVES:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts and any(v != 0 for _, v in pts):  # an unconditional run's tag losses are all 0: not a curve
            ax.plot(*zip(*pts), label=key, lw=1)
            drawn += 1
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("symlog")
    if drawn:
        ax.legend(loc="upper right", fontsize=8)
    else:  # a run shorter than log_every has no rows yet: say so instead of an empty legend warning
        ax.text(
            0.5,
            0.5,
            "no losses logged yet (log_every steps)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)


def colour_histogram(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (64,) normalised joint colour histogram."""
    q = (images.astype(np.int64) * HIST_BINS) // 256  # (N, H, W, 3) in 0..3
    idx = (q[..., 0] * HIST_BINS + q[..., 1]) * HIST_BINS + q[..., 2]
    h = np.bincount(idx.ravel(), minlength=HIST_BINS**3).astype(np.float64)
    return h / max(h.sum(), 1.0)


def histogram_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Total-variation distance between colour histograms, in [0, 1]; lower = closer colour statistics.

    Cheap enough to run every few hundred steps on CPU; it catches collapse and colour drift, which is what
    early stopping needs. The evaluation issue's FID/KID replaces it for model comparison.
    """
    return float(0.5 * np.abs(colour_histogram(real) - colour_histogram(fake)).sum())
