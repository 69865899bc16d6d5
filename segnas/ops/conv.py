"""Convolutional operators shared by every search space.

Each operator exists once. It is built either plain (``widths=None``: ordinary
``nn.Conv2d`` / ``nn.BatchNorm2d``, what a derived child network contains) or
slimmable (``widths=(in_widths, out_widths)``: superkernels whose active width
is chosen per step with ``set_width``), so a supernet and the network derived
from it run the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .slimmable import SlimBatchNorm2d, SlimConv2d

Widths = tuple[Sequence[int], Sequence[int]] | None


def conv_layer(c_in: int, c_out: int, kernel_size: int, stride: int = 1, dilation: int = 1,
               groups: int = 1, bias: bool = False, slim: bool = False) -> nn.Conv2d:
    """A 'same'-padded convolution, slimmable on request."""
    padding = dilation * (kernel_size - 1) // 2
    cls = SlimConv2d if slim else nn.Conv2d
    return cls(c_in, c_out, kernel_size, stride=stride, padding=padding, dilation=dilation,
               groups=groups, bias=bias)


def norm_layer(c: int, widths: Sequence[int] | None = None) -> nn.Module:
    """BatchNorm, or one BatchNorm per width when ``widths`` is given."""
    return nn.BatchNorm2d(c) if widths is None else SlimBatchNorm2d(widths)


def set_width(module: nn.Module, c_in: int, c_out: int) -> None:
    """Propagate an active (c_in, c_out) width to an operator built slimmable."""
    fn = getattr(module, "set_width", None)
    if fn is None:
        raise TypeError(f"{type(module).__name__} is not slimmable")
    fn(c_in, c_out)


class ConvBNReLU(nn.Module):
    """conv -> BN -> (ReLU); the unit every operator here is made of."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, groups: int = 1, relu: bool = True, widths: Widths = None) -> None:
        super().__init__()
        self.conv = conv_layer(c_in, c_out, kernel_size, stride, dilation, groups, slim=widths is not None)
        self.bn = norm_layer(c_out, None if widths is None else widths[1])
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def set_width(self, c_in: int, c_out: int) -> None:
        self.conv.set_width(c_in, c_out)
        self.bn.set_width(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Conv(ConvBNReLU):
    """FasterSeg ``conv``: one 3x3 conv-BN-ReLU (no residual despite the authors' class name)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, widths: Widths = None) -> None:
        super().__init__(c_in, c_out, 3, stride, widths=widths)


class Conv2x(nn.Module):
    """FasterSeg ``conv_2x``: two 3x3 conv-BN-ReLU, the stride on the first."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, widths: Widths = None) -> None:
        super().__init__()
        mid = None if widths is None else (widths[1], widths[1])
        self.conv1 = ConvBNReLU(c_in, c_out, 3, stride, widths=widths)
        self.conv2 = ConvBNReLU(c_out, c_out, 3, 1, widths=mid)

    def set_width(self, c_in: int, c_out: int) -> None:
        self.conv1.set_width(c_in, c_out)
        self.conv2.set_width(c_out, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class ZoomedConv(nn.Module):
    """FasterSeg zoomed convolution: bilinear x0.5, 3x3 conv(s), bilinear back.

    ``repeats`` = 1 gives ``zoomed_conv``, 2 gives ``zoomed_conv_2x``. With
    stride 2 the result stays at half resolution (no upsampling). The last BN
    comes before the upsampling and its ReLU after, as trained by the authors;
    upsampling is bilinear (align_corners=True) in training and in timing alike.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, repeats: int = 1,
                 widths: Widths = None) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError("ZoomedConv stride must be 1 or 2")
        self.stride = stride
        mid = None if widths is None else (widths[1], widths[1])
        layers = [ConvBNReLU(c_in, c_out, 3, 1, relu=repeats > 1, widths=widths)]
        for i in range(1, repeats):
            layers.append(ConvBNReLU(c_out, c_out, 3, 1, relu=i < repeats - 1, widths=mid))
        self.convs = nn.Sequential(*layers)
        self.relu = nn.ReLU(inplace=True)

    def set_width(self, c_in: int, c_out: int) -> None:
        self.convs[0].set_width(c_in, c_out)
        for layer in self.convs[1:]:
            layer.set_width(c_out, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # ceil, so a stride-2 zoomed op matches a stride-2 conv on odd sizes
        out = F.interpolate(x, size=((h + 1) // 2, (w + 1) // 2), mode="bilinear", align_corners=True)
        out = self.convs(out)
        if self.stride == 1:
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=True)
        return self.relu(out)


class FactorizedReduce(nn.Module):
    """Stride-2 ``skip``: two 1x1 stride-2 convs (the second shifted by one pixel), concat, BN, ReLU.

    With stride 1 it is a 1x1 conv-BN-ReLU, which a supernet needs because the
    widths on either side of a ``skip`` may differ.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 2, widths: Widths = None) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError("FactorizedReduce stride must be 1 or 2")
        self.stride = stride
        slim = widths is not None
        if stride == 1:
            self.conv = conv_layer(c_in, c_out, 1, slim=slim)
        else:
            if c_out % 2:
                raise ValueError("FactorizedReduce with stride 2 needs an even c_out")
            self.conv1 = conv_layer(c_in, c_out // 2, 1, stride=2, slim=slim)
            self.conv2 = conv_layer(c_in, c_out // 2, 1, stride=2, slim=slim)
        self.bn = norm_layer(c_out, None if widths is None else widths[1])
        self.relu = nn.ReLU(inplace=True)

    def set_width(self, c_in: int, c_out: int) -> None:
        if self.stride == 1:
            self.conv.set_width(c_in, c_out)
        else:
            if c_out % 2:
                raise ValueError("FactorizedReduce with stride 2 needs an even width")
            self.conv1.set_width(c_in, c_out // 2)
            self.conv2.set_width(c_in, c_out // 2)
        self.bn.set_width(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            out = self.conv(x)
        else:
            shifted = F.pad(x[:, :, 1:, 1:], (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
            out = torch.cat([self.conv1(x), self.conv2(shifted)], dim=1)
        return self.relu(self.bn(out))
