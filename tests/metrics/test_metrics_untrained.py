"""Tags a model never saw are reported apart from the precision mean, and generating with them warns."""

import subprocess
import sys

import numpy as np
import torch
from metrics_toydata import ToyGenerator

from charforge import sampling
from charforge.core.tags import make_girls_moe_schema
from charforge.data.packed import load_packed
from charforge.metrics.report import evaluate
from charforge.models.config import ACGANConfig
from charforge.models.families import build_network
from charforge.models.generator import save_generator


def test_precision_leaves_untrained_tags_out_of_the_mean(toy_data_dir, toy_tagger, tmp_path):
    data = load_packed(toy_data_dir)
    hat = data.schema.index("hat")
    draw = ToyGenerator(size=16)

    def no_hats(tags, seeds):  # a generator that never learned "hat"
        tags = np.array(tags)
        tags[:, hat] = 0
        return draw(tags, seeds)

    sample = lambda c, n, rng: data.schema.sample_conditional(n, rng, data.tag_frequencies, c)  # noqa: E731
    plain = evaluate(
        data, no_hats, sample, tmp_path / "a", tagger=toy_tagger, metrics="precision", precision_n=20
    )["metrics"]["precision"]
    assert plain["min_tag"] == "hat" and plain["per_tag"]["hat"] < 0.2  # counted, it drags the mean down
    rep = evaluate(
        data,
        no_hats,
        sample,
        tmp_path / "b",
        tagger=toy_tagger,
        metrics="precision",
        precision_n=20,
        untrained_tags=["hat"],
    )
    r = rep["metrics"]["precision"]
    assert r["untrained_tags"] == ["hat"] and r["min_tag"] != "hat"
    assert r["mean"] > plain["mean"] and "hat" in r["per_tag"]  # still shown, not averaged
    assert "left out of the mean" in r["note"]
    assert "Left out of the mean and minimum: hat" in (tmp_path / "b" / "report.md").read_text()


def test_generate_warns_about_a_tag_the_model_never_saw(tmp_path):
    schema = make_girls_moe_schema()
    freqs = np.full(len(schema), 0.2)
    freqs[schema.index("hat")] = 0.0
    cfg = ACGANConfig(resolution=16, z_dim=16, g_width=8, g_blocks=1, g_upscalers=2, g_final_kernel=3)
    torch.manual_seed(0)
    path = save_generator(
        tmp_path / "g.safetensors",
        build_network(cfg, len(schema)).state_dict(),
        cfg,
        schema,
        freqs,
        model_id="nohat",
    )
    bundle = sampling.load_generator(path)
    assert sampling.untrained_requested(bundle, schema.parse("hat, blue eyes")) == ["hat"]
    assert sampling.untrained_requested(bundle, schema.parse("-hat, smile")) == []
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "charforge",
            "generate",
            "--model",
            str(path),
            "--tags",
            "hat",
            "--n",
            "2",
            "-o",
            str(tmp_path / "g.png"),
            "--no-watermark",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "saw no training image with 'hat'" in r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "charforge",
            "generate",
            "--model",
            str(path),
            "--tags",
            "smile",
            "--n",
            "1",
            "-o",
            str(tmp_path / "s.png"),
            "--no-watermark",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "warning" not in r.stderr


def test_memorisation_says_when_it_generated_fewer_than_asked(toy_data_dir, toy_tagger, tmp_path):
    data = load_packed(toy_data_dir)
    sample = lambda c, n, rng: data.schema.sample_conditional(n, rng, data.tag_frequencies, c)  # noqa: E731
    m = evaluate(
        data,
        ToyGenerator(size=16),
        sample,
        tmp_path / "m",
        tagger=toy_tagger,
        metrics="memorisation",
        sample_n=200,
    )["metrics"]["memorisation"]
    assert m["generated"] == 80 and m["requested"] == 200
    assert "80 generated images, not the 200 asked for" in m["note"]
    assert "not the 200 asked for" in (tmp_path / "m" / "report.md").read_text()


def test_the_report_says_when_the_judge_cannot_read_the_data(toy_data_dir, toy_tagger, tmp_path):
    """A judge that reads the data's own tags badly (here: a blinded copy of the toy judge; in practice the
    shipped judge on a foreign style) makes the precision figure say little about the model: the report says
    so. The toy judge, which reads the toy data, gets no such note."""
    import copy

    data = load_packed(toy_data_dir)
    draw = ToyGenerator(size=16)
    sample = lambda c, n, rng: data.schema.sample_conditional(n, rng, data.tag_frequencies, c)  # noqa: E731
    blind = copy.deepcopy(toy_tagger)
    with torch.no_grad():
        for p in blind.net.parameters():
            p.zero_()
        head_bias = [p for p in blind.net.parameters() if p.ndim == 1 and len(p) == len(data.schema)][-1]
        head_bias.fill_(-5.0)  # every independent tag off, every group's first tag on, whatever the picture
    seen = {}
    for name, judge in (("sighted", toy_tagger), ("blind", blind)):
        r = evaluate(data, draw, sample, tmp_path / name, tagger=judge, metrics="precision", precision_n=10)[
            "metrics"
        ]["precision"]
        real = [v for v in r["judge_on_real"].values() if v is not None]
        seen[name] = (float(np.mean(real)), r["note"], (tmp_path / name / "report.md").read_text())
    assert seen["sighted"][0] >= 0.8 and "judge reads this data" not in seen["sighted"][1]
    assert seen["blind"][0] < 0.8 and "judge reads this data's own tags at" in seen["blind"][1]
    assert "**Note:** the judge reads this data's own tags" in seen["blind"][2]


def test_the_precision_plot_draws_the_mean_the_report_gives(tmp_path, monkeypatch):
    """precision.png drew the mean of all 34 tags (0.29 on a lorelei fine-tune) beside report.md's and the
    terminal's 0.36, which leaves out tags with no training example; now its line is that mean and those bars
    are grey."""
    import charforge.metrics.precision as precision

    figs = []
    monkeypatch.setattr(precision, "save_figure", lambda fig, path: figs.append(fig))
    per_tag = {"red hair": 0.9, "blue hair": 0.5, "hat": 0.0, "blue eyes": 0.1}
    precision.plot_precision(per_tag, tmp_path / "p.png", left_out=["hat", "blue eyes"])
    ax = figs[0].axes[0]
    (label,) = [t.get_text() for t in ax.get_legend().get_texts()]
    assert label.startswith("mean 0.70 (grey: 2 tags with no training example"), label
    assert abs(ax.lines[0].get_ydata()[0] - 0.7) < 1e-9
    greys = [p.get_facecolor() for p in ax.patches]
    assert greys[2] == greys[3] != greys[0]
