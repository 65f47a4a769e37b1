"""`charforge f2p train | eval` and the top-level `charforge fit IMAGE...`.

The training defaults and most of their help text come from `TrainConfig` (charforge/f2p/pipeline.py) and
`SearchConfig` (charforge/f2p/search.py), read from their source without importing them (the CLI starts without
torch): one place to change a default. The fit modes come from `MODES` in charforge/f2p/fit.py the same way.
"""

from __future__ import annotations

import ast
import functools
import json
from pathlib import Path
from typing import Any

import typer

import charforge
from charforge.cli._json import JSON_HELP, emit, json_mode


@functools.cache
def config_fields(relpath: str, cls: str) -> dict[str, tuple[Any, str]]:
    """{field: (default, comment)} of a dataclass in charforge/`relpath`, parsed (not imported). Fields whose
    default is not a literal (default_factory) are left out."""
    src = (Path(charforge.__file__).parent / relpath).read_text(encoding="utf-8")
    lines = src.splitlines()
    out: dict[str, tuple[Any, str]] = {}
    for node in ast.parse(src).body:
        if not (isinstance(node, ast.ClassDef) and node.name == cls):
            continue
        for st in node.body:
            if not (
                isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and st.value is not None
            ):
                continue
            try:
                default = ast.literal_eval(st.value)
            except ValueError:
                continue
            text = " ".join(lines[st.lineno - 1 : st.end_lineno])
            comment = text.split("#", 1)[1].strip() if "#" in text else ""
            out[st.target.id] = (default, comment)
    return out


@functools.cache
def module_constant(relpath: str, name: str) -> Any:
    """A literal module-level constant of charforge/`relpath`, parsed (not imported)."""
    src = (Path(charforge.__file__).parent / relpath).read_text(encoding="utf-8")
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise KeyError(f"{relpath}: no constant {name}")


def _train(name: str) -> Any:
    return config_fields("f2p/pipeline.py", "TrainConfig")[name][0]


def _help(name: str, cls: str = "TrainConfig", relpath: str = "f2p/pipeline.py", extra: str = "") -> str:
    comment = config_fields(relpath, cls)[name][1]
    text = (comment[:1].upper() + comment[1:]) if comment else name.replace("_", " ")
    return text.rstrip(".") + "." + (f" {extra}" if extra else "")


MODES = module_constant("f2p/fit.py", "MODES")

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
    creator: str = typer.Option(_train("creator"), help=_help("creator")),
    embedder: str = typer.Option(_train("embedder"), help=_help("embedder")),
    n: int = typer.Option(_train("n"), help=_help("n")),
    size: int = typer.Option(_train("size"), help=_help("size")),
    seed: int = typer.Option(_train("seed"), help=_help("seed")),
    holdout: float = typer.Option(_train("holdout"), help=_help("holdout")),
    workers: int = typer.Option(_train("workers"), help=_help("workers")),
    embedder_steps: int = typer.Option(_train("embedder_steps"), help=_help("embedder_steps")),
    imitator_steps: int = typer.Option(_train("imitator_steps"), help=_help("imitator_steps")),
    translator_steps: int = typer.Option(_train("translator_steps"), help=_help("translator_steps")),
    finetune_steps: int = typer.Option(_train("finetune_steps"), help=_help("finetune_steps")),
    n_search: int = typer.Option(_train("n_search"), help=_help("n_search")),
    search_iters: int = typer.Option(
        config_fields("f2p/search.py", "SearchConfig")["iters"][0],
        help=_help("iters", "SearchConfig", "f2p/search.py", "(SearchConfig.iters)"),
    ),
    hidden: int = typer.Option(_train("hidden"), help=_help("hidden")),
    emb_width: int = typer.Option(_train("emb_width"), help=_help("emb_width")),
    emb_dim: int = typer.Option(_train("emb_dim"), help=_help("emb_dim")),
    gray_p: float = typer.Option(_train("gray_p"), help=_help("gray_p")),
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
        holdout=holdout,
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
        None,
        "--f2p",
        help="Trained folder or .safetensors, or a shipped name: builtin (the default) or styles (the "
        "multi-style creator; the fit then picks the style too).",
    ),
    out: Path = typer.Option(
        Path("f2p_eval"), "-o", "--out", help="Where to write eval.md, eval.json and examples.png."
    ),
    n: int = typer.Option(200, help="Held-out targets to fit."),
    seed: int = typer.Option(12345, help="Seed of the held-out renders (differs from training seeds)."),
    split: str = typer.Option(
        "heldout",
        help="Recorded creators: which captures to fit: heldout (never seen in training, the default), train "
        "or all. Creators that render always get fresh renders.",
    ),
    iters: int | None = typer.Option(None, help="Adam steps for search mode (default: the model's)."),
    n_search: int | None = typer.Option(None, help="Fit only this many with search mode (it is slower)."),
    creator: str | None = typer.Option(None, help=CREATOR_HELP),
) -> None:
    """Self-reconstruction on targets the model never trained on: cosine, accuracy, MAE, time per image."""
    from charforge.f2p.evaluate import evaluate_f2p, write_report
    from charforge.f2p.model import load_f2p

    model = load_f2p(f2p, creator=creator)
    result = evaluate_f2p(model, n=n, seed=seed, iters=iters, n_search=n_search, split=split)
    md = write_report(result, out)
    typer.echo(md.read_text())


