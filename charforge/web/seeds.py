"""Seed schemes: how a seed becomes a character's noise and free tags.

Two schemes, recorded as `seed_scheme` in every output's PNG metadata and manifest:

- ``torch-v1`` (charforge <= 0.1's only scheme, still the CLI's and the API's default): noise is
  ``torch.randn(z_dim, generator=torch.Generator().manual_seed(seed))``; free tags come from
  ``numpy.random.default_rng(seed)`` through ``TagSchema.sample_conditional``. JavaScript cannot reproduce
  either, so the browser cannot draw these characters.
- ``portable-v1``: a counter-based generator defined here and, bit for bit, in ``static/portable.js``:

  * ``mix64(x)`` is SplitMix64's finaliser on unsigned 64-bit integers (all arithmetic mod 2**64)::

        x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; x ^= x >> 27; x *= 0x94D049BB133111EB; x ^= x >> 31

  * a stream's key is ``mix64((stream << 32) | seed)`` for a seed in [0, 2**32) and a stream number
    (1 = noise, 2 = tags, 3 = NPC candidate seeds);
  * word ``i`` (i = 0, 1, ...) of the stream is ``mix64(key + (i + 1) * 0x9E3779B97F4A7C15)``, so any word
    can be computed on its own (no state), in any order, in any language with 64-bit integers (JS: BigInt);
  * uniform ``i`` is ``(word_i >> 11) * 2**-53``, a float64 in [0, 1) (exact in both languages);
  * normals come in pairs by Box-Muller in float64: with ``u1 = 1 - uniform_{2k}`` (in (0, 1]) and
    ``u2 = uniform_{2k+1}``, ``r = sqrt(-2 log u1)``, ``t = (2 pi) u2``, normal ``2k = r cos t`` and
    ``2k+1 = r sin t``; a z_dim-vector takes normals 0..z_dim-1; truncation psi multiplies in float64 and the
    product is rounded to float32 (what the network takes). log/cos/sin may differ by an ulp between
    libraries, so normals agree to ~1e-15, not always bit for bit; the float32 noise almost always does.
  * free tags (stream 2) use a fixed layout of draws, consumed whether or not a tag is fixed, so fixing one
    tag never reshuffles the others: uniform g for exclusive group g (schema order), then one per independent
    tag, then one per conflict pair. Frequencies are the model's ``tag_freqs`` rounded to 6 decimals (what
    the ONNX sidecar stores). A free group with frequencies p picks the first tag k with
    ``u * total < cumsum(p)[k]`` (cumsum and total summed left to right in float64; none if total is 0);
    a free independent tag is on when ``u < freq``; then for each conflict pair, in order, that is on in
    both: a fixed tag stays, otherwise the first is turned off when ``u < 0.5``, else the second.
  * an NPC batch with batch seed s tries the candidate seeds ``word_k(s, stream 3) >> 33`` (31-bit) for
    k = 0, 1, ..., skipping repeats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from charforge.errors import UserError

SPEC = (
    "portable-v1: mix64(x) = SplitMix64 finaliser (x^=x>>30; x*=0xBF58476D1CE4E5B9; x^=x>>27; "
    "x*=0x94D049BB133111EB; x^=x>>31; mod 2^64). key = mix64((stream<<32)|seed), seed in [0, 2^32), stream 1 = "
    "noise, 2 = tags, 3 = NPC seeds. word i = mix64(key + (i+1)*0x9E3779B97F4A7C15); uniform i = (word i >> 11) "
    "* 2^-53. Normals by Box-Muller in float64: u1 = 1 - uniform 2k, u2 = uniform 2k+1, r = sqrt(-2 ln u1), "
    "t = 2 pi u2, normal 2k = r cos t, 2k+1 = r sin t; z = float32(normal * truncation). Tags: uniform g per "
    "exclusive group, then one per independent tag, then one per conflict pair (always consumed); freqs rounded "
    "to 6 decimals; a free group picks the first k with u*total < cumsum(freqs)[k]; a free independent tag is on "
    "when u < freq; a conflict pair both on keeps a fixed tag, else turns off the first if u < 0.5, else the "
    "second. Reference code: charforge/web/seeds.py and charforge/web/static/portable.js (docs/web.md)."
)
TORCH_V1 = "torch-v1"
PORTABLE_V1 = "portable-v1"
SEED_SCHEMES = (TORCH_V1, PORTABLE_V1)
DEFAULT_SEED_SCHEME = TORCH_V1  # the CLI's and the API's default: old seeds keep their characters
BROWSER_SEED_SCHEME = PORTABLE_V1  # the only scheme the browser can run

STREAM_NOISE, STREAM_TAGS, STREAM_NPC = 1, 2, 3
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
SEED_LIMIT = 2**32  # portable-v1 seeds are 0 .. 2**32 - 1
FREQ_DECIMALS = 6


def check_seed_scheme(scheme: str, *, field: str = "seed_scheme") -> str:
    if scheme not in SEED_SCHEMES:
        raise UserError(
            f"{field} {scheme!r}: valid seed schemes are {', '.join(SEED_SCHEMES)} "
            f"({TORCH_V1} = the original seeds, {PORTABLE_V1} = the same characters in the browser)",
            field=field,
        )
    return scheme


def _seeds_u64(seeds: Sequence[int] | np.ndarray) -> np.ndarray:
    s = np.asarray([int(x) for x in seeds], dtype=object)
    bad = [int(x) for x in s if not 0 <= int(x) < SEED_LIMIT]
    if bad:
        raise UserError(
            f"seed {bad[0]}: {PORTABLE_V1} seeds are whole numbers from 0 to {SEED_LIMIT - 1}", field="seed"
        )
    return np.asarray([int(x) for x in s], dtype=np.uint64)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on a uint64 array (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _M1
        x = x ^ (x >> np.uint64(27))
        x = x * _M2
        return x ^ (x >> np.uint64(31))


def stream_keys(seeds: Sequence[int] | np.ndarray, stream: int) -> np.ndarray:
    """(N,) uint64 keys of one stream for N seeds."""
    return mix64((np.uint64(stream) << np.uint64(32)) | _seeds_u64(seeds))


def words(seeds: Sequence[int] | np.ndarray, stream: int, n: int, start: int = 0) -> np.ndarray:
    """(N, n) uint64: words start .. start+n-1 of `stream` for each seed."""
    keys = stream_keys(seeds, stream)[:, None]  # (N, 1)
    idx = np.arange(start + 1, start + n + 1, dtype=np.uint64)[None, :]  # (1, n)
    with np.errstate(over="ignore"):
        return mix64(keys + idx * GOLDEN)


def uniforms(seeds: Sequence[int] | np.ndarray, stream: int, n: int, start: int = 0) -> np.ndarray:
    """(N, n) float64 in [0, 1): (word >> 11) * 2**-53."""
    return (words(seeds, stream, n, start) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def normals(seeds: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """(N, n) float64 standard normals of the noise stream (Box-Muller pairs, see the module docstring)."""
    pairs = (n + 1) // 2
    u = uniforms(seeds, STREAM_NOISE, 2 * pairs)  # (N, 2P)
    r = np.sqrt(-2.0 * np.log(1.0 - u[:, 0::2]))
    t = (2.0 * math.pi) * u[:, 1::2]
    z = np.stack([r * np.cos(t), r * np.sin(t)], axis=2).reshape(len(u), 2 * pairs)  # (N, 2P)
    return z[:, :n]


def noise(seeds: Sequence[int], z_dim: int, truncation: float = 1.0) -> np.ndarray:
    """(N, z_dim) float32 generator noise: normals * psi in float64, rounded to float32."""
    z = normals(seeds, z_dim) if len(seeds) else np.zeros((0, z_dim))
    return (z * float(truncation)).astype(np.float32)


def portable_freqs(freqs: Sequence[float] | np.ndarray) -> np.ndarray:
    """The frequencies the portable scheme samples from: each rounded to 6 decimals (the sidecar's values)."""
    return np.asarray([round(float(f), FREQ_DECIMALS) for f in np.asarray(freqs).reshape(-1)], np.float64)


def sample_tags(schema, freqs, constraints, seeds: Sequence[int]) -> np.ndarray:
    """(N, T) float32 0/1 tag vectors, row i from seeds[i] alone (portable-v1; layout in the docstring)."""
    t_len = len(schema)
    n = len(seeds)
    out = np.zeros((n, t_len), np.float32)
    if n == 0:
        return out
    f = portable_freqs(freqs)
    if len(f) != t_len:
        raise UserError(f"tag_freqs: {len(f)} values for a schema of {t_len} tags", field="tag_freqs")
    groups = {} if constraints is None else dict(constraints.groups)
    indep = {} if constraints is None else dict(constraints.independent)
    n_groups, n_ind = len(schema.groups), len(schema.independent)
    u = uniforms(seeds, STREAM_TAGS, n_groups + n_ind + len(schema.conflicts))  # (N, D)
    fixed = np.zeros(t_len, bool)
    rows = np.arange(n)
    for g, (grp, sl) in enumerate(zip(schema.groups, schema.group_slices())):
        chosen = groups.get(grp.name)
        if chosen is not None:
            out[:, schema.index(chosen)] = 1.0
            fixed[sl] = True
            continue
        cum = np.cumsum(f[sl])  # left to right, like the JavaScript loop
        total = float(cum[-1]) if len(cum) else 0.0
        if total <= 0:
            continue
        k = np.searchsorted(cum, u[:, g] * total, side="right")
        k = np.minimum(k, int(np.flatnonzero(f[sl] > 0)[-1]))  # u * total rounding up to total
        out[rows, sl.start + k] = 1.0
    isl = schema.independent_slice
    for j, tag in enumerate(schema.independent):
        v = indep.get(tag)
        col = isl.start + j
        if v is None:
            out[:, col] = (u[:, n_groups + j] < f[col]).astype(np.float32)
        else:
            out[:, col] = float(v)
            fixed[col] = True
    for c, (a, b) in enumerate(schema.conflicts):
        ia, ib = schema.index(a), schema.index(b)
        both = (out[:, ia] > 0) & (out[:, ib] > 0)
        if fixed[ia]:
            drop = np.full(n, ib)
        elif fixed[ib]:
            drop = np.full(n, ia)
        else:
            drop = np.where(u[:, n_groups + n_ind + c] < 0.5, ia, ib)
        out[rows[both], drop[both]] = 0.0
    return out


def npc_candidate_seeds(batch_seed: int, start: int, n: int) -> list[int]:
    """Candidate seeds start .. start+n-1 of an NPC batch (31-bit; repeats are the caller's to skip)."""
    w = words([batch_seed], STREAM_NPC, n, start)[0]
    return [int(x) for x in (w >> np.uint64(33))]
