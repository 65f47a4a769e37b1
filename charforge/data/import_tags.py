"""The tags file of a folder import: CSV or JSONL, file name -> tags (+ licence), checked against a schema.

CSV: `file,tags[,license]` rows, tags comma-separated inside quotes, an optional header naming the columns
(`file`/`filename`/`path`/`image`, `tags`, `license`). JSONL: one `{"file": ..., "tags": [...] or "a, b",
"license": ...}` per line. Row numbers in errors and warnings are 1-based line numbers of the file.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charforge.core.tags import TagSchema
from charforge.errors import UserError
from charforge.utils.io import json_loads_bounded

FILE_KEYS = ("file", "filename", "path", "image")  # header names accepted for the file column
LICENSE_KEYS = ("license", "licence")


@dataclass(frozen=True)
class TagRow:
    file: str  # as written in the tags file, '/'-separated
    vector: np.ndarray  # (T,) float32 0/1
    license: str | None
    row: int  # 1-based line number in the tags file


EXTRA_KEYS = ("extra tags", "extra_tags", "extra-tags")


def declared_extra_tags(path: Path) -> list[str]:
    """Your own tags, declared at the top of the tags file so they join the schema:
    CSV: a comment line `# extra tags: earrings, freckles`; JSONL: a line `{"extra_tags": ["earrings"]}`.
    Returns [] when the file declares none (or does not exist: read_tags_file reports that)."""
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError):
        return []  # read_tags_file names the problem
    out: list[str] = []
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson", ".json")
    for line in text.splitlines():
        line = line.strip()
        if jsonl and line.startswith("{") and "extra" in line:
            try:
                obj = json_loads_bounded(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(obj, dict) and not any(k in obj for k in FILE_KEYS):
                vals = next((obj[k] for k in EXTRA_KEYS if k in obj), None)
                if vals is not None:
                    if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
                        raise UserError(f'{path}: "extra_tags" must be a list of tag names', field="tags")
                    out += vals
        elif not jsonl and line.startswith("#"):
            key, sep, rest = line.lstrip("#").partition(":")
            if sep and key.strip().lower() in EXTRA_KEYS:
                out += [t for t in rest.split(",") if t.strip()]
    return out


def read_tags_file(path: Path, schema: TagSchema) -> list[TagRow]:
    """Parse a CSV (file,tags[,license], optional header) or JSONL ({"file", "tags", "license"}) tags file.

    Every tag is checked against `schema`: an unknown tag or two tags of one exclusive group is a
    `UserError` naming the file, the row and the tag. Nothing is imported until the whole file is valid.
    """
    if not path.is_file():
        raise UserError(f"{path}: tags file not found. Give a CSV (file,tags) or JSONL file", field="tags")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path}: the tags file is not UTF-8 text ({e}); save it as UTF-8", field="tags"
        ) from e
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson", ".json")
    rows = _read_jsonl(path, text, schema) if jsonl else _read_csv(path, text, schema)
    seen: dict[str, int] = {}
    for r in rows:
        if r.file in seen:
            raise UserError(
                f"{path}: rows {seen[r.file]} and {r.row} both give tags for {r.file!r}; keep one",
                field="tags",
            )
        seen[r.file] = r.row
    return rows


def _make_row(path: Path, n: int, file: Any, tags: Any, lic: Any, schema: TagSchema) -> TagRow:
    if not isinstance(file, str) or not file.strip():
        raise UserError(f"{path}: row {n}: missing file name (expected file,tags)", field="tags")
    if tags is None:
        tags = ""
    if not isinstance(tags, (str, list)) or (
        isinstance(tags, list) and not all(isinstance(t, str) for t in tags)
    ):
        raise UserError(
            f"{path}: row {n}: tags must be a string 'a, b' or a list of strings, got {tags!r}", field="tags"
        )
    try:
        c = schema.parse(tags, source=f"{path}: row {n} ({file.strip()})")
    except UserError as e:
        if "unknown tag" not in str(e):
            raise
        raise UserError(
            f"{e}. Your own tags join the schema: declare them at the top of the tags file "
            '(CSV: `# extra tags: earrings, freckles`; JSONL: {"extra_tags": ["earrings"]}) or pass '
            "--extra-tags",
            field="tags",
        ) from e
    on = [t for t in c.groups.values() if t] + [t for t, v in c.independent.items() if v]
    if lic is not None and not isinstance(lic, str):
        raise UserError(
            f'{path}: row {n} ({file.strip()}): the licence must be a string such as "CC-BY-4.0", '
            f"got {type(lic).__name__} {_clip(lic)}",
            field="license",
        )
    key = file.strip().replace("\\", "/").removeprefix("./")
    licence = lic.strip() if isinstance(lic, str) and lic.strip() else None
    return TagRow(key, schema.to_vector(on), licence, n)


def _read_csv(path: Path, text: str, schema: TagSchema) -> list[TagRow]:
    reader = csv.reader(io.StringIO(text))
    cols, rows, first, width = (0, 1, 2), [], True, 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:  # a field over the csv module's limit (an unclosed quote), a NUL byte...
            raise UserError(
                f"{path}: row {reader.line_num}: cannot read this CSV row ({e}); usually a quote that is "
                'never closed. Write rows as file,"tag, tag",license',
                field="tags",
            ) from e
        if not any(c.strip() for c in cells):
            continue
        if cells[0].lstrip().startswith("#"):  # a comment, e.g. the `# extra tags: ...` declaration
            continue
        if first and cells[0].strip().lower() in FILE_KEYS:
            cols, first, width = _csv_columns(path, cells), False, len(cells)
            continue
        n = reader.line_num
        if width and len(cells) > width and any(c.strip() for c in cells[width:]):
            raise UserError(
                f"{path}: row {n}: {len(cells)} columns but the header names {width}; put the tags in "
                'quotes ("blonde hair, blue eyes") so their commas do not split the row',
                field="tags",
            )
        if not width:
            _check_unheadered(path, n, cells, schema)
        first = False
        file, tags, lic = (cells[i] if i is not None and i < len(cells) else None for i in cols)
        rows.append(_make_row(path, n, file, tags, lic, schema))
    return rows


def _check_unheadered(path: Path, n: int, cells: list[str], schema: TagSchema) -> None:
    """Without a header, `file,tags,license` is the layout: catch tags that spilled into later columns."""
    extra = [c for c in cells[3:] if c.strip()]
    lic = cells[2].strip() if len(cells) > 2 else ""
    if extra or (lic and _is_tag(lic, schema)):
        spilled = [c.strip() for c in cells[2:] if c.strip()]
        raise UserError(
            f"{path}: row {n}: {', '.join(repr(c) for c in spilled)} after the tags column "
            f"{'look like tags' if len(spilled) > 1 else 'looks like a tag'}, not a licence: the tags were "
            f'not quoted. Write {cells[0].strip()},"{", ".join(c.strip() for c in cells[1:] if c.strip())}" '
            "(tags in quotes), or add a header line file,tags,license",
            field="tags",
        )


def _is_tag(text: str, schema: TagSchema) -> bool:
    try:
        schema.parse([text])
    except UserError:
        return False
    return True


def _clip(v: Any, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _csv_columns(path: Path, header: list[str]) -> tuple[int, int, int | None]:
    names = [h.strip().lower() for h in header]
    if "tags" not in names:
        raise UserError(
            f"{path}: row 1: the header {header} has no 'tags' column (expected file,tags[,license])",
            field="tags",
        )
    lic = next((i for i, h in enumerate(names) if h in LICENSE_KEYS), None)
    return next(i for i, h in enumerate(names) if h in FILE_KEYS), names.index("tags"), lic


def _read_jsonl(path: Path, text: str, schema: TagSchema) -> list[TagRow]:
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json_loads_bounded(line)
        except json.JSONDecodeError as e:
            raise UserError(
                f'{path}: row {n}: not valid JSON ({e.msg}); expected {{"file": ..., "tags": [...]}}',
                field="tags",
            ) from e
        except RecursionError as e:
            raise UserError(
                f'{path}: row {n}: JSON nested too deeply; expected {{"file": ..., "tags": [...]}}',
                field="tags",
            ) from e
        except ValueError as e:  # e.g. an integer with more digits than Python converts
            raise UserError(
                f'{path}: row {n}: unreadable JSON value ({e}); expected {{"file": ..., "tags": [...]}}',
                field="tags",
            ) from e
        if not isinstance(obj, dict):
            raise UserError(f'{path}: row {n}: expected a JSON object with "file" and "tags"', field="tags")
        if any(k in obj for k in EXTRA_KEYS) and not any(k in obj for k in FILE_KEYS):
            continue  # the {"extra_tags": [...]} declaration
        file = next((obj[k] for k in FILE_KEYS if k in obj), None)
        lic = next((obj[k] for k in LICENSE_KEYS if k in obj), None)
        rows.append(_make_row(path, n, file, obj.get("tags"), lic, schema))
    return rows


def match_rows(rows: list[TagRow], images: list[str], *, source: str) -> tuple[dict[str, TagRow], list[str]]:
    """Map image paths to tag rows: by path relative to SRC, else by bare file name when that is unique.

    Rows that match no image (or several) become warnings for the report.
    """
    by_name: dict[str, list[str]] = defaultdict(list)
    for rel in images:
        by_name[rel.rsplit("/", 1)[-1]].append(rel)
    known, by_rel, warnings = set(images), {}, []
    for r in rows:
        target = r.file if r.file in known else None
        if target is None and "/" not in r.file and len(by_name.get(r.file, ())) == 1:
            target = by_name[r.file][0]
        if target is None:
            many = by_name.get(r.file, [])
            why = (
                f"matches several images ({', '.join(many)}); write its path relative to the source folder"
                if many
                else "matches no image in the source folder"
            )
            warnings.append(f"{source}: row {r.row}: {r.file!r} {why}")
        elif target in by_rel:
            warnings.append(
                f"{source}: row {r.row}: {r.file!r} is the same image as row {by_rel[target].row}; row {r.row} ignored"
            )
        else:
            by_rel[target] = r
    return by_rel, warnings
