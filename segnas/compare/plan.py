"""What a comparison runs: its searches (one per method, plus random baselines), their configs and the one
retraining recipe, and the settings a rerun on the same folder must repeat.

Everything here is checked before any folder is written, so a bad option, ``--set`` key or value is one
line and nothing else happens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..config import RunConfig, make_config
from ..config_io import parse_overrides
from ..engine.budget import format_duration
from ..errors import ConfigError
from ..methods import METHODS, get_method

SHARED = ("data", "train", "search")  # --set sections every search reads (data and train: every retrain too)
RANDOM = "random"


@dataclass(frozen=True)
class Entry:
    """One search of the comparison: ``label`` names its folders (``search/<label>``, ``retrain/<label>``)."""

    label: str
    method: str
    strategy: str
    space: str
    baseline: bool  # the random strategy on the method's space


def entries(methods: list[str], random_for: list[str]) -> list[Entry]:
    """Each method with its own default strategy, then the random baseline on each of ``random_for``."""
    out = []
    for name in methods:
        m = get_method(name)
        out.append(Entry(name, name, m.strategies[0], m.space, False))
    for name in random_for:
        m = get_method(name)
        if m.strategies[0] != RANDOM:
            out.append(Entry(f"{name}-{RANDOM}", name, m.strategy(RANDOM), m.space, True))
    return out


def method_list(text: str | None, flag: str, within: list[str] | None = None) -> list[str]:
    """``a,b,...`` as registered method names (default: every one); an unknown name is one line."""
    if text is None:
        return list(within if within is not None else METHODS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"{flag} is empty; give method names separated by commas, e.g. {','.join(METHODS)}")
    for name in names:
        if name not in METHODS:
            raise ConfigError(f"{flag}: method {name!r} is unknown; known methods: {', '.join(METHODS)}")
        if within is not None and name not in within:
            raise ConfigError(f"{flag}: {name} is not among the compared methods ({', '.join(within)}); "
                              "add it to --methods or leave it out")
    if len(set(names)) != len(names):
        raise ConfigError(f"{flag}: a method is named twice ({text}); name each once")
    return names


def split_overrides(overrides: list[str], plan: list[Entry]) -> dict[str, list[str]]:
    """``--set`` items by the section they set (``data``, ``train``, ``search`` or a method's or strategy's own);
    a key no compared search reads, or one a flag of the command sets, is one line."""
    parse_overrides(overrides)  # KEY=VALUE form and values, checked once for all
    own = {name for e in plan for name in get_method(e.method).sections(e.strategy)}
    flags = {"seed": "--seed", "device": "--device", "threads": "--threads", "preset": "--preset",
             "method": "--methods", "strategy": "--methods/--random-for"}
    out: dict[str, list[str]] = {}
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        section = key.split(".", 1)[0]
        if section in flags:
            raise ConfigError(f"--set {key}: compare sets it with {flags[section]}; drop the --set")
        if key == "search.time_budget":
            raise ConfigError("--set search.time_budget: compare gives every search the same --budget; drop the --set")
        if "." not in key or (section not in SHARED and section not in own):
            known = ", ".join(sorted(set(SHARED) | own))
            raise ConfigError(f"--set {key}: no compared search reads it; give a key under one of {known}")
        out.setdefault(section, []).append(item)
    return out


def search_config(entry: Entry, preset: str, by_section: dict[str, list[str]], extra: dict[str, Any],
                  budget_s: float) -> RunConfig:
    """The search config of ``entry``: the preset (and the method's), the shared ``--set`` items and those of
    its own sections, the command's data, seed, device and threads, and the time budget."""
    method = get_method(entry.method)
    names = set(SHARED) | set(method.sections(entry.strategy))
    items = [item for section, group in by_section.items() if section in names for item in group]
    extra = {**extra, "search": {"time_budget": budget_s}}
    return method.config(preset, None, items, extra, strategy=entry.strategy)


def retrain_config(preset: str, by_section: dict[str, list[str]], extra: dict[str, Any]) -> RunConfig:
    """The one recipe every searched network is retrained with: the preset's ``train.*`` and ``--set``'s
    ``data.*`` and ``train.*``, the same data, seed, device and threads."""
    items = by_section.get("data", []) + by_section.get("train", [])
    return make_config(preset, overrides=items, extra=extra)


def command_extra(data: str | None, root: str | None, num_classes: int | None, seed: int | None,
                  device: str | None, threads: int) -> dict[str, Any]:
    """The command's options as config values (a relative ``--root`` made absolute: a rerun from elsewhere
    reads the same data)."""
    extra: dict[str, Any] = {"threads": threads}
    fields = {k: v for k, v in (("dataset", data), ("root", os.path.abspath(root) if root else None),
                                ("num_classes", num_classes)) if v is not None}
    if fields:
        extra["data"] = fields
    if seed is not None:
        extra["seed"] = seed
    if device is not None:
        extra["device"] = device
    return extra


def settings(plan: list[Entry], methods: list[str], random_for: list[str], budget_s: float, preset: str,
             overrides: list[str], retrain_cfg: RunConfig, latency_size: tuple[int, int] | None,
             threads: int) -> dict[str, Any]:
    """What a rerun on the same folder must repeat (each changes the results), in the order it is checked."""
    d = retrain_cfg.data
    return {"methods": methods, "random_for": random_for, "budget_s": budget_s, "preset": preset,
            "data": {"dataset": d.dataset, "root": d.root, "num_classes": d.num_classes},
            "overrides": list(overrides), "seed": retrain_cfg.seed, "device": retrain_cfg.device,
            "latency_size": list(latency_size) if latency_size else None, "threads": threads,
            "searches": [e.label for e in plan]}


FLAG_OF = {"methods": "--methods", "random_for": "--random-for/--no-random", "budget_s": "--budget",
           "preset": "--preset", "data": "--data/--root/--num-classes", "overrides": "--set", "seed": "--seed",
           "device": "--device", "latency_size": "--latency-size", "threads": "--threads (or --workers, which "
           "sets its default)", "searches": "--methods/--random-for"}


def check_same(saved: dict[str, Any], now: dict[str, Any], folder: str) -> None:
    """Refuse a rerun whose settings differ from the folder's: one line naming the first field that does."""
    for key, value in now.items():
        if key == "overrides" and saved.get(key) != value:
            was, given = list(saved.get(key) or []), list(value)
            gone, new = [s for s in was if s not in given], [s for s in given if s not in was]
            if gone and new:
                what = f"with --set {' '.join(gone)}, not --set {' '.join(new)}"
            elif gone or new:
                what = f"with --set {' '.join(gone)} too" if gone else f"without --set {' '.join(new)}"
            else:
                what = f"with its --set items in the order {' '.join(was)}"
            raise ConfigError(f"{folder}: this comparison ran {what}; rerun with the same options to continue it, or "
                              "choose another --out")
        if saved.get(key) != value:
            raise ConfigError(f"{folder}: this comparison ran with {FLAG_OF.get(key, key)} "
                              f"{_show(saved.get(key), key)}, not {_show(value, key)}; rerun with the same options to continue it, or choose another "
                              "--out")


def _show(value: Any, key: str = "") -> str:
    if key == "budget_s" and isinstance(value, (int, float)):
        return format_duration(float(value))
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
    return str(value)


__all__ = ["Entry", "check_same", "command_extra", "entries", "method_list", "retrain_config", "search_config",
           "settings", "split_overrides"]
