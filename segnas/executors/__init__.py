"""Executors run independent trials (a picklable function on payload dicts) and yield results as they finish.

``make_executor(kind, workers, ...)`` builds one of ``KINDS``: ``inline``
(the calling process, one task at a time: debugging), ``local`` (spawned
worker processes on this machine) or ``ray`` (Ray tasks with a CPU/GPU
request each; Ray is an optional dependency, imported only when asked for).
Every task's outcome is a ``TaskResult``; a failure is ``ok=False`` with a
one-line error, never an exception in the caller.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Executor, TaskResult, run_task
from .local import InlineExecutor, LocalExecutor

KINDS = ("inline", "local", "ray")


def make_executor(kind: str, workers: int = 1, *, threads_per_worker: int = 1, num_cpus: float = 1.0,
                  num_gpus: float = 0.0, address: str | None = None) -> Executor:
    """An executor of ``kind`` running ``workers`` trials at once.

    ``threads_per_worker`` sets torch's threads in a ``local`` worker;
    ``num_cpus``, ``num_gpus`` and ``address`` are the ``ray`` request per
    trial and the cluster to join (none: start a local Ray).
    """
    if kind not in KINDS:
        raise ConfigError(f"executor: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"executor: workers must be a positive integer; got {workers!r}")
    if kind == "inline":
        if workers != 1:
            raise ConfigError(f"executor: inline runs one trial at a time; workers is {workers}, use local")
        return InlineExecutor()
    if kind == "local":
        if threads_per_worker < 1:
            raise ConfigError(f"executor: threads_per_worker must be at least 1; got {threads_per_worker}")
        return LocalExecutor(workers, threads_per_worker)
    from .ray_executor import RayExecutor  # imports ray only now

    return RayExecutor(workers, num_cpus=num_cpus, num_gpus=num_gpus, address=address)


__all__ = ["KINDS", "Executor", "InlineExecutor", "LocalExecutor", "TaskResult", "make_executor", "run_task"]
