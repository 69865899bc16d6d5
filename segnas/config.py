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
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bounds import MAX_SIDE, check_space_args, gib, machine_memory
from .config_io import MOVED_SEARCH_KEYS, check_type, parse_overrides, read_yaml
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
    check: bool = True  # scan every image/mask pair before training (sizes, label range); false skips the scan


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
    pretrained: str | None = None  # a state dict of the network's pretrained part (Nekrasov's encoder, DOTS' backbone)
    distill_weight: float = 1.0
    distill_temperature: float = 1.0
    eval_every: int = 0  # steps; 0 = once per epoch
    log_every: int = 10
    grad_clip: float | None = None
    channels_last: bool = False
    patience: int | None = None  # evaluations in a row without a higher val mIoU before training stops early
    drop_path: float = 0.0  # ScheduledDropPath: final probability, linear from 0 over the steps; 0 = off
    sync_bn: bool = False  # under torchrun: batch-norm statistics over the global batch, not each process's share


@dataclass
class SearchConfig:
    """What every architecture search shares: data halves, budget, the bilevel optimisers.

    Weights train on trainA, architecture parameters on trainB (halves of the
    training split, seeded). ``space_args`` are checked by the space; what only
    one method uses lives in that method's own section (``fasterseg.*``,
    ``autodeeplab.*``), what only one strategy uses in the strategy's (``random.*``).
    """

    pretrain_epochs: int = 1  # weights only, architecture frozen
    epochs: int = 2  # alternating weight / architecture updates after pretraining
    batch_size: int = 4
    steps_per_epoch: int | None = None  # None: one pass over trainA
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "exp"  # exp: lr * lr_decay^epoch | cosine: per step from lr to lr_min | poly: per step
    lr_decay: float = 0.978  # exponential, per epoch
    lr_min: float = 0.0  # end of the cosine and poly schedules
    poly_power: float = 0.9
    grad_clip: float | None = 5.0
    arch_lr: float = 3e-4
    arch_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    arch_weight_decay: float = 0.0
    arch_loss: str | None = None  # architecture step's loss: None = the method's own; "ce" averages every pixel
    arch_batches: int = 1  # trainB batches averaged into one architecture step (less noise per step)
    space_args: dict = field(default_factory=dict)
    select_images: int = 16  # trainB images scoring the decoded architectures each epoch (0: none)
    sync_bn: bool = False  # under torchrun: batch-norm statistics over the global batch, not each process's share
    time_budget: float = 0.0  # seconds of search on this device (kept across --resume); 0 = no cap


