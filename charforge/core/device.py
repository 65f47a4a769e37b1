"""Run-time capabilities: which device to run on and whether bf16 is fast there. Detected, never assumed.

bf16 autocast pays only where the hardware computes in bf16: CUDA GPUs that report it, and CPUs with
AVX-512 BF16 or AMX (on an AVX2-only CPU, measured 7-10x *slower* than fp32, BENCHMARKS.md). Presets ask
for bf16; `use_bf16(device, requested)` grants it only where it is native and says once when it is not.
`CHARFORGE_BF16=0|1` overrides the detection (for tests and for measuring both ways on one machine).
"""

from __future__ import annotations

import functools
import os
import platform
import sys

import torch

from charforge.errors import UserError

DEVICES = ("auto", "cpu", "cuda", "mps")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'mps' -> a torch.device; a device this machine lacks is a UserError naming it."""
    if name not in DEVICES:
        raise UserError(f"--device {name!r}: valid devices are {', '.join(DEVICES)}", field="device")
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                "--device cuda: no CUDA device is available on this machine; use --device cpu or auto",
                field="device",
            )
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(
            "--device mps: MPS is not available on this machine; use --device cpu or auto", field="device"
        )
    return torch.device(name)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.cache
def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else platform.processor(), else "unknown CPU"."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_machine() -> str:
    """One line for a benchmark report: CPU, logical CPUs, SIMD flags (what decides bf16 and the kernels torch
    picks), native bf16 or not, and the load average when it was called (other jobs make timings indicative)."""
    caps = capabilities()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu_name()}, {os.cpu_count()} logical CPUs, SIMD flags: {' '.join(caps['cpu_flags_simd']) or '(none read)'}"
        f", torch kernels: {caps['cpu_capability']}{' (capped)' if caps['isa_capped'] else ''}"
        f", native bf16: {'yes' if caps['cpu_bf16'] else 'no'}, load average {load:.1f} at start"
    )


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bf16 natively (so autocast is a speed-up rather than an emulated slow path)."""
    override = os.environ.get("CHARFORGE_BF16", "").strip()
    if override in ("0", "1"):
        return override == "1"
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type == "cpu":
        if platform.machine().lower() in ("arm64", "aarch64"):
            return False  # no measured fast path here yet: fp32 is the safe choice
        return cpu_bf16_flag() and kernels_bf16()
    return False


def cpu_bf16_flag() -> bool:
    """Whether the CPU reports a bf16 instruction set (avx512_bf16 or amx_bf16)."""
    return any(f in cpu_flags() for f in CPU_BF16_FLAGS)


@functools.cache
def kernels_bf16() -> bool:
    """Whether oneDNN, which runs torch's CPU convolutions and matrix products, will use bf16 instructions. It
    honours ONEDNN_MAX_CPU_ISA (a capped ISA in a VM, a container or a benchmark emulating an AVX2-only CPU), so a
    CPU flag alone is not enough: capped to AVX2, bf16 autocast took 80x the fp32 time for the upscaler here
    (ATEN_CPU_CAPABILITY=avx2 alone changed little)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True  # an old torch without the query: trust the flags


_SAID: set[str] = set()


def use_bf16(device: torch.device | str, requested: bool, *, what: str = "training") -> bool:
    """True when bf16 autocast is requested and native on `device`; otherwise False, saying once (stderr) that a
    requested bf16 falls back to fp32 and why."""
    if not requested:
        return False
    if native_bf16(device):
        return True
    dev = torch.device(device)
    key = f"{dev.type}:{what}"
    if key not in _SAID:
        _SAID.add(key)
        if os.environ.get("CHARFORGE_BF16", "").strip() == "0":
            why = "CHARFORGE_BF16=0 turns it off"
        elif dev.type == "cpu":
            if cpu_bf16_flag():
                why = (
                    "oneDNN is capped below the CPU's bf16 instructions here (ONEDNN_MAX_CPU_ISA="
                    f"{os.environ.get('ONEDNN_MAX_CPU_ISA') or os.environ.get('DNNL_MAX_CPU_ISA') or '?'}), "
                    "where bf16 is slower than fp32"
                )
            else:
                why = "this CPU has no native bf16 (no avx512_bf16 / amx_bf16 flag), where bf16 is slower than fp32"
        else:
            why = f"{dev.type} reports no bf16 support"
        print(
            f"note: {what} runs in fp32: bf16 was requested but {why}",
            file=sys.stderr,
        )
    return False


def capabilities() -> dict[str, object]:
    """A record of what this machine can do, for benchmarks, run configs and bug reports."""
    flags = cpu_flags()
    return {
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # kernels held below what the CPU offers (ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY: e.g. emulating an
        # AVX2-only machine for a benchmark)
        "isa_capped": bool(
            os.environ.get("ONEDNN_MAX_CPU_ISA")
            or os.environ.get("DNNL_MAX_CPU_ISA")
            or os.environ.get("ATEN_CPU_CAPABILITY")
        ),
        "cpu_bf16": native_bf16("cpu"),
        "cpu_flags_simd": sorted(f for f in flags if f.startswith(("avx", "amx"))),
        "cuda": torch.cuda.is_available(),
        "threads": torch.get_num_threads(),
    }
