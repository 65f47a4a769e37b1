"""`charforge verify IMAGE...`: provenance metadata, the IPTC AI-content label, C2PA credentials (with the
optional c2pa package) and whether the invisible watermark is present."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from charforge.cli._json import emit

SHOWN_KEYS = ("generator", "model_id", "seed", "tags", "watermark")  # metadata columns in the table
MAX_VALUE = 60  # characters shown per metadata value in the table (--full shows everything)


def _short(v) -> str:
    if isinstance(v, list) and v and all(isinstance(x, list) for x in v):
        text = f"{len(v)} tag sets"
    else:
        text = ", ".join(map(str, v)) if isinstance(v, list) else str(v)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def _meta_summary(meta: dict) -> str:
    if not meta:
        return "(no charforge metadata)"
    parts = []
    for k in SHOWN_KEYS:
        if k in meta:
            parts.append(f"{k}={_short(meta[k])}")
    return "; ".join(parts) or f"{len(meta)} charforge keys"


def _c2pa_word(rec) -> str:
    """trusted (your local key) / valid (another signer) / invalid / missing for the table's c2pa column."""
    if not rec:
        return "-"
    if not rec.get("present"):
        return "missing"
    if rec.get("trusted"):
        return "trusted"
    return "valid" if rec.get("valid") else "invalid"


def verify_command(
    images: list[Path] = typer.Argument(..., help="Image files to check (PNG, JPEG, WebP...)."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help='Print one JSON document {"files": [one record per image], ...} on stdout instead of a table '
        "(it is printed even when some files could not be read; the exit status is then 2).",
    ),
    full: bool = typer.Option(False, "--full", help="Print every metadata key under each row."),
) -> None:
    """Report each image's charforge metadata, AI-content label and C2PA credentials, and the watermark.

    ai-label: iptc-ai when the XMP metadata carries IPTC DigitalSourceType trainedAlgorithmicMedia (every
    charforge PNG does), missing when it was stripped (re-encoding, screenshots, most uploads). c2pa (with
    charforge\\[c2pa] installed): trusted, valid, invalid or missing content credentials.

    Every file is checked even when some cannot be read; the exit status is 0 when all could be read
    (watermark present or not), and 2 at the end, naming them, when some could not.
    """
    from charforge.errors import UserError
    from charforge.provenance.verify import c2pa_available, verify_image

    c2pa_col = f"{'c2pa':<9} " if c2pa_available() else ""
    if not as_json:
        typer.echo(
            f"{'file':<40} {'watermark':<10} {'score':>6} {'tag':<5} {'ai-label':<8} {c2pa_col}metadata"
        )
    bad: list[str] = []
    records = []
    for path in images:
        r = verify_image(path)
        if not r.ok:
            bad.append(f"{path} ({r.error})")
        if as_json:
            records.append(r.to_dict())
            continue
        name = str(path) if len(str(path)) <= 40 else "..." + str(path)[-37:]
        if not r.ok:
            typer.echo(
                f"{name:<40} {'-':<10} {'-':>6} {'-':<5} {'-':<8} {'- ' if c2pa_col else ''}error: {r.error}"
            )
            continue
        mark = "detected" if r.detected else "absent"
        c2 = f"{_c2pa_word(r.c2pa):<9} " if c2pa_col else ""
        typer.echo(
            f"{name:<40} {mark:<10} {r.score:>6.3f} {r.payload or '-':<5} {r.label:<8} {c2}"
            f"{_meta_summary(r.metadata)}"
        )
        if r.error:
            typer.echo(f"    note: {r.error}")
        if r.label_note:
            typer.echo(f"    note: {r.label_note}")
        if r.c2pa and r.c2pa.get("note"):
            typer.echo(f"    note: c2pa: {r.c2pa['note']}")
        if full:
            for k, v in r.metadata.items():
                typer.echo(f"    {k}: {v if isinstance(v, str) else json.dumps(v)}")
    if as_json:
        emit("verify", {"checked": len(images), "unreadable": len(bad), "files": records})
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise UserError(
            f"{len(bad)} of {len(images)} files could not be checked: {shown}. "
            "The others are reported above; give readable image files",
            field="images",
        )


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_command)
