"""Evaluation plumbing with known answers: perfect, collapsed and copying generators on toy data."""

import json

import numpy as np
import pytest
import torch
from metrics_toydata import ToyGenerator

from charforge.data.packed import load_packed
from charforge.errors import UserError
from charforge.metrics.distances import tag_inception_score
from charforge.metrics.registry import METRICS, parse_metrics
from charforge.metrics.report import evaluate


class CopyGenerator:
    """Returns real dataset images with exactly the requested tag vector (a perfect, memorising generator)."""

    def __init__(self, data):
        self.images, self.tags = np.asarray(data.images), np.asarray(data.tags)
        self.key = {}
        for i, row in enumerate(self.tags):
            self.key.setdefault(row.tobytes(), []).append(i)

    def __call__(self, tags, seeds):
        out = []
        for row, s in zip(np.asarray(tags, np.uint8), seeds):
            rows = self.key[row.tobytes()]
            out.append(self.images[rows[int(s) % len(rows)]])
        return np.stack(out)

    def sample_tags(self, constraints, n, rng):
        """Tag vectors of real rows that satisfy the constraints (so every request has a real match)."""
        ok = np.ones(len(self.tags), bool)
        schema_tags = self._schema.tags
        for tag in [
            *(v for v in constraints.groups.values() if v),
            *(t for t, v in constraints.independent.items() if v),
        ]:
            ok &= self.tags[:, schema_tags.index(tag)] == 1
        return self.tags[rng.choice(np.flatnonzero(ok), n)].astype(np.float32)


def _copy_gen(data):
    g = CopyGenerator(data)
    g._schema = data.schema
    return g


def _freq_sampler(data):
    return lambda c, n, rng: data.schema.sample_conditional(n, rng, data.tag_frequencies, c)


def test_parse_metrics_validates_against_the_registry():
    assert parse_metrics("fid_domain, precision", have_tagger=True) == ["fid_domain", "precision"]
    assert "precision" not in parse_metrics(None, have_tagger=False)
    inception = [m for m in METRICS if METRICS[m].needs_inception]
    assert inception == ["fid_inception", "kid_inception"]
    assert parse_metrics("all", have_tagger=True) == [m for m in METRICS if m not in inception]
    assert parse_metrics("all", have_tagger=True, have_inception=True) == list(METRICS)
    with pytest.raises(UserError, match="need the FID Inception-v3 weights; pass --inception-weights FILE"):
        parse_metrics("fid_generic,fid_inception", have_tagger=False)
    with pytest.raises(UserError, match="unknown metric.*'fid'.*Valid: fid_domain"):
        parse_metrics("fid", have_tagger=True)
    with pytest.raises(UserError, match="need a tagger"):
        parse_metrics("precision", have_tagger=False)


def test_tag_inception_score_known_answers(toy_tagger):
    schema = toy_tagger.schema
    n = 300
    p = np.zeros((n, len(schema)), np.float32)
    p[np.arange(n), np.arange(n) % 3] = 1.0  # confident and uniform over the 3 hair colours -> IS = 3
    p[:, 3] = 1.0  # always the same eye colour -> IS = 1
    p[:, 5:] = 0.5  # independent tags undecided -> IS = 1
    s = tag_inception_score(p, schema)
    assert s["hair color"] == pytest.approx(3.0, rel=1e-4)
    assert s["eye color"] == pytest.approx(1.0, abs=1e-4) and s["independent tags"] == pytest.approx(
        1.0, abs=1e-4
    )
    assert s["total"] == pytest.approx(3.0, rel=1e-4)


def test_perfect_generator_scores_precision_one_and_no_distance(toy_data_dir, toy_tagger, tmp_path):
    data = load_packed(toy_data_dir)
    gen = _copy_gen(data)
    rep = evaluate(
        data,
        gen,
        gen.sample_tags,
        tmp_path / "r",
        tagger=toy_tagger,
        metrics="precision,fid_domain,kid_domain,is_domain",
        n=40,
        runs=2,
        precision_n=30,
    )
    m = rep["metrics"]
    assert m["precision"]["mean"] >= 0.97 and m["precision"]["min"] >= 0.85
    assert set(m["precision"]["per_tag"]) == set(data.schema.tags)
    # real images with the same tag vectors as half A: closer to A than the other real half B is
    fid_m, fid_r = m["fid_domain"]["model"]["mean"], m["fid_domain"]["real_baseline"]["mean"]
    assert fid_m < 0.5 * fid_r and len(m["fid_domain"]["model"]["runs"]) == 2
    assert m["kid_domain"]["model"]["mean"] <= m["kid_domain"]["real_baseline"]["mean"] + 1e-9
    is_m, is_r = m["is_domain"]["model"]["total"]["mean"], m["is_domain"]["real_baseline"]["total"]["mean"]
    assert is_m == pytest.approx(is_r, rel=0.02)  # same tags, real pictures: the same score
    md = (tmp_path / "r" / "report.md").read_text()
    assert "precision.png" in md and (tmp_path / "r" / "precision.png").exists()


