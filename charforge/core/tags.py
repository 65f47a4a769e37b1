"""TagSchema: which tags exist, which are mutually exclusive, and how to sample them.

Exclusive groups (hair colour, eye colour) hold at most one tag per image; independent tags (smile, hat)
are on or off on their own. `conflicts` lists independent pairs that cannot both be on (long/short hair).
A tag vector is (T,) float32 of 0/1 in `schema.tags` order: group tags first, then independent tags.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from charforge.errors import UserError

MIN_EXPECTED_TOGETHER = 20.0  # learn_conflicts: expected co-occurrences before "never together" counts

ANY = "any"


@dataclass(frozen=True)
class TagGroup:
    name: str
    tags: tuple[str, ...]


def normalise_tag(tag: str) -> str:
    """'Blonde_Hair ' -> 'blonde hair' (image-board style underscores are accepted)."""
    return " ".join(tag.replace("_", " ").strip().lower().split())


@dataclass
class TagConstraints:
    """What a user fixed: a tag per exclusive group (or None = any), on/off per independent tag (None = any)."""

    groups: dict[str, str | None] = field(default_factory=dict)
    independent: dict[str, bool | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"groups": dict(self.groups), "independent": dict(self.independent)}


@dataclass
class TagSchema:
    groups: list[TagGroup]
    independent: list[str]
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    train_p: float = 0.25  # probability of each independent tag when sampling training labels (paper §4.1)

    def __post_init__(self):
        self.groups = [g if isinstance(g, TagGroup) else TagGroup(g[0], tuple(g[1])) for g in self.groups]
        self.conflicts = [tuple(c) for c in self.conflicts]
        tags = self.tags
        dup = {t for t, k in Counter(tags).items() if k > 1}  # linear: schemas may be large
        if dup:
            raise ValueError(f"tags repeated in schema: {sorted(dup)}")
        self._index = {t: i for i, t in enumerate(tags)}
        self._group_of = {t: g.name for g in self.groups for t in g.tags}
        for a, b in self.conflicts:
            if a not in self._index or b not in self._index:
                raise ValueError(f"conflict ({a!r}, {b!r}) names a tag not in the schema")

    # ---- layout --------------------------------------------------------------------------------
    @property
    def tags(self) -> list[str]:
        return [t for g in self.groups for t in g.tags] + list(self.independent)

    def __len__(self) -> int:
        return len(self.tags)

    def index(self, tag: str) -> int:
        return self._index[tag]

    def group_slices(self) -> list[slice]:
        out, start = [], 0
        for g in self.groups:
            out.append(slice(start, start + len(g.tags)))
            start += len(g.tags)
        return out

    @property
    def independent_slice(self) -> slice:
        start = sum(len(g.tags) for g in self.groups)
        return slice(start, start + len(self.independent))

    def group_of(self, tag: str) -> str | None:
        return self._group_of.get(tag)

    # ---- JSON --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [{"name": g.name, "tags": list(g.tags)} for g in self.groups],
            "independent": list(self.independent),
            "conflicts": [list(c) for c in self.conflicts],
            "train_p": self.train_p,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TagSchema:
        return cls(
            groups=[TagGroup(g["name"], tuple(g["tags"])) for g in d.get("groups", [])],
            independent=list(d.get("independent", [])),
            conflicts=[tuple(c) for c in d.get("conflicts", [])],
            train_p=float(d.get("train_p", 0.25)),
        )

    @classmethod
    def from_json(cls, text: str) -> TagSchema:
        return cls.from_dict(json.loads(text))

    # ---- parsing user tags ------------------------------------------------------------------------
    def check_tag(self, tag: str, *, source: str = "tags") -> str:
        t = normalise_tag(tag)
        if t not in self._index:
            raise UserError(
                f"{source}: unknown tag {tag!r}. Valid tags: {', '.join(self.tags)}", field=source
            )
        return t

    def parse(self, tags: str | Iterable[str], *, source: str = "tags") -> TagConstraints:
        """Parse 'blonde hair, blue eyes, -hat' into constraints. A leading '-' or 'no ' turns a tag off."""
        items = [s for s in (tags.split(",") if isinstance(tags, str) else tags)]
        c = TagConstraints({g.name: None for g in self.groups}, {t: None for t in self.independent})
        for raw in items:
            if not raw or not raw.strip():
                continue
            s = normalise_tag(raw)  # before the prefix checks, so "No_Hat" turns "hat" off like "no hat"
            off = False
            if s.startswith("-"):
                off, s = True, s[1:]
            elif s.lower().startswith("no "):
                off, s = True, s[3:]
            t = self.check_tag(s, source=source)
            g = self.group_of(t)
            if g is not None:
                if off:
                    raise UserError(
                        f"{source}: {t!r} belongs to the exclusive group {g!r}; choose one of its tags instead of turning one off",
                        field=source,
                    )
                if c.groups[g] not in (None, t):
                    raise UserError(
                        f"{source}: contradicting tags {c.groups[g]!r} and {t!r}: the group {g!r} takes one tag",
                        field=source,
                    )
                c.groups[g] = t
            else:
                if c.independent[t] is not None and c.independent[t] != (not off):
                    raise UserError(f"{source}: tag {t!r} is both on and off", field=source)
                c.independent[t] = not off
        for a, b in self.conflicts:
            if c.independent.get(a) and c.independent.get(b):
                raise UserError(
                    f"{source}: contradicting tags {a!r} and {b!r} cannot both be on (the tag schema, "
                    "or a training set that never shows them together, rules the pair out)",
                    field=source,
                )
        return c

    def constraints_from_dict(self, d: Mapping[str, Any], *, source: str = "tags") -> TagConstraints:
        """API form: {"hair color": "blonde hair" | "any", "smile": true | false | "any", ...}."""
        c = TagConstraints({g.name: None for g in self.groups}, {t: None for t in self.independent})
        groups = {g.name: g for g in self.groups}
        for key, value in d.items():
            if key in groups:
                if value in (None, ANY):
                    continue
                t = normalise_tag(str(value))
                if t not in groups[key].tags:
                    raise UserError(
                        f"{source}.{key}: unknown value {value!r}. Valid: any, {', '.join(groups[key].tags)}",
                        field=f"{source}.{key}",
                    )
                c.groups[key] = t
                continue
            t = normalise_tag(key)
            if t not in c.independent:
                valid = [g.name for g in self.groups] + list(self.independent)
                raise UserError(
                    f"{source}: unknown tag or group {key!r}. Valid: {', '.join(valid)}",
                    field=f"{source}.{key}",
                )
            if value in (None, ANY):
                continue
            if not isinstance(value, bool):
                raise UserError(
                    f'{source}.{key}: expected true, false or "any", got {value!r}', field=f"{source}.{key}"
                )
            c.independent[t] = value
        for a, b in self.conflicts:
            if c.independent.get(a) and c.independent.get(b):
                raise UserError(
                    f"{source}: contradicting tags {a!r} and {b!r} cannot both be on (the tag schema, "
                    "or a training set that never shows them together, rules the pair out)",
                    field=source,
                )
        return c

    # ---- vectors -----------------------------------------------------------------------------------
    def to_vector(self, tags: Iterable[str]) -> np.ndarray:
        v = np.zeros(len(self), dtype=np.float32)
        for t in tags:
            v[self._index[self.check_tag(t)]] = 1.0  # an unknown tag is a UserError naming it, not a KeyError
        return v

    def from_vector(self, vec: np.ndarray, threshold: float = 0.5) -> list[str]:
        """Tag names that are on. Groups take their argmax if it passes `threshold`."""
        vec = np.asarray(vec, dtype=np.float32)
        names = self.tags
        out = []
        for sl in self.group_slices():
            j = int(vec[sl].argmax())
            if vec[sl][j] >= threshold:
                out.append(names[sl.start + j])
        isl = self.independent_slice
        out += [names[isl.start + j] for j in np.flatnonzero(vec[isl] >= threshold)]
        return out

    def frequencies(self, tag_matrix: np.ndarray) -> np.ndarray:
        """Empirical P(tag on), (T,) float32."""
        m = np.asarray(tag_matrix, dtype=np.float32)
        return m.mean(axis=0) if len(m) else np.zeros(len(self), np.float32)

    def learn_conflicts(
        self, tag_matrix: np.ndarray, min_expected: float = MIN_EXPECTED_TOGETHER
    ) -> list[tuple[str, str]]:
        """Independent tag pairs the data never shows together although, were they unrelated, it would show
        them together at least `min_expected` times (N * p_a * p_b). A creator that draws one hairstyle per
        character makes twintails, drill hair and ponytail such pairs; sampling them independently would ask
        a generator for pictures no training image shows. Pairs already in `conflicts` are left out."""
        m = np.asarray(tag_matrix) > 0
        isl = self.independent_slice
        if len(m) == 0 or isl.stop <= isl.start:
            return []
        ind = m[:, isl].astype(np.float64)  # (N, K)
        together = ind.T @ ind  # (K, K) co-occurrence counts
        p = ind.mean(axis=0)
        expected = len(m) * np.outer(p, p)
        have = {frozenset(c) for c in self.conflicts}
        out = []
        for i, j in zip(*np.triu_indices(len(p), k=1)):
            a, b = self.independent[i], self.independent[j]
            if together[i, j] == 0 and expected[i, j] >= min_expected and frozenset((a, b)) not in have:
                out.append((a, b))
        return out

    def with_group(self, name: str, tags: Sequence[str]) -> TagSchema:
        """A copy with one more exclusive group after the existing groups (e.g. the render-style tokens).

        Group tags come before independent tags in a tag vector, so the independent tags move by len(tags);
        code that carries weights or columns between schemas maps them by tag name (see `column_map`)."""
        if any(g.name == name for g in self.groups):
            raise ValueError(f"tag group {name!r} is already in the schema")
        return TagSchema(
            groups=[*self.groups, TagGroup(name, tuple(normalise_tag(t) for t in tags))],
            independent=list(self.independent),
            conflicts=list(self.conflicts),
            train_p=self.train_p,
        )

    def column_map(self, other: TagSchema) -> tuple[np.ndarray, np.ndarray]:
        """(mine, theirs): index arrays of the tags both schemas share, pairing column mine[k] with theirs[k]."""
        pairs = [(i, other._index[t]) for i, t in enumerate(self.tags) if t in other._index]
        a = np.array([p[0] for p in pairs], dtype=np.int64)
        b = np.array([p[1] for p in pairs], dtype=np.int64)
        return a, b

    def with_independent(self, extra: Iterable[str], *, source: str = "extra tags") -> TagSchema:
        """A copy with a user's own independent tags appended (after every existing tag, so the existing
        tags keep their indices and a tagger of the base schema still reads its columns)."""
        add: list[str] = []
        for raw in extra:
            t = normalise_tag(str(raw))
            if not t:
                continue
            if t in self._index:
                continue  # already in the schema (e.g. declared twice, or a built-in tag): nothing to add
            if len(t) > 64 or not all(ch.isalnum() or ch in " -'" for ch in t):
                raise UserError(
                    f"{source}: {str(raw).strip()!r} is not a usable tag name (letters, digits, spaces, - and ', at most 64)",
                    field="tags",
                )
            if t not in add:
                add.append(t)
        if not add:
            return self
        return TagSchema(
            groups=list(self.groups),
            independent=list(self.independent) + add,
            conflicts=list(self.conflicts),
            train_p=self.train_p,
        )

    def with_conflicts(self, extra: Sequence[tuple[str, str]]) -> TagSchema:
        """A copy with `extra` conflict pairs added (duplicates ignored)."""
        have = {frozenset(c) for c in self.conflicts}
        new = [tuple(c) for c in extra if frozenset(c) not in have]
        return TagSchema(
            groups=list(self.groups),
            independent=list(self.independent),
            conflicts=list(self.conflicts) + new,
            train_p=self.train_p,
        )

    # ---- sampling ----------------------------------------------------------------------------------
    def sample_training(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Training labels (paper §4.1): one tag uniformly per exclusive group, each independent tag with p=train_p."""
        out = np.zeros((n, len(self)), dtype=np.float32)
        for sl in self.group_slices():
            out[np.arange(n), sl.start + rng.integers(0, sl.stop - sl.start, size=n)] = 1.0
        isl = self.independent_slice
        out[:, isl] = (rng.random((n, isl.stop - isl.start)) < self.train_p).astype(np.float32)
        self._resolve_conflicts(out, rng, fixed=None)
        return out

    def sample_conditional(
        self, n: int, rng: np.random.Generator, freqs: np.ndarray, constraints: TagConstraints | None = None
    ) -> np.ndarray:
        """Generation-time labels: fixed tags as given, the rest from the empirical frequencies `freqs` (T,)."""
        freqs = np.asarray(freqs, dtype=np.float64)
        c = constraints or TagConstraints()
        out = np.zeros((n, len(self)), dtype=np.float32)
        fixed = np.zeros(len(self), dtype=bool)
        for g, sl in zip(self.groups, self.group_slices()):
            chosen = c.groups.get(g.name)
            if chosen is not None:
                out[:, self._index[chosen]] = 1.0
                fixed[sl] = True
                continue
            p = freqs[sl]
            if p.sum() <= 0:
                continue  # the data never labels this group: leave it unlabelled, as the data does
            idx = rng.choice(len(p), size=n, p=p / p.sum())
            out[np.arange(n), sl.start + idx] = 1.0
        isl = self.independent_slice
        for j, t in enumerate(self.independent):
            v = c.independent.get(t)
            if v is None:
                out[:, isl.start + j] = (rng.random(n) < freqs[isl.start + j]).astype(np.float32)
            else:
                out[:, isl.start + j] = float(v)
                fixed[isl.start + j] = True
        self._resolve_conflicts(out, rng, fixed=fixed)
        return out

    def resolve_conflicts(
        self, out: np.ndarray, rng: np.random.Generator, fixed: np.ndarray | None = None
    ) -> None:
        """In place: where both tags of a conflict pair are on, turn one off (a fixed one stays; else at random)."""
        self._resolve_conflicts(out, rng, fixed)

    def _resolve_conflicts(self, out: np.ndarray, rng: np.random.Generator, fixed: np.ndarray | None) -> None:
        for a, b in self.conflicts:
            ia, ib = self._index[a], self._index[b]
            both = (out[:, ia] > 0) & (out[:, ib] > 0)
            if not both.any():
                continue
            if fixed is not None and fixed[ia]:
                drop = np.full(len(out), ib)
            elif fixed is not None and fixed[ib]:
                drop = np.full(len(out), ia)
            else:
                drop = np.where(rng.random(len(out)) < 0.5, ia, ib)
            rows = np.flatnonzero(both)
            out[rows, drop[rows]] = 0.0

    def validate_matrix(self, m: np.ndarray, *, source: str = "tag matrix") -> None:
        """Each exclusive group has at most one tag on per row."""
        m = np.asarray(m)
        if m.ndim != 2 or m.shape[1] != len(self):
            raise UserError(f"{source}: expected shape (N, {len(self)}), got {m.shape}")
        for g, sl in zip(self.groups, self.group_slices()):
            bad = np.flatnonzero(m[:, sl].sum(axis=1) > 1)
            if len(bad):
                raise UserError(
                    f"{source}: row {int(bad[0])} has more than one tag of the exclusive group {g.name!r}"
                )


