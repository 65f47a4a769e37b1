"""Hostile and broken dataset inputs: tags files, dataset folders, full disks, interrupted builds.

Each case builds the bad input in tmp_path and checks the exit code and that the message names the
file, row or field. Add new cases to the tables below as they are found.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TESTS = Path(__file__).resolve().parents[1]
for sub in ("core", "data"):  # the toy creator (core_toy_creator:make) and the image corpus helpers
    if str(TESTS / sub) not in sys.path:
        sys.path.insert(0, str(TESTS / sub))

from corpus import pattern  # noqa: E402

from charforge.cli import main  # noqa: E402
from charforge.core.tags import TagGroup, TagSchema, make_girls_moe_schema  # noqa: E402
from charforge.data import packed  # noqa: E402
from charforge.data.build import build_from_creator  # noqa: E402
from charforge.data.import_tags import read_tags_file  # noqa: E402
from charforge.data.packed import PackedWriter, load_packed, verify_training_data, write_packed  # noqa: E402
from charforge.errors import UserError  # noqa: E402

TOY = "core_toy_creator:make"


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.startswith("error: "), err
    assert "Traceback" not in err, err
    for f in fragments:
        assert f in err, (f, err)


def small_dataset(root: Path, n: int = 6, size: int = 8, params: bool = False):
    rng = np.random.default_rng(0)
    schema = TagSchema([TagGroup("hair", ("red hair", "blue hair"))], ["hat"])
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    tags = np.zeros((n, 3), np.uint8)
    tags[np.arange(n), rng.integers(0, 2, n)] = 1
    if not params:
        return write_packed(root, images, tags, schema)
    from charforge.core.space import Continuous, ParamSpace

    space = ParamSpace([], [Continuous("r", 0.0, 1.0, 0.5)], name="t")
    return write_packed(root, images, tags, schema, params=rng.random((n, 1), dtype=np.float32), space=space)


def edit_manifest(root: Path, fn) -> None:
    path = root / "manifest.json"
    m = json.loads(path.read_text())
    new = fn(m)
    if isinstance(new, list):  # a case that replaces the whole manifest
        m = new
    path.write_text(json.dumps(m))


# ---- 1. tags files ---------------------------------------------------------------------------------


def art_folder(root: Path, n: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(pattern(i)).save(root / f"good_{i + 1}.png")
    return root


TAGS_CASES = {
    # name: (file name, content, fragments the message must hold)
    "csv-field-over-128kb": (
        "tags.csv",
        'good_1.png,"blonde hair\n' + "x" * 140_000 + "\n",
        ["tags.csv: row", "quote"],
    ),
    "csv-nul-byte": ("tags.csv", "good_1.png,blonde hair\x00\n", ["tags.csv: row 1"]),
    "csv-unquoted-tags-spill-into-licence": (
        "tags.csv",
        "good_1.png,blonde hair,blue eyes\n",
        ["tags.csv: row 1", "'blue eyes'", "not quoted", '"blonde hair, blue eyes"'],
    ),
    "csv-unquoted-four-columns": (
        "tags.csv",
        "good_2.png,blonde hair\ngood_1.png,blonde hair,blue eyes,smile\n",
        ["tags.csv: row 2", "'smile'", "not quoted"],
    ),
    "csv-extra-column-after-header": (
        "tags.csv",
        "file,tags,license\ngood_1.png,blonde hair,CC0-1.0,blue eyes\n",
        ["tags.csv: row 2", "4 columns", "header names 3"],
    ),
    "jsonl-deeply-nested": (
        "tags.jsonl",
        '{"file": "good_1.png", "tags": ' + "[" * 200_000 + "]" * 200_000 + "}\n",
        ["tags.jsonl: row 1", "nested too deeply"],
    ),
    "jsonl-licence-object": (
        "tags.jsonl",
        '{"file": "good_1.png", "tags": ["smile"]}\n'
        '{"file": "good_2.png", "tags": ["smile"], "license": {"name": "CC0"}}\n',
        ["tags.jsonl: row 2", "licence must be a string", "dict"],
    ),
    "jsonl-licence-number": (
        "tags.jsonl",
        '{"file": "good_1.png", "tags": "smile", "license": 4}\n',
        ["tags.jsonl: row 1", "licence must be a string"],
    ),
    "jsonl-huge-integer": (
        "tags.jsonl",
        '{"file": "good_1.png", "tags": "smile", "x": ' + "9" * 50_000 + "}\n",
        ["tags.jsonl: row 1"],
    ),
}


@pytest.mark.parametrize("case", sorted(TAGS_CASES))
def test_bad_tags_file_is_a_clear_error_through_import(case, tmp_path, capsys):
    name, content, fragments = TAGS_CASES[case]
    src = art_folder(tmp_path / "art")
    tags = tmp_path / name
    tags.write_text(content, encoding="utf-8")
    code, _, err = run(["data", "import", src, "-o", tmp_path / "ds", "--tags", tags], capsys)
    assert_user_error(code, err, *fragments)
    assert not (tmp_path / "ds" / "manifest.json").exists()


def test_tags_file_licence_column_still_works(tmp_path):
    """The checks above must not refuse the legitimate layouts."""
    schema = make_girls_moe_schema()
    f = tmp_path / "t.csv"
    f.write_text('a.png,"blonde hair, blue eyes",CC0-1.0\nb.png,smile\nc.png,"smile",\n')
    rows = read_tags_file(f, schema)
    assert [r.license for r in rows] == ["CC0-1.0", None, None]
    assert rows[0].vector.sum() == 2
    f.write_text("file,tags,license,\na.png,smile,CC-BY-4.0,\n")  # a trailing empty column is harmless
    assert read_tags_file(f, schema)[0].license == "CC-BY-4.0"
    j = tmp_path / "t.jsonl"
    j.write_text('{"file": "a.png", "tags": ["smile"], "license": null}\n')
    assert read_tags_file(j, schema)[0].license is None


# ---- 2. dataset folders ----------------------------------------------------------------------------


def _drop(key):
    return lambda m: m.pop(key)


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


MANIFEST_CASES = {
    "no-count": (_drop("count"), ["'count'", "missing"]),
    "count-string": (_set("count", "6"), ["'count'", "'6'"]),
    "tag-schema-string": (_set("tag_schema", "red hair, blue hair"), ["'tag_schema'"]),
    "tag-schema-broken": (_set("tag_schema", {"groups": [{"tags": ["a"]}]}), ["'tag_schema'"]),
    "schema-version-string": (_set("schema_version", "1"), ["'schema_version'", "'1'"]),
    "schema-version-newer": (_set("schema_version", 99), ["schema version 99", "upgrade charforge"]),
    "image-size-string": (_set("image_size", "8"), ["'image_size'", "'8' (str)"]),
    "has-params-string": (_set("has_params", "no"), ["'has_params'"]),
    "checksums-list": (_set("checksums", ["images.npy"]), ["'checksums'"]),
    "items-shorter-than-count": (lambda m: m["items"].pop(), ["5 item records for count 6"]),
    "items-not-a-list": (_set("items", {"a": 1}), ["'items'"]),
    "item-licence-object": (lambda m: m["items"][2].__setitem__("license", {"x": 1}), ["items[2]"]),
    "manifest-is-a-list": (lambda m: [m], ["must be a JSON object", "list"]),
    "param-space-string": (_set("param_space", "x"), ["'param_space'"]),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_damaged_manifest_is_a_clear_error(case, tmp_path, capsys):
    fn, fragments = MANIFEST_CASES[case]
    small_dataset(tmp_path / "d")
    edit_manifest(tmp_path / "d", fn)
    code, _, err = run(["data", "inspect", tmp_path / "d", "--no-verify"], capsys)
    assert_user_error(code, err, "manifest.json", *fragments)
    assert "does not match" not in err


def test_manifest_nested_too_deeply(tmp_path, capsys):
    small_dataset(tmp_path / "d")
    (tmp_path / "d" / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    code, _, err = run(["data", "inspect", tmp_path / "d"], capsys)
    assert_user_error(code, err, "manifest.json", "nested too deeply")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "folder"])
def test_manifest_that_is_not_a_regular_file(kind, tmp_path, capsys):
    small_dataset(tmp_path / "d")
    m = tmp_path / "d" / "manifest.json"
    m.unlink()
    {"dev-zero": lambda: m.symlink_to("/dev/zero"), "fifo": lambda: os.mkfifo(m), "folder": m.mkdir}[kind]()
    code, _, err = run(["data", "inspect", tmp_path / "d"], capsys)
    assert_user_error(code, err, "manifest.json", "not a regular file")


def _truncate(path: Path, keep: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def _claim_more_rows(root: Path) -> None:
    """Rewrite images.npy's header (and the manifest) to claim 60 rows where the file holds 6."""
    path = root / "images.npy"
    arr = np.load(path)
    with open(path, "rb") as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        body = f.read()
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "|u1", "fortran_order": False, "shape": (60, *arr.shape[1:])}
        )
        f.write(body)
    tags = np.zeros((60, 3), np.uint8)
    np.save(root / "tags.npy", tags)
    edit_manifest(root, lambda m: m.update(count=60, items=[{"source": "x", "license": "CC0"}] * 60))


