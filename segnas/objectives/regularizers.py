"""Regularizers on architecture weights (DCNAS supplement Sec. 1.4): they push a relaxation towards a decision.

* :func:`entropy` (L_alpha): the summed entropy of softmax rows, low when each
  row is near one-hot, so the argmax decoding loses little.
* :func:`gate_entropy` (L_beta): sum of ln(1 + e^-b) / (1 + e^-b) over sigmoid
  gates, i.e. -p ln p with p = sigmoid(b): zero at p = 0 and p = 1, largest at
  p = 1/e (b = -ln(e - 1)); it pushes each gate to a side.
* :func:`indegree_penalty` (L_con): per node, max(1 - d, 0) + max(d - k, 0)
  where d is the summed gates into the node; zero while 1 <= d <= k.

Each is a sum over rows, gates or nodes (as the paper writes them), so its
size grows with the supernet; its weight in the loss is the method's setting.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def entropy(weights: torch.Tensor) -> torch.Tensor:
    """-sum w ln w over every row of ``weights`` (probabilities on the last dimension; 0 ln 0 = 0)."""
    return -(weights * torch.log(weights.clamp_min(1e-30))).sum()


def gate_entropy(logits: torch.Tensor) -> torch.Tensor:
    """sum ln(1 + e^-b) / (1 + e^-b) over the gate logits ``b`` (softplus form: finite for any b)."""
    return (F.softplus(-logits) * torch.sigmoid(logits)).sum()


def indegree(gates: torch.Tensor, target: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """Summed gate of the connections into each node: ``target[i]`` is the node gate i enters."""
    return gates.new_zeros(n_nodes).index_add(0, target, gates)


def indegree_penalty(gates: torch.Tensor, target: torch.Tensor, n_nodes: int, k: float) -> torch.Tensor:
    """sum over nodes of max(1 - d, 0) + max(d - k, 0), d = :func:`indegree` (between 1 and k: no penalty)."""
    d = indegree(gates, target, n_nodes)
    return (F.relu(1.0 - d) + F.relu(d - k)).sum()


__all__ = ["entropy", "gate_entropy", "indegree", "indegree_penalty"]
