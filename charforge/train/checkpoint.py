"""Checkpoints without pickle: weights, optimiser state and RNG state as safetensors, scalars as JSON metadata.

A checkpoint at step N is two files in run/checkpoints/:
  generator-000000N.safetensors  the EMA generator as a normal model file (what `load_generator(run)` reads)
  state-000000N.safetensors      G, G_ema, D weights, both Adam states, torch RNG state; JSON metadata for
                                 step, schedule, numpy/python RNG states and anything else the loop needs.
The generator file is written first and the state file last, each atomically: a state file exists only for
a complete checkpoint. The last K are kept.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from charforge.core.tags import TagSchema
from charforge.errors import UserError
from charforge.models import runs
from charforge.models.config import ModelConfig
from charforge.models.generator import save_generator
from charforge.models.io import load_model, save_model

STATE_KIND = "train-state"


def flatten_optimizer(
    opt: torch.optim.Optimizer, prefix: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Adam state_dict -> {prefix.state.<param>.<key>: tensor} + JSON for param_groups and non-tensor values."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{prefix}.state.{pid}.{key}"] = val
            else:
                scalars[f"{pid}.{key}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any], prefix: str
) -> None:
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.state."
    for name, val in tensors.items():
        if name.startswith(head):
            pid, key = name[len(head) :].split(".", 1)
            state.setdefault(int(pid), {})[key] = val
    for name, val in meta.get("scalars", {}).items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    match_param_layout(opt)


def match_param_layout(opt: torch.optim.Optimizer) -> None:
    """Give each per-parameter state tensor (Adam's moments) its parameter's memory layout.

    A checkpoint stores tensors in the plain layout, so a channels_last parameter came back with plain-layout
    moments. Fused Adam pairs a parameter, its gradient and its moments element by element in memory order,
    so the moments of a resumed channels_last run (every CPU preset) were applied to the wrong weights: a
    resume was no longer exact, and the moments were scrambled. The values are kept; only the layout moves."""
    for group in opt.param_groups:
        for q in group["params"]:
            st = opt.state.get(q, {})
            for key, val in st.items():
                if torch.is_tensor(val) and val.shape == q.shape and val.stride() != q.stride():
                    st[key] = torch.empty_like(q, dtype=val.dtype).copy_(val)


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    py = random.getstate()
    npst = np.random.get_state(legacy=False)
    npst = {**npst, "state": {"key": npst["state"]["key"].tolist(), "pos": int(npst["state"]["pos"])}}
    return tensors, {"numpy": npst, "python": [py[0], list(py[1]), py[2]]}


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    npst = meta["numpy"]
    npst = {
        **npst,
        "state": {"key": np.asarray(npst["state"]["key"], dtype=np.uint32), "pos": npst["state"]["pos"]},
    }
    np.random.set_state(npst)
    v, st, gauss = meta["python"]
    random.setstate((v, tuple(st), gauss))


def prefixed(prefix: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in sd.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    head = prefix + "."
    return {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}


class CheckpointStore:
    def __init__(self, run_dir: str | Path, keep: int = 3):
        self.run_dir = Path(run_dir)
        self.dir = runs.checkpoint_dir(run_dir)
        self.keep = keep

    def steps(self) -> list[int]:
        return runs.finished_steps(self.run_dir)

    def latest(self) -> int | None:
        return runs.latest_step(self.run_dir)

    def state_path(self, step: int) -> Path:
        return runs.state_path(self.run_dir, step)

    def generator_path(self, step: int) -> Path:
        return runs.generator_path(self.run_dir, step)

    def save(
        self,
        step: int,
        *,
        state: dict[str, torch.Tensor],
        state_meta: dict[str, Any],
        config: dict[str, Any],
        generator: dict[str, torch.Tensor],
        generator_config: ModelConfig,
        schema: TagSchema,
        freqs: Any,
        model_id: str,
        provenance: dict[str, Any],
    ) -> Path:
        """The generator file (format 2: model config only) first, then the training state (with the preset)."""
        save_generator(
            self.generator_path(step),
            generator,
            generator_config,
            schema,
            freqs,
            model_id=model_id,
            provenance=provenance,
        )
        path = save_model(self.state_path(step), state, kind=STATE_KIND, config=config, extra=state_meta)
        self.prune()
        return path

    def remove_stale_temps(self) -> int:
        """Delete temp files an interrupted checkpoint write left (atomic writes name them .NAME.*.tmp); they
        are never a finished checkpoint. Returns how many were removed."""
        if not self.dir.is_dir():
            return 0
        stale = [
            p
            for p in self.dir.iterdir()
            if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file()
        ]
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    def load(self, step: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        try:
            return load_model(self.state_path(step), kind=STATE_KIND)
        except UserError as e:
            raise UserError(
                f"checkpoint at step {step} cannot be read ({e}); delete {self.state_path(step)} to fall back to an older one"
            ) from e

    def prune(self) -> None:
        for s in self.steps()[: -self.keep]:
            self.state_path(s).unlink(missing_ok=True)
            self.generator_path(s).unlink(missing_ok=True)
