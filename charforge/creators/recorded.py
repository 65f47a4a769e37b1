"""RecordedCreator: a creator known only by (parameters, image) pairs captured from a game.

Folder layout (either form, or both):
    space.json                 the ParamSpace as JSON
    NAME.json + NAME.png       one pair per name (any common image extension works)
    pairs.jsonl                one {"image": "file.png", "params": {...}} object per line
It cannot render new settings (`can_render = False`); `nearest(batch, size)` returns the recorded image whose
encoded parameters are closest, which is what previews use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from charforge.core.space import ParamBatch, ParamSpace
from charforge.creators.base import Creator
from charforge.errors import UserError
from charforge.utils.io import json_loads_bounded

_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _parse_json(text: str, src: str) -> Any:
    try:
        return json_loads_bounded(text)
    except RecursionError as e:
        raise UserError(f"{src}: not a readable JSON file (nested too deeply); fix or remove it") from e
    except ValueError as e:  # JSONDecodeError, or an integer with too many digits
        raise UserError(f"{src}: not a readable JSON file ({e})") from e


def _own_file(root: Path, path: Path) -> Path:
    """`path` must be a regular file that stays inside the recorded folder (no device, FIFO or link out)."""
    try:
        inside = path.resolve().is_relative_to(root.resolve())
    except OSError:
        inside = False
    if not inside:
        raise UserError(f"{path}: leads outside the recorded folder {root} (a link?); copy the file in")
    if not path.is_file():
        raise UserError(f"{path}: not a regular file; a recorded folder holds JSON and image files only")
    return path


def _read_json(path: Path, root: Path | None = None) -> Any:
    _own_file(path.parent if root is None else root, path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a readable JSON file ({e})") from e
    return _parse_json(text, str(path))


def _params(space: ParamSpace, raw: Any, src: str) -> dict[str, Any]:
    """One capture's parameters: every parameter of the space must be recorded (no silent defaults)."""
    if not isinstance(raw, dict):
        raise UserError(
            f"{src}: the parameters must be a JSON object of name -> value, got {type(raw).__name__}"
        )
    clean = space.validate(raw, source=src)  # unknown names and bad values first, then what is missing
    missing = [p for p in space.names if p not in raw]
    if missing:
        raise UserError(
            f"{src}: the capture is missing parameter {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; record every parameter of space.json for each capture",
            field=missing[0],
        )
    return clean


def _pairs_from_files(root: Path) -> list[tuple[str, Path, Any]]:
    out = []
    for js in sorted(root.glob("*.json")):
        if js.name == "space.json":
            continue
        img = next((js.with_suffix(e) for e in _IMAGE_EXTS if js.with_suffix(e).exists()), None)
        if img is None:
            raise UserError(f"{js}: no image next to it; save the capture as {js.with_suffix('.png').name}")
        params = _read_json(js, root)
        out.append((str(js), _own_file(root, img), params))
    return out


def _inside(root: Path, name: Any, src: str) -> Path:
    """The image a pairs.jsonl row names, refused unless it is a relative path inside the folder."""
    if not isinstance(name, str) or not name.strip():
        raise UserError(f'{src}: "image" must be a file name such as "cap_001.png", got {name!r}')
    rel = Path(name.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or name.startswith(("/", "\\")):
        raise UserError(
            f"{src}: image {name!r} is not inside the recorded folder; name images relative to "
            f"{root} (no absolute paths, no '..')"
        )
    img = root / rel
    try:
        ok = img.resolve().is_relative_to(root.resolve())
    except OSError:
        ok = False
    if not ok:
        raise UserError(
            f"{src}: image {name!r} leads outside the recorded folder (a link?); copy the file in"
        )
    if not img.is_file():
        raise UserError(f"{src}: image {name!r} not found in {root}")
    return img


def _pairs_from_jsonl(path: Path) -> list[tuple[str, Path, Any]]:
    out = []
    _own_file(path.parent, path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a readable UTF-8 text file ({e})") from e
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        src = f"{path} line {i}"
        row = _parse_json(line, src)
        if not isinstance(row, dict) or "image" not in row or "params" not in row:
            raise UserError(f'{src}: expected {{"image": "file.png", "params": {{...}}}}')
        out.append((src, _inside(path.parent, row["image"], src), row["params"]))
    return out


class RecordedCreator(Creator):
    can_render = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        space_file = self.path / "space.json"
        if not space_file.exists():
            raise UserError(
                f"{self.path}: a recorded creator folder needs a space.json (the parameter space as JSON)"
            )
        raw_space = _read_json(space_file)
        if not isinstance(raw_space, dict):
            raise UserError(
                f"{space_file}: must be a JSON object "
                '{"categorical": [...], "continuous": [...]}'
                f", got {type(raw_space).__name__}"
            )
        self.space = ParamSpace.from_dict(raw_space, source=str(space_file))
        self.name = f"recorded:{self.path.name}"
        pairs = _pairs_from_files(self.path)
        if (self.path / "pairs.jsonl").exists():
            pairs += _pairs_from_jsonl(self.path / "pairs.jsonl")
        if not pairs:
            raise UserError(
                f"{self.path}: no recorded pairs; add NAME.json + NAME.png files or a pairs.jsonl"
            )
        self.sources = [p[0] for p in pairs]
        self.image_paths = [p[1] for p in pairs]
        self.batch = ParamBatch.concat(
            [self.space.from_dicts([_params(self.space, p[2], p[0])], source=p[0]) for p in pairs]
        )
        self._vectors = self.space.encode(self.batch)

    def __len__(self) -> int:
        return len(self.batch)

    def render(self, batch: ParamBatch, size: int) -> np.ndarray:
        raise UserError(
            f"{self.name}: a recorded creator cannot render new parameters; "
            "use its recorded pairs (`images(size)`) or the nearest sample (`nearest(batch, size)`)"
        )

    def sample(self, n: int, rng: np.random.Generator) -> ParamBatch:
        """n recorded settings drawn without replacement (with replacement if n exceeds the recording)."""
        idx = rng.choice(len(self), size=n, replace=n > len(self))
        return self.batch[np.sort(idx)]

    def images(self, size: int, indices: np.ndarray | None = None) -> np.ndarray:
        """(N, size, size, 3) uint8 recorded images, centre-cropped square and resized."""
        from charforge.core.images import BadImage, load_image, resize_square

        idx = np.arange(len(self)) if indices is None else np.asarray(indices)
        out = np.empty((len(idx), size, size, 3), np.uint8)
        for k, i in enumerate(idx):
            try:
                img = load_image(self.image_paths[int(i)])
            except BadImage as e:
                raise UserError(f"{self.image_paths[int(i)]}: {e.reason}") from e
            h, w = img.shape[:2]
            s = min(h, w)
            out[k] = resize_square(
                img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s], size
            )
        return out

    def nearest_indices(self, batch: ParamBatch) -> np.ndarray:
        """(N,) index of the recorded pair closest in encoded-parameter space."""
        q = self.space.encode(batch)  # (N, V)
        d = ((q[:, None, :] - self._vectors[None, :, :]) ** 2).sum(-1)  # (N, R)
        return d.argmin(1)

    def nearest(self, batch: ParamBatch, size: int) -> np.ndarray:
        return self.images(size, self.nearest_indices(batch))
