"""DOTS' segmentation network (Gu et al., CVPR 2021, supplement Table 2): a DARTS cell backbone in BiSeNet.

DOTS' published code covers classification only; its segmentation result
puts the cell searched on ImageNet, stacked as DARTS' ImageNet network, in
place of BiSeNet's context-path backbone. This space is that combination,
searchable as a whole (the supernet mixes the backbone's cells inside the
same BiSeNet).

Structure of a genotype (DARTS notation)::

    {"normal": [["dil_conv_5x5", 0], ["skip_connect", 1], ...],
     "reduce": [["sep_conv_5x5", 0], ["sep_conv_3x3", 1], ...]}

Two ``[operator, input]`` entries per node (node k = entries 2k, 2k+1);
inputs 0 = c_(k-2), 1 = c_(k-1), j + 2 = node j < k; a node's two inputs are
distinct; ``none`` may be searched over but never appears in a genotype. The
cell's output concatenates all nodes. Normal cells keep size and width,
reduction cells (at ``layers // 3`` and ``2 * layers // 3``) halve the size
and double the width (``backbone``).

Space arguments: ``channels`` (C, the stems' and first cells' width; 48 in
the paper's ImageNet network), ``layers`` (14), ``nodes`` (4), ``ops``
(DARTS' eight with ``none``), and BiSeNet's widths (``bisenet``):
``spatial_channels`` (the spatial path's three convs, [64, 64, 128]),
``context_channels`` (128: ARMs, global context and refinements),
``fusion_channels`` (256: the FFM and the auxiliary heads' 3x3 convs) and
``head_channels`` (64: the main head's 3x3 conv), all as the BiSeNet authors'
released code has them.

Choices (fixed length ``8 * nodes``): per cell (normal, then reduce), per
node ``input0, op0, input1, op1`` with op indices into ``space_args.ops``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from ...errors import GenotypeError
from ...genotype import Decision, Genotype
from ...ops import DARTS_OPS
from ..cells import block_decisions, check_ops, read_block
from ..base import SearchSpace, read_choices
from .backbone import DartsBackbone, load_backbone_weights
from .bisenet import BiSeNet

OPS = list(DARTS_OPS) + ["none"]
CELLS = ("normal", "reduce")
STATES = "0 = c(k-2), 1 = c(k-1), j + 2 = node j"
SHORT = {"sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3", "dil_conv_5x5": "dil5",
         "avg_pool_3x3": "avg", "max_pool_3x3": "max", "skip_connect": "skip"}


def _positive_int(value: object) -> bool:
    return type(value) is int and value > 0


def short_cell(entries: Sequence[Sequence]) -> str:
    """A cell on one line: nodes separated by ' | ', each ``op<input`` twice (e.g. ``sep3<0 skip<1``)."""
    names = [f"{SHORT.get(op, op)}<{i}" for op, i in entries]
    return " | ".join(f"{names[k]} {names[k + 1]}" for k in range(0, len(names), 2))


class DotsSpace(SearchSpace):
    """DARTS normal and reduction cells stacked to 1/32 as BiSeNet's context path."""

    name = "dots"
    version = 1
    pretrained_part = "the backbone (stems and cells)"

    def default_args(self) -> dict[str, Any]:
        return {"channels": 48, "layers": 14, "nodes": 4, "ops": list(OPS), "spatial_channels": [64, 64, 128],
                "context_channels": 128, "fusion_channels": 256, "head_channels": 64}

    def check_args(self, args: dict[str, Any], source: str) -> None:
        """Raise GenotypeError naming the bad ``space_args`` field."""
        for key in ("nodes", "context_channels", "fusion_channels", "head_channels"):
            if not _positive_int(args[key]):
                raise GenotypeError(f"{source}: field 'space_args.{key}' must be a positive integer")
        if not _positive_int(args["channels"]) or args["channels"] < 2:
            raise GenotypeError(f"{source}: field 'space_args.channels' must be an integer >= 2 "
                                "(stem0's first conv has channels // 2)")
        if not _positive_int(args["layers"]) or args["layers"] < 3:
            raise GenotypeError(f"{source}: field 'space_args.layers' must be an integer >= 3 (a normal cell at "
                                "1/8, then the reduction cells at layers // 3 and 2 * layers // 3)")
        check_ops(args["ops"], OPS, source)
        spatial = args["spatial_channels"]
        if not isinstance(spatial, list) or len(spatial) != 3 or not all(map(_positive_int, spatial)):
            raise GenotypeError(f"{source}: field 'space_args.spatial_channels' must be three positive integers "
                                "(the spatial path's three stride-2 convs)")

    def check_structure(self, structure: dict[str, Any], args: dict[str, Any], source: str) -> None:
        self.check_args(args, source)
        if not isinstance(structure, dict) or set(structure) != set(CELLS):
            raise GenotypeError(f"{source}: field 'structure' must have exactly the keys 'normal' and 'reduce'")
        allowed = [op for op in args["ops"] if op != "none"]
        nodes = args["nodes"]
        for cell in CELLS:
            entries = structure[cell]
            if not isinstance(entries, list) or len(entries) != 2 * nodes:
                raise GenotypeError(f"{source}: field 'structure.{cell}' must list {2 * nodes} [operator, input] "
                                    f"entries, two per node (space_args.nodes = {nodes})")
            for e, entry in enumerate(entries):
                k, at = e // 2, f"structure.{cell}[{e}]"
                if not isinstance(entry, list) or len(entry) != 2:
                    raise GenotypeError(f"{source}: field '{at}' is {entry!r}; it must be [operator, input]")
                op, i = entry
                if op not in allowed:
                    raise GenotypeError(f"{source}: field '{at}[0]' is {op!r}; node {k}'s operator is one of "
                                        f"{allowed}")
                if type(i) is not int or not 0 <= i < k + 2:
                    raise GenotypeError(f"{source}: field '{at}[1]' is {i!r}; node {k} reads a state in "
                                        f"0..{k + 1} ({STATES})")
                if e % 2 == 1 and i == entries[e - 1][1]:
                    raise GenotypeError(f"{source}: field '{at}[1]' is {i}, the same input as "
                                        f"structure.{cell}[{e - 1}]; node {k} takes two distinct inputs")

    def encode(self, structure: dict[str, Any], args: dict[str, Any]) -> list[int]:
        out: list[int] = []
        for cell in CELLS:
            for op, i in structure[cell]:
                out += [i, args["ops"].index(op)]
        return out

    def choice_spec(self, args: dict[str, Any] | None = None) -> list[Decision]:
        """Per cell (normal, reduce), per node: ``input0, op0, input1, op1``."""
        args = self.resolve_args(args)
        self.check_args(args, "space_args")
        spec = []
        for cell in CELLS:
            for k in range(args["nodes"]):
                spec += block_decisions(f"{cell}.node{k}", k, args["ops"], STATES)
        return spec

    def decode(self, choices: Sequence[int], args: dict[str, Any] | None = None, name: str | None = None,
               meta: dict[str, Any] | None = None) -> Genotype:
        """The genotype of ``choices`` (see ``choice_spec``); GenotypeError names the bad decision."""
        args = self.resolve_args(args)
        spec = self.choice_spec(args)
        vals = read_choices(choices, spec, f"{self.name} with {args['nodes']} nodes (8 * nodes)")
        ops, structure, pos = args["ops"], {}, 0
        for cell in CELLS:
            entries = []
            for k in range(args["nodes"]):
                i0, op0, i1, op1 = read_block(vals, pos, spec, ops, k)
                entries += [[op0, i0], [op1, i1]]
                pos += 4
            structure[cell] = entries
        return self._decoded(structure, vals, [d.name for d in spec], args, name, meta)

    def build(self, genotype: Genotype, num_classes: int, aux: bool = True) -> nn.Module:
        self.validate(genotype)
        a = self.resolve_args(genotype.space_args)
        s = genotype.structure
        backbone = DartsBackbone(s["normal"], s["reduce"], a["channels"], a["layers"])
        return BiSeNet(backbone, num_classes, a["spatial_channels"], a["context_channels"], a["fusion_channels"],
                       a["head_channels"], aux=aux)

    def sample(self, rng: np.random.Generator, args: dict[str, Any] | None = None) -> Genotype:
        """Both cells with uniform pairs of distinct inputs and uniform operators (never ``none``)."""
        args = self.resolve_args(args)
        self.check_args(args, "space_args")
        ops = [op for op in args["ops"] if op != "none"]
        structure = {}
        for cell in CELLS:
            entries = []
            for k in range(args["nodes"]):
                for i in rng.choice(k + 2, size=2, replace=False).tolist():
                    entries.append([str(rng.choice(ops)), int(i)])
            structure[cell] = entries
        return self.make_genotype(structure, args, meta={"source": "random sample"})

    def load_pretrained(self, net: nn.Module, path: str) -> str:
        """The context path's backbone from a state dict file (``load_backbone_weights``)."""
        load_backbone_weights(net, path)
        return f"backbone (stems and cells) from {path}"

    def describe(self, genotype: Genotype) -> str:
        s, a = genotype.structure, self.resolve_args(genotype.space_args)
        names = ["c(k-2)", "c(k-1)"] + [f"node {k}" for k in range(a["nodes"])]
        lines = [f"DARTS backbone in BiSeNet: C = {a['channels']}, {a['layers']} cells (reductions at "
                 f"{a['layers'] // 3} and {2 * a['layers'] // 3}), {a['nodes']} nodes; cell output = concat of "
                 "the nodes"]
        for cell in CELLS:
            lines.append(f"{cell} cell:")
            entries = s[cell]
            for k in range(0, len(entries), 2):
                terms = " + ".join(f"{op}({names[i]})" for op, i in entries[k:k + 2])
                lines.append(f"  node {k // 2} = {terms}")
        return "\n".join(lines)


__all__ = ["CELLS", "OPS", "BiSeNet", "DartsBackbone", "DotsSpace", "load_backbone_weights", "short_cell"]
