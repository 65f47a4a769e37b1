"""Precision per render style (issue 16): with the creator itself as a perfect generator and the shipped
styles judge, every style scores high; a generator that ignores the style request is caught per style."""

import numpy as np

from charforge.creators.builtin import BuiltinCreator
from charforge.creators.builtin.styles import STYLES
from charforge.data.packed import load_packed, write_packed
from charforge.errors import UserError
from charforge.metrics.precision import attribute_precision
from charforge.metrics.registry import EvalContext
from charforge.tagger.net import judge_for, load_tagger


def _creator_as_generator(multi, ignore_style=False):
    def generate(tags, seeds):
        rows = []
        for vec, seed in zip(tags, seeds):
            names = multi.schema.from_vector(vec)
            if ignore_style:
                names = [t for t in names if multi.schema.group_of(t) != "style"] + ["cel shading"]
            rng = np.random.default_rng(int(seed))
            try:
                rows.append(multi.sample_for_tags(multi.schema.parse(names), 1, rng))
            except UserError:  # the independent draw can ask for two hairstyles the creator cannot combine
                keep = [t for t in names if multi.schema.group_of(t) is not None]
                rows.append(multi.sample_for_tags(multi.schema.parse(keep), 1, rng))
        from charforge.core.space import ParamBatch

        batch = ParamBatch.concat(rows)
        return multi.render(batch, 64)

    return generate


def test_precision_per_style_with_the_creator_as_generator(tmp_path):
    multi = BuiltinCreator(styles=STYLES)
    params = multi.sample(120, np.random.default_rng(3))
    write_packed(
        tmp_path / "d", multi.render(params, 64), multi.derive_tags(params).astype(np.uint8), multi.schema
    )
    data = load_packed(tmp_path / "d")
    tagger = load_tagger(judge_for(multi.schema.tags))
    sample = lambda c, n, rng: multi.schema.sample_conditional(n, rng, data.tag_frequencies, c)  # noqa: E731
    ctx = EvalContext(
        data=data,
        generate=_creator_as_generator(multi),
        sample_tags=sample,
        out=tmp_path / "r",
        tagger=tagger,
        precision_n=24,
    )
    r = attribute_precision(ctx)
    assert set(r["per_style"]) == {
        "cel shading",
        "flat color",
        "painterly",
        "screentones",
        "pixel art",
        "chibi",
    }
    for st, v in r["per_style"].items():
        assert v["mean"] >= 0.9 and v["images"] > 100, (st, v["mean"])
        assert v["per_tag"][st] >= 0.9  # the style itself is drawn when asked for
    bad = EvalContext(
        data=data,
        generate=_creator_as_generator(multi, ignore_style=True),
        sample_tags=sample,
        out=tmp_path / "r2",
        tagger=tagger,
        precision_n=24,
    )
    rb = attribute_precision(bad)
    assert rb["per_tag"]["pixel art"] < 0.2 and rb["per_style"]["pixel art"]["per_tag"]["pixel art"] < 0.2
    from charforge.metrics.report import _md_precision

    assert "### Per render style" in "\n".join(_md_precision(r))
