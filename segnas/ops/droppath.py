"""DropPath (FractalNet; NASNet's ScheduledDropPath when its probability grows over training).

A cell wraps the output of each of its operators: in training, each sample's
whole path is zeroed with probability ``p`` and kept paths are scaled by
``1 / (1 - p)``, so the expected sum of a block is unchanged and evaluation
(identity) sees the scale training saw on average. ``p`` is a plain attribute,
not a buffer: it is training state set from the step (``set_drop_path``), so a
network's state_dict is the same with or without it.
"""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """Zero the input of each sample with probability ``p`` in training, rescale the kept ones; identity in eval."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0.0:
            return x  # draws no random numbers: a network at p = 0 trains exactly as one without DropPath
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def set_drop_path(model: nn.Module, p: float) -> int:
    """Set the drop probability of every DropPath in ``model``; returns how many it has (0: none, p has no effect)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"a drop-path probability must be in [0, 1), got {p}")
    n = 0
    for m in model.modules():
        if isinstance(m, DropPath):
            m.p = float(p)
            n += 1
    return n
