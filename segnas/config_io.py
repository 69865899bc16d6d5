"""Reading values into configs: ``--set`` text, type checks, and run configs saved by older versions.

Configs saved before methods had their own sections kept every option under
``search``; ``as_saved`` maps them once (and fills in options added since as
those runs behaved), so an older run resumes and compares as it ran.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from . import jsonio
from .errors import ConfigError

INT_LIMIT = 2**63 - 1  # what torch and numpy index with; no option means more
MAX_CONFIG_BYTES = 4 * 2**20  # a run's config.yaml is a few kB


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (safe_load keeps the last, silently)
    and aliases (``*name``): a few lines of nested aliases expand to billions of nodes (an "alias bomb")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} is not supported in a config; "
                                              "write the value out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key_node.value!r} is given twice; keep one", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def too_deep(text: str) -> bool:
    """Whether flow brackets in ``text`` nest deeper than ``jsonio.MAX_DEPTH``: checked before PyYAML, whose
    scanner slows down quadratically and whose composer recurses on such text."""
    if text.count("[") + text.count("{") <= jsonio.MAX_DEPTH:
        return False
    level = 0
    for ch in re.findall(r"[][{}]", text):
        level += 1 if ch in "[{" else -1
        if level > jsonio.MAX_DEPTH:
            return True
    return False


def load_yaml(text: str, source: str) -> Any:
    """The YAML value of ``text``; a ConfigError names ``source`` with the line and column of any problem."""
    try:
        if too_deep(text):
            raise RecursionError
        value = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = " ".join(str(e.problem or e.context or "syntax error").split())
        hint = " (indent with spaces, not tabs)" if "\\t" in problem else ""
        raise ConfigError(f"{where}: not valid YAML ({problem}); fix that line{hint}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML ({' '.join(str(e).split())})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested more than {jsonio.MAX_DEPTH} levels deep; a config never is, "
                          "fix it") from None
    return jsonio.check_value(value, source, "a config", ConfigError)


def read_yaml(path: Path) -> Any:
    """A config file's YAML value, refusing one over ``MAX_CONFIG_BYTES`` before reading it."""
    return load_yaml(jsonio.read_text(path, "a config file", ConfigError, MAX_CONFIG_BYTES, "YAML text"), str(path))


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
        return _finite(value, key)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            return _finite(value, key)  # "1e999" reads as inf: refused
        except ValueError:
            pass
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"config key '{key}': expected true or false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"config key '{key}': expected an integer, got {_short(value)}")
    if tp is int and abs(value) > INT_LIMIT:
        raise ConfigError(f"config key '{key}': {_short(value)} is beyond the 64-bit integer range; "
                          "give a sensible value")
    if tp is dict and not isinstance(value, dict):
        raise ConfigError(f"config key '{key}': expected a mapping of keys to values, got {value!r}")
    if tp in (str, float) and not isinstance(value, tp):
        raise ConfigError(f"config key '{key}': expected a {tp.__name__}, got {value!r}")
    return value


def _finite(value: int | float | str, key: str) -> float:
    """``value`` as a float, refusing NaN, infinities and integers beyond the float range."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"config key '{key}': {_short(value)} is not a finite number; give a finite value")
    return number


def _short(value: Any) -> str:
    """``repr`` cut to one short line (a message must stay readable whatever was given)."""
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.lr=0.1", "seed=3"]`` -> nested dict, values read as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=0.01")
        key, raw = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not all(parts):
            raise ConfigError(f"--set {_short(item)}: key {key!r} has an empty part; write KEY=VALUE with a "
                              "dotted key, e.g. train.lr=0.01")
        try:
            if too_deep(raw):
                raise RecursionError
            value = yaml.load(raw, Loader=StrictLoader) if raw.strip() else None  # noqa: S506
        except yaml.YAMLError:
            value = raw  # not YAML: the text itself (a path, a name)
        except RecursionError:
            raise ConfigError(f"--set {key}: the value is nested more than {jsonio.MAX_DEPTH} levels deep; "
                              "give a plain value") from None
        jsonio.check_value(value, f"--set {key}", "a config value", ConfigError)
        node = out
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: '{'.'.join(parts[:depth + 1])}' was given a value by an "
                                  "earlier --set, so it has no keys; drop one of the two")
        if isinstance(node.get(parts[-1]), dict) and not isinstance(value, dict):
            raise ConfigError(f"--set {key}: an earlier --set gave keys under '{key}'; drop one of the two")
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