def test_diversity_flags_a_collapsed_generator(toy_data_dir, toy_tagger, tmp_path):
    data = load_packed(toy_data_dir)
    kw = dict(tagger=toy_tagger, metrics="diversity", n=40, runs=1)
    ok = evaluate(data, ToyGenerator(16), _freq_sampler(data), tmp_path / "ok", **kw)["metrics"]["diversity"]
    bad = evaluate(data, ToyGenerator(16, collapse=True), _freq_sampler(data), tmp_path / "bad", **kw)[
        "metrics"
    ]["diversity"]
    assert not ok["mode_collapse"] and ok["ratio"] > 0.7
    assert bad["mode_collapse"] and bad["ratio"] < 0.1


def test_memorisation_finds_exact_copies(toy_data_dir, toy_tagger, tmp_path):
    data = load_packed(toy_data_dir)
    gen = _copy_gen(data)
    r = evaluate(
        data,
        gen,
        gen.sample_tags,
        tmp_path / "m",
        tagger=toy_tagger,
        metrics="memorisation",
        n=40,
        sample_n=20,
    )["metrics"]["memorisation"]
    assert r["feature"]["min"] == pytest.approx(0.0, abs=1e-4) and r["pixel_rms"]["median"] == pytest.approx(
        0.0, abs=1e-4
    )
    assert r["near_copies"] == 20 and len(r["closest_pairs"]) == 16
    fresh = evaluate(
        data,
        ToyGenerator(16),
        _freq_sampler(data),
        tmp_path / "f",
        tagger=toy_tagger,
        metrics="memorisation",
        n=40,
        sample_n=20,
    )["metrics"]["memorisation"]
    assert fresh["pixel_rms"]["min"] > 1.0  # new noise: no pixel copy
    for name in ("memorisation_pairs.png", "memorisation_hist.png"):
        assert (tmp_path / "m" / name).stat().st_size > 1000


def test_generic_space_without_a_tagger(toy_data_dir, tmp_path):
    torch.set_num_threads(1)
    data = load_packed(toy_data_dir)
    rep = evaluate(
        data,
        ToyGenerator(16),
        _freq_sampler(data),
        tmp_path / "g",
        metrics="fid_generic,kid_generic",
        n=4,
        runs=1,
    )
    m = rep["metrics"]
    assert m["fid_generic"]["feature_dim"] == 1280 and m["fid_generic"]["model"]["mean"] > 0
    assert np.isfinite(m["kid_generic"]["real_baseline"]["mean"])


def test_tsne_colours_by_the_chosen_group(toy_data_dir, toy_tagger, tmp_path):
    data = load_packed(toy_data_dir)
    rep = evaluate(
        data,
        ToyGenerator(16),
        _freq_sampler(data),
        tmp_path / "t",
        tagger=toy_tagger,
        metrics="tsne",
        tsne_n=30,
        tsne_group="eye color",
    )
    assert (
        rep["metrics"]["tsne"]["group"] == "eye color" and (tmp_path / "t" / "tsne.png").stat().st_size > 1000
    )
    with pytest.raises(UserError, match="unknown group 'hat'"):
        evaluate(
            data,
            ToyGenerator(16),
            _freq_sampler(data),
            tmp_path / "h",
            tagger=toy_tagger,
            metrics="tsne",
            tsne_group="hat",
        )


def test_finished_metrics_are_reused_on_rerun(toy_data_dir, toy_tagger, tmp_path):
    data = load_packed(toy_data_dir)
    calls = []

    def counting(tags, seeds):
        calls.append(len(tags))
        return ToyGenerator(16)(tags, seeds)

    kw = dict(tagger=toy_tagger, metrics="fid_domain", n=20, runs=2)
    first = evaluate(data, counting, _freq_sampler(data), tmp_path / "x", **kw)
    n_calls = len(calls)
    second = evaluate(data, counting, _freq_sampler(data), tmp_path / "x", **kw)
    assert len(calls) == n_calls > 0  # nothing regenerated
    assert first["metrics"]["fid_domain"]["model"] == second["metrics"]["fid_domain"]["model"]
    report = json.loads((tmp_path / "x" / "report.json").read_text())
    assert report["metrics"]["fid_domain"]["samples_per_run"] == 20


