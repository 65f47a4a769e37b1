"""Hostile recorded-creator folders: each case builds the folder and checks the message names the file/row.

A recorded folder is loaded wherever a creator is named (`data build --creator DIR`, `f2p train --creator
DIR`); the CLI cases go through `data build`, which must fail with exit 2 before anything is written.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS / "core") not in sys.path:
    sys.path.insert(0, str(TESTS / "core"))

from core_toy_creator import ToyCreator  # noqa: E402

from charforge.cli import main  # noqa: E402
from charforge.creators.recorded import RecordedCreator  # noqa: E402
from charforge.errors import UserError  # noqa: E402


def record(root: Path, n: int = 4) -> list[dict]:
    """A good recorded folder: space.json, cap_000.json/.png as files, the rest in pairs.jsonl."""
    toy = ToyCreator()
    root.mkdir(parents=True, exist_ok=True)
    batch = toy.space.sample(n, np.random.default_rng(1))
    images, dicts = toy.render(batch, 16), toy.space.to_dicts(batch)
    (root / "space.json").write_text(toy.space.to_json())
    lines = []
    for i, (d, im) in enumerate(zip(dicts, images)):
        Image.fromarray(im).save(root / f"cap_{i:03d}.png")
        if i == 0:
            (root / "cap_000.json").write_text(json.dumps(d))
        else:
            lines.append(json.dumps({"image": f"cap_{i:03d}.png", "params": d}))
    (root / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return dicts


def run(argv, capsys) -> tuple[int, str]:
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


def _pairs_line(root: Path, line: int, obj) -> None:
    lines = (root / "pairs.jsonl").read_text().splitlines()
    lines[line - 1] = obj if isinstance(obj, str) else json.dumps(obj)
    (root / "pairs.jsonl").write_text("\n".join(lines) + "\n")


def _secret(root: Path) -> Path:
    """An image outside the recorded folder that must never be read."""
    p = root.parent / "secret.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(p)
    return p


def _link_out(root: Path, d: dict) -> None:
    (root / "link.png").symlink_to(_secret(root))
    _pairs_line(root, 2, {"image": "link.png", "params": d})


def _drop_param(root: Path, d: dict) -> None:
    d = dict(d)
    d.pop("radius")
    _pairs_line(root, 1, {"image": "cap_001.png", "params": d})


def _drop_param_file(root: Path, d: dict) -> None:
    d = dict(d)
    d.pop("ring")
    (root / "cap_000.json").write_text(json.dumps(d))


def _replace_with_link(path: Path, target: Path | str) -> None:
    path.unlink()
    path.symlink_to(target)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


DEEP = "[" * 200_000 + "]" * 200_000

CASES = {
    # name: (how to break the folder given it and one capture's params, fragments of the message)
    "space-json-deeply-nested": (
        lambda r, d: (r / "space.json").write_text(DEEP),
        ["space.json", "nested too deeply"],
    ),
    "space-json-is-a-list": (
        lambda r, d: (r / "space.json").write_text(json.dumps([{"categorical": []}])),
        ["space.json", "must be a JSON object", "got list"],
    ),
    "space-json-is-a-string": (
        lambda r, d: (r / "space.json").write_text('"hello"'),
        ["space.json", "must be a JSON object", "got str"],
    ),
    "space-json-not-utf8": (
        lambda r, d: (r / "space.json").write_bytes(b"\xff\xfe{"),
        ["space.json", "not a readable JSON file"],
    ),
    "pairs-deeply-nested": (
        lambda r, d: _pairs_line(r, 2, DEEP),
        ["pairs.jsonl line 2", "nested too deeply"],
    ),
    "pairs-huge-integer": (
        lambda r, d: _pairs_line(r, 1, '{"image": "cap_001.png", "params": ' + "9" * 50_000 + "}"),
        ["pairs.jsonl line 1", "not a readable JSON"],
    ),
    "capture-json-deeply-nested": (
        lambda r, d: (r / "cap_000.json").write_text(DEEP),
        ["cap_000.json", "nested too deeply"],
    ),
    "capture-json-is-a-list": (
        lambda r, d: (r / "cap_000.json").write_text(json.dumps([d])),
        ["cap_000.json", "must be a JSON object", "got list"],
    ),
    "pairs-absolute-path": (
        lambda r, d: _pairs_line(r, 2, {"image": str(_secret(r)), "params": d}),
        ["pairs.jsonl line 2", "secret.png", "not inside the recorded folder"],
    ),
    "pairs-dotdot-path": (
        lambda r, d: (_secret(r), _pairs_line(r, 3, {"image": "../secret.png", "params": d})),
        ["pairs.jsonl line 3", "'../secret.png'", "not inside the recorded folder"],
    ),
    "pairs-dotdot-inside-path": (
        lambda r, d: (
            _secret(r),
            _pairs_line(r, 1, {"image": f"sub/../../{r.parent.name}/secret.png", "params": d}),
        ),
        ["pairs.jsonl line 1", "not inside the recorded folder"],
    ),
    "pairs-link-leading-out": (
        _link_out,
        ["pairs.jsonl line 2", "'link.png'", "outside the recorded folder"],
    ),
    "pairs-image-not-a-string": (
        lambda r, d: _pairs_line(r, 1, {"image": ["cap_001.png"], "params": d}),
        ["pairs.jsonl line 1", '"image" must be a file name'],
    ),
    "pairs-params-not-an-object": (
        lambda r, d: _pairs_line(r, 1, {"image": "cap_001.png", "params": [1, 2]}),
        ["pairs.jsonl line 1", "must be a JSON object", "got list"],
    ),
    "pairs-capture-missing-a-parameter": (
        _drop_param,
        ["pairs.jsonl line 1", "missing parameter 'radius'", "record every parameter"],
    ),
    "file-capture-missing-a-parameter": (
        _drop_param_file,
        ["cap_000.json", "missing parameter 'ring'"],
    ),
    "capture-json-is-dev-zero": (
        lambda r, d: _replace_with_link(r / "cap_000.json", "/dev/zero"),
        ["cap_000.json", "outside the recorded folder"],
    ),
    "capture-json-links-out": (
        lambda r, d: (
            (r.parent / "p.json").write_text(json.dumps(d)),
            _replace_with_link(r / "cap_000.json", r.parent / "p.json"),
        ),
        ["cap_000.json", "outside the recorded folder"],
    ),
    "capture-image-links-out": (
        lambda r, d: _replace_with_link(r / "cap_000.png", _secret(r)),
        ["cap_000.png", "outside the recorded folder"],
    ),
    "capture-image-is-a-fifo": (lambda r, d: _fifo(r / "cap_000.png"), ["cap_000.png", "not a regular file"]),
    "pairs-jsonl-is-a-fifo": (lambda r, d: _fifo(r / "pairs.jsonl"), ["pairs.jsonl", "not a regular file"]),
    "space-json-is-a-fifo": (lambda r, d: _fifo(r / "space.json"), ["space.json", "not a regular file"]),
    "space-json-is-dev-zero": (
        lambda r, d: _replace_with_link(r / "space.json", "/dev/zero"),
        ["space.json", "outside the recorded folder"],
    ),
    "file-capture-empty-object": (
        lambda r, d: (r / "cap_000.json").write_text("{}"),
        ["cap_000.json", "missing parameter 'color'", "and 3 more"],
    ),
}


@pytest.mark.timeout(60)  # a FIFO or /dev/zero would block or read forever
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_recorded_folder_is_a_clear_error(case, tmp_path, capsys, monkeypatch):
    fn, fragments = CASES[case]
    root = tmp_path / "rec"
    dicts = record(root)
    fn(root, dicts[0])
    with pytest.raises(UserError) as e:
        RecordedCreator(root)
    for f in fragments:
        assert f in str(e.value), (f, str(e.value))
    # and through the CLI: exit 2, one line, nothing written
    out = tmp_path / "ds"
    code, err = run(["data", "build", "--creator", root, "--n", "2", "--size", "16", "-o", out], capsys)
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err, err
    assert fragments[0] in err, err
    assert not out.exists()


def test_secret_outside_the_folder_is_never_opened(tmp_path, monkeypatch):
    """The refusal happens before any image is read (not only after the pixels come back)."""
    root = tmp_path / "rec"
    dicts = record(root)
    secret = _secret(root)
    _pairs_line(root, 1, {"image": "../secret.png", "params": dicts[1]})
    opened = []
    import charforge.core.images as images

    real = images.load_image
    monkeypatch.setattr(images, "load_image", lambda p, *a, **k: opened.append(Path(p)) or real(p, *a, **k))
    with pytest.raises(UserError, match="not inside the recorded folder"):
        RecordedCreator(root).images(16)
    assert secret not in opened


def test_good_recorded_folder_still_loads(tmp_path):
    root = tmp_path / "rec"
    record(root, n=5)
    (root / "sub").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "sub" / "deep.png")
    d = ToyCreator().space.to_dicts(ToyCreator().space.defaults(1))[0]
    with open(root / "pairs.jsonl", "a") as f:
        f.write(json.dumps({"image": "sub/deep.png", "params": d}) + "\n")
        f.write(json.dumps({"image": "./cap_002.png", "params": d}) + "\n")
    rec = RecordedCreator(root)
    assert len(rec) == 7 and rec.images(8).shape == (7, 8, 8, 3)
