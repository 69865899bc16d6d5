"""Typed run configuration with presets, YAML files and ``--set a.b=c`` overrides.

Presets (``tiny`` for tests, ``cpu`` for minutes on 2 cores, ``paper`` for the
paper's GPU settings) are plain dictionaries merged into the dataclass
defaults; a YAML file and ``--set`` overrides are merged on top, in that order.
Values are parsed with ``yaml.safe_load`` (never ``eval``); an unknown key or a
value of the wrong type is a ConfigError naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


@dataclass
class DataConfig:
    """Which dataset, which splits, and how training crops are made."""

    dataset: str = "synthetic"
    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    num_classes: int | None = None  # checked against the dataset when given
    crop: list[int] | None = None  # [H, W]; None trains on whole (scaled) images
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    hflip: bool = True
    cache: bool = True
    num_workers: int = 0
    synthetic_train: int = 256
    synthetic_val: int = 64
    synthetic_size: list[int] = field(default_factory=lambda: [96, 128])
    synthetic_seed: int = 0  # which scenes; the run seed only drives augmentation
    max_val_images: int | None = None


@dataclass
class TrainConfig:
    """Optimisation of a child network (retraining a genotype)."""

    epochs: int = 10
    batch_size: int = 8
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "poly"  # poly | exp | constant
    poly_power: float = 0.9
    exp_gamma: float = 0.99  # per epoch
    warmup_steps: int = 0
    loss: str = "ohem"  # ohem | ce
    ohem_thresh: float = 0.7
    ohem_min_kept: int = 10_000
    aux_weight: float = 0.2
    ema_decay: float | None = None  # Polyak averaging of weights when set
    distill_teacher: str | None = None  # checkpoint of a retrained teacher
    distill_weight: float = 1.0
    distill_temperature: float = 1.0
    eval_every: int = 0  # steps; 0 = once per epoch
    log_every: int = 10
    grad_clip: float | None = None
    channels_last: bool = False


@dataclass
class RunConfig:
    """Everything a retrain run needs besides the genotype."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    preset: str = "cpu"


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "data": {"synthetic_train": 16, "synthetic_val": 8, "synthetic_size": [64, 64], "crop": [64, 64],
                 "scale_range": [0.75, 1.25], "max_val_images": 8},
        "train": {"epochs": 2, "batch_size": 4, "eval_every": 4, "log_every": 1, "ohem_min_kept": 1000,
                  "lr": 0.02},
    },
    "cpu": {
        "data": {"crop": [256, 256], "scale_range": [0.5, 1.25]},
        "train": {"epochs": 36, "batch_size": 8, "lr": 0.05, "ohem_min_kept": 20_000, "log_every": 10,
                  "eval_every": 0, "channels_last": True},
    },
    "paper": {
        "data": {"crop": [512, 1024], "scale_range": [0.75, 1.25], "num_workers": 6, "cache": False},
        "train": {"epochs": 600, "batch_size": 12, "lr": 0.01, "weight_decay": 5e-4, "schedule": "exp",
                  "exp_gamma": 0.992, "ohem_min_kept": 12 * 512 * 1024 // 16, "eval_every": 0},
        "device": "cuda",
    },
}


def _check_type(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(value, option, key)
            except ConfigError:
                pass
        raise ConfigError(f"config key '{key}': {value!r} is not a {tp}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        (inner,) = typing.get_args(tp)
        return [_check_type(v, inner, key) for v in value]
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"config key '{key}': expected true or false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
    if tp in (str, float) and not isinstance(value, tp):
        raise ConfigError(f"config key '{key}': expected a {tp.__name__}, got {value!r}")
    return value


def _merge(obj: Any, updates: dict[str, Any], prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    for key, value in updates.items():
        name = f"{prefix}{key}"
        if key not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(obj))
            raise ConfigError(f"config key '{name}' is unknown; known keys here: {known}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{name}' is a section; give keys under it")
            _merge(current, value, name + ".")
        else:
            setattr(obj, key, _check_type(value, hints[key], name))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.lr=0.1", "seed=3"]`` -> nested dict, values read as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=0.01")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def make_config(preset: str = "cpu", file: str | Path | None = None,
                overrides: list[str] | None = None, extra: dict[str, Any] | None = None) -> RunConfig:
    """Defaults <- preset <- YAML file <- ``extra`` (CLI options) <- ``--set`` overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r} is unknown; choose one of {', '.join(PRESETS)}")
    cfg = RunConfig(preset=preset)
    _merge(cfg, copy.deepcopy(PRESETS[preset]))
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config file must be a mapping of keys to values")
        _merge(cfg, data)
    if extra:
        _merge(cfg, extra)
    if overrides:
        _merge(cfg, parse_overrides(overrides))
    return cfg


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(data: dict[str, Any]) -> RunConfig:
    cfg = RunConfig()
    _merge(cfg, data)
    return cfg
