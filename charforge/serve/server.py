"""Starting the studio: check the bind address, load every model once, run uvicorn."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from charforge.errors import UserError


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


MIN_TOKEN = 16  # characters: long enough that guessing over HTTP is hopeless


def check_token(token: str | None, source: str = "--token") -> None:
    """A token protects only if it is not blank or short, and must fit in an HTTP header."""
    if token is None:
        return
    if not token.strip():
        raise UserError(
            f"{source}: the token is empty or only spaces; give a random secret of {MIN_TOKEN}+ characters"
        )
    if token != token.strip() or any(c.isspace() for c in token):
        raise UserError(
            f"{source}: the token contains spaces or line breaks; use letters, digits and punctuation"
        )
    if not token.isascii() or not token.isprintable():
        raise UserError(f"{source}: the token must be printable ASCII (it travels in an HTTP header)")
    if len(token) < MIN_TOKEN:
        raise UserError(
            f"{source}: use at least {MIN_TOKEN} characters, got {len(token)} (a guessable token protects "
            "nothing). For example: python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )


def read_token_file(path: str) -> str:
    """The token from a file (its first line, surrounding whitespace removed), e.g. one only you can read."""
    from pathlib import Path

    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(
            f"--token-file {path}: no such file; write the token into it first", field="token_file"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(
            f"--token-file {path}: cannot read it ({type(e).__name__}: {e})", field="token_file"
        ) from e
    lines = text.strip().splitlines()
    token = lines[0].strip() if lines else ""
    check_token(token, f"--token-file {path}")
    return token


def check_bind(host: str, token: str | None) -> None:
    """Loopback is always allowed; any other address needs a token, since anyone on the network could connect.
    A token, wherever it is used, must not be blank or short."""
    check_token(token)
    if is_loopback(host):
        return
    if not token:
        raise UserError(
            f"--host {host}: not a loopback address, so anyone on the network could use the studio. "
            "Set a token (CHARFORGE_TOKEN=SECRET, --token-file FILE or --token SECRET; clients then send "
            "'Authorization: Bearer SECRET'), or bind to 127.0.0.1"
        )


def torch_threads_per_job(max_concurrency: int) -> int:
    """Split the cores between the jobs that may run at once (at least one thread each)."""
    return max(1, (os.cpu_count() or 1) // max(1, max_concurrency))


def parse_model_specs(specs: list[str] | None) -> dict[str, str | None]:
    """['default', 'big=runs/big', 'x.safetensors'] -> {name: spec}. The names are what requests may use."""
    out: dict[str, str | None] = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = (
                (spec, None)
                if spec == "default"
                else (os.path.splitext(os.path.basename(spec.rstrip("/")))[0], spec)
            )
        name = name.strip()
        if (
            not name
            or not name.replace("-", "").replace("_", "").replace(".", "").isalnum()
            or len(name) > 64
        ):
            raise UserError(
                f"--model {spec!r}: model names use letters, digits, '-', '_' and '.' (at most 64)",
                field="model",
            )
        if name in out:
            raise UserError(
                f"--model {spec!r}: the name {name!r} is given twice; use NAME=PATH to tell them apart",
                field="model",
            )
        out[name] = path
    return out


def load_generator_backend(spec: str | None, backend: str, device: str = "auto") -> Any:
    """A GeneratorBundle. With backend 'onnx' it runs through onnxruntime (one thread per call): a .onnx export
    as is, or a safetensors model exported once into charforge's ONNX cache (see sampling.load_generator).
    `device` (torch backend): auto | cpu | cuda | mps."""
    from charforge import sampling

    if backend == "onnx" and device == "auto":
        device = "cpu"
    return sampling.load_generator(
        spec, backend, onnx_threads=1 if backend == "onnx" else None, device=device
    )


OFFERED = (
    "sharp",
    "128px",
    "styles",
    "diffusion",
)  # shipped models the studio offers beside the default GAN, loaded on first use


def offered_models(backend: str = "torch", device: str = "auto", warn=print) -> dict[str, Any]:
    """The shipped models in OFFERED that are installed, as engine.LazyBundle: listed by /models at once,
    loaded by their first request (start-up reads only their files' headers and weights, builds nothing)."""
    from charforge import sampling
    from charforge.serve.engine import LazyBundle

    out: dict[str, Any] = {}
    shipped = sampling.available_generators()
    for name in OFFERED:
        if name not in shipped:
            continue
        try:
            info = sampling.read_generator_info(shipped[name])
        except UserError as e:
            warn(f"warning: the shipped model {name!r} is not offered: {e}")
            continue
        out[name] = LazyBundle(
            info, lambda path=shipped[name]: load_generator_backend(str(path), backend, device)
        )
    return out


def load_models(
    model_specs: list[str] | None,
    f2p_spec: str | None,
    creator: str,
    backend: str = "torch",
    warn=print,
    device: str = "auto",
) -> dict[str, Any]:
    """Everything the app needs, loaded once. Missing shipped defaults are a warning; missing explicit files an error."""
    from charforge.creators.base import get_creator

    generators: dict[str, Any] = {}
    for name, spec in parse_model_specs(model_specs or ["default"]).items():
        try:
            generators[name] = load_generator_backend(spec, backend, device)
        except UserError as e:
            if model_specs:
                raise
            warn(f"warning: generation is off: {e}")
    if not model_specs:
        generators |= offered_models(backend, device, warn)
    f2p = None
    try:
        from charforge.f2p import load_f2p

        f2p = load_f2p(f2p_spec, creator=creator if creator != "builtin" else None)
    except (UserError, ImportError) as e:
        if f2p_spec:
            raise
        warn(f"warning: photo -> character is off: {e}")
    cr = getattr(f2p, "creator", None)
    if cr is None:
        try:
            cr = get_creator(creator)
        except (UserError, ImportError) as e:
            if creator != "builtin":
                raise
            warn(f"warning: the parameter editor is off: {e}")
    return {"generators": generators, "f2p": f2p, "creator": cr}


def serve(
    settings,
    model_specs: list[str] | None = None,
    f2p_spec: str | None = None,
    creator: str = "builtin",
    backend: str = "torch",
    log_level: str = "info",
    device: str = "auto",
    upscaler: str | None = None,
) -> None:
    """Check the address and the device, load the models, run uvicorn until interrupted."""
    import uvicorn

    from charforge.core.device import resolve_device
    from charforge.serve.app import create_app

    check_bind(settings.host, settings.token)
    resolve_device(device)  # a device this machine lacks is an error before anything loads
    if settings.torch_threads is None:
        settings.torch_threads = torch_threads_per_job(settings.max_concurrency)
    if upscaler is not None:  # a named file must exist now, not at the first upscaled request
        from charforge.sr import resolve_path

        resolve_path(upscaler)
    models = load_models(model_specs, f2p_spec, creator, backend, device=device)
    app = create_app(settings, **models, upscaler=upscaler)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"charforge studio on http://{host}:{settings.port}/  (API docs at /docs)", flush=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_keep_alive=5,  # an idle keep-alive connection is closed after 5 s
        limit_concurrency=512,  # connections at once; beyond it 503 at once
        h11_max_incomplete_event_size=64 * 1024,  # request line + headers; a body's arrival is BodyTimeout's
        timeout_graceful_shutdown=10,
    )
