"""Datasets and resumable, seeded data loaders built from a DataConfig.

The order of an epoch is a permutation drawn from a generator seeded by
(seed, epoch) and each item's augmentation is seeded by (seed, epoch, index),
so a resumed run skips to the exact batch where it stopped and sees the same
crops an unbroken run would, whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from ..config import DataConfig
from ..data import EvalTransform, TrainTransform, build_dataset, default_camvid_root, is_procedural, scan
from ..errors import ConfigError
from . import distributed


def dataset_kwargs(cfg: DataConfig, split: str) -> dict:
    """``build_dataset``'s options from the config: generated datasets' sizes, the folder's class count, and
    ``check`` (``data.check``: scan every file pair before use) for the datasets read from files."""
    if is_procedural(cfg.dataset):
        n = cfg.synthetic_train if split.startswith("train") else cfg.synthetic_val
        return {"num_images": n, "size": tuple(cfg.synthetic_size), "scene_seed": cfg.synthetic_seed}
    check = {"check": bool(getattr(cfg, "check", True))}
    if cfg.dataset == "folder":
        if cfg.num_classes is None:
            raise ConfigError("data.num_classes: the 'folder' dataset needs the class count "
                              "(--num-classes N or --set data.num_classes=N)")
        return {"num_classes": cfg.num_classes, **check}
    return check


def data_root(cfg: DataConfig) -> str | None:
    """The dataset folder a run reads: CamVid's default resolved, as ``build_dataset`` would (any case)."""
    if cfg.root is None and cfg.dataset.lower() == "camvid":
        return str(default_camvid_root())
    return cfg.root


def make_datasets(cfg: DataConfig, seed: int):
    """(train, val) datasets with training augmentation on train only."""
    if cfg.crop is None and list(cfg.scale_range) != [1.0, 1.0]:
        raise ConfigError("data.crop is not set, so randomly scaled images of different sizes cannot be "
                          "batched; set a crop, e.g. --set data.crop=[256,256], or data.scale_range=[1,1]")
    train_tf = TrainTransform(crop_size=tuple(cfg.crop) if cfg.crop else None,
                              scale_range=tuple(cfg.scale_range), hflip=cfg.hflip)
    root = data_root(cfg)
    kwargs = dataset_kwargs(cfg, cfg.train_split)
    check = kwargs.pop("check", False)
    train = build_dataset(cfg.dataset, root, cfg.train_split, transform=train_tf, seed=seed,
                          cache=cfg.cache, **kwargs)
    if cfg.num_classes is not None and cfg.num_classes != train.num_classes:  # before the scan: it needs no masks
        raise ConfigError(f"data.num_classes is {cfg.num_classes} but dataset '{cfg.dataset}' at "
                          f"{root} has {train.num_classes} classes; drop the option or fix the count")
    if check:
        scan(train, cfg.train_split)
    val = build_dataset(cfg.dataset, root, cfg.val_split, transform=EvalTransform(), seed=seed,
                        cache=cfg.cache, **dataset_kwargs(cfg, cfg.val_split))
    if cfg.max_val_images is not None and len(val) > cfg.max_val_images:
        val = val.subset(list(range(cfg.max_val_images)))
    return train, val


class EpochSampler(Sampler[int]):
    """Seeded permutation of one epoch, starting ``start`` items in (for resume)."""

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0) -> None:
        self.n, self.seed, self.epoch, self.start = n, seed, epoch, start

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g)[self.start:].tolist())

    def __len__(self) -> int:
        return self.n - self.start


class GlobalBatches(Sampler[list[int]]):
    """The seeded global batches of an epoch (full ones only), each cut to this process's contiguous share:
    under torchrun the ranks' shares together are exactly the single-process batch."""

    def __init__(self, order: EpochSampler, batch_size: int, key: str = "the batch size") -> None:
        distributed.check_batch(batch_size, key)
        self.order, self.batch_size, self.key = order, batch_size, key

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in self.order:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield list(distributed.shard(batch, self.key))
                batch = []

    def __len__(self) -> int:
        return len(self.order) // self.batch_size


def train_loader(dataset, batch_size: int, seed: int, epoch: int, start_batch: int = 0,
                 num_workers: int = 0, key: str = "the batch size") -> DataLoader:
    """Epoch ``epoch``'s global batches of ``batch_size`` from batch ``start_batch`` on; under torchrun each
    process loads its share (``key``: the config key of the batch size, named when it does not divide)."""
    dataset.set_epoch(epoch)
    order = EpochSampler(len(dataset), seed, epoch, start_batch * batch_size)
    return DataLoader(dataset, batch_sampler=GlobalBatches(order, batch_size, key),
                      num_workers=num_workers, persistent_workers=False)


class EvalShard(Sampler[int]):
    """This process's contiguous share of an evaluation set; :func:`~segnas.engine.evaluate.evaluate` adds the
    shares' confusion matrices, so every process gets the metrics of the whole set."""

    def __init__(self, n: int) -> None:
        self.indices = distributed.eval_share(n)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def to_device(batch: Any, device: torch.device | str, fmt: torch.memory_format = torch.contiguous_format) -> Any:
    """A batch's inputs on ``device``: a 4-d tensor in memory format ``fmt``, lists and dicts of them item by item
    (a decoder trained on cached encoder outputs reads a list of feature maps)."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device)
        return batch.contiguous(memory_format=fmt) if batch.dim() == 4 else batch
    if isinstance(batch, dict):
        return {k: to_device(v, device, fmt) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, fmt) for v in batch)
    return batch


def eval_loader(dataset, num_workers: int = 0) -> DataLoader:
    """One image at a time, in order; under torchrun each process scores its share (:class:`EvalShard`)."""
    return DataLoader(dataset, batch_size=1, sampler=EvalShard(len(dataset)), num_workers=num_workers)
