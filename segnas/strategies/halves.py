"""The trainA / trainB halves of the training split every search uses.

Weights (or trial networks) train on trainA; architecture steps (or trial
scores) use trainB, so a search never selects on the images it trained on.
The split is seeded and saved to the run's ``splits.json``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig
from ..data import EvalTransform, build_dataset, save_splits
from ..data.splits import make_splits
from ..engine import distributed
from ..engine.loaders import data_root, dataset_kwargs, make_datasets, train_loader


@dataclass
class SearchData:
    train_a: Any
    train_b: Any
    select: Any  # trainB images without augmentation, for scoring candidates
    num_classes: int
    ignore_index: int
    plain_b: Any = None  # all of trainB without augmentation (scores of multi-trial searches)


def search_data(cfg: RunConfig, run: Path) -> SearchData:
    """trainA / trainB halves of the training split (seeded, saved to ``splits.json``)."""
    train, _ = make_datasets(cfg.data, cfg.seed)
    plain = build_dataset(cfg.data.dataset, data_root(cfg.data), cfg.data.train_split, transform=EvalTransform(),
                          seed=cfg.seed, cache=cfg.data.cache, **dataset_kwargs(cfg.data, cfg.data.train_split))
    splits = make_splits(len(train), cfg.seed, 0.0, 0.5)
    if distributed.is_main():  # under torchrun rank 0 alone writes the run folder
        save_splits(run / "splits.json", splits, {"dataset": cfg.data.dataset, "split": cfg.data.train_split,
                                                  "seed": cfg.seed, "num_items": len(train)})
    ids = splits["trainB"][: cfg.search.select_images]
    select = plain.subset(ids) if ids else []  # select_images=0: no selection scoring
    return SearchData(train.subset(splits["trainA"]), train.subset(splits["trainB"]), select,
                      train.num_classes, train.ignore_index, plain.subset(splits["trainB"]))


def epoch_steps(sc, data: SearchData) -> int:
    """Steps in one search epoch: a trainA and a trainB batch each, capped by ``search.steps_per_epoch``."""
    steps = min(len(data.train_a), len(data.train_b)) // sc.batch_size
    return min(steps, sc.steps_per_epoch) if sc.steps_per_epoch else steps


def trainb_batches(data: SearchData, sc, seed: int, epoch: int, start_step: int = 0,
                   num_workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """trainB batches for one epoch's architecture steps from ``start_step`` on, ``search.arch_batches`` per step.

    They come in passes over trainB, each pass its own shuffle and augmentation
    (``epoch * passes + pass``), so a resumed epoch sees the same batches; with
    one batch per step this is the single pass ``epoch``. Under torchrun each process gets its share of
    every global batch.
    """
    k, per_pass = sc.arch_batches, len(data.train_b) // sc.batch_size
    passes = math.ceil(epoch_steps(sc, data) * k / per_pass)
    first = start_step * k
    for p in range(first // per_pass, passes):
        skip = first - p * per_pass if p == first // per_pass else 0
        yield from train_loader(data.train_b, sc.batch_size, seed, epoch * passes + p, skip, num_workers,
                                key="search.batch_size")
