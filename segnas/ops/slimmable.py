"""Slimmable layers: one weight tensor serves several widths (superkernels).

A slimmable convolution slices ``weight[:c_out, :c_in]`` of its full kernel, so
narrower widths share the leading channels of wider ones (FasterSeg, 3.1.3).
BatchNorm statistics differ per width, so a slimmable BatchNorm keeps one
``nn.BatchNorm2d`` per allowed width. Widths are set from outside with
``set_width`` before a forward pass; at full width these layers behave exactly
like ``nn.Conv2d`` / ``nn.BatchNorm2d``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class SlimConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose active input/output channels can shrink at run time."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, bias: bool = False) -> None:
        super().__init__(c_in, c_out, kernel_size, stride, padding, dilation, groups, bias)
        if groups not in (1, c_in):
            raise ValueError("SlimConv2d supports dense or depthwise convolutions only")
        self.depthwise = groups == c_in and groups > 1
        self.active_in = c_in
        self.active_out = c_out

    def set_width(self, c_in: int, c_out: int) -> None:
        if not (0 < c_in <= self.in_channels and 0 < c_out <= self.out_channels):
            raise ValueError(f"width ({c_in}, {c_out}) exceeds the superkernel "
                             f"({self.in_channels}, {self.out_channels})")
        if self.depthwise and c_in != c_out:
            raise ValueError("a depthwise SlimConv2d needs c_in == c_out")
        self.active_in, self.active_out = c_in, c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c_in, c_out = x.shape[1], self.active_out
        if c_in == self.in_channels and c_out == self.out_channels:
            return super().forward(x)
        if self.depthwise:
            weight, groups = self.weight[:c_in], c_in
            c_out = c_in
        else:
            weight, groups = self.weight[:c_out, :c_in], 1
        bias = self.bias[:c_out] if self.bias is not None else None
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)


class SlimBatchNorm2d(nn.Module):
    """One BatchNorm per allowed width, selected by the active width."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.widths = sorted(set(int(w) for w in widths))
        self.bns = nn.ModuleList(nn.BatchNorm2d(w) for w in self.widths)
        self.active = self.widths[-1]

    def set_width(self, c: int) -> None:
        if c not in self.widths:
            raise ValueError(f"width {c} is not one of {self.widths}")
        self.active = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bns[self.widths.index(x.shape[1])](x)
