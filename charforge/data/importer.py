"""Import a user's folder of art into a packed dataset.

    SRC (recursive, sorted) -> safe load -> face boxes (optional) -> 1.5x square crops -> resize
    -> dedupe (pHash, confirmed patch by patch) -> tags (file row | tagger | none) -> chunk files
    -> import_report.json + .md + review sheets -> PackedWriter -> manifest.json

Design choices:
- With a detector every face of comparable size becomes a sample (`faces.select_faces`, at most
  `max_faces` per image). An image where the detector finds no face is searched again with padding
  (faces that touch the frame), then kept whole when it looks like a face filling the frame (a
  close-up); standing sprites (tall images or figures) are cut at the head. The report names the way
  each sample was found, so nothing kept on a guess goes unmentioned.
- Transparent pixels are composited onto white (`charforge.core.images.BACKGROUND`) by the loader.
- Dedupe runs on the final sample in sorted-path order, so the first of a near-duplicate group is kept.
  A hash match is confirmed patch by patch (`charforge.data.dedupe`): expression variants survive,
  resized or re-encoded copies do not. Every dropped pair is drawn on import_duplicates.png.
- Resumable in two phases: each chunk of files is processed and saved to `.import_chunks/` (samples,
  tags and its record; the record last, atomically). When all chunks are there the packed dataset is
  written with exactly as many rows as were kept (several faces per image make that unknown up front)
  by a `PackedWriter`, itself resumable. A rerun of the same command continues; a changed folder is
  refused; a rerun after a kill between the manifest and the cleanup finishes the cleanup.
- Nothing is skipped silently: bad files, non-image files, unreadable folders, symlink loops,
  duplicates and unmatched tag rows are all in the report, and large drops become warnings that name
  the flag to change. A tags file with an unknown tag stops the import before any work, naming the row
  (`charforge.data.import_tags`).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from charforge.core.images import IMAGE_EXTENSIONS, BadImage, is_image_path, load_image, resize_square
from charforge.core.pixelart import pixel_resize
from charforge.core.tags import TagSchema, make_girls_moe_schema
from charforge.data.dedupe import (
    DETAIL_THRESHOLD,
    LOCAL_RATIO,
    HashIndex,
    Match,
    detail_thumb,
    phash,
    same_picture,
)
from charforge.data.faces import DEFAULT_CROP_SCALE, Box, check_kind, crop_padded, find_crops, zoom_box
from charforge.data.import_tags import TagRow, declared_extra_tags, match_rows, read_tags_file
from charforge.data.packed import PackedDataset, PackedWriter
from charforge.errors import UserError
from charforge.utils.io import atomic_path, sha256_file, write_json_atomic, write_text_atomic
from charforge.utils.progress import progress as progress_bar

CHUNK_FILES = 64  # source files per resumable chunk (a kill loses at most this much work)
CHUNK_DIR = ".import_chunks"
STATE_FILE = ".build_state.json"  # the PackedWriter's resume state (charforge.data.packed.STATE)
REPORT_JSON, REPORT_MD = "import_report.json", "import_report.md"
DUPES_SHEET, REVIEW_SHEET, TAGS_CSV = "import_duplicates.png", "import_tags_review.png", "import_tags.csv"
SUGGEST_CSV = "label_these.csv"  # --suggest-labels: the images worth labelling first
SHEET_ROWS = 32  # rows (pairs or images) per sheet page; more pages are numbered _2, _3...
REVIEW_MAX = 256  # images drawn on the tag review sheet (uncertain ones first)
WARN_SHARE = 0.10  # warn when at least this share of the candidates is dropped for one reason
TAG_SHARE_WARN = 0.6  # warn when an estimated independent tag is on for more than this share
TAG_CONF_WARN = 0.6  # warn when the mean confidence of the estimates is below this
MIN_FOR_STATS = 8  # estimated images needed before the distribution of estimates is judged
UNKNOWN_MOST = 0.8  # say so (and that it is safe) when a group is unknown on at least this share of them
UNSURE_MARGIN = 0.1  # an independent tag whose probability is this close to the threshold is uncertain
DISK_MARGIN = 16 * 2**20  # bytes of free space kept in reserve beyond the estimate (reports, sheets)
# Longer side of the copy of each image kept to re-crop it for the whole-picture copy check. At 512 the re-cut of
# a 700 px visual-novel sprite was off by a fraction of a pixel, which on sharp line art reads as copy noise
# everywhere and hid a changed mouth: renpy's 13 sprites lost 1 (anime), 3 (human), 4 (human-dlib) expression
# variants as "copies"; at 1024 none (bench/foreign/results/session14/import_renpy_*.md).
PREVIEW_SIDE = 1024


def shown(rel: str) -> str:
    """A path as text for reports: bytes that are not UTF-8 appear as \\xNN escapes (never an error)."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass
class ImportReport:
    kept: int
    skipped: list[dict[str, str]]  # {"path", "reason"}: every file that did not become a sample
    duplicates: list[dict[str, Any]]  # {"path", "duplicate_of", "distance", "detail"}
    faces_found: int  # images in which the detector found at least one face
    dataset: PackedDataset
    report_path: Path
    total_files: int = 0
    tags_from: dict[str, int] = field(default_factory=dict)  # {"file"|"tagger"|"none": count of kept}
    warnings: list[str] = field(default_factory=list)
    folders: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}: folders not read
    found_by: dict[str, int] = field(default_factory=dict)  # {"face"|"close-up"|...: count of kept}
    sheets: dict[str, list[str]] = field(default_factory=dict)  # {"duplicates"|"tags review": [png]}
    withheld: int = 0  # of the "tagger" samples: unfamiliar art whose tags were left unknown (not estimated)
    pixel_art: int = 0  # kept samples from pixel art on an exact grid, resized cell by cell (pixel_resize)
    # one fewshot.Learned.summary() per independent tag tried on the labelled samples
    learned_tags: list[dict[str, Any]] = field(default_factory=list)
    learned_samples: int = 0  # estimated samples with at least one tag learned from the labelled ones
    suggested: dict[str, Any] = field(default_factory=dict)  # --suggest-labels: {"file", "rows", "asked"}

    def _first_tried(self) -> dict[str, Any] | None:
        return next((r for r in self.learned_tags if r["estimator_balanced_accuracy"] is not None), None)

    @property
    def untagged(self) -> int:
        return self.tags_from.get("none", 0)

    def summary(self) -> str:
        reasons = Counter(_reason_kind(s["reason"]) for s in self.skipped)
        lines = [
            f"imported     {self.kept} samples from {self.total_files} files into {self.dataset.root} "
            f"({self.dataset.size} px)",
            f"skipped      {len(self.skipped)}"
            + "".join(f"\n  {n:5d}  {k}" for k, n in reasons.most_common()),
            f"duplicates   {len(self.duplicates)}",
            f"faces found  {self.faces_found}",
            "found by     " + (", ".join(f"{k}: {n}" for k, n in sorted(self.found_by.items())) or "-"),
            "tags         "
            + ", ".join(f"{k}: {self.tags_from.get(k, 0)}" for k in ("file", "tagger", "none"))
            + (f" (tagger: {self.withheld} left unknown as unfamiliar art)" if self.withheld else ""),
        ]
        if self.suggested:
            lines.append(
                f"label these  {self.suggested['rows']} images cover the folder's kinds of picture: correct their tags in "
                f"{self.suggested['file']} (list every tag each shows) and import again into a new folder: "
                f"-o {_next_folder(Path(self.dataset.root))} --tags that file"
            )
        for row in self.learned_tags:
            if row["estimator_balanced_accuracy"] is None:
                continue  # too few labelled with and without it to try
            head = (
                f"learned      {row['tag']}: "
                if row is self._first_tried()
                else f"             {row['tag']}: "
            )
            if row["used"]:
                lines.append(
                    head
                    + f"from your {row['labelled_with']} + {row['labelled_without']} labelled images (with / "
                    f"without), balanced accuracy {row['probe_balanced_accuracy']:.2f} cross-validated against the "
                    f"estimator's {row['estimator_balanced_accuracy']:.2f}: used for the {self.tags_from.get('tagger', 0)} "
                    "estimated samples"
                )
            else:
                lines.append(head + f"kept the estimator's answers: {row['why']}")
        if self.pixel_art:
            lines.append(
                f"pixel art    {self.pixel_art} of {self.kept} samples are pixel art on an exact grid: resized cell by "
                "cell (crisp cells, the same palette); --no-pixel-art resizes them like other art"
            )
        if self.folders:
            lines.append(f"not read     {len(self.folders)} folders or links (see the report)")
        estimated = self.tags_from.get("tagger", 0)
        for name, pages in self.sheets.items():
            more = f"+{len(pages) - 1} pages" if len(pages) > 1 else ""
            if name == "tags review" and estimated > REVIEW_MAX:  # "(+7 pages)" read as all 600 being on them
                more += f"{'; ' if more else ''}{REVIEW_MAX} of the {estimated} estimated images, those in doubt first"
            lines.append(f"{name:12} {pages[0]}" + (f" ({more})" if more else ""))
        for w in self.warnings:
            lines.append(f"warning      {w}")
        lines.append(f"report       {self.report_path} (and {REPORT_MD})")
        return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    """'corrupt or truncated image data (OSError: ...)' -> 'corrupt or truncated image data'."""
    for sep in (":", "(", ","):
        reason = reason.split(sep, 1)[0]
    return reason.strip()


