"""PASCAL VOC 2012 segmentation (and the SBD-augmented ``train_aug`` split): 21 classes."""

from __future__ import annotations

import os
from pathlib import Path

from segnas.data.base import SegmentationDataset, Transform
from segnas.data.files import absolute, read_id_list, read_list_file, require_dir
from segnas.data.labels import IGNORE_INDEX, bit_palette, make_label_map
from segnas.errors import DataError

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)


def _voc_root(root: Path) -> Path:
    """Accept the VOC2012 folder itself or a parent holding ``VOCdevkit/VOC2012`` / ``VOC2012``."""
    for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir():
            return cand
    raise DataError(
        f"{root}: no VOC2012 layout found (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/); "
        "point root at the VOC2012 folder"
    )


def _is_pair_list(list_path: Path) -> bool:
    """True for DeepLab-style lists of ``/JPEGImages/x.jpg /SegmentationClassAug/x.png`` lines."""
    with open(list_path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                return len(line.split()) == 2 and "/" in line
    return False


class VOC(SegmentationDataset):
    """``ImageSets/Segmentation/{split}.txt`` ids -> ``JPEGImages/{id}.jpg`` + palette-index masks.

    ``train_aug`` reads ``SegmentationClassAug/`` (SBD + VOC) instead of ``SegmentationClass/``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transform: Transform | None = None,
        seed: int = 0,
        cache: bool = False,
    ) -> None:
        base = _voc_root(require_dir(absolute(root), "VOC root"))
        mask_dir = base / ("SegmentationClassAug" if split == "train_aug" else "SegmentationClass")
        require_dir(mask_dir, f"VOC '{split}' mask")
        list_path = base / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not list_path.is_file():
            raise DataError(f"{list_path}: VOC split list not found; splits are train, val, trainval, train_aug")
        if _is_pair_list(list_path):
            pairs = read_list_file(list_path, base)
        else:
            pairs = []
            for lineno, sid in enumerate(read_id_list(list_path), 1):
                pair = (base / "JPEGImages" / f"{sid}.jpg", mask_dir / f"{sid}.png")
                for p in pair:
                    if not p.is_file():
                        raise DataError(
                            f"{list_path}: id {sid!r} (entry {lineno}) has no file {p}; "
                            "fix the list or restore the file"
                        )
                pairs.append(pair)
        mapping = {k: k for k in range(len(VOC_CLASSES))}
        mapping[IGNORE_INDEX] = IGNORE_INDEX
        super().__init__(
            pairs, name="voc", class_names=VOC_CLASSES, palette=bit_palette(len(VOC_CLASSES)),
            label_map=make_label_map(mapping), transform=transform, seed=seed, cache=cache, root=base,
        )
