"""Generator files: the format-1 shipped weights still load with the same pixels, format 2 writes are
canonical, and hostile metadata is refused with a message before anything is built."""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from charforge import sampling
from charforge.core.tags import TagGroup, TagSchema, make_girls_moe_schema
from charforge.errors import UserError
from charforge.models.config import ACGANConfig
from charforge.models.families import build_network
from charforge.models.generator import read_generator, save_generator
from charforge.models.io import read_metadata, save_model

SCHEMA = make_girls_moe_schema()
T = len(SCHEMA)
TINY = ACGANConfig(resolution=16, z_dim=16, g_width=8, g_blocks=1, g_upscalers=2, g_final_kernel=3)


def test_shipped_format1_generator_gives_the_pinned_pixels():
    """Pinned before the family seam landed (same seeds, tags and truncation): behaviour did not change."""
    bundle = sampling.load_generator(device="cpu")
    assert read_generator(bundle.path).format == 1
    imgs, _, _ = sampling.characters_for_request(bundle, "blonde hair, blue eyes, smile", 4, 7)
    imgs2, _, _ = sampling.characters_for_request(bundle, "red hair, glasses", 3, 100, truncation=0.7)
    # pinned exactly before the family seam landed (an AVX-512 BF16 machine) and still exact on an AMX one
    assert imgs[0, 20, 28:32].tolist() == [[203, 181, 151], [219, 194, 183], [239, 213, 211], [236, 200, 203]]
    # every pixel, through 8x8 block means: a whole-array sha256 was pinned here, but CPUs differ in the last
    # rounding of a few pixels (one level of 255, moving a block mean by 1/64); a real change moves them by far more
    ref = np.load(Path(__file__).parent / "data" / "format1_blocks.npz")
    for got, want in ((imgs, ref["a"]), (imgs2, ref["b"])):
        blocks = got.reshape(len(got), 8, 8, 8, 8, 3).mean((2, 4))
        assert np.abs(blocks - want).max() < 0.25
    # the format-1 file records a training preset (with a teacher path); the bundle exposes the architecture only
    assert "teacher" in read_metadata(bundle.path)["charforge_config"]
    assert "teacher" not in bundle.config and bundle.config["family"] == "acgan"
    assert bundle.family == "acgan/acgan-64-cpu"


def test_device_cuda_is_refused_clearly_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA (the gpu-marked test covers it)")
    with pytest.raises(UserError, match="--device cuda: no CUDA device is available"):
        sampling.load_generator(device="cuda")
    with pytest.raises(UserError, match="valid devices are auto, cpu, cuda, mps"):
        sampling.load_generator(device="tpu")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "charforge",
            "generate",
            "--device",
            "cuda",
            "-o",
            str(tmp_path / "g.png"),
            "--n",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "no CUDA device is available" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.gpu
def test_device_cuda_generates_the_same_characters():
    bundle_cpu = sampling.load_generator(device="cpu")
    cpu, _, _ = sampling.characters_for_request(bundle_cpu, "pink hair", 4, 3)
    bundle = sampling.load_generator(device="cuda")
    assert bundle.device.startswith("cuda")
    gpu, _, _ = sampling.characters_for_request(bundle, "pink hair", 4, 3)
    assert np.abs(gpu.astype(int) - cpu.astype(int)).max() <= 3  # float rounding differs, not the character


def _write(tmp_path, name="g.safetensors"):
    torch.manual_seed(0)
    net = build_network(TINY, T)
    return save_generator(
        tmp_path / name,
        net.state_dict(),
        TINY,
        SCHEMA,
        np.full(T, 0.1),
        model_id="t",
        provenance={"preset": "tiny"},
    )


