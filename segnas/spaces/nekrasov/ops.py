"""The eleven operations of Nekrasov et al.'s cells, in the order of the paper's Table 4 (the index is the position).

Every operation keeps the shape of its input (``c`` channels, same size):

* ``conv1x1``, ``conv3x3``, ``conv3x3_rate3``, ``conv3x3_rate12``: conv - BN - ReLU
  (``ConvBNReLU``; the rates are dilations);
* ``sep3x3``, ``sep5x5``, ``sep3x3_rate3``, ``sep5x5_rate6``: ``SepConv``, rounds of ReLU -
  depthwise (dilated) - pointwise - BN, repeated ``sep_repeats`` times (one round in the search, two
  in the final networks);
* ``gap``: global average pooling, 1x1 conv, spread back over the input (``GlobalPoolConv``);
* ``skip``: the identity; ``zero``: zeros (``Zero``), the path adds nothing.
"""

from __future__ import annotations

from torch import nn

from ...ops import ConvBNReLU, GlobalPoolConv, SepConv, Zero

OPS = ("conv1x1", "conv3x3", "sep3x3", "sep5x5", "gap", "conv3x3_rate3", "conv3x3_rate12", "sep3x3_rate3",
       "sep5x5_rate6", "skip", "zero")
DESCRIPTIONS = ("conv 1x1", "conv 3x3", "separable conv 3x3", "separable conv 5x5",
                "global average pooling followed by upsampling and conv 1x1", "conv 3x3 with dilation rate 3",
                "conv 3x3 with dilation rate 12", "separable conv 3x3 with dilation rate 3",
                "separable conv 5x5 with dilation rate 6", "skip-connection",
                "zero-operation that effectively nullifies the path")
# (kernel, dilation) of the convolutions
_CONVS = {"conv1x1": (1, 1), "conv3x3": (3, 1), "conv3x3_rate3": (3, 3), "conv3x3_rate12": (3, 12)}
_SEPS = {"sep3x3": (3, 1), "sep5x5": (5, 1), "sep3x3_rate3": (3, 3), "sep5x5_rate6": (5, 6)}


def make_op(name: str, c: int, sep_repeats: int = 2) -> nn.Module:
    """Operation ``name`` of Table 4 on ``c`` channels; separable ones with ``sep_repeats`` rounds."""
    if name in _CONVS:
        kernel, rate = _CONVS[name]
        return ConvBNReLU(c, c, kernel, dilation=rate)
    if name in _SEPS:
        kernel, rate = _SEPS[name]
        return SepConv(c, kernel, dilation=rate, repeats=sep_repeats)
    if name == "gap":
        return GlobalPoolConv(c, c)
    if name == "skip":
        return nn.Identity()
    if name == "zero":
        return Zero()
    raise KeyError(f"unknown operation {name!r}; known: {', '.join(OPS)}")