# ---- listing the source folder -------------------------------------------------------------------
@dataclass
class Listing:
    images: list[str]  # image candidates, sorted, relative to SRC ('/'-separated; may hold surrogates)
    others: list[str]  # other files
    folders: list[dict[str, str]]  # {"path", "reason"}: folders and links that could not be read


def _safe_resolve(path: Path) -> Path | None:
    try:
        return path.resolve(strict=False)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop on Python < 3.13
        return None


def list_sources(src: Path, *, exclude: list[Path] = ()) -> Listing:
    """Everything under `src`, recursive, following folder links once each (a loop is reported).

    A directory whose name has an image extension is a candidate (so it is reported, not lost). A folder
    that cannot be read, a symlink loop and a link that leads to a folder already listed are reported in
    `folders` with the reason; the walk continues.
    """
    skip = {r for r in (_safe_resolve(Path(p)) for p in exclude) if r is not None}
    images, others, folders = [], [], []
    try:
        st = os.stat(src)
        visited: dict[tuple[int, int], str] = {(st.st_dev, st.st_ino): "."}
    except OSError as e:
        raise UserError(f"{src}: cannot read the folder ({e.strerror})", field="src") from e
    stack = [(str(src), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except PermissionError as e:
            folders.append(
                {
                    "path": shown(prefix.rstrip("/") or "."),
                    "reason": f"folder not readable: permission denied ({e.strerror}); its files were not "
                    "imported (give read and execute permission, e.g. chmod u+rx, and rerun)",
                }
            )
            continue
        except OSError as e:
            folders.append(
                {"path": shown(prefix.rstrip("/") or "."), "reason": f"folder not readable ({e.strerror})"}
            )
            continue
        subfolders = []
        for entry in entries:
            rel = prefix + entry.name
            path = Path(entry.path)
            if path in skip or (entry.is_symlink() and _safe_resolve(path) in skip):
                continue
            try:
                target = os.stat(entry.path)  # follows links
            except OSError as e:
                if e.errno == errno.ELOOP:
                    folders.append(
                        {"path": shown(rel), "reason": "symlink loop: the link leads back to itself"}
                    )
                    continue
                target = None  # a broken link: an image name is reported by the loader ("does not exist")
            is_dir = target is not None and entry.is_dir()
            if is_dir:
                key = (target.st_dev, target.st_ino)
                if _safe_resolve(path) in skip:
                    continue
                if key in visited:
                    folders.append(
                        {
                            "path": shown(rel),
                            "reason": f"symlink loop: this folder is {shown(visited[key])!r}, already listed; skipped",
                        }
                    )
                    continue
                visited[key] = rel
                subfolders.append((entry.path, rel + "/"))
                if is_image_path(path):
                    images.append(rel)
                continue
            (images if is_image_path(path) else others).append(rel)
        stack.extend(reversed(subfolders))
    return Listing(sorted(images), sorted(others), sorted(folders, key=lambda f: f["path"]))


def _listing_digest(src: Path, rels: list[str]) -> str:
    h = hashlib.sha256()
    for rel in rels:
        name = rel.encode("utf-8", "surrogateescape")
        try:
            st = (src / rel).stat()
            h.update(name + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(name + b"\0?\n")
    return h.hexdigest()


# ---- one file -> samples or a reason -----------------------------------------------------------------
@dataclass(frozen=True)
class _Opts:
    size: int
    faces: str
    crop_scale: float
    min_size: int
    max_pixels: int
    closeups: bool = True
    max_faces: int = 8
    pixel_art: bool = True  # pictures on an exact pixel grid keep their cells (core.pixelart.pixel_resize)


def process_file(path: Path, opts: _Opts) -> dict[str, Any]:
    """{"reason"} for a bad file, else {"crops": [{"sample" (S, S, 3) uint8, "face_box", "how", "phash"}],
    "faces": faces detected, "small": crops dropped as too small}."""
    try:
        image = load_image(path, opts.max_pixels, min_size=opts.min_size)
    except BadImage as e:
        return {"reason": e.reason}
    try:
        crops, faces, why = find_crops(image, opts.faces, closeups=opts.closeups, max_faces=opts.max_faces)
    except Exception as e:  # a detector crashing on one odd picture must not stop the import
        return {"reason": f"face detector {opts.faces!r} failed ({type(e).__name__}: {e})"}
    if not crops:
        return {"reason": why, "faces": faces}
    out, small = [], []
    for c in crops:
        square = zoom_box(c.face, opts.crop_scale) if c.face is not None else c.square
        if c.face is not None and square.w < opts.min_size:
            small.append(square.w)
            continue
        part = crop_padded(image, square)
        sample = pixel_resize(part, opts.size) if opts.pixel_art else None
        pixel = sample is not None
        if sample is None:
            sample = resize_square(part, opts.size)
        out.append(
            {
                "sample": sample,
                "pixel_art": pixel,
                "face_box": c.face.to_list() if c.face is not None else None,
                "crop": square.to_list(),
                "how": c.how,
                "phash": phash(sample),
            }
        )
    if not out:
        return {
            "reason": f"face too small: crop {max(small)} px is below min_size {opts.min_size} px",
            "faces": faces,
        }
    h, w = image.shape[:2]
    result = {"crops": out, "faces": faces, "small": len(small)}
    # detector boxes and a standing sprite's head square move between copies: keep what the whole-picture check
    # needs (with --faces none only for head cuts: a centre square lines up in a copy by itself; session 17 found
    # a 0.6x copy of a Ren'Py sprite kept there)
    if opts.faces != "none" or any(c.how.startswith("head") for c in crops):
        scale = min(1.0, PREVIEW_SIDE / max(h, w))
        preview = image
        if scale < 1.0:
            from PIL import Image

            preview = np.asarray(
                Image.fromarray(image).resize(
                    (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX
                )
            )
        result.update(image_phash=phash(image), image_size=[w, h], preview=preview)
    return result


def _process_job(job: tuple[str, str, _Opts]) -> dict[str, Any]:
    src, rel, opts = job
    return process_file(Path(src) / rel, opts)


# ---- the import ------------------------------------------------------------------------------------
def resolve_tagger(estimate_tags: Path | str | None) -> Path | None:
    """`--estimate-tags` value -> a tagger path: "default" (or "") is the shipped tag estimator (trained to hold
    on art the creator did not draw, calibrated), else the shipped judge tagger when no estimator is installed."""
    if estimate_tags is None:
        return None
    if str(estimate_tags) in ("", "default"):
        from charforge.tagger.net import default_tagger_path

        p = default_tagger_path("estimate") or default_tagger_path()
        if p is None:
            raise UserError(
                "--estimate-tags default: this install ships no tagger (charforge/weights/"
                "tagger_default.safetensors); give a trained tagger file"
            )
        return p
    p = Path(estimate_tags)
    if not p.exists():
        raise UserError(
            f"--estimate-tags {p}: no such tagger file; give a trained tagger, 'default' for the shipped "
            "one, or leave it out"
        )
    return p


def import_folder(
    src: Path,
    out: Path,
    *,
    size: int = 64,
    tags_file: Path | None = None,
    faces: str = "none",
    crop_scale: float = DEFAULT_CROP_SCALE,
    license: str | None = None,
    min_size: int = 32,
    estimate_tags: Path | str | None = None,
    dedupe_threshold: int = 6,
    max_pixels: int = 40_000_000,
    workers: int = 1,
    progress: bool = True,
    closeups: bool = True,
    max_faces: int = 8,
    tag_min_confidence: float = 0.5,
    extra_tags: list[str] | tuple[str, ...] | None = None,
    keep_unfamiliar: bool = False,
    pixel_art: bool = True,
    learn_tags: bool = True,
    suggest_labels: int = 0,
) -> ImportReport:
    """Import every image under `src` into a packed dataset at `out`; see the module docstring.

    `extra_tags` (and a `# extra tags: ...` declaration in the tags file) are your own independent tags,
    appended to the make.girls.moe schema; the dataset, and models trained on it, carry them.

    `learn_tags`: where a tags file labels some images and the estimator fills in the rest, learn the folder's
    own look of each independent tag from the labelled images and use it where it beats the estimator on them
    (charforge.tagger.fewshot).

    `suggest_labels` N > 0: also write label_these.csv, the N samples worth labelling first (fewshot.suggest:
    one per kind of picture in the folder), prefilled with their current tags, ready to correct and pass back as
    --tags."""
    src, out = Path(src), Path(out)
    _check_args(src, size, faces, crop_scale, min_size, dedupe_threshold, max_pixels, workers, max_faces)
    if not 0.0 <= tag_min_confidence < 1.0:
        raise UserError(
            "--tag-min-confidence: must be in [0, 1) (0 keeps every estimate)", field="tag_min_confidence"
        )
    _check_out(src, out)
    tagger_path = resolve_tagger(estimate_tags)
    declared = declared_extra_tags(Path(tags_file)) if tags_file is not None else []
    schema = make_girls_moe_schema().with_independent(
        [*declared, *(extra_tags or [])], source="--extra-tags / the tags file's extra tags"
    )
    tagger = _load_tagger(tagger_path, schema) if tagger_path is not None else None  # fail before any work
    rows = read_tags_file(Path(tags_file), schema) if tags_file is not None else []
    exclude = [out] + ([Path(tags_file)] if tags_file is not None else [])
    listing = list_sources(src, exclude=exclude)
    images = listing.images
    if not images:
        extra = (
            f"; {len(listing.folders)} folders could not be read, e.g. {listing.folders[0]['path']}: "
            f"{listing.folders[0]['reason']}"
            if listing.folders
            else ""
        )
        raise UserError(
            f"{src}: no image files found (looked recursively for {' '.join(IMAGE_EXTENSIONS)}){extra}"
        )
    by_rel, warnings = match_rows(rows, images, source=str(tags_file))
    opts = _Opts(
        size, faces, float(crop_scale), min_size, max_pixels, bool(closeups), int(max_faces), bool(pixel_art)
    )
    config = _config(
        src,
        images,
        opts,
        tags_file,
        license,
        tagger_path,
        dedupe_threshold,
        tag_min_confidence,
        keep_unfamiliar,
    )
    base_n = len(make_girls_moe_schema())
    if len(schema) > base_n:  # your own tags decide the result too (a rerun with other ones is another build)
        config["extra_tags"] = schema.tags[base_n:]
        if tagger is not None:
            warnings.append(
                f"the tagger knows none of your own tags ({', '.join(schema.tags[base_n:])}): images whose tags it "
                "estimates get them off; tag those images in the tags file if they show them"
            )
    if not learn_tags:
        config["learn_tags"] = False
    done = _finished_before(out, config, tags_file)
    if done is not None:
        return done
    try:
        _check_free_space(out, len(images), size, len(schema))
        (out / CHUNK_DIR).mkdir(parents=True, exist_ok=True)
        job = _Job(src, out, images, opts, by_rel, license, tagger_path, HashIndex(dedupe_threshold), schema)
        job.tagger, job.min_conf = tagger, float(tag_min_confidence)
        job.keep_unfamiliar = bool(keep_unfamiliar)
        job.pictures = HashIndex(dedupe_threshold, detail=None)
        records = _run_chunks(job, workers, progress)
        learned = _learn_from_labels(job, records, learn_tags, progress)
        report = _assemble(records, _unsupported(listing.others), listing.folders, warnings, listing)
        report["learned_tags"] = learned
        if suggest_labels:
            report["suggested"] = _suggest_labels(job, records, int(suggest_labels), progress)
        items = [it for r in records for it in r["items"]]
        report["warnings"] += _drop_warnings(report, faces, dedupe_threshold, closeups, items)
        report["sheets"] = _write_sheets(out, records, job, report)
        report["warnings"] += _tag_warnings(report, records, schema)
        report_path = _write_reports(out, report, src, config)
        if report["kept"] == 0:
            raise UserError(
                f"{src}: none of the {len(images)} image files could be imported; see {report_path} for the reasons"
            )
        ds = _finalize(out, records, report, config, size, schema)
    except OSError as e:
        raise _write_error(e, out, len(images), size, len(schema)) from e
    return _report_object(report, ds, report_path)


def _report_object(report: dict[str, Any], ds: PackedDataset, report_path: Path) -> ImportReport:
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
        report.get("folders", []),
        report.get("found_by", {}),
        report.get("sheets", {}),
        sum(1 for u in report.get("unfamiliar", []) if not u.get("estimated")),
        report.get("pixel_art", 0),
        report.get("learned_tags", []),
        report.get("learned_samples", 0),
        report.get("suggested", {}),
    )


def _check_out(src: Path, out: Path) -> None:
    """Refuse an output folder that is the art folder, inside it, or an existing file."""
    if out.exists() and not out.is_dir():
        raise UserError(
            f"-o {out}: is an existing file, not a folder; give a new folder for the dataset", field="out"
        )
    s, o = _safe_resolve(src), _safe_resolve(out)
    if s is not None and o is not None and (o == s or s in o.parents):
        raise UserError(
            f"-o {out}: is inside the art folder {src} being imported; the dataset would be written among "
            "your images (and read back as art on the next import). Give a folder outside it, e.g. "
            f"-o {src.resolve().parent / (src.resolve().name + '-dataset')}",
            field="out",
        )


def _next_folder(out: Path) -> Path:
    """OUT-2 (or -3, ...): the first sibling folder name not taken, for a re-import with corrected tags."""
    k = 2
    while out.with_name(f"{out.name}-{k}").exists():
        k += 1
    return out.with_name(f"{out.name}-{k}")


def _finished_before(out: Path, config: dict[str, Any], tags_file: Path | None = None) -> ImportReport | None:
    """A dataset from this very command is already there: finish its cleanup and return its report.

    A finished dataset from other settings is refused (PackedWriter would say the same). The import's own advice
    is to correct OUT/import_tags.csv and re-import with --tags: into the same folder that is refused, and
    deleting the folder deletes the corrected file, so the refusal then names a new folder to import into.
    """
    mpath = out / "manifest.json"
    if not mpath.exists():
        return None
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError):
        manifest = {}
    leftovers = [out / CHUNK_DIR, out / STATE_FILE]
    same = isinstance(manifest, dict) and manifest.get("config") == config
    if not same or not any(p.exists() for p in leftovers) or not (out / REPORT_JSON).exists():
        t, o = _safe_resolve(tags_file) if tags_file else None, _safe_resolve(out)
        if t is not None and o is not None and o in t.parents:
            raise UserError(
                f"{out}: a finished dataset is already there, and your tags file {tags_file} is inside it; import "
                f"into a new folder: -o {_next_folder(out)} --tags {tags_file} (deleting {out} would delete the "
                "tags file too)",
                field="out",
            )
        raise UserError(
            f"{out}: a finished dataset is already there; choose another output folder or delete it"
        )
    from charforge.data.packed import load_packed

    ds = load_packed(out)
    for p in leftovers:  # the kill came after the manifest: only the cleanup was left
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    report = json.loads((out / REPORT_JSON).read_text())
    report["warnings"] = list(report.get("warnings", [])) + [
        "this import had finished before being stopped; the rerun only cleaned up its temporary files"
    ]
    return _report_object(report, ds, out / REPORT_JSON)


def _estimate_bytes(n_images: int, size: int, n_tags: int) -> int:
    """Disk an import needs at most: chunk files plus the packed arrays (one row per image, x2)."""
    return 2 * n_images * (size * size * 3 + n_tags) + DISK_MARGIN


def _free_bytes(out: Path) -> int | None:
    p = out
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def _bytes_written(out: Path) -> int:
    """What a killed run already wrote into `out` (a resumed import needs that much less)."""
    total = 0
    for root, _dirs, files in os.walk(out):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _check_free_space(out: Path, n_images: int, size: int, n_tags: int) -> None:
    estimate = _estimate_bytes(n_images, size, n_tags)
    need = max(DISK_MARGIN, estimate - _bytes_written(out)) if out.is_dir() else estimate
    free = _free_bytes(out)
    if free is not None and free < need:
        raise UserError(
            f"-o {out}: not enough free disk space: this import needs about {_mb(need)} ({n_images} images "
            f"at {size} px), the disk has {_mb(free)} free. Free some space, choose another -o folder or "
            "a smaller --size"
        )


def _write_error(e: OSError, out: Path, n_images: int, size: int, n_tags: int) -> Exception:
    """A write error as a clear message naming the folder (disk full: with the space needed)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        free = _free_bytes(out)
        return UserError(
            f"-o {out}: the disk is full ({e.strerror}) while writing the dataset; it needs about "
            f"{_mb(_estimate_bytes(n_images, size, n_tags))}"
            + (f", {_mb(free)} are free" if free is not None else "")
            + ". Free some space and rerun the same command to resume, or choose another -o folder"
        )
    where = getattr(e, "filename", None) or out
    return UserError(f"-o {out}: cannot write {where} ({e.strerror or e}); check the folder's permissions")


def _unsupported(others: list[str]) -> list[dict[str, str]]:
    """Skip records for the files under the source folder that are not images."""
    return [
        {
            "path": shown(rel),
            "reason": f"not an image file type ({shown(Path(rel).suffix) or 'no extension'}); "
            f"supported: {' '.join(IMAGE_EXTENSIONS)}",
        }
        for rel in others
    ]


def _finalize(
    out: Path,
    records: list[dict[str, Any]],
    report: dict[str, Any],
    config: dict[str, Any],
    size: int,
    schema,
) -> PackedDataset:
    """Write the packed dataset from the finished chunks (exactly `kept` rows), then drop the chunks."""
    writer = PackedWriter(out, n=report["kept"], size=size, schema=schema, space=None, config=config)
    # the writer checks the free space and reserves the arrays' blocks: a full disk is an error, not SIGBUS
    row = 0
    for ci, rec in enumerate(records):
        if rec["count"] and not writer.is_done(ci):
            arrays = _load_arrays(out, ci)
            writer.write_chunk(ci, row, arrays["images"], arrays["tags"])
        row += rec["count"]
    items = [it for r in records for it in r["items"]]
    ds = writer.finalize(
        items,
        count=report["kept"],
        info={
            "import": {
                k: report.get(k, 0)
                for k in ("kept", "total_files", "faces_found", "tags_from", "found_by", "pixel_art")
            }
        },
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
    max_faces: int = 8,
) -> None:
    if not src.is_dir():
        raise UserError(f"{src}: not a folder. Give the folder that holds your images", field="src")
    check_kind(faces)
    checks = [
        ("size", 8 <= size <= 1024, "between 8 and 1024 px"),
        ("crop_scale", 0.5 <= crop_scale <= 4.0, "between 0.5 and 4"),
        ("min_size", min_size >= 1, "at least 1 px"),
        ("dedupe_threshold", -1 <= dedupe_threshold <= 64, "0-64 bits, or 'off' (-1) to keep every image"),
        ("max_pixels", max_pixels >= 1, "positive"),
        ("workers", workers >= 1, "at least 1"),
        ("max_faces", 1 <= max_faces <= 64, "between 1 and 64"),
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
    tag_min_confidence: float,
    keep_unfamiliar: bool = False,
) -> dict[str, Any]:
    """Everything that decides the result: a rerun with the same config resumes the same build."""
    tagger = None
    if estimate_tags is not None:
        st = Path(estimate_tags).stat() if Path(estimate_tags).exists() else None
        tagger = {
            "path": str(Path(estimate_tags).resolve()),
            "size": st.st_size if st else None,
            "mtime_ns": st.st_mtime_ns if st else None,
            "min_confidence": tag_min_confidence,
            "keep_unfamiliar": keep_unfamiliar,
        }
    return {
        "kind": "import",
        "src": shown(str(src.resolve())),
        "files": len(images),
        "listing_sha256": _listing_digest(src, images),
        "size": opts.size,
        "faces": opts.faces,
        "crop_scale": opts.crop_scale,
        "min_size": opts.min_size,
        "max_pixels": opts.max_pixels,
        "closeups": opts.closeups,
        "max_faces": opts.max_faces,
        "pixel_art": opts.pixel_art,
        "dedupe_threshold": dedupe_threshold,
        "dedupe_detail": DETAIL_THRESHOLD,
        "dedupe_local_ratio": LOCAL_RATIO,
        "license": license,
        "tags_file": shown(str(tags_file)) if tags_file else None,
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
    min_conf: float = 0.5
    keep_unfamiliar: bool = False  # estimate tags even for pictures the estimator's familiarity model flags
    pictures: HashIndex | None = None  # whole source images (with a detector): copies whose face boxes moved
    kept_crops: dict[str, list[tuple[list[int], str, int, int]]] = field(default_factory=dict)
    image_sizes: dict[str, list[int]] = field(default_factory=dict)
    _arrays: dict[int, np.ndarray] = field(default_factory=dict)

    def kept_sample(self, ci: int, k: int) -> np.ndarray:
        """A kept sample of an earlier chunk (one chunk cached)."""
        if ci not in self._arrays:
            self._arrays.clear()
            self._arrays[ci] = _load_arrays(self.out, ci)["images"]
        return self._arrays[ci][k]

    def remember(self, item: dict[str, Any], ci: int, k: int) -> None:
        """Note a kept sample for the whole-picture check (the first sample of a source adds the picture)."""
        if self.pictures is None or "image_phash" not in item:
            return
        src = item["source"]
        if src not in self.kept_crops:
            self.pictures.add(int(item["image_phash"], 16), src)
            self.kept_crops[src], self.image_sizes[src] = [], item["image_size"]
        self.kept_crops[src].append((item["crop"], _name(item), ci, k))


def _run_chunks(job: _Job, workers: int, progress: bool) -> list[dict[str, Any]]:
    """Process every chunk in order, reusing chunks a killed run finished. Returns the chunk records."""
    records, row, resuming = [], 0, True
    pool = _make_pool(workers)
    try:
        with progress_bar(
            len(job.images), desc="import", unit="img", disable=None if progress else True
        ) as bar:
            for ci, start in enumerate(range(0, len(job.images), CHUNK_FILES)):
                rels = job.images[start : start + CHUNK_FILES]
                rec = _load_record(job.out, ci, row) if resuming else None
                first = len(job.index)
                if rec is None:
                    resuming = False  # rows after a redone chunk may shift: redo everything after it too
                    rec, arrays = _process_chunk(job, rels, row, pool, ci)
                    _save_arrays(job.out, ci, arrays)
                    write_json_atomic(_record_path(job.out, ci), rec)  # last: the chunk is done
                else:
                    for k, it in enumerate(rec["items"]):
                        job.index.add(int(it["phash"], 16), _name(it))
                        job.remember(it, ci, k)
                # thumbnails of finished chunks are read back from disk on a hash match (rare), not held
                job.index.swap_thumbs(first, [_ThumbLoader(job, ci, k) for k in range(rec["count"])])
                records.append(rec)
                row += rec["count"]
                bar.update(len(rels))
    finally:
        if pool is not None:
            pool.shutdown()
    return records


@dataclass(frozen=True)
class _ThumbLoader:
    """The dedupe thumbnail of kept sample k of chunk ci, read from the chunk file when needed."""

    job: Any
    ci: int
    k: int

    def __call__(self) -> np.ndarray:
        return detail_thumb(self.job.kept_sample(self.ci, self.k))


def _name(item: dict[str, Any]) -> str:
    """How a sample is named in reports: the source path, plus the face number when there are several."""
    return item["source"] + (f"#{item['face'] + 1}" if item.get("faces_in_image", 1) > 1 else "")


def _make_pool(workers: int):
    if workers <= 1:
        return None
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers)


def _record_path(out: Path, ci: int) -> Path:
    return out / CHUNK_DIR / f"chunk_{ci:06d}.json"


def _arrays_path(out: Path, ci: int) -> Path:
    return out / CHUNK_DIR / f"chunk_{ci:06d}.npz"


def _save_arrays(out: Path, ci: int, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(_arrays_path(out, ci)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())


def _load_arrays(out: Path, ci: int) -> dict[str, np.ndarray]:
    with np.load(_arrays_path(out, ci), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _load_record(out: Path, ci: int, row: int) -> dict[str, Any] | None:
    try:
        rec = json.loads(_record_path(out, ci).read_text())
        arrays = _load_arrays(out, ci)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    ok = (
        isinstance(rec, dict)
        and rec.get("row_start") == row
        and len(rec.get("items", ())) == rec.get("count")
        and len(arrays.get("images", ())) == rec.get("count")
        and len(arrays.get("dups", ())) == len(rec.get("duplicates", ()))
    )
    return rec if ok else None


def _process_chunk(
    job: _Job, rels: list[str], row: int, pool, ci: int = 0
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Load, crop and hash the files, then dedupe and tag in sorted order. Returns (record, arrays)."""
    jobs = [(str(job.src), rel, job.opts) for rel in rels]
    results = (
        list(pool.map(_process_job, jobs, chunksize=4))
        if pool is not None
        else [_process_job(j) for j in jobs]
    )
    rec: dict[str, Any] = {
        "row_start": row,
        "items": [],
        "skipped": [],
        "duplicates": [],
        "faces_found": 0,
        "multi_face": [],
    }
    samples, tag_rows, dups = [], [], []
    for rel, res in zip(rels, results):
        rec["faces_found"] += int(res.get("faces", 0) > 0)
        if "reason" in res:
            rec["skipped"].append({"path": shown(rel), "reason": res["reason"]})
            continue
        crops = res["crops"]
        if len(crops) > 1:
            rec["multi_face"].append({"path": shown(rel), "faces": len(crops)})
        tag_row = job.by_rel.get(rel)
        licence = (tag_row.license if tag_row and tag_row.license else None) or job.license or "unknown"
        copy = _copy_of(job, res, ci, samples)
        if copy is not None:  # the whole picture repeats a kept one, whatever the detector boxed this time
            for c in crops:
                rec["duplicates"].append(
                    {
                        "path": shown(rel),
                        "duplicate_of": copy.name,
                        "distance": copy.distance,
                        "detail": copy.detail,
                        "spread": copy.spread,
                        "level": "whole picture (re-cropped where the kept one was cut)",
                    }
                )
                dups.append(c["sample"])
            continue
        for k, c in enumerate(crops):
            item = {
                "source": shown(rel),
                "license": licence,
                "face_box": c["face_box"],
                "crop": c["crop"],
                "found_by": c["how"].split(":", 1)[0],
                "tags_from": "file" if tag_row else "none",
                "phash": f"{c['phash']:016x}",
            }
            if c.get("pixel_art"):
                item["pixel_art"] = True
            if len(crops) > 1:
                item["face"], item["faces_in_image"] = k, len(crops)
            if c["how"] not in ("face", "centre"):
                item["note"] = c["how"]
            thumb = detail_thumb(c["sample"])
            m = job.index.match(c["phash"], thumb)
            if m is not None:
                rec["duplicates"].append(
                    {
                        "path": _name(item),
                        "duplicate_of": m.name,
                        "distance": m.distance,
                        "detail": m.detail,
                        "spread": m.spread,
                    }
                )
                dups.append(c["sample"])
                continue
            job.index.add(c["phash"], _name(item), thumb)
            if "image_phash" in res:
                item["image_phash"], item["image_size"] = f"{res['image_phash']:016x}", res["image_size"]
            job.remember(item, ci, len(samples))
            rec["items"].append(item)
            samples.append(c["sample"])
            tag_rows.append(tag_row.vector if tag_row else np.zeros(len(job.schema), np.float32))
    s = job.opts.size
    images = np.stack(samples) if samples else np.zeros((0, s, s, 3), np.uint8)  # (B, S, S, 3)
    tags = (
        np.stack(tag_rows).astype(np.uint8) if tag_rows else np.zeros((0, len(job.schema)), np.uint8)
    )  # (B, T)
    _estimate_missing_tags(job, rec["items"], images, tags)
    rec["count"] = len(rec["items"])
    dup_arr = np.stack(dups) if dups else np.zeros((0, s, s, 3), np.uint8)
    return rec, {"images": images, "tags": tags, "dups": dup_arr}


def _copy_of(job: _Job, res: dict[str, Any], ci: int, samples: list[np.ndarray]) -> Match | None:
    """The kept picture this image is a copy of, re-cropping it where the kept one was cut, or None.

    A resized copy's face box comes out elsewhere, so its crops do not match; cut at the kept picture's
    squares (scaled to this image), it is the same picture patch by patch. Expression variants are not:
    their mouth or eyes stand out as a local edit.
    """
    if job.pictures is None or "image_phash" not in res:
        return None
    w1, h1 = res["image_size"]
    preview = res["preview"]
    ps = preview.shape[1] / w1
    best = None
    for name, dist in job.pictures.candidates(res["image_phash"]):
        w0, h0 = job.image_sizes[name]
        if abs(w1 / h1 - w0 / h0) > 0.02 * (w0 / h0):
            continue  # another shape: cropped or padded differently, not a plain copy
        sx = w1 / w0 * ps
        worst = None
        for (x, y, w, h), _crop_name, cci, ck in job.kept_crops[name]:
            box = Box(round(x * sx), round(y * sx), max(1, round(w * sx)), max(1, round(h * sx)))
            thumb = detail_thumb(resize_square(crop_padded(preview, box), job.opts.size))
            kept = samples[ck] if cci == ci else job.kept_sample(cci, ck)
            same, top, p90 = same_picture(thumb, detail_thumb(kept), job.index.detail or DETAIL_THRESHOLD)
            if not same:
                worst = None
                break
            worst = (top, p90) if worst is None or top > worst[0] else worst
        if worst is not None and (best is None or worst[0] < best.detail):  # the closest kept picture
            best = Match(name, dist, round(worst[0], 1), round(worst[1], 1))
    return best


def _estimate_missing_tags(
    job: _Job, items: list[dict[str, Any]], images: np.ndarray, tags: np.ndarray
) -> None:
    """Fill the tag rows of untagged samples from the tagger, in place.

    With probabilities (a tagger with `predict_proba`), an exclusive group whose best probability is
    below `job.min_conf` is left all-zero ("unknown": training masks it) instead of a guess, and
    independent tags within UNSURE_MARGIN of the threshold are listed as uncertain.
    """
    missing = [i for i, it in enumerate(items) if it["tags_from"] == "none"]
    if job.estimate_tags is None or not missing:
        return
    schema = job.schema
    proba = seen = None
    if hasattr(job.tagger, "predict_proba"):
        from charforge.tagger.net import INDEPENDENT_THRESHOLD, decide_tags, keep_likelier_of_conflicts

        # a charforge Tagger reads probabilities, familiarity and hair at once; a stand-in gives probabilities
        if hasattr(job.tagger, "read"):
            seen = job.tagger.read(images[missing])
            raw = seen.proba
        else:
            raw = job.tagger.predict_proba(images[missing])
        proba = _widen(job, np.asarray(raw, dtype=np.float32))  # (M, T)
        _check_width(job, proba)
        # the tagger's own decision point: 0.5 for a calibrated estimator (its fitted per-tag thresholds are
        # already in its probabilities), the paper's 0.25 for an uncalibrated judge
        thr = float(getattr(job.tagger, "threshold", INDEPENDENT_THRESHOLD))
        # both of a pair the data never shows together (long and short hair): keep the likelier one
        pred = keep_likelier_of_conflicts(decide_tags(proba, schema, thr), proba, schema)
    else:
        pred = _widen(job, np.asarray(job.tagger.predict_tags(images[missing])))  # (M, T) 0/1
        _check_width(job, pred)
    pred = (pred > 0).astype(np.uint8)
    reading = None if seen is None else seen.hair  # the part reader's, where the tagger has one
    far, over = _unfamiliar(seen, len(missing))
    # unfamiliar pictures get no tags where they are most of this chunk (charforge.tagger.familiar.UNFAMILIAR_MOST)
    withhold = far is not None and not job.keep_unfamiliar and _mostly(far)
    for j, i in enumerate(missing):
        items[i]["tags_from"] = "tagger"
        if far is not None and far[j]:
            items[i]["unfamiliar"] = round(float(over[j]), 2)
            if withhold:
                pred[j] = 0  # not a guess: the estimator has seen nothing like this picture
                continue
            items[i]["unfamiliar_estimated"] = (
                "--keep-unfamiliar" if job.keep_unfamiliar else "among familiar images"
            )
        if reading is not None and len(reading.answer) == len(missing):
            items[i]["hair_from"] = (
                "hair pixels" if reading.known[j] else "whole picture (too little hair seen)"
            )
            if reading.known[j]:
                items[i]["hair_rgb"] = "#" + "".join(f"{int(v):02x}" for v in reading.rgb[j])
                items[i]["hair_read"] = reading.names[int(reading.answer[j])]
        if proba is None:
            continue
        unsure, confs = [], []
        for g, sl in zip(schema.groups, schema.group_slices()):
            best = float(proba[j, sl].max())
            confs.append(best)
            if best < job.min_conf:
                pred[j, sl] = 0  # unknown, not a guess
                unsure.append(f"{g.name} unknown ({best:.2f})")
        isl = schema.independent_slice
        for k, t in enumerate(schema.independent):
            p = float(proba[j, isl.start + k])
            confs.append(max(p, 1 - p))
            if abs(p - thr) < UNSURE_MARGIN:
                unsure.append(f"{t} {p:.2f}")
        items[i]["tag_confidence"] = round(float(np.mean(confs)), 3) if confs else None
        if unsure:
            items[i]["uncertain"] = unsure
    tags[missing] = pred


def _by_chunk(rows: list[tuple[int, int]]) -> dict[int, list[int]]:
    """(chunk, row) pairs grouped: {chunk: [rows in order]}, chunks ascending."""
    out: dict[int, list[int]] = {}
    for ci, k in sorted(rows):
        out.setdefault(ci, []).append(k)
    return out


def _rows_where(records: list[dict[str, Any]], keep) -> list[tuple[int, int]]:
    return [(ci, k) for ci, r in enumerate(records) for k, it in enumerate(r["items"]) if keep(it)]


def _learn_from_labels(
    job: _Job, records: list[dict[str, Any]], enabled: bool, progress: bool = True
) -> list[dict[str, Any]]:
    """Where the tags file labels some samples and the estimator filled in the others: for each independent tag,
    a probe fitted on the labelled samples (charforge.tagger.fewshot) replaces the estimator's answers on the
    others where it reads the labelled ones better. Rewrites the chunk files in place (the same answers on every
    run, so a resumed import agrees) and returns one summary per tag that was tried. Reads one chunk at a time
    (features are kept, pictures are not)."""
    from charforge.tagger import fewshot

    if not enabled or job.tagger is None or not hasattr(job.tagger, "predict_tags"):
        return []
    lab = _rows_where(records, lambda it: it["tags_from"] == "file")
    est = _rows_where(records, lambda it: it["tags_from"] == "tagger")
    if len(lab) < 2 * fewshot.MIN_EACH or not est:
        return []
    isl = job.schema.independent_slice
    names = list(job.schema.independent)
    feats: dict[tuple[int, int], np.ndarray] = {}
    labels, said = [], []
    lab_in, est_in = _by_chunk(lab), _by_chunk(est)
    with progress_bar(
        len(lab) + len(est), desc="learning from your labels", unit="img", disable=None if progress else True
    ) as bar:
        for ci in sorted(set(lab_in) | set(est_in)):
            a = _load_arrays(job.out, ci)
            ks = lab_in.get(ci, []) + est_in.get(ci, [])
            feats.update({(ci, k): f for k, f in zip(ks, fewshot.features(a["images"][ks]))})
            if ci in lab_in:
                mine = lab_in[ci]
                labels.append(a["tags"][mine][:, isl])
                guess = _widen(job, np.asarray(job.tagger.predict_tags(a["images"][mine])))
                _check_width(job, guess)  # the estimator's forced answers on the labelled samples
                said.append(guess[:, isl] > 0)
            bar.update(len(ks))
    results = fewshot.learn(  # lab is in (chunk, row) order, as labels and said were gathered
        names,
        np.stack([feats[r] for r in lab]),
        np.concatenate(labels),
        np.concatenate(said),
        np.stack([feats[r] for r in est]),
    )
    used = [res for res in results if res.used]
    proba = {res.tag: dict(zip(est, res.proba)) for res in used}
    for ci in est_in if used else []:
        a = _load_arrays(job.out, ci)
        for k in est_in[ci]:
            it = records[ci]["items"][k]
            for res in used:
                p = float(proba[res.tag][(ci, k)])
                a["tags"][k, isl.start + names.index(res.tag)] = int(p >= 0.5)
                it["learned"] = sorted(set(it.get("learned", [])) | {res.tag})
                # the estimator's doubt about this tag no longer applies; the probe's own, where it has one
                mine = (res.tag, f"{res.tag} (learned)")
                unsure = [u for u in it.get("uncertain", []) if u.rsplit(" ", 1)[0] not in mine]
                if abs(p - 0.5) < fewshot.UNSURE:
                    unsure.append(f"{res.tag} (learned) {p:.2f}")
                if unsure:
                    it["uncertain"] = unsure
                else:
                    it.pop("uncertain", None)
        # arrays first: the record marks the chunk done, and a rerun learns the same
        _save_arrays(job.out, ci, a)
        write_json_atomic(_record_path(job.out, ci), records[ci])
    return [r.summary() for r in results if r.positives + r.negatives]


def _suggest_labels(job: _Job, records: list[dict[str, Any]], n: int, progress: bool) -> dict[str, Any]:
    """label_these.csv: the n samples worth labelling first among those the tags file does not label (one per
    k-means cluster of their features, charforge.tagger.fewshot.suggest), with their current tags."""
    from charforge.tagger import fewshot

    rows = _rows_where(records, lambda it: it["tags_from"] != "file")  # (chunk, row) order
    feats, tags = [], {}
    with progress_bar(
        len(rows), desc="choosing images to label", unit="img", disable=None if progress else True
    ) as bar:
        for ci, ks in _by_chunk(rows).items():
            a = _load_arrays(job.out, ci)
            feats.append(fewshot.features(a["images"][ks]))
            tags.update({(ci, k): a["tags"][k] for k in ks})
            bar.update(len(ks))
    picked = [rows[i] for i in fewshot.suggest(np.concatenate(feats), n)] if rows else []
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "tags", "license"])
    seen = set()
    for ci, k in picked:
        it = records[ci]["items"][k]
        if it["source"] in seen:
            continue  # one row per file (a second face of the same picture)
        seen.add(it["source"])
        w.writerow([it["source"], ", ".join(job.schema.from_vector(tags[(ci, k)])), it["license"]])
    write_text_atomic(job.out / SUGGEST_CSV, buf.getvalue())
    return {"file": str(job.out / SUGGEST_CSV), "rows": len(seen), "asked": n}


