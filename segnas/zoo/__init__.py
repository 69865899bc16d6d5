"""Published architectures as genotype JSON files shipped with the package.

``segnas.zoo.list()`` names them, ``segnas.zoo.get(name)`` loads one (validated).
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path

from ..errors import GenotypeError
from ..genotype import Genotype
from ..genotype import load as _load

ZOO_DIR = Path(__file__).resolve().parent


def list() -> builtins.list[str]:  # noqa: A001 - reads as segnas.zoo.list()
    """Names of the zoo's genotypes, sorted."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.json"))


def path(name: str) -> Path:
    """File of zoo entry ``name``; an unknown name lists the known ones."""
    p = ZOO_DIR / f"{name}.json"
    if not p.is_file():
        raise GenotypeError(f"unknown zoo architecture {name!r}; known: {', '.join(list())}")
    return p


def get(name: str) -> Genotype:
    """The validated genotype of zoo entry ``name``."""
    return _load(path(name))


def info(name: str) -> dict:
    """The entry's metadata (source, paper figures) without building anything."""
    return json.loads(path(name).read_text()).get("meta", {})