@dataclass
class RunConfig:
    """Everything a run needs besides the genotype: data, retraining, search."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    preset: str = "cpu"
    method: str | None = None  # a search's method (registry name); None for a retrain
    strategy: str | None = None  # a search's strategy
    # the method's and the strategy's own sections, by name (read as ``cfg.fasterseg``, written at top level)
    sections: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("sections") or {}
        if name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__} has no field or section {name!r}")


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


def _known(obj: Any) -> str:
    names = [f.name for f in dataclasses.fields(obj) if f.name != "sections"]
    return ", ".join(names + list(getattr(obj, "sections", {})))


def _merge(obj: Any, updates: dict[str, Any], prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    fields = {f.name for f in dataclasses.fields(obj)}  # not a section's class constants (RANGES, PATHS)
    sections = obj.sections if isinstance(obj, RunConfig) else {}
    for key, value in updates.items():
        name = f"{prefix}{key}"
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{name}' is a section; give keys under it")
            _merge(sections[key], value, name + ".")
            continue
        if key not in fields or key == "sections":
            raise ConfigError(f"config key '{_printable(_leaf(name, value))}' is unknown{_moved(obj, key)}; "
                              f"known keys here: {_known(obj)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{name}' is a section; give keys under it")
            _merge(current, value, name + ".")
        elif isinstance(current, dict) and isinstance(value, dict):
            setattr(obj, key, {**current, **value})  # mappings (space_args) merge key by key
        else:
            setattr(obj, key, check_type(value, hints[key], name))


def _printable(name: str) -> str:
    """A key as one short line: control characters (a newline in a YAML key) escaped, long keys cut."""
    text = name if name.isprintable() else name.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 80 else text[:77] + "..."


def _leaf(name: str, value: Any) -> str:
    """The key as the user wrote it (``a.b.c``), where a single nested key was given."""
    while isinstance(value, dict) and len(value) == 1:
        key, value = next(iter(value.items()))
        name = f"{name}.{key}"
    return name


def _moved(obj: Any, key: str) -> str:
    """A hint for the keys that were search options before each method had its own section."""
    if isinstance(obj, SearchConfig) and key in MOVED_SEARCH_KEYS:
        return f" (it moved to the section of method {MOVED_SEARCH_KEYS[key]}: '{MOVED_SEARCH_KEYS[key]}.{key}')"
    return ""


_CHOICES = {"train.optimizer": ("sgd", "adam"), "train.schedule": ("poly", "exp", "constant"),
            "search.lr_schedule": ("exp", "cosine", "poly"),
            "train.loss": ("ohem", "ce"), "search.arch_loss": (None, "ohem", "ce")}
_RANGES = {  # key: (lowest, highest, lowest allowed itself)
    "train.epochs": (1, None, True), "train.batch_size": (1, None, True), "train.lr": (0, None, False),
    "train.momentum": (0, 1, True), "train.weight_decay": (0, None, True), "train.poly_power": (0, None, False),
    "train.exp_gamma": (0, 1, False), "train.warmup_steps": (0, None, True), "train.ohem_thresh": (0, 1, False),
    "train.ohem_min_kept": (1, None, True), "train.aux_weight": (0, None, True),
    "train.distill_weight": (0, None, True), "train.distill_temperature": (0, None, False),
    "train.eval_every": (0, None, True), "train.log_every": (1, None, True), "train.grad_clip": (0, None, False),
    "train.patience": (1, None, True), "train.drop_path": (0, 1, True),
    "search.pretrain_epochs": (0, None, True), "search.epochs": (0, None, True), "search.batch_size": (1, None, True),
    "search.steps_per_epoch": (1, None, True), "search.lr": (0, None, False), "search.momentum": (0, 1, True),
    "search.weight_decay": (0, None, True), "search.lr_decay": (0, 1, False), "search.poly_power": (0, None, False), "search.grad_clip": (0, None, False),
    "search.arch_lr": (0, None, False), "search.arch_weight_decay": (0, None, True),
    "search.select_images": (0, None, True), "search.lr_min": (0, None, True), "search.arch_batches": (1, None, True),
    "search.time_budget": (0, None, True),
    "data.num_workers": (0, None, True), "data.synthetic_train": (1, None, True),
    "data.synthetic_val": (1, None, True), "data.num_classes": (1, 254, True), "threads": (1, None, True),
    "data.max_val_images": (1, None, True), "data.synthetic_seed": (0, 2**32 - 1, True), "seed": (0, 2**32 - 1, True),
}


MAX_SCALE = 8.0  # training images scaled up further would be mostly interpolation, and huge


def check_range(key: str, value: Any, low: float, high: float | None, inclusive: bool) -> None:
    """A ConfigError naming ``key`` when ``value`` lies outside [low, high] (or (low, high])."""
    if value is None:
        return
    if value < low or (value == low and not inclusive) or (high is not None and value > high):
        bound = f">= {low}" if inclusive else f"> {low}"
        raise ConfigError(f"config key '{key}' is {value}; it must be {bound}"
                          + (f" and <= {high}" if high is not None else ""))


def check_choice(key: str, value: Any, options: tuple) -> None:
    if value not in options:
        raise ConfigError(f"config key '{key}' is {value!r}; choose one of "
                          + ", ".join("null" if o is None else str(o) for o in options))


def check_size(key: str, value: list[int] | None) -> None:
    if value is not None and (len(value) != 2 or min(value) < 1):
        raise ConfigError(f"config key '{key}' is {value}; give [height, width] of positive integers")
    if value is not None and max(value) > MAX_SIDE:
        raise ConfigError(f"config key '{key}' is {value}; at most {MAX_SIDE} pixels per side are supported, "
                          "give a smaller size")


def check_memory(cfg: RunConfig, memory: int | None = None) -> None:
    """Refuse crops and generated images whose batch or dataset alone could never fit in this machine's memory
    (``memory``: bytes, default the physical memory), naming the key, before any run folder exists."""
    memory = machine_memory() if memory is None else memory
    if not memory:
        return
    batch = cfg.search.batch_size if cfg.method else cfg.train.batch_size
    if cfg.data.crop is not None:
        need = batch * 3 * 4 * cfg.data.crop[0] * cfg.data.crop[1]  # float32 RGB inputs, before any activation
        if need > memory:
            raise ConfigError(f"config key 'data.crop' is {cfg.data.crop}: a batch of {batch} such inputs alone "
                              f"needs {gib(need)} but this machine has {gib(memory)}; give a smaller crop")
    from .data import is_procedural  # at call time: the data package is heavier than a config

    if is_procedural(cfg.data.dataset):
        h, w = cfg.data.synthetic_size
        need = (cfg.data.synthetic_train + cfg.data.synthetic_val) * 4 * h * w  # RGB image + mask, uint8
        if need > memory:
            raise ConfigError(f"config key 'data.synthetic_size' is {cfg.data.synthetic_size}: "
                              f"{cfg.data.synthetic_train + cfg.data.synthetic_val} such images need {gib(need)} "
                              f"but this machine has {gib(memory)}; give a smaller size or fewer images")


def validate(cfg: RunConfig) -> RunConfig:
    """Range and choice checks, so a bad value fails before any work with the key named.

    A section checks itself: its class lists ``RANGES`` and ``CHOICES`` by field and may add ``check()``.
    """
    for key, bounds in _RANGES.items():
        check_range(key, _get(cfg, key), *bounds)
    for key, options in _CHOICES.items():
        check_choice(key, _get(cfg, key), options)
    for name, section in cfg.sections.items():
        for key, bounds in getattr(section, "RANGES", {}).items():
            check_range(f"{name}.{key}", getattr(section, key), *bounds)
        for key, options in getattr(section, "CHOICES", {}).items():
            check_choice(f"{name}.{key}", getattr(section, key), options)
        if hasattr(section, "check"):
            section.check()
    if cfg.train.ema_decay is not None and not 0 < cfg.train.ema_decay < 1:
        raise ConfigError(f"config key 'train.ema_decay' is {cfg.train.ema_decay}; it must be in (0, 1) or null")
    if cfg.train.momentum >= 1:
        raise ConfigError("config key 'train.momentum' must be < 1")
    if cfg.train.drop_path >= 1:
        raise ConfigError(f"config key 'train.drop_path' is {cfg.train.drop_path}; it must be < 1 (1 drops every path)")
    if len(cfg.search.arch_betas) != 2 or not all(0 <= b < 1 for b in cfg.search.arch_betas):
        raise ConfigError(f"config key 'search.arch_betas' is {cfg.search.arch_betas}; give [beta1, beta2] in [0, 1)")
    for key in ("data.crop", "data.synthetic_size"):
        check_size(key, _get(cfg, key))
    check_memory(cfg)
    check_space_args(cfg.search.space_args, "search.space_args", ConfigError)
    scale = cfg.data.scale_range
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= MAX_SCALE:
        raise ConfigError(f"config key 'data.scale_range' is {cfg.data.scale_range}; give [low, high] "
                          f"with 0 < low <= high <= {MAX_SCALE}")
    return cfg


def _get(cfg: RunConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def make_config(preset: str = "cpu", file: str | Path | None = None,
                overrides: list[str] | None = None, extra: dict[str, Any] | None = None,
                method_presets: dict[str, dict[str, Any]] | None = None,
                sections: dict[str, Any] | None = None) -> RunConfig:
    """Defaults <- preset <- the method's preset <- YAML file <- ``extra`` (CLI options) <- ``--set``.

    ``sections`` are the method's and strategy's own (name -> dataclass of defaults); a key under any
    other name is refused with the known ones listed.
    """
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r} is unknown; choose one of {', '.join(PRESETS)}")
    cfg = RunConfig(preset=preset, sections=copy.deepcopy(dict(sections or {})))
    _merge(cfg, copy.deepcopy(PRESETS[preset]))
    if method_presets and preset in method_presets:
        _merge(cfg, copy.deepcopy(method_presets[preset]))
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        data = read_yaml(path)
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config file must be a mapping of keys to values")
        _refuse_command_keys(data, str(path), preset, extra)
        _merge(cfg, data)
    if extra:
        _merge(cfg, extra)
    if overrides:
        given = parse_overrides(overrides)
        _refuse_command_keys(given, "--set", preset, extra)
        _merge(cfg, given)
    return validate(cfg)


def _refuse_command_keys(data: dict[str, Any], source: str, preset: str, extra: dict[str, Any] | None) -> None:
    """The preset, method and strategy are chosen by the command; a config value may only repeat them
    (a run's own config.yaml used as a template does)."""
    chosen = {"preset": preset, "method": (extra or {}).get("method"), "strategy": (extra or {}).get("strategy")}
    flags = {"preset": "--preset", "method": "the METHOD of 'segnas search'", "strategy": "--strategy"}
    for key, value in chosen.items():
        if key in data and data[key] != value:
            raise ConfigError(f"{source}: config key '{key}' is {data[key]!r}, but it is chosen with {flags[key]} "
                              f"({value!r} here); drop it")


def with_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """A checked copy of ``cfg`` with ``--set`` style overrides (e.g. to measure a saved run's variant)."""
    out = copy.deepcopy(cfg)
    _merge(out, parse_overrides(overrides))
    return validate(out)


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Plain nested dict; each section is written at top level under its name."""
    out = dataclasses.asdict(cfg)
    out.update(out.pop("sections"))
    return out


_PATH_KEYS = ("data.root", "train.distill_teacher", "train.pretrained")


def _absolute(value: str | None) -> str | None:
    # "" means "not given" to every reader, as None does; abspath would make it the current folder
    return os.path.abspath(os.path.expanduser(value)) if value else None


def anchored(cfg: RunConfig) -> RunConfig:
    """A copy whose file paths are absolute, so the saved run resumes and evaluates from any folder.

    A relative path means "from where the run was started"; written into a run's
    config as it is, it would point elsewhere once the run is resumed from another folder.
    Sections list their path fields in ``PATHS``. CamVid's default root is written out for the same reason.
    """
    out = copy.deepcopy(cfg)
    for key in _PATH_KEYS:
        section, name = key.split(".")
        setattr(getattr(out, section), name, _absolute(getattr(getattr(out, section), name)))
    for section in out.sections.values():
        for name in getattr(section, "PATHS", ()):
            setattr(section, name, _absolute(getattr(section, name)))
    # CamVid's default follows $SEGNAS_CAMVID; pinned here, a resume under another environment reads the same data
    from .engine.loaders import data_root  # at call time: the engine imports this module

    out.data.root = data_root(out.data)
    return out


def from_dict(data: dict[str, Any], sections: dict[str, Any] | None = None) -> RunConfig:
    """A checked RunConfig from a plain dict (``sections``: as for :func:`make_config`)."""
    cfg = RunConfig(sections=copy.deepcopy(dict(sections or {})))
    _merge(cfg, data)
    return validate(cfg)
