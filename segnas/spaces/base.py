"""The contract every search space implements.

A space turns genotypes into plain ``nn.Module`` child networks (``build``),
checks genotypes (``validate``, naming the bad field), draws random ones
(``sample``) and encodes a structured architecture as flat integer choices.
Supernet and derivation hooks are added by the spaces that have a
differentiable search.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from torch import nn

from ..errors import GenotypeError
from ..genotype import Genotype


class SearchSpace(ABC):
    """Base class: subclasses set ``name`` and ``version`` and fill in the hooks."""

    name: str = ""
    version: int = 1

    @abstractmethod
    def default_args(self) -> dict[str, Any]:
        """Space arguments used when a genotype or caller gives none."""

    @abstractmethod
    def check_structure(self, structure: dict[str, Any], args: dict[str, Any], source: str) -> None:
        """Raise GenotypeError naming the field if ``structure`` is not an architecture of this space."""

    @abstractmethod
    def encode(self, structure: dict[str, Any], args: dict[str, Any]) -> list[int]:
        """Flat integer choices of a (valid) structure."""

    @abstractmethod
    def build(self, genotype: Genotype, num_classes: int, aux: bool = True) -> nn.Module:
        """The child network: plain modules, no supernet code."""

    @abstractmethod
    def sample(self, rng: np.random.Generator, args: dict[str, Any] | None = None) -> Genotype:
        """A uniformly drawn valid architecture."""

    def describe(self, genotype: Genotype) -> str:
        """A short human-readable listing; spaces override with something better."""
        return str(genotype.structure)

    # -- shared plumbing -------------------------------------------------
    def resolve_args(self, args: dict[str, Any] | None) -> dict[str, Any]:
        out = self.default_args()
        for key, value in (args or {}).items():
            if key not in out:
                raise GenotypeError(f"space_args: unknown argument {key!r} for space "
                                    f"{self.name!r}; known: {', '.join(sorted(out))}")
            out[key] = value
        return out

    def make_genotype(self, structure: dict[str, Any], args: dict[str, Any] | None = None,
                      name: str | None = None, meta: dict[str, Any] | None = None) -> Genotype:
        """Create a validated genotype, filling in the choices from the structure."""
        args = self.resolve_args(args)
        self.check_structure(structure, args, "structure")
        g = Genotype(self.name, self.version, args, self.encode(structure, args), structure,
                     name=name, meta=dict(meta or {}))
        return g

    def validate(self, genotype: Genotype, source: str = "genotype") -> None:
        """Raise GenotypeError naming the field if the genotype does not belong to this space."""
        if genotype.space != self.name:
            raise GenotypeError(f"{source}: field 'space' is {genotype.space!r}, expected {self.name!r}")
        if genotype.space_version != self.version:
            raise GenotypeError(f"{source}: field 'space_version' is {genotype.space_version}, this "
                                f"segnas builds {self.name!r} version {self.version}")
        try:
            args = self.resolve_args(genotype.space_args)
        except GenotypeError as e:
            raise GenotypeError(f"{source}: {e}") from None
        self.check_structure(genotype.structure, args, source)
        expected = self.encode(genotype.structure, args)
        if list(genotype.choices) != expected:
            raise GenotypeError(f"{source}: field 'choices' does not encode field 'structure' "
                                f"(expected {expected}); regenerate the file or fix one of them")
