"""CamVid in the SegNet layout: 11 road-scene classes at 360x480, value 11 = void."""

from __future__ import annotations

import os

import numpy as np

from segnas.data.base import SegmentationDataset, Transform
from segnas.data.files import absolute, list_images, pair_by_stem, read_list_file, require_dir
from segnas.data.labels import IGNORE_INDEX, make_label_map
from segnas.errors import DataError

CAMVID_CLASSES: tuple[str, ...] = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)
# Colours of the SegNet tutorial's CamVid visualisation.
CAMVID_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)
CAMVID_VOID = 11


class CamVid(SegmentationDataset):
    """``root/{split}.txt`` of ``image annotation`` pairs if present, else ``{split}/`` + ``{split}annot/``."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transform: Transform | None = None,
        seed: int = 0,
        cache: bool = False,
    ) -> None:
        base = require_dir(absolute(root), "CamVid root")
        list_file = base / f"{split}.txt"
        if list_file.is_file():
            pairs = read_list_file(list_file, base)
        else:
            img_dir, ann_dir = base / split, base / f"{split}annot"
            if not img_dir.is_dir():
                raise DataError(
                    f"{base}: CamVid split '{split}' not found; expected list file {list_file} "
                    f"or folders {img_dir} and {ann_dir}"
                )
            require_dir(ann_dir, f"CamVid '{split}' annotation")
            images = list_images(img_dir)
            if not images:
                raise DataError(f"{img_dir}: no images found (.jpg/.png); check the CamVid split folder")
            pairs = pair_by_stem(images, ann_dir)
        mapping = {k: k for k in range(len(CAMVID_CLASSES))}
        mapping.update({CAMVID_VOID: IGNORE_INDEX, IGNORE_INDEX: IGNORE_INDEX})
        super().__init__(
            pairs, name="camvid", class_names=CAMVID_CLASSES, palette=np.array(CAMVID_PALETTE),
            label_map=make_label_map(mapping), transform=transform, seed=seed, cache=cache, root=base,
        )
