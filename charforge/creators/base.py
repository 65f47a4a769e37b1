"""The Creator interface and the one registry of creators.

A creator is anything with a `ParamSpace` and a batch render function. The built-in anime-portrait
creator is one; a user's own Python creator plugs in through the `charforge.creators` entry point group
or a `module:function` path; a recorded creator (a folder of captured parameter/image pairs) is another.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np

from charforge.core.space import ParamBatch, ParamSpace
from charforge.core.tags import TagSchema
from charforge.errors import UserError


class Creator(ABC):
    name: str = "creator"
    space: ParamSpace
    schema: TagSchema | None = None  # tags the creator can derive from its parameters, if any
    can_render: bool = True  # False for recorded creators: they only look up their nearest recorded sample

    @abstractmethod
    def render(self, batch: ParamBatch, size: int) -> np.ndarray:
        """Render N parameter settings. Returns (N, size, size, 3) uint8 RGB."""

    def sample(self, n: int, rng: np.random.Generator) -> ParamBatch:
        """The distribution datasets are built from. Default: uniform over the space."""
        return self.space.sample(n, rng)

    def derive_tags(self, batch: ParamBatch) -> np.ndarray | None:
        """(N, T) 0/1 tags implied by the parameters, or None if the creator has no tag schema."""
        return None


def _builtin() -> Creator:
    from charforge.creators.builtin import BuiltinCreator

    return BuiltinCreator()


def _builtin_styles(spec: str = "") -> Creator:
    from charforge.creators.builtin import BuiltinCreator
    from charforge.creators.builtin.styles import STYLES

    chosen = [s for s in spec.split(",") if s.strip()] if spec else list(STYLES)
    return BuiltinCreator(styles=chosen)


_REGISTRY = {"builtin": _builtin, "builtin-styles": _builtin_styles}
STYLES_PREFIX = "builtin-styles="  # "builtin-styles=cel,pixel": the multi-style creator over some styles


def available_creators() -> list[str]:
    names = set(_REGISTRY)
    names.update(ep.name for ep in entry_points(group="charforge.creators"))
    return sorted(names)


def _load_function(spec: str) -> Creator:
    mod_name, _, fn_name = spec.partition(":")
    try:
        mod = importlib.import_module(mod_name)
        fn = getattr(mod, fn_name)
    except (ImportError, AttributeError) as e:
        raise UserError(
            f"creator {spec!r}: cannot import it ({e}). Use module.path:function_name, where the function returns a Creator"
        ) from e
    obj = fn()
    if not (hasattr(obj, "space") and hasattr(obj, "render")):
        raise UserError(
            f"creator {spec!r}: {fn_name}() must return an object with a `space` (ParamSpace) and a `render(batch, size)` method"
        )
    return obj


def get_creator(name: str) -> Creator:
    """'builtin', an entry-point name, 'module:function', or a recorded-creator folder."""
    if name in _REGISTRY:
        return _REGISTRY[name]()
    if name.startswith(STYLES_PREFIX):
        return _builtin_styles(name[len(STYLES_PREFIX) :])
    for ep in entry_points(group="charforge.creators"):
        if ep.name == name:
            return ep.load()()
    if ":" in name and not Path(name).exists():
        return _load_function(name)
    if Path(name).is_dir():
        from charforge.creators.recorded import RecordedCreator

        return RecordedCreator(Path(name))
    raise UserError(
        f"unknown creator {name!r}. Valid: {', '.join(available_creators())}, a module:function path, "
        "or a folder of recorded (parameters JSON, image) pairs"
    )
