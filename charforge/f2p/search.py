"""Search: parameters that the frozen imitator maps closest to a target embedding.

Categorical parameters: every combination when there are few (the Dragon's Dogma 2 study enumerates them),
else a beam, swept coordinate-wise over the parameters (each sweep tries every option of one parameter for
every beam entry and keeps the best B distinct assignments). Continuous parameters: Adam through the
imitator on all candidates at once, in [0, 1] space via a sigmoid. Everything is batched over targets.
The start point (the translator's answer) is always kept as a candidate.

`allowed` (optional, from `allowed_options`): per categorical parameter the option indices the search may use
(what the input visibly shows, see `charforge.f2p.attributes.attribute_constraints`); `project` moves a start
point inside them. Enumeration, the beam and the refinement then only ever try allowed options.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from charforge.f2p.imitator import Imitator


@dataclass
class SearchConfig:
    iters: int = 100  # Adam steps on the continuous parameters
    lr: float = 0.1  # Adam step size, in sigmoid-logit units
    beam: int = 8  # categorical assignments kept per target and sent to Adam
    rounds: int = (
        2  # alternations of (categorical candidates, Adam on continuous); iters are split between them
    )
    sweeps: int = 1  # coordinate sweeps over the categorical parameters (beam mode)
    max_enumerate: int = 256  # enumerate every combination when their count is at most this
    img_weight: float = (
        0.0  # weight of the L1 content loss on the imitator's low-res image (needs target images)
    )
    refine_sweeps: int = 2  # greedy sweeps with the real creator afterwards (creators that render; 0 = off)
    refine_step: float = 0.12  # first continuous step of the refinement, in normalised [0, 1] units


Allowed = list[list[int]]  # per categorical parameter: the option indices the search may use


def allowed_options(space, constraints: dict[str, tuple[str, ...]] | None) -> Allowed | None:
    """{parameter name: allowed option names} -> per-categorical allowed indices (None = no constraint)."""
    if not constraints:
        return None
    out = []
    for p in space.categorical:
        names = constraints.get(p.name)
        idx = [i for i, o in enumerate(p.options) if names is None or o in names]
        out.append(idx or list(range(len(p.options))))
    return out


def project(vecs: np.ndarray, cat_sizes: list[int], allowed: Allowed | None) -> np.ndarray:
    """(T, V) encoded vectors -> the same with every categorical block one-hot on its best allowed option."""
    if allowed is None:
        return vecs
    out = np.array(vecs, np.float32, copy=True)
    s = 0
    for k, idx in zip(cat_sizes, allowed):
        block = out[:, s : s + k]
        best = np.asarray(idx)[block[:, idx].argmax(1)]
        block[:] = 0.0
        block[np.arange(len(block)), best] = 1.0
        s += k
    return out


def _one_hot(cats: torch.Tensor, cat_sizes: list[int]) -> torch.Tensor:
    """(..., C) option indices -> (..., sum(cat_sizes)) one-hot."""
    if not cat_sizes:
        return cats.new_zeros((*cats.shape[:-1], 0), dtype=torch.float32)
    return torch.cat([F.one_hot(cats[..., j], k).float() for j, k in enumerate(cat_sizes)], dim=-1)


def _split(vec: torch.Tensor, cat_sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, V) encoded -> (T, C) option indices and (T, n_cont) continuous in [0, 1]."""
    cats, s = [], 0
    for k in cat_sizes:
        cats.append(vec[:, s : s + k].argmax(1))
        s += k
    cat = torch.stack(cats, 1) if cats else vec.new_zeros((len(vec), 0), dtype=torch.long)
    return cat, vec[:, s:]


def _scores(
    net: Imitator, cats: torch.Tensor, u: torch.Tensor, target: torch.Tensor, cat_sizes: list[int]
) -> torch.Tensor:
    """cats (T, K, C), u (T, K, n_cont) or (T, 1, n_cont), target (T, D) -> (T, K) cosine."""
    u = u.expand(cats.shape[0], cats.shape[1], u.shape[-1])
    vec = torch.cat([_one_hot(cats, cat_sizes), u], dim=-1)  # (T, K, V)
    return (net.embed(vec) * target[:, None, :]).sum(-1)


