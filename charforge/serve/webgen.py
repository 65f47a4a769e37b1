"""What the studio page needs to generate in the browser: the runtime, the page's generator code and, per
loaded generator, its ONNX export and model document (`charforge.export.web.model_document`).

    GET /api/v1/web                      {runtime, reason, runtime_base, static_base, seed_scheme, models}
    GET /api/v1/web/models/NAME.json     the model document (schema, portable frequencies, watermark layout)
    GET /api/v1/web/models/NAME.onnx     the ONNX export (made once per model hash, in the ONNX cache)
    /web-runtime/*                       onnxruntime-web's files, when vendored (charforge.web.vendor)
    /web-static/*                        portable.js and generator.js (charforge/web/static)

Without the vendored runtime, /api/v1/web says why and the page generates on the server (same characters:
it asks for seed_scheme portable-v1).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Response

from charforge.web import vendor
from charforge.web.seeds import BROWSER_SEED_SCHEME

WEB_STATIC = Path(vendor.__file__).resolve().parent / "static"
RUNTIME_URL, STATIC_URL = "/web-runtime/", "/web-static/"
_EXPORT_LOCK = threading.Lock()


def onnx_for(bundle: Any) -> Path:
    """The bundle's ONNX file: itself for the onnx backend, else an export cached by the weights' sha256."""
    if getattr(bundle, "backend", "torch") == "onnx":
        return Path(bundle.net.gen.path)
    from charforge.export.onnx import export_generator_onnx
    from charforge.sampling import onnx_cache_dir

    path = onnx_cache_dir() / f"generator-{bundle.sha256}.onnx"
    with _EXPORT_LOCK:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=path.parent))
            try:
                os.replace(export_generator_onnx(bundle, tmp / path.name), path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return path


F2P_PARTS = ("embedder", "translator")


def f2p_web(f2p: Any) -> tuple[dict[str, Any] | None, str]:
    """(the browser fit's document with its two ONNX files, or None; why not). Exported once per f2p hash."""
    from charforge.export.onnx import export_f2p_onnx
    from charforge.sampling import onnx_cache_dir

    if f2p is None:
        return None, "no face-to-parameter model is loaded"
    embedder = getattr(f2p, "embedder", None)
    if getattr(embedder, "name", "") != "learned" or getattr(f2p, "translator", None) is None:
        name = getattr(embedder, "name", "?")
        return None, f"the {name} embedder cannot run in a browser (only 'learned')"
    key = f2p.sha256 or str(id(f2p))
    out = onnx_cache_dir() / f"f2p-web-{key}"
    with _EXPORT_LOCK:
        if not all((out / f"{p}.onnx").is_file() for p in F2P_PARTS):
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
            try:
                report = export_f2p_onnx({p: getattr(f2p, p) for p in F2P_PARTS}, tmp)
                bad = [f"{p}: {r['error']}" for p, r in report.items() if "error" in r]
                if bad:
                    return None, "; ".join(bad)
                out.mkdir(parents=True, exist_ok=True)
                for p in F2P_PARTS:
                    os.replace(tmp / f"{p}.onnx", out / f"{p}.onnx")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    doc = {
        "input_size": int(f2p.embedder.encoder.cfg.in_size),
        "space": f2p.space.to_dict(),
        "embedder_input": "image",
        "embedder_output": "embedding",
        "translator_input": "embedding",
        "translator_output": "params",
        "files": {p: str(out / f"{p}.onnx") for p in F2P_PARTS},
        "note": "fast fit in the browser: the centre square of the whole image (no face detection, no "
        "photo-attribute limits); the photo is not uploaded",
    }
    return doc, ""


def install_web(app, studio, auth) -> None:
    """Add the routes above to the studio app (`auth`: the API's bearer dependency, or None)."""
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool

    from charforge.serve.app import ERRORS  # the API's error bodies (app.py imports this module lazily)
    from charforge.serve.schemas import ErrorBody

    responses = {k: v for k, v in ERRORS.items() if k != 401 or auth is not None}
    r = APIRouter(
        prefix="/api/v1/web",
        dependencies=[auth] if auth is not None else [],
        tags=["browser"],
        responses=responses,
    )
    docs: dict[str, dict[str, Any]] = {}

    @r.get("", summary="Can this page generate in the browser? (the runtime, and each model's files)")
    async def web_info() -> dict[str, Any]:
        ok, why = vendor.runtime_status()
        return {
            "runtime": ok,
            "reason": why or None,
            "runtime_base": RUNTIME_URL,
            "static_base": STATIC_URL,
            "seed_scheme": BROWSER_SEED_SCHEME,
            "models": {
                name: {"doc": f"/api/v1/web/models/{name}.json", "model": f"/api/v1/web/models/{name}.onnx"}
                for name, b in studio.generators.items()
                if getattr(b, "onnx_is_sampler", True)  # else a sampler loop runs on the server (diffusion)
            },
        }

    @r.get("/models/{name}.json", summary="A loaded generator's model document for the browser")
    async def model_doc(name: str) -> dict[str, Any]:
        bundle = await run_in_threadpool(
            studio.bundle, name
        )  # an offered model loads here, off the event loop
        if name not in docs:
            from charforge.export.web import model_document

            docs[name] = model_document(bundle)
        return docs[name]

    @r.get(
        "/models/{name}.onnx",
        summary="A loaded generator as ONNX (for onnxruntime-web)",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    async def model_onnx(name: str):
        bundle = await run_in_threadpool(studio.bundle, name)
        path = await run_in_threadpool(onnx_for, bundle)
        return Response(
            path.read_bytes(), media_type="application/octet-stream", headers={"Cache-Control": "no-cache"}
        )

    fits: dict[str, Any] = {}

    def fit_doc() -> tuple[dict[str, Any] | None, str]:
        if "doc" not in fits:
            fits["doc"] = f2p_web(studio.f2p)
        return fits["doc"]

    @r.get("/f2p.json", summary="Can photos be fitted in the browser? (the f2p networks as ONNX)")
    async def f2p_info() -> dict[str, Any]:
        doc, why = await run_in_threadpool(fit_doc)
        if doc is None:
            return {"available": False, "reason": why}
        public = {k: v for k, v in doc.items() if k != "files"}  # no server paths
        urls = {p: f"/api/v1/web/f2p/{p}.onnx" for p in F2P_PARTS}
        return {"available": True, "reason": None, **public, "models": urls}

    @r.get(
        "/f2p/{part}.onnx",
        summary="The f2p embedder or translator as ONNX",
        response_class=Response,
        include_in_schema=False,  # the page's own download (404 on servers that cannot fit in the browser)
        responses={
            200: {"content": {"application/octet-stream": {}}},
            404: {"model": ErrorBody, "description": "this server cannot fit photos in the browser"},
        },
    )
    async def f2p_part(part: Literal["embedder", "translator"]):
        from charforge.serve.limits import ApiError

        doc, why = await run_in_threadpool(fit_doc)
        if doc is None:
            raise ApiError(404, f"f2p: photos cannot be fitted in the browser here ({why})", field="part")
        return Response(Path(doc["files"][part]).read_bytes(), media_type="application/octet-stream")

    app.include_router(r)
    app.mount(STATIC_URL.rstrip("/"), StaticFiles(directory=WEB_STATIC), name="web-static")
    if vendor.RUNTIME_DIR.is_dir():  # never created here: an installed package may be read-only
        app.mount(RUNTIME_URL.rstrip("/"), StaticFiles(directory=vendor.RUNTIME_DIR), name="web-runtime")
