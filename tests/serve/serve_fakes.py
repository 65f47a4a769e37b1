"""Small stand-ins for the studio tests: a tiny untrained generator (real sampling code), a toy creator
(one coloured disc) and a toy face-to-parameter fitter."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from charforge.core.space import Categorical, Continuous, ParamBatch, ParamSpace
from charforge.core.tags import make_girls_moe_schema
from charforge.creators.base import Creator

LOCAL = "http://127.0.0.1:8000"  # test clients' base URL: a loopback studio refuses other Host names
DISC_COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def make_bundle(resolution: int = 32, seed: int = 0):
    """A real `GeneratorBundle` around an untrained tiny SRResNet generator (8 channels, 2 blocks)."""
    from charforge.sampling import GeneratorBundle
    from charforge.train.presets import build_generator, resolve_preset

    preset = resolve_preset("tiny", {"resolution": resolution})
    schema = make_girls_moe_schema()
    torch.manual_seed(seed)
    net = build_generator(preset, len(schema)).eval().requires_grad_(False)
    with (
        torch.no_grad()
    ):  # more contrast than a fresh init, so different seeds give visibly different pictures
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(0.05)  # eval-mode BN then amplifies, as a trained net's statistics would
        last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.mul_(8.0)  # (3, C, k, k): saturate tanh into clear colours
    freqs = schema.frequencies(schema.sample_training(500, np.random.default_rng(seed)))
    sha = hashlib.sha256(f"tiny-{resolution}-{seed}".encode()).hexdigest()
    return GeneratorBundle(
        net,
        schema,
        freqs,
        preset.to_dict(),
        preset.z_dim,
        resolution,
        f"tiny-test-{seed}",
        sha,
        Path("tiny.safetensors"),
    )


class DiscCreator(Creator):
    """One coloured disc on a light background; radius and x position are continuous."""

    name = "disc"

    def __init__(self):
        self.space = ParamSpace(
            [Categorical("color", tuple(DISC_COLOURS), "red"), Categorical("ring", ("no", "yes"), "no")],
            [Continuous("radius", 0.1, 0.45, 0.3), Continuous("x", 0.3, 0.7, 0.5)],
            name="disc",
        )

    def render(self, batch: ParamBatch, size: int) -> np.ndarray:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        out = np.full((len(batch), size, size, 3), 240, np.uint8)  # (N, S, S, 3)
        for i in range(len(batch)):
            r, x = batch.cont[i]
            d = np.sqrt((xx - x) ** 2 + (yy - 0.5) ** 2)
            out[i][d < r] = DISC_COLOURS[self.space.categorical[0].options[batch.cat[i, 0]]]
            if batch.cat[i, 1]:
                out[i][(d > r) & (d < r + 0.05)] = 0
        return out


@dataclass
class FakeF2P:
    creator: Creator = field(default_factory=DiscCreator)


def fake_fit(f2p, images, mode="fast"):
    """Disc creator: nearest disc colour to the photo's mean colour. Any other creator: a sample seeded by it."""
    cr = f2p.creator
    mean = np.mean([im.reshape(-1, 3).mean(0) for im in images], axis=0)
    if cr.space.names == DiscCreator().space.names:
        colour = min(DISC_COLOURS, key=lambda c: float(np.sum((np.array(DISC_COLOURS[c]) - mean) ** 2)))
        params = cr.space.validate({"color": colour, "radius": 0.4})
    else:
        params = cr.space.to_dicts(cr.space.sample(1, np.random.default_rng(int(mean.sum()))))[0]
    preview = cr.render(cr.space.from_dicts([params]), 64)[0]
    return SimpleNamespace(params=params, preview=preview, similarity=0.5, timings={"total_s": 0.001})


def make_app(**settings):
    from charforge.serve.app import ServeSettings, create_app

    f2p = FakeF2P()
    return create_app(
        ServeSettings(**settings),
        generators={"default": make_bundle()},
        f2p=f2p,
        creator=f2p.creator,
        fitter=fake_fit,
    )


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1 (a free port) in a background thread, for browser and schema tests."""

    def __init__(self, app):
        self.app = app

    def __enter__(self):
        import socket
        import threading
        import time

        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 15 s")
            time.sleep(0.02)
        self._sock = sock
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self._sock.close()


def png_of(colour=(30, 50, 200), size=(40, 40)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def make_diffusion_bundle(resolution: int = 16, seed: int = 0):
    """A real diffusion `GeneratorBundle`: the tiny-diffusion preset's untrained UNet (its tag projection given
    random weights, so tags change the picture), sampled by the real sampler loop."""
    from charforge.sampling import GeneratorBundle
    from charforge.train.presets import build_generator, resolve_preset

    preset = resolve_preset("tiny-diffusion", {"resolution": resolution})
    schema = make_girls_moe_schema()
    torch.manual_seed(seed)
    net = build_generator(preset, len(schema)).eval().requires_grad_(False)
    with torch.no_grad():
        net.tag_proj[2].weight.normal_(0, 0.5)
    freqs = schema.frequencies(schema.sample_training(500, np.random.default_rng(seed)))
    sha = hashlib.sha256(f"tiny-diffusion-{resolution}-{seed}".encode()).hexdigest()
    cfg = preset.model_config().to_dict()
    return GeneratorBundle(
        net,
        schema,
        freqs,
        cfg,
        3 * resolution * resolution,
        resolution,
        f"tiny-diffusion-{seed}",
        sha,
        Path("tiny-diffusion.safetensors"),
        label="diffusion/tiny-diffusion",
    )