def _choices(cat_sizes: list[int], allowed: Allowed | None) -> list[list[int]]:
    return allowed if allowed is not None else [list(range(k)) for k in cat_sizes]


def _enumerate(cat_sizes: list[int], t: int, allowed: Allowed | None = None) -> torch.Tensor:
    combos = torch.tensor(list(itertools.product(*_choices(cat_sizes, allowed))), dtype=torch.long)  # (K, C)
    return combos.view(1, -1, len(cat_sizes)).expand(t, -1, -1).clone()


def _dedupe_mask(cats: torch.Tensor, salt: torch.Tensor) -> torch.Tensor:
    """(T, M, C) -> (T, M) True where the row repeats an earlier-sorted identical row."""
    codes = (cats * salt).sum(-1)  # (T, M) hash; wrapping int64 arithmetic
    sorted_codes, order = codes.sort(dim=1, stable=True)
    dup_sorted = torch.zeros_like(sorted_codes, dtype=torch.bool)
    dup_sorted[:, 1:] = sorted_codes[:, 1:] == sorted_codes[:, :-1]
    return torch.zeros_like(dup_sorted).scatter(1, order, dup_sorted)


def beam_categoricals(
    net: Imitator,
    start: torch.Tensor,
    u: torch.Tensor,
    target: torch.Tensor,
    cat_sizes: list[int],
    beam: int,
    sweeps: int,
    allowed: Allowed | None = None,
) -> torch.Tensor:
    """start (T, C), u (T, n_cont), target (T, D) -> (T, K<=beam, C) assignments, best first."""
    salt = torch.randint(1, 2**61, (len(cat_sizes),), generator=torch.Generator().manual_seed(7))
    cats = start[:, None, :]  # (T, 1, C)
    u3 = u[:, None, :]
    choices = _choices(cat_sizes, allowed)
    for _ in range(sweeps):
        for j in range(len(cat_sizes)):
            opts = torch.tensor(choices[j], dtype=torch.long)
            k = len(opts)
            t, b, c = cats.shape
            exp = cats[:, :, None, :].repeat(1, 1, k, 1)  # (T, B, k, C)
            exp[..., j] = opts
            exp = exp.reshape(t, b * k, c)
            s = _scores(net, exp, u3, target, cat_sizes).masked_fill(_dedupe_mask(exp, salt), -2.0)
            top = s.topk(min(beam, b * k), dim=1).indices  # (T, B')
            cats = exp.gather(1, top[..., None].expand(-1, -1, c))
    return cats


