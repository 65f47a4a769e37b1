"""`charforge creator ...`: contact sheets, single renders and the schema of the built-in creator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from charforge.creators.builtin.styles import STYLES
from charforge.errors import UserError

creator_app = typer.Typer(
    help="The built-in anime-portrait creator: sheets, renders, schema.", no_args_is_help=True
)


def contact_sheet(images: np.ndarray, cols: int | None = None) -> np.ndarray:
    """(N, S, S, 3) -> one (rows*S, cols*S, 3) grid, filled row by row; empty cells stay white."""
    n, s = len(images), images.shape[1]
    cols = cols or max(1, int(np.ceil(np.sqrt(n))))
    rows = max(1, int(np.ceil(n / cols)))
    sheet = np.full((rows * s, cols * s, 3), 255, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        sheet[r * s : (r + 1) * s, c * s : (c + 1) * s] = im
    return sheet


def read_params_file(path: Path) -> object:
    """The JSON in `path`, with a UserError naming the file for a missing file or broken JSON."""
    if path.exists() and not path.is_file():
        raise UserError(f"{path}: not a regular file; give a JSON file of parameter name -> value")
    if not path.is_file():
        raise UserError(
            f'{path}: no such parameter file. Write a JSON object such as {{"hair_color": "pink", "eye_size": 1.1}}'
        )
    from charforge.utils.io import json_loads_bounded

    try:
        return json_loads_bounded(path.read_text(encoding="utf-8"))
    except RecursionError as e:
        raise UserError(
            f"{path}: not valid parameter JSON (nested too deeply). Write a flat JSON object of "
            'parameter name -> value, such as {"hair_color": "pink"}'
        ) from e
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise UserError(
            f"{path}: not valid JSON ({e}). Write a JSON object of parameter name -> value"
        ) from e
    except OSError as e:
        raise UserError(f"{path}: cannot read the parameter file ({e.strerror or e})") from e


SIZE_RANGE = (32, 512)  # pixels per rendered character the creator commands accept


def check_size(size: int) -> None:
    lo, hi = SIZE_RANGE
    if not lo <= size <= hi:
        raise UserError(f"--size {size}: choose between {lo} and {hi} pixels", field="size")


@creator_app.command("sheet")
def sheet(
    n: int = typer.Option(64, "--n", help="number of characters"),
    seed: int = typer.Option(0, "--seed", help="random seed of the character draw"),
    size: int = typer.Option(128, "--size", help="pixels per character (32..512)"),
    output: Path = typer.Option(Path("sheet.png"), "-o", "--output", help="PNG to write"),
    style: str = typer.Option(
        "cel",
        "--style",
        help=f"render style: {', '.join(STYLES)}, or 'all' (one row of the same characters per style)",
    ),
) -> None:
    """Render a grid of n random characters (sqrt layout), in one render style or all of them."""
    from charforge.creators.builtin import BuiltinCreator
    from charforge.creators.builtin.styles import check_style
    from charforge.provenance import save_png

    if not 1 <= n <= 4096:
        raise UserError(f"--n {n}: choose between 1 and 4096 characters", field="n")
    check_size(size)
    batch = BuiltinCreator().sample(n, np.random.default_rng(seed))
    if style.strip().lower() == "all":
        rows = [BuiltinCreator(style=s).render(batch, size) for s in STYLES]
        sheet = contact_sheet(np.concatenate(rows), cols=n)
        shown = "all styles, one row each"
    else:
        chosen = check_style(style)
        sheet = contact_sheet(BuiltinCreator(style=chosen).render(batch, size))
        shown = f"style {chosen}"
    save_png(output, sheet, {"creator": "builtin", "style": style, "seed": seed, "n": n, "size": size})
    typer.echo(f"wrote {output} ({n} characters, {size} px each, seed {seed}, {shown})")


@creator_app.command("render")
def render(
    params: Path = typer.Option(
        ..., "--params", help="JSON object of parameters; missing ones take defaults"
    ),
    output: Path = typer.Option(Path("out.png"), "-o", "--output", help="PNG to write"),
    size: int = typer.Option(256, "--size", help="image size in pixels (32..512)"),
    style: str = typer.Option("cel", "--style", help=f"render style: {', '.join(STYLES)}"),
) -> None:
    """Render one character from a parameter JSON file."""
    from charforge.creators.builtin import BuiltinCreator
    from charforge.provenance import save_png

    check_size(size)
    creator = BuiltinCreator(style=style)
    raw = read_params_file(params)
    clean = creator.space.validate(raw, source=str(params))
    batch = creator.space.from_dicts([clean], source=str(params))
    image = creator.render(batch, size)[0]
    tags = creator.schema.from_vector(creator.derive_tags(batch)[0])
    save_png(output, image, {"creator": "builtin", "params": clean, "tags": tags})
    typer.echo(f"wrote {output} ({size} px; tags: {', '.join(tags)})")


@creator_app.command("schema")
def schema() -> None:
    """Print the parameter space and the tag schema as JSON."""
    from charforge.creators.builtin import BuiltinCreator

    creator = BuiltinCreator()
    typer.echo(
        json.dumps({"param_space": creator.space.to_dict(), "tag_schema": creator.schema.to_dict()}, indent=2)
    )


def register(app: typer.Typer) -> None:
    app.add_typer(creator_app, name="creator")