# write_fit_outputs' descriptions -> the keys of `fit --json`'s "files"
FIT_FILES = {
    "f2p parameters (JSON)": "params",
    "f2p render": "render",
    "f2p summary (JSON)": "summary",
    "f2p input | render": "side_by_side",
}


def fit_cmd(
    images: list[Path] = typer.Argument(..., help="One or more images of the same person or character."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: params.json, render.png, fit.json."),
    f2p: Path | None = typer.Option(
        None,
        "--f2p",
        help="Trained folder or .safetensors, or a shipped name: builtin (the default) or styles (the "
        "multi-style creator; the fit then picks the style too).",
    ),
    mode: str = typer.Option(
        "both",
        help=f"One of {', '.join(MODES)}: fast (translator), search (through the imitator), both (keep the "
        "closer), attributes (photo landmarks and colours -> parameters).",
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
    no_constrain: bool = typer.Option(
        False,
        "--no-constrain",
        help="Do not keep the fit inside the visible attributes (hair colour, glasses, hat...); they are still "
        "estimated and their agreement reported.",
    ),
    creator: str | None = typer.Option(None, help=CREATOR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Fit creator parameters to IMAGE(s): writes params.json and the render, prints a calibrated similarity."""
    from charforge.f2p.fit import fit
    from charforge.f2p.model import load_f2p
    from charforge.f2p.report import load_inputs, summary_line, write_fit_outputs

    with json_mode(as_json):
        model = load_f2p(f2p, detect=not no_detect, creator=creator)
        arrays = load_inputs(images)
        result = fit(
            model,
            arrays,
            mode,
            iters=iters,
            detect=not no_detect,
            sources=[str(p) for p in images],
            constrain=not no_constrain,
        )
        paths = write_fit_outputs(result, arrays, out, input_paths=images, keep_inputs=keep_inputs)
    if as_json:
        emit(
            "fit",
            {
                "params": result.params,
                "similarity": result.similarity,
                "mode": result.mode,
                "notes": result.notes,
                "warnings": result.warnings,
                "summary": json.loads(paths["f2p summary (JSON)"].read_text()),
                "files": {FIT_FILES[k]: v for k, v in paths.items() if k in FIT_FILES},
                "input_copies": [v for k, v in paths.items() if k.startswith("input ")],
            },
        )
        return
    for note in result.notes:
        typer.echo(f"note: {note}")
    for warning in result.warnings:
        typer.echo(f"warning: {warning}")
    typer.echo(f"{summary_line(result)}; wrote {', '.join(str(p) for p in paths.values())}")
    if not keep_inputs:
        typer.echo(
            "inputs were not written to disk; add --keep-inputs for side_by_side.png (inputs | render)"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(f2p_app, name="f2p")
    app.command("fit")(fit_cmd)
