"""The studio web app: FastAPI routes under /api/v1, the single page at /, OpenAPI at /docs.

`create_app(settings, generators=..., f2p=..., creator=...)` builds an app around models that are
already loaded (the CLI loads them once at start; tests inject tiny ones). Routes validate, then run the
heavy work in a worker thread under a concurrency limit with a timeout, so the event loop stays free.
This module imports FastAPI: import it lazily (the CLI does, inside `charforge serve`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from charforge import __version__
from charforge.errors import UserError
from charforge.f2p.fit import MODES as FIT_MODES
from charforge.serve import schemas as S
from charforge.serve.engine import Studio, WorkStopped, gif_bytes, tag_form, zip_bytes
from charforge.serve.guards import BodyTimeout, LoopbackGuard, SecurityHeaders
from charforge.serve.limits import (
    ApiError,
    ConcurrencyLimiter,
    decode_upload,
    parse_multipart,
    read_body_limited,
)

STATIC = Path(__file__).parent / "static"
LONG_FIT_MODES = ("search", "both")  # photo fits that run an optimiser: long jobs, like NPC batches
MULTIPART_OVERHEAD = 64 * 1024  # bytes of multipart framing allowed on top of the upload limit


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # when set, every /api call needs "Authorization: Bearer <token>"
    max_concurrency: int = 2  # heavy jobs at once (about one per CPU core)
    max_queue: int = 32  # requests that may wait for a free worker; more get 503 at once
    queue_wait_s: float = 10.0  # seconds a request may wait for a worker before 503
    timeout_s: float = 60.0  # seconds a job may run before the client gets 504
    max_upload_bytes: int = 10_000_000  # /fit upload limit (10 MB) -> 413 above it
    max_pixels: int = 25_000_000  # /fit decoded-size limit, in pixels -> 413 above it
    fit_mode: str = "fast"  # default /fit mode: one of charforge.f2p.fit.MODES
    torch_threads: int | None = None  # torch intra-op threads per job; None leaves torch's setting alone
    body_timeout_s: float = 15.0  # a request body must arrive in full within this -> 408 and close
    npc_time_s: float = 20.0  # time budget of one /npc request -> 503 with Retry-After past it
    npc_max_candidates: int = 2000  # portraits one /npc request may draw -> 422 (lower count/min_distance)
    # Host and Origin checks (guards.LoopbackGuard); None: on exactly when `host` is a loopback address
    loopback_only: bool | None = None

    @property
    def guards_loopback(self) -> bool:
        if self.loopback_only is not None:
            return self.loopback_only
        from charforge.serve.guards import is_loopback_name

        return is_loopback_name(self.host.strip("[]"))


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": S.ErrorBody, "description": text}
    for code, text in [
        (400, "malformed request body (not JSON)"),
        (401, "missing or wrong bearer token"),
        (403, "refused: Host is not this computer, or a cross-origin request"),
        (408, "the request body did not arrive in time"),
        (413, "upload too large"),
        (415, "not an image"),
        (422, "bad input; `field` names the culprit"),
        (503, "busy or over this request's time budget: retry after the Retry-After seconds"),
        (504, "timed out"),
    ]
}
PNG = {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}
ZIP = {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}
GIF = {"content": {"image/gif": {"schema": {"type": "string", "format": "binary"}}}}
FIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "a photo or drawing (PNG, JPEG, WEBP, GIF, BMP, TIFF)",
                        },
                        "mode": {
                            "type": "string",
                            "enum": list(FIT_MODES),
                            "description": "fast (translator), search (slower, closer), both, attributes (photo colours)",
                        },
                    },
                }
            }
        },
    }
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def png(image, meta: dict[str, Any]) -> bytes:
    from charforge.provenance import png_bytes

    return png_bytes(image, meta)


class BodyLimit:
    """Pure ASGI guard: 413 on a declared Content-Length over the limit, and while counting streamed bytes."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            body = json.dumps(
                {"detail": f"request body over the limit of {self.max_bytes / 1e6:.0f} MB", "field": None}
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            return await send({"type": "http.response.body", "body": body.encode()})
        seen = 0

        async def counted():
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > self.max_bytes:
                from starlette.exceptions import HTTPException

                raise HTTPException(413, f"request body over the limit of {self.max_bytes / 1e6:.0f} MB")
            return msg

        await self.app(scope, counted, send)


