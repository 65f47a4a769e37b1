"""Shared checks for the shipped generator tests."""

import numpy as np

from charforge.sampling import characters_for_request
from charforge.tagger.net import judge_for, load_tagger


def draws_the_tags(
    bundle, requests: tuple[str, ...], n: int, seed: int, least: float = 0.75
) -> dict[str, np.ndarray]:
    """Generate n images per request (fixed seed) and assert the shipped judge reads each asked tag in at least
    `least` of them, and that a request is reproducible; returns the images per request."""
    tagger = load_tagger(judge_for(bundle.schema.tags))
    out = {}
    for tags in requests:
        images, _, _ = characters_for_request(bundle, tags, n, seed)
        s = bundle.image_size
        assert images.shape == (n, s, s, 3) and images.dtype == np.uint8
        judged = tagger.predict_tags(images)
        for t in tags.split(", "):
            assert judged[:, bundle.schema.index(t)].mean() >= least, (tags, t)
        out[tags] = images
    again, _, _ = characters_for_request(bundle, requests[0], n, seed)
    assert np.array_equal(again, out[requests[0]])
    return out
