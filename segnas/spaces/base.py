"""The contract every search space implements.

A space turns genotypes into plain ``nn.Module`` child networks (``build``),
checks genotypes (``validate``, naming the bad field), draws random ones
(``sample``) and encodes a structured architecture as flat integer choices.
``choice_spec`` and ``decode`` are the contract for samplers and controllers:
they describe those integers and turn them back into a validated genotype, so
a strategy can work on integers alone without knowing the structure.
Supernet and derivation hooks are added by the spaces that have a
differentiable search.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..bounds import MAX_PARAMS, check_space_args, gib, machine_memory
from ..errors import ConfigError, GenotypeError
from ..genotype import Decision, Genotype


def read_choice(choices: Sequence[Any], pos: int, decision: Decision) -> int:
    """``choices[pos]`` as an int in ``0 .. decision.size - 1``, else GenotypeError naming the decision."""
    value = choices[pos]
    if type(value) is bool or not hasattr(value, "__index__"):
        raise GenotypeError(f"choices[{pos}] ({decision.name}) is {value!r}; it must be an integer "
                            f"in 0..{decision.size - 1}")
    value = int(value.__index__())
    if not 0 <= value < decision.size:
        rule = f" ({decision.constraint})" if decision.constraint else ""
        raise GenotypeError(f"choices[{pos}] ({decision.name}) is {value}; allowed 0..{decision.size - 1}{rule}")
    return value


def read_choices(choices: Sequence[Any], spec: Sequence[Decision], what: str) -> list[int]:
    """Every integer of a fixed-length ``choices`` read against ``spec``; a wrong length names the missing
    or first surplus decision, ``what`` saying what the space's arguments make the length (e.g. "4 L")."""
    choices = list(choices)
    if len(choices) < len(spec):
        raise GenotypeError(f"choices has {len(choices)} integers, so choices[{len(choices)}] "
                            f"({spec[len(choices)].name}) is missing; {what} takes {len(spec)}")
    if len(choices) > len(spec):
        raise GenotypeError(f"choices has {len(choices)} integers; the last decision is choices[{len(spec) - 1}] "
                            f"({spec[-1].name}), remove the {len(choices) - len(spec)} after it")
    return [read_choice(choices, pos, d) for pos, d in enumerate(spec)]


_COUNTS: dict[str, int | None] = {}


def count_meta(build: Callable[..., nn.Module], *args: Any) -> int | None:
    """Parameters and buffers (elements) of the network ``build(*args)`` makes, built on torch's ``meta``
    device so nothing is allocated; None where a space's build cannot run there."""
    try:
        with torch.device("meta"):
            net = build(*args)
    except (NotImplementedError, RuntimeError):
        return None
    return sum(t.numel() for t in (*net.parameters(), *net.buffers()))


def check_network_size(space: "SearchSpace", build: Callable[..., nn.Module], genotype: Genotype,
                       num_classes: int, aux: bool, memory: int | None = None) -> None:
    """A GenotypeError when the network of ``genotype`` would have more than ``MAX_PARAMS`` elements or its
    float32 weights alone more bytes than this machine's memory (``memory``), before a byte is allocated."""
    if isinstance(num_classes, bool) or not hasattr(num_classes, "__index__") or not 1 <= int(num_classes) <= 10**6:
        raise GenotypeError(f"num_classes is {num_classes!r}; give the class count (1 to 254 for a dataset)")
    check_space_args(genotype.space_args, "space_args", GenotypeError)
    key = f"{space.name}/{genotype.archid}/{num_classes}/{aux}"
    if key not in _COUNTS:  # a genotype is often built again (resume, evaluate, tests): count it once
        if len(_COUNTS) > 1024:
            _COUNTS.clear()
        _COUNTS[key] = count_meta(build, space, genotype, num_classes, aux)
    count = _COUNTS[key]
    if count is None:
        return
    memory = machine_memory() if memory is None else memory
    who = f"genotype {genotype.name or genotype.archid}"
    if count > MAX_PARAMS:
        raise GenotypeError(f"{who}: its network would have {count:,} parameters, more than the {MAX_PARAMS:,} "
                            "supported; check its space_args (channels, layers) and num_classes")
    if memory and 4 * count > memory:
        raise GenotypeError(f"{who}: its network's weights alone would need {gib(4 * count)} but this machine has "
                            f"{gib(memory)}; check its space_args (channels, layers) and num_classes")


