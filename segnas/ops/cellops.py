"""Operators of DARTS-style cells (Auto-DeepLab's eight, DOTS' grouping).

All keep the spatial size and the channel count (a cell resamples its inputs
before its operators run). ``SepConv`` is two rounds of ReLU - depthwise -
pointwise - BN; ``AtrousConv`` is ReLU - full (not depthwise) conv at rate 2 -
BN, as Auto-DeepLab's authors built it; average pooling ignores the padding.
``none`` (no connection) is not a module: a mixed edge leaves it out of the sum.
"""

from __future__ import annotations

import torch
from torch import nn

from .conv import conv_layer


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv -> BN: the pre-activation unit cells and their input transitions use."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 1, stride: int = 1, dilation: int = 1,
                 groups: int = 1) -> None:
        super().__init__(nn.ReLU(inplace=False), conv_layer(c_in, c_out, kernel_size, stride, dilation, groups),
                         nn.BatchNorm2d(c_out))


class SepConv(nn.Sequential):
    """Depthwise-separable k x k conv, twice: (ReLU, depthwise, pointwise, BN) x 2."""

    def __init__(self, c: int, kernel_size: int) -> None:
        layers: list[nn.Module] = []
        for _ in range(2):
            layers += [nn.ReLU(inplace=False), conv_layer(c, c, kernel_size, groups=c), conv_layer(c, c, 1),
                       nn.BatchNorm2d(c)]
        super().__init__(*layers)


class AtrousConv(ReLUConvBN):
    """k x k atrous conv at rate 2 over all channels (not depthwise)."""

    def __init__(self, c: int, kernel_size: int, rate: int = 2) -> None:
        super().__init__(c, c, kernel_size, dilation=rate)


class Pool(nn.Module):
    """3x3 average (padding not counted) or max pooling with stride 1."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind == "avg":
            self.pool: nn.Module = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        elif kind == "max":
            self.pool = nn.MaxPool2d(3, 1, 1)
        else:
            raise ValueError(f"unknown pooling {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


def cell_op(name: str, c: int) -> nn.Module:
    """The cell operator ``name`` on ``c`` channels (stride 1, shape-preserving)."""
    if name.startswith("sep_conv_"):
        return SepConv(c, int(name[-1]))
    if name.startswith("atrous_conv_"):
        return AtrousConv(c, int(name[-1]))
    if name in ("avg_pool_3x3", "max_pool_3x3"):
        return Pool(name[:3])
    if name == "skip_connect":
        return nn.Identity()
    raise KeyError(name)


CELL_OPS = ("sep_conv_3x3", "sep_conv_5x5", "atrous_conv_3x3", "atrous_conv_5x5", "avg_pool_3x3",
            "max_pool_3x3", "skip_connect")
PARAMETER_FREE = frozenset({"avg_pool_3x3", "max_pool_3x3", "skip_connect", "none"})
