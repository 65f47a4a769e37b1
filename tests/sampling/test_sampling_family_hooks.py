"""sampling.py asks the family registry how to sample (options, their checks and records, shaped noise, the
ONNX path, truncation) instead of naming a family: a made-up third family works through the same functions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from charforge import sampling
from charforge.core.tags import make_girls_moe_schema
from charforge.errors import UserError
from charforge.models.config import ModelConfig
from charforge.models.families import FAMILIES, Family, register

SCHEMA = make_girls_moe_schema()
CALLS: list[dict[str, Any]] = []


@dataclass
class ToyConfig(ModelConfig):
    family: ClassVar[str] = "toy-hooks"
    resolution: int = 8

    def noise_shape(self) -> tuple[int, ...]:
        return (2, 4, 4)


def _toy_sample(net: Any, noise: torch.Tensor, c: torch.Tensor, **opts: Any) -> torch.Tensor:
    CALLS.append({"noise": tuple(noise.shape), **{k: v for k, v in opts.items()}})
    level = opts.get("level", 0.0) - (0.5 if opts.get("negative") is not None else 0.0)
    return torch.full((len(noise), 3, 8, 8), float(level))


def _toy_sample_onnx(
    net: Any, config: dict, noise: torch.Tensor, c: torch.Tensor, **opts: Any
) -> torch.Tensor:
    CALLS.append({"onnx": config["family"]})
    return _toy_sample(net, noise, c, **opts)


def _check(options: dict[str, Any]) -> dict[str, Any]:
    if not 0 <= float(options.get("level", 0)) <= 1:
        raise UserError("level: expected 0 to 1", field="level")
    return {k: float(v) for k, v in options.items()}


@pytest.fixture(scope="module", autouse=True)
def toy_family():
    register(
        Family(
            "toy-hooks",
            ToyConfig,
            lambda cfg, n: None,
            _toy_sample,
            "charforge.train.gan:DCGAN_RECIPE",
            sample_options=("level", "negative", "init"),
            check_options=_check,
            sampling_record=lambda o: {"level": o.get("level", 0.25)},
            init_record=lambda o: {"strength": "toy"},
            sample_onnx=_toy_sample_onnx,
            refuses_truncation="toy models take no truncation",
            shaped_noise=True,
        )
    )
    yield
    FAMILIES.pop("toy-hooks")


def _bundle(**kw: Any) -> sampling.GeneratorBundle:
    return sampling.GeneratorBundle(
        None,
        SCHEMA,
        np.full(len(SCHEMA), 0.3),
        ToyConfig().to_dict(),
        32,
        8,
        "toy",
        "0" * 64,
        Path("toy"),
        **kw,
    )


def test_options_are_checked_and_recorded_by_the_family():
    b = _bundle()
    assert b.takes("negative") and not b.takes("steps")
    assert b.png_meta(1, np.zeros(len(SCHEMA)))["level"] == 0.25  # the family's default, recorded
    b2 = b.with_options(level=1)
    assert b2.options == {"level": 1.0} and b2.sampling_record() == {"level": 1.0}
    with pytest.raises(UserError, match="level"):
        b.with_options(level=3)
    with pytest.raises(UserError, match="steps"):
        b.with_options(steps=4)


def test_sampling_passes_shaped_noise_negatives_and_init_to_the_family():
    b = _bundle().with_options(level=0.8)
    CALLS.clear()
    images, _, _ = sampling.characters_for_request(b, "blonde hair, -hat", 2, 0)
    assert CALLS[-1]["noise"] == (2, 2, 4, 4) and CALLS[-1]["level"] == 0.8
    assert CALLS[-1]["negative"].shape == (2, len(SCHEMA))  # the family takes negatives: "-hat" is one
    assert (images == round((0.3 + 1) * 127.5)).all()
    init = np.zeros((8, 8, 3), np.uint8)
    sampling.characters_for_request(b, "blonde hair", 1, 0, init=init)
    assert CALLS[-1]["init"].shape == (1, 3, 8, 8) and "negative" not in CALLS[-1]
    rec = sampling.request_record(b, "blonde hair, -hat", init=init)
    assert (
        rec["negative_tags"] == ["hat"] and rec["strength"] == "toy" and len(rec["init_image_sha256"]) == 64
    )
    with pytest.raises(UserError, match="toy models take no truncation"):
        sampling.characters_for_request(b, "blonde hair", 1, 0, truncation=0.5)


def test_the_onnx_backend_goes_through_the_family_hook():
    CALLS.clear()
    sampling.characters_for_request(dataclasses.replace(_bundle(), backend="onnx"), "red hair", 1, 0)
    assert CALLS[0] == {"onnx": "toy-hooks"}


def test_a_family_without_init_or_negatives_refuses_and_ignores_them():
    gan_like = dataclasses.replace(FAMILIES["toy-hooks"], name="toy-plain", sample_options=())
    FAMILIES["toy-plain"] = gan_like
    try:
        b = dataclasses.replace(_bundle(), config={**ToyConfig().to_dict(), "family": "toy-plain"})
        CALLS.clear()
        sampling.characters_for_request(b, "blonde hair, -hat", 1, 0)
        assert "negative" not in CALLS[-1]  # "-hat" only turned the tag off
        assert sampling.request_record(b, "blonde hair, -hat") == {}
        with pytest.raises(UserError, match="cannot start from an image"):
            sampling.characters_for_request(b, "blonde hair", 1, 0, init=np.zeros((8, 8, 3), np.uint8))
    finally:
        FAMILIES.pop("toy-plain")


def _toy_export(bundle: Any, path: Path, opset: int, *, check: bool = True) -> Path:
    CALLS.append({"export": bundle.model_id, "opset": opset, "check": check})
    Path(path).write_bytes(b"toy")
    return Path(path)


def test_export_and_the_studio_ask_the_family_not_its_name(tmp_path, monkeypatch):
    """ONNX export uses the family's own writer; the studio's request fields, output records and browser list
    follow the family's hooks (a family that takes negatives and an init, and whose ONNX file is not the whole
    sampler, is served like the diffusion family without being named)."""
    from charforge.export.onnx import export_generator_onnx
    from charforge.serve import app as serve_app

    spec = dataclasses.replace(
        FAMILIES["toy-hooks"], export_onnx=f"{__name__}:_toy_export", onnx_is_sampler=False
    )
    monkeypatch.setitem(FAMILIES, "toy-hooks", spec)
    b = _bundle()
    CALLS.clear()
    out = export_generator_onnx(b, tmp_path / "toy.onnx", 17, check=False)
    assert out.read_bytes() == b"toy" and CALLS == [{"export": "toy", "opset": 17, "check": False}]
    assert b.onnx_is_sampler is False
    # the studio: the family takes negatives and an init (and "strength" is not among its options)
    assert serve_app._model_options(b) == ["negative_tags", "init_image_base64"]
    meta = serve_app._sampling_meta(b, {"hat": False, "red hair": True}, None)
    assert meta == {"level": 0.25, "negative_tags": ["hat"]}
    # the studio and the CLI record a request's negatives the same way (one function, the schema's order)
    from charforge import sampling

    studio = serve_app._sampling_meta(b, {"glasses": False, "hat": False}, None)
    cli = b.sampling_record() | sampling.request_record(b, "-glasses, -hat")
    assert studio == cli and studio["negative_tags"] == [t for t in b.schema.tags if t in ("hat", "glasses")]
    plain = dataclasses.replace(spec, name="toy-plain", sample_options=())
    monkeypatch.setitem(FAMILIES, "toy-plain", plain)
    gan_like = dataclasses.replace(b, config={**ToyConfig().to_dict(), "family": "toy-plain"})
    assert (
        serve_app._model_options(gan_like) == []
        and serve_app._sampling_meta(gan_like, {"hat": False}, None) == {}
    )
    # the CLI's --init-image asks the family too
    from charforge.cli.generate import _sampler_options

    with pytest.raises(UserError, match="toy-plain model 'toy' cannot start from an image"):
        _sampler_options(gan_like, None, None, None, None, None, tmp_path / "init.png")
