"""Exponential moving average (Polyak averaging) of a network's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """Keeps ``shadow = decay * shadow + (1 - decay) * weights`` after every step.

    Buffers (BatchNorm statistics) are copied, not averaged. Evaluating the
    shadow model is what Polyak averaging is for: smoother, usually better
    weights at no training cost.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)
        self._params = {name for name, _ in self.shadow.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        src = model.state_dict()
        for name, value in self.shadow.state_dict().items():
            if name in self._params:
                value.mul_(self.decay).add_(src[name].detach(), alpha=1.0 - self.decay)
            else:
                value.copy_(src[name])

    def state_dict(self) -> dict:
        return self.shadow.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.shadow.load_state_dict(state)
