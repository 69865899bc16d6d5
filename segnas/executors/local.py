"""Trials on this machine: ``InlineExecutor`` in the calling process, ``LocalExecutor`` in worker processes.

``LocalExecutor`` keeps ``workers`` processes started with the 'spawn'
context (a fresh interpreter: no forked torch or CUDA state), each limited to
``threads_per_worker`` torch threads, and reuses them across ``map`` calls;
even ``workers=1`` runs in a separate process, so a trial that exhausts memory
takes down only its worker. When a worker dies the pool loses every task in
flight: a task that was alone is reported failed; several are rerun one at a
time in fresh workers, so only the one that kills its worker again fails. ``InlineExecutor``
runs tasks one after another in the caller, for debugging (breakpoints,
tracebacks) and fast tests: exceptions are still caught, a crash is not.
As with any 'spawn' start, a script that creates a ``LocalExecutor`` must
guard its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Hashable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .base import Executor, TaskFn, TaskResult, failed, one_line, run_task

DIED = ("worker process died while running this task (killed by the system, e.g. out of memory, "
        "or it exited)")


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class InlineExecutor(Executor):
    """Runs each task in the calling process, one after another (``workers`` is 1)."""

    workers = 1

    def map(self, fn: TaskFn, tasks: Mapping[Hashable, dict[str, Any]]) -> Iterator[TaskResult]:
        for key, payload in tasks.items():
            yield run_task(fn, key, payload)


class LocalExecutor(Executor):
    """``workers`` spawned processes on this machine, ``threads_per_worker`` torch threads each."""

    def __init__(self, workers: int, threads_per_worker: int = 1) -> None:
        if workers < 1 or threads_per_worker < 1:
            raise ValueError(f"workers and threads_per_worker must be at least 1; got {workers}, "
                             f"{threads_per_worker}")
        self.workers, self.threads_per_worker = workers, threads_per_worker
        self._pool: ProcessPoolExecutor | None = None
        self._abandoned: list[Future] = []  # futures of a map the caller left early

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(self.threads_per_worker,))
        return self._pool

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, fn: TaskFn, tasks: Mapping[Hashable, dict[str, Any]]) -> Iterator[TaskResult]:
        self._abandoned = [f for f in self._abandoned if not f.done()]
        queue = deque(tasks.items())
        suspects: deque = deque()  # tasks in flight when a worker died: rerun alone
        inflight: dict[Future, tuple[Hashable, dict[str, Any], float]] = {}
        solo: Future | None = None  # the suspect running alone
        try:
            while queue or suspects or inflight:
                while solo is None and (not inflight if suspects else queue and len(inflight) < self.workers):
                    source = suspects if suspects else queue
                    key, payload = source.popleft()
                    try:
                        future = self._get_pool().submit(run_task, fn, key, payload)
                    except BrokenProcessPool:  # broke since the last wait: its futures tell which tasks
                        source.appendleft((key, payload))
                        if not inflight:  # nothing to learn from: start afresh
                            self._drop_pool()
                            continue
                        break
                    inflight[future] = (key, payload, time.perf_counter())
                    if source is suspects:
                        solo = future
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    self._drop_pool()  # joins the pool's manager: every future in flight is settled now
                    done = set(inflight)
                done = [f for f in inflight if f in done]  # in submission order
                broken = [f for f in done if isinstance(f.exception(), BrokenProcessPool)]
                if solo in done:
                    solo = None
                for f in done:
                    key, payload, start = inflight.pop(f)
                    if f in broken and len(broken) > 1:
                        suspects.append((key, payload))
                    elif f in broken:
                        yield failed(key, DIED, time.perf_counter() - start)
                    elif f.exception() is not None:  # e.g. a value that cannot be pickled back
                        yield failed(key, one_line(f.exception()), time.perf_counter() - start)
                    else:
                        yield f.result()
        finally:
            for f in inflight:
                if not f.cancel():
                    self._abandoned.append(f)

    def close(self) -> None:
        if self._pool is None:
            return
        if any(not f.done() for f in self._abandoned):
            for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                process.terminate()
        self._abandoned.clear()
        self._drop_pool()