def _bounded(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """``build`` that first checks the network's size on the meta device (every space's, see ``SearchSpace``)."""

    @functools.wraps(build)
    def checked(self: "SearchSpace", genotype: Genotype, num_classes: int, aux: bool = True) -> nn.Module:
        if torch.get_default_device().type != "meta":  # the check's own meta build: no second check
            check_network_size(self, build, genotype, num_classes, aux)
        return build(self, genotype, num_classes, aux)

    checked.bounded = True  # type: ignore[attr-defined]
    return checked


class SearchSpace(ABC):
    """Base class: subclasses set ``name`` and ``version`` and fill in the hooks.

    Every subclass's ``build`` is wrapped once (``__init_subclass__``) so an absurd genotype (terabytes of
    weights) is refused from its parameter count, counted on the meta device, before anything is allocated.
    """

    name: str = ""
    version: int = 1
    pretrained_part: str | None = None  # what ``load_pretrained`` loads (an encoder, a backbone), if anything

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "bounded", False) and \
                not getattr(build, "__isabstractmethod__", False):
            cls.build = _bounded(build)

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
    def choice_spec(self, args: dict[str, Any] | None = None) -> list[Decision]:
        """The decisions behind ``encode``'s integers, in their order, for the resolved ``args``.

        A variable-length space lists its longest sequence and says in each
        optional decision's ``constraint`` when it is present.
        """

    @abstractmethod
    def decode(self, choices: Sequence[int], args: dict[str, Any] | None = None, name: str | None = None,
               meta: dict[str, Any] | None = None) -> Genotype:
        """The inverse of ``encode``: a validated genotype from flat integer choices.

        Raise GenotypeError naming the position and decision for a wrong
        length, an out-of-range value or a violated constraint.
        """

    @abstractmethod
    def build(self, genotype: Genotype, num_classes: int, aux: bool = True) -> nn.Module:
        """The child network: plain modules, no supernet code."""

    @abstractmethod
    def sample(self, rng: np.random.Generator, args: dict[str, Any] | None = None) -> Genotype:
        """A uniformly drawn valid architecture."""

    def describe(self, genotype: Genotype) -> str:
        """A short human-readable listing; spaces override with something better."""
        return str(genotype.structure)

    def load_pretrained(self, net: nn.Module, path: str) -> str:
        """Load the weights file ``path`` into the part of a built ``net`` that is pretrained elsewhere (an
        ImageNet encoder or backbone, ``pretrained_part``), returning what it loaded; a space without such a
        part refuses (``check_pretrained``)."""
        self.check_pretrained(path)
        raise NotImplementedError(f"space {self.name!r} names a pretrained part but does not load it")

    def check_pretrained(self, path: str | None) -> None:
        """A ConfigError when ``train.pretrained`` is given for a space whose networks have no pretrained part."""
        if path and self.pretrained_part is None:
            raise ConfigError(f"train.pretrained: networks of space {self.name!r} have no pretrained part; "
                              "remove the option (they train from scratch)")

    # -- shared plumbing -------------------------------------------------
    def resolve_args(self, args: dict[str, Any] | None) -> dict[str, Any]:
        out = self.default_args()
        if args is not None and not isinstance(args, dict):
            raise GenotypeError(f"space_args: expected a mapping of argument names to values, got "
                                f"{type(args).__name__}")
        for key, value in (args or {}).items():
            if key not in out:
                raise GenotypeError(f"space_args: unknown argument {key!r} for space "
                                    f"{self.name!r}; known: {', '.join(sorted(map(str, out)))}")
            out[key] = value
        check_space_args(out, "space_args", GenotypeError)
        return out

    def make_genotype(self, structure: dict[str, Any], args: dict[str, Any] | None = None,
                      name: str | None = None, meta: dict[str, Any] | None = None) -> Genotype:
        """Create a validated genotype, filling in the choices from the structure."""
        args = self.resolve_args(args)
        self.check_structure(structure, args, "structure")
        g = Genotype(self.name, self.version, args, self.encode(structure, args), structure,
                     name=name, meta=dict(meta or {}))
        return g

    def _decoded(self, structure: dict[str, Any], choices: list[int], names: list[str], args: dict[str, Any],
                 name: str | None, meta: dict[str, Any] | None) -> Genotype:
        """``make_genotype`` for ``decode``, refusing integers that do not survive re-encoding.

        A repeated entry in ``space_args`` (e.g. an operator listed twice) lets
        two integers mean one structure; ``encode`` keeps the first, so the
        other would silently change the choices a controller emitted.
        """
        g = self.make_genotype(structure, args, name=name, meta=meta)
        for pos, (got, want) in enumerate(zip(choices, g.choices)):
            if got != want:
                raise GenotypeError(f"choices[{pos}] ({names[pos]}) is {got} but means the same as {want}, "
                                    "which encode uses; space_args lists that option twice")
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
        try:
            self.check_structure(genotype.structure, args, source)
            expected = self.encode(genotype.structure, args)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as e:
            # a space's checks missed a malformed value; still the user's file, still one line
            detail = " ".join(f"{type(e).__name__}: {e}".split())[:120]
            raise GenotypeError(f"{source}: field 'structure' is malformed ({detail}); regenerate the file "
                                "with 'segnas search' or take one from the zoo") from None
        if list(genotype.choices) != expected:
            raise GenotypeError(f"{source}: field 'choices' does not encode field 'structure' "
                                f"(expected {expected}); regenerate the file or fix one of them")


