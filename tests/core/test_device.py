"""Run-time capability detection: bf16 only where the CPU has it (or CHARFORGE_BF16 says so), and the machine line
every benchmark records."""

import pytest

from charforge.core import device


def test_bf16_follows_the_cpu_flags_and_the_override(monkeypatch):
    monkeypatch.delenv("CHARFORGE_BF16", raising=False)
    assert device.native_bf16("cpu") == any(f in device.cpu_flags() for f in device.CPU_BF16_FLAGS)
    monkeypatch.setenv("CHARFORGE_BF16", "0")
    assert device.native_bf16("cpu") is False
    monkeypatch.setenv("CHARFORGE_BF16", "1")
    assert device.native_bf16("cpu") is True


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
