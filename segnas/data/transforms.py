"""Train/eval transforms ``(image, mask, rng) -> (image tensor, mask tensor)`` and visual helpers.

Scaling and cropping happen in one PIL resize of only the crop window (``box=``),
so a 2x upscale costs as much as resizing the crop, not the whole enlarged image.
All randomness comes from the rng passed in, keeping samples reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from segnas.data.labels import IGNORE_INDEX
from segnas.errors import ConfigError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _pair(size: int | Sequence[int] | None, field: str) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    if len(hw) != 2 or min(hw) < 1:
        raise ConfigError(f"{field}: expected (height, width) of positive ints, got {size!r}")
    return hw  # type: ignore[return-value]


def _window(
    image: np.ndarray, mask: np.ndarray, out_hw: tuple[int, int], box: tuple[float, float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Resize the source region ``box`` (x0, y0, x1, y1) to ``out_hw``: bilinear image, nearest mask."""
    h, w = mask.shape
    size = (out_hw[1], out_hw[0])
    if size == (w, h) and box == (0.0, 0.0, float(w), float(h)):
        return image, mask
    img = Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.BILINEAR, box=box)
    msk = Image.fromarray(np.ascontiguousarray(mask)).resize(size, Image.NEAREST, box=box)
    return np.asarray(img), np.asarray(msk)


class _Normalizer:
    """uint8 HxWx3 -> normalised float32 3xHxW tensor in one fused pass."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ConfigError(f"mean/std: need 3 values each and positive std, got {mean!r}, {std!r}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._shift = torch.tensor([m * 255.0 for m in self.mean]).view(3, 1, 1)
        self._scale = torch.tensor([1.0 / (s * 255.0) for s in self.std]).view(3, 1, 1)

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if not (image.flags.writeable and image.flags.c_contiguous):
            image = np.array(image)  # torch.from_numpy warns on read-only (cached / PIL) arrays
        t = torch.from_numpy(image).permute(2, 0, 1).float()
        return t.sub_(self._shift).mul_(self._scale)


class TrainTransform:
    """Random scale, random crop (pad: image 0 = mean colour, mask ignore), h-flip, normalise."""

    def __init__(
        self,
        crop_size: int | tuple[int, int] | None,
        scale_range: tuple[float, float] | None = (0.5, 2.0),
        hflip: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        self.crop_size = _pair(crop_size, "crop_size")
        if scale_range is not None and not 0 < scale_range[0] <= scale_range[1]:
            raise ConfigError(f"scale_range: need 0 < low <= high, got {scale_range!r}")
        self.scale_range = scale_range
        self.hflip = hflip
        self.ignore_index = int(ignore_index)
        self.normalize = _Normalizer(mean, std)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = mask.shape
        # Fixed draw order (scale, y, x, flip) so every sample consumes the stream identically.
        s = float(rng.uniform(*self.scale_range)) if self.scale_range else 1.0
        ry, rx, flip = rng.random(), rng.random(), rng.random() < 0.5
        sh, sw = max(1, round(h * s)), max(1, round(w * s))
        ch, cw = self.crop_size if self.crop_size else (sh, sw)
        oh, ow = min(ch, sh), min(cw, sw)
        y0 = int(ry * (sh - oh + 1))
        x0 = int(rx * (sw - ow + 1))
        fy, fx = h / sh, w / sw
        box = (x0 * fx, y0 * fy, (x0 + ow) * fx, (y0 + oh) * fy)
        image, mask = _window(image, mask, (oh, ow), box)
        img = self.normalize(image)
        msk = torch.from_numpy(mask.astype(np.int64))
        if (oh, ow) != (ch, cw):
            padded = img.new_zeros((3, ch, cw))
            padded[:, :oh, :ow] = img
            pmask = msk.new_full((ch, cw), self.ignore_index)
            pmask[:oh, :ow] = msk
            img, msk = padded, pmask
        if self.hflip and flip:
            img, msk = img.flip(-1), msk.flip(-1)
        return img, msk


class EvalTransform:
    """Normalise only; with ``size`` also resize (image bilinear, mask nearest) for batching."""

    def __init__(
        self,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        size: int | tuple[int, int] | None = None,
    ) -> None:
        self.size = _pair(size, "size")
        self.normalize = _Normalizer(mean, std)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.size is not None:
            h, w = mask.shape
            image, mask = _window(image, mask, self.size, (0.0, 0.0, float(w), float(h)))
        return self.normalize(image), torch.from_numpy(mask.astype(np.int64))


def denormalize(
    tensor: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """Undo normalisation of a 3xHxW (or 1x3xHxW) tensor into a uint8 HxWx3 image for viewing."""
    t = tensor.detach().to("cpu", torch.float32)
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"denormalize expects a 3xHxW tensor, got shape {tuple(t.shape)}")
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    out = (t * s + m).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return out.permute(1, 2, 0).contiguous().numpy()


def colorize(mask: np.ndarray | torch.Tensor, palette: np.ndarray) -> np.ndarray:
    """Class-index mask -> RGB uint8 via the palette; ignore and unknown values are black."""
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    pal = np.asarray(palette, dtype=np.uint8)
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: min(len(pal), 255)] = pal[:255]
    idx = np.where((m >= 0) & (m < len(pal)) & (m < 255), m, 255).astype(np.uint8)
    return lut[idx]
