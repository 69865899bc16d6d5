"""Atrous spatial pyramid pooling (DeepLabv3) and bilinear resizing, shared by the spaces."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .conv import ConvBNReLU


def upsample_to(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize to ``size`` (align_corners=True, as the FasterSeg and DeepLab heads were trained)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class ASPP(nn.Module):
    """1x1 conv, one 3x3 atrous conv per rate, image pooling; concatenated and projected by a 1x1 conv.

    The pooling branch has a bias instead of BatchNorm: its map is 1x1, so a
    batch of one image would have no statistics to normalise with.
    """

    def __init__(self, c_in: int, c_out: int, rates: Sequence[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList([ConvBNReLU(c_in, c_out, 1)] +
                                      [ConvBNReLU(c_in, c_out, 3, dilation=int(r)) for r in rates])
        self.pool = nn.Conv2d(c_in, c_out, 1, bias=True)
        self.project = ConvBNReLU(c_out * (len(rates) + 2), c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.relu(self.pool(x.mean((2, 3), keepdim=True))).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], 1))
