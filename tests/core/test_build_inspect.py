import numpy as np
import pytest

from charforge.cli import main
from charforge.data.build import build_from_creator
from charforge.data.packed import load_packed
from charforge.errors import UserError


def test_build_from_plugin_creator_is_deterministic_and_resumable(tmp_path):
    a = build_from_creator(
        tmp_path / "a", creator="core_toy_creator:make", n=10, size=16, seed=3, chunk=4, show_progress=False
    )
    assert len(a) == 10 and a.images.shape == (10, 16, 16, 3)
    # tags follow the parameters
    params = a.param_batch()
    np.testing.assert_array_equal(np.asarray(a.tags)[:, :3].argmax(1), params.cat[:, 0])
    # a resumed build (first chunk written, then "killed") gives the same bytes
    from charforge.creators.base import get_creator
    from charforge.data.packed import PackedWriter

    cr = get_creator("core_toy_creator:make")
    cfg = {"kind": "creator", "creator": "core_toy_creator:make", "n": 10, "size": 16, "seed": 3, "chunk": 4}
    w = PackedWriter(tmp_path / "b", n=10, size=16, schema=cr.schema, space=cr.space, config=cfg)
    w.write_chunk(0, 0, np.asarray(a.images[:4]), np.asarray(a.tags[:4]), np.asarray(a.params[:4]))
    del w
    b = build_from_creator(
        tmp_path / "b", creator="core_toy_creator:make", n=10, size=16, seed=3, chunk=4, show_progress=False
    )
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))
    assert a.manifest["checksums"] == b.manifest["checksums"]


def test_build_rejects_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="--n"):
        build_from_creator(tmp_path / "x", creator="core_toy_creator:make", n=0)
    with pytest.raises(UserError, match="unknown creator"):
        build_from_creator(tmp_path / "x", creator="nope", n=2)


def test_data_cli_build_and_inspect(tmp_path, capsys):
    out = tmp_path / "ds"
    main(["data", "build", "--creator", "core_toy_creator:make", "--n", "12", "--size", "16", "-o", str(out)])
    main(["data", "inspect", str(out)])
    text = capsys.readouterr().out
    assert "12 x 16x16" in text and "checksums    ok" in text
    assert (out / "inspect" / "sheet.png").stat().st_size > 100
    assert (out / "inspect" / "tag_frequencies.png").stat().st_size > 1000
    assert load_packed(out).manifest["config"]["creator"] == "core_toy_creator:make"


def test_cli_user_error_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", "inspect", str(tmp_path / "missing")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_cli_usage_errors_are_messages_not_tracebacks(capsys):
    for argv in (["data", "build"], ["data", "build", "--n", "abc", "-o", "x"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "Error:" in err and "Traceback" not in err
