"""Segmentation losses: cross-entropy with ignore, OHEM, distillation, auxiliary weighting."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError


class CrossEntropy(nn.Module):
    """Pixel-wise cross-entropy that skips ``ignore_index``."""

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, ignore_index=self.ignore_index)


class OhemCrossEntropy(nn.Module):
    """Online hard example mining: average the loss over the hardest pixels only.

    Pixels whose probability of the true class is below ``thresh`` are kept,
    but never fewer than ``min_kept`` (per batch) - the hardest ones by loss.
    """

    def __init__(self, ignore_index: int = 255, thresh: float = 0.7, min_kept: int = 100_000) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.loss_thresh = -torch.log(torch.tensor(thresh)).item()
        self.min_kept = min_kept

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="none").flatten()
        valid = (target.flatten() != self.ignore_index)
        loss = loss[valid]
        if loss.numel() == 0:
            return logits.sum() * 0.0
        hard = loss[loss > self.loss_thresh]
        k = min(self.min_kept, loss.numel())
        if hard.numel() < k:
            hard = torch.topk(loss, k, sorted=False).values
        return hard.mean()


def kl_distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) on per-pixel class distributions, averaged over pixels (not elements)."""
    t = temperature
    log_p_s = F.log_softmax(student / t, dim=1)
    log_p_t = F.log_softmax(teacher.detach() / t, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)  # per pixel
    return kl.mean() * (t * t)


def l2_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of logits (Nekrasov et al.'s decoder distillation)."""
    return F.mse_loss(student, teacher.detach())


def seg_loss_with_aux(criterion: nn.Module, logits: torch.Tensor, aux_logits: Sequence[torch.Tensor],
                      target: torch.Tensor, aux_weight: float) -> torch.Tensor:
    """Main loss plus ``aux_weight`` times the loss of each auxiliary head."""
    loss = criterion(logits, target)
    for a in aux_logits:
        loss = loss + aux_weight * criterion(a, target)
    return loss


LOSSES = {"ce": CrossEntropy, "ohem": OhemCrossEntropy}


def make_criterion(name: str, ignore_index: int = 255, **kwargs) -> nn.Module:
    """Loss by name ('ce' or 'ohem')."""
    if name not in LOSSES:
        raise ConfigError(f"train.loss {name!r} is unknown; choose one of {', '.join(LOSSES)}")
    return LOSSES[name](ignore_index=ignore_index, **kwargs)
