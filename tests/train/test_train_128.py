"""acgan-128-cpu: the paper's resolution at tiny widths, and growing a 64 px model by one upscaler stage."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from charforge.core.tags import make_girls_moe_schema
from charforge.data.packed import write_packed
from charforge.train.loop import Trainer, TrainOptions
from charforge.train.presets import PRESETS, resolve_preset

SCHEMA = make_girls_moe_schema()
TINY = {"g_width": 4, "g_blocks": 1, "d_width": 4, "d_max_width": 8, "batch": 2, "steps": 2, "z_dim": 8}
TINY |= {"ckpt_every": 2, "sample_every": 100, "eval_every": 100, "log_every": 1}


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _data(root, size, n=6):
    rng = np.random.default_rng(size)
    write_packed(
        root,
        rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        SCHEMA.sample_training(n, rng).astype(np.uint8),
        SCHEMA,
    )
    return root


def opts(**kw):
    return TrainOptions(device="cpu", tensorboard=False, show_progress=False, **kw)


def test_the_128_preset_keeps_the_64_px_dense_grid():
    p64, p128 = PRESETS["acgan-64-cpu"], PRESETS["acgan-128-cpu"]
    assert (
        p128.resolution == 128
        and p128.resolution // 2**p128.g_upscalers == p64.resolution // 2**p64.g_upscalers
    )


def test_128_trains_and_grows_from_a_64_px_model(tmp_path):
    d64, d128 = _data(tmp_path / "d64", 64), _data(tmp_path / "d128", 128)
    small = resolve_preset("acgan-128-cpu", TINY | {"resolution": 64, "g_upscalers": 2, "bf16": False})
    Trainer(d64, tmp_path / "r64", small, opts=opts()).run()
    src = tmp_path / "r64" / "checkpoints" / "generator-0000002.safetensors"
    big = resolve_preset("acgan-128-cpu", TINY | {"bf16": False})
    tr = Trainer(d128, tmp_path / "r128", big, opts=opts(init_from=str(src)))
    new = tr.init_from["new_tensors"]
    assert new and all(k.split(".")[1:3] == ["up", "2"] for k in new)  # only the added stage starts fresh
    s64 = load_file(str(src))
    assert torch.equal(tr.G.state_dict()["dense.weight"], s64["dense.weight"])
    assert tr.run()["step"] == 2
    img = tr.ema_images(
        torch.randn(1, 8), torch.from_numpy(SCHEMA.sample_training(1, np.random.default_rng(0)))
    )
    assert img.shape == (1, 128, 128, 3)
