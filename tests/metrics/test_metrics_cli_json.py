"""`charforge eval --json`: the report as one JSON document on stdout, the notes on stderr."""

import json

import torch

from charforge.cli import main
from charforge.data.packed import load_packed
from charforge.models.io import save_model
from charforge.train.presets import build_generator, resolve_preset


def test_eval_json_is_the_report(toy_data_dir, tmp_path, capsys):
    data = load_packed(toy_data_dir)
    preset = resolve_preset("tiny")
    torch.manual_seed(0)
    gen = tmp_path / "g.safetensors"
    save_model(
        gen,
        build_generator(preset, len(data.schema)).state_dict(),
        kind="generator",
        config=preset.to_dict(),
        extra={
            "tag_schema": data.schema.to_dict(),
            "tag_freqs": data.tag_frequencies.tolist(),
            "model_id": "toy",
        },
    )
    out = tmp_path / "r"
    args = ["eval", "--model", str(gen), "--data", str(toy_data_dir), "--metrics", "diversity"]
    main([*args, "--threads", "1", "-o", str(out), "--json"])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["command"] == "eval" and doc["report_json"] == str(out / "report.json")
    assert doc["report"] == json.loads((out / "report.json").read_text())
    assert "diversity" in doc["report"]["metrics"]
    main(["eval", "--list", "--json"])
    listing = json.loads(capsys.readouterr().out)
    assert listing["metrics"]["precision"]["needs_tagger"] is True
