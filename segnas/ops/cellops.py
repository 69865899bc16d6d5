"""Operators of DARTS-style cells (Auto-DeepLab's eight, DARTS' and DOTS' eight, their families).

At stride 1 all keep the spatial size and the channel count. ``SepConv`` is
two rounds of ReLU - depthwise - pointwise - BN; ``AtrousConv`` is ReLU - full
(not depthwise) conv at rate 2 - BN, as Auto-DeepLab's authors built it;
DARTS' ``dil_conv`` (DOTS' cells) is one round of the separable conv with a
rate-2 depthwise conv; average pooling ignores the padding. ``none`` (no connection) is not a module:
a mixed edge leaves it out of the sum. Nekrasov et al.'s discrete cells add
``GlobalPoolConv`` (image pooling) and ``Zero`` (their zero operation, a real
operand of a sum) and run ``SepConv`` with a dilation and one or two rounds.

Stride 2 (a cell that halves the size of its inputs, as the authors' released
Auto-DeepLab network runs its cells going down) halves the size as a stride-2
3x3 conv does (ceil on odd sizes): the separable conv strides its first
depthwise conv, the atrous conv resizes bilinearly to half and then runs its
kernel at rate 1 (the released network's choice), the pools stride, and
``skip_connect`` becomes ReLU - stride-2 1x1 conv - BN (NASNet's identity at
stride 2; segnas' reading, the published cell has no skip).
"""

from __future__ import annotations

import torch
from torch import nn

from .aspp import upsample_to
from .conv import conv_layer


def _check_stride(stride: int) -> None:
    if stride not in (1, 2):
        raise ValueError(f"a cell operator's stride must be 1 or 2, got {stride}")


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv -> BN: the pre-activation unit cells and their input transitions use."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 1, stride: int = 1, dilation: int = 1,
                 groups: int = 1) -> None:
        super().__init__(nn.ReLU(inplace=False), conv_layer(c_in, c_out, kernel_size, stride, dilation, groups),
                         nn.BatchNorm2d(c_out))


class SepConv(nn.Sequential):
    """Depthwise-separable k x k conv, ``repeats`` rounds of (ReLU, depthwise, pointwise, BN); a stride on the first.

    Two rounds by default (DARTS' and Auto-DeepLab's); Nekrasov et al. search with one and train their
    final networks with two. ``dilation`` applies to every depthwise conv (their rate-3 and rate-6 ones).
    """

    def __init__(self, c: int, kernel_size: int, stride: int = 1, dilation: int = 1, repeats: int = 2) -> None:
        _check_stride(stride)
        if repeats < 1:
            raise ValueError(f"a separable conv needs at least one round, got repeats={repeats}")
        layers: list[nn.Module] = []
        for s in [stride] + [1] * (repeats - 1):
            layers += [nn.ReLU(inplace=False), conv_layer(c, c, kernel_size, s, dilation, groups=c),
                       conv_layer(c, c, 1), nn.BatchNorm2d(c)]
        super().__init__(*layers)


class HalfSize(nn.Module):
    """Bilinear resize to half the size (ceil, the size a stride-2 3x3 conv gives on odd sizes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return upsample_to(x, ((h + 1) // 2, (w + 1) // 2))


class AtrousConv(nn.Sequential):
    """k x k atrous conv at rate 2 over all channels (not depthwise): ReLU - conv - BN.

    At stride 2: ReLU - bilinear x0.5 - k x k conv at rate 1 - BN, as the authors' released network
    runs it (the same weights; the half-size input replaces the dilation).
    """

    def __init__(self, c: int, kernel_size: int, rate: int = 2, stride: int = 1) -> None:
        _check_stride(stride)
        if stride == 1:
            super().__init__(nn.ReLU(inplace=False), conv_layer(c, c, kernel_size, dilation=rate), nn.BatchNorm2d(c))
        else:
            super().__init__(nn.ReLU(inplace=False), HalfSize(), conv_layer(c, c, kernel_size), nn.BatchNorm2d(c))


class Pool(nn.Module):
    """3x3 average (padding not counted) or max pooling with stride 1 or 2."""

    def __init__(self, kind: str, stride: int = 1) -> None:
        super().__init__()
        _check_stride(stride)
        if kind == "avg":
            self.pool: nn.Module = nn.AvgPool2d(3, stride, 1, count_include_pad=False)
        elif kind == "max":
            self.pool = nn.MaxPool2d(3, stride, 1)
        else:
            raise ValueError(f"unknown pooling {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class GlobalPoolConv(nn.Module):
    """Global average pooling, 1x1 conv (with a bias) - ReLU, spread back over the input's size.

    The context branch of Nekrasov et al.'s cells (ASPP's image pooling). A bias instead of BatchNorm for
    the reason ``ASPP`` gives: the pooled map is 1x1, so a batch of one image has no statistics. Spreading
    the pooled vector is what bilinear upsampling of a 1x1 map gives, without the interpolation.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.relu(self.conv(x.mean((2, 3), keepdim=True)))
        return pooled.expand(-1, -1, *x.shape[-2:])


class Zero(nn.Module):
    """The zero operation of a discrete cell: zeros of the input's shape, so the path adds nothing.

    A mixed edge leaves ``none`` out instead; a discrete cell whose sum has a zero operand keeps the
    other operand as it is, and no gradient reaches the input through this path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def cell_op(name: str, c: int, stride: int = 1) -> nn.Module:
    """The cell operator ``name`` on ``c`` channels: shape-preserving at stride 1, half the size at stride 2."""
    _check_stride(stride)
    if name.startswith("sep_conv_"):
        return SepConv(c, int(name[-1]), stride)
    if name.startswith("atrous_conv_"):
        return AtrousConv(c, int(name[-1]), stride=stride)
    if name.startswith("dil_conv_"):  # DARTS': one separable round with a rate-2 depthwise conv
        return SepConv(c, int(name[-1]), stride, dilation=2, repeats=1)
    if name in ("avg_pool_3x3", "max_pool_3x3"):
        return Pool(name[:3], stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else ReLUConvBN(c, c, 1, stride=2)
    raise KeyError(name)


CELL_OPS = ("sep_conv_3x3", "sep_conv_5x5", "atrous_conv_3x3", "atrous_conv_5x5", "avg_pool_3x3",
            "max_pool_3x3", "skip_connect")
# DARTS' cell operators (DOTS searches these): dilated convs are depthwise-separable, not Auto-DeepLab's full atrous
DARTS_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "avg_pool_3x3", "max_pool_3x3",
             "skip_connect")
PARAMETER_FREE = frozenset({"avg_pool_3x3", "max_pool_3x3", "skip_connect", "none"})
# what each cell operator is, for searches that group operators by kind (DOTS' Group-V1): the identity,
# pooling, separable convs, dilated convs, and the zero operation ``none``
OP_FAMILY: dict[str, str] = {"skip_connect": "skip", "avg_pool_3x3": "pooling", "max_pool_3x3": "pooling",
                             "sep_conv_3x3": "separable", "sep_conv_5x5": "separable",
                             "dil_conv_3x3": "dilated", "dil_conv_5x5": "dilated",
                             "atrous_conv_3x3": "dilated", "atrous_conv_5x5": "dilated", "none": "zero"}
