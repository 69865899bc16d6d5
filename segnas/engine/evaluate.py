"""Evaluation: one confusion matrix over a dataset, plus optional prediction images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from ..data import colorize, denormalize
from ..metrics import ConfusionMatrix
from . import distributed
from .loaders import EvalShard, to_device


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: str | torch.device = "cpu",
             ignore_index: int = 255, save_dir: Path | None = None, palette: np.ndarray | None = None,
             max_images: int = 0, channels_last: bool = False) -> dict:
    """Metrics of ``model`` on ``loader``; writes up to ``max_images`` image|truth|prediction PNGs.

    A loader from ``eval_loader`` under torchrun holds this process's share of the set: the shares'
    confusion matrices are summed, so every process returns the metrics of the whole set (and rank 0
    alone writes images)."""
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index)
    saved = 0
    sharded = isinstance(getattr(loader, "sampler", None), EvalShard)
    if sharded and not distributed.is_main():
        save_dir = None
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for images, masks in loader:
        images = to_device(images, device, fmt)
        with torch.inference_mode():  # the forward only: the confusion matrix must stay a normal tensor
            pred = model(images).argmax(1).cpu()  # (gloo's all_reduce writes it outside inference mode)
        cm.update(pred, masks)
        if save_dir is not None and saved < max_images and palette is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            for img, gt, pr in zip(images.cpu(), masks, pred):
                if saved >= max_images:
                    break
                panel = np.concatenate([denormalize(img), colorize(gt.numpy(), palette),
                                        colorize(pr.numpy(), palette)], axis=1)
                Image.fromarray(panel).save(save_dir / f"pred_{saved:04d}.png")
                saved += 1
    model.train(was_training)
    if sharded:
        cm.matrix = distributed.all_reduce_sum(cm.matrix.to(device)).cpu()
    out = cm.compute()
    out["confusion"] = cm.matrix.tolist()
    return out


def evaluate_deployed(model: nn.Module, loader: DataLoader, num_classes: int, device: str | torch.device = "cpu",
                      ignore_index: int = 255, **kwargs) -> dict:
    """:func:`evaluate` on the network as users deploy it (``segnas.backends.deploy_module``: auxiliary heads
    dropped, BatchNorm folded, channels_last): what ``segnas evaluate`` and reports score, and faster. The
    format is fixed rather than timed per network (``faster_format``): the two formats' logits differ in the
    last bits, and a timing-dependent choice could flip a pixel's argmax between two evaluations."""
    from ..backends import deploy_module

    return evaluate(deploy_module(model, device), loader, num_classes, device, ignore_index, channels_last=True,
                    **kwargs)


def per_class_table(metrics: dict, class_names: list[str]) -> str:
    """A plain-text table of per-class IoU and the summary metrics."""
    width = max([len(n) for n in class_names] + [10])
    lines = [f"{'class':<{width}}  {'IoU':>7}"]
    for name, iou in zip(class_names, metrics["iou"]):
        lines.append(f"{name:<{width}}  {'    n/a' if iou is None else f'{100 * iou:6.2f}%'}")
    lines.append("-" * (width + 9))
    for key, label in (("miou", "mIoU"), ("fwiou", "fwIoU"), ("pixel_acc", "pixel acc"),
                       ("mean_acc", "mean acc")):
        lines.append(f"{label:<{width}}  {100 * metrics[key]:6.2f}%")
    return "\n".join(lines)
