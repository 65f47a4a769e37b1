"""The shipped multi-style generator (issue 16): `--model styles` draws each style on request, read by the
shipped styles judge on fixed seeds."""

import pytest

from charforge.creators.builtin.styles import STYLE_TAGS, STYLES
from charforge.models.generator import shipped_generators
from charforge.sampling import characters_for_request, load_generator
from charforge.tagger.net import judge_for, load_tagger


@pytest.mark.skipif("styles" not in shipped_generators(), reason="generator_styles is not in this install")
def test_styles_model_draws_each_style_on_request():
    bundle = load_generator("styles")
    tagger = load_tagger(judge_for(bundle.schema.tags))
    assert bundle.schema.tags == tagger.schema.tags and len(bundle.schema) == 40
    for style in STYLES:
        tag = STYLE_TAGS[style]
        images, _, _ = characters_for_request(bundle, f"{tag}, blonde hair", 24, 100)
        judged = tagger.predict_tags(images)
        share = judged[:, bundle.schema.index(tag)].mean()
        assert share >= 0.7, (style, share)  # eval, 100 images per tag: 0.87-1.00
        assert judged[:, bundle.schema.index("blonde hair")].mean() >= 0.9
    with pytest.raises(Exception, match="group 'style' takes one tag"):
        characters_for_request(bundle, "pixel art, chibi", 1, 0)


@pytest.mark.skipif("styles" not in shipped_generators(), reason="generator_styles is not in this install")
def test_interpolation_moves_between_styles():
    """cel shading -> screentones: the end frames are the two styles (judged), the middle is a blend."""
    from charforge.sampling import interpolate, sample_tags_for_seeds

    bundle = load_generator("styles")
    tagger = load_tagger(judge_for(bundle.schema.tags))
    seed = (
        1  # cel shading is the style the model draws least surely (precision 0.87); this seed's reads as cel
    )
    ends = [
        (seed, sample_tags_for_seeds(bundle, bundle.schema.parse(t), [seed])[0])
        for t in ("cel shading", "screentones")
    ]
    frames = interpolate(bundle, ends[0], ends[1], 5)
    sl = bundle.schema.group_slices()[[g.name for g in bundle.schema.groups].index("style")]
    read = [bundle.schema.tags[sl][i] for i in tagger.predict_proba(frames)[:, sl].argmax(1)]
    assert read[0] == "cel shading" and read[-2:] == ["screentones", "screentones"], read
    step = [float(abs(frames[i + 1].astype(int) - frames[i].astype(int)).mean()) for i in range(4)]
    assert all(s > 0.5 for s in step)  # it moves at every frame, not in one jump at the end
