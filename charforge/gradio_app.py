"""An optional Gradio demo: a thin page over the same library calls the studio makes (`serve.engine.Studio`).

Install with `pip install 'charforge[gradio]'`; run with `charforge gradio` (or `app.py` on Hugging Face
Spaces: `charforge gradio --write-app DIR` writes one). It generates characters from tags and a seed, draws
NPC batches, upscales when an upscaler is installed, and fits a photo when a face-to-parameter model is
loaded. Every picture it shows is a PNG written by `charforge.provenance` (text metadata, the IPTC AI label
and the watermark), the same bytes the studio would send.

Nothing phones home: before gradio is imported, its analytics, version check and Hugging Face Hub telemetry
are switched off (OFFLINE_ENV), the share tunnel is never opened, server-side rendering (a Node process) and
the MCP server stay off, and the page uses system fonts only (no web-font request).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from charforge.errors import UserError

GRADIO_PIN = "gradio>=6.31,<7"  # what the [gradio] extra installs (the tests run 6.31.0)
INSTALL_HINT = "the Gradio demo needs the optional extra: pip install 'charforge[gradio]'"
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",  # no usage events, no version check against the gradio servers
    "GRADIO_SHARE": "False",  # never a public share tunnel
    "GRADIO_SSR_MODE": "False",  # no Node server-side rendering process
    "GRADIO_MCP_SERVER": "False",
    "HF_HUB_OFFLINE": "1",  # huggingface_hub (a gradio dependency) never reaches the Hub
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "DO_NOT_TRACK": "1",
}
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")
MONO_FONTS = ("ui-monospace", "Consolas", "monospace")
MAX_COUNT = 16  # images per generate click
MAX_NPC = 32  # portraits per NPC batch
NPC_CANDIDATES = 2000  # portraits an NPC batch may draw while looking for distinct ones (as the studio)


def set_offline_env() -> None:
    """Switch off everything in gradio and huggingface_hub that reaches the internet (before importing them)."""
    os.environ.update(OFFLINE_ENV)


def require_gradio():
    """The gradio module, imported with OFFLINE_ENV in force; a UserError naming the extra if it is missing."""
    set_offline_env()
    try:
        import gradio as gr
    except ImportError as e:
        raise UserError(f"{INSTALL_HINT} (import failed: {e})") from e
    return gr


class Demo:
    """The demo's actions as plain functions of plain values (what the Gradio callbacks call; testable alone).

    Images come back as PNG files in `out_dir`, written with provenance metadata and the watermark."""

    def __init__(self, studio: Any, out_dir: str | Path | None = None):
        self.studio = studio
        self.out_dir = Path(out_dir or tempfile.mkdtemp(prefix="charforge-gradio-"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._n = 0

    # ---- helpers -------------------------------------------------------------------------------
    def models(self) -> list[str]:
        return list(self.studio.generators)

    def tag_help(self, model: str | None = None) -> str:
        if not self.studio.generators:
            return "No generator is loaded."
        schema = self.studio.bundle(model or self.studio.default_model).schema
        groups = [f"- **{g.name}**: {', '.join(g.tags)}" for g in schema.groups]
        return "\n".join(
            groups
            + [f"- **on/off** (prefix `-` for off): {', '.join(schema.independent)}"]
            + ["", "Tags not named are drawn from the model's training frequencies, from the seed."]
        )

    def form(self, model: str, tags: str) -> dict[str, Any]:
        """'blonde hair, smile, -hat' -> the studio's tag form ({group: tag, tag: True/False})."""
        schema = self.studio.bundle(model).schema
        c = schema.parse(tags or "", source="tags")
        form: dict[str, Any] = {g: t for g, t in c.groups.items() if t is not None}
        form.update({t: v for t, v in c.independent.items() if v is not None})
        return form

    def _write(self, image: np.ndarray, meta: dict[str, Any], stem: str) -> str:
        from charforge.provenance import png_bytes

        self._n += 1
        path = self.out_dir / f"{self._n:06d}_{stem}.png"
        path.write_bytes(png_bytes(np.asarray(image, np.uint8), meta))
        return str(path)

    def _meta(self, model: str, bundle: Any, g: Any, scheme: str) -> dict[str, Any]:
        return {
            "generator": "charforge gradio demo",
            "model": model,
            "model_id": str(bundle.model_id),
            "model_sha256": str(bundle.sha256),
            "seed": g.seed,
            "tag_seed": g.tag_seed,
            "seed_scheme": scheme,
            "tags": bundle.schema.from_vector(g.tags),
        }

    @staticmethod
    def _int(value: Any, name: str, lo: int, hi: int) -> int:
        try:
            v = int(value)
        except (TypeError, ValueError) as e:
            raise UserError(f"{name}: expected a whole number, got {value!r}", field=name) from e
        if not lo <= v <= hi or float(value) != v:
            raise UserError(f"{name}: expected a whole number from {lo} to {hi}, got {value!r}", field=name)
        return v

    # ---- actions -------------------------------------------------------------------------------
    def generate(
        self,
        model: str,
        tags: str,
        seed: Any,
        count: Any = 4,
        truncation: float = 1.0,
        upscale: Any = 1,
        seed_scheme: str = "torch-v1",
    ) -> tuple[list[tuple[str, str]], str]:
        """(gallery items (png path, caption), a markdown summary). Image i uses seed + i, as the studio."""
        model = model or self.studio.default_model or "default"
        seed = self._int(seed, "seed", 0, 2**31 - 1)
        count = self._int(count, "count", 1, MAX_COUNT)
        if seed + count - 1 > 2**31 - 1:
            raise UserError("seed: seed + count must stay below 2**31", field="seed")
        scale = self._int(upscale, "upscale", 1, 4)
        bundle = self.studio.bundle(model)
        made = self.studio.generate(
            model,
            self.form(model, tags),
            [seed + i for i in range(count)],
            False,
            truncation=float(truncation),
            seed_scheme=seed_scheme,
        )
        pixels, up_meta = self.studio.upscale(np.stack([g.image for g in made]), scale)
        items = []
        for g, img in zip(made, pixels):
            names = bundle.schema.from_vector(g.tags)
            path = self._write(img, self._meta(model, bundle, g, seed_scheme) | up_meta, f"seed{g.seed}")
            items.append((path, f"#{g.seed}: {', '.join(names)}"))
        size = pixels.shape[1]
        text = (
            f"{count} image(s) from model `{model}` ({bundle.model_id}), seeds {seed}..{seed + count - 1}, "
            f"{size} px"
            + (f" (upscaled x{scale})" if scale > 1 else "")
            + f", truncation {float(truncation):g}. "
            "Each PNG carries its seed, tags and model hash, and the invisible watermark."
        )
        return items, text

    def npc(
        self, model: str, tags: str, seed: Any, count: Any = 8, min_distance: float = 0.04
    ) -> tuple[list[tuple[str, str]], str]:
        model = model or self.studio.default_model or "default"
        seed = self._int(seed, "seed", 0, 2**31 - 1)
        count = self._int(count, "count", 1, MAX_NPC)
        bundle = self.studio.bundle(model)
        found = self.studio.npc(
            model, count, seed, self.form(model, tags), float(min_distance), max_candidates=NPC_CANDIDATES
        )
        items = [
            (
                self._write(
                    g.image,
                    self._meta(model, bundle, g, "torch-v1") | {"npc_batch_seed": seed},
                    f"npc{g.seed}",
                ),
                f"#{g.seed}: {', '.join(bundle.schema.from_vector(g.tags))}",
            )
            for g in found
        ]
        return (
            items,
            f"{len(found)} distinct characters (batch seed {seed}, minimum distance {float(min_distance):g}).",
        )

    def fit(self, image: Any, mode: str = "fast") -> tuple[str, dict[str, Any], str]:
        """(preview png path, creator parameters, summary) for a photo (H, W, 3) uint8."""
        if image is None:
            raise UserError("photo: upload a picture first", field="file")
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise UserError(f"photo: expected an RGB picture, got an array shaped {arr.shape}", field="file")
        arr = np.ascontiguousarray(arr[..., :3].astype(np.uint8))
        res = self.studio.fit(arr, mode)
        path = self._write(
            res.preview, {"generator": "charforge gradio demo", "fit_mode": mode, "params": res.params}, "fit"
        )
        return path, dict(res.params), f"similarity {float(res.similarity):.3f} ({mode})"


