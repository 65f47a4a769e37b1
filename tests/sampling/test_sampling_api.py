"""sampling.py and the generate / interpolate / npc commands, on a tiny trained generator."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from charforge import sampling
from charforge.cli import main
from charforge.core.tags import make_girls_moe_schema
from charforge.data.packed import write_packed
from charforge.errors import UserError
from charforge.provenance import read_png_metadata
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.presets import resolve_preset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 16 px tiny run whose data never shows 'hat' (so its empirical frequency is 0)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    schema = make_girls_moe_schema()
    rng = np.random.default_rng(0)
    tags = schema.sample_training(32, rng)
    tags[:, schema.index("hat")] = 0
    root = tmp_path_factory.mktemp("samp")
    write_packed(
        root / "d", rng.integers(0, 256, (32, 16, 16, 3), dtype=np.uint8), tags.astype(np.uint8), schema
    )
    p = resolve_preset("tiny", {"steps": 3, "ckpt_every": 3})
    Trainer(
        root / "d", root / "run", p, opts=TrainOptions(device="cpu", show_progress=False, tensorboard=False)
    ).run()
    torch.set_num_threads(n)
    return root / "run"


def test_load_generator_from_run_file_and_names(run, tmp_path, monkeypatch):
    b = sampling.load_generator(run)
    assert b.image_size == 16 and b.z_dim == 16 and len(b.schema) == 34 and b.freqs.shape == (34,)
    assert not b.net.training and b.model_id == "run@3" and len(b.sha256) == 64
    assert b.path.name == "generator-0000003.safetensors"
    assert sampling.load_generator(b.path).sha256 == b.sha256
    monkeypatch.setattr(sampling, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(UserError, match="no shipped default"):
        sampling.load_generator(None)
    with pytest.raises(UserError, match="Known names"):
        sampling.load_generator("nonexistent-model")
    shutil.copy(b.path, tmp_path / "generator_default.safetensors")
    assert set(sampling.available_generators()) == {"default"}
    assert sampling.load_generator(None).sha256 == b.sha256


def test_seed_reproduces_a_face_regardless_of_batch(run):
    b = sampling.load_generator(run)
    tags = sampling.sample_tags(b, None, 5, np.random.default_rng(1))
    full = sampling.generate(b, tags, seeds=[10, 11, 12, 13, 14], batch_size=2)
    assert full.shape == (5, 16, 16, 3) and full.dtype == np.uint8
    one = sampling.generate(b, tags[3:4], seeds=[13])
    assert np.array_equal(full[3], one[0])
    assert not np.array_equal(full[0], full[1])
    with pytest.raises(UserError, match=r"expected shape \(N, 34\)"):
        sampling.generate(b, np.zeros((2, 5)))


def test_sample_tags_fixes_constraints_and_follows_data(run):
    b = sampling.load_generator(run)
    c = b.schema.parse("blonde hair, smile, -ribbon")
    m = sampling.sample_tags(b, c, 200, np.random.default_rng(0))
    s = b.schema
    assert (m[:, s.index("blonde hair")] == 1).all() and (m[:, s.index("smile")] == 1).all()
    assert (m[:, s.index("ribbon")] == 0).all() and (m[:, s.index("hat")] == 0).all()  # hat: frequency 0
    assert (m[:, s.group_slices()[1]].sum(axis=1) == 1).all()  # eye colour drawn from the data


def test_interpolate_endpoints_and_npc_uniqueness(run):
    b = sampling.load_generator(run)
    ta = sampling.sample_tags_for_seeds(b, b.schema.parse("red hair"), [1])[0]
    tb = sampling.sample_tags_for_seeds(b, b.schema.parse("blue hair"), [2])[0]
    frames = sampling.interpolate(b, (1, ta), (2, tb), 5)
    assert frames.shape == (5, 16, 16, 3)
    ends = sampling.generate(b, np.stack([ta, tb]), seeds=[1, 2])
    assert (
        np.abs(frames[0].astype(int) - ends[0]).max() <= 1
        and np.abs(frames[-1].astype(int) - ends[1]).max() <= 1
    )
    recs = sampling.npc_batch(b, 12, seed=3, min_distance=0.0)
    assert len({r.seed for r in recs}) == 12
    with pytest.raises(UserError, match="min-distance"):
        sampling.npc_batch(b, 5, seed=3, min_distance=10.0, max_tries=40)


def _cli(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_cli_errors_and_metadata(run, tmp_path, capsys):
    code, _, err = _cli(capsys, "generate", "-m", str(run), "--tags", "blond hair")
    assert code == 2 and "unknown tag 'blond hair'" in err and "blonde hair, brown hair" in err
    code, _, err = _cli(capsys, "generate", "-m", str(run), "--tags", "blonde hair, red hair")
    assert code == 2 and "contradicting tags" in err
    code, _, err = _cli(
        capsys,
        "generate",
        "-m",
        str(run),
        "--tags",
        "blonde hair, blue eyes, smile",
        "--n",
        "4",
        "--seed",
        "7",
        "-o",
        str(tmp_path / "g.png"),
        "--each",
        str(tmp_path / "each"),
    )
    assert code == 0, err
    assert Image.open(tmp_path / "g.png").size == (32, 32)
    meta = read_png_metadata(tmp_path / "each" / "0001_seed8.png")
    b = sampling.load_generator(run)
    assert meta["seed"] == 8 and meta["model_id"] == "run@3" and meta["model_sha256"] == b.sha256
    assert {"blonde hair", "blue eyes", "smile"} <= set(meta["tags"]) and meta["software"].startswith(
        "charforge"
    )
    code, _, err = _cli(
        capsys,
        "generate",
        "-m",
        str(run),
        "--n",
        "3",
        "--seed",
        "5",
        "--fixed-noise",
        "-o",
        str(tmp_path / "f.png"),
    )
    grid = read_png_metadata(tmp_path / "f.png")
    assert code == 0 and grid["seeds"] == [5, 5, 5] and grid["fixed_noise"] is True


def test_interpolate_and_npc_cli(run, tmp_path, capsys):
    code, _, err = _cli(
        capsys,
        "interpolate",
        "-m",
        str(run),
        "--seed-a",
        "1",
        "--seed-b",
        "2",
        "--tags-a",
        "red hair",
        "--tags-b",
        "blue hair",
        "--frames",
        "4",
        "-o",
        str(tmp_path / "i"),
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "i").glob("frame_*.png")) == [
        f"frame_{i:03d}.png" for i in range(4)
    ]
    with Image.open(tmp_path / "i" / "interpolation.gif") as gif:
        assert gif.n_frames >= 2  # PIL merges identical consecutive frames, so not exactly 2 * frames
    code, _, err = _cli(
        capsys,
        "npc",
        "-m",
        str(run),
        "--n",
        "6",
        "--tags",
        "smile",
        "--min-distance",
        "0",
        "-o",
        str(tmp_path / "npc"),
    )
    assert code == 0, err
    man = json.loads((tmp_path / "npc" / "manifest.json").read_text())
    assert len(man["items"]) == 6 and len({i["seed"] for i in man["items"]}) == 6
    assert all("smile" in i["tags"] and (tmp_path / "npc" / i["file"]).is_file() for i in man["items"])


def test_truncation_scales_noise_and_is_recorded(run, tmp_path, capsys):
    b = sampling.load_generator(run)
    z1, z6 = sampling.noise_for_seeds([3, 4], 16), sampling.noise_for_seeds([3, 4], 16, 0.6)
    assert torch.allclose(z6, z1 * 0.6)
    tags = sampling.sample_tags(b, None, 2, np.random.default_rng(0))
    assert np.array_equal(
        sampling.generate(b, tags, seeds=[3, 4], truncation=0.6), sampling.generate(b, tags, z=z6)
    )
    assert not np.array_equal(sampling.generate(b, tags, seeds=[3, 4]), sampling.generate(b, tags, z=z6))
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(UserError, match="truncation"):
            sampling.noise_for_seeds([1], 16, bad)
    code, _, err = _cli(
        capsys, "generate", "-m", str(run), "--n", "2", "--truncation", "0.7", "-o", str(tmp_path / "t.png")
    )
    assert code == 0, err
    assert read_png_metadata(tmp_path / "t.png")["truncation"] == 0.7
    code, _, err = _cli(
        capsys, "generate", "-m", str(run), "--truncation", "2", "-o", str(tmp_path / "u.png")
    )
    assert code == 2 and "truncation=2.0: must be in (0, 1]" in err
    code, _, err = _cli(
        capsys,
        "npc",
        "-m",
        str(run),
        "--n",
        "3",
        "--truncation",
        "0.5",
        "--min-distance",
        "0",
        "-o",
        str(tmp_path / "npcs"),
    )
    assert code == 0, err
    assert json.loads((tmp_path / "npcs" / "manifest.json").read_text())["truncation"] == 0.5


def test_eval_records_truncation(run, tmp_path):
    from charforge.metrics.report import evaluate_model

    rep = evaluate_model(
        run, run.parent / "d", tmp_path / "rep", metrics=["diversity"], truncation=0.5, n=8, sample_n=8
    )
    assert rep["model"]["truncation"] == 0.5
    assert "noise truncation 0.5" in (tmp_path / "rep" / "report.md").read_text()
    with pytest.raises(UserError, match="truncation"):
        evaluate_model(run, run.parent / "d", tmp_path / "rep2", metrics=["diversity"], truncation=0)


def test_a_run_folder_says_when_its_best_checkpoint_is_another_step(run, tmp_path, capsys):
    """`--model runs/NAME` is the run's latest checkpoint. Training ends with "best: step B ... use the one that
    looks right", and on a lorelei walk the best (step 1083, domain FID x7.6) beat the latest (1337, x10.1), yet
    generate, npc and eval took the latest without a word. Now they say which step they use and where the best
    is; nothing when the best is the latest."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    ck = copy / "checkpoints"
    src = ck / "generator-0000003.safetensors"
    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    for step in (1, 3):
        save_file(
            load_file(str(src)),
            str(ck / "generator-best.safetensors"),
            metadata={**meta, "provenance": json.dumps({**json.loads(meta["provenance"]), "step": step})},
        )
        capsys.readouterr()
        assert sampling.load_generator(copy).model_id == "run@3"
        err = capsys.readouterr().err
        if step == 1:
            assert (
                "uses the run's latest checkpoint (step 3); its best by colour distance is step 1" in err
            ), err
            assert str(ck / "generator-best.safetensors") in err
        else:
            assert "best by colour distance" not in err, err
