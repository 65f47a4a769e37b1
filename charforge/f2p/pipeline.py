"""`charforge f2p train`: sample -> render -> (train learned embedder) -> embed -> imitator -> translator (GT)
-> search targets -> translator fine-tune -> f2p.safetensors.

Every stage writes its output atomically into the output folder and is skipped when it is already there, so
a killed run resumes where it stopped. `f2p.json` records the resolved options, stage timings and metrics.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from charforge.creators.base import Creator, get_creator
from charforge.errors import UserError
from charforge.f2p import learned
from charforge.f2p.embedders import IdentityEmbedder, LearnedEmbedder, get_embedder
from charforge.f2p.imitator import (
    ImitatorConfig,
    ImitatorTrainConfig,
    imitator_metrics,
    low_res,
    train_imitator,
)
from charforge.f2p.model import BUNDLE_NAME, F2P, save_f2p
from charforge.f2p.search import SearchConfig, search
from charforge.f2p.translator import Translator, TranslatorConfig, TranslatorTrainConfig, train_translator
from charforge.models.io import load_model, save_model
from charforge.utils.io import save_npy_atomic, write_json_atomic
from charforge.utils.progress import progress

CHUNK = 500  # renders per cached chunk file (a kill loses at most one chunk)


@dataclass
class TrainConfig:
    creator: str = "builtin"  # creator spec: builtin, entry point, module:function, or recorded folder
    embedder: str = "learned"  # embedder: learned, identity or generic (embedders.available_embedders)
    n: int = 20000  # sampled settings (a recorded creator uses all its pairs instead)
    size: int = 64  # render side, px
    seed: int = 0  # seed for sampling, the recorded-capture split and training
    holdout: float = 0.05  # fraction of samples kept out of training (metrics; f2p eval's held-out captures)
    workers: int = 2  # render threads
    emb_dim: int = 128  # learned embedding size
    emb_width: int = 16  # learned encoder base channels
    hidden: int = 512  # imitator and translator MLP width
    embedder_steps: int = 3000  # learned embedder optimiser steps
    imitator_steps: int = 4000  # imitator optimiser steps
    translator_steps: int = 3000  # translator optimiser steps on ground-truth parameters
    finetune_steps: int = 1000  # translator optimiser steps on GT + search-optimised targets
    n_search: int = 1000  # training targets given to search for the fine-tune set
    search: dict[str, Any] = field(default_factory=dict)  # SearchConfig overrides
    gray_p: float = 0.0  # grayscale augmentation probability for the learned embedder (drawings)


class Run:
    """Paths and bookkeeping of one training folder."""

    def __init__(self, out: Path, cfg: TrainConfig):
        self.out, self.cfg = Path(out), cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self.state_path = self.out / "f2p.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        old = self.state.get("config")
        if old is not None and old != asdict(cfg):
            diff = sorted(k for k in set(old) | set(asdict(cfg)) if old.get(k) != asdict(cfg).get(k))
            raise UserError(
                f"{self.out}: holds a run with different options ({', '.join(diff)}); "
                "rerun with the same options to resume, or use a new -o folder"
            )
        self.state.update(config=asdict(cfg))
        self.state.setdefault("stages", {})

    def done(self, stage: str) -> bool:
        return stage in self.state["stages"]

    def finish(self, stage: str, t0: float, **metrics) -> None:
        self.state["stages"][stage] = {"seconds": round(time.perf_counter() - t0, 2), **metrics}
        write_json_atomic(self.state_path, self.state)


def sample_settings(creator: Creator, n: int, seed: int):
    return creator.sample(n, np.random.default_rng(seed))


def render_cached(run: Run, creator: Creator, batch) -> np.ndarray:
    """Render `batch` in chunks with threads; each chunk is cached atomically under data/."""
    size, data = run.cfg.size, run.out / "data"
    starts = list(range(0, len(batch), CHUNK))

    def one(s: int) -> Path:
        path = data / f"chunk_{s // CHUNK:05d}.npy"
        if not path.is_file():
            save_npy_atomic(path, creator.render(batch[s : s + CHUNK], size))
        return path

    with (
        progress(len(batch), desc="render", unit="img") as bar,
        ThreadPoolExecutor(max(1, run.cfg.workers)) as pool,
    ):
        paths = []
        for s, p in zip(starts, pool.map(one, starts)):
            paths.append(p)
            bar.update(min(CHUNK, len(batch) - s))
    return np.concatenate([np.load(p) for p in paths])


def recorded_order(n: int, seed: int) -> np.ndarray:
    """The order a recorded creator's captures are used in: shuffled with the run's seed, so the held-out tail is
    a random subset of the captures rather than the last ones recorded."""
    return np.random.default_rng(seed + 7919).permutation(n)


def capture_name(creator, i: int) -> str:
    """A capture's image path relative to its recorded folder (how the split is recorded in the model)."""
    p = Path(creator.image_paths[int(i)])
    try:
        return p.resolve().relative_to(Path(creator.path).resolve()).as_posix()
    except ValueError:
        return p.name


