"""Cost rows of several networks at one size: parameters, multiply-adds and latency per backend.

What ``segnas report`` and ``segnas compare`` tabulate. Counts come from :func:`segnas.profile.profile`;
latencies from :func:`segnas.backends.time_networks`: all networks and backends timed together in
interleaved rounds (the fastest round kept, with the thread count), so a slow spell of the machine falls on
one round of all of them, and the latencies compare with ``segnas profile``'s. A network that cannot run at
the size gets its reason in place of its numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import SegnasError, one_line
from .genotype import Genotype
from .spaces import get_space

DEFAULT_BACKENDS = ("eager", "onnxruntime")
ROUNDS = 3  # interleaved timing rounds per network and backend
DEFAULT_CLASSES = 19  # a search whose result does not say its class count is costed as a Cityscapes network


@dataclass
class CostRow:
    """One network's cost at ``size``; ``error`` says why counts are missing, ``latency`` maps backend ->
    {"latency_ms": float | None, "error": str | None, ...}."""

    label: str
    archid: str
    size: tuple[int, int]
    trained: bool
    params: int | None = None
    macs: int | None = None
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None


def untrained_network(genotype: Genotype, num_classes: int, seed: int = 0) -> nn.Module:
    """``genotype``'s inference network with seeded weights (counts and latency do not depend on them); the
    global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_space(genotype.space).build(genotype, num_classes, aux=False).eval()


def cost_rows(networks: Sequence[tuple[str, nn.Module, Genotype, bool]], size: tuple[int, int],
              backends: Sequence[str] = DEFAULT_BACKENDS, latency: bool = True, rounds: int = ROUNDS,
              threads: int | None = None, device: str | torch.device = "cpu") -> list[CostRow]:
    """One row per (label, network, genotype, trained): parameters and multiply-adds at 1 x 3 x ``size``, and
    the latency on each of ``backends`` (none when ``latency`` is False)."""
    from .backends import time_networks
    from .profile import profile

    shape = (1, 3, *size)
    rows, timed = [], []
    for label, net, genotype, trained in networks:
        row = CostRow(label=label, archid=genotype.archid, size=size, trained=trained)
        rows.append(row)
        try:
            counts = profile(net, shape, latency=False)
        except (RuntimeError, ValueError, SegnasError) as e:  # a size the network cannot take
            row.error = f"cannot run at {size[0]}x{size[1]}: {one_line(e)}"
            continue
        row.params, row.macs = int(counts["params"]), int(counts["macs"])
        timed.append((row, net, int(counts["flops"])))
    if latency and backends and timed:
        results = time_networks([net for _, net, _ in timed], shape, tuple(backends), rounds, threads, device,
                                [f for _, _, f in timed])
        for (row, _, _), result in zip(timed, results):
            row.latency = result
    return rows


__all__ = ["DEFAULT_BACKENDS", "DEFAULT_CLASSES", "ROUNDS", "CostRow", "cost_rows", "untrained_network"]
