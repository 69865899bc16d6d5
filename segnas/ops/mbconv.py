"""MobileNetV3-style operators (Howard et al., ICCV 2019), as DCNAS' mixture layers search over them.

``MBConv`` is the inverted residual block: 1x1 expansion conv - BN - act,
k x k depthwise conv - BN - act, optional squeeze-excitation, 1x1 projection
conv - BN (linear: no activation after it), plus the input where the block
keeps the shape (stride 1, as in a mixture layer). The squeeze-excitation
block pools, reduces to a quarter of the expanded channels rounded up to a
multiple of 8 (torchvision's MobileNetV3 rule, so tiny test networks still
get a usable bottleneck), ReLU, expands back and gates with a hard sigmoid.
The activation is MobileNetV3's hard swish by default (``relu`` on request;
MobileNetV3 itself uses ReLU in its first blocks and hard swish later;
``relu6`` without squeeze-excitation is MobileNet-v2's block, see
``segnas.ops.mobilenetv2``).

Names: ``mbconv_k{3,5,7}_e{3,6}`` with an ``_se`` suffix for squeeze-excitation;
``MOBILE_OPS`` lists the twelve and ``skip_connect`` (the identity of
``segnas.ops.cellops``), DCNAS' operator set.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from .conv import conv_layer

ACTIVATIONS = ("hswish", "relu", "relu6")
MBCONV_OPS = tuple(f"mbconv_k{k}_e{e}{se}" for k in (3, 5, 7) for e in (3, 6) for se in ("", "_se"))
MOBILE_OPS = MBCONV_OPS + ("skip_connect",)
_NAME = re.compile(r"^mbconv_k(\d+)_e(\d+)(_se)?$")


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (never below it, never 10% below ``value``)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


def activation(name: str) -> nn.Module:
    """A fresh activation module: ``hswish`` (MobileNetV3's), ``relu`` or ``relu6`` (MobileNet-v2's)."""
    if name == "hswish":
        return nn.Hardswish()
    if name == "relu":
        return nn.ReLU()
    if name == "relu6":
        return nn.ReLU6()
    raise ValueError(f"activation {name!r}: choose one of {', '.join(ACTIVATIONS)}")


class SqueezeExcite(nn.Module):
    """Channel gates from the pooled map: 1x1 reduce - ReLU - 1x1 expand - hard sigmoid (MobileNetV3)."""

    def __init__(self, c: int, squeeze: int | None = None) -> None:
        super().__init__()
        squeeze = squeeze or make_divisible(c / 4)
        self.reduce = nn.Conv2d(c, squeeze, 1, bias=True)
        self.expand = nn.Conv2d(squeeze, c, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(torch.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * nn.functional.hardsigmoid(gate)


class MBConv(nn.Module):
    """Inverted residual: expand 1x1, depthwise k x k, [SE], project 1x1 (linear); + x when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, expansion: int, se: bool = False,
                 stride: int = 1, act: str = "hswish") -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"an MBConv's stride must be 1 or 2, got {stride}")
        mid = c_in * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [conv_layer(c_in, mid, 1), nn.BatchNorm2d(mid), activation(act)]
        layers += [conv_layer(mid, mid, kernel_size, stride, groups=mid), nn.BatchNorm2d(mid), activation(act)]
        if se:
            layers.append(SqueezeExcite(mid))
        layers += [conv_layer(mid, c_out, 1), nn.BatchNorm2d(c_out)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out


def parse_mbconv(name: str) -> tuple[int, int, bool] | None:
    """(kernel, expansion, squeeze-excitation) of an ``mbconv_k*_e*[_se]`` name; None for other names."""
    m = _NAME.match(name)
    return None if m is None else (int(m.group(1)), int(m.group(2)), m.group(3) is not None)


def mobile_op(name: str, c: int, stride: int = 1, act: str = "hswish") -> nn.Module:
    """The MBConv operator ``name`` on ``c`` channels (``skip_connect`` is ``cell_op``'s identity)."""
    parsed = parse_mbconv(name)
    if parsed is None:
        raise KeyError(f"unknown MobileNetV3-style operator {name!r}; known: {', '.join(MOBILE_OPS)}")
    kernel, expansion, se = parsed
    if kernel % 2 == 0 or expansion < 1:
        raise KeyError(f"operator {name!r}: the kernel must be odd and the expansion at least 1")
    return MBConv(c, c, kernel, expansion, se, stride, act)
