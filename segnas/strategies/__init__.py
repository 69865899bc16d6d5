"""Search strategies: each decides which architecture, on any space that offers what it needs.

A strategy is ``run(method, cfg, out, resume=..., stop_after=..., progress=...,
resume_overrides=...) -> result``; it reaches the space only through the
method record's contract (a supernet problem, or ``space.sample``), never by
importing a particular space. ``STRATEGIES`` names them for the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import random_search
from .differentiable import BilevelProblem, run_differentiable

STRATEGIES: dict[str, Callable[..., dict[str, Any]]] = {"differentiable": run_differentiable,
                                                        "random": random_search.run_random}
_SECTIONS: dict[str, type] = {"random": random_search.RandomConfig}  # a strategy's own config section, by name
_PRESETS: dict[str, dict[str, dict[str, Any]]] = {"random": random_search.PRESETS}


def strategy_sections(name: str) -> dict[str, Any]:
    """Fresh config sections of strategy ``name`` (its own options, ``<name>.*``)."""
    return {name: _SECTIONS[name]()} if name in _SECTIONS else {}


def strategy_presets(name: str) -> dict[str, dict[str, Any]]:
    """Strategy ``name``'s settings per preset (merged over the method's)."""
    return _PRESETS.get(name, {})


__all__ = ["STRATEGIES", "BilevelProblem", "run_differentiable", "strategy_presets", "strategy_sections"]
