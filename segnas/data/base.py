"""The one dataset type every segnas loader returns: pairs of files plus class metadata.

Augmentation randomness comes from ``np.random.default_rng([seed, epoch, index])``
so a sample's augmentation depends only on those three numbers: identical for
any DataLoader worker count, and a run resumed at epoch ``e`` sees exactly the
augmentations it would have seen.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from segnas.data.files import read_image, read_mask
from segnas.data.labels import IGNORE_INDEX, MAX_CLASSES, check_palette, map_and_check
from segnas.errors import ConfigError, DataError

Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[torch.Tensor, torch.Tensor]]


def to_tensors(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Untransformed sample as tensors: image float32 3xHxW in [0, 1], mask int64 HxW."""
    img = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)
    return img, torch.from_numpy(mask.astype(np.int64))


class SegmentationDataset(Dataset):
    """Image/mask pairs with class names, palette and an optional raw-to-train-id label map.

    ``items`` holds ``(image_path, mask_path)`` pairs for file datasets; subclasses
    that generate samples (see :mod:`segnas.data.synthetic`) store their own hashable
    keys there and override :meth:`read_item`, keeping caching, subsets and transforms.
    """

    ignore_index: int = IGNORE_INDEX

    def __init__(
        self,
        items: Sequence[Hashable],
        *,
        name: str,
        class_names: Sequence[str],
        palette: np.ndarray,
        label_map: np.ndarray | None = None,
        transform: Transform | None = None,
        seed: int = 0,
        cache: bool = False,
        root: Path | None = None,
    ) -> None:
        where = str(root) if root is not None else name
        if int(seed) < 0:
            raise ConfigError(f"seed: got {seed}; it must be >= 0")
        if not items:
            raise DataError(f"{where}: dataset {name} has 0 images; check the root folder and split")
        if not 1 <= len(class_names) <= MAX_CLASSES:
            raise DataError(f"{where}: num_classes is {len(class_names)}; it must be 1-{MAX_CLASSES}")
        if label_map is not None:
            label_map = np.asarray(label_map)
            if label_map.shape != (256,) or label_map.dtype != np.uint8:
                raise DataError(f"{where}: label_map must be a 256-entry uint8 array")
        self.items: list[Any] = list(items)
        self.name = name
        self.root = root
        self.class_names: list[str] = list(class_names)
        self.num_classes = len(self.class_names)
        self.palette = check_palette(palette, self.num_classes, where)
        self.label_map = label_map
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self._cache: dict[Hashable, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None

    @property
    def pairs(self) -> list[Any]:
        """The ``(image_path, mask_path)`` pairs (scene keys for generated datasets)."""
        return self.items

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={len(self)}, num_classes={self.num_classes})"

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream; call before each epoch (not seen by persistent workers)."""
        self.epoch = int(epoch)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded, validated sample: uint8 HxWx3 RGB image and uint8 HxW train-id mask.

        Returned arrays may be shared with the cache: treat them as read-only.
        """
        key = self.items[index]
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        sample = self.read_item(key)
        if self._cache is not None:
            for arr in sample:
                arr.flags.writeable = False
            self._cache[key] = sample
        return sample

    def read_item(self, key: Any) -> tuple[np.ndarray, np.ndarray]:
        """Read one ``(image_path, mask_path)`` pair, checking sizes and label values."""
        image_path, mask_path = Path(key[0]), Path(key[1])
        image = read_image(image_path)
        raw = read_mask(mask_path)
        if raw.shape != image.shape[:2]:
            (mh, mw), (ih, iw) = raw.shape, image.shape[:2]
            raise DataError(
                f"{mask_path}: mask is {mh}x{mw} but image {image_path} is {ih}x{iw}; "
                "masks must match their image size"
            )
        return image, map_and_check(raw, self.label_map, self.num_classes, mask_path, self.name)

    def rng(self, index: int) -> np.random.Generator:
        """The augmentation generator of one sample in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self.items):
            if -len(self.items) <= index < 0:
                index += len(self.items)
            else:
                raise IndexError(f"index {index} out of range for {len(self.items)} samples")
        image, mask = self.load(index)
        if self.transform is None:
            return to_tensors(image, mask)
        return self.transform(image, mask, self.rng(index))

    def subset(self, indices: Sequence[int]) -> SegmentationDataset:
        """A view on some samples sharing metadata, transform and cache (for search splits)."""
        n = len(self.items)
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise DataError(f"{self.name}: subset indices {bad[:5]} out of range for {n} samples")
        if not idx:
            raise DataError(f"{self.name}: subset is empty; a split must select at least one sample")
        view = copy.copy(self)
        view.items = [self.items[i] for i in idx]
        return view
