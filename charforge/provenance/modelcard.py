"""MODEL_CARD.md for every training run: where the data came from, under which licences, and what the model is for.

Every card starts with the YAML header the Hugging Face Hub and other model indexes read (`card_header`):
licence, `library_name: charforge`, tags, datasets and, for a fine-tune, the base model.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from charforge import __version__
from charforge.utils.io import write_text_atomic

UNKNOWN = "unknown"
MAX_SOURCE_ROWS = 20  # source groups listed in the card; the rest are summed into one row

INTENDED_USE = """\
- Drafting anime-style character portraits for games and prototypes: NPC faces, placeholder art, avatar
  variations, reference sheets for human artists.
- Research and teaching on tag-conditioned generators (GANs, diffusion) at small resolution."""

LIMITS = """\
- Output is low resolution and can show generator artefacts (broken eyes, smeared hair, mismatched tags);
  measure the tag precision (`charforge eval --metrics precision`) before relying on a tag.
- The model reproduces the style and the biases of its training data; tags that are rare in the data
  (see the distribution above) are generated less reliably.
- Images it writes carry PNG metadata and an invisible watermark saying they are AI-generated. Do not
  remove them to pass the images off as hand-drawn art.
- Not for depicting real people. Face-to-parameter fitting keeps no input photos (docs/privacy.md).
- The licence of the outputs cannot be better than the licences of the training data listed above."""


def licence_counts(manifest: Mapping[str, Any]) -> dict[str, int]:
    """{licence: number of images}, with missing or empty licences counted as 'unknown'."""
    counts = Counter(str(item.get("license") or UNKNOWN) for item in manifest.get("items", []))
    return dict(counts.most_common())


def licence_warning(manifest: Mapping[str, Any]) -> str | None:
    """A warning to print before training when some images have no known licence, else None."""
    counts = licence_counts(manifest)
    n_unknown, total = counts.get(UNKNOWN, 0), sum(counts.values())
    if not n_unknown:
        return None
    return (
        f"warning: {n_unknown} of {total} training images have an unknown licence. You may not have the right to "
        "train on them or to use what the model generates. Record licences with `charforge data import --license` "
        "or a `license` column in the import CSV."
    )


SPDX_LIKE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")
CARD_TAGS = ("charforge", "gan", "anime", "image-generation", "tag-conditioned")


def card_tags(family: str | None) -> list[str]:
    """The card's tags for a model family: CARD_TAGS and the family name ("gan" left out for diffusion)."""
    base = [t for t in CARD_TAGS if not (t == "gan" and family == "diffusion")]
    return base + ([str(family)] if family else [])


def card_licence(counts: Mapping[str, int]) -> tuple[str, str | None]:
    """(Hub `license`, `license_name` or None) from {licence: images}.

    One licence for every image whose first word is an SPDX-style id ("CC0-1.0 (render of ...)") gives that
    id in lower case, as the Hub writes them (`cc0-1.0`); any unknown image gives `unknown`; several
    licences give `other` with license_name `mixed-training-data` (the card's table lists them).
    """
    ids = set()
    for lic, n in counts.items():
        if not n:
            continue
        word = str(lic).split(" ", 1)[0].strip()
        if not word or word == UNKNOWN or not SPDX_LIKE.match(word):
            return "unknown", None
        ids.add(word.lower())
    if len(ids) == 1:
        return ids.pop(), None
    return ("other", "mixed-training-data") if ids else ("unknown", None)


