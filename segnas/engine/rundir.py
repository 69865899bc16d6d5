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


def prepare_run_dir(path: str | os.PathLike, resume: bool) -> Path:
    path = Path(path)
    has_run = (path / "checkpoints").exists() or (path / "metrics.jsonl").exists()
    if resume:
        if not (path / "checkpoints" / "last.pt").is_file():
            raise ConfigError(f"{path}: nothing to resume (no checkpoints/last.pt); "
                              "drop --resume to start a new run")
    elif has_run:
        raise ConfigError(f"{path}: a run already exists here; pass --resume to continue it "
                          "or choose another --out folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def environment(seed: int, device: str) -> dict[str, Any]:
    return {
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
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def write_yaml(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, lines past the checkpoint's step are dropped."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, path)

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=float) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
