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
from typing import Any

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


def install_web(app, studio, auth) -> None:
    """Add the routes above to the studio app (`auth`: the API's bearer dependency, or None)."""
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool

    from charforge.serve.app import ERRORS  # the API's error bodies (app.py imports this module lazily)

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
                for name in studio.generators
            },
        }

    @r.get("/models/{name}.json", summary="A loaded generator's model document for the browser")
    async def model_doc(name: str) -> dict[str, Any]:
        bundle = studio.bundle(name)
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
        bundle = studio.bundle(name)
        path = await run_in_threadpool(onnx_for, bundle)
        return Response(
            path.read_bytes(), media_type="application/octet-stream", headers={"Cache-Control": "no-cache"}
        )

    app.include_router(r)
    app.mount(STATIC_URL.rstrip("/"), StaticFiles(directory=WEB_STATIC), name="web-static")
    vendor.RUNTIME_DIR.mkdir(
        parents=True, exist_ok=True
    )  # mounted even when empty: files may be vendored later
    app.mount(RUNTIME_URL.rstrip("/"), StaticFiles(directory=vendor.RUNTIME_DIR), name="web-runtime")
