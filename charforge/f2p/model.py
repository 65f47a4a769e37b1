"""The F2P bundle: creator spec + parameter space + embedder + imitator + translator, in one .safetensors.

Tensors are prefixed `embedder.`, `imitator.`, `translator.`; the metadata config rebuilds every network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from charforge.core.space import ParamSpace
from charforge.errors import UserError
from charforge.f2p.embedders import Embedder, LearnedEmbedder, get_embedder
from charforge.f2p.imitator import Imitator, ImitatorConfig
from charforge.f2p.learned import Encoder, EncoderConfig
from charforge.f2p.search import SearchConfig
from charforge.f2p.translator import Translator, TranslatorConfig
from charforge.models.io import file_sha256, load_model, save_model

KIND = "f2p"
BUNDLE_NAME = "f2p.safetensors"


@dataclass
class F2P:
    creator_spec: str  # "builtin", "module:function", an entry-point name, or a recorded folder path
    space: ParamSpace
    embedder: Embedder
    imitator: Imitator
    translator: Translator
    render_size: int = 64  # px the creator renders at for embedding and previews
    search: SearchConfig = field(default_factory=SearchConfig)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    sha256: str = ""
    _creator: Any = None
    trusted: bool = (
        True  # False when creator_spec came from a file: a module:function spec then is not imported
    )

    @property
    def creator(self):
        """The creator, loaded on first use (None when a recorded folder is gone: previews fall back to the imitator)."""
        if self._creator is None:
            from charforge.creators.base import get_creator

            if not self.trusted and runs_code(self.creator_spec):
                if "/" in self.creator_spec or "\\" in self.creator_spec:
                    return None  # a recorded folder (with a drive letter) that is gone
                raise UserError(
                    f"{self.path}: its creator is {self.creator_spec!r}, a module:function path, and a model "
                    f"file is not allowed to run code. If you trust it, pass --creator {self.creator_spec} "
                    "explicitly (load_f2p(..., creator=...))"
                )
            try:
                creator = get_creator(self.creator_spec)
            except UserError:
                if self.creator_spec in ("builtin",) or runs_code(self.creator_spec):
                    raise
                return None
            if list(creator.space.names) != list(self.space.names):
                raise UserError(
                    f"{self.path}: creator {self.creator_spec!r} has parameters {list(creator.space.names)}, "
                    f"but this model was trained for {list(self.space.names)}; pass the creator it was trained with"
                )
            self._creator = creator
        return self._creator

    @creator.setter
    def creator(self, value) -> None:
        self._creator = value


def runs_code(spec: str) -> bool:
    """True when get_creator(spec) could import a module and call a function: anything with a ':' that is not
    builtin, an installed entry point, or an existing recorded folder."""
    from charforge.creators.base import available_creators

    return ":" in spec and spec not in available_creators() and not Path(spec).is_dir()


def save_f2p(f2p: F2P, path: str | Path) -> Path:
    tensors: dict[str, torch.Tensor] = {}
    for prefix, net in (("imitator", f2p.imitator), ("translator", f2p.translator)):
        tensors.update({f"{prefix}.{k}": v for k, v in net.state_dict().items()})
    if isinstance(f2p.embedder, LearnedEmbedder):
        tensors.update({f"embedder.{k}": v for k, v in f2p.embedder.encoder.state_dict().items()})
    config = {
        "creator": f2p.creator_spec,
        "render_size": f2p.render_size,
        "embedder": f2p.embedder.config(),
        "imitator": asdict(f2p.imitator.cfg),
        "translator": asdict(f2p.translator.cfg),
        "search": asdict(f2p.search),
    }
    return save_model(
        path,
        tensors,
        kind=KIND,
        config=config,
        extra={"param_space": f2p.space.to_dict(), "metrics": f2p.metrics},
    )


def _sub(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def default_f2p_path() -> Path:
    return Path(__file__).resolve().parent.parent / "weights" / "f2p_builtin.safetensors"


SHIPPED_F2P = {  # names --f2p accepts for the shipped models
    "builtin": "f2p_builtin.safetensors",  # the built-in creator (cel style), the default
    "styles": "f2p_styles.safetensors",  # the multi-style creator: fits the style too
}


def resolve_f2p_path(path: str | Path | None) -> Path:
    if path is None:
        p = default_f2p_path()
        if not p.is_file():
            raise UserError(
                f"no shipped face-to-parameter model at {p}; pass --f2p DIR from `charforge f2p train`"
            )
        return p
    p = Path(path)
    shipped = SHIPPED_F2P.get(str(path))
    if shipped is not None and not p.exists():
        q = default_f2p_path().with_name(shipped)
        if not q.is_file():
            raise UserError(f"the shipped face-to-parameter model {path!r} is not in this install ({q})")
        return q
    if p.is_dir():
        if not (p / BUNDLE_NAME).is_file():
            raise UserError(
                f"{p}: no {BUNDLE_NAME} in it; finish `charforge f2p train -o {p}` first (rerun it to resume)"
            )
        return p / BUNDLE_NAME
    if not p.is_file():
        raise UserError(
            f"{p}: no such face-to-parameter model (give the folder `charforge f2p train` wrote, its "
            f"{BUNDLE_NAME}, or a shipped name: {', '.join(SHIPPED_F2P)})"
        )
    return p


def load_f2p(path: str | Path | None = None, *, detect: bool = True, creator: str | None = None) -> F2P:
    """Load a trained bundle: None = the shipped default, a training folder, or the .safetensors itself.

    The creator named in the file is used only when it is builtin, an installed entry point or a recorded folder;
    `creator` (the user's explicit --creator) overrides it and may be a module:function path.
    """
    p = resolve_f2p_path(path)
    tensors, meta = load_model(p, kind=KIND)
    try:
        _check_sizes(p, meta["charforge_config"])
        f2p = _build(p, tensors, meta, detect)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, MemoryError) as e:
        raise UserError(
            f"{p}: not an f2p model this version can load ({type(e).__name__}: {e}); retrain it "
            "with `charforge f2p train`"
        ) from e
    if creator is not None:
        f2p.creator_spec, f2p.trusted = creator, True
    return f2p


MAX_F2P_PARAMS = 50_000_000  # parameters an f2p file may ask for (the shipped one has about 1.5 M)


def _check_sizes(p: Path, cfg: dict[str, Any]) -> None:
    """Build the networks the file describes on the meta device (no memory) and refuse absurd sizes, so an
    untrusted file cannot make loading allocate gigabytes (an embedder size of 1,000,000 did)."""
    nets = []
    with torch.device("meta"):
        emb_cfg = dict(cfg["embedder"])
        if emb_cfg.get("name") == "learned":
            nets.append(Encoder(EncoderConfig(**emb_cfg["encoder"])))
        nets.append(Imitator(ImitatorConfig(**cfg["imitator"])))
        nets.append(Translator(TranslatorConfig(**cfg["translator"])))
    n = sum(t.numel() for net in nets for t in net.parameters())
    if n > MAX_F2P_PARAMS:
        raise UserError(
            f"{p}: its config asks for networks of {n:,} parameters (limit {MAX_F2P_PARAMS:,}); not a "
            "face-to-parameter model charforge wrote. Retrain it with `charforge f2p train`"
        )


def _build(p: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], detect: bool) -> F2P:
    cfg = meta["charforge_config"]
    space = ParamSpace.from_dict(meta["param_space"], source=str(p))
    emb_cfg = dict(cfg["embedder"])
    if emb_cfg["name"] == "learned":
        embedder: Embedder = LearnedEmbedder.from_tensors(emb_cfg, _sub(tensors, "embedder"))
    elif emb_cfg["name"] == "identity":
        embedder = get_embedder("identity", detect=detect)
    else:
        embedder = get_embedder(emb_cfg["name"], **{k: v for k, v in emb_cfg.items() if k != "name"})
    imitator = Imitator(ImitatorConfig(**cfg["imitator"]))
    imitator.load_state_dict(_sub(tensors, "imitator"))
    translator = Translator(TranslatorConfig(**cfg["translator"]))
    translator.load_state_dict(_sub(tensors, "translator"))
    if not isinstance(cfg["creator"], str):
        raise TypeError(f"creator must be a string, got {type(cfg['creator']).__name__}")
    return F2P(
        cfg["creator"],
        space,
        embedder,
        imitator.eval(),
        translator.eval(),
        cfg.get("render_size", 64),
        SearchConfig(**cfg.get("search", {})),
        meta.get("metrics", {}),
        p,
        file_sha256(p),
        trusted=False,
    )