def create_app(
    settings: ServeSettings | None = None,
    *,
    generators: dict[str, Any] | None = None,
    f2p: Any = None,
    creator: Any = None,
    sampler: Any = None,
    fitter: Any = None,
    upscaler: Any = None,
):
    """The studio app around already-loaded models. `sampler`/`fitter` replace charforge.sampling / f2p.fit in tests;
    `upscaler` is an Upscaler or a spec for charforge.sr.load_upscaler (None: the shipped one, loaded on first use)."""
    settings = settings or ServeSettings()
    studio = Studio(generators, f2p=f2p, creator=creator, sampler=sampler, fitter=fitter, upscaler=upscaler)
    app = FastAPI(
        title="charforge studio",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        description="Generate anime characters from tags, fit a creator to a photo, batch NPCs. "
        "All endpoints live under /api/v1.",
    )
    app.state.studio, app.state.settings = studio, settings
    app.state.limiter = ConcurrencyLimiter(
        settings.max_concurrency, settings.max_queue, settings.queue_wait_s
    )
    _install_error_handlers(app)
    app.include_router(_api_router(app))
    from charforge.serve.webgen import install_web  # generating in the page: runtime, model files

    install_web(app, studio, _auth_dependency(settings))
    _install_page(app)
    _install_docs(app)
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD)
    app.add_middleware(BodyTimeout, seconds=settings.body_timeout_s)
    if settings.guards_loopback:
        app.add_middleware(LoopbackGuard)
    app.add_middleware(SecurityHeaders)  # outermost: every answer carries the headers, refusals too
    return app


