"""GAN losses as objects with one method per phase (phases "D", "Dreg", "G"), so the loop stays generic.

ACGAN (make.girls.moe, §4.3):
  L(D) = Lcls(D) + lambda_adv * Ladv(D) + lambda_gp * Lgp(D)
  L(G) = lambda_adv * Ladv(G) + Lcls(G)        (Lcls(G) scaled by the preset's cls_weight_g, default 1)
Ladv is the non-saturating logistic loss on D's real/fake logit. Lcls is, by default ("group-ce"), a softmax
cross-entropy per exclusive group (hair colour, eye colour) plus a binary cross-entropy per independent tag,
summed over groups/tags and averaged over the batch; groups a real image leaves unlabelled (all zeros) are
masked out. "bce" is the paper's plain multi-label BCE over all tags (unlabelled groups masked the same way).
Softmax per group is the better fit: the groups are exclusive by construction, so the classifier cannot
spread probability over two hair colours, and G gets a sharper signal for the one colour it was asked for.
Lgp is DRAGAN: ||grad_x D(x_hat)|| pushed to 1 at x_hat = x + a * 0.5 * std(x) * U[0,1] noise, a ~ U[0,1].
With r1_weight = gamma, D's objective also gains R1 (Mescheder et al. 2018): gamma/2 * ||grad_x D(x)||^2 at the
real images only, which keeps D smooth where the data is without asking it to be flat in a wide noise ball
around it (DRAGAN's), so D may stay sensitive to small differences such as a blurred outline.
With a `teacher` (a frozen, separately trained tagger) G's objective gains teacher_weight * Lcls(teacher(G(z, c)), c):
a tag signal that, unlike D's head, does not move with G, so G cannot settle on cues only D's head accepts.
With `d_projection` D's real/fake logit also gets a projection term <embed(c), features(x)> (Miyato & Koyama
2018), fed the real tags for real images and G's tags for fakes, so D judges "a real picture of these tags".
DCGAN uses the same class with lambda_adv = 1 and no penalty; its tag head (when conditional) is trained the
same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from charforge.core.tags import TagSchema
from charforge.models.augment import augment, parse_augment


def classification_loss(
    logits: torch.Tensor, target: torch.Tensor, schema: TagSchema, mode: str
) -> torch.Tensor:
    """logits, target: (B, T). Sum over groups/tags, mean over batch; unlabelled groups are masked."""
    logits, target = logits.float(), target.float()
    b = logits.shape[0]
    total = logits.new_zeros(())
    for sl in schema.group_slices():
        t = target[:, sl]
        labelled = t.sum(dim=1) > 0  # (B,)
        if not labelled.any():
            continue
        if mode == "group-ce":
            ce = F.cross_entropy(logits[:, sl][labelled], t[labelled].argmax(dim=1), reduction="sum")
        else:
            ce = F.binary_cross_entropy_with_logits(logits[:, sl][labelled], t[labelled], reduction="sum")
        total = total + ce / b
    isl = schema.independent_slice
    if isl.stop > isl.start:
        total = (
            total + F.binary_cross_entropy_with_logits(logits[:, isl], target[:, isl], reduction="sum") / b
        )
    return total


@dataclass(frozen=True)
class Phase:
    """One step of a training iteration, as the loss declares it (after StyleGAN2-ADA's phases).

    `module` is the trainable network whose optimiser steps after the phase group; consecutive phases on the
    same module accumulate gradients into one optimiser step. `interval` runs the phase every N iterations
    (lazy regularisation). The trainer draws fresh latents at the start of each module's group and freezes the
    other modules while it runs.
    """

    name: str
    module: str
    interval: int = 1


def group_phases(phases: list[Phase]) -> list[tuple[str, list[Phase]]]:
    """Consecutive phases on one module -> (module, [phases]) groups, each ending in one optimiser step."""
    groups: list[tuple[str, list[Phase]]] = []
    for ph in phases:
        if groups and groups[-1][0] == ph.module:
            groups[-1][1].append(ph)
        else:
            groups.append((ph.module, [ph]))
    return groups


class TagGANLoss:
    """Shared ACGAN/DCGAN loss. `autocast` is a zero-argument context factory supplied by the trainer.

    Every weight is an explicit keyword (the training recipe maps a preset onto them), so the loss depends
    on nothing else of the preset.
    """

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        schema: TagSchema,
        *,
        conditional: bool = True,
        adv_weight: float = 0.0,
        gp_weight: float = 0.5,
        gp_every: int = 1,
        r1_weight: float = 0.0,
        cls_weight_g: float = 1.0,
        cls_loss: str = "group-ce",
        augment: str = "",
        teacher_weight: float = 1.0,
        autocast: Callable | None = None,
        memory_format=torch.contiguous_format,
        teacher: nn.Module | None = None,
    ):
        self.G, self.D, self.schema = G, D, schema
        self.teacher = teacher  # frozen tag classifier (TaggerNet) or None
        self.adv_weight = adv_weight or float(len(schema))  # lambda_adv = number of tags by default
        self.gp_weight, self.gp_every = float(gp_weight), int(gp_every)
        self.r1_weight = float(r1_weight)
        self.cls_weight_g, self.cls_loss, self.teacher_weight = (
            float(cls_weight_g),
            cls_loss,
            float(teacher_weight),
        )
        self.cls_on = conditional and len(schema) > 0
        self.aug_kinds = parse_augment(augment)
        self.autocast = autocast or contextlib.nullcontext
        self.memory_format = memory_format
        self.projection = getattr(D, "proj", None) is not None
        self.aug_p: float | None = None  # adaptive augmentation probability, set by the trainer (train.ada)
        # set by the trainer for steps whose G phase reuses D's fakes (preset reuse_fake): D's phase then runs G
        # with its graph and keeps (z, fake) for G's phase
        self.reuse_fake = False
        self._kept: tuple[torch.Tensor, torch.Tensor] | None = None

    def phases(self) -> list[Phase]:
        """D (+ the lazy DRAGAN and/or R1 penalty every gp_every iterations, same optimiser step), then G."""
        out = [Phase("D", "D")]
        if self.gp_weight > 0 or self.r1_weight > 0:
            out.append(Phase("Dreg", "D", self.gp_every))
        return out + [Phase("G", "G")]

    def _d(
        self, x: torch.Tensor, g: torch.Generator, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D on (augmented) x; c is the tag vector x is shown with (real tags for real images, G's for fakes)."""
        if self.aug_kinds:
            x = augment(x, self.aug_kinds, g, self.aug_p)
        x = x.contiguous(memory_format=self.memory_format)
        adv, cls = self.D(x, c) if self.projection else self.D(x)
        return adv.float(), (cls.float() if cls is not None else None)

    def _cls(self, logits: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
        if not self.cls_on or logits is None:
            return torch.zeros((), device=target.device)
        return classification_loss(logits, target, self.schema, self.cls_loss)

    def accumulate_gradients(
        self,
        phase: str,
        real: torch.Tensor,
        real_tags: torch.Tensor,
        z: torch.Tensor,
        c: torch.Tensor,
        g: torch.Generator,
        gain: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        """Run one phase's forward and backward, accumulating into .grad. Returns detached loss terms."""
        if phase == "G":
            return self._phase_g(z, c, g, gain)
        if phase == "D":
            return self._phase_d(real, real_tags, z, c, g, gain)
        if phase == "Dreg":
            return self._phase_dreg(real, real_tags, g, gain)
        raise ValueError(f"unknown phase {phase!r}")

    def _phase_g(self, z, c, g, gain) -> dict[str, torch.Tensor]:
        kept, self._kept = self._kept, None
        with self.autocast():
            fake = kept[1] if kept is not None and kept[0] is z else self.G(z, c)  # (B, 3, S, S)
            adv, cls = self._d(fake, g, c)
        l_adv = F.softplus(-adv).mean()  # -log D(G(z, c))
        l_cls = self._cls(cls, c)
        loss = self.adv_weight * l_adv + self.cls_weight_g * l_cls
        out = {"G_adv": l_adv.detach(), "G_cls": l_cls.detach()}
        if self.teacher is not None:
            size = self.teacher.cfg.image_size
            x = (
                fake
                if fake.shape[-1] == size
                else F.interpolate(
                    fake.float(),
                    size=(size, size),
                    mode="bilinear",
                    antialias=fake.shape[-1] > size,
                    align_corners=False,
                )
            )
            with self.autocast():
                t_logits = self.teacher(x.contiguous(memory_format=self.memory_format))
            l_teacher = classification_loss(t_logits, c, self.schema, "group-ce")
            loss = loss + self.teacher_weight * l_teacher
            out["G_teacher"] = l_teacher.detach()
        (loss * gain).backward()
        return {"loss_G": loss.detach(), **out}

    def _phase_d(self, real, real_tags, z, c, g, gain) -> dict[str, torch.Tensor]:
        self._kept = None
        if self.reuse_fake:  # G with its graph (G is frozen in D's phase: thaw it for this forward only)
            self.G.requires_grad_(True)
            with self.autocast():
                kept = self.G(z, c)
            self.G.requires_grad_(False)
            self._kept, fake = (z, kept), kept.detach()
        else:
            with torch.no_grad(), self.autocast():
                fake = self.G(z, c)
        with self.autocast():
            if getattr(
                self.D, "per_sample", False
            ):  # one pass over [fake; real]: same result, better CPU use
                b = fake.shape[0]
                adv, cls = self._d(
                    torch.cat([fake, real.to(fake.dtype)]), g, torch.cat([c, real_tags.to(c.dtype)])
                )
                adv_f, adv_r, cls_r = adv[:b], adv[b:], (cls[b:] if cls is not None else None)
            else:  # batch norm: real and fake keep separate batch statistics
                adv_f, _ = self._d(fake.detach(), g, c)
                adv_r, cls_r = self._d(real, g, real_tags)
        l_adv = F.softplus(adv_f).mean() + F.softplus(-adv_r).mean()
        l_cls = self._cls(cls_r, real_tags)
        loss = self.adv_weight * l_adv + l_cls
        (loss * gain).backward()
        out = {
            "loss_D": loss.detach(),
            "D_adv": l_adv.detach(),
            "D_cls": l_cls.detach(),
            "D_real": adv_r.detach().mean(),
            "D_fake": adv_f.detach().mean(),
        }
        if self.aug_p is not None:  # the overfitting signal r_t of adaptive augmentation
            out["D_sign"] = torch.sign(adv_r.detach()).mean()
        return out

    def _phase_dreg(self, real, real_tags, g, gain) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self.r1_weight > 0:
            out |= self._r1(real, real_tags, g, gain)
        if self.gp_weight <= 0:
            return out
        b = real.shape[0]
        noise = 0.5 * real.std() * torch.rand(real.shape, generator=g).to(real.device)
        alpha = torch.rand(b, 1, 1, 1, generator=g).to(real.device)
        x_hat = (real + alpha * noise).detach().requires_grad_(True)  # (B, 3, S, S)
        with self.autocast():
            adv, _ = self._d(x_hat, g, real_tags)
        (grad,) = torch.autograd.grad(adv.sum(), x_hat, create_graph=True)
        gp = ((grad.float().flatten(1).norm(dim=1) - 1) ** 2).mean()
        self._backward_to_d(gp * self.gp_weight * self.gp_every * gain)
        return out | {"D_gp": gp.detach()}

    def _r1(self, real, real_tags, g, gain) -> dict[str, torch.Tensor]:
        """R1: gamma/2 * E ||grad_x D(x)||^2 at real x (through the same augmentation D sees)."""
        x = real.detach().requires_grad_(True)
        with self.autocast():
            adv, _ = self._d(x, g, real_tags)
        (grad,) = torch.autograd.grad(adv.sum(), x, create_graph=True)
        r1 = grad.float().flatten(1).pow(2).sum(dim=1).mean()
        self._backward_to_d(r1 * (0.5 * self.r1_weight * self.gp_every * gain))
        return {"D_r1": r1.detach()}

    def _backward_to_d(self, loss: torch.Tensor) -> None:
        """Backward of a penalty into D's trainable weights only. A plain .backward() would also fill the
        gradient of the penalty's input image (a leaf that requires grad), work whose result nothing reads
        (D's first conv's input gradient). D's weights get the same gradients either way."""
        params = [q for q in self.D.parameters() if q.requires_grad]
        if params:
            torch.autograd.backward(loss, inputs=params)


class ACGANLoss(TagGANLoss):
    """make.girls.moe: lambda_adv = number of tags (unless the preset sets it), DRAGAN penalty on."""


class DCGANLoss(TagGANLoss):
    """DCGAN baseline: plain logistic GAN loss (lambda_adv = preset value, default 1), no gradient penalty."""

    def phases(self) -> list[Phase]:
        return [Phase("D", "D"), Phase("G", "G")]

    def _phase_dreg(self, real, real_tags, g, gain) -> dict[str, torch.Tensor]:
        return {}
