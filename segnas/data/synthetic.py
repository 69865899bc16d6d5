"""Procedural scenes where architecture choices matter, generated on the fly from a seed.

Each scene is built so that specific network abilities pay off:

* ``sky`` and ``water`` share one colour and one texture field, so they can only be
  told apart by position and neighbourhood (above or below the ``ground`` band):
  this rewards receptive field / context.
* ``ground`` and ``rough`` have the same mean colour and texture amplitude and differ
  only in texture frequency (a grating of ~8-12 px vs ~2.5-3.5 px period).
* ``disc``, ``box`` and ``triangle`` objects appear from ~3 px to a quarter of the
  image in radius, with overlapping colours, so shape at several scales matters.
* ``pole`` pixels are 1-3 px wide vertical poles and thin oblique wires, which vanish
  at coarse output strides: this rewards resolution.

Scene ``i`` of split ``s`` depends only on ``default_rng([seed, split_code(s), i])``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from segnas.data.base import SegmentationDataset, Transform
from segnas.errors import DataError

SYNTHETIC_CLASSES: tuple[str, ...] = ("sky", "water", "ground", "rough", "disc", "box", "triangle", "pole")
SYNTHETIC_PALETTE: tuple[tuple[int, int, int], ...] = (
    (110, 170, 230), (30, 70, 160), (140, 100, 50), (200, 160, 90),
    (220, 40, 40), (240, 210, 30), (160, 50, 200), (20, 20, 20),
)
SKY, WATER, GROUND, ROUGH, DISC, BOX, TRIANGLE, POLE = range(8)
SPLIT_CODES: dict[str, int] = {"train": 0, "val": 1, "test": 2}
DEFAULT_COUNTS: dict[str, int] = {"train": 256, "val": 64, "test": 64}
# Mean object colours per shape class; large jitter makes colour a hint, not the answer.
_OBJECT_COLOURS = {DISC: (200.0, 70.0, 60.0), BOX: (210.0, 190.0, 60.0), TRIANGLE: (150.0, 70.0, 190.0)}
_OBJECT_JITTER = 55.0


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Bilinearly upsampled Gaussian grid: a cheap stationary low-frequency field, std ~0.6."""
    gh, gw = int(h / cell) + 2, int(w / cell) + 2
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    y = np.arange(h, dtype=np.float32) / cell
    x = np.arange(w, dtype=np.float32) / cell
    y0, x0 = y.astype(np.intp), x.astype(np.intp)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    rows = grid[y0] * (1 - fy) + grid[y0 + 1] * fy
    return rows[:, x0] * (1 - fx) + rows[:, x0 + 1] * fx


def _grating(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, period: float) -> np.ndarray:
    """Sinusoidal texture of a given period (px) in a random direction."""
    theta = rng.uniform(0, math.pi)
    phase = rng.uniform(0, 2 * math.pi)
    k = 2 * math.pi / period
    return np.sin(k * (math.cos(theta) * xx + math.sin(theta) * yy) + phase)


def _boundary(rng: np.random.Generator, xx: np.ndarray, level: float, amp: float) -> np.ndarray:
    """A gently wavy horizontal line y(x), so region borders are not trivially straight."""
    w = xx.shape[1]
    out = np.full_like(xx, level)
    for _ in range(2):
        period = rng.uniform(0.5, 1.5) * w
        out += amp * rng.uniform(0.3, 1.0) * np.sin(2 * math.pi * xx / period + rng.uniform(0, 2 * math.pi))
    return out


def _shape_mask(
    rng: np.random.Generator, cls: int, dy: np.ndarray, dx: np.ndarray, r: float
) -> np.ndarray:
    """Pixels inside a disc, rotated box or rotated triangle of radius ~r centred at (0, 0)."""
    if cls == DISC:
        return dy * dy + dx * dx <= r * r
    a = rng.uniform(0, 2 * math.pi)
    if cls == BOX:
        c, s = math.cos(a), math.sin(a)
        u, v = dx * c + dy * s, dy * c - dx * s
        return (np.abs(u) <= r) & (np.abs(v) <= r * rng.uniform(0.45, 1.0))
    rr = 1.3 * r
    vx = [rr * math.cos(a + 2 * math.pi * k / 3) for k in range(3)]
    vy = [rr * math.sin(a + 2 * math.pi * k / 3) for k in range(3)]
    inside = np.ones(np.broadcast_shapes(dy.shape, dx.shape), dtype=bool)
    for k in range(3):  # counter-clockwise vertices: inside is left of every edge
        j = (k + 1) % 3
        inside &= (vx[j] - vx[k]) * (dy - vy[k]) - (vy[j] - vy[k]) * (dx - vx[k]) >= 0
    return inside


