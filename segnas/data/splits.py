"""Seeded, recorded index splits for bilevel search (weights on trainA, architecture on trainB).

Splits are saved next to a run so a resumed or re-evaluated search uses exactly the
same images; files are written atomically so a crash never leaves half a JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from segnas import jsonio
from segnas.data.files import absolute
from segnas.errors import ConfigError, DataError
from segnas.fileio import atomic_write_text

SPLIT_KEYS: tuple[str, ...] = ("train", "trainA", "trainB", "val")


def make_splits(
    num_items: int, seed: int, val_fraction: float = 0.0, search_fraction: float = 0.5
) -> dict[str, list[int]]:
    """Random disjoint ``val`` and ``train``; ``train`` is cut into ``trainA`` (search_fraction) and ``trainB``.

    Index lists are sorted so files diff cleanly and loading order stays file order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction: got {val_fraction}; it must be in [0, 1)")
    if not 0.0 < search_fraction < 1.0:
        raise ConfigError(f"search_fraction: got {search_fraction}; it must be in (0, 1)")
    if seed < 0:
        raise ConfigError(f"seed: got {seed}; it must be >= 0")
    n_val = int(round(num_items * val_fraction))
    n_train = num_items - n_val
    if n_train < 2:
        raise DataError(
            f"dataset: {num_items} image(s) leave {n_train} for training; bilevel search needs at "
            "least 2 (one for trainA, one for trainB): add images or lower val_fraction"
        )
    n_a = min(max(int(round(n_train * search_fraction)), 1), n_train - 1)
    rng = np.random.default_rng([seed, num_items])
    perm = rng.permutation(num_items)
    val, train = perm[:n_val], perm[n_val:]
    halves = rng.permutation(train)
    return {
        "train": sorted(train.tolist()),
        "trainA": sorted(halves[:n_a].tolist()),
        "trainB": sorted(halves[n_a:].tolist()),
        "val": sorted(val.tolist()),
    }


def save_splits(path: str | os.PathLike[str], splits: Mapping[str, list[int]], meta: Mapping[str, Any]) -> None:
    """Write ``{"splits": ..., "meta": ...}`` as JSON, atomically."""
    target = absolute(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {"splits": {k: [int(i) for i in v] for k, v in splits.items()}, "meta": dict(meta)}
    atomic_write_text(target, json.dumps(payload, indent=1, sort_keys=True))


def load_splits(path: str | os.PathLike[str]) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Read a splits file written by :func:`save_splits`; returns ``(splits, meta)``."""
    source = absolute(path)
    if not source.is_file():
        raise DataError(f"{source}: splits file not found; run the search once to create it or fix the path")
    payload = jsonio.read(source, "a splits file (delete it to regenerate)", DataError)
    splits = payload.get("splits") if isinstance(payload, dict) else None
    if not isinstance(splits, dict) or any(
        not isinstance(v, list) or not all(isinstance(i, int) and i >= 0 for i in v) for v in splits.values()
    ):
        raise DataError(
            f"{source}: expected {{'splits': {{name: [index, ...]}}, 'meta': {{...}}}}; delete it to regenerate"
        )
    meta = payload.get("meta", {})
    return {str(k): list(v) for k, v in splits.items()}, dict(meta) if isinstance(meta, dict) else {}
