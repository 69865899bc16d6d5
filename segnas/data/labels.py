"""Label lookup tables, label validation and palettes shared by all datasets.

A label map is a 256-entry uint8 table from raw mask values to train ids. Entries
in ``[0, num_classes)`` are classes, ``IGNORE_INDEX`` is ignored, and any other
entry (``INVALID``) marks a raw value that must never occur, so one vectorised
lookup both maps and validates a mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from segnas.errors import DataError

IGNORE_INDEX = 255
INVALID = 254
MAX_CLASSES = 254


def make_label_map(mapping: Mapping[int, int]) -> np.ndarray:
    """Build a label map from ``{raw: train_id}``; unlisted raw values become INVALID."""
    lut = np.full(256, INVALID, dtype=np.uint8)
    for raw, train_id in mapping.items():
        lut[raw] = train_id
    return lut


def _ranges(values: np.ndarray) -> str:
    """Compress sorted ints into '0-10, 255' so messages stay one short line."""
    if values.size == 0:
        return "none"
    breaks = np.flatnonzero(np.diff(values) != 1)
    starts = np.concatenate(([values[0]], values[breaks + 1]))
    ends = np.concatenate((values[breaks], [values[-1]]))
    return ", ".join(str(s) if s == e else f"{s}-{e}" for s, e in zip(starts.tolist(), ends.tolist()))


def allowed_raw_values(label_map: np.ndarray | None, num_classes: int) -> np.ndarray:
    """Raw mask values that are classes or ignored."""
    if label_map is None:
        label_map = np.arange(256, dtype=np.uint8)
    ok = (label_map < num_classes) | (label_map == IGNORE_INDEX)
    return np.flatnonzero(ok)


def map_and_check(
    raw: np.ndarray, label_map: np.ndarray | None, num_classes: int, mask_path: Path, name: str
) -> np.ndarray:
    """Map raw values to train ids and fail with the offending values if any is not allowed."""
    mapped = raw if label_map is None else np.take(label_map, raw)
    bad = (mapped >= num_classes) & (mapped != IGNORE_INDEX)
    if bad.any():
        found = np.unique(raw[bad])
        shown = ", ".join(str(v) for v in found[:10].tolist()) + (", ..." if found.size > 10 else "")
        allowed = _ranges(allowed_raw_values(label_map, num_classes))
        raise DataError(
            f"{mask_path}: mask holds label values [{shown}] but {name} allows only {allowed} "
            f"(train ids 0-{num_classes - 1} after mapping, 255 = ignore); "
            "fix the mask or use the matching dataset/num_classes"
        )
    return mapped


def bit_palette(n: int) -> np.ndarray:
    """Distinct colours by spreading index bits over RGB high bits (the VOC colour scheme)."""
    idx = np.arange(n, dtype=np.int64)
    pal = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):
        for ch in range(3):
            pal[:, ch] |= ((idx >> (3 * shift + ch)) & 1) << (7 - shift)
    return pal.astype(np.uint8)


def check_palette(palette: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    """Validate a palette's shape so colourising never indexes out of bounds."""
    pal = np.asarray(palette, dtype=np.uint8)
    if pal.shape != (num_classes, 3):
        raise DataError(f"{where}: palette has shape {pal.shape}; it must be ({num_classes}, 3) RGB")
    return pal
