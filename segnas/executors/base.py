"""What every executor shares: the result record, the interface and the in-worker wrapper of a task.

A task is one independent trial: a picklable top-level function ``fn`` and a
payload dict; ``fn(payload)`` returns a dict. Whatever goes wrong inside a
task (an exception, MemoryError, a NaN the function reports by raising, a
worker process that dies) comes back as ``ok=False`` with a one-line error:
it never stops the caller and never turns into a value such as 0.
"""

from __future__ import annotations

import time
import traceback as tb
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import one_line

E = TypeVar("E", bound="Executor")
TaskFn = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class TaskResult:
    """The outcome of one task: ``value`` when ``ok``, else a one-line ``error`` (and ``traceback`` when known)."""

    key: Hashable
    ok: bool
    value: dict[str, Any] | None
    error: str
    wall_s: float
    traceback: str = ""


def failed(key: Hashable, error: str, wall_s: float, traceback: str = "") -> TaskResult:
    return TaskResult(key, False, None, error, wall_s, traceback)


def run_task(fn: TaskFn, key: Hashable, payload: dict[str, Any]) -> TaskResult:
    """Call ``fn(payload)`` where the task runs, turning any failure into a failed TaskResult."""
    start = time.perf_counter()
    try:
        value = fn(payload)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - MemoryError too; KeyboardInterrupt still stops the run
        return failed(key, one_line(e), time.perf_counter() - start, tb.format_exc())
    wall = time.perf_counter() - start
    if not isinstance(value, dict):
        return failed(key, f"TypeError: the task returned {type(value).__name__}, expected a dict", wall)
    return TaskResult(key, True, value, "", wall)


class Executor(ABC):
    """Runs independent tasks and yields their results as they finish (a context manager: ``close`` on exit)."""

    workers: int

    @abstractmethod
    def map(self, fn: TaskFn, tasks: Mapping[Hashable, dict[str, Any]]) -> Iterator[TaskResult]:
        """Run ``fn`` on every payload of ``tasks`` (key -> payload); yield one TaskResult per key, in finishing order.

        At most ``workers`` tasks run at once. Leaving the loop early cancels
        the tasks not yet started; those already running finish in the
        background, and ``close`` ends them.
        """

    def close(self) -> None:
        """Release the workers; running tasks of an abandoned ``map`` are ended."""

    def __enter__(self: E) -> E:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
