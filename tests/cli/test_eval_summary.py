"""The terminal summary of `charforge eval`: FID as a multiple of the real-vs-real floor, as the docs and
report.md quote it, and the report's warning when the model trained against a feature space."""

from __future__ import annotations

from charforge.cli.eval import summary_lines


def _fid(space, model, real):
    return {
        "space": space,
        "feature_dim": 128,
        "runs": 5,
        "samples_per_run": 300,
        "model": {"mean": model, "spread": 1.0},
        "real_baseline": {"mean": real, "spread": 0.5},
        "vs_baseline": model / real,
    }


def test_fid_lines_give_the_multiple_of_the_floor_and_flag_a_space_used_in_training():
    """Walked on a projected-D fine-tune (D reads the generic network): the terminal said `fid_generic 68.79
    (max-min 1.33); real vs real 15.84` with neither the x4.34 the docs compare nor report.md's 'used in
    training: generic ... can be gamed'."""
    report = {
        "model": {"feature_spaces_in_training": ["generic"]},
        "metrics": {"fid_domain": _fid("domain", 394.2, 39.04), "fid_generic": _fid("generic", 68.79, 15.84)},
        "wall_seconds": 75.0,
    }
    lines = summary_lines(report).splitlines()
    dom = next(x for x in lines if x.startswith("fid_domain"))
    gen = next(x for x in lines if x.startswith("fid_generic"))
    assert dom.endswith("real vs real 39.04 = x10.10 the floor"), dom
    assert "= x4.34 the floor" in gen and "trained against the generic network" in gen, gen
    assert "trained against" not in dom
