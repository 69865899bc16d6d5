"""The run directory: one folder per run holding everything needed to redo it.

Layout: ``config.yaml`` (resolved), ``env.json`` (versions, device, seed,
threads, command), ``genotype.json``, ``metrics.jsonl``, ``checkpoints/``,
``tb/`` (TensorBoard) and outputs such as predictions. An existing run is
never overwritten: continue it with ``--resume`` or choose another folder.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..errors import ConfigError
from ..fileio import TEMP_SUFFIX, append_text, atomic_write_text, remove_partial_writes
from ..outputs import claim_folder, mark_of
from . import distributed


MARKER = "segnas_run"


def prepare_run_dir(path: str | os.PathLike, resume: bool) -> Path:
    """Check ``path`` can hold this run: resume needs a checkpoint, a new run needs a new or empty
    folder, or one a start that failed before its first checkpoint left (marked as a run's first
    thing); a folder holding anything else of the user's is refused, never written into."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a folder; choose another --out")
    if resume:
        if not (path / "checkpoints" / "last.pt").is_file():
            raise ConfigError(f"{path}: nothing to resume (no checkpoints/last.pt); "
                              "drop --resume to start a new run")
        _drop_partial_writes(path)
        return path
    if (path / "checkpoints" / "last.pt").is_file():
        raise ConfigError(f"{path}: a run already exists here; pass --resume to continue it "
                          "or choose another --out folder")
    ours = is_segnas_run(path)
    if not ours and path.is_dir():
        found = sorted(p.name for p in path.iterdir() if not p.name.endswith(TEMP_SUFFIX))
        if found:
            raise ConfigError(f"{path}: already holds {', '.join(found[:3])}{' ...' if len(found) > 3 else ''} "
                              "not written by a segnas run; choose another --out folder (a new or empty one)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{path}: cannot create the run folder ({e.strerror}); choose another --out") from None
    if ours:
        _drop_partial_writes(path)
    elif distributed.is_main():
        claim_folder(path, "run")  # the mark comes first: a start killed at any later point can start again
    return path


def _drop_partial_writes(run: Path) -> None:
    """Remove the temporary files of atomic writes a killed run left behind (never a finished file).
    Under torchrun only the first process does, as only it writes."""
    if distributed.is_main():
        for folder in (run, run / "checkpoints", run / "genotypes"):
            remove_partial_writes(folder)


def is_segnas_run(path: Path) -> bool:
    """Whether ``path`` is a segnas run folder, finished or not (its mark, or a segnas env.json)."""
    if not path.is_dir():
        return False
    if mark_of(path) == "run":
        return True
    try:
        return bool(json.loads((path / "env.json").read_text()).get(MARKER))
    except (OSError, ValueError, AttributeError):
        return False


def environment(seed: int, device: str) -> dict[str, Any]:
    return {
        MARKER: True,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": device,
        "seed": seed,
        "argv": sys.argv,
    }


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_yaml(path: Path, data: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, lines past the checkpoint's step are dropped."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines()
                    if (record := _parse(line)) is not None and record.get("step", 0) <= resume_step]
            atomic_write_text(path, "".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        append_text(self.path, json.dumps(record, default=float) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [r for r in map(_parse, self.path.read_text().splitlines()) if r is not None]


def _parse(line: str) -> dict[str, Any] | None:
    """One metrics line, or None for a blank or half-written one (a kill mid-append)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
