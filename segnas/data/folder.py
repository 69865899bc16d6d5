"""Generic image/mask folders for user data: masks hold class indices, 255 ignored."""

from __future__ import annotations

import os
from collections.abc import Sequence

from segnas.data.base import SegmentationDataset, Transform
from segnas.data.files import absolute, list_images, pair_by_stem, require_dir
from segnas.data.labels import MAX_CLASSES, bit_palette
from segnas.errors import DataError


class ImageMaskFolder(SegmentationDataset):
    """``root/{split}/{image_dir}/*`` + ``root/{split}/{mask_dir}/<stem>.png`` (or ``root/{image_dir}/{split}``)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        num_classes: int,
        image_dir: str = "images",
        mask_dir: str = "masks",
        class_names: Sequence[str] | None = None,
        transform: Transform | None = None,
        seed: int = 0,
        cache: bool = False,
    ) -> None:
        base = require_dir(absolute(root), "dataset root")
        if not isinstance(num_classes, int) or not 1 <= num_classes <= MAX_CLASSES:
            raise DataError(f"num_classes: got {num_classes!r}; it must be an int in 1-{MAX_CLASSES}")
        if class_names is None:
            class_names = [f"class{k}" for k in range(num_classes)]
        elif len(class_names) != num_classes:
            raise DataError(
                f"class_names: {len(class_names)} names given but num_classes is {num_classes}; "
                "give one name per class"
            )
        layouts = [
            (base / split / image_dir, base / split / mask_dir),
            (base / image_dir / split, base / mask_dir / split),
        ]
        found = [(i, m) for i, m in layouts if i.is_dir()]
        if not found:
            raise DataError(
                f"{base}: split '{split}' not found; expected {layouts[0][0]} or {layouts[1][0]}"
            )
        img_dir, msk_dir = found[0]
        require_dir(msk_dir, f"'{split}' mask")
        images = list_images(img_dir)
        if not images:
            raise DataError(f"{img_dir}: no images found (.jpg/.png/.bmp/.tif/.webp); add images or fix the path")
        super().__init__(
            pair_by_stem(images, msk_dir), name=f"folder:{base.name}", class_names=class_names,
            palette=bit_palette(num_classes), label_map=None, transform=transform, seed=seed,
            cache=cache, root=base,
        )
