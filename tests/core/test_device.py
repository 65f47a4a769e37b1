"""Run-time capability detection: bf16 only where the CPU has it (or CHARFORGE_BF16 says so), and the machine line
every benchmark records."""

import pytest

from charforge.core import device


def test_bf16_follows_the_cpu_flags_and_the_override(monkeypatch):
    monkeypatch.delenv("CHARFORGE_BF16", raising=False)
    has = any(f in device.cpu_flags() for f in device.CPU_BF16_FLAGS)
    assert device.native_bf16("cpu") == (has and device.kernels_bf16())
    monkeypatch.setenv("CHARFORGE_BF16", "0")
    assert device.native_bf16("cpu") is False
    monkeypatch.setenv("CHARFORGE_BF16", "1")
    assert device.native_bf16("cpu") is True


def test_bf16_needs_onednn_to_use_it():
    """A CPU flag is not enough: with oneDNN capped to AVX2 (a VM, a container, or a benchmark emulating an
    AVX2-only CPU) bf16 runs an emulated path many times slower than fp32, so it is not native."""
    import os
    import subprocess
    import sys

    code = (
        "from charforge.core import device; import sys; "
        "print(device.native_bf16('cpu'), device.capabilities()['isa_capped']); "
        "print(device.describe_machine()); device.use_bf16('cpu', True, what='probe')"
    )
    env = {k: v for k, v in os.environ.items() if k != "CHARFORGE_BF16"}
    env |= {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    first, line = r.stdout.splitlines()[:2]
    assert first == "False True"
    assert "torch kernels: AVX2 (capped)" in line and "native bf16: no" in line
    assert "note: probe runs in fp32" in r.stderr
    if any(f in device.cpu_flags() for f in device.CPU_BF16_FLAGS):  # the reason names the cap, not the CPU
        assert "ONEDNN_MAX_CPU_ISA=AVX2" in r.stderr


def test_requested_bf16_falls_back_to_fp32_once_with_a_reason(monkeypatch, capsys):
    monkeypatch.setenv("CHARFORGE_BF16", "0")
    monkeypatch.setattr(device, "_SAID", set())
    assert device.use_bf16("cpu", True, what="the test") is False
    assert device.use_bf16("cpu", True, what="the test") is False
    err = capsys.readouterr().err
    assert err.count("note: the test runs in fp32") == 1 and "CHARFORGE_BF16=0 turns it off" in err
    assert device.use_bf16("cpu", False) is False
    # without the override, a CPU without the flags is named as the reason
    monkeypatch.delenv("CHARFORGE_BF16")
    monkeypatch.setattr(device, "_SAID", set())
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(device.platform, "machine", lambda: "x86_64")
    assert device.use_bf16("cpu", True, what="the test") is False
    assert "this CPU has no native bf16" in capsys.readouterr().err
    monkeypatch.setenv("CHARFORGE_BF16", "1")
    assert device.use_bf16("cpu", True) is True


def test_machine_description_names_cpu_flags_and_load(monkeypatch):
    caps = device.capabilities()
    assert caps["cpu"] == device.cpu_name() and caps["cpu"]
    assert caps["cpu_flags_simd"] == sorted(f for f in device.cpu_flags() if f.startswith(("avx", "amx")))
    monkeypatch.setenv("CHARFORGE_BF16", "0")
    line = device.describe_machine()
    assert line.startswith(device.cpu_name()) and "logical CPUs" in line and "native bf16: no" in line
    assert "load average" in line and "SIMD flags:" in line


@pytest.mark.parametrize("name", ["cpu", "auto"])
def test_resolve_device_without_a_gpu_is_the_cpu(name):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert device.resolve_device(name).type == "cpu"