def _gr_call(gr, fn, *args):
    """Run a demo action; a UserError becomes a gr.Error (shown in the page) with the same message."""
    try:
        return fn(*args)
    except UserError as e:
        raise gr.Error(str(e)) from e


def build_demo(studio: Any, *, title: str = "charforge demo", out_dir: str | Path | None = None):
    """A gr.Blocks page over `studio` (a `charforge.serve.engine.Studio`). Returns (blocks, theme)."""
    gr = require_gradio()
    demo = Demo(studio, out_dir)
    theme = gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(MONO_FONTS))  # no web-font fetch
    models = demo.models()
    default = studio.default_model
    scales = studio.upscale_choices() if models else [1]
    with gr.Blocks(title=title, analytics_enabled=False) as blocks:
        gr.Markdown(
            f"# {title}\nAnime characters from tags with a charforge generator, on this machine. "
            "Outputs carry provenance metadata and an invisible watermark."
        )
        with gr.Tab("Generate", elem_id="tab-generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    model = gr.Dropdown(
                        models, value=default, label="Model", elem_id="model", visible=len(models) > 1
                    )
                    tags = gr.Textbox(
                        label="Tags", placeholder="blonde hair, blue eyes, smile, -hat", elem_id="tags"
                    )
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="seed")
                    count = gr.Slider(1, MAX_COUNT, value=4, step=1, label="Images", elem_id="count")
                    trunc = gr.Slider(
                        0.1, 1.0, value=1.0, step=0.05, label="Variety (truncation)", elem_id="variety"
                    )
                    upscale = gr.Radio(
                        [str(s) for s in scales],
                        value="1",
                        label="Upscale",
                        elem_id="upscale",
                        visible=len(scales) > 1,
                    )
                    go = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Column(scale=2):
                    gallery = gr.Gallery(label="Characters", columns=4, elem_id="gallery", format="png")
                    info = gr.Markdown(elem_id="info")
            with gr.Accordion("Tags this model knows", open=False):
                gr.Markdown(demo.tag_help(default))
            go.click(
                lambda m, t, s, c, tr, u: _gr_call(gr, demo.generate, m, t, s, c, tr, u),
                [model, tags, seed, count, trunc, upscale],
                [gallery, info],
                api_name="generate",
            )
        with gr.Tab("NPC batch", elem_id="tab-npc"):
            with gr.Row():
                with gr.Column(scale=1):
                    ntags = gr.Textbox(label="Tags every NPC shares", placeholder="-hat", elem_id="npc-tags")
                    nseed = gr.Number(value=0, precision=0, minimum=0, label="Batch seed", elem_id="npc-seed")
                    ncount = gr.Slider(1, MAX_NPC, value=8, step=1, label="Characters", elem_id="npc-count")
                    ndist = gr.Slider(
                        0.0, 0.2, value=0.04, step=0.01, label="Minimum distance", elem_id="npc-distance"
                    )
                    ngo = gr.Button("Draw NPCs", variant="primary", elem_id="npc-go")
                with gr.Column(scale=2):
                    ngallery = gr.Gallery(label="NPCs", columns=4, elem_id="npc-gallery", format="png")
                    ninfo = gr.Markdown(elem_id="npc-info")
            ngo.click(
                lambda m, t, s, c, d: _gr_call(gr, demo.npc, m, t, s, c, d),
                [model, ntags, nseed, ncount, ndist],
                [ngallery, ninfo],
                api_name="npc",
            )
        if studio.f2p is not None:
            from charforge.f2p.fit import MODES

            with gr.Tab("Photo fit", elem_id="tab-fit"):
                with gr.Row():
                    with gr.Column():
                        photo = gr.Image(
                            type="numpy", label="Photo or drawing", elem_id="photo", sources=["upload"]
                        )
                        mode = gr.Radio(list(MODES), value="fast", label="Mode", elem_id="fit-mode")
                        fgo = gr.Button("Fit", variant="primary", elem_id="fit-go")
                    with gr.Column():
                        preview = gr.Image(
                            type="filepath", label="Creator character", elem_id="fit-preview", format="png"
                        )
                        params = gr.JSON(label="Parameters", elem_id="fit-params")
                        finfo = gr.Markdown(elem_id="fit-info")
                fgo.click(
                    lambda p, m: _gr_call(gr, demo.fit, p, m),
                    [photo, mode],
                    [preview, params, finfo],
                    api_name="fit",
                )
    blocks.charforge_demo = demo
    return blocks, theme


