"""Reading values into configs: ``--set`` text, type checks, and run configs saved by older versions.

Configs saved before methods had their own sections kept every option under
``search``; ``as_saved`` maps them once (and fills in options added since as
those runs behaved), so an older run resumes and compares as it ran.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from typing import Any

import yaml

from .errors import ConfigError


def check_type(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return check_type(value, option, key)
            except ConfigError:
                pass
        raise ConfigError(f"config key '{key}': {value!r} is not a {tp}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        (inner,) = typing.get_args(tp)
        return [check_type(v, inner, key) for v in value]
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"config key '{key}': expected true or false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
    if tp is dict and not isinstance(value, dict):
        raise ConfigError(f"config key '{key}': expected a mapping of keys to values, got {value!r}")
    if tp in (str, float) and not isinstance(value, tp):
        raise ConfigError(f"config key '{key}': expected a {tp.__name__}, got {value!r}")
    return value


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


# options that were ``search.*`` before methods had sections, and the method whose section holds them now
MOVED_SEARCH_KEYS: dict[str, str] = {
    **{k: "fasterseg" for k in (
        "ohem_thresh", "ohem_min_kept", "cosearch", "teacher_chi", "sandwich_random", "sandwich_search",
        "sandwich_arch", "tau", "latency_lambda", "latency_weights", "target_latency_ms", "adaptive_lambda",
        "select_exponent", "deploy_size", "lut", "lut_repeats")},
    "genotype_args": "autodeeplab",
}


# options added after run configs were first saved, with the value that reproduces what runs saved before them did
LATER_OPTIONS: dict[tuple[str, str], Any] = {("fasterseg", "sandwich_arch"): False, ("train", "patience"): None,
                                             ("train", "drop_path"): 0.0, ("autodeeplab", "down_transition"): "conv3x3",
                                             ("fasterseg", "path_rule"): "paper", ("fasterseg", "teacher_ignore_skip"): False}


def as_saved(data: dict[str, Any], sections: Iterable[str] = ()) -> dict[str, Any]:
    """A saved run config (as a dict) read as today's, behaving as that run did.

    Configs saved before methods had sections kept every option under ``search``: those of
    ``sections`` (the run's method and strategy) move to their section, the other methods' are
    dropped (that run never read them). Options added since are filled in as the run behaved, so
    resuming or comparing an older run does not silently change what it did.
    """
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for name in sections:
        out[name] = dict(out.get(name) or {})
    search = out.get("search")
    if isinstance(search, dict):
        for key in [k for k in search if k in MOVED_SEARCH_KEYS]:
            value, owner = search.pop(key), MOVED_SEARCH_KEYS[key]
            if owner in sections and key not in out.get(owner, {}):
                out.setdefault(owner, {})[key] = value
    fasterseg = out.get("fasterseg")
    if isinstance(fasterseg, dict) and "path_rule" not in fasterseg and isinstance(out.get("search"), dict):
        # saved before the head's fusion block was an option: its genotypes were built with attention
        space_args = dict(out["search"].get("space_args") or {})
        space_args.setdefault("fusion", "attention")
        out["search"]["space_args"] = space_args
    for (section, key), value in LATER_OPTIONS.items():
        if isinstance(out.get(section), dict):
            out[section].setdefault(key, value)
    return out
