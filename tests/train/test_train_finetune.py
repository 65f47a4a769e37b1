"""Fine-tuning with --init-from, and the projection discriminator it is used to add."""

import json

import numpy as np
import pytest
import torch

from charforge.core.tags import make_girls_moe_schema
from charforge.data.packed import write_packed
from charforge.errors import UserError
from charforge.train.checkpoint import CheckpointStore
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.presets import build_discriminator, resolve_preset

SCHEMA = make_girls_moe_schema()


@pytest.fixture(scope="module")
def data16(tmp_path_factory):
    rng = np.random.default_rng(2)
    root = tmp_path_factory.mktemp("ds") / "d16"
    write_packed(
        root,
        rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8),
        SCHEMA.sample_training(24, rng).astype(np.uint8),
        SCHEMA,
    )
    return root


def opts(**kw):
    return TrainOptions(device="cpu", tensorboard=False, show_progress=False, **kw)


@pytest.fixture(scope="module")
def source_run(data16, tmp_path_factory):
    run = tmp_path_factory.mktemp("src") / "run"
    Trainer(data16, run, resolve_preset("tiny", {"steps": 3}), opts=opts()).run()
    return run


def test_projection_term_depends_on_the_tags():
    torch.manual_seed(0)
    D = build_discriminator(resolve_preset("tiny", {"d_projection": True}), len(SCHEMA))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c1 = torch.from_numpy(SCHEMA.sample_training(2, np.random.default_rng(0)))
    c2 = torch.from_numpy(SCHEMA.sample_training(2, np.random.default_rng(1)))
    assert torch.equal(D(x, c1)[0], D(x)[0])  # zero-initialised: a trained D gains it without changing
    torch.nn.init.normal_(D.proj.weight)
    assert not torch.allclose(D(x, c1)[0], D(x, c2)[0])
    with pytest.raises(UserError, match="d_projection"):
        build_discriminator(resolve_preset("tiny-dcgan", {"d_projection": True}), len(SCHEMA))


def test_init_from_copies_weights_and_adds_new_modules(data16, source_run, tmp_path):
    src = CheckpointStore(source_run)
    state = src.state_path(src.latest())
    p = resolve_preset("tiny", {"steps": 2, "d_projection": True})
    tr = Trainer(data16, tmp_path / "ft", p, opts=opts(init_from=str(source_run)))
    from charforge.models.io import load_model

    tensors, _ = load_model(state)
    for name, t in tr.G.state_dict().items():
        assert torch.equal(t, tensors[f"G.{name}"]), name
    assert torch.equal(tr.D.adv.weight, tensors["D.adv.weight"])
    assert torch.count_nonzero(tr.D.proj.weight) == 0
    rec = json.loads((tmp_path / "ft" / "config.json").read_text())["init_from"]
    assert rec["path"] == str(state) and rec["step"] == 3 and rec["new_tensors"] == ["D.proj.weight"]
    summary = tr.run()
    assert summary["step"] == 2 and torch.count_nonzero(tr.D.proj.weight) > 0  # the new term trains


def test_init_from_a_generator_file_leaves_d_fresh(data16, source_run, tmp_path):
    gen = CheckpointStore(source_run).generator_path(3)
    tr = Trainer(data16, tmp_path / "ft", resolve_preset("tiny", {"steps": 1}), opts=opts(init_from=str(gen)))
    from charforge.models.io import load_model

    tensors, _ = load_model(gen)
    assert all(torch.equal(t, tensors[n]) for n, t in tr.ema.net.state_dict().items())


def test_init_from_mismatch_names_the_tensor(data16, source_run, tmp_path):
    with pytest.raises(
        UserError, match=r"G\.\S+ has shape \(8, 8, 3, 3\), this preset needs \(12, 12, 3, 3\)"
    ):
        Trainer(
            data16,
            tmp_path / "bad",
            resolve_preset("tiny", {"g_width": 12}),
            opts=opts(init_from=str(source_run)),
        )
    with pytest.raises(UserError, match="no checkpoint"):
        Trainer(data16, tmp_path / "bad2", resolve_preset("tiny"), opts=opts(init_from=str(tmp_path)))


def test_cli_rejects_resume_with_init_from(data16, source_run, tmp_path):
    from tests.f2p.f2p_helpers import run_cli

    code, out = run_cli(
        [
            "train",
            "--data",
            str(data16),
            "--out",
            str(tmp_path / "x"),
            "--preset",
            "tiny",
            "--resume",
            "--init-from",
            str(source_run),
        ]
    )
    assert code == 2 and "pass only one" in out and "Traceback" not in out


