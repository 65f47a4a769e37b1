"""Parameters <-> tags for the built-in creator: the dataset distribution, tag derivation and tag-conditioned sampling."""

from __future__ import annotations

import numpy as np

from charforge.core.space import ParamBatch, ParamSpace
from charforge.core.tags import TagConstraints, TagSchema
from charforge.creators.builtin.params import OPTION_TAGS, SAMPLE_PROBS
from charforge.errors import UserError


def option_probs(space: ParamSpace, name: str) -> np.ndarray:
    """Sampling probabilities over the options of categorical `name` (uniform unless SAMPLE_PROBS says)."""
    k = space.cat_sizes[space.cat_index(name)]
    p = np.asarray(SAMPLE_PROBS.get(name, (1.0,) * k), dtype=np.float64)
    return p / p.sum()


def option_tags(space: ParamSpace) -> dict[str, dict[str, tuple[str, ...]]]:
    """OPTION_TAGS, plus the style group's tag per style when the space has a style parameter."""
    if "style" not in space.names:
        return OPTION_TAGS
    from charforge.creators.builtin.styles import STYLE_TAGS

    options = space.categorical[space.cat_index("style")].options
    return {**OPTION_TAGS, "style": {o: (STYLE_TAGS[o],) for o in options}}


def tag_tables(space: ParamSpace, schema: TagSchema) -> dict[str, np.ndarray]:
    """Per tag-bearing parameter, an (n_options, T) 0/1 table of the tags each option shows."""
    tables = {}
    for name, opts in option_tags(space).items():
        cat = space.categorical[space.cat_index(name)]
        table = np.zeros((len(cat.options), len(schema)), dtype=np.float32)
        for i, opt in enumerate(cat.options):
            for tag in opts[opt]:
                table[i, schema.index(tag)] = 1.0
        tables[name] = table
    return tables


def derive_tags(space: ParamSpace, schema: TagSchema, batch: ParamBatch) -> np.ndarray:
    """(N, T) float32 0/1: exactly the tags the parameters show."""
    out = np.zeros((len(batch), len(schema)), dtype=np.float32)
    for name, table in tag_tables(space, schema).items():
        out += table[batch.cat[:, space.cat_index(name)]]
    return np.minimum(out, 1.0)


def sample_params(space: ParamSpace, n: int, rng: np.random.Generator) -> ParamBatch:
    """The dataset distribution: categoricals from option_probs, continuous uniform over their ranges."""
    cat = np.zeros((n, space.n_cat), dtype=np.int64)
    styled = "style" in space.names
    for j, p in enumerate(space.categorical):
        if styled and p.name == "style":
            continue
        cat[:, j] = rng.choice(len(p.options), size=n, p=option_probs(space, p.name))
    u = rng.random((n, space.n_cont), dtype=np.float32)
    if styled:  # drawn last, so seed s gives the same characters as the plain builtin creator, in styles
        j = space.cat_index("style")
        cat[:, j] = rng.choice(space.cat_sizes[j], size=n)
    return ParamBatch(cat, space.denormalise(u))


def _wanted(schema: TagSchema, c: TagConstraints) -> dict[str, bool]:
    """Flatten constraints to tag -> required on/off (group choices turn the group's other tags off)."""
    want: dict[str, bool] = {}
    for g in schema.groups:
        chosen = c.groups.get(g.name)
        if chosen is None:
            continue
        if chosen not in g.tags:
            raise UserError(
                f"tag constraints: {chosen!r} is not a tag of the group {g.name!r}. Valid: {', '.join(g.tags)}"
            )
        want.update({t: t == chosen for t in g.tags})
    for t, v in c.independent.items():
        if v is not None:
            if t not in schema.independent:
                raise UserError(f"tag constraints: unknown tag {t!r}. Valid: {', '.join(schema.independent)}")
            want[t] = bool(v)
    return want


def allowed_options(space: ParamSpace, schema: TagSchema, c: TagConstraints) -> dict[str, np.ndarray]:
    """Per tag-bearing parameter, a boolean mask of the options consistent with the constraints."""
    want = _wanted(schema, c)
    out = {}
    for name, opts in option_tags(space).items():
        cat = space.categorical[space.cat_index(name)]
        own = {t for tags in opts.values() for t in tags}
        rules = {t: v for t, v in want.items() if t in own}
        mask = np.array([all((t in opts[o]) == v for t, v in rules.items()) for o in cat.options])
        if not mask.any():
            shown = ", ".join(f"{t}={'on' if v else 'off'}" for t, v in rules.items())
            raise UserError(
                f"tag constraints: no {name} option shows {shown}; the built-in creator cannot draw this combination"
            )
        out[name] = mask
    return out


def sample_for_tags(
    space: ParamSpace, schema: TagSchema, c: TagConstraints, n: int, rng: np.random.Generator
) -> ParamBatch:
    """Parameters whose derived tags satisfy `c`; everything unconstrained follows sample_params."""
    batch = sample_params(space, n, rng)
    for name, mask in allowed_options(space, schema, c).items():
        j = space.cat_index(name)
        bad = ~mask[batch.cat[:, j]]
        if bad.any():
            p = option_probs(space, name) * mask
            p = p / p.sum() if p.sum() > 0 else mask / mask.sum()
            batch.cat[bad, j] = rng.choice(len(mask), size=int(bad.sum()), p=p)
    return batch
