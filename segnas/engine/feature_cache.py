"""Encoder outputs kept on disk for a two-stage search: computed once per (encoder weights, images), read by every trial.

In a search's first stage the encoder is fixed and only the decoder trains
(Nekrasov et al., Sect. 3.2.1), so the encoder's outputs are the same for
every trial. They are computed once and saved under a name that is a digest
of the encoder's weights (parameters and BatchNorm statistics) and of the
dataset's identity (its name, folder, classes, label map, the images chosen,
their files' sizes and modification times, and the transform): changing
either gives another file, never a stale one.
A file is written atomically and read with ``weights_only=True``.

The images are read with the dataset's own transform, which must be free of
random augmentation (``EvalTransform``: normalisation, or a fixed resize): an output on
disk stands for one fixed image, so the first stage sees every image as it
is, without crops, flips or rescaling. Images of one cache must share a size
(they are batched, and the decoder's logits are produced at that size).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError
from .checkpoint import atomic_save

FORMAT = 1
_SKIP = {"transform", "_cache", "epoch", "seed", "palette"}  # augmentation state and display only


def state_digest(module: nn.Module) -> str:
    """A digest of every tensor of ``module``'s state (names, dtypes, shapes and values)."""
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        t = value.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """``value`` as JSON-able data, objects by their type and fields (for a digest; no memory addresses)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "__dict__"):
        return {"type": type(value).__qualname__, **{k: _plain(v) for k, v in sorted(vars(value).items())}}
    return repr(value)


def dataset_identity(dataset: Any) -> dict[str, Any]:
    """What makes a dataset's images and masks what they are: its fields (items, folder, classes, label map,
    scene settings) and its transform; augmentation state and colours excluded."""
    fields = {k: _plain(v) for k, v in sorted(vars(dataset).items()) if k not in _SKIP}
    return {"type": type(dataset).__qualname__, "fields": fields, "transform": _plain(dataset.transform),
            "length": len(dataset), "files": _file_stamps(getattr(dataset, "items", []))}


def _file_stamps(items: Any) -> list[list[int]]:
    """(size, modification time) of every file an item names: a file replaced in place changes the digest."""
    out = []
    for value in items if isinstance(items, (list, tuple)) else [items]:
        if isinstance(value, (list, tuple)):
            out += _file_stamps(value)
        elif isinstance(value, (str, Path)) and Path(value).is_file():
            st = Path(value).stat()
            out.append([st.st_size, st.st_mtime_ns])
    return out


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


class CachedFeatures(Dataset):
    """Cached encoder outputs as a dataset: item ``i`` is ``({"feats": [4 maps], "teacher": logits?}, mask)``.

    It behaves like the image datasets where the trainer and the evaluation
    need it (``num_classes``, ``ignore_index``, ``class_names``, ``set_epoch``).
    """

    def __init__(self, payload: dict[str, Any], teacher: torch.Tensor | None = None) -> None:
        self.feats: list[torch.Tensor] = list(payload["feats"])
        self.masks: torch.Tensor = payload["masks"]
        self.size = tuple(int(s) for s in payload["size"])
        self.num_classes, self.ignore_index = int(payload["num_classes"]), int(payload["ignore_index"])
        self.class_names = list(payload["class_names"])
        if teacher is not None and (teacher.shape[0] != len(self.masks) or tuple(teacher.shape[-2:]) != self.size
                                    or teacher.shape[1] != self.num_classes):
            raise ConfigError(f"teacher logits of shape {tuple(teacher.shape)} do not fit the "
                              f"{len(self.masks)} stage-1 images of {self.num_classes} classes at "
                              f"{self.size[0]}x{self.size[1]}; give N x C x H x W logits of these images, in order")
        self.teacher = teacher

    def __len__(self) -> int:
        return len(self.masks)

    def set_epoch(self, epoch: int) -> None:
        """Nothing to re-draw: the images carry no augmentation."""

    def __getitem__(self, index: int) -> tuple[dict[str, Any], torch.Tensor]:
        inputs: dict[str, Any] = {"feats": [f[index] for f in self.feats]}
        if self.teacher is not None:
            inputs["teacher"] = self.teacher[index]
        return inputs, self.masks[index].long()


def _batches(dataset: Any, batch_size: int = 8) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


@torch.no_grad()
def _compute(fn: Any, dataset: Any, device: torch.device) -> tuple[list[list[torch.Tensor]], list[torch.Tensor]]:
    outs, masks = [], []
    try:
        for images, mask in _batches(dataset):
            out = fn(images.to(device))
            outs.append([o.to("cpu") for o in (out if isinstance(out, (list, tuple)) else [out])])
            masks.append(mask)
    except RuntimeError as e:
        if "stack expects each tensor to be equal size" in str(e):
            raise ConfigError(f"dataset {getattr(dataset, 'name', '')}: the first stage caches whole images, "
                              "which must share one size (CamVid, Cityscapes and synthetic scenes do); use "
                              "such a dataset or resize the images") from None
        raise
    return outs, masks


def cache_path(folder: str | Path, encoder: nn.Module, dataset: Any) -> Path:
    """Where the outputs of ``encoder`` on ``dataset`` are (or will be) kept in ``folder``."""
    key = _digest({"format": FORMAT, "encoder": state_digest(encoder), "data": dataset_identity(dataset)})
    return Path(folder) / f"features-{key[:24]}.pt"


def encoder_outputs(folder: str | Path, encoder: nn.Module, dataset: Any, device: torch.device) -> tuple[Path, bool]:
    """The cache file of ``encoder`` (in eval mode) on ``dataset``, computed now only if absent: (path, computed)."""
    path = cache_path(folder, encoder, dataset)
    if path.is_file():
        return path, False
    was_training = encoder.training
    encoder.eval()
    try:
        outs, masks = _compute(lambda x: encoder(x), dataset, device)
    finally:
        encoder.train(was_training)
    feats = [torch.cat([o[k] for o in outs]) for k in range(len(outs[0]))]
    all_masks = torch.cat(masks)
    payload = {"format": FORMAT, "feats": feats, "masks": all_masks.to(torch.uint8 if all_masks.max() < 256
                                                                       else torch.int64),
               "size": list(all_masks.shape[-2:]), "num_classes": dataset.num_classes,
               "ignore_index": dataset.ignore_index, "class_names": list(dataset.class_names)}
    return atomic_save(payload, path), True


def teacher_outputs(folder: str | Path, teacher: nn.Module, dataset: Any, device: torch.device) -> tuple[Path, bool]:
    """Logits of a teacher network on ``dataset``, cached like the encoder outputs: (path, computed)."""
    path = cache_path(folder, teacher, dataset).with_name(cache_path(folder, teacher, dataset).name.replace(
        "features-", "teacher-"))
    if path.is_file():
        return path, False
    teacher.eval()
    outs, _ = _compute(lambda x: teacher(x), dataset, device)
    return atomic_save({"format": FORMAT, "logits": torch.cat([o[0] for o in outs])}, path), True


def load_features(path: str | Path, teacher: str | Path | None = None) -> CachedFeatures:
    """The dataset of a cache file (``teacher``: a logits file from :func:`teacher_outputs` or the user's)."""
    # memory-mapped: trials (and workers) read the pages they use, sharing the page cache, not a copy each
    payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    logits = None
    if teacher is not None:
        try:
            loaded = torch.load(teacher, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many types for foreign files
            raise ConfigError(f"{teacher}: cannot read teacher logits ({type(e).__name__})") from None
        logits = loaded["logits"] if isinstance(loaded, dict) else loaded
        if not isinstance(logits, torch.Tensor) or logits.dim() != 4:
            raise ConfigError(f"{teacher}: not a tensor of N x C x H x W teacher logits (or a dict with 'logits')")
        logits = logits.float()
    return CachedFeatures(payload, logits)


__all__ = ["CachedFeatures", "cache_path", "dataset_identity", "encoder_outputs", "load_features", "state_digest",
           "teacher_outputs"]
