"""`charforge keys init | show`: the local key that signs C2PA content credentials (optional extra)."""

from __future__ import annotations

from pathlib import Path

import typer

from charforge.cli._json import JSON_HELP, emit

keys_app = typer.Typer(
    help="The local signing key for C2PA content credentials (needs pip install 'charforge\\[c2pa]').",
    no_args_is_help=True,
)
DIR_HELP = "Key folder (default: $CHARFORGE_KEYS, else ~/.config/charforge/c2pa). Never inside a repository."


@keys_app.command("init")
def init(
    folder: Path | None = typer.Option(None, "--dir", help=DIR_HELP),
    force: bool = typer.Option(False, "--force", help="Replace an existing key (old signatures stay valid)."),
    name: str = typer.Option("charforge user", "--name", help="Organisation name in the certificates."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Make a local CA and an EC P-256 signing certificate; from then on every output PNG is C2PA-signed.

    The private key is written owner-only and never leaves this machine. Set CHARFORGE_C2PA=0 to stop signing.
    """
    from charforge.provenance.content_credentials import init_keys, signing_enabled

    rec = init_keys(folder, force=force, name=name)
    if as_json:
        emit("keys init", rec | {"signing": signing_enabled() if folder is None else None})
        return
    typer.echo(f"wrote {rec['key']} (private, 0600), {rec['chain']} and {rec['ca']}")
    typer.echo(f"signer {rec['subject']}, valid until {rec['not_after'][:10]}")
    if folder is not None:
        typer.echo(f"set CHARFORGE_KEYS={rec['folder']} so charforge signs with it")
    try:
        import c2pa  # noqa: F401
    except ImportError:
        typer.echo("note: install the c2pa package to sign: pip install 'charforge[c2pa]'", err=True)


@keys_app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Where the key is, whom it names, until when, and whether outputs are being signed."""
    from charforge.provenance.content_credentials import describe

    rec = describe()
    if as_json:
        emit("keys show", rec)
        return
    for k, v in rec.items():
        typer.echo(f"{k:10} {v}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