def render_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene: uint8 HxWx3 image and uint8 HxW labels (ids of SYNTHETIC_CLASSES)."""
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    scale = min(h, w)

    # Regions: sky above a wavy horizon, ground band, water below a wavy shore (most scenes).
    horizon = _boundary(rng, xx, h * rng.uniform(0.22, 0.4), 0.05 * h)
    shore = _boundary(rng, xx, h * rng.uniform(0.62, 0.8), 0.04 * h) if rng.random() < 0.85 else None
    label = np.where(yy < horizon, SKY, GROUND).astype(np.uint8)
    if shore is not None:
        label[np.broadcast_to(yy >= shore, (h, w))] = WATER
    ground = label == GROUND
    patches = _smooth_noise(rng, h, w, scale / 4)
    if ground.any():
        thr = np.quantile(patches[ground], rng.uniform(0.55, 0.8))
        label[ground & (patches > thr)] = ROUGH

    # Appearance: sky and water share colour and texture field; ground/rough differ by frequency.
    sw_colour = rng.uniform((90, 120, 160), (170, 200, 240)).astype(np.float32)
    gr_colour = rng.uniform((80, 70, 30), (150, 130, 90)).astype(np.float32)
    amp = rng.uniform(18, 30)
    sw_tex = 14 * _smooth_noise(rng, h, w, scale / 8)
    low_tex = amp * _grating(rng, yy, xx, rng.uniform(8, 12))
    high_tex = amp * _grating(rng, yy, xx, rng.uniform(2.5, 3.5))
    is_sw = label <= WATER
    tex = np.where(is_sw, sw_tex, np.where(label == ROUGH, high_tex, low_tex))
    image = np.where(is_sw[..., None], sw_colour, gr_colour) + tex[..., None]

    # Objects at several scales; every shape class at least once per scene.
    classes = [DISC, BOX, TRIANGLE] + list(rng.choice([DISC, BOX, TRIANGLE], size=rng.integers(0, 5)))
    rng.shuffle(classes)
    r_lo, r_hi = math.log(2.5), math.log(max(3.0, 0.25 * scale))
    for cls in classes:
        r = math.exp(rng.uniform(r_lo, r_hi))
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        y0, y1 = max(0, int(cy - 1.5 * r)), min(h, int(cy + 1.5 * r) + 2)
        x0, x1 = max(0, int(cx - 1.5 * r)), min(w, int(cx + 1.5 * r) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        inside = _shape_mask(rng, cls, yy[y0:y1] - cy, xx[:, x0:x1] - cx, r)
        colour = np.asarray(_OBJECT_COLOURS[cls]) + rng.uniform(-_OBJECT_JITTER, _OBJECT_JITTER, 3)
        label[y0:y1, x0:x1][inside] = cls
        image[y0:y1, x0:x1][inside] = colour

    # Thin structures: 1-3 px vertical poles and ~1-2 px oblique wires, drawn last.
    slots = max(1, (w - 3) // 6)  # poles sit in distinct 6 px slots so they never merge
    for slot in rng.choice(slots, size=min(slots, int(rng.integers(1, 4))), replace=False):
        width = int(rng.integers(1, 4))
        x = 6 * int(slot) + int(rng.integers(0, 3))
        top = int(rng.uniform(0, 0.45 * h))
        bottom = int(rng.uniform(0.55 * h, h)) + 1
        label[top:bottom, x : x + width] = POLE
        image[top:bottom, x : x + width] = rng.uniform(25, 70)
    if rng.random() < 0.6:
        ax, ay, bx, by = rng.uniform(0, w), rng.uniform(0, 0.5 * h), rng.uniform(0, w), rng.uniform(0, 0.5 * h)
        half = rng.uniform(0.5, 1.0)
        ex, ey = bx - ax, by - ay
        t = np.clip(((xx - ax) * ex + (yy - ay) * ey) / max(ex * ex + ey * ey, 1e-6), 0, 1)
        wire = (xx - ax - t * ex) ** 2 + (yy - ay - t * ey) ** 2 <= half * half
        label[wire] = POLE
        image[wire] = rng.uniform(25, 70)

    image *= rng.uniform(0.85, 1.15)
    image += rng.standard_normal((h, w, 3), dtype=np.float32) * 4.0
    return np.clip(image, 0, 255).astype(np.uint8), label


class SyntheticScenes(SegmentationDataset):
    """Built-in procedural dataset: no files, deterministic per (scene_seed, split, index).

    ``scene_seed`` selects the scenes (the dataset's identity, 0 unless asked
    otherwise); ``seed`` is the run's seed and only drives augmentation, so
    changing a run's seed does not change its data. Splits use disjoint streams.
    """

    procedural = True  # generated from data.synthetic_* options, no folder

    def __init__(
        self,
        split: str = "train",
        seed: int = 0,
        num_images: int | None = None,
        size: int | Sequence[int] = (96, 128),
        transform: Transform | None = None,
        cache: bool = False,
        scene_seed: int = 0,
    ) -> None:
        if split not in SPLIT_CODES:
            raise DataError(f"split: synthetic dataset has no split {split!r}; use one of {sorted(SPLIT_CODES)}")
        hw = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
        if len(hw) != 2 or min(hw) < 16:
            raise DataError(f"size: got {size!r}; synthetic scenes need (height, width) of at least 16 px")
        n = DEFAULT_COUNTS[split] if num_images is None else int(num_images)
        if n < 1:
            raise DataError(f"num_images: got {num_images!r}; the synthetic dataset needs at least 1 image")
        self.split = split
        self.scene_seed = int(scene_seed)
        self.size: tuple[int, int] = (hw[0], hw[1])
        super().__init__(
            list(range(n)), name="synthetic", class_names=SYNTHETIC_CLASSES,
            palette=np.array(SYNTHETIC_PALETTE), transform=transform, seed=seed, cache=cache,
        )

    def read_item(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        """Render scene ``key``; independent of any other scene, so any index is O(1)."""
        rng = np.random.default_rng([self.scene_seed, SPLIT_CODES[self.split], key])
        return render_scene(rng, *self.size)
