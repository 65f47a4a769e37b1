"""ParamSpace: a creator's knobs as data.

Categorical parameters have named options; continuous parameters have a name, a range and a default.
A batch of parameter settings is a `ParamBatch` (option indices + values in creator units); the flat
vector used by networks is one-hot per categorical followed by continuous values normalised to [0, 1].
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from charforge.errors import UserError


@dataclass(frozen=True)
class Categorical:
    name: str
    options: tuple[str, ...]
    default: str
    doc: str = ""

    def __post_init__(self):
        if len(self.options) < 1:
            raise ValueError(f"categorical parameter {self.name!r} needs at least one option")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"categorical parameter {self.name!r} has repeated options")
        if self.default not in self.options:
            raise ValueError(f"default {self.default!r} of {self.name!r} is not one of its options")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "categorical",
            "options": list(self.options),
            "default": self.default,
            "doc": self.doc,
        }


@dataclass(frozen=True)
class Continuous:
    name: str
    lo: float
    hi: float
    default: float
    doc: str = ""

    def __post_init__(self):
        if not (self.hi > self.lo):
            raise ValueError(f"continuous parameter {self.name!r}: hi must be greater than lo")
        if not (self.lo <= self.default <= self.hi):
            raise ValueError(f"continuous parameter {self.name!r}: default outside [{self.lo}, {self.hi}]")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "continuous",
            "lo": self.lo,
            "hi": self.hi,
            "default": self.default,
            "doc": self.doc,
        }


def _as_rows(a: np.ndarray) -> np.ndarray:
    """(N, k) view of a batch array; an empty batch keeps its column count (reshape(0, -1) is ambiguous)."""
    if a.ndim == 2:
        return a
    return a.reshape(len(a), -1) if a.size else a.reshape(len(a), 0)


@dataclass
class ParamBatch:
    """N parameter settings. `cat` (N, n_cat) int64 option indices; `cont` (N, n_cont) float32 creator units."""

    cat: np.ndarray
    cont: np.ndarray

    def __post_init__(self):
        self.cat = _as_rows(np.asarray(self.cat, dtype=np.int64))
        self.cont = _as_rows(np.asarray(self.cont, dtype=np.float32))
        if len(self.cat) != len(self.cont):
            raise ValueError("ParamBatch: cat and cont disagree on the batch size")

    def __len__(self) -> int:
        return len(self.cat)

    def __getitem__(self, idx) -> ParamBatch:
        if isinstance(idx, (int, np.integer)):
            idx = slice(int(idx), int(idx) + 1)
        return ParamBatch(self.cat[idx], self.cont[idx])

    @staticmethod
    def concat(batches: Sequence[ParamBatch]) -> ParamBatch:
        return ParamBatch(np.concatenate([b.cat for b in batches]), np.concatenate([b.cont for b in batches]))


@dataclass
class ParamSpace:
    categorical: list[Categorical] = field(default_factory=list)
    continuous: list[Continuous] = field(default_factory=list)
    name: str = "creator"

    def __post_init__(self):
        names = [p.name for p in self.categorical] + [p.name for p in self.continuous]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"parameter names repeated: {sorted(dup)}")
        self._cat_index = {p.name: i for i, p in enumerate(self.categorical)}
        self._cont_index = {p.name: i for i, p in enumerate(self.continuous)}
        lo = np.array([p.lo for p in self.continuous], dtype=np.float32)
        hi = np.array([p.hi for p in self.continuous], dtype=np.float32)
        self._lo, self._span = lo, hi - lo

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def n_cat(self) -> int:
        return len(self.categorical)

    @property
    def n_cont(self) -> int:
        return len(self.continuous)

    @property
    def cat_sizes(self) -> list[int]:
        return [len(p.options) for p in self.categorical]

    @property
    def vector_dim(self) -> int:
        """Length of the flat vector: sum of option counts + number of continuous parameters."""
        return sum(self.cat_sizes) + self.n_cont

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.categorical] + [p.name for p in self.continuous]

    def cat_slices(self) -> list[slice]:
        """Where each categorical's one-hot block sits in the flat vector."""
        out, start = [], 0
        for k in self.cat_sizes:
            out.append(slice(start, start + k))
            start += k
        return out

    # ---- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "categorical": [p.to_dict() for p in self.categorical],
            "continuous": [p.to_dict() for p in self.continuous],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "parameter space") -> ParamSpace:
        try:
            cats = [
                Categorical(
                    p["name"], tuple(p["options"]), p.get("default", p["options"][0]), p.get("doc", "")
                )
                for p in d.get("categorical", [])
            ]
            conts = [
                Continuous(
                    p["name"],
                    float(p["lo"]),
                    float(p["hi"]),
                    float(p.get("default", (p["lo"] + p["hi"]) / 2)),
                    p.get("doc", ""),
                )
                for p in d.get("continuous", [])
            ]
            return cls(cats, conts, name=d.get("name", "creator"))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise UserError(
                f"{source}: not a valid parameter space ({e}). Expected "
                '{"categorical": [{"name", "options", "default"}], "continuous": [{"name", "lo", "hi", "default"}]}'
            ) from e

    @classmethod
    def from_json(cls, text: str, *, source: str = "parameter space") -> ParamSpace:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{source}: not valid JSON ({e})") from e
        return cls.from_dict(d, source=source)

    # ---- defaults, sampling ----------------------------------------------------------------------
    def defaults(self, n: int = 1) -> ParamBatch:
        cat = np.array([[p.options.index(p.default) for p in self.categorical]] * n, dtype=np.int64).reshape(
            n, self.n_cat
        )
        cont = np.array([[p.default for p in self.continuous]] * n, dtype=np.float32).reshape(n, self.n_cont)
        return ParamBatch(cat, cont)

    def sample(self, n: int, rng: np.random.Generator) -> ParamBatch:
        """Uniform over options and over each continuous range."""
        cat = (
            np.stack([rng.integers(0, k, size=n) for k in self.cat_sizes], axis=1)
            if self.n_cat
            else np.zeros((n, 0), np.int64)
        )
        u = rng.random((n, self.n_cont), dtype=np.float32)
        return ParamBatch(cat, self._lo + u * self._span)

    # ---- dict <-> batch, with validation ------------------------------------------------------
    def validate(
        self, params: Mapping[str, Any], *, source: str = "parameters", partial: bool = True
    ) -> dict[str, Any]:
        """Check one parameter dict; fill missing names with defaults (unless partial=False). Returns a clean dict."""
        if not isinstance(params, Mapping):
            raise UserError(
                f"{source}: expected a JSON object of parameter name -> value, got {type(params).__name__}"
            )
        unknown = [k for k in params if k not in self._cat_index and k not in self._cont_index]
        if unknown:
            raise UserError(
                f"{source}: unknown parameter {unknown[0]!r}. Valid parameters: {', '.join(self.names)}",
                field=unknown[0],
            )
        out: dict[str, Any] = {}
        for p in self.categorical:
            if p.name not in params:
                if not partial:
                    raise UserError(f"{source}: missing parameter {p.name!r}", field=p.name)
                out[p.name] = p.default
                continue
            v = params[p.name]
            if v not in p.options:
                raise UserError(
                    f"{source}: parameter {p.name!r} has unknown option {v!r}. Valid options: {', '.join(p.options)}",
                    field=p.name,
                )
            out[p.name] = v
        for p in self.continuous:
            if p.name not in params:
                if not partial:
                    raise UserError(f"{source}: missing parameter {p.name!r}", field=p.name)
                out[p.name] = p.default
                continue
            v = params[p.name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise UserError(
                    f"{source}: parameter {p.name!r} must be a finite number, got {v!r}", field=p.name
                )
            if not (p.lo <= v <= p.hi):
                raise UserError(
                    f"{source}: parameter {p.name!r} = {v} is out of range [{p.lo}, {p.hi}]", field=p.name
                )
            out[p.name] = float(v)
        return out

    def from_dicts(self, items: Sequence[Mapping[str, Any]], *, source: str = "parameters") -> ParamBatch:
        clean = [
            self.validate(d, source=f"{source}[{i}]" if len(items) > 1 else source)
            for i, d in enumerate(items)
        ]
        cat = np.array(
            [[p.options.index(d[p.name]) for p in self.categorical] for d in clean], dtype=np.int64
        ).reshape(len(clean), self.n_cat)
        cont = np.array([[d[p.name] for p in self.continuous] for d in clean], dtype=np.float32).reshape(
            len(clean), self.n_cont
        )
        return ParamBatch(cat, cont)

    def to_dicts(self, batch: ParamBatch) -> list[dict[str, Any]]:
        out = []
        for i in range(len(batch)):
            d: dict[str, Any] = {
                p.name: p.options[int(batch.cat[i, j])] for j, p in enumerate(self.categorical)
            }
            d.update({p.name: round(float(batch.cont[i, j]), 6) for j, p in enumerate(self.continuous)})
            out.append(d)
        return out

    # ---- flat vector --------------------------------------------------------------------------------
    def encode(self, batch: ParamBatch) -> np.ndarray:
        """(N, vector_dim) float32: one-hot per categorical, then continuous normalised to [0, 1]."""
        n = len(batch)
        out = np.zeros((n, self.vector_dim), dtype=np.float32)
        for j, sl in enumerate(self.cat_slices()):
            out[np.arange(n), sl.start + batch.cat[:, j]] = 1.0
        if self.n_cont:
            out[:, -self.n_cont :] = (batch.cont - self._lo) / self._span
        return out

    def decode(self, vec: np.ndarray) -> ParamBatch:
        """Inverse of encode: argmax per one-hot block (logits work too); continuous clipped to range."""
        vec = np.asarray(vec, dtype=np.float32).reshape(-1, self.vector_dim)
        cat = (
            np.stack([vec[:, sl].argmax(axis=1) for sl in self.cat_slices()], axis=1)
            if self.n_cat
            else np.zeros((len(vec), 0), np.int64)
        )
        u = (
            np.clip(vec[:, self.vector_dim - self.n_cont :], 0.0, 1.0)
            if self.n_cont
            else np.zeros((len(vec), 0), np.float32)
        )
        return ParamBatch(cat, self._lo + u * self._span)

    def normalise(self, cont: np.ndarray) -> np.ndarray:
        return (np.asarray(cont, np.float32) - self._lo) / self._span

    def denormalise(self, u: np.ndarray) -> np.ndarray:
        return self._lo + np.clip(np.asarray(u, np.float32), 0.0, 1.0) * self._span

    def cat_index(self, name: str) -> int:
        return self._cat_index[name]
