"""Planted-architecture datasets: procedural scenes built so that one architecture property should matter.

``planted-context``: every scene holds two *beacons*, a red and a green disc,
one near the left edge and one near the right edge, and a few grey *targets*
between them. A target's class is the colour of the beacon nearest to its
centre (``target-red`` or ``target-green``); beacons are labelled ``ground``
like the background, so the classes scored are the targets' and mIoU mostly
measures whether the cue was used. Targets of both classes are drawn from one
appearance distribution, and no target lies within the scene's *reach* (a
third of its width) of a beacon or nearly as close to one beacon as to the
other. A network has to carry a beacon's colour over at least that distance.

The geometry follows the scene's size (:func:`geometry`): beacons lie within
the outer third of the width but at most 1.5 heights from the edge, so wide
scenes keep room for targets a third of the width from both. At 64x96 (the
demo's scenes, reach 32 px) a 1/8 FasterSeg branch's receptive field covers
the scene and such networks learn the cue given enough epochs; at 32x448
(reach 149 px) the cue lies at the edge of a 1/8 branch's theoretical
receptive field (120-200 px radius in the planted search space, its effective
field far smaller) and well inside a 1/32 branch's (220-440 px), and the
property becomes necessary.
``benchmarks/planted.py --matters`` measures this by retraining pairs of
random networks of equal cost with and without the property.

Scene ``i`` of split ``s`` depends only on ``default_rng([seed, PLANTED_CODE, split_code(s), i])``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from segnas.data.base import SegmentationDataset, Transform
from segnas.data.synthetic import DEFAULT_COUNTS, SPLIT_CODES, _smooth_noise
from segnas.errors import DataError

CONTEXT_CLASSES: tuple[str, ...] = ("ground", "target-red", "target-green")
CONTEXT_PALETTE: tuple[tuple[int, int, int], ...] = ((90, 90, 90), (240, 80, 80), (80, 220, 110))
GROUND, TARGET_RED, TARGET_GREEN = range(3)
BEACON_RED, BEACON_GREEN = "red", "green"  # beacons are no class of their own: their pixels are ground
MIN_MARGIN = 10.0  # px by which the nearest beacon must be nearer than the other
PLANTED_CODE = 7  # keeps these scenes' random streams apart from the synthetic dataset's
_BEACON_COLOURS = {BEACON_RED: (210.0, 45.0, 45.0), BEACON_GREEN: (45.0, 185.0, 70.0)}


def geometry(h: int, w: int) -> tuple[float, float]:
    """(beacon zone, reach) in px: beacons' centres lie within ``zone`` of the left or right edge;
    targets' centres lie at least ``reach`` from both beacons' centres."""
    return min(w / 3, 1.5 * h), w / 3


def _place_targets(rng: np.random.Generator, h: int, w: int, beacons: list[tuple[float, float]],
                   count: int) -> list[tuple[float, float, float]]:
    """Up to ``count`` target (cy, cx, half-size) clear of the beacons and of each other, by rejection."""
    reach = geometry(h, w)[1]
    targets: list[tuple[float, float, float]] = []
    for _ in range(40 * count):
        if len(targets) == count:
            break
        half = rng.uniform(3.5, 7.0)
        cy, cx = rng.uniform(half + 1, h - half - 1), rng.uniform(half + 1, w - half - 1)
        d = sorted(math.hypot(cy - by, cx - bx) for by, bx in beacons)
        if d[0] < reach or d[1] - d[0] < MIN_MARGIN:
            continue
        if any(abs(cy - ty) < half + th + 3 and abs(cx - tx) < half + th + 3 for ty, tx, th in targets):
            continue
        targets.append((cy, cx, half))
    return targets


def render_context(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One ``planted-context`` scene: uint8 HxWx3 image, uint8 HxW labels, and its layout.

    The layout lists the beacons ``(colour, cy, cx, radius)`` and the targets
    ``(class, cy, cx, half_size)``.
    """
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    base = rng.uniform(80, 140)
    image = np.empty((h, w, 3), dtype=np.float32)
    image[...] = base + rng.uniform(-15, 15, 3)
    image += (18 * _smooth_noise(rng, h, w, min(h, w) / 6))[..., None]
    label = np.zeros((h, w), dtype=np.uint8)

    red_left = rng.random() < 0.5
    zone = geometry(h, w)[0]
    beacons = []
    for colour in (BEACON_RED, BEACON_GREEN):
        left = (colour == BEACON_RED) == red_left
        r = rng.uniform(6.0, 9.0)
        cx = rng.uniform(r, zone) if left else rng.uniform(w - zone, w - r)
        cy = rng.uniform(r, h - r)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        image[inside] = np.asarray(_BEACON_COLOURS[colour]) + rng.uniform(-25, 25, 3)
        beacons.append((colour, cy, cx, r))

    targets = []
    for cy, cx, half in _place_targets(rng, h, w, [(b[1], b[2]) for b in beacons], int(rng.integers(4, 9))):
        dists = [math.hypot(cy - b[1], cx - b[2]) for b in beacons]
        cls = TARGET_RED if beacons[int(np.argmin(dists))][0] == BEACON_RED else TARGET_GREEN
        y0, y1 = int(round(cy - half)), int(round(cy + half)) + 1
        x0, x1 = int(round(cx - half)), int(round(cx + half)) + 1
        label[y0:y1, x0:x1] = cls
        image[y0:y1, x0:x1] = rng.uniform(170, 230)  # one grey distribution for both classes
        targets.append((cls, cy, cx, half))

    image += rng.standard_normal((h, w, 3), dtype=np.float32) * 6.0
    layout = {"beacons": beacons, "targets": targets}
    return np.clip(image, 0, 255).astype(np.uint8), label, layout


class PlantedContext(SegmentationDataset):
    """The ``planted-context`` dataset: generated on the fly, deterministic per (scene_seed, split, index).

    Same options as the ``synthetic`` dataset (``data.synthetic_train``,
    ``synthetic_val``, ``synthetic_size``, ``synthetic_seed``).
    """

    procedural = True

    def __init__(self, split: str = "train", seed: int = 0, num_images: int | None = None,
                 size: int | Sequence[int] = (64, 96), transform: Transform | None = None, cache: bool = False,
                 scene_seed: int = 0) -> None:
        if split not in SPLIT_CODES:
            raise DataError(f"split: planted-context has no split {split!r}; use one of {sorted(SPLIT_CODES)}")
        hw = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
        if len(hw) != 2 or hw[0] < 32 or hw[1] < 96:
            raise DataError(f"size: got {size!r}; planted-context scenes need (height, width) of at least (32, 96) "
                            "px so targets fit clear of both beacons")
        n = DEFAULT_COUNTS[split] if num_images is None else int(num_images)
        if n < 1:
            raise DataError(f"num_images: got {num_images!r}; the dataset needs at least 1 image")
        self.split, self.scene_seed, self.size = split, int(scene_seed), (hw[0], hw[1])
        super().__init__(list(range(n)), name="planted-context", class_names=CONTEXT_CLASSES,
                         palette=np.array(CONTEXT_PALETTE), transform=transform, seed=seed, cache=cache)

    def scene_rng(self, key: int) -> np.random.Generator:
        return np.random.default_rng([self.scene_seed, PLANTED_CODE, SPLIT_CODES[self.split], key])

    def read_item(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        image, label, _ = render_context(self.scene_rng(key), *self.size)
        return image, label
