"""DARTS-style cells, shared by the spaces built of them (Auto-DeepLab's, DOTS' backbone).

Block (node) k of a cell sums one edge from each of its k + 2 input states
(0 and 1 the cell's inputs, i + 2 block i); the edges are the rows of the
cell's alpha, block by block. ``cell_dag`` describes that layout to a
strategy that chooses each block's pair of inputs (``segnas.choices.CellDag``);
``decode_cell`` is DARTS' derivation from the edges' operator weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..choices import CellDag
from ..errors import GenotypeError
from ..genotype import Decision


def check_ops(ops: object, allowed: Sequence[str], source: str) -> None:
    """A GenotypeError naming ``space_args.ops`` unless it lists distinct names of ``allowed``, one not ``none``."""
    if not isinstance(ops, list) or not ops or any(op not in allowed for op in ops) or len(set(ops)) != len(ops):
        raise GenotypeError(f"{source}: field 'space_args.ops' must be a list of distinct names from {list(allowed)}")
    if not [op for op in ops if op != "none"]:
        raise GenotypeError(f"{source}: field 'space_args.ops' needs an operator besides 'none'")


def block_decisions(at: str, k: int, ops: Sequence[str], states: str) -> list[Decision]:
    """The four integers of block ``k`` (named ``at``): ``input0, op0, input1, op1`` over its k + 2 states."""
    no_none = f"not {list(ops).index('none')} ('none')" if "none" in ops else ""
    return [Decision(f"{at}.input0", k + 2, states), Decision(f"{at}.op0", len(ops), no_none, "op"),
            Decision(f"{at}.input1", k + 2, f"distinct from {at}.input0; {states}"),
            Decision(f"{at}.op1", len(ops), no_none, "op")]


def read_block(vals: Sequence[int], pos: int, spec: Sequence[Decision], ops: Sequence[str],
               k: int) -> tuple[int, str, int, str]:
    """Block ``k``'s (input0, op0, input1, op1) from ``vals[pos:pos + 4]``; a GenotypeError names the position
    of a repeated input or a ``none`` operator."""
    i0, o0, i1, o1 = vals[pos:pos + 4]
    if i0 == i1:
        raise GenotypeError(f"choices[{pos + 2}] ({spec[pos + 2].name}) is {i1}, the same state as "
                            f"{spec[pos].name}; choose a distinct one from 0..{k + 1}")
    for at in (pos + 1, pos + 3):
        if ops[vals[at]] == "none":
            raise GenotypeError(f"choices[{at}] ({spec[at].name}) is {vals[at]} = 'none', which a genotype "
                                f"never contains; choose one of {[j for j, op in enumerate(ops) if op != 'none']}")
    return i0, ops[o0], i1, ops[o1]


def sum_edges(edges: nn.ModuleList, states: list[torch.Tensor], blocks: int, weights: torch.Tensor,
              active: Sequence[Sequence[int]] | None = None) -> list[torch.Tensor]:
    """The blocks of a mixed cell: block k sums mixed edge e (``weights[e]``) of each state i < k + 2,
    ``active[e]`` the operators that run (None: all; an edge with none adds nothing). Returns the blocks."""
    states, e = list(states), 0
    for k in range(blocks):
        out = None
        for i in range(k + 2):
            if active is None or active[e]:
                y = edges[e](states[i], weights[e], only=None if active is None else active[e])
                out = y if out is None else out + y
            e += 1
        if out is None:
            raise ValueError(f"block {k} of a mixed cell has no active edge")
        states.append(out)
    return states[2:]


def cell_edges(blocks: int) -> list[tuple[int, int]]:
    """(block, input state) of every edge, block by block: block k has k + 2 inputs."""
    return [(k, i) for k in range(blocks) for i in range(k + 2)]


def cell_dag(alpha: str, blocks: int) -> CellDag:
    """The cell whose edges are the rows of parameter ``alpha``, as a DAG of ``blocks`` nodes."""
    edges = cell_edges(blocks)
    return CellDag(alpha, tuple(tuple((e, i) for e, (b, i) in enumerate(edges) if b == k) for k in range(blocks)))


def decode_cell(weights: np.ndarray, ops: Sequence[str], blocks: int) -> list[dict]:
    """Top-2 predecessors per block by the strongest non-``none`` operator, then that best operator.

    ``weights``: the edges' operator weights (softmaxed alpha), one row per edge in ``cell_edges`` order
    (block k has edges from states 0 .. k+1). Ties go to the lower index.
    The block's inputs are listed strongest first.
    """
    real = [k for k, op in enumerate(ops) if op != "none"]
    cell, e = [], 0
    for k in range(blocks):
        rows = weights[e: e + k + 2][:, real]
        e += k + 2
        strength = rows.max(axis=1)
        order = sorted(range(k + 2), key=lambda i: (-strength[i], i))[:2]
        cell.append({"inputs": [int(i) for i in order],
                     "ops": [ops[real[int(np.argmax(rows[i]))]] for i in order]})
    return cell
