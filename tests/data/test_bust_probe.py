"""The portrait probe behind the import's close-up test (charforge.data.bust, faces.find_crops)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from corpus import _builtin_renders, pattern

from charforge.data.bust import BustProbe, load_bust_probe, save_bust_probe, shipped_bust_probe
from charforge.data.faces import find_crops
from charforge.errors import UserError


def test_the_shipped_probe_reads_renders_as_busts_and_colour_fields_as_not():
    probe = shipped_bust_probe()
    assert probe is not None and probe.threshold == 0.5
    _, _, renders = _builtin_renders(6, seed=3)
    assert (probe.probability(list(renders)) >= 0.5).all()
    rng = np.random.default_rng(0)
    others = [pattern(s, 128, 128) for s in range(4)] + [rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)]
    assert (probe.probability(others) < 0.5).all()


def test_probe_files_round_trip_and_a_damaged_one_names_itself(tmp_path):
    rng = np.random.default_rng(1)
    d = 1280
    probe = BustProbe(rng.normal(size=d), rng.uniform(0.5, 2, d), rng.normal(size=d) / 40, -0.25)
    path = save_bust_probe(tmp_path / "p.safetensors", probe, provenance={"command": "test"})
    back = load_bust_probe(path)
    np.testing.assert_allclose(back.weight, probe.weight, rtol=1e-6)
    assert back.bias == pytest.approx(-0.25) and back.config() == probe.config()
    img = pattern(9, 100, 140)
    np.testing.assert_allclose(back.probability([img]), probe.probability([img]), rtol=1e-4, atol=1e-6)
    from charforge.models.io import save_model

    save_model(
        tmp_path / "bad.safetensors", {"mean": torch.zeros(d)}, kind="bustprobe", config=probe.config()
    )
    with pytest.raises(UserError, match="bad.safetensors: not a complete bust probe"):
        load_bust_probe(tmp_path / "bad.safetensors")


class _Says:
    def __init__(self, answer: bool):
        self.answer, self.calls = answer, 0

    def is_bust(self, image):
        self.calls += 1
        return self.answer, 0.9 if self.answer else 0.1


def test_find_crops_asks_the_probe_only_when_the_skin_test_fails():
    """A grey line-art head (no skin tones: the skin test says no) is kept when the probe reads a bust, with the
    reason in the note; without a probe, or when it says no, it is skipped with both figures."""
    y, x = np.mgrid[0:128, 0:128]
    img = np.full((128, 128, 3), 250, np.uint8)
    img[np.abs(np.hypot(x - 64, y - 60) - 36) < 2] = 40  # the outline of a head, no fill
    yes, no = _Says(True), _Says(False)
    crops, faces, why = find_crops(img, "human", bust=yes)
    assert yes.calls == 1 and faces == 0 and len(crops) == 1 and why == ""
    assert "the portrait probe reads a bust (p 0.90" in crops[0].how
    crops, _, why = find_crops(img, "human", bust=no)
    assert crops == [] and "not a close-up" in why and "portrait probe p 0.10" in why
    crops, _, why = find_crops(img, "human", bust=None)
    assert crops == [] and "portrait probe" not in why
    _, _, renders = _builtin_renders(1, seed=3)
    asked = _Says(False)
    crops, faces, _ = find_crops(renders[0], "anime", bust=asked)
    assert faces == 1 and len(crops) == 1 and asked.calls == 0  # a detected face settles it: no probe run


def test_a_few_pictures_run_on_one_torch_thread_and_the_callers_threads_come_back():
    """Asked one picture at a time between OpenCV detections, the probe runs on one torch thread (idle OpenMP
    threads slowed OpenCV's own, session 18) and gives the same answer; the caller's thread count is restored."""
    probe = shipped_bust_probe()
    imgs = [pattern(s, 120, 90) for s in range(3)]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        import charforge.tagger.probe as tp

        real = tp.probe_features

        def spy(*a, **k):
            seen.append(torch.get_num_threads())
            return real(*a, **k)

        tp.probe_features = spy
        try:
            few = probe.probability(imgs)
            many = probe.probability(imgs * 3)  # 9 pictures: the caller's threads
        finally:
            tp.probe_features = real
        assert seen == [1, 2] and torch.get_num_threads() == 2
        np.testing.assert_allclose(many[:3], few, rtol=1e-4, atol=1e-6)
    finally:
        torch.set_num_threads(before)
