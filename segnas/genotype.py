"""Genotype: the one hand-off from a search to retraining, as a small JSON file.

A genotype names its search space (and that space's version), the arguments
the space was built with, the discrete choices as a flat list of integers (what
samplers and controllers work with) and the same architecture in a readable
structured form (what ``build`` reads). ``archid`` is a content hash of the
space, arguments and structure, so identical architectures share an id.
Validation is the space's job; it names the offending field.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import jsonio
from .errors import GenotypeError
from .fileio import atomic_write_text

FORMAT_VERSION = 1
MAX_GENOTYPE_BYTES = 4 * 2**20  # the zoo's largest is about 10 kB
_REQUIRED = ("format_version", "space", "space_version", "space_args", "choices", "structure")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Decision:
    """One categorical decision of the flat ``choices``: an integer in ``0 .. size - 1``.

    ``constraint`` says in words what the size alone does not (values that
    depend on other decisions, or when the decision is present at all), so a
    sampler knows why ``decode`` may still refuse an in-range integer.
    ``group`` names decisions that pick from one list (``"op"``: an index
    into the space's operators): a controller may share one output head
    among them; decisions without a group are each their own kind. Spaces describe
    their ``choices`` with these (``SearchSpace.choice_spec``); strategies read them.
    """

    name: str
    size: int
    constraint: str = ""
    group: str = ""


@dataclass
class Genotype:
    """A discrete architecture of one search space."""

    space: str
    space_version: int
    space_args: dict[str, Any]
    choices: list[int]
    structure: dict[str, Any]
    name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def archid(self) -> str:
        """Content hash: equal for equal (space, version, args, structure), whatever the name."""
        payload = _canonical([self.space, self.space_version, self.space_args, self.structure])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "space": self.space,
            "space_version": self.space_version,
            "space_args": copy.deepcopy(self.space_args),
            "choices": list(self.choices),
            "structure": copy.deepcopy(self.structure),
            "name": self.name,
            "meta": copy.deepcopy(self.meta),
            "archid": self.archid,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "genotype") -> "Genotype":
        """Parse and check the envelope; the space checks the contents (see ``validate``)."""
        if not isinstance(data, dict):
            raise GenotypeError(f"{source}: expected a JSON object, got {type(data).__name__}")
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise GenotypeError(f"{source}: missing field(s) {', '.join(missing)}; "
                                f"a genotype needs {', '.join(_REQUIRED)}")
        jsonio.check_value(data, source, "a genotype", GenotypeError)
        if type(data["format_version"]) is not int or data["format_version"] != FORMAT_VERSION:
            raise GenotypeError(f"{source}: field 'format_version' is {data['format_version']!r}; "
                                f"this segnas reads format {FORMAT_VERSION}")
        checks = {"space": str, "space_version": int, "space_args": dict, "choices": list, "structure": dict}
        for key, typ in checks.items():
            if not isinstance(data[key], typ) or isinstance(data[key], bool):
                raise GenotypeError(f"{source}: field '{key}' must be a {typ.__name__}, "
                                    f"got {type(data[key]).__name__}")
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in data["choices"]):
            raise GenotypeError(f"{source}: field 'choices' must be a list of integers")
        for key, typ in (("name", str), ("meta", dict), ("archid", str)):
            if data.get(key) is not None and not isinstance(data[key], typ):
                raise GenotypeError(f"{source}: field '{key}' must be a {typ.__name__} or null, "
                                    f"got {type(data[key]).__name__}")
        g = cls(space=data["space"], space_version=data["space_version"],
                space_args=data["space_args"], choices=list(data["choices"]),
                structure=data["structure"], name=data.get("name"), meta=data.get("meta") or {})
        stored = data.get("archid")
        if stored is not None and stored != g.archid:
            raise GenotypeError(f"{source}: field 'archid' is {stored} but the contents hash to "
                                f"{g.archid}; the file was edited by hand: delete the 'archid' field "
                                "to accept the edit")
        return g

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"


def save(genotype: Genotype, path: str | os.PathLike) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves half a genotype."""
    return atomic_write_text(path, genotype.to_json())


def load(path: str | os.PathLike, validate: bool = True) -> Genotype:
    """Read a genotype file and (by default) validate it against its space."""
    path = Path(path)
    if not path.is_file():
        raise GenotypeError(f"{path}: no such genotype file")
    data = jsonio.read(path, "a genotype (written by 'segnas search' or taken from the zoo)", GenotypeError,
                       MAX_GENOTYPE_BYTES)
    g = Genotype.from_dict(data, source=str(path))
    if validate:
        from .spaces import get_space

        get_space(g.space, source=str(path)).validate(g, source=str(path))
    return g
