"""A retrained run's network on a few val images: per-class IoU and image | ground truth | prediction panels.

The val data is rebuilt from the checkpoint's own config, as ``segnas evaluate`` does, so the report needs no
data options; the first N images of the val split are scored (the same ones on every report). Where the data
cannot be rebuilt here (a dataset folder on another machine), the network is still reported and the reason
is given in place of the evaluation.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..config import DataConfig
from ..errors import SegnasError
from ..genotype import Genotype

MAX_IMAGES = 64  # --images: a report shows a few predictions, not a test set


@dataclass
class TrainedRun:
    """A retrained network with what the report shows of it."""

    model: nn.Module
    genotype: Genotype
    checkpoint: Path
    step: int | None
    class_names: list[str]
    best: dict[str, Any] | None  # the checkpoint's own val metrics (the whole val set, at its step)
    metrics: dict[str, Any] | None = None  # on the first ``images`` val images
    panels: list[bytes] = field(default_factory=list)  # PNG: image | ground truth | prediction
    image_size: tuple[int, int] | None = None
    images: int = 0
    data_note: str | None = None  # why there is no evaluation


def _data_config(saved: dict[str, Any]) -> DataConfig:
    names = {f.name for f in dataclasses.fields(DataConfig)}
    return DataConfig(**{k: v for k, v in saved.items() if k in names})


def evaluate_checkpoint(path: Path, images: int, device: str = "cpu") -> TrainedRun:
    """Load the network of checkpoint ``path`` and score it on the first ``images`` val images (0: none)."""
    from ..data import EvalTransform, build_dataset
    from ..engine import load_checkpoint, model_from_checkpoint
    from ..engine.evaluate import evaluate_deployed
    from ..engine.loaders import data_root, dataset_kwargs, eval_loader

    ckpt = load_checkpoint(path)
    model, genotype = model_from_checkpoint(ckpt)
    names = ckpt.get("class_names")
    num_classes = int(ckpt["num_classes"])
    class_names = [str(n) for n in names] if isinstance(names, (list, tuple)) and len(names) == num_classes \
        else [f"class {k}" for k in range(num_classes)]
    best = ckpt.get("metrics") if isinstance(ckpt.get("metrics"), dict) else None
    step = ckpt.get("step") if isinstance(ckpt.get("step"), int) else None
    out = TrainedRun(model=model.eval(), genotype=genotype, checkpoint=path, step=step, class_names=class_names,
                     best=best)
    if images <= 0:
        return out
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    saved = config.get("data") if isinstance(config.get("data"), dict) else {}
    try:
        cfg = _data_config(saved)
        kwargs = dataset_kwargs(cfg, cfg.val_split)
        kwargs.pop("check", None)  # a few images are read, not the whole split scanned
        ds = build_dataset(cfg.dataset, data_root(cfg), cfg.val_split, transform=EvalTransform(),
                           seed=int(config.get("seed", 0)), **kwargs)
        if ds.num_classes != num_classes:
            raise SegnasError(f"the val data has {ds.num_classes} classes, the network {num_classes}")
        ds = ds.subset(range(min(images, len(ds))))
        with tempfile.TemporaryDirectory(prefix="segnas-report-") as tmp:
            metrics = evaluate_deployed(model, eval_loader(ds), num_classes, device, ds.ignore_index,
                                        save_dir=Path(tmp), palette=ds.palette, max_images=len(ds))
            out.panels = [p.read_bytes() for p in sorted(Path(tmp).glob("pred_*.png"))]
        image, _ = ds[0]
        out.image_size = (int(image.shape[-2]), int(image.shape[-1]))
    except (SegnasError, OSError, TypeError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        out.data_note = f"val data ({saved.get('dataset', 'unknown dataset')}) not available here: {reason}"
        return out
    out.metrics, out.images = metrics, len(ds)
    return out


__all__ = ["MAX_IMAGES", "TrainedRun", "evaluate_checkpoint"]
