"""portable-v1 seeds: Python (charforge.web.seeds) and JavaScript (static/portable.js, run with node) agree."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from charforge.core.tags import TagGroup, TagSchema, make_girls_moe_schema
from charforge.errors import UserError
from charforge.web import seeds as S

PORTABLE_JS = Path(S.__file__).parent / "static" / "portable.js"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs)")

# Many seeds: small ones, a spread, and the ends of the range.
SEEDS = [0, 1, 2, 3, 7, 42, 1000, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1] + [
    int(x) for x in np.random.default_rng(5).integers(0, 2**32, 300, dtype=np.uint64)
]

HARNESS = """
const P = require(process.argv[1]);
const job = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = {};
out.uniforms = job.seeds.map((s) => Array.from(P.uniforms(s, job.stream, job.n)));
out.normals = job.seeds.map((s) => Array.from(P.normals(s, job.z)));
out.noise = job.seeds.map((s) => Array.from(P.noise(s, job.z, job.psi)));
out.tags = job.tag_jobs.map((t) => job.seeds.slice(0, 60).map((s) => Array.from(P.sampleTags(t.schema, t.freqs, t.constraints, s))));
out.npc = P.npcCandidateSeeds(job.npc_seed, 5, 40);
const bad = [];
for (const s of [-1, 2 ** 32, 1.5]) { try { P.uniforms(s, 1, 1); } catch (e) { bad.push(e.message); } }
out.bad = bad;
process.stdout.write(JSON.stringify(out));
"""


def run_node(job: dict) -> dict:
    r = subprocess.run(
        [NODE, "-e", HARNESS, str(PORTABLE_JS)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def small_schema() -> TagSchema:
    """Groups with zero-frequency tags and an all-zero group, a conflict pair, odd frequencies."""
    return TagSchema(
        groups=[
            TagGroup("colour", ("red", "green", "blue", "never")),
            TagGroup("unlabelled", ("a", "b")),
            TagGroup("one", ("only",)),
        ],
        independent=["x", "y", "z", "w"],
        conflicts=[("x", "y"), ("y", "z")],
    )


def constraints_json(c) -> dict:
    return {"groups": c.groups, "independent": c.independent} if c is not None else None


def tag_jobs():
    girls = make_girls_moe_schema()
    gf = girls.frequencies(girls.sample_training(400, np.random.default_rng(3)))
    gf[girls.index("hat")] = 0.0
    small = small_schema()
    sf = np.array([0.5, 0.25, 0.125, 0.0, 0.0, 0.0, 1.0, 0.9, 0.8, 0.7, 0.1234567], np.float32)
    return [
        (girls, gf, None),
        (girls, gf, girls.parse("blonde hair, smile, -hat, long hair")),
        (girls, gf, girls.parse("short hair, blue eyes")),
        (small, sf, None),
        (small, sf, small.parse("y")),
        (small, sf, small.parse("green, -x")),
    ]


@pytest.fixture(scope="module")
def both():
    jobs = tag_jobs()
    job = {
        "seeds": SEEDS,
        "stream": S.STREAM_TAGS,
        "n": 9,
        "z": 7,  # odd: the last Box-Muller pair loses its sine
        "psi": 0.7,
        "npc_seed": 12345,
        "tag_jobs": [
            {"schema": sch.to_dict(), "freqs": [float(f) for f in fr], "constraints": constraints_json(c)}
            for sch, fr, c in jobs
        ],
    }
    return jobs, run_node(job)


def test_known_answers_pin_the_definition():
    """The first words of seed 0 are fixed forever: a change here is a new scheme, not a fix."""
    assert S.mix64(np.uint64(0)) == np.uint64(0)
    u = S.uniforms([0], S.STREAM_NOISE, 3)[0]
    assert u.tolist() == [0.8054269619380791, 0.6568489343692039, 0.5364651009670784]
    z = S.normals([0], 2)[0]
    assert z == pytest.approx([-0.9995750223946059, -1.5082258164393354], abs=1e-12)


@needs_node
def test_uniforms_are_bit_identical(both):
    _, js = both
    py = S.uniforms(SEEDS, S.STREAM_TAGS, 9)
    assert np.array_equal(np.asarray(js["uniforms"]), py)
    assert py.min() >= 0.0 and py.max() < 1.0


@needs_node
def test_normals_and_float32_noise_agree(both):
    _, js = both
    py = S.normals(SEEDS, 7)
    assert np.abs(np.asarray(js["normals"]) - py).max() <= 1e-12
    noise_py = S.noise(SEEDS, 7, 0.7)
    noise_js = np.asarray(js["noise"], np.float32)
    assert noise_py.dtype == np.float32
    assert (
        np.abs(noise_js - noise_py).max() <= 1e-6
    )  # float32 rounding of a ~1e-16 difference, at most one ulp
    assert (noise_js == noise_py).mean() > 0.999


def test_normals_look_standard():
    z = S.normals(list(range(2000)), 64).ravel()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs(np.mean(z**3)) < 0.03 and abs(np.mean(z**4) - 3.0) < 0.06


@needs_node
def test_tag_draws_are_identical(both):
    jobs, js = both
    for (schema, freqs, c), got in zip(jobs, js["tags"]):
        py = S.sample_tags(schema, freqs, c, SEEDS[:60])
        assert np.array_equal(np.asarray(got, np.float32), py), schema.tags
        schema.validate_matrix(py)


def test_tag_draws_follow_constraints_and_frequencies():
    girls = make_girls_moe_schema()
    freqs = np.full(len(girls), 0.3, np.float32)
    freqs[girls.index("hat")] = 0.0
    c = girls.parse("red hair, smile, -glasses")
    m = S.sample_tags(girls, freqs, c, list(range(3000)))
    assert (m[:, girls.index("red hair")] == 1).all() and (m[:, girls.index("smile")] == 1).all()
    assert (m[:, girls.index("glasses")] == 0).all() and (m[:, girls.index("hat")] == 0).all()
    assert not ((m[:, girls.index("long hair")] == 1) & (m[:, girls.index("short hair")] == 1)).any()
    eyes = m[:, girls.group_slices()[1]]
    assert (eyes.sum(axis=1) == 1).all()
    assert np.abs(eyes.mean(axis=0) - 0.1).max() < 0.03  # equal frequencies: each eye colour ~1/10
    assert abs(m[:, girls.index("blush")].mean() - 0.3) < 0.03
    # fixing one tag leaves the others' draws alone (a fixed draw layout)
    free = S.sample_tags(girls, freqs, None, list(range(200)))
    fixed = S.sample_tags(girls, freqs, girls.parse("smile"), list(range(200)))
    keep = [i for i, t in enumerate(girls.tags) if t not in ("smile", "long hair", "short hair")]
    assert np.array_equal(free[:, keep], fixed[:, keep])


@needs_node
def test_npc_candidate_seeds_agree(both):
    _, js = both
    assert js["npc"] == S.npc_candidate_seeds(12345, 5, 40)
    assert all(0 <= s < 2**31 for s in js["npc"])


@needs_node
def test_bad_seeds_are_refused_in_both(both):
    _, js = both
    assert len(js["bad"]) == 3 and all("seeds are whole numbers from 0 to 4294967295" in m for m in js["bad"])
    for bad in (-1, 2**32):
        with pytest.raises(UserError, match="seeds are whole numbers"):
            S.uniforms([bad], 1, 1)
    with pytest.raises(UserError, match="valid seed schemes are torch-v1, portable-v1"):
        S.check_seed_scheme("numpy")
