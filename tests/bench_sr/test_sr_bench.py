"""bench/sr_bench.py: the metric functions on known inputs, and prepare + score (bicubic only) on a tiny set in a
temporary cache; the Real-ESRGAN anchor must skip cleanly where npm or Vulkan is missing."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sr_bench.py"


def _load():
    spec = importlib.util.spec_from_file_location("sr_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


sb = _load()


def _portrait(size: int = 128) -> np.ndarray:
    """Flat colours and dark outlines, like the creator's cel renders."""
    import cv2

    img = np.full((size, size, 3), (200, 220, 240), np.uint8)
    c = size // 2
    cv2.circle(img, (c, c), size // 3, (250, 210, 190), -1)
    cv2.circle(img, (c, c), size // 3, (30, 20, 20), 2)
    cv2.rectangle(img, (c - 20, c - 10), (c - 6, c + 2), (40, 90, 200), -1)
    cv2.rectangle(img, (c + 6, c - 10), (c + 20, c + 2), (40, 90, 200), -1)
    cv2.line(img, (c - 12, c + 20), (c + 12, c + 20), (30, 20, 20), 2)
    return img


def _blur(img: np.ndarray, s: float = 2.0) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (0, 0), s)


def test_psnr_known_values():
    a = _portrait()
    assert sb.psnr(a, a) == math.inf
    b = a.astype(np.int16)
    b[0, 0, 0] += 10  # one channel of one pixel off by 10: mse = 100 / (H W 3)
    expect = 10 * math.log10(255**2 / (100 / a.size))
    assert sb.psnr(b.astype(np.uint8), a) == pytest.approx(expect)
    assert sb.psnr(_blur(a), a) < 35


def test_edge_f1_and_sharpness_penalise_blur():
    a = _portrait()
    assert sb.edge_f1(a, a) == 1.0
    shifted = np.roll(a, 1, axis=1)  # within the 1 px tolerance
    assert sb.edge_f1(shifted, a) > 0.95
    blurred, more = _blur(a, 2.5), _blur(a, 4.0)
    assert sb.edge_f1(more, a) < sb.edge_f1(blurred, a) < 0.9
    assert sb.lap_var(blurred) < 0.2 * sb.lap_var(a)
    flat = np.full_like(a, 128)
    assert sb.edge_f1(flat, flat) == 1.0 and sb.edge_f1(flat, a) == 0.0


def test_bootstrap_and_subset():
    m, lo, hi = sb.bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and lo <= m <= hi and lo >= 1 and hi <= 4
    assert all(math.isnan(x) for x in sb.bootstrap_ci([]))
    groups = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    assert sb.subset_indices(groups, 3) == [0, 4, 8]
    assert sb.subset_indices(groups, 5) == [0, 1, 4, 5, 8]


def test_anchor_outputs_follow_their_inputs():
    lr = np.zeros((2, 64, 64, 3), np.uint8)
    data = {"names": ["a", "b"], "lr64": lr}
    timing = {"a": {"s": 1.0, "input_sha": sb.input_digest(lr[0])}, "b": {"s": 2.0, "input_sha": "stale"}}
    assert list(sb.current(timing, data)) == ["a"]  # b was made from other pixels: ignored, rerun


def test_prepare_score_and_anchor_skip(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARFORGE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "results"
    assert (
        sb.main(["prepare", "--n-cel", "2", "--n-per-style", "1", "--n-foreign", "0", "--n-generator", "0"])
        == 0
    )
    cel = sb.read_set("creator-cel")
    assert cel["lr64"].shape == (2, 64, 64, 3) and cel["hr256"].shape == (2, 256, 256, 3)
    assert cel["mid128"].shape == (2, 128, 128, 3)
    assert sb.read_set("creator-styles")["meta"]["groups"] == ["flat", "painterly", "manga", "pixel", "chibi"]

    # no npm on PATH and an empty cache: the anchor says why and exits 0
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert sb.main(["anchor", "--out", str(out)]) == 0
    info = json.loads((out / "anchor.json").read_text())
    assert info["skipped"].startswith("anchor skipped:")
    monkeypatch.undo()
    monkeypatch.setenv("CHARFORGE_CACHE", str(tmp_path / "cache"))

    table = tmp_path / "sr.md"
    assert (
        sb.main(
            ["score", "--methods", "bicubic", "--out", str(out), "--table", str(table), "--sheet-rows", "2"]
        )
        == 0
    )
    res = json.loads((out / "results.json").read_text())
    bic = res["sets"]["creator-cel"]["methods"]["bicubic"]["all"]
    assert 12 < bic["psnr"]["mean"] < 40
    assert 0 < bic["edge_f1"]["mean"] < 1 and 0 < bic["sharpness"]["mean"] < 1
    assert set(res["sets"]) == {"creator-cel", "creator-styles"}
    assert (out / "sheet_creator-cel.png").exists()
    md = table.read_text()
    assert "| bicubic | 2 |" in md and "SIMD" in md

    # "ours" through the same path as charforge.sr (a stand-in upscaler): scored, timed, goals checked
    monkeypatch.setattr(
        sb,
        "load_ours",
        lambda spec: (lambda x, pixel_art="auto": sb.pil_resize(x, 256, "lanczos"), "ours: stand-in"),
    )
    assert (
        sb.main(
            ["score", "--methods", "bicubic,ours", "--out", str(out), "--table", str(table), "--no-sheets"]
        )
        == 0
    )
    res = json.loads((out / "results.json").read_text())
    ours = res["sets"]["creator-cel"]["methods"]["ours"]
    assert ours["all"]["d_psnr"]["mean"] > 0  # lanczos is a little sharper than bicubic
    md = table.read_text()
    assert "## Issue 17 goals" in md and "| creator-cel: PSNR >= bicubic + 4 dB |" in md


def test_outputs_identical_to_the_truth_count_in_psnr_margins():
    """A method whose output equals the truth (infinite PSNR; pixel art enlarged by repeats) has a finite margin
    over another (PSNR_CAP minus its PSNR) and none over another identical one; the row counts them."""
    per = {
        "ours": {"a": {"psnr": math.inf}, "b": {"psnr": math.inf}, "c": {"psnr": 30.0}},
        "bicubic": {"a": {"psnr": 25.0}, "b": {"psnr": math.inf}, "c": {"psnr": 28.0}},
    }
    res = {"sets": {"s": {"methods": {m: {"per_image": v} for m, v in per.items()}}}}
    st = sb._paired(res, "s", "ours", "bicubic")
    assert st["n"] == 3 and st["n_inf"] == 1
    assert st["mean"] == pytest.approx(((sb.PSNR_CAP - 25.0) + 0.0 + 2.0) / 3)
    assert math.isfinite(st["lo"]) and math.isfinite(st["hi"])
    assert sb.fmt_stat(st).endswith("(1/3 identical)") and not sb.fmt_stat(st).startswith("inf")
    assert sb.fmt_stat(sb.summarise([{"p": math.inf}, {"p": math.inf}], "p")) == "inf (2/2 identical)"
