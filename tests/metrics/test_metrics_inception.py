"""The FID Inception-v3 feature space: the network, its weights files (.safetensors and .pth), the refusals,
and `charforge eval --inception-weights` end to end. Random weights stand in for the real file (never
downloaded); they are saved in the published layout and loaded through the same code a user's file takes."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch

from charforge.cli import main
from charforge.errors import UserError
from charforge.metrics.inception import (
    INCEPTION_DIM,
    FIDInceptionV3,
    expected_shapes,
    inception_features,
    load_inception,
    read_weights,
    save_weights,
)


def _random_inception(seed: int = 0) -> FIDInceptionV3:
    """Seeded random weights, with BatchNorm statistics taken from one batch of noise images so activations
    keep a useful scale through all 94 layers (default statistics shrink the features to ~1e-8)."""
    torch.manual_seed(seed)
    net = FIDInceptionV3()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    x = torch.rand(4, 3, 299, 299, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.no_grad():
        net.train()(x)
    return net.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The same random network saved both ways: {"safetensors": path, "pth": path}."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("inception")
    net = _random_inception()
    return {
        "safetensors": save_weights(net, root / "inception.safetensors"),
        "pth": save_weights(net, root / "pt_inception-test.pth"),
        "state": {k: v.clone() for k, v in net.state_dict().items()},
        "root": root,
    }


def _images(n: int, seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_the_network_is_the_fid_inception_layout():
    shapes = expected_shapes()
    # torchvision's Inception3 without the auxiliary head has 23,834,568 parameters with a 1000-way classifier;
    # the FID graph's classifier is 1008-way: 8 * (2048 + 1) more.
    params = sum(
        int(np.prod(s))
        for k, s in shapes.items()
        if not k.endswith(("running_mean", "running_var", "tracked"))
    )
    assert params == 23_834_568 + 8 * 2049
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert shapes["Conv2d_1a_3x3.bn.running_var"] == (32,)
    assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert shapes["Mixed_6e.branch7x7dbl_5.conv.weight"] == (192, 192, 1, 7)
    assert shapes["Mixed_7b.branch3x3_2b.conv.weight"] == (384, 384, 3, 1)
    assert shapes["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)
    assert shapes["fc.weight"] == (1008, 2048) and shapes["fc.bias"] == (1008,)
    assert not any(k.startswith("AuxLogits") for k in shapes)
    net = FIDInceptionV3()
    assert all(m.eps == 0.001 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert all(m.bias is None for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def test_fid_variant_details():
    """What sets the FID graph apart from torchvision's Inception-v3: TensorFlow-style average pools that leave
    the padding out of the mean, a max-pool side branch in Mixed_7c only, and features taken before fc."""
    from charforge.metrics.inception import _avg3

    ones = torch.ones(1, 1, 5, 5)
    assert torch.equal(_avg3(ones), ones)  # counting the zero padding would give 4/9 in the corners
    net = FIDInceptionV3()
    assert net.Mixed_7c.max_pool and not net.Mixed_7b.max_pool
    x = torch.rand(1, 3, 299, 299, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        before = net(x)
        net.fc.weight.fill_(123.0)
        assert torch.equal(net(x), before)  # pool3, not the classifier
        assert before.shape == (1, INCEPTION_DIM)


def test_both_file_kinds_load_and_give_2048_d_features(weights):
    imgs = _images(3, 0)
    f_st = inception_features(imgs, weights["safetensors"], batch_size=2)
    f_pth = inception_features(imgs, weights["pth"], batch_size=3)
    assert f_st.shape == (3, INCEPTION_DIM) and f_st.dtype == np.float32
    assert np.isfinite(f_st).all()
    np.testing.assert_allclose(f_st, f_pth, rtol=1e-5, atol=1e-6)  # same weights, either file
    assert np.abs(f_st[0] - f_st[1]).max() > 1e-3 * np.abs(f_st).max()  # different images, different vectors
    # a batch of one gives the same vector (eval-mode BatchNorm), at any input size (resized to 299)
    np.testing.assert_allclose(
        inception_features(imgs[1:2], weights["safetensors"]), f_st[1:2], rtol=1e-4, atol=1e-6
    )
    big = np.repeat(np.repeat(imgs[:1], 4, axis=1), 4, axis=2)  # 128 px, the same picture
    assert inception_features(big, weights["safetensors"]).shape == (1, INCEPTION_DIM)
    # the loaded network holds exactly the saved tensors
    net = load_inception(weights["pth"])
    for k, v in weights["state"].items():
        assert torch.equal(net.state_dict()[k], v), k


def test_a_pth_without_batch_counters_loads(weights):
    """The published PyTorch port predates BatchNorm's num_batches_tracked; such a file must load."""
    path = weights["root"] / "no_counters.pth"
    torch.save(
        OrderedDict((k, v) for k, v in weights["state"].items() if "num_batches_tracked" not in k), path
    )
    assert load_inception(path) is not None


def _refused(path, *needles):
    with pytest.raises(UserError) as e:
        read_weights(path)
    msg = str(e.value)
    assert str(path) in msg, msg
    for n in needles:
        assert n in msg, msg
    assert e.value.field == "inception_weights"
    return msg


class NotATensor:
    def __init__(self):
        self.payload = "anything"


