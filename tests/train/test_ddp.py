"""torchrun with 2 CPU processes (gloo): weights stay identical across ranks, only rank 0 writes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from charforge.core.tags import make_girls_moe_schema
from charforge.data.packed import write_packed

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import os, sys, torch
torch.set_num_threads(1)
from safetensors.torch import save_file
from charforge.train.presets import resolve_preset
from charforge.train.loop import Trainer, TrainOptions
data, run, out = sys.argv[1:4]
p = resolve_preset("tiny", {"steps": 3, "ckpt_every": 2, "batch": 4})
tr = Trainer(data, run, p, opts=TrainOptions(device="cpu", show_progress=False, tensorboard=False))
tr.run()
rank = tr.dist.rank
sd = {f"G.{k}": v for k, v in tr.G.state_dict().items()} | {f"D.{k}": v for k, v in tr.D.state_dict().items()}
sd |= {f"E.{k}": v for k, v in tr.ema.net.state_dict().items()}
save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(out, f"rank{rank}.safetensors"))
"""


def test_two_process_gloo_keeps_weights_identical(tmp_path):
    schema = make_girls_moe_schema()
    rng = np.random.default_rng(0)
    write_packed(
        tmp_path / "d",
        rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8),
        schema.sample_training(16, rng).astype(np.uint8),
        schema,
    )
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "CHARFORGE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(tmp_path / "worker.py"),
        str(tmp_path / "d"),
        str(tmp_path / "run"),
        str(tmp_path),
    ]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys()
    bad = [
        k
        for k in a
        if not k.endswith("running_mean") and not k.endswith("running_var") and not torch.equal(a[k], b[k])
    ]
    assert not bad, f"parameters differ across ranks: {bad[:5]}"
    init = load_file(str(tmp_path / "run" / "checkpoints" / "generator-0000002.safetensors"))
    assert any(not torch.equal(init[k], a[f"E.{k}"]) for k in init), "training did not move the weights"
    assert len(list((tmp_path / "run").glob("config.json"))) == 1
