"""Trials as Ray tasks, on a local Ray or an existing cluster (Ray is optional: ``pip install -e '.[ray]'``).

Each trial is one task asking for ``num_cpus`` CPUs and ``num_gpus`` GPUs, so
Ray places it where those are free (a GPU trial sees only its own GPUs, from
``cuda:0`` on); at most ``workers`` run at once. With
``address`` the executor joins that cluster (segnas must be installed on its
nodes); without it, it starts a local Ray sized for ``workers`` trials, or
uses the Ray this process already started. ``close`` shuts down only a Ray
it started or joined itself. Ray does not retry a task whose worker died: a
trial that runs out of memory would only die again, so it is reported failed.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import deque
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

from ..errors import ConfigError
from .base import Executor, TaskFn, TaskResult, failed, one_line, run_task

MISSING = "--executor ray needs Ray: pip install -e '.[ray]'"


def import_ray() -> Any:
    """The ``ray`` module, or a one-line ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(MISSING) from None
    return ray


def _ray_task(fn: TaskFn, key: Hashable, payload: dict[str, Any], threads: int) -> TaskResult:
    import torch

    torch.set_num_threads(threads)
    return run_task(fn, key, payload)


class RayExecutor(Executor):
    """Ray tasks of ``num_cpus`` CPUs and ``num_gpus`` GPUs each, ``workers`` at a time."""

    def __init__(self, workers: int, num_cpus: float = 1.0, num_gpus: float = 0.0, address: str | None = None,
                 threads_per_worker: int | None = None) -> None:
        ray = import_ray()
        if workers < 1 or num_cpus <= 0 or num_gpus < 0:
            raise ConfigError(f"ray executor: need workers >= 1, num_cpus > 0, num_gpus >= 0; got {workers}, "
                              f"{num_cpus}, {num_gpus}")
        self.workers, self.num_cpus, self.num_gpus = workers, num_cpus, num_gpus
        self.threads = threads_per_worker or max(1, int(num_cpus))
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=True)
            else:  # its workers import task functions as spawned processes do: from the driver's sys.path
                paths = [p for p in sys.path if p and os.path.isdir(p)]
                ray.init(num_cpus=math.ceil(workers * num_cpus), num_gpus=math.ceil(workers * num_gpus) or None,
                         include_dashboard=False, job_config=ray.job_config.JobConfig(code_search_path=paths))
        have = ray.cluster_resources()
        for name, want in (("CPU", num_cpus), ("GPU", num_gpus)):
            if want > have.get(name, 0):
                self.close()
                raise ConfigError(f"ray executor: each trial asks for {want:g} {name} but the Ray cluster has "
                                  f"{have.get(name, 0):g}; lower the request or add nodes")
        self._remote = ray.remote(_ray_task).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)

    def map(self, fn: TaskFn, tasks: Mapping[Hashable, dict[str, Any]]) -> Iterator[TaskResult]:
        ray = self._ray
        queue = deque(tasks.items())
        inflight: dict[Any, tuple[Hashable, float]] = {}
        try:
            while queue or inflight:
                while queue and len(inflight) < self.workers:
                    key, payload = queue.popleft()
                    inflight[self._remote.remote(fn, key, payload, self.threads)] = (key, time.perf_counter())
                done, _ = ray.wait(list(inflight), num_returns=1)
                for ref in done:
                    key, start = inflight.pop(ref)
                    try:
                        yield ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - a dead worker (out of memory) or an unloadable task
                        yield failed(key, one_line(getattr(e, "cause", None) or e), time.perf_counter() - start)
        finally:
            for ref in inflight:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False
