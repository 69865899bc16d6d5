"""Search strategies: they decide which architecture, whatever space offers the primitives they need."""

from .differentiable import BilevelProblem, run_search

__all__ = ["BilevelProblem", "run_search"]
