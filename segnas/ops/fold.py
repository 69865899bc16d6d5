"""BatchNorm folding: the inference network users deploy.

In eval mode a BatchNorm is a per-channel affine map, ``y * s + t`` with
``s = gamma / sqrt(running_var + eps)`` and ``t = beta - running_mean * s``
(``gamma = 1, beta = 0`` without affine parameters). Right after a convolution
it folds into that convolution: the weight of output channel ``c`` times
``s[c]``, the bias ``b[c] * s[c] + t[c]`` (a conv without bias gets one); the
BatchNorm becomes ``nn.Identity``. Only the composition patterns whose order is
known are folded:

- two adjacent children ``Conv2d, BatchNorm2d`` of an ``nn.Sequential`` (or a
  subclass that keeps Sequential's ``forward``: ``ReLUConvBN``, ``SepConv``,
  ``AtrousConv``, a stem);
- ``ConvBNReLU`` (``conv`` then ``bn``; also its subclasses that keep its ``forward``);
- ``FactorizedReduce``: at stride 1 ``conv`` then ``bn``; at stride 2 the two
  half convolutions each take their half of ``bn``'s channels (the BatchNorm
  follows their concatenation).

Left alone: slimmable (``SlimConv2d``, which slices its weight at run time) and
``SlimBatchNorm2d`` layers, BatchNorms without running statistics (they
normalise with the batch's in eval too), a convolution or BatchNorm that
appears at more than one place in the network (shared), and any other order.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .conv import ConvBNReLU, FactorizedReduce

__all__ = ["count_batchnorms", "fold_batchnorm", "inference_copy"]


def _is_bn(m: nn.Module) -> bool:
    return isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm))


def count_batchnorms(net: nn.Module) -> int:
    """BatchNorm modules in ``net`` (the slimmable ones' inner BatchNorms included)."""
    return sum(1 for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))


def _plain_conv(m: nn.Module) -> bool:
    return type(m) is nn.Conv2d and m.padding_mode == "zeros"


def _foldable_bn(bn: nn.Module) -> bool:
    return (_is_bn(bn) and bn.track_running_stats and bn.running_mean is not None
            and bn.running_var is not None)


@torch.no_grad()
def _fold(conv: nn.Conv2d, bn: nn.Module, channels: slice | None = None) -> None:
    """Fold ``bn`` (its ``channels``, default all) into ``conv`` in place."""
    sl = channels if channels is not None else slice(None)
    var = bn.running_var[sl].to(torch.float64)
    mean = bn.running_mean[sl].to(torch.float64)
    scale = 1.0 / torch.sqrt(var + bn.eps)
    if bn.affine and bn.weight is not None:
        scale = scale * bn.weight[sl].to(torch.float64)
    shift = -mean * scale
    if bn.affine and bn.bias is not None:
        shift = shift + bn.bias[sl].to(torch.float64)
    weight = conv.weight.to(torch.float64) * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    bias = conv.bias.to(torch.float64) if conv.bias is not None else torch.zeros_like(scale)
    bias = bias * scale + shift
    conv.weight.copy_(weight.to(conv.weight.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
    else:
        conv.bias.copy_(bias.to(conv.bias.dtype))


def _occurrences(net: nn.Module) -> dict[int, int]:
    counts: dict[int, int] = {}
    for _, m in net.named_modules(remove_duplicate=False):
        counts[id(m)] = counts.get(id(m), 0) + 1
    return counts


def _unshared(counts: dict[int, int], *modules: nn.Module) -> bool:
    return all(counts.get(id(m), 0) == 1 for m in modules)


def _fold_in_place(net: nn.Module) -> int:
    """Fold every recognised conv -> BN pair of ``net`` (in eval) in place; the number folded."""
    counts = _occurrences(net)
    folded = 0
    for module in list(net.modules()):
        if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                conv, bn = module._modules[a], module._modules[b]
                if (_plain_conv(conv) and _foldable_bn(bn) and conv.out_channels == bn.num_features
                        and _unshared(counts, conv, bn)):
                    _fold(conv, bn)
                    module._modules[b] = nn.Identity()
                    folded += 1
        elif isinstance(module, ConvBNReLU) and type(module).forward is ConvBNReLU.forward:
            conv, bn = module.conv, module.bn
            if (_plain_conv(conv) and _foldable_bn(bn) and conv.out_channels == bn.num_features
                    and _unshared(counts, conv, bn)):
                _fold(conv, bn)
                module.bn = nn.Identity()
                folded += 1
        elif isinstance(module, FactorizedReduce) and type(module).forward is FactorizedReduce.forward:
            bn = module.bn
            if not (_foldable_bn(bn) and _unshared(counts, bn)):
                continue
            if module.stride == 1:
                conv = module.conv
                if _plain_conv(conv) and conv.out_channels == bn.num_features and _unshared(counts, conv):
                    _fold(conv, bn)
                    module.bn = nn.Identity()
                    folded += 1
            else:
                c1, c2 = module.conv1, module.conv2
                if (_plain_conv(c1) and _plain_conv(c2) and c1 is not c2 and _unshared(counts, c1, c2)
                        and c1.out_channels + c2.out_channels == bn.num_features):
                    _fold(c1, bn, slice(0, c1.out_channels))
                    _fold(c2, bn, slice(c1.out_channels, bn.num_features))
                    module.bn = nn.Identity()
                    folded += 1
    return folded


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """An eval-mode copy of ``net`` with every BatchNorm that directly follows a convolution folded into it.

    ``net`` itself is not changed. The copy computes what ``net.eval()`` computes, up to float rounding
    (the folding is done in float64). See the module's docstring for the patterns folded.
    """
    out = copy.deepcopy(net).eval()
    _fold_in_place(out)
    return out


def inference_copy(net: nn.Module) -> nn.Module:
    """The network users deploy: a copy without training-only auxiliary heads, in eval mode, BN folded."""
    out = copy.deepcopy(net)
    if isinstance(getattr(out, "aux_heads", None), nn.Module):
        out.aux_heads = nn.ModuleDict()
    out.eval()
    for p in out.parameters():
        p.requires_grad_(False)
    _fold_in_place(out)
    return out
