"""DARTS' ImageNet network as a segmentation backbone: stems to 1/8, normal and reduction cells to 1/32.

Layout (DARTS' ``NetworkImageNet``, which DOTS evaluates its ImageNet cell in):
stem0 = conv3x3/2 (C/2) - BN - ReLU - conv3x3/2 (C) - BN at 1/4, stem1 = ReLU -
conv3x3/2 (C) - BN at 1/8; then ``layers`` cells, the ones at ``layers // 3``
and ``2 * layers // 3`` reduction cells that halve the size and double C.
A cell preprocesses its inputs c_(k-2) and c_(k-1) with ReLU - 1x1 conv - BN
to C channels; when the cell before it reduced (and for the first cell, whose
c_(k-2) is stem0's 1/4 output), c_(k-2) is a step finer and its 1x1 conv
strides 2: segnas' stride-2 ``skip_connect`` (``segnas.ops.ReLUConvBN``), the
parameters and multiply-adds of DARTS' FactorizedReduce (two half-width 1x1
convs, one shifted by a pixel) with its pre-activation order (segnas'
``FactorizedReduce`` is FasterSeg's, ReLU after the BN). In a reduction cell
the operators on c_(k-2) and c_(k-1) stride 2; on earlier nodes they do not.
Node k sums its two operators; the cell's output concatenates every node
(``nodes * C`` channels). Every operator except an identity passes a
``DropPath`` (identity unless a retraining sets ``train.drop_path``).

The backbone returns the 1/16 feature (the last cell before the second
reduction) and the 1/32 one (the last cell): BiSeNet's context path reads
both. Sizes halve with ceil on odd inputs, as every stride-2 3x3 conv does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ...ops import DropPath, ReLUConvBN, cell_op, conv_layer
from ...ops.weights import load_weights


@dataclass(frozen=True)
class CellPlan:
    """One cell's widths and kind: inputs c_(k-2) / c_(k-1) channels, its C, whether it / the one before reduces."""

    c_prev2: int
    c_prev: int
    c: int
    reduction: bool
    reduction_prev: bool


def reduction_layers(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells (DARTS' ImageNet network: at 1/3 and 2/3 of the depth)."""
    return layers // 3, 2 * layers // 3


def cell_plans(channels: int, layers: int, nodes: int) -> list[CellPlan]:
    """Every cell's widths in order; the first cell's c_(k-2) is stem0's output, a step finer (as after a reduction)."""
    reductions = reduction_layers(layers)
    plans, c_prev2, c_prev, c, reduction_prev = [], channels, channels, channels, True
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c *= 2
        plans.append(CellPlan(c_prev2, c_prev, c, reduction, reduction_prev))
        c_prev2, c_prev, reduction_prev = c_prev, nodes * c, reduction
    return plans


def output_channels(channels: int, layers: int, nodes: int) -> tuple[int, int]:
    """Channels of the backbone's (1/16, 1/32) outputs."""
    plans = cell_plans(channels, layers, nodes)
    return nodes * plans[feature16_index(layers)].c, nodes * plans[-1].c


def feature16_index(layers: int) -> int:
    """The cell whose output is the 1/16 feature: the last one before the second reduction."""
    return reduction_layers(layers)[1] - 1


def make_stems(channels: int) -> tuple[nn.Sequential, nn.Sequential]:
    """DARTS' ImageNet stems (module indices as DARTS names them): to C at 1/4, then to C at 1/8."""
    half = channels // 2
    stem0 = nn.Sequential(conv_layer(3, half, 3, 2), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
                          conv_layer(half, channels, 3, 2), nn.BatchNorm2d(channels))
    stem1 = nn.Sequential(nn.ReLU(inplace=False), conv_layer(channels, channels, 3, 2), nn.BatchNorm2d(channels))
    return stem0, stem1


def preprocess(plan: CellPlan) -> tuple[nn.Module, nn.Module]:
    """ReLU - 1x1 conv - BN of c_(k-2) (stride 2 after a reduction) and of c_(k-1), to the cell's C."""
    return (ReLUConvBN(plan.c_prev2, plan.c, 1, stride=2 if plan.reduction_prev else 1),
            ReLUConvBN(plan.c_prev, plan.c, 1))


def op_stride(plan: CellPlan, state: int) -> int:
    """A reduction cell's operators on its two inputs (states 0, 1) halve the size; on its nodes they do not."""
    return 2 if plan.reduction and state < 2 else 1


class Cell(nn.Module):
    """A discrete DARTS cell: node k = op(state a) + op(state b) of its two entries; output = concat of the nodes."""

    def __init__(self, entries: Sequence[Sequence], plan: CellPlan) -> None:
        super().__init__()
        self.pre0, self.pre1 = preprocess(plan)
        self.inputs = [int(i) for _, i in entries]
        self.ops = nn.ModuleList(cell_op(str(op), plan.c, op_stride(plan, int(i))) for op, i in entries)
        self.drop = DropPath()  # no parameters: the state_dict is the one of a cell without it

    def branch(self, k: int, states: list[torch.Tensor]) -> torch.Tensor:
        op, x = self.ops[k], states[self.inputs[k]]
        return x if isinstance(op, nn.Identity) else self.drop(op(x))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for k in range(0, len(self.ops), 2):
            states.append(self.branch(k, states) + self.branch(k + 1, states))
        return torch.cat(states[2:], 1)


class DartsBackbone(nn.Module):
    """Stems and the genotype's cells; ``forward`` gives the (1/16, 1/32) features, ``channels`` their widths."""

    def __init__(self, normal: Sequence[Sequence], reduce: Sequence[Sequence], channels: int, layers: int) -> None:
        super().__init__()
        nodes = len(normal) // 2
        self.stem0, self.stem1 = make_stems(channels)
        self.cells = nn.ModuleList(Cell(reduce if plan.reduction else normal, plan)
                                   for plan in cell_plans(channels, layers, nodes))
        self.at16 = feature16_index(layers)
        self.channels = output_channels(channels, layers, nodes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        f16 = s1
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.at16:
                f16 = s1
        return f16, s1


def load_backbone_weights(net: nn.Module, path: str | os.PathLike) -> None:
    """Load a state dict file into ``net.backbone`` (a built DOTS network's context path), on its device.

    The file holds what ``torch.save(net.backbone.state_dict(), path)`` writes: keys ``stem0.*``,
    ``stem1.*`` and ``cells.<i>.{pre0,pre1,ops.<j>}.*`` of a backbone with the same genotype,
    ``channels`` and ``layers`` (e.g. one pretrained as a classifier's feature extractor). It is read
    with ``torch.load(weights_only=True)``; nothing is downloaded. A file that does not fit raises one
    CheckpointError naming the file and the first missing, unexpected or differently shaped keys.
    """
    backbone = getattr(net, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"{type(net).__name__} has no backbone module; pass a network built by the dots space")
    load_weights(backbone, path, "the DOTS backbone", "it takes net.backbone.state_dict() of a network with "
                 "the same genotype, channels and layers")
