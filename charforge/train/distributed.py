"""Devices and torchrun DDP.

Gradients are all-reduced by hand after each phase (as StyleGAN2-ADA does) rather than through a
DistributedDataParallel wrapper: the DRAGAN penalty needs a double backward, the D forward runs several
times per phase, and explicit averaging keeps every rank's weights bit-identical. Each rank draws its slice of
one global batch from a shared per-step seed, which is what a DistributedSampler does, without epochs.
Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from charforge.core.device import resolve_device


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    return resolve_device(name, local_rank)


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA); otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if info.world <= 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def allreduce_grads(module: nn.Module, info: DistInfo) -> None:
    """Average .grad over ranks in one flat buffer."""
    if info.world <= 1:
        return
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= info.world
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad.copy_(g.view_as(p.grad))


def mean_over_ranks(value: float, info: DistInfo, device: torch.device) -> float:
    """The mean of a per-rank float over all ranks (the value itself in a single process)."""
    if info.world <= 1:
        return value
    t = torch.tensor([float(value)], device=device, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / info.world


def any_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True if the flag is set on any rank (so all ranks roll back together)."""
    if info.world <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
