"""RecordedCreator: a creator known only by (parameters, image) pairs captured from a game.

Folder layout (either form, or both):
    space.json                 the ParamSpace as JSON
    NAME.json + NAME.png       one pair per name (any common image extension works)
    pairs.jsonl                one {"image": "file.png", "params": {...}} object per line
It cannot render new settings (`can_render = False`); `nearest(batch, size)` returns the recorded image whose
encoded parameters are closest, which is what previews use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from charforge.core.space import ParamBatch, ParamSpace
from charforge.creators.base import Creator
from charforge.errors import UserError

_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable JSON file ({e})") from e


def _pairs_from_files(root: Path) -> list[tuple[str, Path, dict]]:
    out = []
    for js in sorted(root.glob("*.json")):
        if js.name == "space.json":
            continue
        img = next((js.with_suffix(e) for e in _IMAGE_EXTS if js.with_suffix(e).is_file()), None)
        if img is None:
            raise UserError(f"{js}: no image next to it; save the capture as {js.with_suffix('.png').name}")
        out.append((str(js), img, _read_json(js)))
    return out


def _pairs_from_jsonl(path: Path) -> list[tuple[str, Path, dict]]:
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        src = f"{path} line {i}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{src}: not valid JSON ({e})") from e
        if not isinstance(row, dict) or "image" not in row or "params" not in row:
            raise UserError(f'{src}: expected {{"image": "file.png", "params": {{...}}}}')
        img = path.parent / str(row["image"])
        if not img.is_file():
            raise UserError(f"{src}: image {row['image']!r} not found in {path.parent}")
        out.append((src, img, row["params"]))
    return out


class RecordedCreator(Creator):
    can_render = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        space_file = self.path / "space.json"
        if not space_file.is_file():
            raise UserError(
                f"{self.path}: a recorded creator folder needs a space.json (the parameter space as JSON)"
            )
        self.space = ParamSpace.from_json(space_file.read_text(encoding="utf-8"), source=str(space_file))
        self.name = f"recorded:{self.path.name}"
        pairs = _pairs_from_files(self.path)
        if (self.path / "pairs.jsonl").is_file():
            pairs += _pairs_from_jsonl(self.path / "pairs.jsonl")
        if not pairs:
            raise UserError(
                f"{self.path}: no recorded pairs; add NAME.json + NAME.png files or a pairs.jsonl"
            )
        self.sources = [p[0] for p in pairs]
        self.image_paths = [p[1] for p in pairs]
        self.batch = ParamBatch.concat([self.space.from_dicts([p[2]], source=p[0]) for p in pairs])
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