def card_header(
    *,
    license: str,
    license_name: str | None = None,
    tags: Sequence[str] = CARD_TAGS,
    datasets: Sequence[str] = (),
    base_model: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The YAML front matter of a model card, between `---` lines, ending in a blank line.

    Every value is written as a JSON scalar (a valid YAML flow scalar), so names with colons or quotes stay
    intact; `read_card_header` reads it back.
    """
    lines = ["---", f"license: {json.dumps(license)}"]
    if license_name:
        lines.append(f"license_name: {json.dumps(license_name)}")
    lines.append("library_name: charforge")
    for key, values in (("tags", list(dict.fromkeys(tags))), ("datasets", list(dict.fromkeys(datasets)))):
        if values:
            lines.append(f"{key}:")
            lines += [f"- {json.dumps(str(v))}" for v in values]
    if base_model:
        lines.append(f"base_model: {json.dumps(base_model)}")
    for k, v in (extra or {}).items():
        if v not in (None, "", [], {}):
            lines.append(f"{k}: {json.dumps(v)}")
    return "\n".join([*lines, "---", ""]) + "\n"


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """(header fields, body) of a model card; ({}, text) when it has no YAML header."""
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---\n", 3)
    if end < 0:
        return {}, text
    return read_card_header(text[4:end]), text[end + 5 :].lstrip("\n")


def read_card_header(block: str) -> dict[str, Any]:
    """Parse the header `card_header` writes (`key: scalar` and `key:` followed by `- item` lines)."""
    out: dict[str, Any] = {}
    key = None
    for line in block.splitlines():
        if not line.strip():
            continue
        if line.startswith("- ") and key is not None:
            out.setdefault(key, []).append(_scalar(line[2:]))
            continue
        k, _, v = line.partition(":")
        key = k.strip()
        if v.strip():
            out[key] = _scalar(v.strip())
    return out


def _scalar(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip().strip("'")


def dataset_names(manifest: Mapping[str, Any]) -> list[str]:
    """What a card's `datasets` lists: the data's source groups (`creator:builtin`, `art/cats`), most first."""
    groups = Counter(source_group(str(it.get("source", ""))) for it in manifest.get("items", []))
    return [g for g, _ in groups.most_common(MAX_SOURCE_ROWS) if g != UNKNOWN]


def source_group(source: str) -> str:
    """'creator:builtin#seed0/17' -> 'creator:builtin'; 'art/cats/01.png' -> 'art/cats'; '' -> 'unknown'."""
    if not source:
        return UNKNOWN
    m = re.match(r"^([a-z][a-z0-9+.-]*):(?!\\|/)([^#/]*)", source)
    if m and len(m.group(1)) > 1:  # a scheme, not a Windows drive letter
        return f"{m.group(1)}:{m.group(2)}" if m.group(2) else m.group(1)
    parent = str(Path(source).parent)
    return parent if parent != "." else "(top folder)"


def _source_table(manifest: Mapping[str, Any]) -> list[str]:
    pairs = Counter(
        (source_group(str(it.get("source", ""))), str(it.get("license") or UNKNOWN))
        for it in manifest.get("items", [])
    )
    rows = ["| source | licence | images |", "|---|---|---:|"]
    ranked = pairs.most_common()
    for (src, lic), n in ranked[:MAX_SOURCE_ROWS]:
        rows.append(f"| `{src}` | {lic} | {n} |")
    rest = sum(n for _, n in ranked[MAX_SOURCE_ROWS:])
    if rest:
        rows.append(f"| ({len(ranked) - MAX_SOURCE_ROWS} more groups) | mixed | {rest} |")
    return rows


def _tag_table(
    manifest: Mapping[str, Any], tag_freqs: Mapping[str, float] | Sequence[float] | None
) -> list[str]:
    names = _schema_tags(manifest)
    if tag_freqs is None:
        tag_freqs = manifest.get("info", {}).get("tag_frequencies") or manifest.get("tag_frequencies")
    if tag_freqs is None:
        return ["Not recorded (pass `tag_freqs` or store `info.tag_frequencies` in the dataset manifest)."]
    if not isinstance(tag_freqs, Mapping):
        vals = np.asarray(tag_freqs, dtype=float).reshape(-1)
        if names and len(names) == len(vals):
            tag_freqs = dict(zip(names, vals.tolist()))
        else:
            tag_freqs = {f"tag {i}": v for i, v in enumerate(vals.tolist())}
    rows = ["| tag | share of images |", "|---|---:|"]
    for tag, f in sorted(tag_freqs.items(), key=lambda kv: -kv[1]):
        rows.append(f"| {tag} | {100 * float(f):.1f}% |")
    return rows


def _schema_tags(manifest: Mapping[str, Any]) -> list[str]:
    s = manifest.get("tag_schema") or {}
    return [t for g in s.get("groups", []) for t in g.get("tags", [])] + list(s.get("independent", []))


def _metrics_lines(metrics: Mapping[str, Any] | None) -> list[str]:
    if not metrics:
        return ["No evaluation was recorded for this run (run `charforge eval` and regenerate the card)."]
    rows = ["| metric | value |", "|---|---:|"]
    for k, v in metrics.items():
        shown = (
            "n/a"
            if v is None
            else f"{v:.4g}"
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            else v
        )
        rows.append(f"| {k} | {shown} |")
    return rows


def _format_duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h {s % 3600 // 60:02d}m {s % 60:02d}s" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def render_model_card(
    *,
    dataset_manifest: Mapping[str, Any],
    config: Mapping[str, Any],
    command: str,
    steps: int,
    wall_time_s: float,
    metrics: Mapping[str, Any] | None = None,
    tag_freqs: Mapping[str, float] | Sequence[float] | None = None,
    title: str | None = None,
    base_model: Mapping[str, Any] | None = None,
    untrained_tags: Sequence[str] | None = None,
) -> str:
    """The card's markdown text (see `write_model_card`)."""
    counts = licence_counts(dataset_manifest)
    total = sum(counts.values())
    warning = licence_warning(dataset_manifest)
    name = (
        title or config.get("name") or config.get("preset") or config.get("family") or "charforge generator"
    )
    licence, licence_name = card_licence(counts)
    family = config.get("family")
    base = dict(base_model or {})
    header = card_header(
        license=licence,
        license_name=licence_name,
        tags=card_tags(family),
        datasets=dataset_names(dataset_manifest),
        base_model=base.get("model_id") or base.get("file"),
        extra={"base_model_sha256": base.get("sha256")},
    )
    lines = [
        header.rstrip("\n"),
        "",
        f"# Model card: {name}",
        "",
        f"Written by charforge {__version__} on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "## Training data",
        "",
        f"{total} images, {dataset_manifest.get('image_size', '?')} px"
        f" (dataset created {dataset_manifest.get('created', 'at an unknown date')}).",
        "",
        "Licence counts: "
        + (", ".join(f"{lic}: {n}" for lic, n in counts.items()) or "no items recorded")
        + ".",
        "",
    ]
    if warning:
        lines += [f"> **{warning.removeprefix('warning: ')}**", ""]
    if base_model:
        lines += [
            "## Base model",
            "",
            "Fine-tuned from "
            + ", ".join(f"{k}: `{v}`" for k, v in base_model.items() if v not in (None, "", []))
            + ". The base model's own card lists the data it was trained on; its licences apply too.",
            "",
        ]
    lines += (
        _source_table(dataset_manifest)
        + ["", "## Tag distribution", ""]
        + _tag_table(dataset_manifest, tag_freqs)
    )
    if untrained_tags:
        lines += [
            "",
            f"**{len(untrained_tags)} tags have no training example** and cannot be generated reliably: "
            + ", ".join(untrained_tags)
            + ". Generation warns when asked for them; evaluation leaves them out of the precision mean.",
        ]
    cfg = "\n".join(f"  {k}: {v}" for k, v in config.items())
    lines += [
        "",
        "## Training",
        "",
        "```",
        command,
        "```",
        "",
        f"- steps: {steps}",
        f"- wall time: {_format_duration(wall_time_s)} ({wall_time_s:.0f} s)",
        "",
        "Configuration:",
        "",
        "```",
        cfg or "  (none recorded)",
        "```",
        "",
        "## Evaluation",
        "",
    ] + _metrics_lines(metrics)
    lines += ["", "## Intended use", "", INTENDED_USE, "", "## Limits", "", LIMITS, ""]
    return "\n".join(lines)


def write_model_card(
    run_dir: str | Path,
    *,
    dataset_manifest: dict,
    config: dict,
    command: str,
    steps: int,
    wall_time_s: float,
    metrics: dict | None = None,
    tag_freqs: Mapping[str, float] | Sequence[float] | None = None,
    base_model: Mapping[str, Any] | None = None,
    untrained_tags: Sequence[str] | None = None,
) -> Path:
    """Write `run_dir/MODEL_CARD.md` atomically and return its path.

    `tag_freqs` ({tag: share} or a (T,) array in schema order) defaults to the manifest's
    `info.tag_frequencies`; the trainer can pass `PackedDataset.tag_frequencies`.
    """
    path = Path(run_dir) / "MODEL_CARD.md"
    text = render_model_card(
        dataset_manifest=dataset_manifest,
        config=config,
        command=command,
        steps=steps,
        wall_time_s=wall_time_s,
        metrics=metrics,
        tag_freqs=tag_freqs,
        base_model=base_model,
        untrained_tags=untrained_tags,
    )
    write_text_atomic(path, text)
    return path
