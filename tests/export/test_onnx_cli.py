import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from charforge.cli import app
from charforge.core.tags import make_girls_moe_schema
from charforge.export.onnx import OnnxGenerator


@pytest.fixture
def generator_file(tmp_path):
    presets = pytest.importorskip("charforge.train.presets")
    from charforge.models.io import save_model

    torch.manual_seed(0)
    schema = make_girls_moe_schema()
    p = presets.resolve_preset("tiny")
    net = presets.build_generator(p, len(schema))
    freqs = np.linspace(0.1, 0.3, len(schema)).round(3).tolist()
    return save_model(
        tmp_path / "tiny.safetensors",
        net.state_dict(),
        kind="generator",
        config=p.to_dict(),
        extra={"tag_schema": schema.to_dict(), "tag_freqs": freqs, "model_id": "tiny-cli"},
    ), freqs


def test_cli_exports_generator_and_f2p(tmp_path, generator_file, monkeypatch):
    import charforge.f2p

    path, freqs = generator_file
    fake_f2p = SimpleNamespace(
        translator=nn.Sequential(nn.Linear(6, 4), nn.Sigmoid()), embedder=SimpleNamespace(embed=None)
    )
    monkeypatch.setattr(charforge.f2p, "load_f2p", lambda spec: fake_f2p, raising=False)
    out = tmp_path / "engine" / "gen.onnx"
    res = CliRunner().invoke(
        app, ["export", "onnx", "--model", str(path), "-o", str(out), "--f2p", "whatever"]
    )
    assert res.exit_code == 0, res.output
    assert "translator: wrote" in res.output and "embedder: not exported: " in res.output
    gen = OnnxGenerator(out)
    assert gen.model_id == "tiny-cli" and np.allclose(gen.freqs, freqs) and gen.image_size == 16
    report = json.loads((tmp_path / "engine" / "gen_f2p" / "f2p_onnx.json").read_text())
    assert report["translator"]["parity_max_abs_error"] <= 1e-4


def test_cli_exports_f2p_alone_without_a_generator(tmp_path, monkeypatch):
    import charforge.f2p
    import charforge.sampling

    def no_generator(*a, **k):
        raise AssertionError("a generator was loaded")

    fake_f2p = SimpleNamespace(translator=nn.Sequential(nn.Linear(6, 4), nn.Sigmoid()))
    monkeypatch.setattr(charforge.f2p, "load_f2p", lambda spec: fake_f2p, raising=False)
    monkeypatch.setattr(charforge.sampling, "load_generator", no_generator, raising=False)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["export", "onnx", "--f2p", "whatever"])
    assert res.exit_code == 0, res.output
    assert "translator: wrote" in res.output and not (tmp_path / "generator.onnx").exists()
    assert (
        json.loads((tmp_path / "f2p_onnx" / "f2p_onnx.json").read_text())["translator"][
            "parity_max_abs_error"
        ]
        <= 1e-4
    )
    res = CliRunner().invoke(
        app, ["export", "onnx", "--f2p", "whatever", "--f2p-out", str(tmp_path / "engine")]
    )
    assert res.exit_code == 0 and (tmp_path / "engine" / "translator.onnx").is_file(), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine", "f2p_onnx"]


def test_cli_bad_model_is_one_clear_line(tmp_path):
    from charforge.cli import main

    bad = tmp_path / "nope.safetensors"
    with pytest.raises(SystemExit) as e:
        main(["export", "onnx", "--model", str(bad), "-o", str(tmp_path / "g.onnx")])
    assert e.value.code == 2
