"""Decoding DCNAS' discrete architecture from alpha and beta (supplement Sec. 1.3, Algorithm 1).

Operators: per node the argmax of its alpha row; ``none`` never appears in a
genotype, so where it leads the best other operator is taken. Connections: a
breadth-first search backwards from the last layer's four nodes keeps every
candidate connection with beta >= 0 into a visited node and visits the nodes
those connections come from (the stem ends a branch). Two rules segnas adds
where Algorithm 1 is silent: a visited node whose candidate connections all
have beta < 0 keeps its strongest one (the largest beta; ties to the earlier
source), so no node is left without an input; and nodes the search never
visits (no kept connection leads from them towards the head) are dropped.
Every kept node therefore reaches the head and is reached from the stem.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .graph import SCALES, Node, node_index, offset, reached, sources


def kept_inputs(beta: np.ndarray, layer: int, j: int) -> list[Node]:
    """Node (layer, j)'s kept inputs: beta >= 0, or else the single strongest connection."""
    cand = sources(layer)
    row = beta[offset(layer, j): offset(layer, j) + len(cand)]
    kept = [src for src, b in zip(cand, row) if b >= 0]
    return kept or [cand[int(np.argmax(row))]]


def best_op(weights: np.ndarray, ops: Sequence[str]) -> str:
    """The operator of largest weight that is not ``none`` (ties to the earlier one)."""
    real = [k for k, op in enumerate(ops) if op != "none"]
    return ops[real[int(np.argmax(weights[real]))]]


def decode(alpha: np.ndarray, beta: np.ndarray, ops: Sequence[str], layers: int) -> list[dict]:
    """Genotype nodes from softmaxed ``alpha`` (one row per node) and the flat beta logits."""
    kept = reached(lambda layer, j: kept_inputs(beta, layer, j), layers)
    return [{"layer": layer, "scale": SCALES[j], "op": best_op(alpha[node_index(layer, j)], ops),
             "inputs": [[src, SCALES[js]] for src, js in kept[(layer, j)]]} for layer, j in kept]


def kept_weights(gates: np.ndarray, nodes: Sequence[dict]) -> list[list[float]]:
    """sigmoid(beta) of each kept connection, aligned with ``nodes[i]["inputs"]`` (for drawings)."""
    index = {s: j for j, s in enumerate(SCALES)}
    out = []
    for node in nodes:
        layer, j = node["layer"], index[node["scale"]]
        cand = sources(layer)
        out.append([round(float(gates[offset(layer, j) + cand.index((src, index[s]))]), 4)
                    for src, s in node["inputs"]])
    return out
