"""Trainer: a smoke run leaves a resumable run; SIGKILL + --resume matches an uninterrupted run exactly."""

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

from charforge.core.tags import make_girls_moe_schema
from charforge.data.packed import write_packed
from charforge.errors import UserError
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.monitor import read_log
from charforge.train.presets import resolve_preset

ROOT = Path(__file__).resolve().parents[2]
LOSS_KEYS = ("loss_D", "loss_G", "D_gp", "G_cls", "D_cls")


def tiny_data(root: Path, n: int = 48, size: int = 16) -> Path:
    """Simple synthetic portraits: background + a blob whose colour follows the hair-colour tag."""
    schema = make_girls_moe_schema()
    rng = np.random.default_rng(0)
    tags = schema.sample_training(n, rng)
    hues = rng.random((13, 3)) * 255
    imgs = np.zeros((n, size, size, 3), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    blob = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 3) ** 2
    for i in range(n):
        imgs[i] = rng.integers(0, 60, 3)
        imgs[i][blob] = hues[tags[i, :13].argmax()]
    write_packed(root, imgs, tags.astype(np.uint8), schema)
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """Deterministic, and far faster than 2 threads on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("ds") / "tiny")


def opts():
    return TrainOptions(device="cpu", show_progress=False, tensorboard=False)


def test_smoke_run_leaves_a_resumable_run(data, tmp_path):
    run = tmp_path / "run"
    p = resolve_preset("tiny", {"steps": 12, "ckpt_every": 5, "sample_every": 6})
    summary = Trainer(data, run, p, opts=TrainOptions(device="cpu", show_progress=False)).run()
    assert summary["step"] == 12
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["preset"]["steps"] == 12 and len(cfg["data_manifest_sha256"]) == 64
    for name in (
        "log.jsonl",
        "loss_curves.png",
        "MODEL_CARD.md",
        "samples/step_0000006.png",
        "checkpoints/state-0000012.safetensors",
        "checkpoints/generator-0000012.safetensors",
    ):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert "unknown" in (run / "MODEL_CARD.md").read_text()
    rows = read_log(run / "log.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert all(np.isfinite(r[k]) for r in rows for k in LOSS_KEYS)
    assert len(list((run / "checkpoints").glob("state-*"))) == 2  # keep_ckpts
    with pytest.raises(UserError, match="--resume"):
        Trainer(data, run, p, opts=opts())
    p2 = resolve_preset("tiny", {"steps": 14, "ckpt_every": 5})
    assert Trainer(data, run, p2, resume=True, opts=opts()).run()["step"] == 14
    # the run ended between sample grids (sample_every 250 here): its last step still gets one, since the CLI
    # tells the user to look at samples/
    assert (run / "samples" / "step_0000014.png").is_file()


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
        "tiny",
        "--threads",
        "1",
        "--no-tensorboard",
        *extra,
    ]


SHARP = {"g_top_blocks": 1, "d_highpass": True, "r1_weight": 1.0}  # the sharpness options' new G/D state


@pytest.mark.parametrize(
    "ada",
    [False, True, "sharp", "cl", "compiled", "reuse"],
    ids=["plain", "ada", "sharp", "channels_last", "compiled", "reuse_fake"],
)
def test_sigkill_then_resume_matches_uninterrupted(data, tmp_path, ada):
    sets = ["--set", "ckpt_every=3", "--set", "sample_every=1000", "--set", "eval_every=1000"]
    reuse = ada == "reuse"
    sharp, cl, compiled, ada = ada == "sharp", ada == "cl", ada == "compiled", ada is True
    extra = {"ada": True, "ada_kimg": 0.05, "ada_target": 0.1} if ada else {}
    extra |= SHARP if sharp else {}
    # the CPU presets' layout: G's sub-pixel shuffle path and D's NCHW small maps (models/blocks.py)
    extra |= {"channels_last": True} if cl or compiled else {}
    # acgan-64-cpu without native bf16: G through torch.compile (train.compiled), each process compiling anew,
    # and D's fast paths (train.fast_d)
    extra |= {"compile_g": True, "d_fast": True} if compiled else {}
    extra |= {"reuse_fake": True} if reuse else {}
    sets += [a for k, v in extra.items() for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "CHARFORGE_PROGRESS": "0"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(data, killed, "--steps", "5000", *sets),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 300  # the compiled case compiles G first
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
        timeout=300,
    )
    assert r.returncode == 0, r.stderr

    p = resolve_preset(
        "tiny", {"steps": total, "ckpt_every": 3, "sample_every": 1000, "eval_every": 1000, **extra}
    )
    Trainer(data, tmp_path / "straight", p, opts=opts()).run()
    a = {r["step"]: r for r in read_log(killed / "log.jsonl")}
    b = {r["step"]: r for r in read_log(tmp_path / "straight" / "log.jsonl")}
    assert sorted(a) == sorted(b) == list(range(1, total + 1))
    for step in range(resumed_from + 1, total + 1):
        keys = LOSS_KEYS + (("aug_p", "D_sign") if ada else ()) + (("D_r1",) if sharp else ())
        assert [a[step][k] for k in keys] == [b[step][k] for k in keys], f"step {step} differs"
    if ada:
        assert b[total]["aug_p"] > 0  # the probability moved, so the resume carried real ADA state
    ga = load_file(str(killed / "checkpoints" / f"generator-{total:07d}.safetensors"))
    gb = load_file(str(tmp_path / "straight" / "checkpoints" / f"generator-{total:07d}.safetensors"))
    assert all(torch.equal(ga[k], gb[k]) for k in gb)


def test_ctrl_c_finishes_the_step_and_checkpoints(data, tmp_path):
    """SIGINT stops between steps and saves, so no finished step is lost even with rare checkpoints."""
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "charforge",
        "train",
        "--data",
        str(data),
        "--preset",
        "tiny",
        "--out",
        str(run),
        "--steps",
        "100000",
        "--threads",
        "1",
        "--no-tensorboard",
        "--set",
        "ckpt_every=100000",
        "--set",
        "sample_every=100000",
        "--set",
        "log_every=1",
    ]
    env = {**os.environ, "CHARFORGE_PROGRESS": "0"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while (
        time.time() < deadline
        and len(read_log(run / "log.jsonl") if (run / "log.jsonl").exists() else []) < 3
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # interrupted is not success
    assert "interrupted by SIGINT" in err and "--resume" in err
    from charforge.train.checkpoint import CheckpointStore

    last = read_log(run / "log.jsonl")[-1]["step"]
    assert CheckpointStore(run).latest() == last >= 3
    assert f"after step {last} " in err  # one step count, the one that was saved


def test_restored_adam_moments_take_the_parameter_layout():
    """A checkpoint holds plain-layout tensors; fused Adam pairs elements in memory order, so moments restored
    onto a channels_last parameter must take its layout, or the next step updates the wrong weights."""
    from charforge.train import checkpoint as ck

    torch.manual_seed(0)
    cl = torch.channels_last
    w0, g1, g2 = torch.randn(8, 4, 3, 3), torch.randn(8, 4, 3, 3), torch.randn(8, 4, 3, 3)

    def fresh():
        q = torch.nn.Parameter(w0.clone().contiguous(memory_format=cl))
        return q, torch.optim.Adam([q], lr=0.1, fused=True)

    q, opt = fresh()
    for g in (g1, g2):
        q.grad = g.contiguous(memory_format=cl)
        opt.step()
    q2, opt2 = fresh()
    q2.grad = g1.contiguous(memory_format=cl)
    opt2.step()
    tensors, meta = ck.flatten_optimizer(opt2, "opt")
    tensors = {k: v.contiguous() for k, v in tensors.items()}  # as a safetensors file gives them back
    q3, opt3 = fresh()
    q3.data.copy_(q2.data)
    ck.restore_optimizer(opt3, tensors, meta, "opt")
    assert opt3.state[q3]["exp_avg"].stride() == q3.stride()
    q3.grad = g2.contiguous(memory_format=cl)
    opt3.step()
    assert torch.equal(q3.detach(), q.detach())
