"""Dataset exchange with the StyleGAN family (StyleGAN2-ADA, StyleGAN3 and the tools that read their format).

The format: a zip archive (or a folder) of PNG images and a `dataset.json` at its top level,

    {"labels": [["00000/img00000000.png", LABEL], ...]}

where LABEL is, in StyleGAN's own loader, either an integer class (one-hot conditioning) or a list of
numbers (a conditioning vector). charforge writes a **multi-hot tag vector**: LABEL[k] is 1 when the image
has tag k, else 0, with the tag names in the extra `charforge` section (StyleGAN ignores extra keys):

    "charforge": {"format": 1, "tags": [...label order...], "tag_schema": {...}, "image_size": S,
                  "items": [{"source": ..., "license": ...} per image, in file order], "labels": "..."}

`export_stylegan` writes that from a packed dataset; `import_stylegan` reads it (or any StyleGAN dataset:
integer classes become an exclusive tag group `class`, 0/1 vectors the tags `label 0..K-1`) into the packed
format. Images and tags survive the round trip exactly (PNG is lossless); creator parameters have no place
in the format and are not carried.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from charforge import __version__
from charforge.core.images import DEFAULT_MAX_PIXELS
from charforge.core.tags import TagGroup, TagSchema, make_girls_moe_schema
from charforge.errors import UserError

DATASET_JSON = "dataset.json"
EXCHANGE_FORMAT = 1
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  # what StyleGAN's loader picks up
MAX_ENTRY_BYTES = 256 << 20  # an image or dataset.json larger than this (uncompressed) is refused
LABELS_DOC = "multi-hot: labels[i][1][k] is 1 when image i has tag charforge.tags[k], else 0"
CHUNK = 512


def entry_name(i: int) -> str:
    """The path of image i inside the archive, as StyleGAN's dataset_tool names them."""
    return f"{i // 1000:05d}/img{i:08d}.png"


