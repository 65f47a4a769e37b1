"""How G learns tags: the "degrade" augmentation in D, a frozen teacher tagger in G's objective, and training
labels that respect the pairs the data never shows together."""

import json

import numpy as np
import pytest
import torch

from charforge.core.tags import TagGroup, TagSchema, make_girls_moe_schema
from charforge.data.packed import write_packed
from charforge.errors import UserError
from charforge.models.augment import augment, degrade
from charforge.tagger.net import TaggerConfig, TaggerNet, save_tagger
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.losses import classification_loss
from charforge.train.monitor import read_log
from charforge.train.presets import resolve_preset


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data16(tmp_path_factory):
    schema = make_girls_moe_schema()
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    root = tmp_path_factory.mktemp("ds") / "d16"
    write_packed(root, imgs, schema.sample_training(24, rng).astype(np.uint8), schema)
    return root


def _tagger(path, schema, size=16):
    torch.manual_seed(0)
    net = TaggerNet(TaggerConfig(n_tags=len(schema), image_size=size, channels=4, feat_dim=8))
    return save_tagger(path, net, schema), net


def opts():
    return TrainOptions(device="cpu", show_progress=False, tensorboard=False)


def test_degrade_kind_is_seeded_differentiable_and_keeps_dtype():
    x = (torch.rand(6, 3, 16, 16) * 2 - 1).requires_grad_(True)
    a = augment(x, ("degrade",), torch.Generator().manual_seed(1))
    b = augment(x, ("degrade",), torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    a.sum().backward()
    assert x.grad.abs().sum() > 0
    softened = (a - x).abs().flatten(1).amax(dim=1) > 0
    assert (
        0 < int(softened.sum()) < 6
    )  # about half of the images are degraded, the rest pass through untouched
    y = degrade(x.detach().bfloat16(), torch.Generator().manual_seed(1), 1.0)
    assert y.dtype == torch.bfloat16 and y.abs().max() <= 1


def test_teacher_loss_trains_g_and_stays_frozen(data16, tmp_path):
    schema = make_girls_moe_schema()
    path, net = _tagger(tmp_path / "teacher.safetensors", schema)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    p = resolve_preset(
        "tiny", {"steps": 3, "teacher": str(path), "teacher_weight": 2.0, "augment": "degrade"}
    )
    tr = Trainer(data16, tmp_path / "run", p, opts=opts())
    tr.run()
    rows = read_log(tmp_path / "run" / "log.jsonl")
    assert len(rows) == 3 and all(np.isfinite(r["G_teacher"]) and r["G_teacher"] > 0 for r in rows)
    for k, v in tr.teacher.state_dict().items():  # frozen: neither optimiser nor BN statistics move it
        assert torch.equal(v, before[k]), k
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["preset"]["teacher"] == str(path) and len(cfg["teacher_sha256"]) == 64
    # fine-tuning from this model elsewhere must not need its teacher file
    from charforge.train.loop import source_preset

    assert source_preset(tmp_path / "run").teacher == ""
    assert source_preset(tmp_path / "run", {"teacher": str(path)}).teacher == str(path)
    path.unlink()
    Trainer(
        data16,
        tmp_path / "ft",
        source_preset(tmp_path / "run", {"steps": 1}),
        opts=TrainOptions(
            device="cpu", show_progress=False, tensorboard=False, init_from=str(tmp_path / "run")
        ),
    ).run()


def test_teacher_term_is_the_teachers_tag_loss_on_the_fakes(data16, tmp_path):
    schema = make_girls_moe_schema()
    path, _ = _tagger(tmp_path / "teacher.safetensors", schema)
    p = resolve_preset("tiny", {"teacher": str(path), "teacher_weight": 3.0, "bf16": False})
    tr = Trainer(data16, tmp_path / "run", p, opts=opts())
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, p.z_dim, generator=g)
    c = torch.from_numpy(schema.sample_training(4, np.random.default_rng(0)))
    logs = tr.loss.accumulate_gradients("G", None, None, z, c, torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = classification_loss(tr.teacher(tr.G(z, c)), c, schema, "group-ce")
    assert float(logs["G_teacher"]) == pytest.approx(float(want), rel=1e-5)
    assert float(logs["loss_G"]) == pytest.approx(
        tr.loss.adv_weight * float(logs["G_adv"]) + p.cls_weight_g * float(logs["G_cls"]) + 3.0 * float(want),
        rel=1e-5,
    )
    with_teacher = [q.grad.clone() for q in tr.G.parameters()]
    tr.G.zero_grad()
    tr.loss.teacher = None
    tr.loss.accumulate_gradients("G", None, None, z, c, torch.Generator().manual_seed(1))
    assert any(not torch.allclose(a, q.grad) for a, q in zip(with_teacher, tr.G.parameters()))


def test_teacher_input_is_resized_to_the_teachers_size(data16, tmp_path):
    schema = make_girls_moe_schema()
    path, _ = _tagger(tmp_path / "t32.safetensors", schema, size=32)  # teacher at 32 px, G draws 16 px
    p = resolve_preset("tiny", {"steps": 1, "teacher": str(path)})
    Trainer(data16, tmp_path / "run", p, opts=opts()).run()
    assert np.isfinite(read_log(tmp_path / "run" / "log.jsonl")[0]["G_teacher"])


def test_teacher_errors_name_the_field(data16, tmp_path):
    p = resolve_preset("tiny", {"teacher": str(tmp_path / "none.safetensors")})
    with pytest.raises(UserError, match="teacher: .*none.safetensors.*no such tagger") as e:
        Trainer(data16, tmp_path / "run1", p, opts=opts())
    assert e.value.field == "teacher"
    small = TagSchema(groups=[TagGroup("hair color", ("red hair", "blue hair"))], independent=["hat"])
    other, _ = _tagger(tmp_path / "other.safetensors", small)
    p = resolve_preset("tiny", {"teacher": str(other)})
    with pytest.raises(UserError, match="trained on other tags.*charforge tagger train"):
        Trainer(data16, tmp_path / "run2", p, opts=opts())


def test_training_labels_skip_pairs_the_data_never_shows(tmp_path):
    schema = make_girls_moe_schema()
    rng = np.random.default_rng(0)
    n = 240
    tags = schema.sample_training(n, rng).astype(np.uint8)
    styles = [schema.index(t) for t in ("twintails", "drill hair", "ponytail")]
    tags[:, styles] = 0
    tags[np.arange(n), np.array(styles)[rng.integers(0, 3, n)]] = (
        1  # one hairstyle per image, like the creator
    )
    root = tmp_path / "d"
    write_packed(root, rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), tags, schema)
    tr = Trainer(root, tmp_path / "run", resolve_preset("tiny", {"steps": 2}), opts=opts())
    assert len(tr.learned_conflicts) == 3 and len(tr.schema.conflicts) == 4
    _, c = tr._latents(np.random.default_rng(1), torch.Generator().manual_seed(1))
    labels = np.concatenate([c.numpy(), tr.fixed_c.numpy()])
    assert labels[:, styles].sum(axis=1).max() == 1
    tr.run()
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert sorted(map(sorted, cfg["learned_conflicts"])) == [
        ["drill hair", "ponytail"],
        ["drill hair", "twintails"],
        ["ponytail", "twintails"],
    ]
    from charforge.sampling import load_generator

    saved = load_generator(tmp_path / "run")
    assert len(saved.schema.conflicts) == 4  # generate / studio / npc sample free tags the same way
    off = resolve_preset("tiny", {"steps": 1, "learn_conflicts": False})
    assert Trainer(root, tmp_path / "run_off", off, opts=opts()).schema.conflicts == schema.conflicts
