"""Operators shared by every search space, each implemented once.

``OPS`` maps an operator name to a factory ``(c_in, c_out, stride, widths) ->
nn.Module`` (operators that resample and change widths, FasterSeg's);
``cell_op(name, c, stride)`` builds the operators of DARTS-style cells
(``CELL_OPS``, Auto-DeepLab's; shape-preserving at stride 1); ``mobile_op(name,
c)`` the MobileNetV3-style inverted residuals DCNAS searches over
(``MOBILE_OPS``); ``MobileNetV2Encoder`` is the MobileNet-v2 feature encoder
(its weights from a file with ``load_encoder_weights``). ``DropPath`` drops
whole operator paths in training; ``set_drop_path`` sets its probability on a
whole network. A space lists the names it searches over.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .aspp import ASPP, upsample_to
from .cellops import (CELL_OPS, DARTS_OPS, OP_FAMILY, PARAMETER_FREE, AtrousConv, GlobalPoolConv, HalfSize, Pool, ReLUConvBN, SepConv,
                      Zero, cell_op)
from .conv import Conv, Conv2x, ConvBNReLU, FactorizedReduce, Widths, ZoomedConv, conv_layer, norm_layer, set_width
from .droppath import DropPath, set_drop_path
from .mbconv import ACTIVATIONS, MBCONV_OPS, MOBILE_OPS, MBConv, SqueezeExcite, mobile_op, parse_mbconv
from .mobilenetv2 import MobileNetV2Encoder, load_encoder_weights, torchvision_key_map
from .slimmable import SlimBatchNorm2d, SlimConv2d

OpFactory = Callable[[int, int, int, Widths], nn.Module]

OPS: dict[str, OpFactory] = {
    "skip": lambda c_in, c_out, stride, widths=None: FactorizedReduce(c_in, c_out, stride, widths),
    "conv": lambda c_in, c_out, stride, widths=None: Conv(c_in, c_out, stride, widths),
    "conv_2x": lambda c_in, c_out, stride, widths=None: Conv2x(c_in, c_out, stride, widths),
    "zoomed_conv": lambda c_in, c_out, stride, widths=None: ZoomedConv(c_in, c_out, stride, 1, widths),
    "zoomed_conv_2x": lambda c_in, c_out, stride, widths=None: ZoomedConv(c_in, c_out, stride, 2, widths),
}


def reset_parameters(module: nn.Module) -> None:
    """Draw every layer's weights afresh (and clear BatchNorm statistics): a weight reset between search
    stages. Parameters held directly by ``module`` (architecture logits) are left alone."""
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()


def make_op(name: str, c_in: int, c_out: int, stride: int = 1, widths: Widths = None) -> nn.Module:
    """Build operator ``name``; unknown names list the known ones."""
    try:
        factory = OPS[name]
    except KeyError:
        raise KeyError(f"unknown operator {name!r}; known: {', '.join(sorted(OPS))}") from None
    return factory(c_in, c_out, stride, widths)


__all__ = [
    "ASPP", "upsample_to", "CELL_OPS", "DARTS_OPS", "OP_FAMILY", "OPS", "PARAMETER_FREE", "AtrousConv", "HalfSize", "Pool", "ReLUConvBN",
    "SepConv", "cell_op", "Conv", "Conv2x", "ConvBNReLU", "DropPath", "FactorizedReduce", "SlimBatchNorm2d", "SlimConv2d",
    "ZoomedConv", "conv_layer", "make_op", "norm_layer", "reset_parameters", "set_drop_path", "set_width",
    "ACTIVATIONS", "MBCONV_OPS", "MOBILE_OPS", "MBConv", "SqueezeExcite", "mobile_op", "parse_mbconv",
    "GlobalPoolConv", "Zero", "MobileNetV2Encoder", "load_encoder_weights", "torchvision_key_map",
]
