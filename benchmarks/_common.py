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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


def in_children(script: str, flag: str, values: Iterable[str], *args: str) -> list[dict[str, Any]]:
    """Run ``script flag value *args`` once per value, each in a fresh process (so peak memory is its own),
    and collect the JSON line each prints."""
    import subprocess

    return [json.loads(subprocess.run([sys.executable, script, flag, value, *args], check=True, capture_output=True,
                                      text=True).stdout) for value in values]


def bilevel_steps(problem: Any, images: torch.Tensor, masks: torch.Tensor, repeats: int) -> dict[str, Any]:
    """Timings of a supernet problem's weight step and architecture step (backward included) on one batch,
    and their sum: one search iteration."""
    def weight_step() -> None:
        problem.net.zero_grad(set_to_none=True)
        problem.weight_backward(images, masks, pretrain=False)

    def arch_step() -> None:
        problem.net.zero_grad(set_to_none=True)
        problem.arch_backward(images, masks)

    steps = {"weight_step": timed(weight_step, repeats), "arch_step": timed(arch_step, repeats)}
    return {"steps": steps, "iteration_s": steps["weight_step"]["median_s"] + steps["arch_step"]["median_s"]}


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


@dataclass
class CamvidSearch:
    """A finished (or resumed) search of a CamVid benchmark: where it ran and what it gave."""

    out: Path
    data: dict[str, Any]  # the ``data`` config every retrain of the benchmark shares
    method: Any
    cfg: Any
    result: dict[str, Any]
    search_s: float
    t0: float  # when the benchmark started (perf_counter)


def camvid_search(method_name: str, args: argparse.Namespace, quick_search: list[str], tag: str) -> CamvidSearch | None:
    """Run (or, with ``--resume``, continue) ``method_name``'s ``cpu``-preset search on CamVid in ``OUT/search``
    (``--search-set`` and, with ``--quick``, ``quick_search`` on top); None, with a message, without CamVid."""
    root = camvid_root(args.root)
    if root is None:
        return None
    out = Path(args.out) if args.out else Path("runs") / time.strftime(f"{tag}-%Y%m%d-%H%M%S")
    data = {"data": {"dataset": "camvid", "root": str(root)}}
    t0 = time.perf_counter()
    from segnas.methods import get_method

    method = get_method(method_name)
    cfg = method.config("cpu", overrides=(quick_search if args.quick else []) + args.search_set, extra=data)
    result = method.search(cfg, out / "search", resume=resumable(out / "search", args.resume), progress=True)
    return CamvidSearch(out, data, method, cfg, result, time.perf_counter() - t0, t0)


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
