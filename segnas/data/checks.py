"""A fast check of every image/mask pair before training starts (``data.check``).

Without it a corrupt file, a mask of the wrong size or a label outside the
classes stops a run hours in, at the first batch that holds it. The scan reads
image sizes from the headers only (PIL does not decode on ``open``) and decodes
masks for their label values (one ``bincount`` each), so CamVid's 367 training
pairs take about a second. Every problem is counted; the first is reported as
one line naming the file and the fix. A dataset is scanned once per process
(the result is kept by its files' paths, sizes and modification times).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from segnas.data.base import SegmentationDataset
from segnas.data.files import _PIL_FAILURES, _one_line, read_mask
from segnas.data.labels import IGNORE_INDEX, allowed_raw_values, _ranges
from segnas.errors import DataError


@dataclass(frozen=True)
class ScanResult:
    """What the scan saw: pairs checked, the raw label values present, the largest train id."""

    pairs: int
    raw_values: tuple[int, ...]
    max_label: int  # largest train id other than the ignore index (-1: only ignored pixels)


_SCANNED: dict[tuple, ScanResult] = {}


def _signature(ds: SegmentationDataset) -> tuple:
    """The dataset's files as they are now: a changed or replaced file is scanned again."""
    files = []
    for image, mask in ds.items:
        for path in (image, mask):
            try:
                st = os.stat(path)
                files.append((str(path), st.st_size, st.st_mtime_ns))
            except OSError:
                files.append((str(path), -1, -1))
    lut = None if ds.label_map is None else ds.label_map.tobytes()
    return type(ds).__name__, ds.num_classes, lut, tuple(files)


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the header; a file that does not open is a DataError naming it."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; restore it or remove it from the dataset")
    try:
        with Image.open(path) as img:
            w, h = img.size
    except _PIL_FAILURES as exc:
        raise DataError(f"{path}: cannot read image ({_one_line(exc)}); the file is corrupt or not an image, "
                        "re-export it or remove it from the dataset") from None
    return h, w


def _label_problem(ds: SegmentationDataset, mask_path: Path, present: np.ndarray) -> str | None:
    """The message for raw values in ``present`` that are neither a class nor ignored, else None."""
    mapped = present if ds.label_map is None else ds.label_map[present]
    bad = present[(mapped >= ds.num_classes) & (mapped != IGNORE_INDEX)]
    if bad.size == 0:
        return None
    shown = ", ".join(str(v) for v in bad[:10].tolist()) + (", ..." if bad.size > 10 else "")
    if ds.label_map is None:  # the 'folder' dataset: labels are the train ids, counted by data.num_classes
        return (f"{mask_path}: mask holds label(s) {shown} but data.num_classes is {ds.num_classes} (labels "
                f"0-{ds.num_classes - 1}, 255 = ignore); set --num-classes to the true class count or fix the mask")
    allowed = _ranges(allowed_raw_values(ds.label_map, ds.num_classes))
    return (f"{mask_path}: mask holds label value(s) {shown} but {ds.name} allows only {allowed} (255 = ignore); "
            "fix the mask or use the matching dataset")


def _check_pair(ds: SegmentationDataset, image_path: Path, mask_path: Path, counts: np.ndarray) -> str | None:
    """One pair's problem as a message, else None; adds the mask's label counts to ``counts``."""
    try:
        h, w = _image_size(image_path)
        mask = read_mask(mask_path)
    except DataError as e:
        return str(e)
    if mask.shape != (h, w):
        mh, mw = mask.shape
        return (f"{mask_path}: mask is {mh}x{mw} but image {image_path} is {h}x{w}; "
                "masks must match their image size, re-export one of them")
    here = np.bincount(mask.ravel(), minlength=256)
    counts += here
    return _label_problem(ds, mask_path, np.flatnonzero(here))


def scan(ds: SegmentationDataset, split: str = "", progress: bool | None = None) -> ScanResult | None:
    """Check every image/mask pair of a file dataset (None for a generated one); a DataError names the first
    bad file and how many have problems. ``progress``: a bar on stderr (None: only on a terminal)."""
    if getattr(type(ds), "procedural", False) or not ds.items:
        return None
    key = _signature(ds)
    if key in _SCANNED:
        return _SCANNED[key]
    counts = np.zeros(256, dtype=np.int64)
    problems: list[str] = []
    bar = tqdm(ds.items, desc=f"checking {ds.name} {split}".rstrip(), unit="pair", file=sys.stderr,
               disable=None if progress is None else not progress, leave=False, dynamic_ncols=True)
    with bar:
        for image_path, mask_path in bar:
            problem = _check_pair(ds, Path(image_path), Path(mask_path), counts)
            if problem is not None:
                problems.append(problem)
    if problems:
        more = f" [{len(problems) - 1} more pair(s) of {len(ds.items)} have problems too]" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    raw = np.flatnonzero(counts)
    mapped = raw if ds.label_map is None else ds.label_map[raw]
    classes = mapped[mapped != IGNORE_INDEX]
    result = ScanResult(len(ds.items), tuple(raw.tolist()), int(classes.max()) if classes.size else -1)
    _SCANNED[key] = result
    return result