def load_studio(
    models: list[str] | None = None, f2p: str | None = None, creator: str = "builtin", warn=print
):
    """A Studio with the generators, f2p model and creator the studio server would load (same loader)."""
    from charforge.serve.engine import Studio
    from charforge.serve.server import load_models

    loaded = load_models(models, f2p, creator, warn=warn)
    return Studio(loaded["generators"], f2p=loaded["f2p"], creator=loaded["creator"])


def launch(blocks, theme=None, *, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Serve the page on host:port, never through a share tunnel. Returns (app, local_url)."""
    set_offline_env()
    app, local_url, _ = blocks.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=not block,
        ssr_mode=False,
        mcp_server=False,
        quiet=True,
        footer_links=[],
        theme=theme,
    )
    return app, local_url


APP_PY = '''"""A charforge demo for Hugging Face Spaces (SDK: gradio). Written by `charforge gradio --write-app`.

requirements.txt next to this file: {requirement}
Put a generator file next to it (e.g. model.safetensors) and set MODEL below, or leave "default" for the
generator shipped inside charforge.
"""

import os

os.environ.update({env!r})  # no analytics, no update check, no Hub telemetry

from charforge.gradio_app import build_demo, launch, load_studio  # noqa: E402

MODEL = os.environ.get("CHARFORGE_MODEL", "default")

studio = load_studio([MODEL])
demo, theme = build_demo(studio, title="charforge characters")

if __name__ == "__main__":
    # Spaces route traffic to port 7860 on all interfaces; locally it stays on loopback unless told otherwise
    launch(demo, theme, host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), port=7860)
'''


def write_app(folder: str | Path) -> list[Path]:
    """Write app.py and requirements.txt for a Hugging Face Space into `folder` (never overwrites)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        folder / "app.py": APP_PY.format(env=OFFLINE_ENV, requirement=f"charforge[gradio] ({GRADIO_PIN})"),
        folder / "requirements.txt": "charforge[gradio]\n",
    }
    clash = [p for p in files if p.exists()]
    if clash:
        raise UserError(
            f"--write-app {folder}: {clash[0].name} already exists; remove it or pick another folder"
        )
    for p, text in files.items():
        p.write_text(text, encoding="utf-8")
    return list(files)
