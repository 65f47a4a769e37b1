"""`charforge demo`: the main job on built-in defaults, end to end, printing where everything went."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def _stage(title: str):
    typer.echo(f"\n== {title}")
    return time.perf_counter()


def _creator_stage(out: Path) -> dict[str, Path]:
    import numpy as np

    from charforge.creators.base import get_creator
    from charforge.data.inspect import contact_sheet
    from charforge.provenance import save_png

    cr = get_creator("builtin")
    batch = cr.sample(64, np.random.default_rng(0))
    sheet = contact_sheet(cr.render(batch, 128))
    path = save_png(out / "creator_sheet.png", sheet, {"creator": "builtin", "seed": 0, "n": 64})
    return {"creator sheet": path}


def _dataset_stage(out: Path) -> dict[str, Path]:
    from charforge.data.build import build_from_creator
    from charforge.data.inspect import inspect_dataset, summarise
    from charforge.data.packed import load_packed

    root = out / "dataset_builtin64"
    ds = (
        load_packed(root)
        if (root / "manifest.json").exists()
        else build_from_creator(root, n=1024, size=64, seed=0)
    )
    paths = inspect_dataset(ds, root / "inspect")
    typer.echo(summarise(ds))
    return {"dataset": root, "dataset sheet": paths["sheet"], "tag chart": paths["tags"]}


DEMO_TAG_SETS = [
    "blonde hair, blue eyes",
    "pink hair, twintails, smile",
    "black hair, red eyes, glasses",
    "silver hair, hat, ribbon",
]


def _generator_stage(out: Path) -> dict[str, Path]:
    from charforge.sampling import generate_sheet, load_generator

    bundle = load_generator(None)
    paths = {}
    for i, tags in enumerate(DEMO_TAG_SETS):
        paths[f"generated: {tags}"] = generate_sheet(
            bundle, tags, n=16, seed=i, path=out / f"generated_{i}.png"
        )
    return paths


def _upscale_stage(out: Path) -> dict[str, Path]:
    import numpy as np

    from charforge.provenance import save_png
    from charforge.sampling import characters_for_request, load_generator
    from charforge.sr import load_upscaler

    up = load_upscaler(None)  # before any work: a missing upscaler is "not run", not half a stage
    bundle = load_generator(None)
    images, seeds, tags = characters_for_request(bundle, DEMO_TAG_SETS[3], 4, 0)
    paths = {}
    for scale in (2, 4):
        big = up.upscale(images, scale)
        path = out / f"upscaled_x{scale}.png"
        meta = {
            **bundle.png_meta(seeds[0], tags[0]),
            "seeds": [int(x) for x in seeds],
            **up.provenance(scale),
        }
        paths[f"upscaled x{scale}: {DEMO_TAG_SETS[3]}"] = save_png(
            path, np.concatenate(list(big), axis=1), meta
        )
    return paths


def _fit_stage(out: Path) -> dict[str, Path]:
    import numpy as np

    from charforge.creators.base import get_creator
    from charforge.f2p import fit, load_f2p, write_fit_outputs

    cr = get_creator("builtin")
    target = cr.render(cr.sample(1, np.random.default_rng(123)), 128)
    f2p = load_f2p(None)
    result = fit(f2p, [target[0]], mode="both")
    # the input is a creator render, not a photo: keeping it (side_by_side.png) shows nothing private
    paths = write_fit_outputs(result, target[0], out / "fit", keep_inputs=True)
    typer.echo(
        f"similarity {result.similarity:.3f} ({', '.join(f'{k} {v * 1000:.0f} ms' for k, v in result.timings.items())})"
    )
    return paths


STAGES = [
    ("character creator: 64 random characters", _creator_stage),
    ("dataset: 1024 built-in renders at 64 px", _dataset_stage),
    ("generator: shipped model, one sheet per tag set", _generator_stage),
    ("upscaler: the same characters at 2x and 4x", _upscale_stage),
    ("face-to-parameter: fit a character with the shipped model", _fit_stage),
]


def demo(out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Where the results go.")) -> None:
    """Run the main job on built-in defaults and print where the results are."""
    out.mkdir(parents=True, exist_ok=True)
    from charforge.errors import UserError

    results: dict[str, Path] = {}
    missing: list[str] = []
    for title, fn in STAGES:
        t0 = _stage(title)
        try:
            results.update(fn(out))
        except UserError as e:  # e.g. a shipped model that is not installed: say so, run the other stages
            typer.echo(f"not run: {e}", err=True)
            missing.append(title)
            continue
        typer.echo(f"done in {time.perf_counter() - t0:.1f} s")
    typer.echo("\n== results")
    for name, path in results.items():
        typer.echo(f"{name:48} {path}")
    for title in missing:
        typer.echo(f"{'not run':48} {title} (see the message above)")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
