"""`charforge eval`: judge a generator (FID/KID, tag precision, diversity, memorisation, t-SNE) into a report folder."""

from __future__ import annotations

from pathlib import Path

import typer

from charforge.cli._json import JSON_HELP, emit, json_mode


def eval_command(
    out: Path | None = typer.Option(None, "-o", "--out", help="Report folder (reports/NAME). Required."),
    data: Path | None = typer.Option(
        None, "--data", help="Packed dataset the model is compared with (its training data). Required."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Generator: a shipped name, a .safetensors file or a run folder (default: the shipped default).",
    ),
    tagger: Path | None = typer.Option(
        None, "--tagger", help="Tagger file or folder (default: the shipped tagger, if any)."
    ),
    metrics: str = typer.Option("all", "--metrics", help="Comma-separated metric names, or all."),
    inception_weights: Path | None = typer.Option(
        None,
        "--inception-weights",
        help="FID Inception-v3 weights file you supply (.safetensors, or a .pth state dict such as "
        "pt_inception-2015-12-05-6726825d.pth; never downloaded): adds fid_inception and kid_inception, "
        "figures comparable with published FID. Without it every FID is in charforge's own feature spaces.",
    ),
    n: int = typer.Option(
        1000, "--n", help="Real and generated images per FID/KID run (capped at half the dataset)."
    ),
    runs: int = typer.Option(5, help="Repeated FID/KID runs (mean and max-min are reported)."),
    precision_n: int = typer.Option(100, help="Generated images judged per tag by the precision metric."),
    sample_n: int = typer.Option(500, help="Generated images for the memorisation check."),
    tsne_n: int = typer.Option(1000, help="Dataset images on the t-SNE map."),
    tsne_group: str | None = typer.Option(
        None, help="Tag group colouring the t-SNE map (default: the first group)."
    ),
    collapse_threshold: float = typer.Option(
        0.5, help="Flag mode collapse when generated/real diversity falls below this."
    ),
    seed: int = typer.Option(0, help="Seed for the real subsets, the generated noise and the sampled tags."),
    truncation: float = typer.Option(
        1.0,
        help="Noise truncation psi in (0, 1] for every generated image "
        "(1 = untruncated; lower trades diversity for fidelity).",
    ),
    threads: int | None = typer.Option(None, help="torch threads (default: torch's choice)."),
    device: str = typer.Option("auto", help="Where the generator runs: auto, cpu, cuda or mps."),
    steps: int | None = typer.Option(None, "--steps", help="Diffusion models: denoising steps (default 20)."),
    guidance: float | None = typer.Option(
        None, "--guidance", help="Diffusion models: classifier-free guidance scale (default 2)."
    ),
    sampler: str | None = typer.Option(None, "--sampler", help="Diffusion models: dpm++ (default) or ddim."),
    list_metrics: bool = typer.Option(False, "--list", help="List the metric names and exit."),
    pixel_art: str = typer.Option(
        "auto",
        "--pixel-art",
        help="auto: a model trained on pixel art is measured snapped to its grid and palette, as it generates; "
        "off: its raw output.",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Evaluate a generator against a dataset; writes report.json, report.md and PNGs. Rerun to resume."""
    from charforge.errors import UserError
    from charforge.metrics.registry import METRICS

    if list_metrics:
        if as_json:
            emit(
                "eval",
                {
                    "metrics": {
                        s.name: {
                            "needs_tagger": s.needs_tagger,
                            "needs_inception_weights": s.needs_inception,
                            "help": s.help,
                        }
                        for s in METRICS.values()
                    }
                },
            )
            return
        for spec in METRICS.values():
            typer.echo(f"{spec.name:14} {'(needs a tagger) ' if spec.needs_tagger else ''}{spec.help}")
        typer.echo(
            "\nfid_domain/fid_generic are in charforge's own feature spaces, not the Inception FID papers report; "
            "fid_inception needs --inception-weights FILE (docs/eval/METRICS.md)."
        )
        return
    if out is None or data is None:
        raise UserError(
            "charforge eval needs --data DIR (the packed dataset) and -o reports/NAME (the report folder)"
        )
    if min(n, runs, precision_n, sample_n, tsne_n) < 1:
        raise UserError("--n, --runs, --precision-n, --sample-n and --tsne-n must be at least 1")
    if threads:
        import torch

        torch.set_num_threads(threads)
    from charforge.metrics.registry import parse_metrics
    from charforge.metrics.report import evaluate_model

    tagger_path = tagger if tagger is not None else _default_tagger_for(data)
    names = parse_metrics(
        None if metrics == "all" else metrics,
        have_tagger=tagger_path is not None,
        have_inception=inception_weights is not None,
    )
    if tagger_path is None and metrics == "all":
        skipped = [m for m, spec in METRICS.items() if spec.needs_tagger]
        typer.echo(f"note: no usable tagger, so skipping {', '.join(skipped)}", err=True)
    with json_mode(as_json):
        report = evaluate_model(
            model,
            data,
            out,
            tagger_path=tagger_path,
            metrics=names,
            n=n,
            runs=runs,
            precision_n=precision_n,
            sample_n=sample_n,
            tsne_n=tsne_n,
            tsne_group=tsne_group,
            collapse_threshold=collapse_threshold,
            seed=seed,
            truncation=truncation,
            device=device,
            inception_weights=inception_weights,
            sampling_options={"steps": steps, "guidance": guidance, "sampler": sampler},
            pixel_art=pixel_art,
        )
    if as_json:
        emit(
            "eval",
            {
                "out": out,
                "report_md": Path(out) / "report.md",
                "report_json": Path(out) / "report.json",
                "report": report,
            },
        )
        return
    typer.echo(summary_lines(report))
    typer.echo(f"report       {Path(out) / 'report.md'}")


def _default_tagger_for(data: Path) -> Path | None:
    """The shipped judge that reads this dataset's tags (tagger_default for the 34 tags, tagger_styles for the
    multi-style creator's 40); a custom schema needs its own tagger."""
    from charforge.data.packed import load_packed
    from charforge.tagger.net import default_tagger_path, judge_for

    if default_tagger_path() is None:
        return None
    path = judge_for(load_packed(data).schema.tags)
    if path is None:
        typer.echo(
            "note: no shipped tagger knows this dataset's tags; pass --tagger for the tagger metrics",
            err=True,
        )
    return path


def summary_lines(report: dict) -> str:
    m, lines = report["metrics"], []
    trained = set((report.get("model") or {}).get("feature_spaces_in_training") or [])
    for name in ("fid_domain", "kid_domain", "fid_generic", "kid_generic", "fid_inception", "kid_inception"):
        if name in m:
            r = m[name]
            # FID is read as a multiple of the real-vs-real floor (the docs and report.md quote "x10.1"); the
            # terminal gave only the two numbers
            vs = r.get("vs_baseline")
            times = f" = x{vs:.2f} the floor" if name.startswith("fid") and vs is not None else ""
            gamed = (
                f"  (the model trained against the {r['space']} network: can be gamed, judge by another space)"
                if name.startswith("fid") and r.get("space") in trained
                else ""
            )
            lines.append(
                f"{name:12} {r['model']['mean']:.4g} (max-min {r['model']['spread']:.3g}); "
                f"real vs real {r['real_baseline']['mean']:.4g}{times}{gamed}"
            )
    if "is_domain" in m:
        lines.append(
            f"{'is_domain':12} {m['is_domain']['model']['total']['mean']:.3f} "
            f"(real {m['is_domain']['real_baseline']['total']['mean']:.3f})"
        )
    if "precision" in m:
        lines.append(
            f"{'precision':12} mean {m['precision']['mean']:.3f}, min {m['precision']['min']:.3f} ({m['precision']['min_tag']})"
        )
    if "diversity" in m:
        d = m["diversity"]
        lines.append(
            f"{'diversity':12} ratio {d['ratio']:.3f}{'  MODE COLLAPSE' if d['mode_collapse'] else ''}"
        )
    if "memorisation" in m:
        lines.append(
            f"{'memorisation':12} near copies {m['memorisation']['near_copies']} of {m['memorisation']['generated']}"
        )
    for name in ("precision", "memorisation"):
        if m.get(name, {}).get("note"):
            lines.append(f"{'':12} note: {m[name]['note']}")
    fs = report.get("feature_spaces")
    if fs and not fs.get("comparable_with_published_fid"):
        lines.append(
            f"{'note':12} FID/KID here are in charforge's own feature spaces, not the Inception FID papers report "
            "(--inception-weights FILE adds fid_inception)"
        )
    lines.append(f"{'wall time':12} {report['wall_seconds']} s")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
