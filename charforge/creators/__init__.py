"""Creators: parametric renderers (parameters -> image). See `base.Creator` and `get_creator`."""

from charforge.core.space import Categorical, Continuous, ParamBatch, ParamSpace
from charforge.creators.base import Creator, available_creators, get_creator

__all__ = [
    "Categorical",
    "Continuous",
    "Creator",
    "ParamBatch",
    "ParamSpace",
    "available_creators",
    "get_creator",
]
