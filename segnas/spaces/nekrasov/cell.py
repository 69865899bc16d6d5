"""Nekrasov et al.'s cell: one operation on the input, then three branches of two operations, each pair summed.

Positions as in ``encoding``: 0 = input, 1 = o1(input), branch b adds its
two operations' outputs (3b - 1, 3b) and their sum (3b + 1). The cell's
output is the sum of the positions among o1's output and the branch sums
that no branch reads (the paper: "all existing non-sampled summation outputs
inside the cell are summed up"; o1's output counts as one, as in the
authors' released code). The input and the operations' own outputs are never
added in: each already feeds o1 or its branch's sum. The last branch's sum
is read by nobody, so the output is never empty. A sum, not a concatenation,
so every cell has the width of its input whatever its design.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .ops import make_op


def cell_outputs(cell: dict[str, Any]) -> list[int]:
    """Positions summed into the cell's output: o1's output and the branch sums that no branch reads."""
    read = {i for branch in cell["branches"] for i in branch["inputs"]}
    candidates = [1] + [3 * b + 1 for b in range(1, len(cell["branches"]) + 1)]
    return [p for p in candidates if p not in read]


class Cell(nn.Module):
    """The genotype's cell design on ``c`` channels (shape-preserving); separable convs with ``sep_repeats`` rounds."""

    def __init__(self, cell: dict[str, Any], c: int, sep_repeats: int = 2) -> None:
        super().__init__()
        self.first = make_op(cell["op"], c, sep_repeats)
        self.inputs = [tuple(int(i) for i in branch["inputs"]) for branch in cell["branches"]]
        self.ops = nn.ModuleList(nn.ModuleList(make_op(op, c, sep_repeats) for op in branch["ops"])
                                 for branch in cell["branches"])
        self.outputs = cell_outputs(cell)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x, self.first(x)]
        for (a, b), (op_a, op_b) in zip(self.inputs, self.ops):
            ya, yb = op_a(feats[a]), op_b(feats[b])
            feats += [ya, yb, ya + yb]
        out = feats[self.outputs[0]]
        for p in self.outputs[1:]:
            out = out + feats[p]
        return out
