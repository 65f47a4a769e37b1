"""What the studio does, without HTTP: turn validated requests into images by calling the libraries.

`Studio` holds the models loaded once at start (generators by name, the face-to-parameter model, the
creator) and calls `charforge.sampling`, `charforge.f2p` and the creator; it never re-implements them.
Every method is synchronous and CPU-bound: the app runs them in a worker thread.
"""

from __future__ import annotations

import copy
import importlib
import io
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from charforge.errors import UserError


@dataclass
class Generated:
    image: np.ndarray  # (S, S, 3) uint8
    seed: int  # noise seed
    tag_seed: int  # seed the free tags were drawn with
    tags: np.ndarray  # (T,) 0/1


def tag_form(schema, vec: np.ndarray) -> dict[str, Any]:
    """A full tag vector (T,) as the API's tag form: every group a value (or "any" if unlabelled), every tag on/off."""
    names = schema.tags
    form: dict[str, Any] = {}
    for g, sl in zip(schema.groups, schema.group_slices()):
        on = np.flatnonzero(vec[sl] > 0.5)
        form[g.name] = names[sl.start + int(on[0])] if len(on) else "any"
    isl = schema.independent_slice
    for j, t in enumerate(schema.independent):
        form[t] = bool(vec[isl.start + j] > 0.5)
    return form


def _scheme_kw(seed_scheme: str) -> dict[str, str]:
    """The seed scheme as a keyword for the sampler, left out for the default (so stand-in samplers that
    predate seed schemes keep working)."""
    return {} if seed_scheme == "torch-v1" else {"seed_scheme": seed_scheme}


def _field(record: Any, name: str) -> Any:
    return record[name] if isinstance(record, dict) else getattr(record, name)


class WorkStopped(Exception):
    """Raised inside a job when its request ran out of its time budget ("time") or went away ("cancelled")."""

    def __init__(self, reason: str, drawn: int):
        super().__init__(f"stopped ({reason}) after {drawn} candidates")
        self.reason, self.drawn = reason, drawn


