"""`charforge train`: a thin wrapper over charforge.train.loop.Trainer."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer


def _presets() -> str:
    from charforge.train.presets import preset_help

    return preset_help()


def train(
    data: Path = typer.Option(
        ..., "--data", help="Packed dataset folder (from `charforge data build/import`)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder, e.g. runs/NAME."),
    preset: str | None = typer.Option(
        None,
        help=f"Preset: {_presets()}. Default: acgan-64-cpu, or with --init-from the source's own settings.",
    ),
    steps: int | None = typer.Option(None, help="Total optimiser steps (overrides the preset)."),
    epochs: float | None = typer.Option(
        None,
        min=0.01,
        help="Train for this many passes over the data instead of --steps; samples, checkpoints and the "
        "early-stop metric then come once per epoch (small sets: a few hundred images are a few steps an epoch).",
    ),
    patience: int | None = typer.Option(
        None,
        min=0,
        help="Early stopping: stop after this many evaluations (every eval_every steps, or every epoch with "
        "--epochs) without improvement of the colour-histogram distance to the data; 0 = never (the default).",
    ),
    minutes: float | None = typer.Option(
        None,
        "--minutes",
        min=0.1,
        help="Wall-clock budget of this command: stop at the first step boundary after it, checkpoint and "
        "exit 0 (the run is resumable; --resume gets a new budget). With --steps/--epochs as the upper bound.",
    ),
    verify_checksums: bool = typer.Option(
        True,
        help="Check the dataset's sha256 sums before training (sizes and tag values are always checked).",
    ),
    batch: int | None = typer.Option(None, help="Images per step per process (overrides the preset)."),
    seed: int | None = typer.Option(None, help="Master seed (overrides the preset)."),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Override a preset field: --set lr=1e-4 (repeatable)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its latest checkpoint."
    ),
    init_from: str | None = typer.Option(
        None,
        "--init-from",
        help="Fine-tune: start this new run from the weights of 'default' (the shipped generator), a run folder, "
        "a state-*.safetensors or a generator file (new optimisers, step 0; the EMA is set for your data size).",
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    threads: int | None = typer.Option(None, help="CPU threads for torch (default: torch's choice)."),
    tensorboard: bool = typer.Option(True, help="Write TensorBoard events to RUN/tb."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the resolved options and model sizes, then exit."
    ),
) -> None:
    """Train a tag-conditioned GAN; checkpoints, samples, logs and a model card go to the run folder."""
    import torch

    from charforge.errors import UserError
    from charforge.train.loop import Trainer, TrainOptions, epoch_schedule, resolve_run_preset
    from charforge.train.presets import (
        parse_overrides,
        preset_sections,
        resolve_preset,
    )

    if resume and init_from:
        raise UserError(
            "--init-from starts a new run from other weights and --resume continues this one; pass only one"
        )
    if threads:
        torch.set_num_threads(threads)
    overrides = parse_overrides(set_)
    if epochs is not None and steps is not None:
        raise UserError("--epochs and --steps both set the run's length; pass only one")
    given = {"steps": steps, "batch": batch, "seed": seed, "patience": patience}
    overrides |= {k: v for k, v in given.items() if v is not None}
    if preset is None and init_from and not resume:
        from charforge.train.loop import source_preset

        base = source_preset(init_from, overrides)  # fine-tune the architecture the weights came from
    else:
        base = resolve_preset(preset or "acgan-64-cpu", overrides)
    p = resolve_run_preset(out, base, resume=resume, overrides=overrides)
    if epochs is not None:
        p = epoch_schedule(p, data, epochs, explicit=tuple(overrides))
    if dry_run:
        from charforge.data.packed import load_packed

        ds = load_packed(data)
        from charforge.models.families import get_family

        nets = get_family(p.family).load_recipe().modules(p, len(ds.schema))  # GAN: G and D; diffusion: U
        count = lambda m: sum(t.numel() for t in m.parameters())  # noqa: E731
        typer.echo(json.dumps({"preset": p.name, "family": p.family, **preset_sections(p)}, indent=2))
        typer.echo(f"data: {len(ds)} images of {ds.size}px, {len(ds.schema)} tags")
        typer.echo(", ".join(f"{k}: {count(m) / 1e6:.2f} M parameters" for k, m in nets.items()))
        return
    command = "charforge " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    trainer = Trainer(
        data,
        out,
        p,
        resume=resume,
        opts=TrainOptions(
            device=device,
            tensorboard=tensorboard,
            command=command,
            init_from=init_from,
            verify_checksums=verify_checksums,
            explicit=tuple(overrides),
            max_minutes=minutes,
        ),
    )
    summary = trainer.run()
    signal_name = _stopped_by_signal(str(summary.get("stop_reason") or ""))
    if signal_name:  # the trainer finished the step, checkpointed and returned: say so and exit non-zero
        from charforge.cli import EXIT_SIGINT, EXIT_SIGTERM, Interrupted

        raise Interrupted(
            EXIT_SIGTERM if signal_name == "SIGTERM" else EXIT_SIGINT,
            f"interrupted by {signal_name}: training stopped after step {summary['step']} and that step is "
            f"checkpointed in {out}; rerun the same command with --resume to continue"
            if trainer.dist.is_main
            else "",
        )
    if trainer.dist.is_main:
        typer.echo(
            f"done: step {summary['step']}, {summary['images']} images in {summary['time_s']:.1f} s; "
            f"EMA generator: {summary['generator']}"
        )
        line = best_line(summary, Path(out), p.keep_ckpts)
        if line:
            typer.echo(line)


def best_line(summary: dict, run_dir: Path, keep: int) -> str:
    """The 'best:' line after training: which two models to compare and their sample grids. It said "look at
    samples/ and use the one that looks right" while only the last `keep` checkpoints and the best stay on disk,
    so a grid from an earlier step had no model left (`eval --model .../generator-0000772.safetensors`: not a
    file)."""
    best = summary.get("best")
    if not best or best.get("step") is None or best["step"] == summary["step"]:
        return ""
    grids = [run_dir / "samples" / f"step_{s:07d}.png" for s in (best["step"], summary["step"])]
    compare = (
        f"compare {grids[0]} with {grids[1]}"
        if all(g.exists() for g in grids)
        else f"compare their grids in {run_dir / 'samples'}"
    )
    return (
        f"best:  step {best['step']} (hist_dist {best['hist_dist']}, lower is closer to the data's colours): "
        f"{best['path']}; {compare} and use the one that looks right (the models of other steps are not kept: "
        f"only the best and the last {keep} checkpoints; --set keep_ckpts=N keeps more)"
    )


def _stopped_by_signal(stop_reason: str) -> str | None:
    """'SIGINT' / 'SIGTERM' when Trainer.run() stopped because of that signal (its stop_reason names it), else None
    (finished, or an early stop, which is a success)."""
    for name in ("SIGTERM", "SIGINT"):
        if name in stop_reason:
            return name
    return None


def register(app: typer.Typer) -> None:
    app.command("train")(train)
