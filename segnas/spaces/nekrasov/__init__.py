"""Nekrasov et al.'s decoder space (CVPR 2019, "Fast Neural Architecture Search of Compact Semantic Segmentation
Models via Auxiliary Cells"): which encoder outputs to merge, and one cell design used everywhere.

A MobileNet-v2 encoder gives four outputs; the decoder merges pairs of them
three times (each merge joins the pool) with the searched cell applied to
every merged entry, and classifies from the merges no later one reads. The
cell applies one operation to its input, then three times two operations to
two earlier positions, summed. The structure and its positions are described
in ``encoding``, the network in ``network``, the eleven operations (Table 4)
in ``ops``.

Space arguments: ``agg_size`` (the decoder's width: 48 in the paper's search,
64 in its final networks) and ``sep_repeats`` (rounds of each separable conv:
1 in the search, 2 in the final networks). The defaults are the final
networks'.

Choices: the paper's 19 integers in its order (``encoding.choice_spec``);
``from_paper`` and ``to_paper`` read and write the paper's nested list
``[[[c1, c2], [c3, c4], [c5, c6]], [o1, [i2, i3, o2, o3], [i4, i5, o4, o5], [i6, i7, o6, o7]]]``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from ... import jsonio
from ...errors import GenotypeError
from ...genotype import Genotype
from ...ops.mobilenetv2 import load_encoder_weights
from ..base import Decision, SearchSpace, read_choices
from . import encoding
from .cell import Cell, cell_outputs
from .encoding import BLOCKS, BRANCHES, ENCODER_SCALES, cell_position_name, head_inputs, pool_name
from .network import Decoder, NekrasovNet
from .ops import DESCRIPTIONS, OPS, make_op


def _positive_int(value: object) -> bool:
    return type(value) is int and value > 0


class NekrasovSpace(SearchSpace):
    """Three merges of encoder outputs and earlier merges, one searched cell on every merged entry."""

    name = "nekrasov"
    version = 1
    pretrained_part = "the MobileNet-v2 encoder"

    def default_args(self) -> dict[str, Any]:
        return {"agg_size": 64, "sep_repeats": 2}

    def check_args(self, args: dict[str, Any], source: str) -> None:
        """Raise GenotypeError naming the bad ``space_args`` field."""
        for key in ("agg_size", "sep_repeats"):
            if not _positive_int(args[key]):
                raise GenotypeError(f"{source}: field 'space_args.{key}' must be a positive integer "
                                    "(agg_size: 48 in the paper's search, 64 final; sep_repeats: 1 search, 2 final)")

    def check_structure(self, structure: dict[str, Any], args: dict[str, Any], source: str) -> None:
        self.check_args(args, source)
        encoding.check_structure(structure, source)

    def encode(self, structure: dict[str, Any], args: dict[str, Any]) -> list[int]:
        return encoding.encode(structure)

    def choice_spec(self, args: dict[str, Any] | None = None) -> list[Decision]:
        """The paper's 19 decisions: c1..c6 (no group), o1, then per branch i, i, o, o (operations: group "op")."""
        self.check_args(self.resolve_args(args), "space_args")
        return encoding.choice_spec()

    def decode(self, choices: Sequence[int], args: dict[str, Any] | None = None, name: str | None = None,
               meta: dict[str, Any] | None = None) -> Genotype:
        """The genotype of ``choices`` (see ``choice_spec``); GenotypeError names the bad decision."""
        args = self.resolve_args(args)
        spec = self.choice_spec(args)
        vals = read_choices(choices, spec, f"{self.name} (the paper's integers)")
        return self._decoded(encoding.structure_of(vals), vals, [d.name for d in spec], args, name, meta)

    def build(self, genotype: Genotype, num_classes: int, aux: bool = True) -> nn.Module:
        self.validate(genotype)
        a = self.resolve_args(genotype.space_args)
        s = genotype.structure
        return NekrasovNet(s["connections"], s["cell"], num_classes, a["agg_size"], a["sep_repeats"], aux=aux)

    def sample(self, rng: np.random.Generator, args: dict[str, Any] | None = None) -> Genotype:
        """Every decision uniform in its range: all such choices are architectures, so this is uniform over them."""
        args = self.resolve_args(args)
        spec = self.choice_spec(args)
        return self.decode([int(rng.integers(d.size)) for d in spec], args, meta={"source": "random sample"})

    def load_pretrained(self, net: nn.Module, path: str) -> str:
        """The MobileNet-v2 encoder from a state dict file (``segnas.ops.load_encoder_weights``)."""
        load_encoder_weights(net.encoder, path)
        return f"MobileNet-v2 encoder from {path}"

    def describe(self, genotype: Genotype) -> str:
        s, a = genotype.structure, self.resolve_args(genotype.space_args)
        scales = list(ENCODER_SCALES)
        lines = [f"decoder (agg_size {a['agg_size']}, separable convs x{a['sep_repeats']}):"]
        for k, (i, j) in enumerate(s["connections"]):
            scales.append(min(scales[i], scales[j]))
            lines.append(f"  block {k} = cell({pool_name(i)}) + cell({pool_name(j)})  at 1/{scales[-1]}")
        head = head_inputs(s["connections"])
        lines.append(f"  head: concat({', '.join(pool_name(i) for i in head)}) -> 1x1 -> classifier "
                     f"at 1/{min(scales[i] for i in head)}")
        cell = s["cell"]
        lines.append("cell:")
        lines.append(f"  [1] o1 = {cell['op']}(input)")
        for b, branch in enumerate(cell["branches"], 1):
            (p, q), (op_p, op_q) = branch["inputs"], branch["ops"]
            lines.append(f"  [{3 * b + 1}] branch {b} = {op_p}([{p}] {cell_position_name(p)}) + "
                         f"{op_q}([{q}] {cell_position_name(q)})")
        lines.append("  output = " + " + ".join(f"[{p}]" for p in cell_outputs(cell)))
        lines.append(f"paper encoding: {json.dumps(to_paper(genotype))}")
        return "\n".join(lines)


SPACE = NekrasovSpace()


def to_paper(genotype: Genotype) -> list:
    """The paper's nested integer list of a genotype of this space."""
    SPACE.validate(genotype)
    return encoding.to_paper_list(genotype.choices)


def from_paper(paper: Any, args: dict[str, Any] | None = None, name: str | None = None,
               meta: dict[str, Any] | None = None) -> Genotype:
    """The genotype of the paper's nested integer list; GenotypeError names the bad position, e.g. ``[1][2][0]``."""
    return SPACE.decode(encoding.flatten_paper(paper), args, name=name, meta=meta)


def parse_paper(text: str, args: dict[str, Any] | None = None) -> Genotype:
    """The genotype of the paper's encoding written as JSON text (as on the command line)."""
    shown = repr(text) if len(text) <= 80 else repr(text[:80]) + "..."
    example = "'[[[3, 3], [3, 2], [3, 0]], [8, [0, 0, 5, 2], [0, 2, 8, 8], [0, 5, 1, 4]]]'"
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise GenotypeError(f"paper encoding {shown}: not a JSON list ({e.msg}); write it as {example}") from None
    except (ValueError, RecursionError):  # absurd numbers or nesting: jsonio below names them
        pass
    paper = jsonio.loads(text, f"paper encoding {shown}", f"the encoding {example}", GenotypeError)
    return from_paper(paper, args)


__all__ = ["NekrasovSpace", "NekrasovNet", "Decoder", "Cell", "BLOCKS", "BRANCHES", "DESCRIPTIONS", "OPS",
           "cell_outputs", "from_paper", "head_inputs", "make_op", "parse_paper", "to_paper"]