# ---- export ------------------------------------------------------------------------------------------------
def export_stylegan(root: str | Path, dest: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Write packed dataset `root` as a StyleGAN dataset: `dest` ending in .zip is a zip archive (stored,
    as dataset_tool writes them), anything else a folder. Returns {archive, format, images, labels, size}."""
    from PIL import Image

    from charforge.data.packed import load_packed
    from charforge.utils.io import atomic_path, write_json_atomic
    from charforge.utils.progress import progress

    ds = load_packed(root, verify=True)
    dest = Path(dest)
    as_zip = dest.suffix.lower() == ".zip"
    if as_zip and dest.is_dir():
        raise UserError(f"{dest}: is a folder; give a new .zip file name", field="out")
    if as_zip and dest.exists() and not overwrite:
        raise UserError(f"{dest}: already exists; give a new file name or --overwrite", field="out")
    if not as_zip and dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(
            f"{dest}: exists and is not an empty folder (old images would mix in); give a new folder, "
            "or a name ending in .zip for an archive",
            field="out",
        )
    items = list(ds.manifest.get("items", []))
    if len(items) != len(ds):
        items = [{"source": f"packed:{i}", "license": "unknown"} for i in range(len(ds))]
    tags = np.asarray(ds.tags)
    doc = {
        "labels": [[entry_name(i), [int(v) for v in tags[i]]] for i in range(len(ds))],
        "charforge": {
            "format": EXCHANGE_FORMAT,
            "charforge_version": __version__,
            "labels": LABELS_DOC,
            "tags": list(ds.schema.tags),
            "tag_schema": ds.schema.to_dict(),
            "image_size": ds.size,
            "items": items,
        },
    }

    def png(i: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(ds.images[i])).save(buf, format="PNG")
        return buf.getvalue()

    bar = progress(len(ds), desc="export", unit="img")
    if as_zip:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for i in range(len(ds)):
                zf.writestr(entry_name(i), png(i))
                bar.update(1)
            zf.writestr(DATASET_JSON, json.dumps(doc))
    else:
        for i in range(len(ds)):
            path = dest / entry_name(i)
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_bytes(png(i))
            bar.update(1)
        write_json_atomic(dest / DATASET_JSON, doc)
    bar.close()
    return {
        "archive": dest,
        "format": "stylegan",
        "images": len(ds),
        "size": ds.size,
        "labels": len(ds.schema),
    }


# ---- import ------------------------------------------------------------------------------------------------
class _Source:
    """The entries of a zip archive or a folder, read by name (never extracted to disk)."""

    def __init__(self, src: Path):
        self.src = src
        self.zip: zipfile.ZipFile | None = None
        if src.is_dir():
            self.names = sorted(
                p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file() and not p.is_symlink()
            )
        elif src.is_file():
            try:
                self.zip = zipfile.ZipFile(src)
            except (zipfile.BadZipFile, OSError) as e:
                raise UserError(
                    f"{src}: not a zip archive ({e}); give a StyleGAN dataset (.zip or a folder with "
                    f"{DATASET_JSON})",
                    field="src",
                ) from e
            self.names = sorted(i.filename for i in self.zip.infolist() if not i.is_dir())
        else:
            raise UserError(f"{src}: no such file or folder", field="src")

    def where(self, name: str) -> str:
        return f"{self.src}:{name}" if self.zip is not None else str(self.src / name)

    def read(self, name: str) -> bytes:
        try:
            if self.zip is not None:
                info = self.zip.getinfo(name)
                if info.file_size > MAX_ENTRY_BYTES:
                    raise UserError(
                        f"{self.where(name)}: {info.file_size:,} bytes uncompressed, over the "
                        f"{MAX_ENTRY_BYTES >> 20} MB limit for one entry (a damaged or hostile archive)"
                    )
                return self.zip.read(info)
            path = (self.src / name).resolve()
            if self.src.resolve() not in path.parents:
                raise UserError(f"{self.where(name)}: points outside the dataset folder", field="src")
            if path.stat().st_size > MAX_ENTRY_BYTES:
                raise UserError(f"{self.where(name)}: over the {MAX_ENTRY_BYTES >> 20} MB limit for one file")
            return path.read_bytes()
        except UserError:
            raise
        except KeyError as e:
            raise UserError(f"{self.where(name)}: no such entry in the archive") from e
        except (
            OSError,
            zipfile.BadZipFile,
            RuntimeError,
            ValueError,
            EOFError,
        ) as e:  # CRC errors, encryption
            raise UserError(f"{self.where(name)}: cannot be read ({e}); the archive is damaged") from e

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _decode(source: _Source, name: str, max_pixels: int) -> np.ndarray:
    import warnings

    from PIL import Image

    from charforge.core.images import to_rgb

    data = source.read(name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise UserError(
                        f"{source.where(name)}: {w}x{h} = {w * h:,} pixels, over --max-pixels {max_pixels:,}"
                    )
                im.load()
                return to_rgb(im)
    except UserError:
        raise
    except Exception as e:  # Pillow raises many kinds on bad data
        raise UserError(
            f"{source.where(name)}: not a readable image ({type(e).__name__}: {str(e)[:120]})"
        ) from e


def _read_doc(source: _Source) -> dict[str, Any]:
    if DATASET_JSON not in source.names:
        raise UserError(
            f"{source.src}: no {DATASET_JSON} at its top level, so this is not a StyleGAN dataset with labels. "
            "For a plain folder of images use `charforge data import FOLDER` (without --format stylegan)",
            field="src",
        )
    raw = source.read(DATASET_JSON)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{source.where(DATASET_JSON)}: not valid JSON ({e})") from e
    if not isinstance(doc, dict) or "labels" not in doc:
        raise UserError(
            f"{source.where(DATASET_JSON)}: must be an object with a 'labels' field "
            '({"labels": [["00000/img00000000.png", [0, 1, ...]], ...]} or "labels": null)'
        )
    return doc


def _schema_and_labels(
    source: _Source, doc: dict[str, Any], images: list[str]
) -> tuple[TagSchema, np.ndarray, list[dict[str, Any]] | None]:
    """(schema, (N, T) uint8 tags in `images` order, charforge item records or None)."""
    where = source.where(DATASET_JSON)
    cf = doc.get("charforge") if isinstance(doc.get("charforge"), dict) else None
    raw = doc["labels"]
    if raw is None:
        schema = make_girls_moe_schema()
        return schema, np.zeros((len(images), len(schema)), np.uint8), None
    if not isinstance(raw, list):
        raise UserError(f"{where}: 'labels' must be a list of [file, label] pairs or null")
    by_name: dict[str, Any] = {}
    for k, pair in enumerate(raw):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise UserError(f"{where}: labels[{k}] must be a [file name, label] pair, got {str(pair)[:80]}")
        by_name[pair[0].replace("\\", "/")] = pair[1]
    missing = [n for n in by_name if n not in set(images)]
    if missing:
        raise UserError(
            f"{where}: labels[] names {missing[0]!r}, which is not an image in the dataset"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    for name in images:
        if name not in by_name:
            raise UserError(f"{source.where(name)}: this image has no entry in {DATASET_JSON}'s labels")
    labels = [by_name[n] for n in images]
    if cf is not None and isinstance(cf.get("tag_schema"), dict):
        try:
            schema = TagSchema.from_dict(cf["tag_schema"])
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: charforge.tag_schema is not a valid tag schema ({e})") from e
        width = len(schema)
    elif labels and all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        n_cls = max(labels) + 1
        if min(labels) < 0 or n_cls > 4096:
            raise UserError(
                f"{where}: integer class labels must be 0..4095, got {min(labels)}..{max(labels)}"
            )
        schema = TagSchema(
            groups=[TagGroup("class", tuple(f"class {c}" for c in range(n_cls)))], independent=[]
        )
        tags = np.zeros((len(images), n_cls), np.uint8)
        tags[np.arange(len(images)), labels] = 1
        return schema, tags, None
    else:
        first = next((v for v in labels if isinstance(v, list)), None)
        width = len(first) if first is not None else 0
        if not 0 < width <= 4096:
            raise UserError(
                f"{where}: labels must be integer classes or lists of 0/1 values (1 to 4096 per image)"
            )
        schema = TagSchema(groups=[], independent=[f"label {k}" for k in range(width)])
    tags = np.zeros((len(images), width), np.uint8)
    for i, (name, v) in enumerate(zip(images, labels)):
        if not isinstance(v, list) or len(v) != width:
            got = f"{len(v)} values" if isinstance(v, list) else type(v).__name__
            raise UserError(
                f"{where}: the label of {name!r} has {got}; every label needs {width} values (0 or 1)"
            )
        if any(x not in (0, 1) for x in v):
            bad = next(x for x in v if x not in (0, 1))
            raise UserError(
                f"{where}: the label of {name!r} holds {bad!r}; charforge tags are on/off, so labels must be 0 or 1"
            )
        tags[i] = v
    items = cf.get("items") if cf is not None else None
    if not (
        isinstance(items, list) and len(items) == len(images) and all(isinstance(x, dict) for x in items)
    ):
        items = None
    return schema, tags, items


def import_stylegan(
    src: str | Path,
    out: str | Path,
    *,
    license: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
):
    """Read a StyleGAN dataset (zip or folder with dataset.json) into a packed dataset at `out`.

    Every image must be square and of one size (what StyleGAN trains on). Any bad entry stops the import
    with an error naming it. `license` is recorded for images whose licence the archive does not give.
    Rerunning the same command after a kill resumes. Returns the PackedDataset.
    """
    from charforge.data.packed import PackedWriter
    from charforge.utils.progress import progress

    src = Path(src)
    source = _Source(src)
    try:
        doc = _read_doc(source)
        images = [n for n in source.names if Path(n).suffix.lower() in IMAGE_EXTS]
        if not images:
            raise UserError(f"{src}: holds no images ({', '.join(IMAGE_EXTS)})", field="src")
        schema, tags, items = _schema_and_labels(source, doc, images)
        first = _decode(source, images[0], max_pixels)
        size = first.shape[0]
        if first.shape[:2] != (size, size):
            raise UserError(
                f"{source.where(images[0])}: {first.shape[1]}x{first.shape[0]}; a StyleGAN dataset holds square "
                "images of one size. For other images use `charforge data import FOLDER --size N`"
            )
        if items is None:
            items = [{"source": f"stylegan:{src.name}/{n}", "license": license or "unknown"} for n in images]
        elif license:
            items = [{**it, "license": it.get("license") or license} for it in items]
        writer = PackedWriter(
            out,
            n=len(images),
            size=size,
            schema=schema,
            space=None,
            config={"kind": "stylegan-import", "source": str(src.resolve()), "n": len(images), "size": size},
        )
        bar = progress(len(images), desc="import", unit="img")
        for cid, start in enumerate(range(0, len(images), CHUNK)):
            names = images[start : start + CHUNK]
            if writer.is_done(cid):
                bar.update(len(names))
                continue
            batch = np.empty((len(names), size, size, 3), np.uint8)
            for j, name in enumerate(names):
                rgb = first if start + j == 0 else _decode(source, name, max_pixels)
                if rgb.shape != (size, size, 3):
                    raise UserError(
                        f"{source.where(name)}: {rgb.shape[1]}x{rgb.shape[0]}, but the dataset's images are "
                        f"{size}x{size} ({images[0]}); a StyleGAN dataset holds images of one size"
                    )
                batch[j] = rgb
                bar.update(1)
            writer.write_chunk(cid, start, batch, tags[start : start + len(names)])
        bar.close()
        return writer.finalize(items, info={"imported_from": "stylegan", "archive": src.name})
    finally:
        source.close()
