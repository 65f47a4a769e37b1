"""G through torch.compile where the trainer's step runs fp32 on CPU (preset compile_g; train.compiled).

The compiled step must give an eager step's numbers up to float rounding, leave checkpoints and the EMA to the
module itself, stay off under bf16, and fall back to eager, saying so, when compilation fails.
"""

import shutil

import pytest
import torch

from charforge.train import compiled
from charforge.train.compiled import CompiledOrEager
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.presets import resolve_preset
from tests.train.test_train_resume import one_thread, tiny_data  # noqa: F401  (one_thread: an autouse fixture)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("ds") / "tiny")


def trainer(data, run, **over) -> Trainer:
    p = resolve_preset("tiny", {"channels_last": True, "steps": 4, **over})
    return Trainer(data, run, p, opts=TrainOptions(device="cpu", show_progress=False, tensorboard=False))


def steps(tr: Trainer, n: int = 3) -> list[dict]:
    return [{k: float(v) for k, v in tr.train_step(i).items()} for i in range(n)]


@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="torch.compile's CPU backend needs a C++ compiler (charforge then trains G eagerly, tested below)",
)
def test_compiled_g_matches_eager(data, tmp_path):
    eager = trainer(data, tmp_path / "eager")
    fast = trainer(data, tmp_path / "fast", compile_g=True)
    assert not isinstance(eager.loss.G, CompiledOrEager)
    assert isinstance(fast.loss.G, CompiledOrEager) and fast.loss.G.module is fast.G
    a, b = steps(eager), steps(fast)
    assert (
        not fast.loss.G.failed and min(fast.loss.G.calls.values()) > 0
    )  # D's phase (no_grad) and G's phase ran
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert rb[k] == pytest.approx(ra[k], rel=1e-4, abs=1e-5), k
    ga, gb = eager.G.state_dict(), fast.G.state_dict()
    assert list(ga) == list(gb)  # the module's own names: checkpoints and model files are unchanged
    # Adam's first updates are about lr * sign(gradient): where a gradient is ~0, rounding may flip its sign,
    # so a weight may differ by up to 2 lr per step; anything beyond that is a real difference
    tol = 2 * fast.p.lr * 3 + 1e-6
    for k in ga:
        torch.testing.assert_close(gb[k], ga[k], rtol=0, atol=tol, msg=k)
    # the EMA follows the module's weights and buffers as in the eager run
    ea, eb = eager.ema.net.state_dict(), fast.ema.net.state_dict()
    for k in ea:
        torch.testing.assert_close(eb[k], ea[k], rtol=1e-4, atol=tol, msg=k)


def test_no_compile_under_bf16_or_when_switched_off(data, tmp_path, monkeypatch):
    assert not isinstance(trainer(data, tmp_path / "off").loss.G, CompiledOrEager)  # tiny: compile_g off
    tr = trainer(data, tmp_path / "bf16", compile_g=True, bf16=True)
    assert isinstance(tr.loss.G, CompiledOrEager) != tr.bf16  # bf16 autocast keeps G eager


def test_failed_compilation_falls_back_to_eager(data, tmp_path, monkeypatch, capsys):
    def broken(module):
        def call(*a, **k):
            raise RuntimeError("no C++ compiler here")

        return call

    monkeypatch.setattr(compiled.torch, "compile", broken)
    eager = trainer(data, tmp_path / "eager")
    fast = trainer(data, tmp_path / "fast", compile_g=True)
    a, b = steps(eager), steps(fast)
    assert fast.loss.G.failed
    assert a == b  # the failed call was rerun eagerly: the very same numbers
    err = capsys.readouterr().err
    assert err.count("torch.compile of G failed (RuntimeError: no C++ compiler here)") == 1


def test_a_later_compile_failure_also_falls_back(monkeypatch, capsys):
    """A recompile (a new shape) that fails after earlier compiled calls succeeded: G goes eager, not down."""
    net = torch.nn.Linear(3, 2)
    wrapped = CompiledOrEager(net)
    seen = []

    def flaky(*a, **k):
        seen.append(a[0].shape[0])
        if len(seen) > 1:
            raise RuntimeError("recompile failed")
        return net(*a, **k)

    wrapped.compiled = flaky
    x = torch.randn(4, 3)
    torch.testing.assert_close(wrapped(x), net(x))
    y = torch.randn(5, 3)
    torch.testing.assert_close(wrapped(y), net(y))  # rerun eagerly
    assert wrapped.failed and wrapped.calls == {False: 0, True: 1}
    wrapped(y)
    assert len(seen) == 2  # never tried again
    assert "recompile failed" in capsys.readouterr().err
