"""Ctrl-C (SIGINT) and SIGTERM reaching the CLI: a non-zero exit (130 / 143) and one line saying what was
interrupted and how to go on, never a silent status 0. Real child processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def charforge(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "CHARFORGE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "charforge", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a child of a non-interactive shell may inherit SIGINT as ignored; the CLI must see it as a user would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(
                f"the command ended before {path.name} appeared (rc {proc.returncode}): {err[-2000:]}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"{path} did not appear within {timeout_s:.0f} s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen, sig: int, timeout_s: float = 60.0) -> tuple[int, str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running {timeout_s:.0f} s after {signal.Signals(sig).name}: {err[-2000:]}")
    return proc.returncode, out, err


@pytest.mark.parametrize(
    "sig, code, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_signal_during_data_build_exits_nonzero_and_says_how_to_resume(tmp_path, sig, code, name):
    out = tmp_path / "ds"
    proc = charforge(
        ["data", "build", "--n", "200000", "--size", "32", "--chunk", "256", "-o", str(out)], tmp_path
    )
    wait_for(out / ".build_state.json", proc)  # the first chunk is written: the build is under way
    rc, stdout, err = stop(proc, sig)
    assert rc == code, (rc, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert name in lines[0] and "`charforge data build`" in lines[0]
    assert "rerun the same command to resume" in lines[0]
    assert "Traceback" not in err and not (out / "manifest.json").exists()  # not reported as finished


def test_sigterm_during_train_exits_143_without_claiming_done(tmp_path):
    data, run = tmp_path / "small", tmp_path / "run"
    built = subprocess.run(
        [sys.executable, "-m", "charforge", "data", "build", "--n", "32", "--size", "32", "-o", str(data)],
        capture_output=True,
        text=True,
        env={**os.environ, "CHARFORGE_PROGRESS": "0"},
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    proc = charforge(
        ["train", "--data", str(data), "-o", str(run), "--preset", "tiny", "--steps", "100000"]
        + ["--set", "log_every=1", "--no-tensorboard"],
        tmp_path,
    )
    wait_for(run / "log.jsonl", proc)  # steps are being taken
    time.sleep(0.5)
    rc, stdout, err = stop(proc, signal.SIGTERM)
    assert rc == 143, (rc, err)
    assert "done:" not in stdout + err  # a stopped run is not reported as finished
    assert "interrupted by SIGTERM" in err and "--resume" in err and "Traceback" not in err
    assert list((run / "checkpoints").iterdir())  # the trainer checkpointed before exiting


def test_typer_exit_codes_are_passed_on(monkeypatch, capsys):
    """main() used to drop the exit code typer returns with standalone_mode=False (130 after Ctrl-C)."""
    import charforge.cli as cli

    monkeypatch.setattr(cli, "app", lambda args, standalone_mode: 130)
    with pytest.raises(SystemExit) as e:
        cli.main(["data", "build"])
    assert e.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted by Ctrl-C" in err and "`charforge data build`" in err
    monkeypatch.setattr(cli, "app", lambda args, standalone_mode: 3)
    with pytest.raises(SystemExit) as e:
        cli.main(["generate"])
    assert e.value.code == 3
