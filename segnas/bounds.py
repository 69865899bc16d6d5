"""Sizes beyond which an input is a mistake, not an ambition, checked before anything is allocated.

A typo such as ``layers=10**9`` or ``data.crop=[100000,100000]`` would otherwise
spend minutes building modules or die in the allocator with a traceback; these
bounds turn it into one line naming the field, well before either happens.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .errors import SegnasError

MAX_SIDE = 16384  # pixels per side of a crop or generated image
MAX_ARG_INT = 65536  # any integer space argument: channels, multipliers
MAX_DEPTH_ARG = 1000  # space arguments that repeat whole layers or cells
DEPTH_ARGS = ("layers", "blocks", "nodes", "branches", "sep_repeats")
MAX_PARAMS = 2**31  # parameters of one network (8 GiB of float32 weights)


def machine_memory() -> int | None:
    """Physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB"


def _ints(value: Any, path: str) -> list[tuple[str, int]]:
    """Every integer inside ``value`` (lists and mappings walked) with its dotted/indexed path."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [(path, value)]
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _ints(v, f"{path}.{k}")]
    if isinstance(value, (list, tuple)):
        return [item for i, v in enumerate(value) for item in _ints(v, f"{path}[{i}]")]
    return []


def check_space_args(args: Any, where: str, error: type[SegnasError]) -> None:
    """An ``error`` naming ``where.KEY`` for an integer space argument no network could have (``args``: a
    space's arguments as given, e.g. ``search.space_args`` or a genotype's ``space_args``)."""
    if not isinstance(args, dict):
        return
    for key, value in args.items():
        high = MAX_DEPTH_ARG if key in DEPTH_ARGS else MAX_ARG_INT
        for path, number in _ints(value, f"{where}.{key}"):
            if abs(number) > high:
                shown = number if abs(number) < 10**12 else f"an integer of {len(str(abs(number)))} digits"
                raise error(f"{path} is {shown}; at most {high} is supported (a network that size would not "
                            "fit in memory), give a realistic value")


def parse_hw(text: str) -> tuple[int, int]:
    """An ``HxW`` command-line size, checked against ``MAX_SIDE`` (argparse's type for every size option)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if h <= 0 or w <= 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give the size as HxW, e.g. 360x480") from None
    if max(h, w) > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_SIDE} pixels per side") from None
    return h, w