def test_identical_weights_give_identical_files_across_processes(tmp_path):
    code = (
        "import sys, torch, numpy as np\n"
        "from charforge.core.tags import make_girls_moe_schema\n"
        "from charforge.models.config import ACGANConfig\n"
        "from charforge.models.families import build_network\n"
        "from charforge.models.generator import save_generator\n"
        "cfg = ACGANConfig(resolution=16, z_dim=16, g_width=8, g_blocks=1, g_upscalers=2, g_final_kernel=3)\n"
        "s = make_girls_moe_schema(); torch.manual_seed(0); net = build_network(cfg, len(s))\n"
        "save_generator(sys.argv[1], net.state_dict(), cfg, s, np.full(len(s), 0.1), model_id='t',\n"
        "               provenance={'a': 1, 'b': 2, 'c': 3, 'preset': 'tiny'})\n"
    )
    sums = set()
    for i in range(3):  # PYTHONHASHSEED differs per process: the old header order did too
        out = tmp_path / f"m{i}.safetensors"
        subprocess.run(
            [sys.executable, "-c", code, str(out)],
            check=True,
            env={"PYTHONHASHSEED": str(i), "PATH": "/usr/bin:/bin"},
        )
        sums.add(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(sums) == 1
    gf = read_generator(tmp_path / "m0.safetensors")
    assert gf.meta["provenance"]["preset"] == "tiny"


def _hostile(tmp_path, *, config=None, schema=None, freqs=None):
    torch.manual_seed(0)
    net = build_network(TINY, T)
    cfg = TINY.to_dict() if config is None else config
    extra = {
        "charforge_format": "2",
        "tag_schema": SCHEMA.to_dict() if schema is None else schema,
        "tag_freqs": [0.1] * T if freqs is None else freqs,
        "model_id": "bad",
    }
    return save_model(
        tmp_path / "bad.safetensors", net.state_dict(), kind="generator", config=cfg, extra=extra
    )


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"config": ["acgan"]}, "charforge_config is not a JSON object"),
        ({"config": {**TINY.to_dict(), "g_width": 60000}}, "g_width=60000: must be between"),
        ({"config": {**TINY.to_dict(), "teacher": "x"}}, "unknown fields teacher"),
        ({"freqs": [0.1] * (T - 1)}, f"tag_freqs has {T - 1} values for {T} tags"),
        ({"freqs": [float("nan")] * T}, "finite frequencies"),
        ({"freqs": "0.1"}, "list of numbers"),
        ({"schema": "hair"}, "tag_schema is missing or not a JSON object"),
    ],
)
def test_hostile_generator_metadata_is_a_clear_error(tmp_path, kw, match):
    path = _hostile(tmp_path, **kw)
    with pytest.raises(UserError, match=match) as e:
        sampling.load_generator(path)
    assert str(path) in str(e.value)


def test_config_that_is_not_json_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "raw.safetensors"
    save_file(
        {"x": torch.zeros(1)},
        str(path),
        metadata={"charforge_kind": "generator", "charforge_config": "{oops"},
    )
    with pytest.raises(UserError, match="charforge_config is not a JSON object"):
        read_generator(path)


def test_a_100k_tag_schema_is_refused_fast(tmp_path):
    big = TagSchema([TagGroup("g", tuple(f"t{i}" for i in range(100_000)))], []).to_dict()
    path = _hostile(tmp_path, schema=big)
    t0 = time.perf_counter()
    with pytest.raises(UserError, match="100000 tags, over the limit"):
        read_generator(path)
    assert time.perf_counter() - t0 < 5


def test_unknown_format_says_to_upgrade(tmp_path):
    path = _write(tmp_path)
    tensors = {"x": torch.zeros(1)}
    meta = read_metadata(path)
    save_model(
        path,
        tensors,
        kind="generator",
        config=meta["charforge_config"],
        extra={"charforge_format": "9", "tag_schema": meta["tag_schema"], "tag_freqs": meta["tag_freqs"]},
    )
    with pytest.raises(UserError, match="format '9'.*Upgrade charforge"):
        read_generator(path)
    assert json.loads(json.dumps(meta["provenance"])) == {"preset": "tiny"}


def test_a_full_disk_while_saving_a_model_is_a_clear_message(tmp_path, monkeypatch):
    """Training checkpoints go through save_model: ENOSPC becomes a UserError naming the folder and sizes."""
    import errno
    from pathlib import Path

    real = Path.write_bytes

    def full(self, data):
        if self.name.endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(
        UserError, match=r"could not write g\.safetensors \(No space left on device\); it needs"
    ) as e:
        _write(tmp_path)
    assert str(tmp_path) in str(e.value) and "MB are free there" in str(e.value)
    assert not any(tmp_path.iterdir())  # no temp file left behind