def test_precision_free_tags_skip_pairs_the_data_never_shows(toy_tagger, tmp_path):
    from metrics_toydata import render_toy, toy_schema

    from charforge.data.packed import write_packed

    schema = toy_schema()  # independent tags: hat, smile
    rng = np.random.default_rng(0)
    n = 240
    tags = schema.sample_training(n, rng).astype(np.uint8)
    hat, smile = schema.index("hat"), schema.index("smile")
    kind = rng.integers(0, 3, n)  # hat, smile or neither: never both (expected together 240 / 9 = 27)
    tags[:, hat], tags[:, smile] = kind == 0, kind == 1
    data = write_packed(tmp_path / "d", render_toy(tags, 16, rng), tags, schema)
    seen = []

    def gen(t, seeds):
        seen.append(np.asarray(t).copy())
        return ToyGenerator(16)(t, seeds)

    r = evaluate(
        data, gen, _freq_sampler(data), tmp_path / "r", tagger=toy_tagger, metrics="precision", precision_n=20
    )["metrics"]["precision"]
    assert r["label_conflicts"] == [["hat", "smile"]]
    per = len(schema) * 20
    main, plain = np.concatenate(seen[: per // 20]), np.concatenate(seen)[per:]
    assert len(main) == per and len(plain) == per
    assert not (
        main[:, hat].astype(bool) & main[:, smile].astype(bool)
    ).any()  # the headline pass: never both
    assert (
        plain[:, hat].astype(bool) & plain[:, smile].astype(bool)
    ).any()  # the paper's independent draw: some
    # a model whose own sampler already skips the pair (trained with learned conflicts) still gets the plain draw
    seen.clear()
    strict = data.schema.with_conflicts([("hat", "smile")])
    own = lambda c, k, g: strict.sample_conditional(k, g, data.tag_frequencies, c)  # noqa: E731
    evaluate(data, gen, own, tmp_path / "r2", tagger=toy_tagger, metrics="precision", precision_n=20)
    plain = np.concatenate(seen)[per:]
    assert (plain[:, hat].astype(bool) & plain[:, smile].astype(bool)).any()
    assert set(r["independent_sampling"]) == {"per_tag", "mean", "min", "min_tag"}
    assert r["mean"] >= 0.9 and r["per_tag"]["hat"] >= 0.9  # the toy generator draws what it is asked for
    md = (tmp_path / "r" / "report.md").read_text()
    assert "skipping pairs the data never shows together (hat + smile)" in md and "paper's protocol" in md


def test_sharpness_is_one_for_a_copying_generator_and_low_for_a_blurring_one(toy_data_dir, tmp_path):
    import cv2

    from charforge.metrics.report import render_markdown

    data = load_packed(toy_data_dir)
    gen = _copy_gen(data)

    def blurred(tags, seeds):
        return np.stack([cv2.GaussianBlur(im, (0, 0), 1.0) for im in gen(tags, seeds)])

    r = evaluate(data, gen, _freq_sampler(data), tmp_path / "a", metrics="sharpness", n=40)
    s = r["metrics"]["sharpness"]
    assert s["samples"] == 40 and s["ratio"] > 0.5 and 0.3 < s["real_vs_real"] < 3
    b = evaluate(data, blurred, _freq_sampler(data), tmp_path / "b", metrics="sharpness", n=40)
    assert b["metrics"]["sharpness"]["ratio"] < 0.5 * s["ratio"]
    assert "## Sharpness" in render_markdown(b)


def test_report_names_the_spaces_a_model_was_trained_against(tmp_path):
    from types import SimpleNamespace

    from charforge.core.tags import make_girls_moe_schema
    from charforge.metrics.report import spaces_in_training
    from charforge.models.config import ACGANConfig
    from charforge.models.families import build_network
    from charforge.models.generator import save_generator
    from charforge.utils.io import sha256_file

    schema = make_girls_moe_schema()
    cfg = ACGANConfig(resolution=16, z_dim=16, g_width=8, g_blocks=1, g_upscalers=2, g_final_kernel=3)
    net = build_network(cfg, len(schema))
    judge, other = tmp_path / "judge.bin", tmp_path / "teacher.bin"
    judge.write_bytes(b"judge")
    other.write_bytes(b"teacher")

    def model(name, prov):
        path = tmp_path / f"{name}.safetensors"
        save_generator(
            path, net.state_dict(), cfg, schema, np.full(len(schema), 0.2), model_id=name, provenance=prov
        )
        return path

    tagger = SimpleNamespace(path=judge)
    assert spaces_in_training(model("none", {}), tagger) == []
    assert spaces_in_training(model("t", {"teacher_sha256": sha256_file(other)}), tagger) == []
    assert spaces_in_training(model("j", {"teacher_sha256": sha256_file(judge)}), tagger) == ["domain"]
    assert spaces_in_training(model("g", {"feature_spaces_in_training": ["generic"]}), tagger) == ["generic"]
