"""`charforge eval` and `charforge tagger train` end to end on tiny data."""

import json

import numpy as np
import pytest
import torch

from charforge.cli import main
from charforge.data.packed import load_packed
from charforge.models.io import save_model
from charforge.train.presets import build_generator, resolve_preset


@pytest.fixture(scope="module")
def tiny_generator(toy_data_dir, tmp_path_factory):
    """An untrained 16 px generator file for the toy schema (what `charforge train` writes)."""
    data = load_packed(toy_data_dir)
    preset = resolve_preset("tiny")
    torch.manual_seed(0)
    net = build_generator(preset, len(data.schema))
    path = tmp_path_factory.mktemp("gen") / "generator.safetensors"
    save_model(
        path,
        net.state_dict(),
        kind="generator",
        config=preset.to_dict(),
        extra={
            "tag_schema": data.schema.to_dict(),
            "tag_freqs": data.tag_frequencies.tolist(),
            "model_id": "toy",
        },
    )
    return path


def test_eval_cli_writes_the_full_report(toy_data_dir, toy_tagger_dir, tiny_generator, tmp_path, capsys):
    out = tmp_path / "report"
    main(
        [
            "eval",
            "--model",
            str(tiny_generator),
            "--data",
            str(toy_data_dir),
            "--tagger",
            str(toy_tagger_dir),
            "--metrics",
            "fid_domain,kid_domain,is_domain,precision,diversity,memorisation,tsne",
            "--n",
            "20",
            "--runs",
            "2",
            "--precision-n",
            "8",
            "--sample-n",
            "16",
            "--tsne-n",
            "40",
            "--threads",
            "1",
            "-o",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "fid_domain" in printed and "precision" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["model_id"] == "toy" and len(report["model"]["sha256"]) == 64
    assert set(report["metrics"]) == {
        "fid_domain",
        "kid_domain",
        "is_domain",
        "precision",
        "diversity",
        "memorisation",
        "tsne",
    }
    assert 0.0 <= report["metrics"]["precision"]["mean"] <= 1.0
    md = (out / "report.md").read_text()
    for png in ("precision.png", "memorisation_pairs.png", "memorisation_hist.png", "tsne.png"):
        assert f"({png})" in md and (out / png).stat().st_size > 1000
    assert np.isfinite(report["metrics"]["fid_domain"]["real_baseline"]["mean"])


def test_eval_cli_rejects_bad_input(toy_data_dir, tiny_generator, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(
            [
                "eval",
                "--model",
                str(tiny_generator),
                "--data",
                str(toy_data_dir),
                "--metrics",
                "fid_domain,nope",
                "-o",
                str(tmp_path / "r"),
            ]
        )
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown metric(s) 'nope'" in err and "Valid:" in err
    with pytest.raises(SystemExit):
        main(
            [
                "eval",
                "--model",
                str(tiny_generator),
                "--data",
                str(tmp_path / "missing"),
                "-o",
                str(tmp_path / "r"),
            ]
        )
    assert "no such dataset folder" in capsys.readouterr().err


def test_tagger_train_cli(toy_data_dir, tmp_path, capsys):
    out = tmp_path / "taggers" / "toy"
    main(
        [
            "tagger",
            "train",
            "--data",
            str(toy_data_dir),
            "-o",
            str(out),
            "--steps",
            "5",
            "--size",
            "16",
            "--channels",
            "4",
            "--feat-dim",
            "8",
            "--batch-size",
            "8",
            "--threads",
            "1",
        ]
    )
    printed = capsys.readouterr().out
    assert "held-out" in printed and (out / "tagger.safetensors").exists() and (out / "report.md").exists()
    with pytest.raises(SystemExit) as e:
        main(["tagger", "train", "--data", str(toy_data_dir), "-o", str(tmp_path / "t2"), "--size", "20"])
    assert e.value.code == 2 and "power of two" in capsys.readouterr().err


def test_eval_cli_without_a_matching_tagger_uses_generic_features(
    toy_data_dir, tiny_generator, tmp_path, capsys
):
    from charforge.tagger.net import default_tagger_path

    out = tmp_path / "r"
    main(
        [
            "eval",
            "--model",
            str(tiny_generator),
            "--data",
            str(toy_data_dir),
            "--metrics",
            "tsne",
            "--tsne-n",
            "12",
            "--threads",
            "1",
            "-o",
            str(out),
        ]
    )
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"]["tsne"]["space"] == "generic" and report["tagger"] is None
    if (
        default_tagger_path() is not None
    ):  # the shipped tagger knows the 34 make.girls.moe tags, not the toy ones
        assert "no shipped tagger knows this dataset's tags" in capsys.readouterr().err
