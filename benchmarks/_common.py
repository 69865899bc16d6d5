"""Shared helpers for benchmark scripts: machine description and JSON output."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segnas.profile import cpu_name


def machine() -> dict[str, Any]:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
            "platform": platform.platform()}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write(result: dict[str, Any], path: str | None) -> None:
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median and minimum seconds of ``fn`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats}


def camvid_root(arg: str | None) -> Path | None:
    """The CamVid folder from ``--root``, $SEGNAS_CAMVID or ../shared/data/camvid; None (and a message) if absent."""
    from segnas.data import default_camvid_root

    root = Path(arg) if arg else default_camvid_root()
    if not root.is_dir():
        print(f"CamVid not found at {root}; set SEGNAS_CAMVID or pass --root", file=sys.stderr)
        return None
    return root


def resumable(run: Path, resume: bool) -> bool:
    """Whether to continue ``run`` (``--resume`` and a checkpoint there); a folder the
    benchmark left without any checkpoint is removed so the step starts afresh."""
    import shutil

    if not resume or not run.exists():
        return False
    if (run / "checkpoints" / "last.pt").is_file():
        return True
    shutil.rmtree(run)
    return False


def camvid_search_args(ap: argparse.ArgumentParser) -> None:
    """Options every CamVid search-and-retrain benchmark takes."""
    ap.add_argument("--root", default=None, help="CamVid folder (default: $SEGNAS_CAMVID or ../shared/data/camvid)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--resume", action="store_true",
                    help="continue a killed run in --out: finished steps are reused, a broken one resumes")
    ap.add_argument("--json", default=None)
    ap.add_argument("--search-set", action="append", default=[], help="extra --set for the search")
    ap.add_argument("--train-set", action="append", default=[], help="extra --set for every retrain")
