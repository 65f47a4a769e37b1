"""`charforge train --minutes`: a wall-clock budget that stops at a step boundary, checkpoints, exits 0 and
leaves a run that --resume continues."""

import numpy as np

from charforge.core.tags import make_girls_moe_schema
from charforge.data.packed import write_packed
from charforge.train.checkpoint import CheckpointStore
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.presets import resolve_preset

SCHEMA = make_girls_moe_schema()


def _data(root):
    rng = np.random.default_rng(3)
    write_packed(
        root,
        rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8),
        SCHEMA.sample_training(16, rng).astype(np.uint8),
        SCHEMA,
    )
    return root


def test_budget_stops_checkpoints_and_resumes(tmp_path):
    data = _data(tmp_path / "d")
    run = tmp_path / "run"
    opts = lambda m: TrainOptions(device="cpu", tensorboard=False, show_progress=False, max_minutes=m)  # noqa: E731
    tr = Trainer(data, run, resolve_preset("tiny", {"steps": 10_000}), opts=opts(0.002))  # 0.12 s
    summary = tr.run()
    assert 0 < summary["step"] < 10_000 and "time budget of 0.002 min" in summary["stop_reason"]
    assert CheckpointStore(run).latest() == summary["step"]
    again = Trainer(
        data, run, resolve_preset("tiny", {"steps": summary["step"] + 2}), resume=True, opts=opts(5)
    )
    assert again.run()["step"] == summary["step"] + 2 and not again.stop_reason


def test_cli_minutes_exits_zero(tmp_path, capsys):
    from tests.creators.test_builtin_cli import run

    data = _data(tmp_path / "d")
    argv = [
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "r"),
        "--preset",
        "tiny",
        "--steps",
        "100000",
    ]
    code, out, err = run([*argv, "--minutes", "0.1", "--no-tensorboard"], capsys)
    assert code == 0 and "time budget of 0.1 min reached" in err and "done: step" in out


def test_the_progress_bar_ends_where_the_budget_does():
    """Under --minutes the bar's total is the step the budget will reach at the pace so far, never past --steps:
    a 4-minute run of a 100,000-step preset must not show a 20-hour ETA."""
    from charforge.train.loop import budget_total

    # 40 steps in 60 s of a 240 s budget, resumed at step 100: 180 s left at 2/3 step/s -> 120 more
    assert budget_total(140, 100, 100_000, 60.0, 240.0) == 260
    assert budget_total(140, 100, 200, 60.0, 240.0) == 200  # --steps comes first
    assert budget_total(100, 100, 100_000, 0.0, 240.0) == 100_000  # no pace yet
    assert budget_total(150, 100, 100_000, 300.0, 240.0) == 150  # over budget: ends here


def test_a_resumed_budget_run_counts_its_own_steps_on_the_bar(tmp_path, monkeypatch):
    """A resumed run under --minutes shows this invocation's progress from 0 %, not the earlier steps (a
    resume at step 9,800 of a budget ending near 10,000 used to open at 98 %); without a budget the bar counts
    the run's steps from 0 to --steps."""
    import io
    import sys

    import charforge.train.loop as loop

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bars = []
    real = loop.progress

    def spy(**kw):
        bar = real(**{**kw, "disable": False})  # counting, into the StringIO below
        bars.append((kw, bar))
        return bar

    monkeypatch.setattr(loop, "progress", spy)
    data = _data(tmp_path / "d")
    run = tmp_path / "run"
    opts = lambda m: TrainOptions(device="cpu", tensorboard=False, show_progress=False, max_minutes=m)  # noqa: E731
    Trainer(data, run, resolve_preset("tiny", {"steps": 6}), opts=opts(None)).run()
    kw, bar = bars[-1]
    assert kw["initial"] == 0 and kw["total"] == 6 and bar.n == 6 and kw["desc"] == "train"
    Trainer(data, run, resolve_preset("tiny", {"steps": 10}), resume=True, opts=opts(5)).run()
    kw, bar = bars[-1]
    assert kw["initial"] == 0 and kw["total"] == 4 and "5 min from step 6" in kw["desc"]
    assert bar.n == 4 and bar.total == 4  # the budget is far off: the run ends at --steps, the bar at 100 %


def test_the_budget_bar_eta_is_the_budget_left_when_steps_slow_down(tmp_path, monkeypatch):
    """Under --minutes the bar's ETA is the time the budget has left, also when the steps slow down midway (a
    fine-tune's D warm-up steps are about twice as fast as the steps after it). The bar's total comes from the
    pace since the start, so its ETA must too: with tqdm's smoothed (recent) rate a 12-minute fine-tune showed
    `[01:33<12:00]`, a run of 13.5 minutes."""
    import io
    import sys
    import types

    import tqdm.std

    import charforge.train.loop as loop

    clock = [1000.0]
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(tqdm.std, "time", lambda: clock[0])
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bars, seen = [], []
    real = loop.progress
    monkeypatch.setattr(
        loop, "progress", lambda **kw: bars.append(real(**{**kw, "disable": False})) or bars[-1]
    )
    data = _data(tmp_path / "d")
    opts = TrainOptions(device="cpu", tensorboard=False, show_progress=False, max_minutes=5)
    tr = Trainer(data, tmp_path / "run", resolve_preset("tiny", {"steps": 100_000}), opts=opts)
    start = clock[0]

    def step(s):  # 100 steps of 0.5 s, then 1.5 s a step
        clock[0] += 0.5 if s < 100 else 1.5
        if s in (120, 150, 200):
            fd = bars[-1].format_dict
            rate = fd["rate"] or (fd["n"] - fd["initial"]) / fd["elapsed"]
            seen.append(((fd["total"] - fd["n"]) / rate, 300.0 - (clock[0] - start)))
        return {"loss_D": 1.0}

    tr.train_step = step
    tr._bookkeeping = lambda logs, rate: None
    tr.run()
    assert len(seen) == 3
    for eta, left in seen:  # the ETA shown is the budget left (within a step's lag), not minutes beyond it
        assert abs(eta - left) <= 0.05 * left + 3.0, seen