def _install_docs(app) -> None:
    """OpenAPI docs at /docs from the Swagger UI files shipped in `swagger-ui-bundle`: no CDN, works offline."""
    import swagger_ui_bundle
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs-static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-static")

    page = DOCS_PAGE.format(title=f"{app.title} API").encode()

    @app.get("/docs", include_in_schema=False)
    async def docs():
        # no inline script (the CSP allows none): /static/docs.js starts Swagger UI on /openapi.json
        return Response(page, media_type="text/html")


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="/docs-static/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs-static/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs-static/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>
"""


def _error(status: int, detail: str, field: str | None = None, headers: dict[str, str] | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": detail, "field": field}, status_code=status, headers=headers)


def _install_error_handlers(app) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(UserError)
    async def user_error(_req, exc: UserError):
        return _error(422, str(exc), exc.field)

    @app.exception_handler(ApiError)
    async def api_error(_req, exc: ApiError):
        return _error(exc.status, exc.message, exc.field, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(_req, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail), None, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_req, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        field = ".".join(loc) or None
        more = f" (and {len(errs) - 1} more problems)" if len(errs) > 1 else ""
        return _error(422, f"{field or 'request'}: {first.get('msg', 'invalid')}{more}", field)


def _auth_dependency(settings: ServeSettings):
    """The bearer check, only on a server started with a token (so the OpenAPI document only then declares it)."""
    if not settings.token:
        return None
    bearer = HTTPBearer(auto_error=False, description="the token the server was started with")

    async def check(cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        given = cred.credentials if cred is not None and cred.scheme.lower() == "bearer" else ""
        if not secrets.compare_digest(given.encode(), settings.token.encode()):
            raise ApiError(
                401,
                "missing or wrong token: send the header 'Authorization: Bearer <token>' "
                "with the token the server was started with",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return Depends(check)


async def _work(
    app, fn, *args, long: bool = False, request: Request | None = None, stop: threading.Event | None = None
):
    """Run fn(*args) in a worker thread under the concurrency limit and the request timeout.

    With `stop`, the job is asked to end early (the event is set) when the request times out, is cancelled,
    or (with `request`) the client disconnects; the job itself must look at the event between batches.
    """
    from starlette.concurrency import run_in_threadpool

    settings: ServeSettings = app.state.settings
    watcher = None
    if stop is not None and request is not None:
        watcher = asyncio.ensure_future(_watch_disconnect(request, stop))
    retry = math.ceil(settings.npc_time_s) if long else 1
    try:
        return await app.state.limiter.run(
            lambda: run_in_threadpool(fn, *args),
            settings.timeout_s,
            long=long,
            on_abandon=stop.set if stop is not None else None,
            retry_after_s=retry,
        )
    finally:
        if watcher is not None:
            watcher.cancel()


async def _watch_disconnect(request: Request, stop: threading.Event, every_s: float = 0.25) -> None:
    """Set `stop` as soon as the client hangs up (its own timeout, a closed tab), so its work ends too."""
    while not stop.is_set():
        if await request.is_disconnected():
            stop.set()
            return
        await asyncio.sleep(every_s)


def _seeds(req: S.GenerateRequest) -> list[int]:
    if req.seeds:
        return list(req.seeds)
    base = req.seed if req.seed is not None else secrets.randbelow(S.SEED_MAX - S.MAX_COUNT)
    return [(base + i) % (S.SEED_MAX + 1) for i in range(req.count)]


def _api_router(app):
    settings: ServeSettings = app.state.settings
    studio: Studio = app.state.studio
    auth = _auth_dependency(settings)
    responses = {k: v for k, v in ERRORS.items() if k != 401 or auth is not None}
    r = APIRouter(prefix="/api/v1", dependencies=[auth] if auth is not None else [], responses=responses)
    _meta_routes(r, app, studio)
    _generate_routes(r, app, studio)
    _creator_routes(r, app, studio, settings)
    return r


def _meta_routes(r, app, studio: Studio) -> None:
    @r.get("/health", response_model=S.HealthResponse, summary="Liveness and what is loaded")
    async def health():
        lim = app.state.limiter
        return S.HealthResponse(
            status="ok",
            version=__version__,
            models=list(studio.generators),
            creator=getattr(studio.creator, "name", None) if studio.creator is not None else None,
            f2p=studio.f2p is not None,
            upscale=studio.upscale_choices(),
            active=lim.active,
            waiting=lim.waiting,
        )

    @r.get(
        "/models",
        response_model=S.ModelsResponse,
        summary="Loaded generators with tag schema and tag frequencies",
    )
    async def models():
        out = []
        for name, b in studio.generators.items():
            freqs = {t: round(float(p), 6) for t, p in zip(b.schema.tags, b.freqs)}
            out.append(
                S.ModelInfo(
                    name=name,
                    model_id=str(b.model_id),
                    sha256=str(b.sha256),
                    image_size=int(b.image_size),
                    z_dim=int(b.z_dim),
                    schema=b.schema.to_dict(),
                    freqs=freqs,
                    family=str((getattr(b, "config", None) or {}).get("family", "")),
                    sample_options=_model_options(b),
                    pixel_art=_pixel_art_info(getattr(b, "pixel_art", None)),
                    loaded=bool(getattr(b, "loaded", True)),
                )
            )
        return S.ModelsResponse(models=out, default=studio.default_model)

    @r.get(
        "/creator",
        response_model=S.CreatorResponse,
        summary="The creator's parameters (for the editor sliders)",
    )
    async def creator():
        cr = studio._need_creator()
        return S.CreatorResponse(
            name=getattr(cr, "name", "creator"),
            space=cr.space.to_dict(),
            can_render=bool(getattr(cr, "can_render", True)),
        )


DIFFUSION_OPTIONS = ("steps", "guidance", "sampler", "negative_guidance")


def _diffusion_args(req: Any, settings: ServeSettings) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """A request's diffusion fields -> (sampling options, tag form with negative_tags set false, init image or
    None). A negative tag the form turns on, or strength without an init image, is a 422 naming the field."""
    options = {k: getattr(req, k, None) for k in DIFFUSION_OPTIONS}
    form = dict(req.tags) if hasattr(req, "tags") else {}
    for t in getattr(req, "negative_tags", []) or []:
        if form.get(t) is True:
            raise ApiError(
                422, f"negative_tags: {t!r} is also turned on in tags; pick one", field="negative_tags"
            )
        form[t] = False
    init = None
    b64_init = getattr(req, "init_image_base64", None)
    strength = getattr(req, "strength", None)
    if strength is not None and b64_init is None:
        raise ApiError(
            422, "strength: only used with init_image_base64 (img2img); send an image", field="strength"
        )
    if b64_init is not None:
        try:
            data = base64.b64decode(b64_init, validate=True)
        except ValueError as e:
            raise ApiError(422, "init_image_base64: not valid base64", field="init_image_base64") from e
        if len(data) > settings.max_upload_bytes:
            raise ApiError(413, "init_image_base64: image over the upload limit", field="init_image_base64")
        init = decode_upload(data, settings.max_pixels, field="init_image_base64")
        options["strength"] = strength
    return options, form, init


def _engine_kw(studio: Any, model: str, bundle: Any, options: dict[str, Any], init: Any) -> dict[str, Any]:
    """Keywords for the Studio methods: none for a plain request (so stand-in samplers stay simple)."""
    if bundle is studio.bundle(model) and init is None:
        return {}
    return {"options": options} | ({"init": init} if init is not None else {})


def _sampling_meta(bundle: Any, form: dict[str, Any], init: Any) -> dict[str, Any]:
    """What an output records beyond _image_meta, as its family says: sampler settings, negative tags and the
    img2img strength for a diffusion model; nothing for a GAN."""
    if not _model_options(bundle):
        return {}
    from charforge.sampling import record_of

    negs = [t for t, v in form.items() if v is False and t in bundle.schema.independent]
    return dict(bundle.sampling_record()) | record_of(bundle, negs, init)


# a family's sampler option -> the request field that carries it, in the order GET /models lists them
REQUEST_FIELDS = {
    **{k: k for k in DIFFUSION_OPTIONS},
    "negative": "negative_tags",
    "init": "init_image_base64",
    "strength": "strength",
}


def _pixel_art_info(grid: dict | None) -> dict | None:
    """A pixel-art model's grid and palette size for /models (the palette itself is in the web model document)."""
    if not grid:
        return None
    return {
        "cell": int(grid["cell"]),
        "offset": [int(v) for v in grid["offset"]],
        "colours": len(grid["palette"]),
    }


