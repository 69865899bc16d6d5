"""Segmentation datasets, transforms and search splits.

``build_dataset(name, root, split)`` is the one entry point the rest of segnas
uses; every dataset is a :class:`SegmentationDataset` with the same metadata.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType
from typing import Any

from segnas.data.ade20k import ADE20K
from segnas.data.base import SegmentationDataset, Transform, to_tensors
from segnas.data.camvid import CamVid
from segnas.data.cityscapes import Cityscapes
from segnas.data.folder import ImageMaskFolder
from segnas.data.labels import IGNORE_INDEX
from segnas.data.planted import PlantedContext
from segnas.data.checks import ScanResult, scan
from segnas.data.splits import load_splits, make_splits, save_splits
from segnas.data.synthetic import SyntheticScenes
from segnas.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
    colorize,
    denormalize,
)
from segnas.data.voc import VOC
from segnas.errors import DataError

DATASETS: MappingProxyType[str, type[SegmentationDataset]] = MappingProxyType(
    {
        "camvid": CamVid,
        "cityscapes": Cityscapes,
        "voc": VOC,
        "ade20k": ADE20K,
        "folder": ImageMaskFolder,
        "synthetic": SyntheticScenes,
        "planted-context": PlantedContext,
    }
)
CAMVID_ENV = "SEGNAS_CAMVID"


def default_camvid_root() -> Path:
    """``$SEGNAS_CAMVID`` if set, else ``<repo root>/../shared/data/camvid`` (the bundled copy)."""
    env = os.environ.get(CAMVID_ENV)
    if env:
        return Path(os.path.abspath(os.path.expanduser(env)))
    repo_root = Path(__file__).resolve().parent.parent.parent
    return Path(os.path.normpath(repo_root / ".." / "shared" / "data" / "camvid"))


def is_procedural(name: str) -> bool:
    """Whether dataset ``name`` is generated (from the ``data.synthetic_*`` options) rather than read."""
    return bool(getattr(DATASETS.get(name.lower()), "procedural", False))


def build_dataset(
    name: str,
    root: str | os.PathLike[str] | None,
    split: str,
    transform: Transform | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> SegmentationDataset:
    """Construct a registered dataset by name; ``root`` may be None for camvid and the generated ones.

    ``check=True`` scans every image/mask pair of a file dataset first (:func:`segnas.data.checks.scan`), so a bad
    file is reported before any training, not at the batch that holds it.
    """
    check = bool(kwargs.pop("check", False))
    ds = _build(name, root, split, transform, seed, **kwargs)
    if check:
        scan(ds, split)
    return ds


def _build(name: str, root: str | os.PathLike[str] | None, split: str, transform: Transform | None, seed: int,
           **kwargs: Any) -> SegmentationDataset:
    key = name.lower()
    if key not in DATASETS:
        raise DataError(f"dataset: unknown name {name!r}; known datasets are {', '.join(DATASETS)}")
    cls = DATASETS[key]
    if is_procedural(key):
        return cls(split, seed=seed, transform=transform, **kwargs)
    if root is None:
        if cls is not CamVid:
            raise DataError(f"dataset: {name!r} needs a root folder; pass the path to its data")
        root = default_camvid_root()
    return cls(root, split, transform=transform, seed=seed, **kwargs)


__all__ = [
    "ADE20K",
    "CAMVID_ENV",
    "DATASETS",
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PlantedContext",
    "VOC",
    "CamVid",
    "Cityscapes",
    "EvalTransform",
    "ImageMaskFolder",
    "ScanResult",
    "SegmentationDataset",
    "SyntheticScenes",
    "TrainTransform",
    "Transform",
    "build_dataset",
    "colorize",
    "default_camvid_root",
    "denormalize",
    "is_procedural",
    "load_splits",
    "make_splits",
    "save_splits",
    "scan",
    "to_tensors",
]
