"""A user's first training run says what it did: untrained tags, fine-tune EMA, epochs, verified data,
stale temp files, honest loss plots and model cards (issues #19 and #21)."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from charforge.core.tags import make_girls_moe_schema
from charforge.data.packed import write_packed
from charforge.errors import UserError
from charforge.train.checkpoint import CheckpointStore
from charforge.train.loop import Trainer, TrainOptions, epoch_schedule, finetune_preset
from charforge.train.monitor import plot_loss_curves
from charforge.train.presets import resolve_preset

SCHEMA = make_girls_moe_schema()


def opts(**kw):
    return TrainOptions(device="cpu", tensorboard=False, show_progress=False, **kw)


@pytest.fixture(scope="module")
def hatless(tmp_path_factory):
    """40 images whose labels never include hat or glasses."""
    rng = np.random.default_rng(5)
    tags = SCHEMA.sample_training(40, rng).astype(np.uint8)
    tags[:, [SCHEMA.index("hat"), SCHEMA.index("glasses")]] = 0
    root = tmp_path_factory.mktemp("ds") / "hatless"
    write_packed(root, rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8), tags, SCHEMA)
    return root


def test_untrained_tags_are_named_at_training_and_in_the_card(hatless, tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(hatless, run, resolve_preset("tiny", {"steps": 2}), opts=opts()).run()
    err = capsys.readouterr().err
    assert "tags have no example in the training data" in err and "hat" in err and "glasses" in err
    cfg = json.loads((run / "config.json").read_text())
    assert {"hat", "glasses"} <= set(cfg["untrained_tags"])
    card = (run / "MODEL_CARD.md").read_text()
    assert "have no training example" in card and "glasses" in card
    assert (
        "check the tag precision above" not in card
    )  # the card lists no precision; it says how to measure it


def test_finetune_picks_an_ema_for_the_data_size(hatless, tmp_path, capsys):
    src = tmp_path / "src"
    Trainer(
        hatless,
        src,
        resolve_preset("tiny", {"steps": 2, "ema_half_life": 20000, "ema_rampup": 0}),
        opts=opts(),
    ).run()
    p = resolve_preset("tiny", {"steps": 3, "ema_half_life": 20000, "ema_rampup": 0})
    ft = tmp_path / "ft"
    Trainer(hatless, ft, p, opts=opts(init_from=str(src))).run()
    err = capsys.readouterr().err
    assert "fine-tune on 40 images: ema_half_life 20000 -> 500" in err
    saved = json.loads((ft / "config.json").read_text())["preset"]
    assert saved["ema_half_life"] == 500 and saved["ema_rampup"] == 0.05
    card = (ft / "MODEL_CARD.md").read_text()
    assert "## Base model" in card and "state-0000002.safetensors" in card and "sha256" in card
    assert "40 images" in card  # and the data it was fine-tuned on
    assert saved["augment"] == "translation,cutout"  # a small set: D gets differentiable augmentation
    # a field the user set on the command line wins
    kept = finetune_preset(p, 40, explicit=("ema_half_life", "augment"), say=False)
    assert kept.ema_half_life == 20000 and kept.ema_rampup == 0.05 and kept.augment == ""
    assert finetune_preset(p, 50_000, say=False).augment == ""  # a large set needs none


def test_epochs_set_steps_and_monitor_every_epoch(hatless, capsys):
    p = epoch_schedule(resolve_preset("tiny"), hatless, 3, explicit=())
    per_epoch = 5  # 40 images / batch 8
    assert p.steps == 3 * per_epoch and p.sample_every == p.ckpt_every == p.eval_every == per_epoch
    assert "3 epochs of 40 images = 15 steps" in capsys.readouterr().err
    q = epoch_schedule(resolve_preset("tiny", {"ckpt_every": 2}), hatless, 1, explicit=("ckpt_every",))
    assert q.ckpt_every == 2 and q.steps == per_epoch


def test_stale_checkpoint_temps_are_removed_on_resume(hatless, tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(hatless, run, resolve_preset("tiny", {"steps": 2}), opts=opts()).run()
    junk = run / "checkpoints" / ".state-0000003.safetensors.abc123.tmp"
    junk.write_bytes(b"half a checkpoint")
    Trainer(hatless, run, resolve_preset("tiny", {"steps": 3}), resume=True, opts=opts()).run()
    assert not junk.exists()
    assert "removed 1 unfinished checkpoint file" in capsys.readouterr().err
    assert CheckpointStore(run).latest() == 3


def test_train_refuses_corrupt_tags_before_training(tmp_path):
    rng = np.random.default_rng(0)
    tags = SCHEMA.sample_training(16, rng).astype(np.uint8)
    tags[3, 0] = 7
    root = tmp_path / "bad"
    write_packed(root, rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8), tags, SCHEMA)
    with pytest.raises(UserError, match="tags.npy"):
        Trainer(root, tmp_path / "run", resolve_preset("tiny", {"steps": 1}), opts=opts())
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "charforge",
            "train",
            "--data",
            str(root),
            "--out",
            str(tmp_path / "r2"),
            "--preset",
            "tiny",
            "--steps",
            "1",
            "--no-tensorboard",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "tags.npy" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r2" / "checkpoints").exists()


def test_flipped_image_bytes_fail_the_checksum(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "flip"
    write_packed(
        root,
        rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8),
        SCHEMA.sample_training(16, rng).astype(np.uint8),
        SCHEMA,
    )
    arr = np.load(root / "images.npy", mmap_mode="r+")
    arr[2, 3, 4, 0] ^= 0xFF
    arr.flush()
    del arr
    with pytest.raises(UserError, match="images.npy"):
        Trainer(root, tmp_path / "run", resolve_preset("tiny", {"steps": 1}), opts=opts())
    # --no-verify-checksums trains anyway (sizes and values are still checked)
    Trainer(root, tmp_path / "run2", resolve_preset("tiny", {"steps": 1}), opts=opts(verify_checksums=False))


def test_loss_plot_has_no_flat_tag_lines_and_no_legend_warning(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(
        "".join(
            json.dumps({"step": s, "loss_D": 1.0 / s, "loss_G": 2.0, "G_cls": 0.0, "D_cls": 0.0}) + "\n"
            for s in range(1, 6)
        )
    )
    out = tmp_path / "curves.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_loss_curves(log, out)
        (tmp_path / "empty.jsonl").write_text("")
        plot_loss_curves(tmp_path / "empty.jsonl", tmp_path / "empty.png")
    assert out.stat().st_size > 1000 and (tmp_path / "empty.png").exists()


def test_init_from_default_names_the_shipped_generator(tmp_path):
    from charforge.train.loop import source_preset

    p = source_preset("default")
    assert p.family == "acgan" and p.g_cond_norm and p.teacher == "" and p.keep_ckpts == 3
    with pytest.raises(UserError, match="no such file or run folder.*'default'"):
        source_preset(str(tmp_path / "nope"))


def test_finetune_from_a_generator_file_warms_up_a_fresh_discriminator(hatless, tmp_path, capsys):
    import torch

    src = tmp_path / "src"
    Trainer(hatless, src, resolve_preset("tiny", {"steps": 2}), opts=opts()).run()
    gen_file = CheckpointStore(src).generator_path(2)
    ft = tmp_path / "ft"
    tr = Trainer(hatless, ft, resolve_preset("tiny", {"steps": 12}), opts=opts(init_from=str(gen_file)))
    assert tr.p.d_warmup == 3  # max(100, 3 epochs) capped at a quarter of the 12 steps
    assert "d_warmup 0 -> 3" in capsys.readouterr().err
    g0 = {k: v.detach().clone() for k, v in tr.G.named_parameters()}  # weights (BN statistics may move)
    d0 = {k: v.detach().clone() for k, v in tr.D.named_parameters()}
    for step in range(3):
        tr.train_step(step)
    assert all(torch.equal(g0[k], v) for k, v in tr.G.named_parameters())  # G untouched while D warms up
    assert any(not torch.equal(d0[k], v) for k, v in tr.D.named_parameters())
    tr.train_step(3)
    assert any(not torch.equal(g0[k], v) for k, v in tr.G.named_parameters())
    summary = Trainer(
        hatless, tmp_path / "ft3", resolve_preset("tiny", {"steps": 5}), opts=opts(init_from=str(gen_file))
    ).run()  # the loop and its logs cope with D-only steps
    assert summary["step"] == 5
    # a state file carries its D: no warm-up
    state = Trainer(
        hatless, tmp_path / "ft2", resolve_preset("tiny", {"steps": 12}), opts=opts(init_from=str(src))
    )
    assert state.p.d_warmup == 0


def test_the_best_generator_is_kept_apart_from_the_last(hatless, tmp_path):
    from charforge.models.generator import read_generator
    from charforge.models.runs import best_generator_path

    run = tmp_path / "run"
    summary = Trainer(hatless, run, resolve_preset("tiny", {"steps": 6, "eval_every": 2}), opts=opts()).run()
    best = summary["best"]
    assert best is not None and best["step"] in (2, 4, 6) and best_generator_path(run).exists()
    gf = read_generator(best_generator_path(run))
    assert gf.meta["model_id"] == f"run@{best['step']}" and gf.meta["provenance"]["best_hist_dist"] >= 0
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if "hist_dist" in x]
    assert min(r["hist_dist"] for r in rows) == pytest.approx(best["hist_dist"], abs=1e-4)


def test_labels_come_from_the_data_when_it_lacks_tags(hatless, tmp_path, capsys):
    import numpy as np

    tr = Trainer(hatless, tmp_path / "run", resolve_preset("tiny", {"steps": 1}), opts=opts())
    assert tr.p.train_labels == "data" and "train_labels=data" in capsys.readouterr().err
    c = tr._labels(200, np.random.default_rng(0))
    assert c[:, SCHEMA.index("hat")].sum() == 0 and c[:, SCHEMA.index("glasses")].sum() == 0
    assert tr.fixed_c[:, SCHEMA.index("hat")].sum() == 0
    kept = Trainer(
        hatless,
        tmp_path / "run2",
        resolve_preset("tiny", {"steps": 1}),
        opts=opts(explicit=("train_labels",)),
    )
    assert kept.p.train_labels == "schema"  # the user's --set wins
    with pytest.raises(UserError, match="train_labels 'both'"):
        resolve_preset("tiny", {"train_labels": "both"})


def test_a_small_from_scratch_run_says_what_to_expect_and_the_better_recipe(hatless, tmp_path, capsys):
    Trainer(hatless, tmp_path / "scratch", resolve_preset("tiny", {"steps": 1}), opts=opts()).run()
    err = capsys.readouterr().err
    assert "training from scratch on 40 images" in err and "What to expect" in err
    assert f"--data {hatless} --init-from default" in err
    Trainer(
        hatless,
        tmp_path / "ft",
        resolve_preset("tiny", {"steps": 1}),
        opts=opts(init_from=str(tmp_path / "scratch")),
    ).run()
    assert "training from scratch" not in capsys.readouterr().err  # a fine-tune is the recipe: no note


def test_a_group_unknown_on_every_image_is_named_as_unknown_not_listed_as_absent(tmp_path, capsys):
    """Line-art avatars draw no irises, so eye colour is unknown on all 600: the warning listed "blue eyes, red
    eyes, brown eyes, ... orange eyes" among tags "with no example", as if the data showed no eye colour."""
    rng = np.random.default_rng(5)
    tags = SCHEMA.sample_training(40, rng).astype(np.uint8)
    eyes = SCHEMA.group_slices()[1]
    tags[:, eyes] = 0
    tags[:, SCHEMA.index("hat")] = 0
    root = tmp_path / "d"
    write_packed(root, rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8), tags, SCHEMA)
    Trainer(root, tmp_path / "run", resolve_preset("tiny", {"steps": 1}), opts=opts()).run()
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "have no example" in x]
    n_eyes, group = eyes.stop - eyes.start, SCHEMA.groups[1].name
    assert (
        f"{n_eyes + 1} of {len(SCHEMA)} tags have no example in the training data (hat; the {n_eyes} {group} tags"
        in line
    )
    assert f"the {n_eyes} {group} tags, unknown on every image)" in line, line
    assert SCHEMA.tags[eyes.start] not in line