def _model_options(bundle: Any) -> list[str]:
    """The request fields a model takes beyond tags and seeds (GET /models), from its family's sampler options
    (a stand-in sampler without a family takes none)."""
    takes = getattr(bundle, "takes", None)
    if takes is None:
        return []
    return [field for option, field in REQUEST_FIELDS.items() if takes(option)]


def _image_meta(req_model: str, bundle: Any, g, names: list[str], scheme: str = "torch-v1") -> dict[str, Any]:
    return {
        "generator": "charforge studio",
        "model": req_model,
        "model_id": str(bundle.model_id),
        "model_sha256": str(bundle.sha256),
        "seed": g.seed,
        "tag_seed": g.tag_seed,
        "seed_scheme": scheme,
        "tags": names,
    }


def _images_zip(req: S.GenerateRequest, bundle: Any, items: list) -> bytes:
    """/generate's zip: the PNGs plus a manifest.json with each image's seeds and tags."""
    files = {f"{i:03d}_seed{g.seed}.png": data for i, (data, g, _, _) in enumerate(items)}
    manifest = {
        "model": req.model,
        "model_id": str(bundle.model_id),
        "model_sha256": str(bundle.sha256),
        "truncation": req.truncation,
        "upscale": req.upscale,
        "seed_scheme": req.seed_scheme,
        "images": [
            {"file": f, "seed": g.seed, "tag_seed": g.tag_seed, "tags": n}
            for f, (_, g, n, _) in zip(files, items)
        ],
    }
    files["manifest.json"] = json.dumps(manifest, indent=2).encode()
    return zip_bytes(files)