def optimise_continuous(
    net: Imitator,
    cats: torch.Tensor,
    u0: torch.Tensor,
    target: torch.Tensor,
    cat_sizes: list[int],
    cfg: SearchConfig,
    target_img: torch.Tensor | None = None,
) -> torch.Tensor:
    """Adam on the continuous part of every candidate. cats (T, K, C), u0 (T, K, n) -> u (T, K, n)."""
    if u0.shape[-1] == 0 or cfg.iters <= 0:
        return u0
    onehot = _one_hot(cats, cat_sizes)  # (T, K, sum(cat_sizes))
    z = torch.logit(u0.clamp(0.01, 0.99)).clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=cfg.lr)
    use_img = cfg.img_weight > 0 and target_img is not None
    for _ in range(cfg.iters):
        vec = torch.cat([onehot, torch.sigmoid(z)], dim=-1)  # (T, K, V)
        if use_img:
            emb, img = net(vec.flatten(0, 1))
            emb, img = emb.view(*vec.shape[:2], -1), img.view(*vec.shape[:2], *img.shape[1:])
            loss = (1 - (emb * target[:, None]).sum(-1)).sum() + cfg.img_weight * (
                img - target_img[:, None]
            ).abs().mean((2, 3, 4)).sum()
        else:
            loss = (1 - (net.embed(vec) * target[:, None]).sum(-1)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return torch.sigmoid(z).detach()


def _candidates(
    net: Imitator,
    cat_sizes: list[int],
    target: torch.Tensor,
    start_cat: torch.Tensor,
    start_u: torch.Tensor,
    cfg: SearchConfig,
    allowed: Allowed | None = None,
) -> torch.Tensor:
    """(T, K, C) categorical candidates: enumerated or beamed, pre-screened to the best `beam` at start_u."""
    t = len(target)
    if not cat_sizes:
        return start_cat[:, None, :]
    if int(np.prod([len(c) for c in _choices(cat_sizes, allowed)])) <= cfg.max_enumerate:
        cats = _enumerate(cat_sizes, t, allowed)
    else:
        cats = beam_categoricals(net, start_cat, start_u, target, cat_sizes, cfg.beam, cfg.sweeps, allowed)
    if cats.shape[1] > cfg.beam:
        s = _scores(net, cats, start_u[:, None, :], target, cat_sizes)
        top = s.topk(cfg.beam, dim=1).indices
        cats = cats.gather(1, top[..., None].expand(-1, -1, cats.shape[-1]))
    return torch.cat([start_cat[:, None, :], cats], dim=1)  # (T, K+1, C): the start point always competes


def search_candidates(
    net: Imitator,
    cat_sizes: list[int],
    targets: np.ndarray,
    init: np.ndarray,
    cfg: SearchConfig | None = None,
    top: int = 1,
    target_imgs: torch.Tensor | None = None,
    allowed: Allowed | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """targets (T, D) unit rows, init (T, V) start points -> the `top` best (T, top, V) encoded vectors, best first,
    and their imitator cosines (T, top). With `allowed`, the start is projected inside it and only allowed options
    are tried.

    `rounds` alternate categorical candidates (at the current continuous values) and Adam on the continuous; the
    last round's candidates are ranked, so callers that can render may re-rank the top few for real.
    """
    cfg = cfg or SearchConfig()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    target = torch.from_numpy(np.asarray(targets, np.float32))
    cat, u = _split(torch.from_numpy(project(np.asarray(init, np.float32), cat_sizes, allowed)), cat_sizes)
    ar = torch.arange(len(target))
    for r in range(max(1, cfg.rounds)):
        with torch.no_grad():
            cats = _candidates(net, cat_sizes, target, cat, u, cfg, allowed)
        iters = cfg.iters // max(1, cfg.rounds) + (cfg.iters % max(1, cfg.rounds) if r == 0 else 0)
        step_cfg = SearchConfig(**{**asdict(cfg), "iters": iters})
        uk = optimise_continuous(
            net, cats, u[:, None, :].expand(-1, cats.shape[1], -1), target, cat_sizes, step_cfg, target_imgs
        )
        with torch.no_grad():
            s = _scores(net, cats, uk, target, cat_sizes)  # (T, K+1)
            order = s.argsort(dim=1, descending=True)
            cat, u = cats[ar, order[:, 0]], uk[ar, order[:, 0]]
    k = min(top, cats.shape[1])
    idx = order[:, :k]  # (T, k)
    c = cats.gather(1, idx[..., None].expand(-1, -1, cats.shape[-1]))
    v = uk.gather(1, idx[..., None].expand(-1, -1, uk.shape[-1]))
    vec = torch.cat([_one_hot(c, cat_sizes), v], dim=-1)  # (T, k, V)
    return vec.numpy(), s.gather(1, idx).numpy()


def search(
    net: Imitator,
    cat_sizes: list[int],
    targets: np.ndarray,
    init: np.ndarray,
    cfg: SearchConfig | None = None,
    target_imgs: torch.Tensor | None = None,
    allowed: Allowed | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """targets (T, D) unit rows, init (T, V) encoded start points -> (best (T, V) encoded, imitator cosine (T,))."""
    vec, score = search_candidates(net, cat_sizes, targets, init, cfg, 1, target_imgs, allowed)
    return vec[:, 0], score[:, 0]