def test_cli_init_from_takes_the_source_architecture(data16, tmp_path):
    """Without --preset, --init-from fine-tunes the architecture stored in the source file."""
    from tests.f2p.f2p_helpers import run_cli

    src = tmp_path / "src"
    Trainer(
        data16,
        src,
        resolve_preset("tiny", {"steps": 2, "g_cond_norm": True, "d_projection": True}),
        opts=opts(),
    ).run()
    gen = CheckpointStore(src).generator_path(2)
    code, out = run_cli(
        [
            "train",
            "--data",
            str(data16),
            "--out",
            str(tmp_path / "ft"),
            "--init-from",
            str(gen),
            "--steps",
            "1",
            "--no-tensorboard",
        ]
    )
    assert code == 0, out
    cfg = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert cfg["preset"]["name"] == "tiny" and cfg["preset"]["g_cond_norm"] and cfg["preset"]["steps"] == 1
    assert cfg["init_from"]["path"] == str(gen)


def test_resume_with_changed_settings_updates_config(data16, tmp_path):
    run = tmp_path / "run"
    Trainer(data16, run, resolve_preset("tiny", {"steps": 2}), opts=opts()).run()
    p = resolve_preset("tiny", {"steps": 3, "ema_half_life": 777.0})
    Trainer(
        data16, run, p, resume=True, opts=opts(command="charforge train --resume --set ema_half_life=777")
    ).run()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["preset"]["ema_half_life"] == 777.0 and cfg["preset"]["steps"] == 3
    (entry,) = cfg["resumed"]
    assert (
        entry["step"] == 2
        and entry["changed"]["ema_half_life"][1] == 777.0
        and "--resume" in entry["command"]
    )


def test_init_from_onto_a_grown_schema_maps_tags_by_name(data16, source_run, tmp_path):
    """Fine-tuning the 34-tag model on a multi-style dataset (34 tags + the style group): the shared tags
    keep their weights by name, the style tags start with no effect, so G starts as the source."""
    from charforge.creators.builtin import styles_schema
    from charforge.models.io import load_model

    big = styles_schema()
    rng = np.random.default_rng(5)
    root = tmp_path / "styled"
    write_packed(
        root,
        rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8),
        big.sample_training(24, rng).astype(np.uint8),
        big,
    )
    gen = CheckpointStore(source_run).generator_path(3)
    tr = Trainer(root, tmp_path / "ft", resolve_preset("tiny", {"steps": 1}), opts=opts(init_from=str(gen)))
    rec = json.loads((tmp_path / "ft" / "config.json").read_text())["init_from"]
    assert rec["source_tags"] == 34 and "G.dense.weight" in rec["remapped_tensors"]

    from charforge.models.generator import read_generator

    old = read_generator(gen).build().eval()
    tensors, _ = load_model(gen)
    new = tr.ema.net.eval()
    c_old = torch.from_numpy(SCHEMA.sample_training(4, np.random.default_rng(1)))
    c_new = torch.zeros(4, len(big))
    mine, theirs = big.column_map(SCHEMA)
    c_new[:, mine] = c_old[:, theirs]
    c_new[:, big.index("pixel art")] = 1.0  # a style tag: no effect yet
    z = torch.randn(4, old.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(old(z, c_old), new(z, c_new), atol=1e-6)
    w = new.dense.weight
    assert torch.count_nonzero(w[:, old.z_dim + big.index("pixel art")]) == 0
    assert torch.equal(
        w[:, old.z_dim + big.index("smile")], tensors["dense.weight"][:, old.z_dim + SCHEMA.index("smile")]
    )
    assert tr.run()["step"] == 1  # and it trains


def test_init_from_refuses_renamed_tags_at_the_same_count(data16, source_run, tmp_path):
    renamed = make_girls_moe_schema().to_dict()
    renamed["independent"][0] = "very long hair"
    from charforge.core.tags import TagSchema

    schema = TagSchema.from_dict({**renamed, "conflicts": []})
    rng = np.random.default_rng(5)
    write_packed(
        tmp_path / "r",
        rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8),
        schema.sample_training(24, rng).astype(np.uint8),
        schema,
    )
    with pytest.raises(UserError, match="renamed"):
        Trainer(tmp_path / "r", tmp_path / "ft", resolve_preset("tiny"), opts=opts(init_from=str(source_run)))


def test_finetune_from_a_state_drops_the_sources_d_warmup(capsys):
    """A state file brings its trained D along, so the source's own D warm-up (given it for a fresh D) must not
    come along too: a fine-tune of the multi-style run would otherwise spend 2,250 of ~2,700 steps on D alone."""
    from charforge.train.loop import finetune_preset

    p = resolve_preset("tiny", {"d_warmup": 2250, "steps": 3000})
    assert finetune_preset(p, 300, fresh_d=False).d_warmup == 0
    assert "d_warmup 2250 -> 0" in capsys.readouterr().err
    assert finetune_preset(p, 300, explicit=("d_warmup",), fresh_d=False).d_warmup == 2250
    assert (
        finetune_preset(resolve_preset("tiny", {"steps": 3000}), 300, fresh_d=True).d_warmup > 0
    )  # 3 epochs
