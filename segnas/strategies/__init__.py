"""Search strategies: each decides which architecture, on any space that offers what it needs.

A strategy is ``run(method, cfg, out, resume=..., stop_after=..., progress=...,
resume_overrides=...) -> result``; it reaches the space only through the
method record's contract (a supernet problem, or ``space.sample``), never by
importing a particular space. ``STRATEGIES`` names them for the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import dots, multi_trial, random_search
from .differentiable import BilevelProblem, run_differentiable

STRATEGIES: dict[str, Callable[..., dict[str, Any]]] = {"differentiable": run_differentiable,
                                                        "dots": dots.run_dots,
                                                        "random": multi_trial.run_random,
                                                        "ppo": multi_trial.run_ppo}
# one-shot strategies (one supernet trained in this run: they run under torchrun); the others train trials
ONE_SHOT = frozenset({"differentiable", "dots"})
# strategies that search a space's supernet problem through their own wrapper of it (rebuilt to read a run)
WRAPS: dict[str, Callable[..., Any]] = {"dots": dots.DotsProblem}
# what a space must offer for each strategy (said when a method does not accept one)
NEEDS: dict[str, str] = {"differentiable": "a supernet (a continuous relaxation of its choices)",
                         "dots": "a supernet whose cells are DAGs of mixed edges, each node choosing two inputs",
                         "random": "random sampling of its architectures",
                         "ppo": "architectures written as integer choices (choice_spec / decode)"}
# a strategy's own config sections, by name (``<name>.*``; trials through an executor also read ``executor.*``)
_SECTIONS: dict[str, dict[str, type]] = {
    "dots": {"dots": dots.DotsConfig},
    "random": {"random": random_search.RandomConfig},
    "ppo": {"ppo": multi_trial.PPOConfig, "executor": multi_trial.ExecutorConfig}}
# sections a strategy adds for a method with its own staged trial (the random baseline runs it through executors)
_STAGED: dict[str, dict[str, type]] = {"random": {"executor": multi_trial.ExecutorConfig}}
_PRESETS: dict[str, dict[str, dict[str, Any]]] = {"dots": dots.PRESETS, "random": random_search.PRESETS,
                                                   "ppo": multi_trial.PRESETS}
SECTION_NAMES = frozenset(n for table in (_SECTIONS, _STAGED) for d in table.values() for n in d)


def strategy_sections(name: str, staged: bool = False) -> dict[str, Any]:
    """Fresh config sections of strategy ``name`` (``staged``: for a method with its own staged trial)."""
    return {key: cls() for key, cls in {**_SECTIONS.get(name, {}), **(_STAGED.get(name, {}) if staged else {})}.items()}


def strategy_presets(name: str) -> dict[str, dict[str, Any]]:
    """Strategy ``name``'s settings per preset (merged over the method's)."""
    return _PRESETS.get(name, {})


__all__ = ["NEEDS", "ONE_SHOT", "SECTION_NAMES", "STRATEGIES", "WRAPS", "BilevelProblem", "run_differentiable", "strategy_presets", "strategy_sections"]
