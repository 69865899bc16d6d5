"""Checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint is a plain dict of tensors and JSON-like values, so loading it
never runs pickled code. Writing goes to a temporary file in the same folder
followed by ``os.replace``: a run killed mid-write leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..fileio import atomic_write


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`segnas.fileio.atomic_write`."""
    return atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def load_checkpoint(path: str | os.PathLike, required: tuple[str, ...] = ("model", "genotype")) -> dict[str, Any]:
    """Read a checkpoint safely; a missing or corrupt file is a CheckpointError naming it.

    ``required`` are the entries the caller needs (a search checkpoint has others than a retrain one).
    """
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / "checkpoints" / name).is_file():
                path = path / "checkpoints" / name
                break
        else:
            raise CheckpointError(f"{path}: no checkpoints/best.pt or checkpoints/last.pt in this run folder")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated/foreign files
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(e).__name__}); the file is "
                              "corrupt or not a segnas checkpoint") from None
    if not isinstance(ckpt, dict) or any(key not in ckpt for key in required):
        raise CheckpointError(f"{path}: not a segnas checkpoint of this kind (no {'/'.join(required)} "
                              "entries); a retrain checkpoint and a search checkpoint are not interchangeable")
    ckpt["path"] = str(path)
    return ckpt