def test_wrong_files_are_refused_by_name(weights, tmp_path):
    from safetensors.torch import save_file

    state = weights["state"]
    missing = dict(state)
    del missing["Mixed_5b.branch1x1.conv.weight"]
    save_file(missing, str(tmp_path / "missing.safetensors"))
    _refused(tmp_path / "missing.safetensors", "'Mixed_5b.branch1x1.conv.weight'", "missing")

    wrong = dict(state)
    wrong["Mixed_6a.branch3x3.conv.weight"] = torch.zeros(384, 288, 1, 1)
    torch.save(wrong, tmp_path / "shape.pth")
    _refused(
        tmp_path / "shape.pth", "'Mixed_6a.branch3x3.conv.weight'", "(384, 288, 1, 1)", "(384, 288, 3, 3)"
    )

    extra = dict(state)
    extra["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
    save_file(extra, str(tmp_path / "aux.safetensors"))
    _refused(tmp_path / "aux.safetensors", "unexpected tensor 'AuxLogits.fc.weight'")

    nan = dict(state)
    nan["fc.bias"] = torch.full((1008,), float("nan"))
    save_file(nan, str(tmp_path / "nan.safetensors"))
    _refused(tmp_path / "nan.safetensors", "'fc.bias'", "NaN")

    torch.save({"state_dict": state}, tmp_path / "nested.pth")  # a training checkpoint, not a state dict
    _refused(tmp_path / "nested.pth", "entry 'state_dict' is a dict, not a tensor")

    torch.save({"model": NotATensor()}, tmp_path / "pickled.pth")  # arbitrary objects are never unpickled
    _refused(tmp_path / "pickled.pth", "weights_only=True", "never unpickles")

    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    _refused(tmp_path / "garbage.safetensors", "not a readable .safetensors file")

    (tmp_path / "weights.bin").write_bytes(b"\x00")
    _refused(tmp_path / "weights.bin", "expected a .safetensors or .pth file")

    _refused(tmp_path / "absent.pth", "no such file", "never downloads")


@pytest.fixture(scope="module")
def tiny_generator_file(toy_data_dir, tmp_path_factory):
    from charforge.data.packed import load_packed
    from charforge.models.io import save_model
    from charforge.train.presets import build_generator, resolve_preset

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


def _eval(gen, data, out, *extra):
    main(
        [
            "eval",
            "--model",
            str(gen),
            "--data",
            str(data),
            "--n",
            "6",
            "--runs",
            "1",
            "--threads",
            "1",
            "-o",
            str(out),
            *extra,
        ]
    )


def test_eval_with_inception_weights_reports_the_comparable_space(
    weights, toy_data_dir, toy_tagger_dir, tiny_generator_file, tmp_path, capsys
):
    out = tmp_path / "with"
    _eval(
        tiny_generator_file,
        toy_data_dir,
        out,
        "--tagger",
        str(toy_tagger_dir),
        "--metrics",
        "fid_domain,fid_inception,kid_inception",
        "--inception-weights",
        str(weights["safetensors"]),
    )
    printed = capsys.readouterr().out
    assert "fid_inception" in printed and "kid_inception" in printed
    report = json.loads((out / "report.json").read_text())
    fi = report["metrics"]["fid_inception"]
    assert fi["space"] == "inception" and fi["feature_dim"] == INCEPTION_DIM and fi["samples_per_run"] == 6
    assert np.isfinite(fi["model"]["mean"]) and fi["model"]["mean"] > 0
    fs = report["feature_spaces"]
    assert fs["comparable_with_published_fid"] is True
    assert set(fs["used"]) == {"domain", "inception"}
    assert fs["used"]["inception"]["weights"].endswith("inception.safetensors")
    assert len(fs["used"]["inception"]["sha256"]) == 64
    assert "NOT the Inception FID that papers report" in fs["note"]  # said of fid_domain, still in the report
    md = (out / "report.md").read_text()
    assert "**Feature spaces.**" in md and "| fid_inception | inception (2048-D)" in md
    assert "Inception-v3 pool3 features" in md


def test_every_report_says_its_fid_is_not_the_papers(
    toy_data_dir, toy_tagger_dir, tiny_generator_file, tmp_path, capsys
):
    out = tmp_path / "without"
    _eval(tiny_generator_file, toy_data_dir, out, "--tagger", str(toy_tagger_dir), "--metrics", "fid_domain")
    assert "not the Inception FID papers report" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    fs = report["feature_spaces"]
    assert fs["comparable_with_published_fid"] is False
    assert set(fs["used"]) == {"domain"} and "tagger" in fs["used"]["domain"]["network"]
    assert "NOT the Inception FID that papers report" in fs["note"] and "--inception-weights" in fs["note"]
    md = (out / "report.md").read_text()
    assert "NOT the Inception FID that papers report" in md
    assert "fid_inception" not in report["metrics"]


def test_eval_refuses_a_wrong_inception_file_before_generating(
    weights, toy_data_dir, tiny_generator_file, tmp_path, capsys
):
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"fc.weight": torch.zeros(1000, 2048)}, str(bad))
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as e:
        _eval(
            tiny_generator_file,
            toy_data_dir,
            out,
            "--metrics",
            "fid_inception",
            "--inception-weights",
            str(bad),
        )
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'Conv2d_1a_3x3.conv.weight'" in err and "missing" in err
    assert not (out / "report.json").exists()
    # asking for the metric without the file names the option and the docs
    with pytest.raises(SystemExit) as e:
        _eval(tiny_generator_file, toy_data_dir, out, "--metrics", "kid_inception")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--inception-weights FILE" in err and "docs/eval/METRICS.md" in err


def test_eval_list_and_help_name_the_inception_option(capsys):
    main(["eval", "--list"])
    printed = capsys.readouterr().out
    assert "fid_inception" in printed and "not the Inception FID papers report" in printed
    main(["eval", "--help"])  # standalone_mode=False: help returns instead of exiting
    helptext = capsys.readouterr().out
    words = " ".join(helptext.replace("│", " ").split())
    assert "--inception-weights" in words and "never downloaded" in words and "fid_inception" in words