def _generate_routes(r, app, studio: Studio) -> None:
    @r.post(
        "/generate",
        response_model=S.GenerateResponse,
        responses={200: ZIP},
        summary="Images from tags and seeds (base64 JSON or a zip with a manifest)",
    )
    async def generate(req: S.GenerateRequest):
        seeds = _seeds(req)

        def job():
            options, form, init = _diffusion_args(req, app.state.settings)
            bundle = studio.configured(req.model, options)
            out = []
            made = studio.generate(
                req.model,
                form,
                seeds,
                req.fixed_noise,
                req.truncation,
                req.seed_scheme,
                **_engine_kw(studio, req.model, bundle, options, init),
            )
            pixels, up_meta = studio.upscale(np.stack([g.image for g in made]), req.upscale)
            diff_meta = _sampling_meta(bundle, form, init)
            for g, image in zip(made, pixels):
                names = bundle.schema.from_vector(g.tags)
                meta = _image_meta(req.model, bundle, g, names, req.seed_scheme) | (
                    {"truncation": req.truncation} if req.truncation != 1.0 else {}
                )
                meta |= diff_meta
                out.append((png(image, meta | up_meta), g, names, tag_form(bundle.schema, g.tags)))
            return bundle, out

        bundle, items = await _work(app, job)
        if req.format == "zip":
            return Response(
                _images_zip(req, bundle, items),
                media_type="application/zip",
                headers={"Content-Disposition": 'attachment; filename="charforge_images.zip"'},
            )
        return S.GenerateResponse(
            model=req.model,
            model_id=str(bundle.model_id),
            images=[
                S.GeneratedImage(
                    seed=g.seed, tag_seed=g.tag_seed, tags=n, tag_form=form, png_base64=b64(data)
                )
                for data, g, n, form in items
            ],
        )

    @r.post(
        "/interpolate",
        response_model=S.InterpolateResponse,
        responses={200: GIF},
        summary="Frames between two (seed, tags) end points, as PNGs in JSON or one GIF",
    )
    async def interpolate(req: S.InterpolateRequest):
        def job():
            options, _, _ = _diffusion_args(req, app.state.settings)
            bundle = studio.configured(req.model, options)
            extra = _engine_kw(studio, req.model, bundle, options, None)
            frames, ta, tb = studio.interpolate(
                req.model,
                (req.a.seed, req.a.tags),
                (req.b.seed, req.b.tags),
                req.frames,
                req.truncation,
                req.seed_scheme,
                **extra,
            )
            frames, up_meta = studio.upscale(frames, req.upscale)
            meta = {
                "generator": "charforge studio",
                "model": req.model,
                "model_id": str(bundle.model_id),
                "model_sha256": str(bundle.sha256),
                "interpolation": {"a": req.a.seed, "b": req.b.seed},
                "seed_scheme": req.seed_scheme,
                **_sampling_meta(bundle, {}, None),
                **up_meta,
            }
            pngs = [] if req.format == "gif" else [png(f, {**meta, "frame": i}) for i, f in enumerate(frames)]
            return bundle, pngs, gif_bytes(frames, req.frame_ms, meta), ta, tb

        bundle, pngs, gif, ta, tb = await _work(app, job)
        if req.format == "gif":
            return Response(gif, media_type="image/gif")
        return S.InterpolateResponse(
            model=req.model,
            frames=[b64(p) for p in pngs],
            gif_base64=b64(gif),
            tags_a=bundle.schema.from_vector(ta),
            tags_b=bundle.schema.from_vector(tb),
        )

    @r.post(
        "/npc",
        responses={200: ZIP},
        response_class=Response,
        summary="A batch of unique characters as a zip with manifest.json",
    )
    async def npc(req: S.NpcRequest, request: Request):
        settings: ServeSettings = app.state.settings
        stop = threading.Event()
        budget = {"deadline": None}

        def should_stop() -> str | None:
            if stop.is_set():
                return "cancelled"
            if budget["deadline"] is not None and time.monotonic() > budget["deadline"]:
                return "time"
            return None

        def job():
            budget["deadline"] = time.monotonic() + settings.npc_time_s  # from when a worker starts on it
            options, form, init = _diffusion_args(req, settings)
            bundle = studio.configured(req.model, options)
            extra = _engine_kw(studio, req.model, bundle, options, init)
            files, rows, info = {}, [], {}
            try:
                found = studio.npc(
                    req.model,
                    req.count,
                    req.seed,
                    form,
                    req.min_distance,
                    max_candidates=settings.npc_max_candidates,
                    should_stop=should_stop,
                    info=info,
                    seed_scheme=req.seed_scheme,
                    **extra,
                )
            except WorkStopped as e:
                if e.reason == "cancelled":
                    raise ApiError(503, "npc: stopped, the request was abandoned") from e
                raise ApiError(
                    503,
                    f"npc: not finished within this server's budget of {settings.npc_time_s:g} s per request "
                    f"({e.drawn:,} portraits drawn for {req.count} characters at min_distance "
                    f"{req.min_distance:g}); ask for fewer characters (count) or a smaller min_distance, or "
                    f"retry in {math.ceil(settings.npc_time_s)} s when the server is less busy",
                    field="count",
                    headers={"Retry-After": str(math.ceil(settings.npc_time_s))},
                ) from e
            pixels, up_meta = studio.upscale(np.stack([g.image for g in found]), req.upscale)
            for i, (g, image) in enumerate(zip(found, pixels)):
                names = bundle.schema.from_vector(g.tags)
                name = f"npc_{i:03d}_seed{g.seed}.png"
                meta = _image_meta(req.model, bundle, g, names, req.seed_scheme) | up_meta
                files[name] = png(image, meta | _sampling_meta(bundle, form, init))
                rows.append(
                    {"file": name, "seed": g.seed, "tags": names, "tag_form": tag_form(bundle.schema, g.tags)}
                )
            manifest = {
                "model": req.model,
                "model_id": str(bundle.model_id),
                "model_sha256": str(bundle.sha256),
                "seed": req.seed,
                "seed_scheme": req.seed_scheme,
                "count": len(rows),
                "requested": req.count,
                "complete": len(rows) == req.count,
                "constraints": req.tags,
                **({"upscale": up_meta} if up_meta else {}),
                "characters": rows,
            }
            if len(rows) < req.count:  # a budget ran out: what was found, and why the batch is short
                why = (
                    f"this server's budget of {settings.npc_time_s:g} s per request ran out"
                    if info.get("stopped") == "time"
                    else f"only these were distinct enough within this server's {settings.npc_max_candidates:,} "
                    f"candidates per request (min_distance {req.min_distance:g})"
                )
                manifest["note"] = (
                    f"{len(rows)} of {req.count} characters: {why}; ask for fewer characters (count) or a "
                    "smaller min_distance, or send another request with another seed for more"
                )
            files["manifest.json"] = json.dumps(manifest, indent=2).encode()
            return zip_bytes(files), manifest["complete"]

        data, complete = await _work(app, job, long=True, request=request, stop=stop)
        headers = {"Content-Disposition": f'attachment; filename="npcs_seed{req.seed}.zip"'}
        if not complete:
            headers["X-Charforge-Complete"] = "false"  # fewer than asked: manifest.json's note says why
        return Response(data, media_type="application/zip", headers=headers)