class _StoppableNet:
    """Wraps a generator net: before each forward pass asks `should_stop()`; counts the images drawn."""

    def __init__(self, net: Any, should_stop: Callable[[], str | None]):
        self._net, self._should_stop, self.drawn = net, should_stop, 0

    def __call__(self, z, *args, **kwargs):
        reason = self._should_stop()
        if reason:
            raise WorkStopped(reason, self.drawn)
        self.drawn += len(z)
        return self._net(z, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # parameters(), eval(), ... of the real net
        return getattr(self._net, name)


def _stoppable(bundle: Any, should_stop: Callable[[], str | None]) -> Any:
    """A shallow copy of `bundle` whose net checks `should_stop` between batches (the loaded bundle is shared)."""
    view = copy.copy(bundle)
    view.net = _StoppableNet(bundle.net, should_stop)
    return view


class LazyBundle:
    """A generator the studio offers by name but loads on its first request, so offering it costs start-up only
    a read of its file (no network built, no family libraries imported: the shipped diffusion model beside the
    GAN). `info` is `sampling.read_generator_info`'s bundle (net None); `load()` returns the real bundle, once,
    from whichever worker thread asks first. The model list (/models, /health, the web runtime's list) reads
    only the attributes in INFO, so listing never loads it."""

    INFO = frozenset(
        {
            "schema", "freqs", "config", "z_dim", "image_size", "model_id", "sha256", "path", "label",
            "backend", "onnx_is_sampler", "family", "family_spec", "noise_shape", "takes", "pixel_art",
        }
    )  # fmt: skip

    def __init__(self, info: Any, load: Callable[[], Any]):
        self.info, self._load, self._bundle = info, load, None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._bundle is not None

    def load(self) -> Any:
        with self._lock:
            if self._bundle is None:
                bundle = self._load()
                if bundle.sha256 != self.info.sha256:
                    raise UserError(
                        f"model {self.info.model_id!r}: its file changed since the server started "
                        f"({self.info.path}); restart the server",
                        field="model",
                    )
                self._bundle = bundle
        return self._bundle

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._bundle is None and name in self.INFO:
            return getattr(self.info, name)
        return getattr(self.load(), name)


class Studio:
    def __init__(
        self,
        generators: dict[str, Any] | None = None,
        *,
        f2p: Any = None,
        creator: Any = None,
        sampler: Any = None,
        fitter: Any = None,
        upscaler: Any = None,
    ):
        self.generators = dict(generators or {})
        self._upscaler = (
            upscaler  # charforge.sr.Upscaler, or a spec for load_upscaler; None = the shipped one
        )
        self.f2p = f2p
        self.creator = creator if creator is not None else getattr(f2p, "creator", None)
        self._sampler = sampler  # charforge.sampling unless a test injects a stand-in
        self._fitter = fitter  # charforge.f2p.fit unless a test injects a stand-in

    @property
    def sampler(self):
        if self._sampler is None:
            self._sampler = importlib.import_module("charforge.sampling")
        return self._sampler

    @property
    def default_model(self) -> str | None:
        return "default" if "default" in self.generators else next(iter(self.generators), None)

    # ---- look-ups ------------------------------------------------------------------------------
    def bundle(self, name: str) -> Any:
        """Model names are keys of the loaded-model dict, never paths."""
        if not self.generators:
            raise UserError(
                "generation is off on this server: no generator is loaded. Start it with "
                "`charforge serve --model PATH` (a .safetensors file or a training run folder)",
                field="model",
            )
        if name == "default" and name not in self.generators and self.default_model:
            name = self.default_model
        if name not in self.generators:
            valid = ", ".join(self.generators)
            raise UserError(f"model: unknown model {name[:64]!r}. Loaded models: {valid}", field="model")
        b = self.generators[name]
        return b.load() if isinstance(b, LazyBundle) else b  # offered models load on first use

    def configured(self, model: str, options: dict[str, Any] | None) -> Any:
        """The named bundle with sampling options (diffusion: steps, guidance, ...); a GAN refuses any."""
        bundle = self.bundle(model)
        opts = {k: v for k, v in (options or {}).items() if v is not None}
        return bundle.with_options(**opts) if opts else bundle

    def constraints(self, bundle: Any, form: dict[str, Any], source: str = "tags"):
        return bundle.schema.constraints_from_dict(form, source=source)

    def _tags_for(self, bundle: Any, constraints, tag_seed: int, seed_scheme: str = "torch-v1") -> np.ndarray:
        kw = _scheme_kw(seed_scheme)
        return np.asarray(
            self.sampler.sample_tags_for_seeds(bundle, constraints, [tag_seed], **kw), np.float32
        )[0]  # (T,)

    # ---- generation ----------------------------------------------------------------------------
    def generate(
        self,
        model: str,
        form: dict[str, Any],
        seeds: list[int],
        fixed_noise: bool,
        truncation: float = 1.0,
        seed_scheme: str = "torch-v1",
        *,
        options: dict[str, Any] | None = None,
        init: np.ndarray | None = None,
    ) -> list[Generated]:
        """Image i: tags drawn from seeds[i] under the constraints; noise from seeds[i] (or seeds[0] if fixed).
        The recipe is `sampling.characters_for_seeds`, the same as the CLI's `generate`. Diffusion models also
        take sampling `options` and an `init` image (img2img)."""
        bundle = self.configured(model, options)
        c = self.constraints(bundle, form)
        kw = _scheme_kw(seed_scheme) | ({"init": init} if init is not None else {})
        images, noise, tags = self.sampler.characters_for_seeds(
            bundle, c, seeds, fixed_noise=fixed_noise, truncation=truncation, **kw
        )
        return [
            Generated(images[i], int(noise[i]), int(seeds[i]), np.asarray(tags[i], np.float32))
            for i in range(len(seeds))
        ]

    def interpolate(
        self,
        model: str,
        a: tuple[int, dict],
        b: tuple[int, dict],
        frames: int,
        truncation: float = 1.0,
        seed_scheme: str = "torch-v1",
        *,
        options: dict[str, Any] | None = None,
    ):
        """(frames (F, S, S, 3) uint8, tags_a (T,), tags_b (T,)). Each end point matches /generate's image for it."""
        bundle = self.configured(model, options)
        ta = self._tags_for(bundle, self.constraints(bundle, a[1], "a.tags"), a[0], seed_scheme)
        tb = self._tags_for(bundle, self.constraints(bundle, b[1], "b.tags"), b[0], seed_scheme)
        kw = _scheme_kw(seed_scheme)
        out = self.sampler.interpolate(bundle, (a[0], ta), (b[0], tb), frames, truncation, **kw)
        return np.asarray(out, np.uint8), ta, tb

    def npc(
        self,
        model: str,
        count: int,
        seed: int,
        form: dict[str, Any],
        min_distance: float,
        *,
        max_candidates: int | None = None,
        should_stop: Callable[[], str | None] | None = None,
        info: dict[str, Any] | None = None,
        seed_scheme: str = "torch-v1",
        options: dict[str, Any] | None = None,
        init: np.ndarray | None = None,
    ) -> list[Generated]:
        """`sampling.npc_batch`, bounded: at most `max_candidates` portraits are drawn, and before each batch
        of them `should_stop()` may end the work (it returns why: "time" or "cancelled") -> WorkStopped.

        With `info` (a dict), a budget that runs out after some portraits were found returns those, and
        `info` says why the batch is short ("candidates" or "time"); with none found it is still an error."""
        bundle = self.configured(model, options)
        c = self.constraints(bundle, form)
        view = _stoppable(bundle, should_stop) if should_stop is not None else bundle
        extra = {"init": init} if init is not None else {}
        try:
            if info is not None:
                report: dict[str, Any] = {}
                records = self.sampler.npc_batch(
                    bundle,
                    count,
                    seed,
                    constraints=c,
                    min_distance=min_distance,
                    max_tries=max_candidates,
                    should_stop=should_stop,
                    partial=True,
                    report=report,
                    **_scheme_kw(seed_scheme),
                    **extra,
                )
                if report.get("stopped") == "cancelled" or (report.get("stopped") == "time" and not records):
                    raise WorkStopped(report["stopped"], int(report.get("tried", 0)))
                if not records:
                    raise UserError(
                        f"npc: only 0 of {count} portraits were distinct enough after {report.get('tried', 0)} "
                        "tries; lower --min-distance or relax the tag constraints",
                        field="min_distance",
                    )
                info.update(report)
            else:
                records = self.sampler.npc_batch(
                    view,
                    count,
                    seed,
                    constraints=c,
                    min_distance=min_distance,
                    max_tries=max_candidates,
                    **_scheme_kw(seed_scheme),
                    **extra,
                )
        except UserError as e:
            if e.field != "min_distance":
                raise
            limit = (
                f"; this server draws at most {max_candidates:,} candidates per request"
                if max_candidates
                else ""
            )
            raise UserError(
                str(e)
                .replace("--min-distance", "min_distance")
                .replace("lower min_distance", "ask for fewer characters (count), lower min_distance")
                + limit,
                field="min_distance",
            ) from e
        return [
            Generated(
                np.asarray(_field(r, "image"), np.uint8),
                int(_field(r, "seed")),
                int(_field(r, "seed")),
                np.asarray(_field(r, "tags"), np.float32),
            )
            for r in records
        ]

    # ---- upscaling -------------------------------------------------------------------------------
    def upscaler(self) -> Any:
        """The studio's upscaler, loaded on first use (the shipped one unless the server was given another)."""
        from charforge.sr import Upscaler, load_upscaler

        if not isinstance(self._upscaler, Upscaler):
            try:
                self._upscaler = load_upscaler(self._upscaler)
            except UserError as e:
                raise UserError(f"upscale: upscaling is off on this server ({e})", field="upscale") from e
        return self._upscaler

    def upscale_choices(self) -> list[int]:
        """[1] plus the factors of the upscaler, or [1] when there is none (never raises)."""
        try:
            return [1, *self.upscaler().scales]
        except UserError:
            return [1]

    def upscale(self, images: np.ndarray, scale: int) -> tuple[np.ndarray, dict[str, Any]]:
        """(images at scale x, provenance fields for their metadata); scale 1 returns them as they are."""
        from charforge.sr import apply

        return apply(None if scale == 1 else self.upscaler(), images, scale)

    # ---- creator and face-to-parameter -----------------------------------------------------------
    def _need_creator(self):
        if self.creator is None:
            raise UserError("no creator loaded: start the server with a creator (the default is 'builtin')")
        return self.creator

    def render(self, params: dict[str, Any], size: int) -> tuple[np.ndarray, dict[str, Any]]:
        cr = self._need_creator()
        if not getattr(cr, "can_render", True):
            raise UserError(
                f"creator {getattr(cr, 'name', '?')!r} cannot render (it only knows recorded samples)"
            )
        try:
            clean = cr.space.validate(params, source="params")
        except UserError as e:  # name the field as the request spells it: params.<name>
            raise UserError(str(e), field=f"params.{e.field}" if e.field else "params") from e
        batch = cr.space.from_dicts([clean], source="params")
        return np.asarray(cr.render(batch, size)[0], np.uint8), clean  # (S, S, 3)

    def fit(self, image: np.ndarray, mode: str):
        if self.f2p is None:
            raise UserError(
                "no face-to-parameter model loaded: start the server with --f2p (or ship the default)"
            )
        fitter = self._fitter
        if fitter is None:
            fitter = importlib.import_module("charforge.f2p").fit
        return fitter(self.f2p, [image], mode=mode)


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """An in-memory zip; PNGs are already compressed, so entries are stored."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def gif_bytes(frames: np.ndarray, frame_ms: int, meta: dict[str, Any] | None = None) -> bytes:
    """(F, S, S, 3) uint8 -> an endlessly looping GIF: `charforge.sampling.gif_bytes`, shared with the CLI."""
    return importlib.import_module("charforge.sampling").gif_bytes(frames, frame_ms, meta)
