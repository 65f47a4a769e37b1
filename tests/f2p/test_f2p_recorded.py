"""RecordedCreator: a folder of captured (parameters JSON, image) pairs, and the whole f2p pipeline on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from charforge.creators.base import get_creator
from charforge.creators.recorded import RecordedCreator
from charforge.errors import UserError
from charforge.f2p import fit, load_f2p
from charforge.f2p.pipeline import TrainConfig, train_f2p


def _record(toy, root, n=60, jsonl_from=40):
    """Write toy renders as a recorded folder: NAME.json + NAME.png pairs, and the rest as pairs.jsonl."""
    root.mkdir(parents=True, exist_ok=True)
    batch = toy.space.sample(n, np.random.default_rng(5))
    images = toy.render(batch, 24)
    dicts = toy.space.to_dicts(batch)
    (root / "space.json").write_text(toy.space.to_json())
    lines = []
    for i, (d, im) in enumerate(zip(dicts, images)):
        Image.fromarray(im).save(root / f"cap_{i:03d}.png")
        if i < jsonl_from:
            (root / f"cap_{i:03d}.json").write_text(json.dumps(d))
        else:
            lines.append(json.dumps({"image": f"cap_{i:03d}.png", "params": d}))
    (root / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return batch, images


def test_recorded_folder_loads_and_finds_nearest(toy, tmp_path):
    batch, images = _record(toy, tmp_path / "rec")
    rec = get_creator(str(tmp_path / "rec"))
    assert isinstance(rec, RecordedCreator) and len(rec) == 60 and rec.can_render is False
    with pytest.raises(UserError, match="cannot render"):
        rec.render(batch[:1], 24)
    # nearest of a recorded setting is that very capture (files come back in sorted-name order: same as written)
    np.testing.assert_array_equal(rec.nearest(batch[7:8], 24)[0], images[7])
    np.testing.assert_array_equal(rec.images(24, np.array([45]))[0], images[45])


def test_recorded_bad_input_names_file_and_parameter(toy, tmp_path):
    root = tmp_path / "rec"
    _record(toy, root, n=4, jsonl_from=4)
    (root / "cap_001.json").write_text(json.dumps({"face_color": "red", "width": 5.0}))
    with pytest.raises(UserError, match=r"cap_001\.json.*'width'.*out of range"):
        RecordedCreator(root)
    (root / "cap_001.json").write_text("{not json")
    with pytest.raises(UserError, match=r"cap_001\.json: not a readable JSON"):
        RecordedCreator(root)
    (root / "cap_001.json").unlink()
    (root / "cap_002.png").unlink()
    with pytest.raises(UserError, match=r"cap_002\.json: no image next to it"):
        RecordedCreator(root)
    (root / "space.json").unlink()
    with pytest.raises(UserError, match="space.json"):
        RecordedCreator(root)


def test_pipeline_trains_on_recorded_pairs_alone(toy, tmp_path):
    _, images = _record(toy, tmp_path / "rec")
    cfg = TrainConfig(
        creator=str(tmp_path / "rec"),
        n=10_000,
        size=16,
        emb_dim=16,
        emb_width=8,
        hidden=64,
        embedder_steps=60,
        imitator_steps=80,
        translator_steps=80,
        finetune_steps=20,
        n_search=8,
        search={"iters": 5},
    )
    train_f2p(tmp_path / "model", cfg)
    f2p = load_f2p(tmp_path / "model")
    assert (
        json.loads((tmp_path / "model" / "f2p.json").read_text())["stages"]["data"]["n"] == 60
    )  # pairs, not --n
    r = fit(f2p, [images[3]], "both", iters=5)
    f2p.space.validate(r.params, partial=False)
    recorded = RecordedCreator(tmp_path / "rec").images(16)
    assert any(np.array_equal(r.preview, im) for im in recorded)  # the preview is a recorded capture
    assert r.preview_kind == "nearest recorded capture"
    assert any("nearest recorded capture, not a render of the fitted parameters" in n for n in r.notes)
    assert r.fit_similarity is not None and -1 <= r.fit_similarity <= 1.0001  # the fit itself, reported apart
    # the recorded folder gone: previews fall back to the imitator's image output
    import shutil

    shutil.rmtree(tmp_path / "rec")
    f2p = load_f2p(tmp_path / "model")
    r = fit(f2p, [images[3]], "fast")
    assert r.preview.shape == (16, 16, 3) and any("imitator's image" in n for n in r.notes)
    assert r.preview_kind == "imitator image" and r.percentile is None and r.check_space == ""


def test_eval_on_a_recorded_creator_holds_out_by_default(toy, tmp_path):
    from charforge.f2p.evaluate import eval_targets, evaluate_f2p, markdown_table, recorded_split
    from charforge.f2p.pipeline import capture_name

    _record(toy, tmp_path / "rec")
    cfg = TrainConfig(
        creator=str(tmp_path / "rec"),
        size=16,
        holdout=0.2,
        emb_dim=16,
        emb_width=8,
        hidden=32,
        embedder_steps=20,
        imitator_steps=20,
        translator_steps=20,
        finetune_steps=5,
        n_search=4,
        search={"iters": 3},
    )
    train_f2p(tmp_path / "model", cfg)
    f2p = load_f2p(tmp_path / "model")
    held = set(f2p.metrics["data"]["heldout_captures"])
    assert len(held) == 12 and f2p.metrics["data"]["n_train"] == 48
    names = [capture_name(f2p.creator, i) for i in range(len(f2p.creator))]
    assert held <= set(names)
    assert sorted(held) != sorted(names[-12:])  # a random subset, not the last captures recorded

    idx, info = recorded_split(f2p)  # default: held out
    assert info["name"] == "heldout" and {names[i] for i in idx} == held
    train_idx, _ = recorded_split(f2p, "train")
    assert not held & {names[i] for i in train_idx} and len(train_idx) == 48
    images, _, info = eval_targets(f2p, 200, seed=1)
    assert len(images) == 12 and info["n_used"] == 12  # never more than the held-out captures

    res = evaluate_f2p(f2p, n=200, n_search=2, iters=2)
    assert res["split"]["name"] == "heldout" and res["n"] == 12
    assert res["preview"] == "nearest recorded capture"
    for r in res["modes"].values():  # the fit's own cosine apart from the nearest capture's
        assert "nearest_capture_cosine" in r and r["cosine_source"].startswith("imitator")
    md = markdown_table(res)
    assert "Split: heldout" in md and "nearest recorded capture" in md
    assert evaluate_f2p(f2p, n=5, n_search=1, iters=2, split="all")["split"]["name"] == "all"
    with pytest.raises(UserError, match="unknown split"):
        recorded_split(f2p, "test")


def test_the_documented_example_folder_loads(tmp_path):
    """docs/recorded_creator.md's example, written out as files, is a valid recorded creator."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "recorded_creator.md").read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", doc, flags=re.S)
    jsons = [b for kind, b in blocks if kind == "json"]
    space, cap1, cap2 = jsons[0], jsons[1], jsons[2]
    jsonl = next(b for kind, b in blocks if kind == "" and b.lstrip().startswith('{"image"'))
    root = tmp_path / "tavern_hero"
    (root / "shots").mkdir(parents=True)
    (root / "space.json").write_text(space)
    (root / "hero_001.json").write_text(cap1)
    (root / "hero_002.json").write_text(cap2)
    (root / "pairs.jsonl").write_text(jsonl)
    for name in ("hero_001.png", "hero_002.png", "shots/hero_003.png", "shots/hero_004.png"):
        Image.new("RGB", (40, 40), (200, 120, 90)).save(root / name)
    rec = RecordedCreator(root)
    assert len(rec) == 4 and rec.space.names[:4] == ["hair_style", "hair_color", "glasses", "glasses_frame"]
    d = rec.space.to_dicts(rec.batch)
    assert d[1]["glasses"] == "off" and d[1]["glasses_frame"] == "round" and d[3]["jaw_width"] == 62.5