def _unfamiliar(seen, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(which of a reading's n pictures the tagger's familiarity model flags, their scores over its line), or
    (None, None) without a reading or a familiarity model (charforge.tagger.familiar)."""
    if seen is None or seen.familiarity is None or len(seen.familiarity) != n:
        return None, None
    over = np.asarray(seen.familiarity, np.float64) / seen.line
    return over > 1, over


def _mostly(far: np.ndarray) -> bool:
    from charforge.tagger.familiar import UNFAMILIAR_MOST

    return float(far.mean()) >= UNFAMILIAR_MOST


def _widen(job: _Job, pred: np.ndarray) -> np.ndarray:
    """A tagger of the base schema fills the first columns; the user's own tags (appended) stay 0 (off)."""
    t = len(job.schema)
    if pred.ndim == 2 and pred.shape[1] < t:
        pred = np.concatenate([pred, np.zeros((len(pred), t - pred.shape[1]), pred.dtype)], axis=1)
    return pred


def _check_width(job: _Job, pred: np.ndarray) -> None:
    if pred.ndim != 2 or pred.shape[1] != len(job.schema):
        raise UserError(
            f"{job.estimate_tags}: the tagger predicts {pred.shape[-1]} tags, the dataset schema has {len(job.schema)}"
        )


def _load_tagger(path: Path, schema):
    try:
        from charforge.tagger.net import load_tagger
    except ImportError as e:
        raise UserError(
            f"--estimate-tags {path}: this charforge has no tagger module ({e}); import without it"
        ) from e
    tagger = load_tagger(path)
    theirs = getattr(getattr(tagger, "schema", None), "tags", None)
    if theirs is not None and list(theirs) != list(schema.tags)[: len(theirs)]:
        raise UserError(
            f"--estimate-tags {path}: the tagger was trained on other tags ({len(theirs)} tags, "
            f"starting {', '.join(list(theirs)[:3])}) than the dataset schema; use a tagger trained on "
            "the make.girls.moe tag schema"
        )
    return tagger


# ---- the report ------------------------------------------------------------------------------------
def _assemble(
    records: list[dict[str, Any]],
    ignored: list[dict[str, str]],
    folders: list[dict[str, str]],
    warnings: list[str],
    listing: Listing,
) -> dict[str, Any]:
    items = [it for r in records for it in r["items"]]
    skipped = sorted([s for r in records for s in r["skipped"]] + ignored, key=lambda s: s["path"])
    warnings = list(warnings)
    if folders:
        warnings.append(
            f"{len(folders)} folders or links could not be read and their files are not in the dataset "
            f"(first: {folders[0]['path']}: {folders[0]['reason']}); see the report"
        )
    return {
        "total_files": len(listing.images) + len(listing.others),
        "candidates": len(listing.images),
        "kept": len(items),
        "faces_found": sum(r["faces_found"] for r in records),
        "found_by": dict(Counter(it.get("found_by", "centre") for it in items)),
        "pixel_art": sum(bool(it.get("pixel_art")) for it in items),
        "tags_from": dict(Counter(it["tags_from"] for it in items)),
        "learned_samples": sum(1 for it in items if it.get("learned")),
        "licences": dict(Counter(it["license"] for it in items)),
        "skipped": skipped,
        "folders": folders,
        "duplicates": [d for r in records for d in r["duplicates"]],
        "multi_face": [m for r in records for m in r.get("multi_face", [])],
        "noted": [{"path": _name(it), "note": it["note"]} for it in items if "note" in it],
        "uncertain": [{"path": _name(it), "tags": it["uncertain"]} for it in items if it.get("uncertain")],
        "unfamiliar": [
            {
                "path": _name(it),
                "score_over_line": it["unfamiliar"],
                "estimated": it.get("unfamiliar_estimated"),
            }
            for it in items
            if "unfamiliar" in it
        ],
        "warnings": warnings,
    }


def _uncertain_counts(lists) -> dict[str, int]:
    """How many images list each uncertain group ("eye color unknown") or tag ("glasses"), most first."""
    counts: dict[str, int] = {}
    for entries in lists:
        for key in {u.rsplit(" ", 1)[0] for u in entries}:  # drop the probability: "hat 0.31" -> "hat"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _mostly_unknown(est: list[dict[str, Any]]) -> list[str]:
    """The groups ("eye color unknown") left unknown on at least UNKNOWN_MOST of the estimated images: the art
    does not show them. They are named once, as safe, and do not make an image count as uncertain."""
    if len(est) < MIN_FOR_STATS:
        return []
    counts = _uncertain_counts(it.get("uncertain", []) for it in est)
    return [k for k, n in counts.items() if k.endswith(" unknown") and n >= UNKNOWN_MOST * len(est)]


def _unsure_besides(item: dict[str, Any], most: list[str]) -> int:
    """How many of an image's uncertain entries are not groups in `most`."""
    return sum(1 for u in item.get("uncertain", []) if u.rsplit(" ", 1)[0] not in most)


def _share(n: int, total: int) -> str:
    return f"{n} of {total} ({n / max(total, 1):.0%})"


def _crop_share(item: dict[str, Any]) -> float | None:
    """The side of a sample's crop (x, y, w, h) over its picture's shorter side: 1.0 for a whole square picture."""
    crop, size = item.get("crop"), item.get("image_size")
    if not crop or not size or min(size) <= 0:
        return None
    return float(crop[2]) / float(min(size))


def _drop_warnings(
    report: dict[str, Any],
    faces: str,
    threshold: int,
    closeups: bool,
    items: list[dict[str, Any]] | None = None,
) -> list[str]:
    """Warnings for large drops: how many, why, and the flag that changes it."""
    out, total = [], report["candidates"]
    dups = len(report["duplicates"])
    if dups and dups >= WARN_SHARE * total:
        out.append(
            f"{_share(dups, total)} images were dropped as near-duplicates (perceptual hash within "
            f"{threshold} bits of 64, and no patch differing by more than {DETAIL_THRESHOLD:.0f}/255 or "
            f"standing out as a local edit); check "
            f"{DUPES_SHEET}; --dedupe-threshold lower (e.g. 2) keeps more, --dedupe-threshold off keeps all"
        )
    noface = [s for s in report["skipped"] if s["reason"].startswith("no face found")]
    if noface and len(noface) >= WARN_SHARE * total:
        hint = "" if closeups else "; drop --no-closeups to keep close-ups that fill the frame"
        out.append(
            f"{_share(len(noface), total)} images were skipped because the {faces!r} detector found no face"
            f"; try another --faces detector ({', '.join(k for k in ('anime', 'human', 'human-dlib') if k != faces)}) "
            f"or --faces none to keep the centre (or head) square of every image{hint}"
        )
    small = [s for s in report["skipped"] if s["reason"].startswith("face too small")]
    if small and len(small) >= WARN_SHARE * total:
        out.append(
            f"{_share(len(small), total)} images were skipped as too small faces; lower --min-size to keep them"
        )
    closeup = report["found_by"].get("close-up", 0) + report["found_by"].get(
        "close-up (head of a tall image)", 0
    )
    if closeup and closeup >= WARN_SHARE * max(report["kept"], 1):
        two_sizes = _two_sizes(items or [], report["kept"])
        out.append(
            f"{closeup} samples were kept as close-ups without a detected face (see 'Kept without a detected "
            "face' in the report); --no-closeups skips them instead" + (f"; {two_sizes}" if two_sizes else "")
        )
    return out


def _two_sizes(items: list[dict[str, Any]], kept: int) -> str:
    """A note when close-ups (whole pictures) and face crops (1.5x the face box) are both common and the crops are
    much tighter: the dataset then shows heads at two sizes. On 600 framed avatar heads `--faces anime` found a
    face in 421 (crops of a median 74 % of the picture, heads 1.35 times larger) and kept 179 whole: the sheet mixed zoomed faces with
    whole heads. Pictures that are already framed heads want no detector."""
    shares: dict[str, list[float]] = {"close-up": [], "face": []}
    for it in items:
        how, v = str(it.get("found_by", "")), _crop_share(it)
        for kind, got in shares.items():
            if how.startswith(kind) and v:
                got.append(v)
    whole, tight = shares["close-up"], shares["face"]
    if min(len(whole), len(tight)) < WARN_SHARE * max(kept, 1):
        return ""
    a, b = float(np.median(whole)), float(np.median(tight))
    if b >= 0.85 * a:  # crops within 15 % of the close-ups' framing: one size, near enough
        return ""
    return (
        f"they show {a:.0%} of their picture (median) while the {len(tight)} detected faces show {b:.0%}, so heads "
        "come at two sizes; if your pictures are already framed heads, import without --faces (the centre square)"
    )


def _tag_warnings(report: dict[str, Any], records: list[dict[str, Any]], schema: TagSchema) -> list[str]:
    """Warnings when the estimated tags look implausible or unsure; the last one says what to do."""
    items = [it for r in records for it in r["items"]]
    est = [i for i, it in enumerate(items) if it["tags_from"] == "tagger"]
    if not est:
        return []
    out = []
    far = [i for i in est if "unfamiliar" in items[i]]
    withheld = [i for i in far if "unfamiliar_estimated" not in items[i]]
    flagged_kept = [i for i in far if items[i].get("unfamiliar_estimated") == "--keep-unfamiliar"]
    among = [i for i in far if items[i].get("unfamiliar_estimated") == "among familiar images"]
    if withheld:
        out.append(
            f"{_share(len(withheld), len(est))} images look unlike any art the tag estimator learned from (their "
            "ImageNet features are past its familiarity line), so it estimated no tags for them rather than guess"
            "; training treats their tags as unknown. Label them in the tags CSV and re-import with --tags"
            + (", or train without tags" if len(withheld) == len(est) else "")
            + "; --keep-unfamiliar estimates them anyway"
        )
    if flagged_kept:
        out.append(
            f"{_share(len(flagged_kept), len(est))} images look unlike any art the tag estimator learned from; "
            "their tags were estimated anyway (--keep-unfamiliar): expect more wrong tags there, check them first"
        )
    if among:
        out.append(
            f"{_share(len(among), len(est))} images look unlike any art the tag estimator learned from, but sit "
            "among images it knows, so they were estimated like the rest; they come first on the review sheet"
        )
    confs = [items[i]["tag_confidence"] for i in est if items[i].get("tag_confidence") is not None]
    if confs and float(np.mean(confs)) < TAG_CONF_WARN:
        out.append(f"the estimated tags are unsure: mean confidence {np.mean(confs):.2f} < {TAG_CONF_WARN}")
    counts = _uncertain_counts(items[i].get("uncertain", []) for i in est)
    # a group unknown on most images (eye colour in art that draws no irises) gets its own line below; left in
    # the count, it made every image "uncertain" (600 of 600 on line-art avatars, 292 with another unsure tag)
    most = _mostly_unknown([items[i] for i in est])
    unsure = sum(1 for i in est if _unsure_besides(items[i], most))
    if unsure:
        rest = {k: n for k, n in counts.items() if k not in most}
        top = ", ".join(f"{k} on {n}" for k, n in list(rest.items())[:6])
        more = f" and {len(rest) - 6} more" if len(rest) > 6 else ""
        besides = f" besides the {' and '.join(k[: -len(' unknown')] for k in most)}" if most else ""
        out.append(
            f"{_share(unsure, len(est))} estimated images have uncertain tags{besides} (listed in the report): "
            f"{top}{more}"
        )
    for key in most:
        group = key[: -len(" unknown")]
        out.append(
            f"{group} is unknown on {_share(counts[key], len(est))}: the art may not show it clearly. Training "
            f"ignores an unknown {group}, so this is safe; fill it in the CSV where you want it"
        )
    if len(est) >= MIN_FOR_STATS:
        tags = _all_tags(report, records)[est]  # (E, T)
        isl = schema.independent_slice
        shares = [(t, float(tags[:, isl.start + k].mean())) for k, t in enumerate(schema.independent)]
        high = [f"{t!r} on {v:.0%}" for t, v in shares if v > TAG_SHARE_WARN]
        if high:
            out.append(
                f"the estimates look implausible: the tagger put {', '.join(high)} of the {len(est)} "
                "estimated images"
            )
        for g, sl in zip(schema.groups, schema.group_slices()):
            block = tags[:, sl]
            known = block.any(axis=1)
            if known.sum() >= MIN_FOR_STATS and (block[known] == block[known][0]).all():
                value = schema.tags[sl.start + int(block[known][0].argmax())]
                out.append(
                    f"every estimated image got the same {g.name} ({value!r}): the tagger may not know this style"
                )
    if out:
        d = report["_out"]
        out.append(
            f"check the estimated tags: review {d / REVIEW_SHEET}, correct {d / TAGS_CSV} and re-import into a "
            f"new folder with -o {_next_folder(d)} --tags {d / TAGS_CSV}; a higher --tag-min-confidence leaves "
            "more unsure groups unknown"
        )
    return out


def _all_tags(report: dict[str, Any], records: list[dict[str, Any]]) -> np.ndarray:
    if "_tags" not in report:
        out = report["_out"]
        parts = [_load_arrays(out, ci)["tags"] for ci, r in enumerate(records) if r["count"]]
        report["_tags"] = np.concatenate(parts) if parts else np.zeros((0, 0), np.uint8)
    return report["_tags"]


def _write_sheets(
    out: Path, records: list[dict[str, Any]], job: _Job, report: dict[str, Any]
) -> dict[str, list[str]]:
    """import_duplicates.png (every dropped pair) and import_tags_review.png + import_tags.csv (estimates)."""
    report["_out"] = out
    sheets: dict[str, list[str]] = {}
    kept_at: dict[str, tuple[int, int]] = {}
    for ci, r in enumerate(records):
        for k, it in enumerate(r["items"]):
            kept_at[_name(it)] = (ci, k)
            kept_at.setdefault(it["source"], (ci, k))
    cache: dict[int, dict[str, np.ndarray]] = {}

    def arrays(ci: int) -> dict[str, np.ndarray]:
        if ci not in cache:
            cache.clear()  # one chunk in memory at a time
            cache[ci] = _load_arrays(out, ci)
        return cache[ci]

    if report["duplicates"]:
        rows = []
        for ci, r in enumerate(records):
            for k, d in enumerate(r["duplicates"]):
                dropped = arrays(ci)["dups"][k]
                where = kept_at.get(d["duplicate_of"])
                kept = arrays(where[0])["images"][where[1]] if where else np.zeros_like(dropped)
                detail = "-" if d.get("detail") is None else f"{d['detail']:.0f}"
                spread = "-" if d.get("spread") is None else f"{d['spread']:.1f}"
                caption = [
                    f"kept: {d['duplicate_of']}",
                    f"dropped: {d['path']}",
                    f"hash distance {d['distance']} <= {job.index.threshold}",
                    f"largest patch diff {detail} <= {DETAIL_THRESHOLD:.0f}, 90th pct {spread}",
                ]
                rows.append(([kept, dropped], caption))
        sheets["duplicates"] = _sheet_pages(
            out,
            DUPES_SHEET,
            rows,
            f"near-duplicates dropped: hash threshold {job.index.threshold} (--dedupe-threshold), "
            f"patch threshold {DETAIL_THRESHOLD:.0f}/255, local edit at {LOCAL_RATIO:.0f}x the 90th pct",
        )
    est = [
        (ci, k, it)
        for ci, r in enumerate(records)
        for k, it in enumerate(r["items"])
        if it["tags_from"] == "tagger"
    ]
    if est:
        # unfamiliar and uncertain ones first; a group unknown on most images (no eye colour drawn) does not
        # count, or every image is "uncertain" and the sheet's 256 are simply the first files
        most = _mostly_unknown([e[2] for e in est])
        est.sort(key=lambda e: ("unfamiliar" not in e[2], not _unsure_besides(e[2], most), e[0], e[1]))
        rows = []
        for ci, k, it in est[:REVIEW_MAX]:
            a = arrays(ci)
            names = job.schema.from_vector(a["tags"][k])
            caption = [_name(it), ", ".join(names) or "(no tags)"]
            if it.get("hair_rgb"):
                caption.append(f"hair pixels read as {it.get('hair_read', '?')} ({it['hair_rgb']})")
            elif it.get("hair_from"):
                caption.append(f"hair colour from the {it['hair_from']}")
            if "unfamiliar" in it:
                how = "estimated anyway" if "unfamiliar_estimated" in it else "not estimated"
                caption.append(
                    f"unlike the art the estimator knows ({it['unfamiliar']:.2f}x its line): {how}"
                )
            if it.get("learned"):
                caption.append("learned from your labels: " + ", ".join(it["learned"]))
            if it.get("uncertain"):
                caption.append("uncertain: " + ", ".join(it["uncertain"]))
            rows.append(([a["images"][k]], caption))
        title = (
            f"estimated tags ({len(est)} images"
            + (f", first {REVIEW_MAX} shown" if len(est) > REVIEW_MAX else "")
            + ")"
        )
        sheets["tags review"] = _sheet_pages(out, REVIEW_SHEET, rows, title)
        _write_tags_csv(out, records, job)
        sheets["tags file"] = [str(out / TAGS_CSV)]
    return sheets


def _write_tags_csv(out: Path, records: list[dict[str, Any]], job: _Job) -> None:
    """import_tags.csv: file,tags,license for every image, re-importable with --tags after editing."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "tags", "license"])
    seen = set()
    for ci, r in enumerate(records):
        if not r["count"]:
            continue
        tags = _load_arrays(out, ci)["tags"]
        for k, it in enumerate(r["items"]):
            if (
                it["source"] in seen or "\\x" in it["source"]
            ):  # one row per file; undecodable names cannot match
                continue
            seen.add(it["source"])
            w.writerow([it["source"], ", ".join(job.schema.from_vector(tags[k])), it["license"]])
    write_text_atomic(out / TAGS_CSV, buf.getvalue())


def _sheet_pages(
    out: Path, name: str, rows: list[tuple[list[np.ndarray], list[str]]], title: str
) -> list[str]:
    """Draw rows of (images, caption lines) on numbered PNG pages; returns their paths."""
    import textwrap

    from PIL import Image, ImageDraw

    cell, line_h = 96, 12
    single = all(len(ims) == 1 for ims, _ in rows)
    # one image per entry (the tag review): entries side by side, 4 a row, captions wrapped beside each
    per_row, text_w, wrap = (4, 250, 40) if single else (1, 520, 90)
    paths = []
    for p, start in enumerate(range(0, len(rows), SHEET_ROWS)):
        page = rows[start : start + SHEET_ROWS]
        ncols = max(len(ims) for ims, _ in page)
        entry_w = ncols * (cell + 4) + text_w
        n_lines = -(-len(page) // per_row)
        sheet = Image.new("RGB", (8 + per_row * entry_w, 24 + n_lines * (cell + 6)), (255, 255, 255))
        draw = ImageDraw.Draw(sheet)
        draw.text((8, 6), f"{title} - page {p + 1}", fill=(0, 0, 0))
        for i, (ims, caption) in enumerate(page):
            x0, y = 8 + (i % per_row) * entry_w, 24 + (i // per_row) * (cell + 6)
            for j, im in enumerate(ims):
                sheet.paste(
                    Image.fromarray(resize_square(np.ascontiguousarray(im), cell)), (x0 + j * (cell + 4), y)
                )
            x = x0 + ncols * (cell + 4)
            lines = [w for text in caption for w in (textwrap.wrap(_ascii(text), wrap) or [""])]
            for li, text in enumerate(lines[: cell // line_h]):
                draw.text((x, y + li * line_h), text, fill=(0, 0, 0))
                colour = _HEX_COLOUR.search(text)  # a colour read from the picture: show it, not only its hex
                if colour:
                    sx = x + int(draw.textlength(text)) + 4
                    rgb = tuple(int(colour.group(1)[i : i + 2], 16) for i in (0, 2, 4))
                    draw.rectangle(
                        (sx, y + li * line_h + 1, sx + 9, y + li * line_h + 10), fill=rgb, outline=(0, 0, 0)
                    )
        path = out / (name if p == 0 else name.replace(".png", f"_{p + 1}.png"))
        with atomic_path(path) as tmp:
            sheet.save(tmp, format="PNG")
        paths.append(str(path))
    return paths


_HEX_COLOUR = re.compile(r"#([0-9a-fA-F]{6})\b")


def _ascii(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _write_reports(out: Path, report: dict[str, Any], src: Path, config: dict[str, Any]) -> Path:
    """import_report.json (machine-readable) and import_report.md (for people), both atomic."""
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    path = out / REPORT_JSON
    write_json_atomic(path, {"src": shown(str(src)), "out": shown(str(out)), "options": config, **public})
    write_text_atomic(out / REPORT_MD, _report_markdown(public, src))
    return path


def _esc(value: Any) -> str:
    """One markdown table cell: pipes, backslashes and control characters (newlines) escaped."""
    out = []
    for ch in str(value):
        if ch == "|":
            out.append("\\|")
        elif ch == "\\":
            out.append("\\\\")
        elif ch < " " or ch == "\x7f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{ord(ch):02x}"))
        else:
            out.append(ch)
    return "".join(out)


def _report_markdown(r: dict[str, Any], src: Path) -> str:
    lines = [
        f"# Import report: {_esc(shown(str(src)))}",
        "",
        f"- files seen: {r['total_files']}",
        f"- imported: {r['kept']} samples",
        f"- skipped: {len(r['skipped'])}",
        f"- near-duplicates removed: {len(r['duplicates'])}",
        f"- images with a face found: {r['faces_found']}",
        f"- found by: {', '.join(f'{k} {v}' for k, v in sorted(r.get('found_by', {}).items())) or '-'}",
        f"- pixel art on an exact grid, resized cell by cell: {r.get('pixel_art', 0)} samples",
        f"- tags from: {', '.join(f'{k} {v}' for k, v in sorted(r['tags_from'].items())) or '-'}",
        f"- licences: {', '.join(f'{k} {v}' for k, v in sorted(r['licences'].items())) or '-'}",
        "",
    ]
    if r["warnings"]:
        lines += ["## Warnings", ""] + [f"- {_esc(w)}" for w in r["warnings"]] + [""]
    if r.get("learned_tags"):
        lines += [
            "## Tags learned from your labelled images",
            "",
            "Where the tags file labels some images, each independent tag is also read by a probe fitted on them "
            "(charforge.tagger.fewshot); it replaces the estimator's answers on the other images where its "
            "cross-validated balanced accuracy on the labelled images beats the estimator's.",
            "",
            "| tag | labelled with / without | probe (cross-validated) | estimator | used | why |",
            "|---|---|---|---|---|---|",
        ]
        num = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        lines += [
            f"| {_esc(t['tag'])} | {t['labelled_with']} / {t['labelled_without']} | "
            f"{num(t['probe_balanced_accuracy'])} | {num(t['estimator_balanced_accuracy'])} | "
            f"{'yes' if t['used'] else 'no'} | {_esc(t['why'])} |"
            for t in r["learned_tags"]
        ] + [""]
    if r.get("sheets"):
        lines += ["## Review sheets", ""]
        lines += [f"- {k}: {', '.join(_esc(Path(p).name) for p in v)}" for k, v in r["sheets"].items()] + [""]
    if r.get("folders"):
        lines += ["## Folders and links not read", "", "| folder | reason |", "|---|---|"]
        lines += [f"| {_esc(s['path'])} | {_esc(s['reason'])} |" for s in r["folders"]] + [""]
    if r["skipped"]:
        lines += ["## Skipped files", "", "| file | reason |", "|---|---|"]
        lines += [f"| {_esc(s['path'])} | {_esc(s['reason'])} |" for s in r["skipped"]] + [""]
    if r.get("noted"):
        lines += [
            "## Kept without a detected face, or found on a second look",
            "",
            "| sample | how |",
            "|---|---|",
        ]
        lines += [f"| {_esc(s['path'])} | {_esc(s['note'])} |" for s in r["noted"]] + [""]
    if r.get("multi_face"):
        lines += ["## Images with several faces (one sample each)", "", "| file | faces |", "|---|---|"]
        lines += [f"| {_esc(s['path'])} | {s['faces']} |" for s in r["multi_face"]] + [""]
    if r["duplicates"]:
        lines += [
            "## Near-duplicates (removed; the first in sorted order is kept)",
            "",
            "| file | duplicate of | hash distance | largest patch difference | 90th percentile |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {_esc(d['path'])} | {_esc(d['duplicate_of'])} | {d.get('distance', '-')} | "
            f"{'-' if d.get('detail') is None else d['detail']} | {'-' if d.get('spread') is None else d['spread']} |"
            for d in r["duplicates"]
        ] + [""]
    if r.get("unfamiliar"):
        lines += [
            "## Unfamiliar art",
            "",
            "The tag estimator's familiarity model (charforge.tagger.familiar) puts these past its line: they look "
            "unlike anything it learned from. Where they are most of the images estimated together (a chunk of "
            f"{CHUNK_FILES} files) their tags were left unknown instead of guessed; a few among familiar images, or "
            "all with --keep-unfamiliar, were estimated like the rest.",
            "",
            "| sample | score / line | tags |",
            "|---|---|---|",
        ]
        lines += [
            f"| {_esc(u['path'])} | {u['score_over_line']:.2f} | {u.get('estimated') or 'not estimated'} |"
            for u in r["unfamiliar"]
        ] + [""]
    if r.get("uncertain"):
        counts = _uncertain_counts(u["tags"] for u in r["uncertain"])
        lines += ["## Uncertain tag estimates", ""]
        lines += ["Per group or tag: " + ", ".join(f"{_esc(k)} {n}" for k, n in counts.items()) + ".", ""]
        lines += ["| sample | uncertain |", "|---|---|"]
        lines += [f"| {_esc(u['path'])} | {_esc(', '.join(u['tags']))} |" for u in r["uncertain"]] + [""]
    return "\n".join(lines)
