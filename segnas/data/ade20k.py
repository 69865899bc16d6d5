"""ADE20K SceneParsing (ADEChallengeData2016): 150 classes, raw 0 = other/ignored."""

from __future__ import annotations

import os

from segnas.data.base import SegmentationDataset, Transform
from segnas.data.files import absolute, list_images, pair_by_stem, require_dir
from segnas.data.labels import IGNORE_INDEX, bit_palette, make_label_map
from segnas.errors import DataError

ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
    "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van",
    "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle",
    "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase",
    "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
_SPLIT_DIRS = {"train": "training", "val": "validation", "training": "training", "validation": "validation"}


class ADE20K(SegmentationDataset):
    """``images/{training,validation}/*.jpg`` with ``annotations/.../*.png``; raw k -> k-1, 0 ignored.

    The palette is generated (bit-spread colours); ADE20K has no single official one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transform: Transform | None = None,
        seed: int = 0,
        cache: bool = False,
    ) -> None:
        base = require_dir(absolute(root), "ADE20K root")
        if split not in _SPLIT_DIRS:
            raise DataError(f"split: ADE20K has no split {split!r}; use 'train' or 'val'")
        sub = _SPLIT_DIRS[split]
        img_dir = require_dir(base / "images" / sub, f"ADE20K '{split}' image")
        ann_dir = require_dir(base / "annotations" / sub, f"ADE20K '{split}' annotation")
        images = list_images(img_dir)
        if not images:
            raise DataError(f"{img_dir}: no images found (.jpg/.png); check the ADE20K layout")
        mapping = {k: k - 1 for k in range(1, len(ADE20K_CLASSES) + 1)}
        mapping.update({0: IGNORE_INDEX, IGNORE_INDEX: IGNORE_INDEX})
        super().__init__(
            pair_by_stem(images, ann_dir), name="ade20k", class_names=ADE20K_CLASSES,
            palette=bit_palette(len(ADE20K_CLASSES) + 1)[1:], label_map=make_label_map(mapping),
            transform=transform, seed=seed, cache=cache, root=base,
        )
