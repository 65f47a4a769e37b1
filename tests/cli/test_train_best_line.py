"""The 'best:' line `charforge train` prints when the best checkpoint is not the last: which two grids to
compare, and that models of other steps are not kept."""

from __future__ import annotations

from charforge.cli.train import best_line


def test_the_best_line_names_the_two_grids_and_says_other_steps_are_gone(tmp_path):
    """It said "look at samples/ and use the one that looks right"; on a lorelei walk the grid that looked
    right was step 772's, whose model had been pruned (only the last 3 and the best are kept)."""
    (tmp_path / "samples").mkdir()
    for s in (1083, 1337):
        (tmp_path / "samples" / f"step_{s:07d}.png").write_bytes(b"")
    summary = {
        "step": 1337,
        "best": {"step": 1083, "hist_dist": 0.0518, "path": "ck/generator-best.safetensors"},
    }
    line = best_line(summary, tmp_path, 3)
    assert line.startswith("best:  step 1083 (hist_dist 0.0518")
    assert f"compare {tmp_path / 'samples' / 'step_0001083.png'} with " in line
    assert "step_0001337.png and use the one that looks right" in line
    assert "only the best and the last 3 checkpoints; --set keep_ckpts=N keeps more" in line
    assert best_line({**summary, "step": 1083}, tmp_path, 3) == ""  # the best is the last: nothing to compare
    (tmp_path / "samples" / "step_0001083.png").unlink()
    assert f"compare their grids in {tmp_path / 'samples'}" in best_line(summary, tmp_path, 3)