def representable_args(space: SearchSpace, genotype: Genotype, supernet_args: dict[str, Any],
                       keys: Sequence[str]) -> dict[str, Any]:
    """``genotype``'s resolved space arguments, checked against a supernet's: a GenotypeError names the
    first of ``keys`` (the arguments that shape the supernet's choices) whose value differs, since a
    supernet computes only architectures of its own shape (``fixed`` of the spaces' search problems)."""
    space.validate(genotype)
    args = space.resolve_args(genotype.space_args)
    for key in keys:
        if args[key] != supernet_args[key]:
            raise GenotypeError(f"genotype {genotype.name or genotype.archid}: space_args.{key} is {args[key]!r} "
                                f"but the supernet's is {supernet_args[key]!r}, so the supernet cannot compute it; "
                                "give architectures of the searched space")
    return args


def unknown_op(used: Sequence[str], searched: Sequence[str], genotype: Genotype) -> None:
    """A GenotypeError naming the first operator of ``used`` the supernet does not search."""
    for op in used:
        if op not in searched:
            raise GenotypeError(f"genotype {genotype.name or genotype.archid}: operator {op!r} is not one the "
                                f"supernet searches ({', '.join(searched)}), so it cannot compute it")


def other_args_note(args: dict[str, Any], supernet_args: dict[str, Any], keys: Sequence[str]) -> list[str]:
    """A note naming the space arguments among ``keys`` the child is built with otherwise than the supernet
    (widths, transitions): the supernet computes the architecture at its own."""
    differ = [k for k in keys if k in args and k in supernet_args and args[k] != supernet_args[k]]
    if not differ:
        return []
    return ["the supernet computes it with its own " + ", ".join(f"{k} {supernet_args[k]!r}" for k in differ)
            + " (the child: " + ", ".join(f"{args[k]!r}" for k in differ) + ")"]
