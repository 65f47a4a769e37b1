"""`charforge export hf` and `charforge.load` / `from_pretrained`: Hub-style folders, offline, same pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run_cli

import charforge
from charforge import sampling
from charforge.errors import UserError
from charforge.provenance.modelcard import render_model_card, split_card

SEEDS_TAGS = ("red hair, smile", 4, 11)


def _pixels(bundle):
    images, seeds, tags = sampling.characters_for_request(bundle, *SEEDS_TAGS)
    return images, seeds, tags


def _yaml_header(text: str) -> dict:
    yaml = pytest.importorskip("yaml")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_export_load_round_trip_gives_identical_pixels(tiny_generator, tmp_path, capsys):
    out = tmp_path / "hf"
    code, stdout, err = run_cli(
        capsys, "export", "hf", tiny_generator, "-o", out, "--license", "mit", "--json"
    )
    assert code == 0, err
    doc = json.loads(stdout)
    assert sorted(p.rsplit("/", 1)[-1] for p in doc["files"]) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert (out / "model.safetensors").read_bytes() == tiny_generator.read_bytes()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["library_name"] == "charforge" and cfg["image_size"] == 16 and len(cfg["tags"]) == 34
    header = _yaml_header((out / "README.md").read_text())
    assert (
        header["license"] == "mit" and header["library_name"] == "charforge" and "charforge" in header["tags"]
    )
    a, b, c = (
        charforge.load(out),
        charforge.from_pretrained(str(out)),
        sampling.load_generator(tiny_generator),
    )
    assert a.sha256 == c.sha256 == cfg["sha256"] and a.model_id == "tiny-cli"
    d = sampling.load_generator(out)  # --model DIR takes the folder too
    ref = _pixels(c)
    for bundle in (a, b, d):
        got = _pixels(bundle)
        assert np.array_equal(got[0], ref[0]) and got[1] == ref[1] and np.array_equal(got[2], ref[2])


def test_export_of_the_shipped_default_keeps_its_card_and_licence(tmp_path, capsys):
    if "default" not in sampling.available_generators():
        pytest.skip("no shipped default generator in this install")
    code, _, err = run_cli(capsys, "export", "hf", "default", "-o", tmp_path / "d")
    assert code == 0, err
    text = (tmp_path / "d" / "README.md").read_text()
    header = _yaml_header(text)
    assert header["license"] == "cc0-1.0" and header["datasets"] == ["creator:builtin"]
    assert "charforge default generator" in text and "charforge.load(" in text
    ref = sampling.characters_for_request(sampling.load_generator("default"), "blue eyes", 2, 3)[0]
    assert np.array_equal(
        sampling.characters_for_request(charforge.load(tmp_path / "d"), "blue eyes", 2, 3)[0], ref
    )


def test_bad_folders_are_clear_errors(tiny_generator, tmp_path, capsys):
    out = tmp_path / "hf"
    assert run_cli(capsys, "export", "hf", tiny_generator, "-o", out)[0] == 0
    code, _, err = run_cli(capsys, "export", "hf", tiny_generator, "-o", out)  # not empty
    assert code == 2 and "not empty" in err and "--overwrite" in err and "Traceback" not in err
    assert run_cli(capsys, "export", "hf", tiny_generator, "-o", out, "--overwrite")[0] == 0
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="model.safetensors: its sha256 differs"):
        charforge.load(out)
    cfg = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**cfg, "library_name": "diffusers"}))
    with pytest.raises(UserError, match="config.json: library_name is 'diffusers'"):
        charforge.load(out)
    (out / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="config.json: not readable JSON"):
        charforge.load(out)
    with pytest.raises(UserError, match="never downloads"):
        charforge.from_pretrained("someone/some-model")


def test_training_cards_get_the_yaml_header():
    manifest = {
        "image_size": 16,
        "items": [
            {"source": "art/a.png", "license": "CC-BY-4.0"},
            {"source": "art/b.png", "license": "CC-BY-4.0"},
        ],
    }
    base = {"file": "g.safetensors", "model_id": "base@3", "sha256": "ab" * 32}
    text = render_model_card(
        dataset_manifest=manifest,
        config={"family": "acgan"},
        command="charforge train",
        steps=3,
        wall_time_s=1.0,
        base_model=base,
    )
    header = _yaml_header(text)
    assert (
        header["license"] == "cc-by-4.0"
        and header["datasets"] == ["art"]
        and header["base_model"] == "base@3"
    )
    assert split_card(text)[0] == header and split_card(text)[1].startswith("# Model card")
    mixed = {"items": [{"source": "x/a.png", "license": "CC0-1.0"}, {"source": "x/b.png", "license": "MIT"}]}
    h = _yaml_header(
        render_model_card(dataset_manifest=mixed, config={}, command="c", steps=1, wall_time_s=1)
    )
    assert h["license"] == "other" and h["license_name"] == "mixed-training-data"
    unknown = {"items": [{"source": "x/a.png"}]}
    h = _yaml_header(
        render_model_card(dataset_manifest=unknown, config={}, command="c", steps=1, wall_time_s=1)
    )
    assert h["license"] == "unknown" and "base_model" not in h


def test_a_run_folder_exports_with_its_card(tmp_path, capsys):
    """A run folder (it has its own config.json) loads as a run, and its MODEL_CARD.md becomes the README."""
    import torch

    from charforge.core.tags import make_girls_moe_schema
    from charforge.data.packed import write_packed
    from charforge.train.loop import Trainer, TrainOptions
    from charforge.train.presets import resolve_preset

    schema = make_girls_moe_schema()
    rng = np.random.default_rng(0)
    items = [{"source": f"art/{i}.png", "license": "CC-BY-4.0"} for i in range(16)]
    write_packed(
        tmp_path / "d",
        rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8),
        schema.sample_training(16, rng).astype(np.uint8),
        schema,
        items=items,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        p = resolve_preset("tiny", {"steps": 2, "ckpt_every": 2})
        opts = TrainOptions(device="cpu", show_progress=False, tensorboard=False)
        Trainer(tmp_path / "d", tmp_path / "run", p, opts=opts).run()
    finally:
        torch.set_num_threads(threads)
    run = tmp_path / "run"
    assert (run / "config.json").is_file()
    header = _yaml_header((run / "MODEL_CARD.md").read_text())  # the training card has the header
    assert header["license"] == "cc-by-4.0" and header["datasets"] == ["art"]
    ref = _pixels(charforge.load(run))
    code, _, err = run_cli(capsys, "export", "hf", run, "-o", tmp_path / "hf")
    assert code == 0, err
    readme = (tmp_path / "hf" / "README.md").read_text()
    assert _yaml_header(readme)["license"] == "cc-by-4.0" and "## Training data" in readme
    assert np.array_equal(_pixels(charforge.load(tmp_path / "hf"))[0], ref[0])