def _creator_routes(r, app, studio: Studio, settings: ServeSettings) -> None:
    @r.post(
        "/render",
        responses={200: PNG},
        response_class=Response,
        summary="Creator parameters -> PNG render (backs the editor sliders)",
    )
    async def render(req: S.RenderRequest):
        def job():
            image, clean = studio.render(req.params, req.size)
            return png(
                image,
                {
                    "generator": "charforge studio",
                    "creator": getattr(studio.creator, "name", "creator"),
                    "params": clean,
                },
            )

        return Response(await _work(app, job), media_type="image/png", headers={"Cache-Control": "no-store"})

    @r.post(
        "/fit",
        response_model=S.FitResponse,
        openapi_extra=FIT_BODY,
        summary="Photo (multipart field 'file') -> creator parameters, preview and similarity",
    )
    async def fit(request: Request):
        limit = settings.max_upload_bytes
        body = await read_body_limited(request.stream(), limit + MULTIPART_OVERHEAD, what="file")
        parts = parse_multipart(body, request.headers.get("content-type", ""), what="file")
        data, mode = parts.get("file"), parts.get("mode") or settings.fit_mode
        if not isinstance(data, bytes) or not data:
            raise ApiError(
                422, "file: send the image as a non-empty multipart file field named 'file'", field="file"
            )
        if len(data) > limit:
            raise ApiError(
                413, f"file: {len(data) / 1e6:.1f} MB is over the {limit / 1e6:.0f} MB limit", field="file"
            )
        if mode not in FIT_MODES:
            raise ApiError(
                422, f"mode: {str(mode)[:40]!r} is not one of {', '.join(FIT_MODES)}", field="mode"
            )

        def job():
            image = decode_upload(data, settings.max_pixels)  # (H, W, 3) uint8, in memory only
            res = studio.fit(image, mode)
            preview = png(
                res.preview, {"generator": "charforge studio", "fit_mode": mode, "params": res.params}
            )
            return res, preview

        res, preview = await _work(app, job, long=mode in LONG_FIT_MODES)
        return S.FitResponse(
            params=res.params,
            preview_base64=b64(preview),
            similarity=float(res.similarity),
            mode=str(getattr(res, "mode", mode)),
            notes=[str(n) for n in getattr(res, "notes", [])],
            timings={k: float(v) for k, v in (res.timings or {}).items()},
        )


def _install_page(app) -> None:
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    @app.get("/", include_in_schema=False)
    async def index():  # the CSP and the other headers come from guards.SecurityHeaders, as on every answer
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
