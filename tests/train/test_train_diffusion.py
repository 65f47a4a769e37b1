"""The diffusion family in the trainer: a smoke run leaves samples, TensorBoard and a sampling model file; SIGKILL
+ --resume replays an uninterrupted run exactly; two torchrun processes keep identical weights."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from charforge import sampling
from charforge.errors import UserError
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.monitor import read_log
from charforge.train.presets import resolve_preset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train_resume import tiny_data  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("loss_U", "U_mse")


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("ds") / "tiny")


def test_smoke_run_samples_and_loads(data, tmp_path):
    run = tmp_path / "run"
    p = resolve_preset("tiny-diffusion", {"steps": 6, "ckpt_every": 3, "sample_every": 3, "eval_every": 3})
    out = Trainer(data, run, p, opts=TrainOptions(device="cpu", show_progress=False)).run()
    assert out["step"] == 6
    for name in (
        "samples/step_0000003.png",
        "MODEL_CARD.md",
        "loss_curves.png",
        "checkpoints/generator-0000006.safetensors",
    ):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    rows = read_log(run / "log.jsonl")
    assert all(np.isfinite(r[k]) for r in rows for k in KEYS)
    assert json.loads((run / "config.json").read_text())["preset"]["family"] == "diffusion"
    bundle = sampling.load_generator(run, device="cpu").with_options(steps=3)
    imgs, _, _ = sampling.characters_for_request(bundle, "blonde hair, -hat", 2, 0)
    assert imgs.shape == (2, 16, 16, 3)


def test_bad_diffusion_fields_are_user_errors():
    with pytest.raises(UserError, match="cond_drop"):
        resolve_preset("tiny-diffusion", {"cond_drop": 1.5})
    with pytest.raises(UserError, match="u_mults"):
        resolve_preset("tiny-diffusion", {"u_mults": "1,x"})
    with pytest.raises(UserError, match="prediction"):
        resolve_preset("tiny-diffusion", {"prediction": "sample"})
    with pytest.raises(UserError, match="resolution"):
        resolve_preset("tiny-diffusion", {"resolution": 17})


def _cli(data, out, *extra):
    return [
        sys.executable,
        "-m",
        "charforge",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--preset",
        "tiny-diffusion",
        "--threads",
        "1",
        "--no-tensorboard",
        *extra,
    ]


def test_sigkill_then_resume_matches_uninterrupted(data, tmp_path):
    sets = ["--set", "ckpt_every=3", "--set", "sample_every=1000", "--set", "eval_every=1000"]
    env = {**os.environ, "CHARFORGE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(data, killed, "--steps", "5000", *sets),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "state-0000006.safetensors").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed_from = max(int(p.stem.split("-")[1]) for p in (killed / "checkpoints").glob("state-*"))
    total = resumed_from + 4
    r = subprocess.run(
        _cli(data, killed, "--steps", str(total), "--resume", *sets),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr
    p = resolve_preset(
        "tiny-diffusion", {"steps": total, "ckpt_every": 3, "sample_every": 1000, "eval_every": 1000}
    )
    Trainer(
        data,
        tmp_path / "straight",
        p,
        opts=TrainOptions(device="cpu", show_progress=False, tensorboard=False),
    ).run()
    a = {r["step"]: r for r in read_log(killed / "log.jsonl")}
    b = {r["step"]: r for r in read_log(tmp_path / "straight" / "log.jsonl")}
    assert sorted(a) == sorted(b) == list(range(1, total + 1))
    for step in range(resumed_from + 1, total + 1):
        assert [a[step][k] for k in KEYS] == [b[step][k] for k in KEYS], f"step {step} differs"
    ga = load_file(str(killed / "checkpoints" / f"generator-{total:07d}.safetensors"))
    gb = load_file(str(tmp_path / "straight" / "checkpoints" / f"generator-{total:07d}.safetensors"))
    assert all(torch.equal(ga[k], gb[k]) for k in gb)


WORKER = """
import os, sys, torch
torch.set_num_threads(1)
from safetensors.torch import save_file
from charforge.train.presets import resolve_preset
from charforge.train.loop import Trainer, TrainOptions
data, run, out = sys.argv[1:4]
p = resolve_preset("tiny-diffusion", {"steps": 3, "ckpt_every": 2, "batch": 4, "sample_every": 100, "eval_every": 100})
tr = Trainer(data, run, p, opts=TrainOptions(device="cpu", show_progress=False, tensorboard=False))
tr.run()
sd = {f"U.{k}": v for k, v in tr.modules["U"].state_dict().items()}
sd |= {f"E.{k}": v for k, v in tr.ema.net.state_dict().items()}
save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(out, f"rank{tr.dist.rank}.safetensors"))
"""


@pytest.mark.slow  # the GAN's test_ddp covers the trainer's DDP path in the fast suite; this adds the family
def test_two_process_gloo_keeps_denoiser_weights_identical(tmp_path):
    data = tiny_data(tmp_path / "d", n=16)
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
        str(data),
        str(tmp_path / "run"),
        str(tmp_path),
    ]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys()
    assert not [k for k in a if not torch.equal(a[k], b[k])]
    init = load_file(str(tmp_path / "run" / "checkpoints" / "generator-0000002.safetensors"))
    assert any(not torch.equal(init[k], a[f"E.{k}"]) for k in init), "training did not move the weights"


def test_init_from_a_diffusion_generator_file_continues_training(data, tmp_path):
    # `train --init-from FILE` for the diffusion family: the denoiser and its EMA start from the file's weights
    # (the family's module is "U", not a GAN's "G"), and no discriminator warm-up freezes the denoiser
    src = tmp_path / "src"
    p = resolve_preset("tiny-diffusion", {"steps": 4, "ckpt_every": 4, "sample_every": 4, "eval_every": 4})
    Trainer(data, src, p, opts=TrainOptions(device="cpu", show_progress=False)).run()
    gen = src / "checkpoints" / "generator-0000004.safetensors"
    shipped = load_file(str(gen))
    tr = Trainer(
        data, tmp_path / "ft", p, opts=TrainOptions(device="cpu", show_progress=False, init_from=str(gen))
    )
    assert tr.p.d_warmup == 0
    for net in (tr.modules["U"], tr.ema.net):
        own = net.state_dict()
        assert all(torch.equal(own[k], v) for k, v in shipped.items())
    before = {k: v.clone() for k, v in tr.modules["U"].state_dict().items()}
    tr.run()
    after = tr.modules["U"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the first steps train the denoiser
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["init_from"]["path"] == str(gen)
