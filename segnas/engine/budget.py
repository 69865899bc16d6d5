"""A search's wall-clock budget: seconds of search on this device, kept across ``--resume``.

``search.time_budget`` (seconds, 0 = none) caps a search's time: the loops
ask :meth:`TimeBudget.over` at step (one-shot) or trial (multi-trial)
boundaries and, once it is spent, stop training and decode from the state
they reached, as if their epochs or trials were done. The elapsed time counts
from the search's start (data halves, a FasterSeg latency table built on the
way included) and is saved in every checkpoint, so a resumed search continues
the same budget instead of starting a new one. Every loop reads the time
through :func:`clock` alone, so a test can replace it.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from ..errors import ConfigError
from . import distributed


def clock() -> float:
    """Seconds on a monotonic clock (the one every search loop's budget reads)."""
    return time.monotonic()


class TimeBudget:
    """``seconds`` of search (0: no cap); ``spent``: what earlier runs of the same search used (a resume)."""

    def __init__(self, seconds: float = 0.0, spent: float = 0.0) -> None:
        self.seconds, self.spent = float(seconds or 0.0), float(spent)
        self.start = clock()
        self.stopped = False

    @classmethod
    def resumed(cls, seconds: float, ckpt: dict[str, Any] | None) -> "TimeBudget":
        """The budget of a search, continued from checkpoint ``ckpt`` (None: a new search)."""
        saved = (ckpt or {}).get("budget") or {}
        budget = cls(seconds, float(saved.get("elapsed_s", 0.0)))
        budget.stopped = bool(saved.get("stopped", False))
        return budget

    def elapsed(self) -> float:
        """Search seconds so far, earlier runs of this search included."""
        return self.spent + clock() - self.start

    def over(self) -> bool:
        """Whether the budget is spent; under torchrun true on every rank when it is on any (one decision;
        without a budget, which every rank's config says alike, no collective call)."""
        if self.seconds <= 0:
            return False
        return distributed.agree(self.elapsed() >= self.seconds)

    def state(self, **where: Any) -> dict[str, Any]:
        """What a checkpoint and ``result.json`` record: the cap, the time used, whether it stopped the
        search and where (``where``: epoch/step or trials reached)."""
        return {"seconds": self.seconds, "elapsed_s": self.elapsed(), "stopped": self.stopped, **where}


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, flag: str = "--budget") -> float:
    """``"90s"``, ``"10m"``, ``"1.5h"`` (or plain seconds) as seconds; anything else one ConfigError line."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(text).lower())
    seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"] if m else math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{flag} {text!r}: give a positive time such as 90s, 10m or 1.5h")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds as the shortest of ``90s`` / ``10m`` / ``1.5h`` that reads back exactly."""
    for unit in ("h", "m"):
        value = seconds / _UNITS[unit]
        if value >= 1 and float(f"{value:g}") * _UNITS[unit] == seconds:
            return f"{value:g}{unit}"
    return f"{seconds:g}s"


__all__ = ["TimeBudget", "clock", "format_duration", "parse_duration"]
