"""DCNAS' supernet: every node, every connection, mixture layers, alpha and beta (main paper Sec. 3).

Node (l, j) takes all 4 l nodes of earlier layers (the stem's four outputs
are layer 0) through its own shape-alignment layers and sums them weighted
by sigmoid(beta) of each connection (``network.Fusion``; ``fusion = mean``
divides by the count of candidates). The sum passes the node's mixture layer:
a ``MixedOp`` over the operators, softmax(alpha) weighted, with partial-channel
sampling (``partial`` = 1/r: the operators see the first C/partial channels,
the rest bypass, and a channel shuffle of ``partial`` groups follows; 1 = no
sampling). Stem and head are the derived network's (``network``), so a
derived network differs only in what it keeps.

alpha: one softmax row per node (node order of ``graph``); beta: one sigmoid
gate per candidate connection, flat in ``graph``'s connection order; the
buffer ``target`` names the node each gate enters (for L_con's in-degrees).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...choices import ArchParameters, MixedOp
from ...ops import PARAMETER_FREE
from ..problem import SupernetModule
from . import op_list
from .graph import N_SCALES, Node, connections, n_connections, node_index, node_name, nodes, offset, sources
from .network import Fusion, Head, Stem, node_channels, node_key, node_op


def mixture(ops: list[str], c: int, partial: int = 1, act: str = "hswish") -> MixedOp:
    """Every operator on c / partial channels, mixed by alpha (``none`` is no module: left out of the sum)."""
    if c % partial:
        raise ValueError(f"partial channel sampling 1/{partial} needs channels divisible by {partial}, got {c}")
    return MixedOp([None if op == "none" else node_op(op, c // partial, act) for op in ops], partial=partial)


class DCNASSupernet(SupernetModule):
    """The continuous relaxation of the densely connected grid (weights, and ``arch`` = alpha, beta)."""

    def __init__(self, args: dict[str, Any], num_classes: int, partial: int = 1) -> None:
        super().__init__()
        self.layers, self.ops = int(args["layers"]), op_list(args)
        f = int(args["filter_multiplier"])
        self.stem = Stem(int(args["stem_channels"]), f)
        self.fusions, self.mixed = nn.ModuleDict(), nn.ModuleDict()
        for node in nodes(self.layers):
            key = node_key(node)
            self.fusions[key] = Fusion(sources(node[0]), node[1], f, args["down_align"], args["fusion"])
            self.mixed[key] = mixture(self.ops, node_channels(f, node[1]), partial, args["activation"])
        self.head = Head(f, int(args["head_channels"]), num_classes)
        free = tuple(k for k, op in enumerate(self.ops) if op in PARAMETER_FREE)
        groups = {"parameter_free": free, "parametric": tuple(k for k in range(len(self.ops)) if k not in free)}
        conns = connections(self.layers)
        self.arch = ArchParameters()
        self.arch.declare("alpha", 1e-3 * torch.randn(N_SCALES * self.layers, len(self.ops)), "softmax", self.ops,
                          groups, "operator of each node's mixture layer, rows = nodes by layer, then scale")
        self.arch.declare("beta", 1e-3 * torch.randn(n_connections(self.layers)), "sigmoid",
                          [f"{node_name(t)}<-{node_name(s)}" for t, s in conns],
                          where="one gate per candidate connection, by target node, then source")
        self.register_buffer("target", torch.tensor([node_index(*t) for t, _ in conns]), persistent=False)
        # hard operator weights and gates of one architecture, used instead of alpha and beta while set
        # (``DCNASSearch.fixed``); the parameters themselves are never touched
        self.fixed: dict[str, Any] | None = None

    @property
    def n_nodes(self) -> int:
        return N_SCALES * self.layers

    # -- architecture weights ---------------------------------------------------------
    def alpha_weights(self) -> torch.Tensor:
        """softmax(alpha), or one architecture's one-hot rows while one is fixed."""
        return self.arch.weights("alpha") if self.fixed is None else self.fixed["alpha"]

    def gates(self) -> torch.Tensor:
        """sigmoid(beta): each connection's weight (0 or 1 while an architecture is fixed)."""
        return self.arch.weights("beta") if self.fixed is None else self.fixed["gates"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.stem(x)
        sizes = [t.shape[-2:] for t in stem]
        alpha, gates = self.alpha_weights(), self.gates()
        out: dict[Node, torch.Tensor] = {(0, j): t for j, t in enumerate(stem)}
        plan = None if self.fixed is None else self.fixed.get("plan")
        if plan is not None:  # one architecture: only its nodes, kept connections and operators run
            for node, (op, kept) in plan.items():
                key, start = node_key(node), offset(*node)
                fused = self.fusions[key](out, sizes[node[1]], gates[start: start + 4 * node[0]], only=kept)
                out[node] = self.mixed[key](fused, alpha[node_index(*node)], only=op)
            return self.head([out[(self.layers, j)] for j in range(N_SCALES)], x.shape[-2:])
        for node in nodes(self.layers):
            key, start = node_key(node), offset(*node)
            fused = self.fusions[key](out, sizes[node[1]], gates[start: start + 4 * node[0]])
            out[node] = self.mixed[key](fused, alpha[node_index(*node)])
        return self.head([out[(self.layers, j)] for j in range(N_SCALES)], x.shape[-2:])
