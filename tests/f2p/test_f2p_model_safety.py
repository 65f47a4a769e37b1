"""Loading f2p files from elsewhere: a file cannot make charforge run code, and broken files are clear errors."""

from __future__ import annotations

import json
import os

import pytest
from f2p_helpers import TOY_SPEC, run_cli
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from charforge.errors import UserError
from charforge.f2p import load_f2p


def _craft(src, dst, *, config=None, drop_tensor=False, meta_update=None):
    """Copy the bundle at `src` to `dst`, editing its config (a function of the dict) and/or its tensors."""
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    cfg = json.loads(meta["charforge_config"])
    if config is not None:
        cfg = config(cfg)
    meta["charforge_config"] = json.dumps(cfg)
    meta.update(meta_update or {})
    tensors = load_file(str(src))
    if drop_tensor:
        tensors.pop(next(k for k in sorted(tensors) if k.startswith("translator.")))
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_module_function_creator_in_a_file_is_refused(toy_model, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "getcwd", lambda: calls.append("called") or "/")
    bad = _craft(
        toy_model / "f2p.safetensors",
        tmp_path / "evil" / "f2p.safetensors",
        config=lambda c: {**c, "creator": "os:getcwd"},
    )
    f2p = load_f2p(bad)  # loading the networks is fine: no creator is touched
    with pytest.raises(UserError, match=r"not allowed to run code.*--creator os:getcwd"):
        _ = f2p.creator
    assert calls == []
    from PIL import Image

    Image.new("RGB", (48, 48), (200, 120, 90)).save(tmp_path / "p.png")
    code, log = run_cli(
        [
            "fit",
            str(tmp_path / "p.png"),
            "--f2p",
            str(bad.parent),
            "-o",
            str(tmp_path / "o"),
            "--mode",
            "fast",
        ]
    )
    assert code == 2 and "--creator os:getcwd" in log and "Traceback" not in log, log
    assert calls == [] and not (tmp_path / "o" / "params.json").exists()


def test_explicit_creator_is_honoured_and_checked(toy_model, tmp_path):
    bad = _craft(
        toy_model / "f2p.safetensors",
        tmp_path / "evil.safetensors",
        config=lambda c: {**c, "creator": "os:getcwd"},
    )
    f2p = load_f2p(bad, creator=TOY_SPEC)  # the user says which creator to trust
    assert f2p.creator.space.names == f2p.space.names and f2p.creator_spec == TOY_SPEC
    with pytest.raises(UserError, match="trained for"):
        _ = load_f2p(toy_model, creator="builtin").creator  # a creator with other parameters is refused


def test_gone_recorded_folder_with_a_drive_letter_falls_back(toy_model, tmp_path):
    gone = _craft(
        toy_model / "f2p.safetensors",
        tmp_path / "gone.safetensors",
        config=lambda c: {**c, "creator": "C:/captures/gone_creator"},
    )
    assert load_f2p(gone).creator is None  # previews fall back to the imitator, as for any vanished folder


@pytest.mark.parametrize(
    "edit",
    [
        {"config": lambda c: {k: v for k, v in c.items() if k != "imitator"}},
        {"config": lambda c: {**c, "translator": {**c["translator"], "no_such_option": 1}}},
        {"config": lambda c: {**c, "creator": 42}},
        {"drop_tensor": True},
        {"meta_update": {"param_space": "[]"}},
    ],
    ids=["missing-imitator", "unknown-option", "creator-not-text", "missing-weights", "bad-space"],
)
def test_incomplete_or_mismatched_files_are_user_errors(toy_model, tmp_path, edit):
    bad = _craft(toy_model / "f2p.safetensors", tmp_path / "bad.safetensors", **edit)
    with pytest.raises(UserError, match=r"bad\.safetensors"):
        load_f2p(bad)
    code, log = run_cli(["f2p", "eval", "--f2p", str(bad), "-o", str(tmp_path / "ev")])
    assert code == 2 and "bad.safetensors" in log and "Traceback" not in log, log


@pytest.mark.parametrize(
    "part, key", [("imitator", "emb_dim"), ("translator", "hidden"), ("imitator", "hidden")]
)
def test_absurd_network_sizes_are_refused_before_allocating(toy_model, tmp_path, part, key):
    def huge(c):
        c = json.loads(json.dumps(c))
        c[part][key] = 1_000_000
        return c

    bad = _craft(toy_model / "f2p.safetensors", tmp_path / part / "f2p.safetensors", config=huge)
    with pytest.raises(UserError, match=r"parameters \(limit"):
        load_f2p(bad)
