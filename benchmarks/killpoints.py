"""Run a segnas command that kills itself with SIGKILL at a chosen point, as ``kill -9`` would.

    python benchmarks/killpoints.py POINT:N -- search autodeeplab --preset tiny --out runs/x
    python benchmarks/killpoints.py count:FILE -- ...   (no kill: writes how many events of each kind happened)

The process dies, with no chance to clean up, just before the N-th (1-based) event of kind POINT:

- ``step``: a training step (a retrain or trial step of ``Trainer``, a step of a one-shot search);
- ``rename``: an atomic file write's rename, i.e. after the temporary file is written and flushed and
  before it replaces the target (between a checkpoint write and its rename); ``rename@last.pt:2`` counts
  only the renames onto files named ``last.pt``;
- ``write``: an atomic file write's start (before anything of it is on disk);
- ``log``: an append to ``metrics.jsonl``;
- ``latency``: an operator timing inside a latency-table build.

Used by ``benchmarks/kill_campaign.py`` and ``tests/test_kill_resume.py``; the points are counted in the
process, so a given POINT:N kills at the same place every time.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any


POINTS = ("step", "rename", "write", "log", "latency")
COUNTS: dict[str, int] = {}


def _dying(fn: Callable[..., Any], n: int, point: str = "", target: str | None = None) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if target is not None and os.path.basename(str(args[1])) != target:
            return fn(*args, **kwargs)
        COUNTS[point] = COUNTS.get(point, 0) + 1
        if COUNTS[point] == n:
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)

    return wrapper


def arm(point: str, n: int) -> None:
    """Patch the function behind ``point`` so that its ``n``-th call kills the process."""
    import segnas.engine.rundir as rundir
    import segnas.engine.trainer as trainer
    import segnas.fileio as fileio
    import segnas.objectives.latency as latency
    import segnas.strategies.differentiable as differentiable

    if point == "step":  # one counter over both kinds of step
        die = _dying(lambda kind, *a, **k: kind(*a, **k), n, point)
        train_step, search_step = trainer.Trainer.train_step, differentiable.search_step
        trainer.Trainer.train_step = lambda self, *a, **k: die(train_step, self, *a, **k)
        differentiable.search_step = lambda *a, **k: die(search_step, *a, **k)
    elif point.startswith("rename"):
        fileio.os.replace = _dying(os.replace, n, point, point.split("@", 1)[1] if "@" in point else None)
    elif point == "write":
        fileio.tempfile.mkstemp = _dying(fileio.tempfile.mkstemp, n, point)
    elif point == "log":
        rundir.MetricsLog.write = _dying(rundir.MetricsLog.write, n, point)
    elif point == "latency":
        latency.time_entry = _dying(latency.time_entry, n, point)
    else:
        raise SystemExit(f"unknown kill point {point!r}; choose step, rename, write, log or latency")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--" or ":" not in argv[0]:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    point, value = argv[0].rsplit(":", 1)
    from segnas.cli import main as segnas_main

    if point != "count":
        arm(point, int(value))
        return segnas_main(argv[2:])
    for kind in POINTS:
        arm(kind, 0)  # counts, never kills
    code = segnas_main(argv[2:])
    with open(value, "w") as f:
        json.dump(COUNTS, f)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
