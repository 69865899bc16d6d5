"""The DOTS space's supernet: the same BiSeNet, its backbone's cells mixed (DARTS' continuous relaxation).

Every cell of the backbone (``backbone``: same stems, widths, preprocessing
and reductions as a child) has one mixed edge per (node k, state i < k + 2):
a ``segnas.choices.MixedOp`` over the operators (``none`` is no module: left
out of the sum). Pooling operators pass a BatchNorm without affine
parameters in the supernet only, as in DARTS' search. Node k sums its
edges; the cell's output concatenates the nodes. ``alpha_normal`` and
``alpha_reduce`` (one row per edge, node by node; one column per operator,
declared with the parameter-free / parametric groups DOTS splits them by)
are shared by all normal and all reduction cells. Each forward pass reads
the edge weights through ``arch.weights`` and the operators a strategy's
relaxation leaves active through ``arch.active``, so DOTS' grouped and
topology relaxations apply without the supernet knowing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...choices import ArchParameters, MixedOp
from ...ops import OP_FAMILY, PARAMETER_FREE, cell_op
from ..cells import cell_edges, sum_edges
from ..problem import SupernetModule
from .backbone import CellPlan, cell_plans, feature16_index, make_stems, op_stride, output_channels, preprocess
from .bisenet import BiSeNet

ALPHAS = ("alpha_normal", "alpha_reduce")


def search_op(name: str, c: int, stride: int) -> nn.Module:
    """A cell operator as the supernet runs it: pooling followed by a BatchNorm without affine (DARTS' search)."""
    op = cell_op(name, c, stride)
    return nn.Sequential(op, nn.BatchNorm2d(c, affine=False)) if OP_FAMILY.get(name) == "pooling" else op


class MixedCell(nn.Module):
    """A cell with every edge mixed: node k = sum over states i < k + 2 of a mixed edge of state i."""

    def __init__(self, ops: Sequence[str], nodes: int, plan: CellPlan) -> None:
        super().__init__()
        self.pre0, self.pre1 = preprocess(plan)
        self.edges = nn.ModuleList(MixedOp([None if op == "none" else search_op(op, plan.c, op_stride(plan, i))
                                            for op in ops]) for _, i in cell_edges(nodes))
        self.nodes = nodes

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                active: list[tuple[int, ...]] | None = None) -> torch.Tensor:
        """``active[e]``: the operators of edge e that can carry weight (None: all); only those run, and an
        edge with none is skipped (every node keeps at least one edge)."""
        return torch.cat(sum_edges(self.edges, [self.pre0(s0), self.pre1(s1)], self.nodes, weights, active), 1)


class MixedBackbone(nn.Module):
    """The child's stems and cell layout with mixed cells; ``forward`` takes each cell kind's edge weights."""

    def __init__(self, ops: Sequence[str], channels: int, layers: int, nodes: int) -> None:
        super().__init__()
        self.stem0, self.stem1 = make_stems(channels)
        plans = cell_plans(channels, layers, nodes)
        self.kinds = [ALPHAS[1] if plan.reduction else ALPHAS[0] for plan in plans]
        self.cells = nn.ModuleList(MixedCell(ops, nodes, plan) for plan in plans)
        self.at16 = feature16_index(layers)
        self.channels = output_channels(channels, layers, nodes)

    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor],
                active: dict[str, list[tuple[int, ...]] | None]) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        f16 = s1
        for i, (kind, cell) in enumerate(zip(self.kinds, self.cells)):
            s0, s1 = s1, cell(s0, s1, weights[kind], active[kind])
            if i == self.at16:
                f16 = s1
        return f16, s1


class DotsSupernet(BiSeNet, SupernetModule):
    """BiSeNet with the mixed backbone and ``arch`` = alpha_normal, alpha_reduce (auxiliary heads always built)."""

    def __init__(self, args: dict[str, Any], num_classes: int) -> None:
        ops, nodes = list(args["ops"]), int(args["nodes"])
        backbone = MixedBackbone(ops, int(args["channels"]), int(args["layers"]), nodes)
        super().__init__(backbone, num_classes, args["spatial_channels"], args["context_channels"],
                         args["fusion_channels"], args["head_channels"], aux=True)
        self.ops, self.nodes = ops, nodes
        n_edges = len(cell_edges(self.nodes))
        free = tuple(k for k, op in enumerate(self.ops) if op in PARAMETER_FREE)
        groups = {"parameter_free": free, "parametric": tuple(k for k in range(len(self.ops)) if k not in free)}
        self.arch = ArchParameters()
        # one architecture's one-hot edge weights and its kept operators, per alpha, used instead of the
        # relaxation while set (``DotsSearch.fixed``); the parameters themselves are never touched
        self.fixed: dict[str, tuple[torch.Tensor, list[tuple[int, ...]]]] | None = None
        for name, kind in zip(ALPHAS, ("normal", "reduction")):
            self.arch.declare(name, 1e-3 * torch.randn(n_edges, len(self.ops)), "softmax", self.ops, groups,
                              f"operator of each edge of the {kind} cells (shared by all), rows = edges node by node")

    def context_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixed backbone under the current relaxation of alpha (a strategy's, or the softmax), or
        computing one fixed architecture's cells."""
        if self.fixed is not None:
            return self.backbone(x, {name: w for name, (w, _) in self.fixed.items()},
                                 {name: a for name, (_, a) in self.fixed.items()})
        return self.backbone(x, {name: self.arch.weights(name) for name in ALPHAS},
                             {name: self.arch.active(name) for name in ALPHAS})
