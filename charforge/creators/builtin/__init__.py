"""The built-in creator: a parametric anime head-and-shoulders portrait renderer owned by charforge.

creator = BuiltinCreator()
batch = creator.sample(64, np.random.default_rng(0))
images = creator.render(batch, 128)   # (64, 128, 128, 3) uint8
tags = creator.derive_tags(batch)     # (64, 34) float32, make.girls.moe tag order
"""

from __future__ import annotations

import numpy as np

from charforge.core.space import ParamBatch
from charforge.core.tags import TagConstraints, make_girls_moe_schema
from charforge.creators.base import Creator
from charforge.creators.builtin import tags as _tags
from charforge.creators.builtin.params import make_space
from charforge.errors import UserError

MIN_SIZE, MAX_SIZE = 16, 1024  # renderable image sizes in pixels (32..512 is the tested range)


def styles_schema():
    """The 34 make.girls.moe tags plus the exclusive group "style" (one tag per render style)."""
    from charforge.creators.builtin.styles import STYLE_TAGS, STYLES

    return make_girls_moe_schema().with_group("style", [STYLE_TAGS[s] for s in STYLES])


class BuiltinCreator(Creator):
    """`styles=None`: the original creator ("builtin": cel style, 34 tags). `styles=("cel", "pixel", ...)`:
    the multi-style creator ("builtin-styles"): a `style` parameter drawn uniformly over `styles`, and the
    schema gains the style group (all six style tags, so every multi-style dataset shares one layout).
    `style="pixel"` draws the original creator's characters (same space, same tags) in one other style."""

    name = "builtin"

    def __init__(self, styles: tuple[str, ...] | list[str] | None = None, style: str = "cel"):
        from charforge.creators.builtin.styles import check_style

        self.style = check_style(style)
        if styles is not None:
            styles = tuple(dict.fromkeys(check_style(s) for s in styles))
            if not styles:
                raise UserError("choose at least one render style", field="styles")
            self.space = make_space(styles)
            self.schema = styles_schema()
            self.name = "builtin-styles"
        else:
            self.space = make_space()
            self.schema = make_girls_moe_schema()

    def render(self, batch: ParamBatch, size: int) -> np.ndarray:
        """(N, size, size, 3) uint8; deterministic, no randomness inside."""
        from charforge.creators.builtin.render import render_batch

        if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
            raise UserError(
                f"image size {size!r}: must be a whole number of pixels in [{MIN_SIZE}, {MAX_SIZE}]",
                field="size",
            )
        if batch.cat.shape[1] != self.space.n_cat or batch.cont.shape[1] != self.space.n_cont:
            raise ValueError(
                f"parameter batch has {batch.cat.shape[1]}+{batch.cont.shape[1]} columns; the builtin space has {self.space.n_cat}+{self.space.n_cont}"
            )
        return render_batch(self.space, batch, int(size), self.style)

    def sample(self, n: int, rng: np.random.Generator) -> ParamBatch:
        """The dataset distribution: uniform hair/eye colours, each independent tag on for ~25-35 %."""
        return _tags.sample_params(self.space, n, rng)

    def derive_tags(self, batch: ParamBatch) -> np.ndarray:
        return _tags.derive_tags(self.space, self.schema, batch)

    def sample_for_tags(self, constraints: TagConstraints, n: int, rng: np.random.Generator) -> ParamBatch:
        """Parameters that show the constrained tags; the rest drawn as in `sample`."""
        return _tags.sample_for_tags(self.space, self.schema, constraints, n, rng)


__all__ = ["BuiltinCreator"]
