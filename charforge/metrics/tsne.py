"""A t-SNE map of dataset features coloured by one tag group (make.girls.moe Fig. 2).

With the tagger's features, images of one hair colour should form their own islands; with generic ImageNet
features they mix more. Rows with no tag in the group are drawn grey.
"""

from __future__ import annotations

import numpy as np

from charforge.errors import UserError
from charforge.metrics.registry import EvalContext
from charforge.utils.io import save_figure

# colour words that matplotlib does not know by that name
_COLOUR_ALIASES = {"blonde": "gold", "aqua": "turquoise", "silver": "silver", "white": "whitesmoke"}


def tag_colour(tag: str, fallback: str):
    """'blonde hair' -> 'gold', 'blue eyes' -> 'blue'; a palette colour when the tag names no colour."""
    from matplotlib import colors

    word = tag.split()[0]
    word = _COLOUR_ALIASES.get(word, word)
    return word if colors.is_color_like(word) else fallback


def pick_group(schema, name: str | None):
    if not schema.groups:
        raise UserError("tsne: the tag schema has no exclusive group to colour by; drop tsne from --metrics")
    if name is None:
        return 0
    names = [g.name for g in schema.groups]
    if name not in names:
        raise UserError(
            f"--tsne-group: unknown group {name!r}. Valid: {', '.join(names)}", field="tsne_group"
        )
    return names.index(name)


def tsne_map(ctx: EvalContext) -> dict:
    from sklearn.manifold import TSNE

    schema = ctx.data.schema
    gi = pick_group(schema, ctx.tsne_group)
    group, sl = schema.groups[gi], schema.group_slices()[gi]
    n = min(ctx.tsne_n, len(ctx.data))
    idx = np.sort(np.random.default_rng([ctx.seed, 43]).choice(len(ctx.data), n, replace=False))
    feats = ctx.real_features(ctx.auto_space, idx)
    perplexity = float(max(2.0, min(30.0, (n - 1) / 3)))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=ctx.seed).fit_transform(feats)
    tags = np.asarray(ctx.data.tags[idx])[:, sl]
    label = np.where(tags.sum(axis=1) > 0, tags.argmax(axis=1), -1)
    ctx.out.mkdir(parents=True, exist_ok=True)
    plot_tsne(
        xy,
        label,
        list(group.tags),
        f"t-SNE of {ctx.auto_space} features by {group.name}",
        ctx.out / "tsne.png",
    )
    return {
        "space": ctx.auto_space,
        "group": group.name,
        "images": n,
        "perplexity": perplexity,
        "plot": "tsne.png",
    }


def plot_tsne(xy: np.ndarray, label: np.ndarray, names: list[str], title: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    palette = plt.get_cmap("tab20").colors
    fig, ax = plt.subplots(figsize=(7.5, 6), dpi=100)
    ax.set_facecolor("#dddddd")
    if (label < 0).any():
        ax.scatter(*xy[label < 0].T, s=6, c="grey", alpha=0.5, label="(no tag)")
    for k, name in enumerate(names):
        m = label == k
        if m.any():
            ax.scatter(
                *xy[m].T,
                s=8,
                color=tag_colour(name, palette[k % len(palette)]),
                edgecolors="k",
                linewidths=0.2,
                label=name,
            )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
