"""Segmentation metrics, all derived from one confusion matrix.

Rows are ground truth, columns predictions. Pixels labelled ``ignore_index``
never enter the matrix. A class with no ground-truth and no predicted pixel
has an undefined IoU (NaN) and is left out of the means, as is common
practice; a class with ground truth but zero correct pixels counts as 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class ConfusionMatrix:
    """Accumulates a ``num_classes x num_classes`` matrix from predictions and targets."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        self.matrix.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` holds class ids (or logits with a class dim 1), ``target`` class ids."""
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(1)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        pred = pred.reshape(-1).to(torch.int64).cpu()
        target = target.reshape(-1).to(torch.int64).cpu()
        valid = target != self.ignore_index
        n = self.num_classes
        if bool(((target[valid] < 0) | (target[valid] >= n)).any()):
            bad = torch.unique(target[valid][(target[valid] < 0) | (target[valid] >= n)]).tolist()
            raise ValueError(f"target holds labels {bad} outside 0..{n - 1} (ignore index {self.ignore_index})")
        if bool(((pred[valid] < 0) | (pred[valid] >= n)).any()):
            raise ValueError(f"prediction holds class ids outside 0..{n - 1}")
        idx = target[valid] * n + pred[valid]
        self.matrix += torch.bincount(idx, minlength=n * n).reshape(n, n)

    def merge(self, other: "ConfusionMatrix") -> None:
        self.matrix += other.matrix

    def compute(self) -> dict:
        return metrics_from_confusion(self.matrix.numpy())


def metrics_from_confusion(cm: np.ndarray, exclude: int | None = None) -> dict:
    """mIoU, per-class IoU, frequency-weighted IoU, pixel accuracy and mean pixel accuracy.

    ``exclude`` drops one class (e.g. VOC background) from the averages; its
    pixels still count as errors where other classes are confused with it.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    gt = cm.sum(1)
    pred = cm.sum(0)
    union = gt + pred - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt > 0, tp / gt, np.nan)
    keep = np.ones(len(tp), dtype=bool)
    if exclude is not None:
        keep[exclude] = False
    total = cm.sum()
    kept_gt = gt[keep]
    freq = kept_gt / kept_gt.sum() if kept_gt.sum() > 0 else np.zeros_like(kept_gt)
    iou_k = iou[keep]
    fw = float(np.nansum(freq * np.nan_to_num(iou_k))) if kept_gt.sum() > 0 else float("nan")
    return {
        "miou": _nanmean(iou_k),
        "iou": [None if math.isnan(v) else float(v) for v in iou],
        "fwiou": fw,
        "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
        "mean_acc": _nanmean(acc[keep]),
        "pixels": int(total),
    }


def nekrasov_reward(cm: np.ndarray, exclude: int | None = None) -> float:
    """Nekrasov et al.'s reward: geometric mean of mIoU, fwIoU and mean pixel accuracy."""
    m = metrics_from_confusion(cm, exclude)
    values = [m["miou"], m["fwiou"], m["mean_acc"]]
    if any(math.isnan(v) for v in values):
        return float("nan")
    return float(np.prod(values) ** (1.0 / 3.0))


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")
