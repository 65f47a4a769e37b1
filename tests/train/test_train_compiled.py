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
        if a[0].shape[0] != 4:  # the new shape's recompile fails (the checked first call may run it twice)
            raise RuntimeError("recompile failed")
        return net(*a, **k)

    wrapped.compiled = flaky
    x = torch.randn(4, 3)
    torch.testing.assert_close(wrapped(x), net(x))
    y = torch.randn(5, 3)
    torch.testing.assert_close(wrapped(y), net(y))  # rerun eagerly
    assert wrapped.failed and wrapped.calls == {False: 0, True: 1}
    wrapped(y)
    assert seen.count(5) == 1  # never tried again
    assert "recompile failed" in capsys.readouterr().err


def test_a_miscompiled_g_is_caught_on_its_first_call(capsys):
    """A compiler that returns wrong numbers without failing (torch 2.13's AVX2 code for the acgan-64-cpu G gave
    NaN): the first compiled call in each grad mode is checked against eager from the same batch-norm statistics,
    and G goes eager, saying so; what the caller gets, and the statistics left behind, are eager's."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).train()
    twin = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).train()
    twin.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 8, 8)
    wrapped = CompiledOrEager(net)
    wrapped.compiled = lambda *a: net(*a) * float("nan")  # runs (and moves the statistics), but wrong
    out = wrapped(x)
    torch.testing.assert_close(out, twin(x))
    torch.testing.assert_close(net[1].running_mean, twin[1].running_mean)  # updated once, not twice
    assert wrapped.failed and "computed wrong values on this CPU (non-finite" in capsys.readouterr().err
    # a compiler that agrees with eager is kept after its checked first call, in each grad mode
    good = CompiledOrEager(twin)
    good.compiled = lambda *a: twin(*a) + 1e-7
    with torch.no_grad():
        good(x)
        good(x)
    good(x)
    assert not good.failed and good.checked == {False: True, True: True} and good.calls == {False: 2, True: 1}
    off = CompiledOrEager(torch.nn.Linear(3, 2))
    off.compiled = lambda a: off.module(a) + 0.5
    off(torch.randn(4, 3))
    assert off.failed and "max difference 0.5" in capsys.readouterr().err


def _isa_dir(env_over: dict) -> str:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "TORCHINDUCTOR_CACHE_DIR")}
    env.update(env_over)
    code = "from charforge.train.compiled import isa_cache_dir as f; a = f(); b = f(); assert a == b, (a, b); print(a)"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def test_each_vector_isa_gets_its_own_inductor_cache(tmp_path):
    """inductor's cache key leaves out the vector ISA: a graph cached by an AVX-512 process and served to an AVX2
    one computed NaN. Each ISA gets a folder of its own, below the user's TORCHINDUCTOR_CACHE_DIR where set; a
    second call in the same process does not nest."""
    from pathlib import Path

    native = _isa_dir({"TORCHINDUCTOR_CACHE_DIR": str(tmp_path)})
    capped = _isa_dir({"TORCHINDUCTOR_CACHE_DIR": str(tmp_path), "ATEN_CPU_CAPABILITY": "avx2"})
    assert Path(native).parent == Path(capped).parent == tmp_path
    assert Path(capped).name.startswith("isa-") and "avx2" in Path(capped).name.lower()
    if torch.backends.cpu.get_cpu_capability() != "AVX2":  # a CPU above AVX2: the two differ
        assert native != capped
    assert Path(_isa_dir({})).name == Path(native).name  # torch's default folder, keyed the same way


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("g++"), reason="needs a C++ compiler")
def test_avx2_kernels_train_the_cpu_preset_compiled_after_a_native_run(tmp_path):
    """The AVX2-only CPU path, emulated on any x86 CPU (ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2), after a
    process with the CPU's own ISA compiled the same G into the same inductor cache: the acgan-64-cpu step runs
    fp32 with compile_g on and must train with G compiled and right (before the cache was split by ISA, G's
    compiled output was NaN there and the check sent G eager). About three minutes on one core."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, 'bench'); from pathlib import Path; import torch; "
        "torch.set_num_threads(1); from bench_train import make_data, charforge_stepper; "
        f"d = make_data(Path({str(tmp_path)!r}) / 'd', 64); "
        f"s = charforge_stepper('acgan-64-cpu', 32, d, Path({str(tmp_path)!r}) / sys.argv[1]); "
        "[s() for _ in range(3)]; print('ok')"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    base |= {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"), "CHARFORGE_BF16": "0"}
    for run, cap in (("native", {}), ("avx2", {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"})):
        r = subprocess.run(
            [sys.executable, "-c", code, run], env=base | cap, capture_output=True, text=True, timeout=900
        )
        assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]
        assert "G runs through torch.compile" in r.stderr
        assert "torch.compile of G" not in r.stderr, r.stderr[
            -2000:
        ]  # neither failed nor computed wrong values


def test_the_checked_first_call_can_be_backpropagated_through_a_constant_buffer():
    """The shipped G blurs with a fixed kernel buffer (blocks.Blur3) that its conv saves for backward. The
    checked first call put every buffer back with copy_ (twice), which bumped the kernel's version, so G's first
    backward failed ("modified by an inplace operation: [torch.FloatTensor [32, 1, 3, 3]] is at version 2")
    whenever torch.compile succeeded: a resumed fine-tune of the shipped model under the AVX2 cap crashed at its
    first step. Buffers the call did not change are left alone; the gradient is eager's."""
    from charforge.models.blocks import Blur3

    torch.manual_seed(0)

    def make():
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), Blur3(4)).train()

    net, twin = make(), make()
    x = torch.randn(2, 3, 8, 8)
    wrapped = CompiledOrEager(net)
    wrapped.compiled = lambda *a: net(*a)  # a compiler that agrees with eager
    wrapped(x).square().sum().backward()
    twin(x).square().sum().backward()
    assert not wrapped.failed and wrapped.checked == {True: True}
    torch.testing.assert_close(net[0].weight.grad, twin[0].weight.grad)
    torch.testing.assert_close(net[1].running_mean, twin[1].running_mean)  # statistics moved once


def test_a_compiled_backward_that_fails_sends_g_to_eager_before_the_step(capsys):
    """torch 2.13's inductor compiled the shipped G's forward but its backward failed (`AssertionError: expected
    size 32==32, stride 1==4096 ... Error in op: torch.ops.aten.replication_pad2d_backward`), inside the loss's
    backward() where no fall-back could catch it: a resumed fine-tune under the AVX2 cap ended in a traceback.
    The checked first call in grad mode now runs the compiled backward once too; when it fails, G goes eager,
    saying so, and the caller's backward is eager's."""

    class Broken(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            raise AssertionError("expected size 32==32, stride 1==4096 at dim=1")

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).train()
    wrapped = CompiledOrEager(net)
    wrapped.compiled = lambda *a: Broken.apply(net(*a))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():  # D's phase: no backward to check
        wrapped(x)
    assert not wrapped.failed
    wrapped(x).square().sum().backward()  # G's phase: the failure is found before the caller's backward
    assert wrapped.failed and net[0].weight.grad is not None
    err = capsys.readouterr().err
    assert "torch.compile of G failed in its backward (AssertionError: expected size 32==32" in err, err
    assert "runs eagerly" in err
