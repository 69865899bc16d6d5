"""Reading images, masks and list files, turning every user-data problem into a DataError.

Datasets only ever touch the disk through these helpers, so every message names
the full path of the offending file and says how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from segnas.errors import DataError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# PIL raises a zoo of exception types for broken files; all of them mean "unreadable".
_PIL_FAILURES = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def absolute(path: str | os.PathLike[str]) -> Path:
    """Absolute path without resolving symlinks, so messages show the path the user knows."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def require_dir(path: Path, what: str) -> Path:
    """Fail with one line when a dataset folder is missing."""
    if not path.is_dir():
        raise DataError(f"{path}: {what} folder not found; check the dataset root and layout")
    return path


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise DataError(f"{path}: file not found; restore it or remove it from the dataset")
    img = None
    try:
        img = Image.open(path)
        img.load()
    except _PIL_FAILURES as exc:
        if img is not None:
            img.close()
        raise DataError(
            f"{path}: cannot read image ({_one_line(exc)}); the file is corrupt or not an image, "
            "re-export it or remove it from the dataset"
        ) from None
    return img


def read_image(path: Path) -> np.ndarray:
    """Decode an image as a writable uint8 HxWx3 RGB array (grey and RGBA are converted)."""
    with _open(path) as img:
        if img.mode != "RGB":
            try:
                img = img.convert("RGB")
            except _PIL_FAILURES as exc:
                raise DataError(
                    f"{path}: cannot convert {img.mode} image to RGB ({_one_line(exc)}); "
                    "re-export it as 8-bit RGB"
                ) from None
        return np.array(img, dtype=np.uint8)


def read_mask(path: Path) -> np.ndarray:
    """Decode a mask as uint8 HxW raw label values; palette PNGs give their indices, not colours."""
    with _open(path) as img:
        mode = img.mode
        if mode in ("L", "P", "1"):
            return np.array(img, dtype=np.uint8)
        if mode.startswith("I"):
            arr = np.asarray(img)
            top = int(arr.max()) if arr.size else 0
            if top > 255 or (arr.size and int(arr.min()) < 0):
                raise DataError(
                    f"{path}: mask holds values up to {top}; masks must be 8-bit class indices (0-255)"
                )
            return arr.astype(np.uint8)
    raise DataError(
        f"{path}: mask has {mode} pixels; masks must be single-channel PNGs of class indices "
        "(greyscale or palette), not colour images"
    )


def list_images(folder: Path) -> list[Path]:
    """Image files in a folder, sorted, by known extension (case-insensitive)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def pair_by_stem(
    images: list[Path], mask_dir: Path, mask_suffix: str = ".png", image_suffix: str = ""
) -> list[tuple[Path, Path]]:
    """Pair each image with ``mask_dir/<stem><mask_suffix>``; fail on any unmatched name.

    ``image_suffix`` is stripped from image stems first (e.g. Cityscapes' ``_leftImg8bit``).
    """
    if not images:
        raise DataError(f"{mask_dir}: no images to pair with; the image folder is empty")
    masks = {p.name: p for p in mask_dir.iterdir() if p.is_file()}
    pairs: list[tuple[Path, Path]] = []
    missing: list[tuple[Path, Path]] = []
    used: set[str] = set()
    for img in images:
        stem = img.stem
        if image_suffix and stem.endswith(image_suffix):
            stem = stem[: -len(image_suffix)]
        name = stem + mask_suffix
        if name in masks:
            pairs.append((img, masks[name]))
            used.add(name)
        else:
            missing.append((img, mask_dir / name))
    if missing:
        extra = sorted(n for n in masks if n.endswith(mask_suffix) and n not in used)
        hint = f"; unmatched masks there include {', '.join(extra[:3])}" if extra else ""
        img, expected = missing[0]
        raise DataError(
            f"{img}: no mask {expected} ({len(missing)} image(s) without a mask{hint}); "
            "image and mask file names must match"
        )
    return pairs


def read_list_file(list_path: Path, root: Path) -> list[tuple[Path, Path]]:
    """Parse ``image annotation`` lines (relative to root; a leading '/' is tolerated)."""
    pairs: list[tuple[Path, Path]] = []
    with open(list_path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 2:
                raise DataError(
                    f"{list_path}:{lineno}: expected 'image annotation' (two paths), got {line.strip()!r}"
                )
            pair = tuple(absolute(root / p.lstrip("/")) for p in parts)
            for p in pair:
                if not p.is_file():
                    raise DataError(
                        f"{list_path}:{lineno}: {p} does not exist; fix the path or remove the line"
                    )
            pairs.append((pair[0], pair[1]))
    if not pairs:
        raise DataError(f"{list_path}: list file has no image entries; add 'image annotation' lines")
    return pairs


def read_id_list(list_path: Path) -> list[str]:
    """Parse a list of sample ids, one per line (VOC ImageSets style)."""
    with open(list_path, encoding="utf-8") as fh:
        ids = [ln.split()[0] for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
    if not ids:
        raise DataError(f"{list_path}: split list is empty; add one image id per line")
    return ids
