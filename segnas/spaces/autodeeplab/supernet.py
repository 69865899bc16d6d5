"""Auto-DeepLab's supernet: every cell of the L-layer trellis, mixed operators, alpha and beta (paper Sec. 4.1).

Node (l, j) is layer l at scale index j (0 = 1/4 .. 3 = 1/32); it exists when
j <= l + 1 (the stem ends at 1/4, each layer moves one scale at most). Its
output is Eq. (6): the beta-weighted sum of one cell per incoming transition
(from j-1 down, from j, from j+1 up), each cell with its own weights and the
transition of the paper (stride-2 3x3 conv / 1x1 conv / bilinear up + 1x1
conv); h_{l-2} is the same scale at layer l-2 (the closest existing scale
while that node does not exist; the stem for l < 2), resized and reduced by
a 1x1 conv once per node and shared by the node's cells. The stem is the
paper's search stem (two stride-2 3x3 convs); h_{l-2} of layer 0 is its 1/2
output.

alpha (one row per cell edge, one column per operator) is shared by every
cell; beta[l, j] holds the outgoing logits (down, same, up) of the node
(l-1, j) (for l = 0: the stem), a softmax over the valid ones (Eq. 7).
A mixed edge (``segnas.choices.MixedOp``) sums its weighted operators one by
one (``none`` is left out), so no stacked copy of all operator outputs is kept.
At layer L each scale has the simplified ASPP (1x1, one 3x3 at rate 96/s,
image pooling; B * F * s / 4 filters per branch) and a classifier; the
upsampled logits are summed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...choices import ArchParameters, InputChoice, MixedOp, choice_weights
from ...ops import ASPP, PARAMETER_FREE, cell_op, upsample_to
from ..cells import cell_edges, sum_edges
from ..problem import SupernetModule
from .network import DIRECTIONS, SCALES, Resample1x1, block_channels, make_search_stem, scale_sizes, transition

N_SCALES = len(SCALES)


def node_exists(layer: int, j: int) -> bool:
    """Whether scale index ``j`` is reachable at ``layer`` (layer -1 is the stem, at 1/4 only)."""
    return 0 <= j < N_SCALES and j <= layer + 1


def source_of(direction: int, j: int) -> int:
    """Scale index a transition ``direction`` (0 down, 1 same, 2 up) into scale ``j`` comes from."""
    return j - 1 + direction


def beta_mask(layers: int) -> torch.Tensor:
    """valid[l, js, d]: node (l-1, js) exists and its move in direction d lands on an existing node of layer l."""
    valid = torch.zeros(layers, N_SCALES, 3, dtype=torch.bool)
    for layer in range(layers):
        for js in range(N_SCALES):
            if not node_exists(layer - 1, js) or (layer == 0 and js != 0):
                continue
            for d, target in enumerate((js + 1, js, js - 1)):
                valid[layer, js, d] = node_exists(layer, target)
    return valid


def path_moves(path: Sequence[int], layers: int) -> torch.Tensor:
    """beta-shaped weights of one path: 1 for its move into each layer, 0 for every other move."""
    beta = torch.zeros(layers, N_SCALES, 3)
    prev = 0  # the stem, at 1/4
    for layer, j in enumerate(path):
        beta[layer, prev, 1 - (j - prev)] = 1.0  # direction 0 = down (to prev + 1), 1 = same, 2 = up
        prev = j
    return beta


def mixed_edge(ops: Sequence[str], c: int) -> MixedOp:
    """Every cell operator on ``c`` channels, mixed by alpha (``none`` is no module: left out of the sum)."""
    return MixedOp([None if op == "none" else cell_op(op, c) for op in ops])


class MixedCell(nn.Module):
    """A cell with every edge mixed: block k = sum over states i < k + 2 of a mixed edge of state i."""

    def __init__(self, ops: Sequence[str], blocks: int, c: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(mixed_edge(ops, c) for _ in cell_edges(blocks))
        self.blocks = blocks

    def forward(self, h1: torch.Tensor, h2: torch.Tensor, weights: torch.Tensor,
                active: list[tuple[int, ...]] | None = None) -> torch.Tensor:
        """``active[e]``: the operators of edge e that can carry weight (None: all); only those run."""
        return torch.cat(sum_edges(self.edges, [h1, h2], self.blocks, weights, active), 1)


class Node(nn.Module):
    """Node (l, j): a (transition, mixed cell) pair per incoming direction and the shared h_{l-2} reduction."""

    def __init__(self, directions: dict[int, int], c_prev2: int, ops: Sequence[str], blocks: int, c: int) -> None:
        super().__init__()
        self.reduce = Resample1x1(c_prev2, c)
        self.transitions = nn.ModuleDict({DIRECTIONS[d]: transition(DIRECTIONS[d], c_in, c)
                                          for d, c_in in directions.items()})
        self.cells = nn.ModuleDict({DIRECTIONS[d]: MixedCell(ops, blocks, c) for d in directions})


class AutoDeepLabSupernet(SupernetModule):
    """The continuous relaxation of the whole hierarchical space (weights and ``arch`` = alpha, beta)."""

    def __init__(self, args: dict[str, Any], num_classes: int, path: Sequence[int] | None = None) -> None:
        super().__init__()
        self.layers, self.blocks = int(args["layers"]), int(args["blocks"])
        self.ops = list(args["ops"])
        f, nb, stem = int(args["filter_multiplier"]), self.blocks, list(args["stem"])
        self.stem = make_search_stem(stem)
        out_c = {(-2, -1): stem[1], (-1, 0): stem[2]}  # (layer, scale index) -> channels
        self.nodes = nn.ModuleDict()
        for layer in range(self.layers):
            for j in range(N_SCALES):
                if not node_exists(layer, j):
                    continue
                c = block_channels(f, j)
                directions = {d: out_c[(layer - 1, source_of(d, j))] for d in range(3)
                              if (layer - 1, source_of(d, j)) in out_c}
                self.nodes[f"{layer}_{j}"] = Node(directions, out_c[self.prev2(layer, j)], self.ops, nb, c)
                out_c[(layer, j)] = nb * c
        last = self.layers - 1
        self.heads = nn.ModuleDict()
        for j in range(N_SCALES):
            if node_exists(last, j):
                c = nb * block_channels(f, j)
                self.heads[str(j)] = nn.Sequential(ASPP(c, c, [96 // SCALES[j]]), nn.Conv2d(c, num_classes, 1))
        n_edges = len(cell_edges(nb))
        free = tuple(k for k, op in enumerate(self.ops) if op in PARAMETER_FREE)
        self.arch = ArchParameters()
        self.arch.declare("alpha", 1e-3 * torch.randn(n_edges, len(self.ops)), "softmax", self.ops,
                          {"parameter_free": free, "parametric": tuple(k for k in range(len(self.ops)) if k not in free)},
                          "operator of each cell edge (shared by every cell), rows = edges block by block")
        self.arch.declare("beta", 1e-3 * torch.randn(self.layers, N_SCALES, 3), "softmax", DIRECTIONS,
                          where="outgoing move of node (l-1, j) into layer l, rows = (layer, scale index)",
                          mask=beta_mask(self.layers))
        self.register_buffer("valid", beta_mask(self.layers), persistent=False)
        # a network level fixed to one path (only the cell is searched): its moves replace beta and only
        # its nodes are computed (what the full trellis computes with those moves, the rest being zero)
        self.path = None if path is None else [int(j) for j in path]
        self.register_buffer("path_beta", path_moves(self.path, self.layers) if self.path is not None else None,
                             persistent=False)
        self.merge = InputChoice()
        # one architecture's hard edge weights, moves and head, used instead of alpha, beta and every head
        # while set (``AutoDeepLabSearch.fixed``); the parameters themselves are never touched
        self.fixed: dict[str, Any] | None = None

    @staticmethod
    def prev2(layer: int, j: int) -> tuple[int, int]:
        """(layer, scale index) feeding h_{l-2} of node (layer, j)."""
        if layer == 0:
            return (-2, -1)
        if layer == 1:
            return (-1, 0)
        return (layer - 2, min(j, layer - 1))

    # -- architecture weights ---------------------------------------------------------
    def alpha_weights(self) -> torch.Tensor:
        """softmax(alpha), or one cell's hard edge weights while an architecture is fixed."""
        return self.arch.weights("alpha") if self.fixed is None else self.fixed["alpha"]

    def beta_weights(self) -> torch.Tensor:
        """Outgoing transition probabilities; invalid moves are exactly 0 (the mask as a buffer on the
        supernet's device, not copied there every step). One path's moves while an architecture is fixed."""
        if self.fixed is not None:
            return self.fixed["beta"]
        if self.path_beta is not None:
            return self.path_beta
        return choice_weights(self.arch["beta"], "softmax", self.valid)

    def computed_path(self) -> list[int] | None:
        """The one path the forward pass computes (a fixed architecture's or the fixed network level), if any."""
        return self.fixed["path"] if self.fixed is not None else self.path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        mid = self.stem[0](x)
        stem = self.stem[1](mid)
        sizes = scale_sizes(stem.shape[-2:])
        alpha, beta = self.alpha_weights(), self.beta_weights()
        active = self.arch.active("alpha") if self.fixed is None else None
        path = self.computed_path()
        out: dict[tuple[int, int], torch.Tensor] = {(-2, -1): mid, (-1, 0): stem}
        for layer in range(self.layers):
            for j in range(N_SCALES):
                if not node_exists(layer, j) or (path is not None and j != path[layer]):
                    continue
                node = self.nodes[f"{layer}_{j}"]
                prev2 = out.get(self.prev2(layer, j))
                if prev2 is None:  # off the computed path: the node the trellis reads there is zero
                    prev2 = stem.new_zeros(stem.shape[0], node.reduce.conv[1].in_channels, *sizes[j])
                h2 = node.reduce(prev2, sizes[j])
                inputs, weights = [], []
                for name, trans in node.transitions.items():
                    d = DIRECTIONS.index(name)
                    js = source_of(d, j)
                    if (layer - 1, js) not in out:
                        continue
                    inputs.append(node.cells[name](trans(out[(layer - 1, js)], sizes[j]), h2, alpha, active))
                    weights.append(beta[layer, js, d])
                out[(layer, j)] = self.merge(inputs, weights)
            for key in [k for k in out if k[0] == layer - 2]:  # free what no later node reads
                del out[key]
        logits = None
        for j, head in self.heads.items():
            if path is not None and int(j) != path[-1]:
                continue  # a fixed path ends at one scale: only its head predicts
            y = upsample_to(head(out[(self.layers - 1, int(j))]), size)
            logits = y if logits is None else logits + y
        return logits
