"""Cityscapes fine annotations: 34 labelIds mapped to the 19 standard trainIds."""

from __future__ import annotations

import os

import numpy as np

from segnas.data.base import SegmentationDataset, Transform
from segnas.data.files import absolute, pair_by_stem, require_dir
from segnas.data.labels import IGNORE_INDEX, make_label_map
from segnas.errors import DataError

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)
# labelId -> trainId for the evaluated classes; every other labelId in 0..33 is ignored.
_TRAIN_IDS: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}


def cityscapes_label_map() -> np.ndarray:
    """labelIds 0..33 -> trainIds (255 for non-evaluated); 255 (license plate -1) stays ignored."""
    mapping = {raw: _TRAIN_IDS.get(raw, IGNORE_INDEX) for raw in range(34)}
    mapping[IGNORE_INDEX] = IGNORE_INDEX
    return make_label_map(mapping)


class Cityscapes(SegmentationDataset):
    """``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with ``gtFine/{split}/{city}/*_gtFine_labelIds.png``."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transform: Transform | None = None,
        seed: int = 0,
        cache: bool = False,
    ) -> None:
        base = require_dir(absolute(root), "Cityscapes root")
        img_root = require_dir(base / "leftImg8bit" / split, f"Cityscapes '{split}' image")
        ann_root = require_dir(base / "gtFine" / split, f"Cityscapes '{split}' gtFine")
        pairs = []
        for city in sorted(p for p in img_root.iterdir() if p.is_dir()):
            images = sorted(city.glob("*_leftImg8bit.png"))
            if images:
                ann_dir = require_dir(ann_root / city.name, f"Cityscapes gtFine city '{city.name}'")
                pairs += pair_by_stem(images, ann_dir, "_gtFine_labelIds.png", image_suffix="_leftImg8bit")
        if not pairs:
            raise DataError(f"{img_root}: no *_leftImg8bit.png images in city folders; check the split")
        super().__init__(
            pairs, name="cityscapes", class_names=CITYSCAPES_CLASSES,
            palette=np.array(CITYSCAPES_PALETTE), label_map=cityscapes_label_map(),
            transform=transform, seed=seed, cache=cache, root=base,
        )
