"""Import a user's folder of art into a packed dataset.

    SRC (recursive, sorted) -> safe load -> face box (optional) -> 1.5x square crop -> resize -> pHash dedupe
    -> tags (file row | tagger | none) -> PackedWriter, chunk by chunk -> import_report.json + .md

Design choices:
- One sample per image: with a detector, the LARGEST face is cropped (the paper's single-character art);
  an image where the detector finds no face is skipped with that reason, as the paper drops them.
- Dedupe runs on the final sample in sorted-path order, so the first of a near-duplicate group is kept.
- Resumable: each chunk of files is processed, its bookkeeping saved atomically to `.import_chunks/`, then
  its rows written and marked done by the `PackedWriter`. The writer's config fingerprints the file
  listing and every option, so a rerun of the same command continues; a changed folder is refused.
- Nothing is skipped silently: bad files, non-image files, duplicates and unmatched tag rows are all in
  the report. A tags file with an unknown tag stops the import before any work, naming the row
  (`charforge.data.import_tags`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from charforge.core.images import IMAGE_EXTENSIONS, BadImage, is_image_path, load_image
from charforge.core.tags import TagSchema, make_girls_moe_schema
from charforge.data.dedupe import HashIndex, phash
from charforge.data.faces import check_kind, crop_sample, detect_faces
from charforge.data.import_tags import TagRow, match_rows, read_tags_file
from charforge.data.packed import PackedDataset, PackedWriter
from charforge.errors import UserError
from charforge.utils.io import sha256_file, write_json_atomic, write_text_atomic
from charforge.utils.progress import progress as progress_bar

CHUNK_FILES = 64  # source files per resumable chunk (a kill loses at most this much work)
CHUNK_DIR = ".import_chunks"
REPORT_JSON, REPORT_MD = "import_report.json", "import_report.md"


@dataclass
class ImportReport:
    kept: int
    skipped: list[dict[str, str]]  # {"path", "reason"}: every file that did not become a sample
    duplicates: list[dict[str, str]]  # {"path", "duplicate_of"}
    faces_found: int  # images in which the detector found at least one face
    dataset: PackedDataset
    report_path: Path
    total_files: int = 0
    tags_from: dict[str, int] = field(default_factory=dict)  # {"file"|"tagger"|"none": count of kept}
    warnings: list[str] = field(default_factory=list)

    @property
    def untagged(self) -> int:
        return self.tags_from.get("none", 0)

    def summary(self) -> str:
        reasons = Counter(_reason_kind(s["reason"]) for s in self.skipped)
        lines = [
            f"imported     {self.kept} of {self.total_files} files into {self.dataset.root} ({self.dataset.size} px)",
            f"skipped      {len(self.skipped)}"
            + "".join(f"\n  {n:5d}  {k}" for k, n in reasons.most_common()),
            f"duplicates   {len(self.duplicates)}",
            f"faces found  {self.faces_found}",
            "tags         "
            + ", ".join(f"{k}: {self.tags_from.get(k, 0)}" for k in ("file", "tagger", "none")),
        ]
        if self.warnings:
            lines.append(f"warnings     {len(self.warnings)} (see the report)")
        lines.append(f"report       {self.report_path} (and {REPORT_MD})")
        return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    """'corrupt or truncated image data (OSError: ...)' -> 'corrupt or truncated image data'."""
    for sep in (":", "("):
        reason = reason.split(sep, 1)[0]
    return reason.strip()


# ---- listing the source folder -------------------------------------------------------------------
def list_sources(src: Path, *, exclude: list[Path] = ()) -> tuple[list[str], list[str]]:
    """(image candidates, other files) as sorted posix paths relative to `src`, recursive.

    A directory whose name has an image extension is a candidate (so it is reported, not lost).
    """
    skip = {p.resolve() for p in exclude}
    images, others = [], []
    for dirpath, dirnames, filenames in os.walk(src):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if (base / d).resolve() not in skip)
        for name in filenames + [d for d in dirnames if is_image_path(Path(d))]:
            p = base / name
            if p.resolve() in skip:
                continue
            rel = p.relative_to(src).as_posix()
            (images if is_image_path(p) else others).append(rel)
    return sorted(images), sorted(others)


def _listing_digest(src: Path, rels: list[str]) -> str:
    h = hashlib.sha256()
    for rel in rels:
        try:
            st = (src / rel).stat()
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{rel}\0?\n".encode())
    return h.hexdigest()


# ---- one file -> one sample or a reason ------------------------------------------------------------
@dataclass(frozen=True)
class _Opts:
    size: int
    faces: str
    crop_scale: float
    min_size: int
    max_pixels: int


def process_file(path: Path, opts: _Opts) -> dict[str, Any]:
    """{"reason"} for a bad file, else {"sample" (S, S, 3) uint8, "face_box", "faces", "phash"}."""
    try:
        image = load_image(path, opts.max_pixels, min_size=opts.min_size)
    except BadImage as e:
        return {"reason": e.reason}
    try:
        boxes = detect_faces(image, opts.faces)
    except Exception as e:  # a detector crashing on one odd picture must not stop the import
        return {"reason": f"face detector {opts.faces!r} failed ({type(e).__name__}: {e})"}
    if opts.faces != "none" and not boxes:
        return {"reason": f"no face found by the {opts.faces!r} detector"}
    box = boxes[0] if boxes else None
    sample, square = crop_sample(image, box, opts.size, opts.crop_scale)
    if box is not None and square.w < opts.min_size:
        return {
            "reason": f"face too small: crop {square.w} px is below min_size {opts.min_size} px",
            "faces": len(boxes),
        }
    return {
        "sample": sample,
        "face_box": box.to_list() if box else None,
        "faces": len(boxes),
        "phash": phash(sample),
    }


def _process_job(job: tuple[str, str, _Opts]) -> dict[str, Any]:
    src, rel, opts = job
    return process_file(Path(src) / rel, opts)


# ---- the import ------------------------------------------------------------------------------------
def import_folder(
    src: Path,
    out: Path,
    *,
    size: int = 64,
    tags_file: Path | None = None,
    faces: str = "none",
    crop_scale: float = 1.5,
    license: str | None = None,
    min_size: int = 32,
    estimate_tags: Path | None = None,
    dedupe_threshold: int = 6,
    max_pixels: int = 40_000_000,
    workers: int = 1,
    progress: bool = True,
) -> ImportReport:
    """Import every image under `src` into a packed dataset at `out`; see the module docstring."""
    src, out = Path(src), Path(out)
    _check_args(src, size, faces, crop_scale, min_size, dedupe_threshold, max_pixels, workers)
    if estimate_tags is not None and not Path(estimate_tags).is_file():
        raise UserError(
            f"--estimate-tags {estimate_tags}: no such tagger file; give a trained tagger or leave it out"
        )
    schema = make_girls_moe_schema()
    tagger = (
        _load_tagger(Path(estimate_tags), schema) if estimate_tags is not None else None
    )  # fail before any work
    rows = read_tags_file(Path(tags_file), schema) if tags_file is not None else []
    exclude = [out] + ([Path(tags_file)] if tags_file is not None else [])
    images, others = list_sources(src, exclude=exclude)
    if not images:
        raise UserError(f"{src}: no image files found (looked recursively for {' '.join(IMAGE_EXTENSIONS)})")
    by_rel, warnings = match_rows(rows, images, source=str(tags_file))
    opts = _Opts(size, faces, float(crop_scale), min_size, max_pixels)
    config = _config(src, images, opts, tags_file, license, estimate_tags, dedupe_threshold)
    writer = PackedWriter(out, n=len(images), size=size, schema=schema, space=None, config=config)
    job = _Job(src, out, images, opts, by_rel, license, estimate_tags, HashIndex(dedupe_threshold), schema)
    job.tagger = tagger
    records = _run_chunks(writer, job, workers, progress)
    report = _assemble(records, _unsupported(others), warnings, len(images) + len(others))
    report_path = _write_reports(out, report, src, config)
    if report["kept"] == 0:
        raise UserError(
            f"{src}: none of the {len(images)} image files could be imported; see {report_path} for the reasons"
        )
    ds = _finalize(writer, records, report, out)
    return ImportReport(
        report["kept"],
        report["skipped"],
        report["duplicates"],
        report["faces_found"],
        ds,
        report_path,
        report["total_files"],
        report["tags_from"],
        report["warnings"],
    )


def _unsupported(others: list[str]) -> list[dict[str, str]]:
    """Skip records for the files under the source folder that are not images."""
    return [
        {
            "path": rel,
            "reason": f"not an image file type ({Path(rel).suffix or 'no extension'}); "
            f"supported: {' '.join(IMAGE_EXTENSIONS)}",
        }
        for rel in others
    ]


def _finalize(writer: PackedWriter, records: list[dict[str, Any]], report: dict[str, Any], out: Path):
    """Write the packed dataset from the finished chunks, then drop the chunk folder."""
    items = [it for r in records for it in r["items"]]
    ds = writer.finalize(
        items,
        count=report["kept"],
        info={"import": {k: report[k] for k in ("kept", "total_files", "faces_found", "tags_from")}},
    )
    shutil.rmtree(out / CHUNK_DIR, ignore_errors=True)
    return ds


def _check_args(
    src: Path,
    size: int,
    faces: str,
    crop_scale: float,
    min_size: int,
    dedupe_threshold: int,
    max_pixels: int,
    workers: int,
) -> None:
    if not src.is_dir():
        raise UserError(f"{src}: not a folder. Give the folder that holds your images", field="src")
    check_kind(faces)
    checks = [
        ("size", 8 <= size <= 1024, "between 8 and 1024 px"),
        ("crop_scale", 0.5 <= crop_scale <= 4.0, "between 0.5 and 4"),
        ("min_size", min_size >= 1, "at least 1 px"),
        ("dedupe_threshold", -1 <= dedupe_threshold <= 64, "between 0 and 64 (-1 turns dedupe off)"),
        ("max_pixels", max_pixels >= 1, "positive"),
        ("workers", workers >= 1, "at least 1"),
    ]
    for name, ok, want in checks:
        if not ok:
            raise UserError(f"--{name.replace('_', '-')}: must be {want}", field=name)


def _config(
    src: Path,
    images: list[str],
    opts: _Opts,
    tags_file: Path | None,
    license: str | None,
    estimate_tags: Path | None,
    dedupe_threshold: int,
) -> dict[str, Any]:
    """Everything that decides the result: a rerun with the same config resumes the same build."""
    tagger = None
    if estimate_tags is not None:
        st = Path(estimate_tags).stat() if Path(estimate_tags).exists() else None
        tagger = {
            "path": str(Path(estimate_tags).resolve()),
            "size": st.st_size if st else None,
            "mtime_ns": st.st_mtime_ns if st else None,
        }
    return {
        "kind": "import",
        "src": str(src.resolve()),
        "files": len(images),
        "listing_sha256": _listing_digest(src, images),
        "size": opts.size,
        "faces": opts.faces,
        "crop_scale": opts.crop_scale,
        "min_size": opts.min_size,
        "max_pixels": opts.max_pixels,
        "dedupe_threshold": dedupe_threshold,
        "license": license,
        "tags_file": str(tags_file) if tags_file else None,
        "tags_sha256": sha256_file(tags_file) if tags_file else None,
        "tagger": tagger,
        "chunk_files": CHUNK_FILES,
    }


@dataclass
class _Job:
    src: Path
    out: Path
    images: list[str]
    opts: _Opts
    by_rel: dict[str, TagRow]
    license: str | None
    estimate_tags: Path | None
    index: HashIndex
    schema: TagSchema
    tagger: Any = None


def _run_chunks(writer: PackedWriter, job: _Job, workers: int, progress: bool) -> list[dict[str, Any]]:
    """Process every chunk in order, reusing chunks a killed run finished. Returns the chunk records."""
    records, row, resuming = [], 0, True
    (job.out / CHUNK_DIR).mkdir(exist_ok=True)
    pool = _make_pool(workers)
    try:
        with progress_bar(
            len(job.images), desc="import", unit="img", disable=None if progress else True
        ) as bar:
            for ci, start in enumerate(range(0, len(job.images), CHUNK_FILES)):
                rels = job.images[start : start + CHUNK_FILES]
                rec = _load_record(job.out, ci, row) if resuming and writer.is_done(ci) else None
                if rec is None:
                    resuming = False  # rows after a redone chunk may shift: redo everything after it too
                    rec, samples, tags = _process_chunk(job, rels, row, pool)
                    write_json_atomic(_record_path(job.out, ci), rec)
                    writer.write_chunk(ci, row, samples, tags)
                else:
                    for it in rec["items"]:
                        job.index.add(int(it["phash"], 16), it["source"])
                records.append(rec)
                row += rec["count"]
                bar.update(len(rels))
    finally:
        if pool is not None:
            pool.shutdown()
    return records


def _make_pool(workers: int):
    if workers <= 1:
        return None
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers)


def _record_path(out: Path, ci: int) -> Path:
    return out / CHUNK_DIR / f"chunk_{ci:06d}.json"


def _load_record(out: Path, ci: int, row: int) -> dict[str, Any] | None:
    try:
        rec = json.loads(_record_path(out, ci).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return rec if rec.get("row_start") == row and len(rec.get("items", ())) == rec.get("count") else None


def _process_chunk(
    job: _Job, rels: list[str], row: int, pool
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Load, crop and hash the files, then dedupe and tag in sorted order. Returns (record, samples, tags)."""
    jobs = [(str(job.src), rel, job.opts) for rel in rels]
    results = (
        list(pool.map(_process_job, jobs, chunksize=4))
        if pool is not None
        else [_process_job(j) for j in jobs]
    )
    rec: dict[str, Any] = {"row_start": row, "items": [], "skipped": [], "duplicates": [], "faces_found": 0}
    samples, tag_rows = [], []
    for rel, res in zip(rels, results):
        rec["faces_found"] += int(res.get("faces", 0) > 0)
        if "reason" in res:
            rec["skipped"].append({"path": rel, "reason": res["reason"]})
            continue
        first = job.index.find(res["phash"])
        if first is not None:
            rec["duplicates"].append({"path": rel, "duplicate_of": first})
            continue
        job.index.add(res["phash"], rel)
        tag_row = job.by_rel.get(rel)
        licence = (tag_row.license if tag_row and tag_row.license else None) or job.license or "unknown"
        rec["items"].append(
            {
                "source": rel,
                "license": licence,
                "face_box": res["face_box"],
                "tags_from": "file" if tag_row else "none",
                "phash": f"{res['phash']:016x}",
            }
        )
        samples.append(res["sample"])
        tag_rows.append(tag_row.vector if tag_row else np.zeros(len(job.schema), np.float32))
    s = job.opts.size
    images = np.stack(samples) if samples else np.zeros((0, s, s, 3), np.uint8)  # (B, S, S, 3)
    tags = (
        np.stack(tag_rows).astype(np.uint8) if tag_rows else np.zeros((0, len(job.schema)), np.uint8)
    )  # (B, T)
    _estimate_missing_tags(job, rec["items"], images, tags)
    rec["count"] = len(rec["items"])
    return rec, images, tags


