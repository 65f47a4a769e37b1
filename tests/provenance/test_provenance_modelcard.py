import numpy as np

from charforge.core.tags import make_girls_moe_schema
from charforge.data.packed import write_packed
from charforge.provenance.modelcard import licence_counts, licence_warning, source_group, write_model_card


def _dataset(tmp_path):
    schema = make_girls_moe_schema()
    rng = np.random.default_rng(0)
    n = 12
    tags = schema.sample_training(n, rng).astype(np.uint8)
    images = rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8)
    items = (
        [{"source": f"creator:builtin#seed0/{i}", "license": "CC0-1.0"} for i in range(8)]
        + [{"source": f"art/cats/{i}.png", "license": ""} for i in range(3)]
        + [{"source": "x.png"}]
    )
    return write_packed(tmp_path / "ds", images, tags, schema, items=items), tags


def test_licence_counts_and_warning(tmp_path):
    ds, _ = _dataset(tmp_path)
    assert licence_counts(ds.manifest) == {"CC0-1.0": 8, "unknown": 4}
    assert "4 of 12" in licence_warning(ds.manifest)
    clean = {"items": [{"source": "a", "license": "CC-BY-4.0"}]}
    assert licence_warning(clean) is None


def test_source_groups():
    assert source_group("creator:builtin#seed3/7") == "creator:builtin"
    assert source_group("art/cats/01.png") == "art/cats"
    assert source_group("") == "unknown"


def test_model_card_contents(tmp_path):
    ds, tags = _dataset(tmp_path)
    run = tmp_path / "run"
    path = write_model_card(
        run,
        dataset_manifest=ds.manifest,
        config={"family": "acgan", "z_dim": 16},
        command="charforge train --preset acgan-64 --data ds",
        steps=1234,
        wall_time_s=75.0,
        metrics={"fid": 41.25, "tag_precision": 0.8, "kid": None},
        tag_freqs=ds.tag_frequencies,
    )
    text = path.read_text()
    assert path == run / "MODEL_CARD.md"
    assert "| `creator:builtin` | CC0-1.0 | 8 |" in text and "| `art/cats` | unknown | 3 |" in text
    assert "unknown licence" in text and "charforge train --preset acgan-64" in text
    assert (
        "steps: 1234" in text and "1m 15s" in text and "| fid | 41.25 |" in text and "| kid | n/a |" in text
    )
    top = int(np.argmax(tags.mean(0)))
    share = f"{100 * tags.mean(0)[top]:.1f}%"
    assert f"| {ds.schema.tags[top]} | {share} |" in text
    assert "## Intended use" in text and "## Limits" in text


def test_model_card_without_metrics_or_freqs(tmp_path):
    path = write_model_card(
        tmp_path,
        dataset_manifest={"items": []},
        config={},
        command="c",
        steps=0,
        wall_time_s=0.0,
        metrics=None,
    )
    text = path.read_text()
    assert "No evaluation was recorded" in text and "Not recorded" in text
