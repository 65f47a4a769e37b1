"""`charforge f2p train | eval` and the top-level `charforge fit IMAGE...`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

CREATOR_HELP = (
    "Creator to use instead of the one the model names. The model's own is used only when it is builtin, "
    "an installed entry point or a recorded folder; a module:function creator runs code, so it must be given here."
)

f2p_app = typer.Typer(
    help="Face-to-parameter: train and evaluate photo/drawing -> creator-parameter models.",
    no_args_is_help=True,
)


@f2p_app.command("train")
def train(
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (rerun the same command to resume)."),
    creator: str = typer.Option(
        "builtin", help="Creator: builtin, an entry-point name, module:function, or a recorded folder."
    ),
    embedder: str = typer.Option("learned", help="Embedder: learned, identity or generic."),
    n: int = typer.Option(20000, help="Sampled settings to render (a recorded creator uses all its pairs)."),
    size: int = typer.Option(64, help="Render side in pixels."),
    seed: int = typer.Option(0, help="Seed for sampling and training."),
    workers: int = typer.Option(2, help="Render threads."),
    embedder_steps: int = typer.Option(3000, help="Optimiser steps of the learned embedder."),
    imitator_steps: int = typer.Option(4000, help="Optimiser steps of the imitator."),
    translator_steps: int = typer.Option(3000, help="Optimiser steps of the translator on ground truth."),
    finetune_steps: int = typer.Option(1000, help="Optimiser steps of the translator on search targets."),
    n_search: int = typer.Option(500, help="Training targets optimised by search for the fine-tune set."),
    search_iters: int = typer.Option(100, help="Adam steps per search."),
    hidden: int = typer.Option(512, help="Imitator and translator width."),
    emb_width: int = typer.Option(16, help="Base channels of the learned embedder's CNN."),
    emb_dim: int = typer.Option(128, help="Learned embedding size."),
    gray_p: float = typer.Option(0.0, help="Grayscale augmentation probability (raise for line drawings)."),
    threads: int = typer.Option(2, help="CPU threads torch may use."),
) -> None:
    """Sample, render, embed; train the imitator and the translator(s); write OUT/f2p.safetensors."""
    import torch

    from charforge.f2p.pipeline import TrainConfig, train_f2p

    torch.set_num_threads(max(1, threads))
    cfg = TrainConfig(
        creator=creator,
        embedder=embedder,
        n=n,
        size=size,
        seed=seed,
        workers=workers,
        embedder_steps=embedder_steps,
        imitator_steps=imitator_steps,
        translator_steps=translator_steps,
        finetune_steps=finetune_steps,
        n_search=n_search,
        search={"iters": search_iters},
        hidden=hidden,
        emb_width=emb_width,
        emb_dim=emb_dim,
        gray_p=gray_p,
    )
    from charforge.errors import UserError
    from charforge.f2p.embedders import available_embedders

    if embedder not in available_embedders():
        raise UserError(
            f"unknown embedder {embedder!r}. Valid: {', '.join(available_embedders())}", field="embedder"
        )
    f2p = train_f2p(out, cfg)
    typer.echo(f"wrote {f2p.path}")
    typer.echo(json.dumps(f2p.metrics.get("imitator", {}).get("heldout", {})))


@f2p_app.command("eval")
def evaluate(
    f2p: Path | None = typer.Option(
        None, "--f2p", help="Trained folder or .safetensors (default: the shipped model)."
    ),
    out: Path = typer.Option(
        Path("f2p_eval"), "-o", "--out", help="Where to write eval.md, eval.json and examples.png."
    ),
    n: int = typer.Option(200, help="Held-out renders to fit."),
    seed: int = typer.Option(12345, help="Seed of the held-out renders (differs from training seeds)."),
    iters: int | None = typer.Option(None, help="Adam steps for search mode (default: the model's)."),
    n_search: int | None = typer.Option(None, help="Fit only this many with search mode (it is slower)."),
    creator: str | None = typer.Option(None, help=CREATOR_HELP),
) -> None:
    """Self-reconstruction on held-out creator renders: cosine, accuracy, MAE, time per image."""
    from charforge.f2p.evaluate import evaluate_f2p, write_report
    from charforge.f2p.model import load_f2p

    model = load_f2p(f2p, creator=creator)
    result = evaluate_f2p(model, n=n, seed=seed, iters=iters, n_search=n_search)
    md = write_report(result, out)
    typer.echo(md.read_text())


def fit_cmd(
    images: list[Path] = typer.Argument(..., help="One or more images of the same person or character."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: params.json, render.png, fit.json."),
    f2p: Path | None = typer.Option(
        None, "--f2p", help="Trained folder or .safetensors (default: the shipped model)."
    ),
    mode: str = typer.Option(
        "both",
        help="fast (translator), search (through the imitator), both (keep the closer), "
        "or attributes (photo landmarks and colours -> parameters).",
    ),
    iters: int | None = typer.Option(None, help="Adam steps for search (default: the model's)."),
    no_detect: bool = typer.Option(
        False, "--no-detect", help="Use the whole image as the face (drawings, crops)."
    ),
    keep_inputs: bool = typer.Option(
        False,
        "--keep-inputs",
        help="Also write files holding the inputs: a copy of "
        "each and side_by_side.png (inputs | render). Off: no input is written to disk.",
    ),
    creator: str | None = typer.Option(None, help=CREATOR_HELP),
) -> None:
    """Fit creator parameters to IMAGE(s): writes params.json and the render, prints the similarity."""
    from charforge.f2p.fit import fit
    from charforge.f2p.model import load_f2p
    from charforge.f2p.report import load_inputs, write_fit_outputs

    model = load_f2p(f2p, detect=not no_detect, creator=creator)
    arrays = load_inputs(images)
    result = fit(model, arrays, mode, iters=iters, detect=not no_detect)
    paths = write_fit_outputs(result, arrays, out, input_paths=images, keep_inputs=keep_inputs)
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(
        f"similarity {result.similarity:.3f} ({result.mode}); wrote {', '.join(str(p) for p in paths.values())}"
    )
    if not keep_inputs:
        typer.echo(
            "inputs were not written to disk; add --keep-inputs for side_by_side.png (inputs | render)"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(f2p_app, name="f2p")
    app.command("fit")(fit_cmd)
