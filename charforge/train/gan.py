"""Training recipes of the two GAN families: the networks trained beside the generator, and the loss.

A recipe is what `Family.recipe` names (charforge.models.families). The trainer asks it for
  modules(preset, n_tags)         {name: network}; `generator` names the one whose EMA becomes the model file
  loss(modules, schema, preset, **runtime)   an object with phases() and accumulate_gradients(phase, ...)
so the loop itself knows no family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from charforge.core.tags import TagSchema
from charforge.models.families import get_family
from charforge.train.losses import ACGANLoss, DCGANLoss, TagGANLoss
from charforge.train.presets import Preset, build_discriminator, build_generator

LOSS_FIELDS = (
    "conditional",
    "adv_weight",
    "gp_weight",
    "gp_every",
    "r1_weight",
    "cls_weight_g",
    "cls_loss",
    "augment",
    "teacher_weight",
)


@dataclass(frozen=True)
class GANRecipe:
    loss_class: type[TagGANLoss]
    generator: str = "G"

    def modules(self, p: Preset, n_tags: int) -> dict[str, nn.Module]:
        return {"G": build_generator(p, n_tags), "D": build_discriminator(p, n_tags)}

    def loss(self, modules: dict[str, nn.Module], schema: TagSchema, p: Preset, **runtime: Any) -> TagGANLoss:
        """`runtime`: autocast, memory_format, teacher (what the trainer decides at run time)."""
        return self.loss_class(
            modules["G"], modules["D"], schema, **{k: getattr(p, k) for k in LOSS_FIELDS}, **runtime
        )


ACGAN_RECIPE = GANRecipe(ACGANLoss)
DCGAN_RECIPE = GANRecipe(DCGANLoss)


def make_loss(G: nn.Module, D: nn.Module, schema: TagSchema, p: Preset, **runtime: Any) -> TagGANLoss:
    """The preset's family loss over an existing G and D (for tests, benches and notebooks)."""
    return get_family(p.family).load_recipe().loss({"G": G, "D": D}, schema, p, **runtime)
