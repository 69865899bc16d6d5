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

from ..choices import CellDag


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
