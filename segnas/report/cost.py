"""The cost table of a report: parameters, multiply-adds and latency per backend of each network, at one size.

Counts come from :func:`segnas.profile.profile`; latencies from :func:`segnas.backends.time_backends` (the
fastest of interleaved rounds on this machine, with its thread count), so a report's latencies compare with
``segnas profile``'s. A network that cannot run at the size gets its reason in place of its numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import SegnasError
from ..genotype import Genotype
from ..spaces import get_space

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


def cost_row(label: str, net: nn.Module, genotype: Genotype, size: tuple[int, int], trained: bool,
             backends: Sequence[str] = DEFAULT_BACKENDS, latency: bool = True) -> CostRow:
    """Parameters and multiply-adds of ``net`` at 1 x 3 x ``size``, and its latency on each of ``backends``
    (none when ``latency`` is False)."""
    from ..profile import profile

    row = CostRow(label=label, archid=genotype.archid, size=size, trained=trained)
    shape = (1, 3, *size)
    try:
        counts = profile(net, shape, latency=False)
    except (RuntimeError, ValueError, SegnasError) as e:  # a size the network cannot take
        row.error = f"cannot run at {size[0]}x{size[1]}: {_first_line(e)}"
        return row
    row.params, row.macs = int(counts["params"]), int(counts["macs"])
    if latency and backends:
        from ..backends import time_backends

        row.latency = time_backends(net, shape, backends=tuple(backends), rounds=ROUNDS, threads=None,
                                    flops=int(counts["flops"]))
    return row


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


__all__ = ["DEFAULT_BACKENDS", "DEFAULT_CLASSES", "ROUNDS", "CostRow", "cost_row", "untrained_network"]
