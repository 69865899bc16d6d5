"""Search strategies: each decides which architecture, on any space that offers what it needs.

A strategy is ``run(method, cfg, out, resume=..., stop_after=..., progress=...,
resume_overrides=...) -> result``; it reaches the space only through the
method record's contract (a supernet problem, or ``space.sample``), never by
importing a particular space. ``STRATEGIES`` names them for the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .differentiable import BilevelProblem, run_differentiable

STRATEGIES: dict[str, Callable[..., dict[str, Any]]] = {"differentiable": run_differentiable}
_SECTIONS: dict[str, type] = {}  # a strategy's own config section, by strategy name


def strategy_sections(name: str) -> dict[str, Any]:
    """Fresh config sections of strategy ``name`` (its own options, ``<name>.*``)."""
    return {name: _SECTIONS[name]()} if name in _SECTIONS else {}


__all__ = ["STRATEGIES", "BilevelProblem", "run_differentiable", "strategy_sections"]