HAIR_COLORS = (
    "blonde",
    "brown",
    "black",
    "blue",
    "pink",
    "purple",
    "green",
    "red",
    "silver",
    "white",
    "orange",
    "aqua",
    "gray",
)
EYE_COLORS = ("blue", "red", "brown", "green", "purple", "yellow", "pink", "aqua", "black", "orange")
HAIR_STYLES = ("long hair", "short hair", "twintails", "drill hair", "ponytail")
OTHER_ATTRS = ("blush", "smile", "open mouth", "hat", "ribbon", "glasses")


def make_girls_moe_schema() -> TagSchema:
    """The 34 tags of the make.girls.moe paper (Table 1): 13 hair colours, 5 hair styles, 6 attributes, 10 eye colours."""
    return TagSchema(
        groups=[
            TagGroup("hair color", tuple(f"{c} hair" for c in HAIR_COLORS)),
            TagGroup("eye color", tuple(f"{c} eyes" for c in EYE_COLORS)),
        ],
        independent=list(HAIR_STYLES + OTHER_ATTRS),
        conflicts=[("long hair", "short hair")],
        train_p=0.25,
    )


def tags_from_names(schema: TagSchema, rows: Sequence[Sequence[str]]) -> np.ndarray:
    return np.stack([schema.to_vector(r) for r in rows]) if rows else np.zeros((0, len(schema)), np.float32)