def load_data(run: Run, creator: Creator) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, S, S, 3) uint8, encoded vectors (N, V)). A recorded creator's captures come in recorded_order,
    and the names of those held out of training are stored (f2p eval uses them)."""
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if not getattr(creator, "can_render", True):
        old_run = run.done("data") and "heldout_captures" not in run.state["stages"]["data"]
        order = (
            np.arange(len(creator)) if old_run else recorded_order(len(creator), run.cfg.seed)
        )  # resume as cached
        batch = creator.batch[order]
        images = creator.images(run.cfg.size, order)
        n_train = n_train_of(len(order), run.cfg.holdout)
        extra = {
            "n_train": n_train,
            "heldout_captures": sorted(capture_name(creator, i) for i in order[n_train:]),
        }
    else:
        batch = sample_settings(creator, run.cfg.n, run.cfg.seed)
        images = render_cached(run, creator, batch)
    if not run.done("data"):
        run.finish("data", t0, n=len(batch), **extra)
    return images, creator.space.encode(batch)


def n_train_of(n: int, holdout: float) -> int:
    return max(1, int(round(n * (1 - holdout))))


def stage_embedder(run: Run, creator: Creator, images: np.ndarray, vecs: np.ndarray, n_train: int):
    path = run.out / "embedder.safetensors"
    cfg = run.cfg
    if cfg.embedder != "learned":
        return IdentityEmbedder(detect=False) if cfg.embedder == "identity" else get_embedder(cfg.embedder)
    if path.is_file():
        tensors, meta = load_model(path, kind="f2p-embedder")
        return LearnedEmbedder.from_tensors(meta["charforge_config"], tensors)
    t0 = time.perf_counter()
    enc_cfg = learned.EncoderConfig(
        in_size=cfg.size,
        width=cfg.emb_width,
        dim=cfg.emb_dim,
        out_dim=vecs.shape[1],
        stages=min(4, int(np.log2(cfg.size // 4))),
    )
    tcfg = learned.EncoderTrainConfig(steps=cfg.embedder_steps, seed=cfg.seed)
    net = learned.train_encoder(
        images[:n_train],
        vecs[:n_train],
        creator.space.cat_slices(),
        creator.space.n_cont,
        enc_cfg,
        tcfg,
        learned.AugmentConfig(gray_p=cfg.gray_p),
    )
    emb = LearnedEmbedder(net)
    save_model(path, net.state_dict(), kind="f2p-embedder", config=emb.config())
    run.finish("embedder", t0)
    return emb


def stage_embed(run: Run, embedder, images: np.ndarray) -> np.ndarray:
    path = run.out / "embeddings.npy"
    if path.is_file():
        return np.load(path)
    t0 = time.perf_counter()
    out, step = [], 256
    with progress(len(images), desc="embed", unit="img") as bar:
        for i in range(0, len(images), step):
            out.append(embedder.embed(images[i : i + step]))
            bar.update(len(out[-1]))
    embs = np.concatenate(out).astype(np.float32)
    save_npy_atomic(path, embs)
    run.finish("embed", t0, dim=int(embs.shape[1]))
    return embs


def _load_net(path: Path, kind: str, cls, cfg_cls):
    tensors, meta = load_model(path, kind=kind)
    net = cls(cfg_cls(**meta["charforge_config"]))
    net.load_state_dict(tensors)
    return net.eval()


def stage_imitator(run: Run, vecs: np.ndarray, embs: np.ndarray, images: np.ndarray, n_train: int):
    from charforge.f2p.imitator import Imitator

    path = run.out / "imitator.safetensors"
    if path.is_file():
        return _load_net(path, "f2p-imitator", Imitator, ImitatorConfig)
    t0 = time.perf_counter()
    cfg = ImitatorConfig(
        in_dim=vecs.shape[1], emb_dim=embs.shape[1], hidden=run.cfg.hidden, img_size=min(32, run.cfg.size)
    )
    lows = low_res(images[:n_train], cfg.img_size)  # (N, 3, s, s) uint8
    net = train_imitator(
        vecs[:n_train],
        embs[:n_train],
        lows,
        cfg,
        ImitatorTrainConfig(steps=run.cfg.imitator_steps, seed=run.cfg.seed),
    )
    held = imitator_metrics(net, vecs[n_train:], embs[n_train:]) if n_train < len(vecs) else {}
    save_model(path, net.state_dict(), kind="f2p-imitator", config=asdict(cfg))
    run.finish("imitator", t0, heldout=held)
    return net


def stage_translator(run: Run, embs: np.ndarray, vecs: np.ndarray, n_train: int, space) -> Translator:
    path = run.out / "translator_gt.safetensors"
    if path.is_file():
        return _load_net(path, "f2p-translator", Translator, TranslatorConfig)
    t0 = time.perf_counter()
    cfg = TranslatorConfig(
        emb_dim=embs.shape[1], cat_sizes=space.cat_sizes, n_cont=space.n_cont, hidden=run.cfg.hidden
    )
    net = train_translator(
        embs[:n_train],
        vecs[:n_train],
        cfg,
        TranslatorTrainConfig(steps=run.cfg.translator_steps, seed=run.cfg.seed),
    )
    save_model(path, net.state_dict(), kind="f2p-translator", config=asdict(cfg))
    run.finish("translator_gt", t0, heldout=param_metrics(net, embs[n_train:], vecs[n_train:], space))
    return net


@torch.no_grad()
def param_metrics(net: Translator, embs: np.ndarray, vecs: np.ndarray, space) -> dict[str, float]:
    """Categorical accuracy (mean over parameters) and normalised continuous MAE of translator predictions."""
    if len(embs) == 0:
        return {}
    pred = net.predict(torch.from_numpy(np.asarray(embs, np.float32))).numpy()
    acc = [float((pred[:, sl].argmax(1) == vecs[:, sl].argmax(1)).mean()) for sl in space.cat_slices()]
    mae = float(np.abs(pred[:, -space.n_cont :] - vecs[:, -space.n_cont :]).mean()) if space.n_cont else 0.0
    return {"cat_accuracy": float(np.mean(acc)) if acc else 1.0, "cont_mae": mae}


def stage_search(
    run: Run, imitator, translator: Translator, embs: np.ndarray, space, n_train: int
) -> np.ndarray:
    """Search-optimised parameter vectors for the first n_search training targets (cached)."""
    path = run.out / "search_targets.npy"
    n = min(run.cfg.n_search, n_train)
    if path.is_file():
        return np.load(path)
    t0 = time.perf_counter()
    cfg = SearchConfig(**run.cfg.search)
    out, step, scores = [], 64, []
    with progress(n, desc="search targets", unit="target") as bar:
        for i in range(0, n, step):
            init = translator.predict(torch.from_numpy(embs[i : min(i + step, n)])).numpy()
            vec, s = search(imitator, space.cat_sizes, embs[i : min(i + step, n)], init, cfg)
            out.append(vec)
            scores.append(s)
            bar.update(len(vec))
    vecs = np.concatenate(out) if out else np.zeros((0, space.vector_dim), np.float32)
    save_npy_atomic(path, vecs)
    run.finish("search", t0, n=n, imitator_cosine=float(np.concatenate(scores).mean()) if scores else None)
    return vecs


def stage_finetune(
    run: Run,
    translator: Translator,
    embs: np.ndarray,
    vecs: np.ndarray,
    searched: np.ndarray,
    n_train: int,
    space,
) -> Translator:
    path = run.out / "translator.safetensors"
    if path.is_file():
        return _load_net(path, "f2p-translator", Translator, TranslatorConfig)
    t0 = time.perf_counter()
    if len(searched) and run.cfg.finetune_steps > 0:
        e = np.concatenate([embs[:n_train], embs[: len(searched)]])
        v = np.concatenate([vecs[:n_train], searched])
        tcfg = TranslatorTrainConfig(steps=run.cfg.finetune_steps, lr=5e-4, seed=run.cfg.seed + 1)
        translator = train_translator(
            e, v, translator.cfg, tcfg, init=translator, desc="fine-tune translator"
        )
    save_model(path, translator.state_dict(), kind="f2p-translator", config=asdict(translator.cfg))
    run.finish("translator", t0, heldout=param_metrics(translator, embs[n_train:], vecs[n_train:], space))
    return translator


def train_f2p(out: str | Path, cfg: TrainConfig, creator: Creator | None = None) -> F2P:
    """Run (or resume) every stage; returns the saved bundle (also written to out/f2p.safetensors)."""
    torch.manual_seed(cfg.seed)
    creator = creator if creator is not None else get_creator(cfg.creator)
    run = Run(Path(out), cfg)
    images, vecs = load_data(run, creator)
    if len(images) < 20:
        raise UserError(
            f"creator {cfg.creator!r}: only {len(images)} samples; face-to-parameter needs at least 20"
        )
    n_train = n_train_of(len(images), cfg.holdout)
    embedder = stage_embedder(run, creator, images, vecs, n_train)
    embs = stage_embed(
        run, IdentityEmbedder(detect=False) if cfg.embedder == "identity" else embedder, images
    )
    imitator = stage_imitator(run, vecs, embs, images, n_train)
    translator = stage_translator(run, embs, vecs, n_train, creator.space)
    searched = stage_search(run, imitator, translator, embs, creator.space, n_train)
    translator = stage_finetune(run, translator, embs, vecs, searched, n_train, creator.space)
    spec = str(Path(cfg.creator).resolve()) if Path(cfg.creator).is_dir() else cfg.creator
    if cfg.embedder == "identity":
        embedder = get_embedder("identity")
    metrics = {k: v for k, v in run.state["stages"].items() if isinstance(v, dict)}
    f2p = F2P(
        spec, creator.space, embedder, imitator, translator, cfg.size, SearchConfig(**cfg.search), metrics
    )
    f2p.creator = creator
    save_f2p(f2p, run.out / BUNDLE_NAME)
    f2p.path = run.out / BUNDLE_NAME
    return f2p