class _Trap:
    """Unpickling this would create the folder named by TRAP: a loader that unpickles is caught."""

    target = ""

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def _object_array(root: Path, name: str) -> None:
    _Trap.target = str(root / "UNPICKLED")
    arr = np.empty(6, dtype=object)
    arr[:] = [_Trap() for _ in range(6)]
    np.save(root / name, arr, allow_pickle=True)


ARRAY_CASES = {
    "images-truncated": (lambda r: _truncate(r / "images.npy", 300), ["images.npy", "truncated"]),
    "images-header-only": (lambda r: _truncate(r / "images.npy", 128), ["images.npy", "truncated"]),
    "images-not-npy": (
        lambda r: (r / "images.npy").write_bytes(b"hello"),
        ["images.npy", "not a valid .npy"],
    ),
    "images-header-claims-more-rows": (_claim_more_rows, ["images.npy", "truncated", "promises"]),
    "tags-object-dtype": (lambda r: _object_array(r, "tags.npy"), ["tags.npy", "Python objects"]),
    "images-object-dtype": (lambda r: _object_array(r, "images.npy"), ["images.npy", "Python objects"]),
    "tags-float": (
        lambda r: np.save(r / "tags.npy", np.zeros((6, 3), np.float64)),
        ["tags.npy", "float64", "does not match"],
    ),
    "images-dev-zero-link": (
        lambda r: ((r / "images.npy").unlink(), (r / "images.npy").symlink_to("/dev/zero")),
        ["images.npy", "not a regular file"],
    ),
    "images-is-a-folder": (
        lambda r: ((r / "images.npy").unlink(), (r / "images.npy").mkdir()),
        ["images.npy", "not a regular file"],
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(ARRAY_CASES))
def test_damaged_array_is_a_clear_error(case, tmp_path, capsys):
    fn, fragments = ARRAY_CASES[case]
    small_dataset(tmp_path / "d")
    fn(tmp_path / "d")
    code, _, err = run(["data", "inspect", tmp_path / "d", "--no-verify"], capsys)
    assert_user_error(code, err, *fragments)
    assert not (tmp_path / "d" / "UNPICKLED").exists()  # never unpickled


def _dir_entry(r: Path) -> str:
    (r / "sub").mkdir()
    return "sub"


def _outside_link(r: Path) -> str:
    (r.parent / "outside.bin").write_bytes(b"x")
    (r / "link.bin").symlink_to(r.parent / "outside.bin")
    return "link.bin"


def _zero_link(r: Path) -> str:
    (r / "zero").symlink_to("/dev/zero")
    return "zero"


CHECKSUM_CASES = {
    "dev-zero": (lambda r: "/dev/zero", "not a file name inside"),
    "absolute": (lambda r: str(r / "images.npy"), "not a file name inside"),
    "parent": (lambda r: "../d/images.npy", "not a file name inside"),
    "dotdot-deep": (lambda r: "a/../../x", "not a file name inside"),
    "link-to-dev-zero": (_zero_link, "outside the dataset folder"),
    "link-outside": (_outside_link, "outside the dataset folder"),
    "a-folder": (_dir_entry, "not a regular file"),
    "missing": (lambda r: "gone.npy", "not a regular file"),
}


@pytest.mark.timeout(60)  # /dev/zero used to be read forever
@pytest.mark.parametrize("case", sorted(CHECKSUM_CASES))
def test_checksum_paths_must_be_regular_files_inside_the_folder(case, tmp_path, capsys):
    fn, fragment = CHECKSUM_CASES[case]
    root = tmp_path / "d"
    small_dataset(root)
    name = fn(root)
    edit_manifest(root, lambda m: m["checksums"].__setitem__(name, "0" * 64))
    code, _, err = run(["data", "inspect", root], capsys)
    assert_user_error(code, err, "checksum entry", repr(name), fragment)
    # the same manifest without verification still opens: only the checksums are refused
    assert run(["data", "inspect", root, "--no-verify"], capsys)[0] == 0


def test_missing_checksum_of_an_array_is_reported(tmp_path, capsys):
    small_dataset(tmp_path / "d")
    edit_manifest(tmp_path / "d", lambda m: m["checksums"].pop("tags.npy"))
    code, _, err = run(["data", "inspect", tmp_path / "d"], capsys)
    assert_user_error(code, err, "no checksum recorded for tags.npy")


def test_image_size_string_does_not_give_the_confusing_shape_message(tmp_path):
    small_dataset(tmp_path / "d")
    edit_manifest(tmp_path / "d", _set("image_size", "8"))
    with pytest.raises(UserError, match=r"'image_size' must be the image side in pixels") as e:
        load_packed(tmp_path / "d")
    assert e.value.field == "image_size"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "state",
    [
        "{not json",
        "[1, 2]",
        '{"config": {}, "done": "all"}',
        '{"config": {}, "done": [-1]}',
        "[" * 100_000,
        "\xff\xfe",
        "/dev/zero",
    ],
)
def test_corrupt_build_state_is_a_clear_error(state, tmp_path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    if state == "/dev/zero":
        (out / ".build_state.json").symlink_to(state)
    else:
        (out / ".build_state.json").write_text(state)
    code, _, err = run(["data", "build", "--creator", TOY, "--n", "4", "--size", "16", "-o", out], capsys)
    assert_user_error(code, err, ".build_state.json", "build state is damaged", "start the build over")


def test_resume_with_a_damaged_array_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "ds"
    argv = ["data", "build", "--creator", TOY, "--n", "8", "--size", "16", "--chunk", "4", "-o", out]
    from charforge.creators.base import get_creator

    cr = get_creator(TOY)
    cfg = {"kind": "creator", "creator": TOY, "n": 8, "size": 16, "seed": 0, "chunk": 4}
    PackedWriter(out, n=8, size=16, schema=cr.schema, space=cr.space, config=cfg)  # "killed" at once
    _truncate(out / "images.npy", 200)
    code, _, err = run(argv, capsys)
    assert_user_error(code, err, "images.npy", "truncated", "delete the folder and rebuild")


# ---- 3. verify_training_data -----------------------------------------------------------------------


def test_verify_training_data_passes_a_good_dataset(tmp_path):
    ds = small_dataset(tmp_path / "d", params=True)
    verify_training_data(ds)
    verify_training_data(ds, checksums=False)


def test_verify_training_data_flipped_image_bytes(tmp_path):
    small_dataset(tmp_path / "d")
    arr = np.load(tmp_path / "d" / "images.npy", mmap_mode="r+")
    arr[3, 2, 1, 0] ^= 0x10
    arr.flush()
    del arr
    ds = load_packed(tmp_path / "d")
    verify_training_data(ds, checksums=False)  # sizes and values are fine: only the checksum sees it
    with pytest.raises(UserError, match=r"images\.npy: checksum mismatch"):
        verify_training_data(ds)


def test_verify_training_data_tag_value_7(tmp_path):
    small_dataset(tmp_path / "d")
    arr = np.load(tmp_path / "d" / "tags.npy", mmap_mode="r+")
    arr[4, 2] = 7
    arr.flush()
    del arr
    ds = load_packed(tmp_path / "d")
    with pytest.raises(UserError, match=r"tags\.npy: row 4 \(0-based\), tag 'hat' has value 7") as e:
        verify_training_data(ds, checksums=False)
    assert e.value.field == "tags"


def test_verify_training_data_non_finite_params(tmp_path):
    small_dataset(tmp_path / "d", params=True)
    arr = np.load(tmp_path / "d" / "params.npy", mmap_mode="r+")
    arr[5, 0] = np.nan
    arr.flush()
    del arr
    with pytest.raises(UserError, match=r"params\.npy: row 5 \(0-based\), column 0 is nan"):
        verify_training_data(load_packed(tmp_path / "d"), checksums=False)


def test_verify_training_data_sizes_and_items(tmp_path):
    ds = small_dataset(tmp_path / "d")
    ds.manifest["items"] = ds.manifest["items"][:3]
    with pytest.raises(UserError, match="3 item records for 6 images"):
        verify_training_data(ds, checksums=False)
    ds = load_packed(tmp_path / "d")
    ds.tags = ds.tags[:5]
    with pytest.raises(UserError, match=r"tags\.npy: shape \(5, 3\)"):
        verify_training_data(ds, checksums=False)


# ---- 4. full disks ---------------------------------------------------------------------------------


def _fake_disk(free: int):
    real = shutil.disk_usage

    def disk_usage(path):
        u = real(path)
        return type(u)(u.total, u.total - free, free)

    return disk_usage


def test_build_checks_free_space_before_writing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", _fake_disk(100_000))
    out = tmp_path / "ds"
    code, _, err = run(["data", "build", "--creator", TOY, "--n", "400", "--size", "32", "-o", out], capsys)
    assert_user_error(
        code, err, str(out), "not enough free disk space", "needs about 2.4 MB", "only 97.7 KB is free"
    )
    assert not (out / "images.npy").exists()  # nothing was written


def test_resumed_build_only_needs_the_space_still_missing(tmp_path, monkeypatch):
    from charforge.creators.base import get_creator

    cr = get_creator(TOY)
    kw = dict(n=4000, size=32, schema=cr.schema, space=cr.space, config={"k": 1})
    PackedWriter(tmp_path / "d", **kw)  # reserves ~12 MB, then "killed"
    monkeypatch.setattr(shutil, "disk_usage", _fake_disk(3 << 20))
    with pytest.raises(UserError, match="not enough free disk space"):
        PackedWriter(tmp_path / "other", **kw)
    w = PackedWriter(tmp_path / "d", **kw)  # the blocks are already there: no refusal
    assert w.images.shape == (4000, 32, 32, 3)


def test_disk_full_while_reserving_is_a_clear_error(tmp_path, capsys, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    out = tmp_path / "ds"
    code, _, err = run(["data", "build", "--creator", TOY, "--n", "10", "--size", "16", "-o", out], capsys)
    assert_user_error(code, err, str(out), "the disk is full", "rerun the same command to resume")


def test_write_error_during_build_is_a_clear_error(tmp_path, capsys, monkeypatch):
    calls = []

    def failing(path, obj):
        calls.append(path)
        if len(calls) > 1:  # the first state file goes through, then the disk fills up
            raise OSError(errno.ENOSPC, "No space left on device")
        Path(path).write_text(json.dumps(obj))

    monkeypatch.setattr(packed, "write_json_atomic", failing)
    out = tmp_path / "ds"
    code, _, err = run(["data", "build", "--creator", TOY, "--n", "10", "--size", "16", "-o", out], capsys)
    assert_user_error(code, err, str(out), "the disk is full")


# ---- 5. data build -o FILE, interrupted builds -----------------------------------------------------


def test_build_into_an_existing_file_is_refused(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    code, _, err = run(["data", "build", "--creator", TOY, "--n", "4", "--size", "16", "-o", f], capsys)
    assert_user_error(code, err, str(f), "is a file")
    assert f.read_text() == "keep me"
    with pytest.raises(UserError, match="is a file, not a folder"):
        PackedWriter(f, n=1, size=8, schema=TagSchema([], []), space=None, config={})


def test_import_into_an_existing_file_is_refused(tmp_path, capsys):
    src = art_folder(tmp_path / "art")
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    code, _, err = run(["data", "import", src, "-o", f], capsys)
    assert_user_error(code, err, str(f), "not a folder")
    assert f.read_text() == "keep me"


def test_inspect_n_out_of_range(tmp_path, capsys):
    small_dataset(tmp_path / "d")
    code, _, err = run(["data", "inspect", tmp_path / "d", "--n", "0"], capsys)
    assert_user_error(code, err, "--n 0")


def _children(pid: int) -> list[int]:
    """Every live descendant of `pid` (read from /proc), children first."""
    by_parent: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            by_parent.setdefault(int(fields[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        kids = by_parent.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_killed_parallel_build_leaves_no_processes(sig, tmp_path):
    out = tmp_path / "ds"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(TESTS / "core"), os.environ.get("PYTHONPATH", "")])
    )
    env["CHARFORGE_PROGRESS"] = "0"
    cmd = [sys.executable, "-m", "charforge", "data", "build", "--creator", TOY, "--n", "40000"]
    cmd += ["--size", "64", "--chunk", "20", "--workers", "2", "-o", str(out)]
    # as a build run from a terminal: Ctrl-C is not ignored, even when pytest itself was started as a background
    # job of a non-interactive shell (which ignores SIGINT, a disposition children would inherit)
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 180
        kids: list[int] = []
        while time.monotonic() < deadline and proc.poll() is None:  # wait until the workers render
            state = out / ".build_state.json"
            kids = _children(proc.pid)
            if len(kids) >= 2 and state.exists() and json.loads(state.read_text() or "{}").get("done"):
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        assert len(kids) >= 2, "the build never started its workers"
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if sig != "SIGKILL":
        assert proc.returncode != 0, err
        assert "Traceback" not in err, err
        assert "rerun the same command to resume" in err, err
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.2)
    left = [k for k in kids if _alive(k)]
    for k in left:  # do not leave them behind even when the test fails
        os.kill(k, signal.SIGKILL)
    assert not left, f"{sig}: processes still running after the build was stopped: {left}"
    # what was finished is kept: the same command resumes from the state file
    assert (out / ".build_state.json").exists() and not (out / "manifest.json").exists()


def test_small_parallel_build_still_finishes(tmp_path):
    ds = build_from_creator(
        tmp_path / "d", creator=TOY, n=12, size=16, chunk=4, workers=2, show_progress=False
    )
    serial = build_from_creator(tmp_path / "s", creator=TOY, n=12, size=16, chunk=4, show_progress=False)
    assert ds.manifest["checksums"] == serial.manifest["checksums"]
