"""Done-when smoke: train on a dataset rendered by the built-in creator and leave a resumable run."""

import torch

from charforge.data.build import build_from_creator
from charforge.train.checkpoint import CheckpointStore
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.monitor import read_log
from charforge.train.presets import resolve_preset


def _smoke(tmp_path, n_images: int, steps: int) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = build_from_creator(
            tmp_path / "data", creator="builtin", n=n_images, size=32, seed=0, chunk=256, show_progress=False
        )
        assert len(ds) == n_images
        p = resolve_preset("tiny", {"steps": steps, "ckpt_every": max(steps // 2, 1), "log_every": 5})
        opts = TrainOptions(device="cpu", show_progress=False, tensorboard=False)
        Trainer(
            tmp_path / "data", tmp_path / "run", p, opts=opts
        ).run()  # 32 px data resized to 16 px on load
        assert CheckpointStore(tmp_path / "run").latest() == steps
        rows = read_log(tmp_path / "run" / "log.jsonl")
        assert rows[-1]["step"] == steps and "CC0" in (tmp_path / "run" / "MODEL_CARD.md").read_text()
        more = resolve_preset("tiny", {"steps": steps + 2, "ckpt_every": max(steps // 2, 1)})
        assert (
            Trainer(tmp_path / "data", tmp_path / "run", more, resume=True, opts=opts).run()["step"]
            == steps + 2
        )
    finally:
        torch.set_num_threads(threads)


def test_builtin_smoke_fast(tmp_path):
    _smoke(tmp_path, n_images=96, steps=20)


def test_builtin_smoke_200_steps_2k_images(tmp_path):
    """The issue's done-when: 200 steps on 2k built-in renders (30-60 s on 2 cores, mostly rendering)."""
    _smoke(tmp_path, n_images=2000, steps=200)