def _estimate_missing_tags(
    job: _Job, items: list[dict[str, Any]], images: np.ndarray, tags: np.ndarray
) -> None:
    """Fill the tag rows of untagged samples from the tagger, in place."""
    missing = [i for i, it in enumerate(items) if it["tags_from"] == "none"]
    if job.estimate_tags is None or not missing:
        return
    pred = np.asarray(job.tagger.predict_tags(images[missing]))  # (M, T) 0/1
    if pred.shape != (len(missing), len(job.schema)):
        raise UserError(
            f"{job.estimate_tags}: the tagger predicts {pred.shape[-1]} tags, the dataset schema has {len(job.schema)}"
        )
    tags[missing] = (pred > 0).astype(np.uint8)
    for i in missing:
        items[i]["tags_from"] = "tagger"


def _load_tagger(path: Path, schema):
    try:
        from charforge.tagger.net import load_tagger
    except ImportError as e:
        raise UserError(
            f"--estimate-tags {path}: this charforge has no tagger module ({e}); import without it"
        ) from e
    tagger = load_tagger(path)
    theirs = getattr(getattr(tagger, "schema", None), "tags", None)
    if theirs is not None and list(theirs) != list(schema.tags):
        raise UserError(
            f"--estimate-tags {path}: the tagger was trained on other tags ({len(theirs)} tags, "
            f"starting {', '.join(list(theirs)[:3])}) than the dataset schema; use a tagger trained on "
            "the make.girls.moe tag schema"
        )
    return tagger


