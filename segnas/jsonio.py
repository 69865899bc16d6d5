"""Bounded JSON reading for the files users hand to segnas (genotypes, latency tables, splits).

``json.loads`` happily reads a 2 GB file, recurses until Python gives up on
100000 nested ``[``, and turns ``1e999`` and ``NaN`` into floats no field can
use. These helpers refuse all of that up front, with one line naming the file
and the bound, so a hostile or broken file never ends in a traceback.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .errors import SegnasError

MAX_JSON_BYTES = 16 * 2**20  # a genotype is a few kB, a latency table well under a MB
MAX_DEPTH = 64  # the deepest genotype structure nests about 6 levels


class _Refused(ValueError):
    """A value JSON allows but segnas does not (NaN, Infinity, 1e999)."""


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number segnas reads; write a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"{text} is beyond the float range; write a finite number")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 30:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits is beyond any field's range; "
                       "write a sensible number")
    return int(text)


def depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value`` (0 for a scalar), without recursion; stops counting
    past ``MAX_DEPTH``."""
    return _walk(value)[0]


def _walk(value: Any) -> tuple[int, str | None]:
    """(nesting depth, the first string that is not encodable text, e.g. a lone surrogate ``\\ud800``)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return deepest, node
        elif isinstance(node, (list, tuple, dict)):
            level += 1
            deepest = max(deepest, level)
            if level > MAX_DEPTH:  # enough to refuse; no need to walk further
                return level, None
            items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
            stack.extend((v, level) for v in items)
    return deepest, None


def loads(text: str, source: str, what: str, error: type[SegnasError] = SegnasError) -> Any:
    """Parse ``text`` as JSON of finite numbers nested at most ``MAX_DEPTH`` deep; else ``error`` naming
    ``source`` (the file, or the option the text came from) and ``what`` it should be."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                           parse_int=_bounded_int)
    except _Refused as e:
        raise error(f"{source}: {e}") from None
    except json.JSONDecodeError as e:
        raise error(f"{source}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                    f"{what} is a JSON file, fix or replace it") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise error(f"{source}: not readable JSON ({' '.join(str(e).split()) or type(e).__name__}); "
                    f"{what} is a JSON file, fix or replace it") from None
    except RecursionError:
        raise error(f"{source}: nested more than {MAX_DEPTH} levels deep; {what} never is, "
                    "fix or replace it") from None
    return check_value(value, source, what, error)


def check_value(value: Any, source: str, what: str, error: type[SegnasError] = SegnasError) -> Any:
    """``value`` itself, if it nests at most ``MAX_DEPTH`` deep and holds only encodable text (parsed values
    handed over in memory, e.g. from a checkpoint, get the same bounds as files)."""
    level, bad = _walk(value)
    if bad is not None:
        raise error(f"{source}: holds the string {ascii(bad)[:40]}, which is not text (a lone surrogate "
                    f"escape); {what} holds only text, fix or replace it")
    if level > MAX_DEPTH:
        raise error(f"{source}: nested more than {MAX_DEPTH} levels deep; {what} never is, fix or replace it")
    return value


def read_text(path: str | os.PathLike[str], what: str, error: type[SegnasError], max_bytes: int,
              kind: str = "a JSON file") -> str:
    """The UTF-8 text of ``path``, refusing a file over ``max_bytes`` before reading it (JSON and YAML inputs)."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise error(f"{path}: {size / 2**20:.1f} MB; {what} is at most {max_bytes // 2**20} MB, "
                    "so this is not one: check the path")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start}); {what} is {kind}, fix or replace it") from None


def read(path: str | os.PathLike[str], what: str, error: type[SegnasError] = SegnasError,
         max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value of file ``path``, refusing a file over ``max_bytes`` before reading it."""
    return loads(read_text(path, what, error, max_bytes), str(path), what, error)