# ---- the report ------------------------------------------------------------------------------------
def _assemble(
    records: list[dict[str, Any]], ignored: list[dict[str, str]], warnings: list[str], total: int
) -> dict[str, Any]:
    items = [it for r in records for it in r["items"]]
    skipped = sorted([s for r in records for s in r["skipped"]] + ignored, key=lambda s: s["path"])
    return {
        "total_files": total,
        "kept": len(items),
        "faces_found": sum(r["faces_found"] for r in records),
        "tags_from": dict(Counter(it["tags_from"] for it in items)),
        "licences": dict(Counter(it["license"] for it in items)),
        "skipped": skipped,
        "duplicates": [d for r in records for d in r["duplicates"]],
        "warnings": warnings,
    }


def _write_reports(out: Path, report: dict[str, Any], src: Path, config: dict[str, Any]) -> Path:
    """import_report.json (machine-readable) and import_report.md (for people), both atomic."""
    path = out / REPORT_JSON
    write_json_atomic(path, {"src": str(src), "out": str(out), "options": config, **report})
    write_text_atomic(out / REPORT_MD, _report_markdown(report, src))
    return path


def _report_markdown(r: dict[str, Any], src: Path) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = [
        f"# Import report: {src}",
        "",
        f"- files seen: {r['total_files']}",
        f"- imported: {r['kept']}",
        f"- skipped: {len(r['skipped'])}",
        f"- near-duplicates removed: {len(r['duplicates'])}",
        f"- images with a face found: {r['faces_found']}",
        f"- tags from: {', '.join(f'{k} {v}' for k, v in sorted(r['tags_from'].items())) or '-'}",
        f"- licences: {', '.join(f'{k} {v}' for k, v in sorted(r['licences'].items())) or '-'}",
        "",
    ]
    if r["skipped"]:
        lines += ["## Skipped files", "", "| file | reason |", "|---|---|"]
        lines += [f"| {esc(s['path'])} | {esc(s['reason'])} |" for s in r["skipped"]] + [""]
    if r["duplicates"]:
        lines += [
            "## Near-duplicates (removed; the first in sorted order is kept)",
            "",
            "| file | duplicate of |",
            "|---|---|",
        ]
        lines += [f"| {esc(d['path'])} | {esc(d['duplicate_of'])} |" for d in r["duplicates"]] + [""]
    if r["warnings"]:
        lines += ["## Warnings", ""] + [f"- {esc(w)}" for w in r["warnings"]] + [""]
    return "\n".join(lines)
