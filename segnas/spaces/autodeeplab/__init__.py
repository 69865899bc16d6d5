"""Auto-DeepLab's hierarchical space (Liu et al., CVPR 2019): a cell and a path through the scale trellis.

Structure of a genotype::

    {"path": [0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1],
     "cell": [{"inputs": [1, 0], "ops": ["atrous_conv_5x5", "sep_conv_3x3"]}, ...]}

``path[l]`` is layer l's scale index (0 = 1/4, 1 = 1/8, 2 = 1/16, 3 = 1/32):
the first layer is at 1/4 or 1/8 and each layer keeps, halves or doubles the
previous one's resolution. The cell has ``blocks`` blocks; block k adds two
operators applied to two distinct earlier states (0 = h_{l-1}, 1 = h_{l-2},
k' + 2 = block k' < k). ``none`` may be searched over but never appears in a
genotype. ``filter_multiplier`` is the paper's F (8 in the search, 20/32/48 for
Auto-DeepLab-S/M/L). ``down_transition`` is how the final network goes down a
scale: ``conv3x3`` (segnas' reading of the paper's text, a stride-2 3x3 conv) or
``released`` (the authors' released network: a 1x1 conv and strided cell
operators, a ReLU before ASPP; Table 2's parameter counts); see ``network``.
It was added after genotypes were first saved: a genotype without it builds
``conv3x3``, and ``make_genotype`` leaves it out where it has that value, so
such an architecture keeps the archid it had before the argument existed.

Choices (fixed length ``layers + 4 * blocks``): the path, then per block
``input0, op0, input1, op1`` with op indices into ``space_args.ops``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from ...errors import GenotypeError
from ...genotype import Genotype
from ...ops import CELL_OPS
from ..cells import block_decisions, check_ops, read_block
from ..base import Decision, SearchSpace, read_choices
from .network import DOWN_TRANSITIONS, SCALES, AutoDeepLabNet

OPS = list(CELL_OPS) + ["none"]
# arguments added after genotypes were first saved, with the value a genotype without them builds
LATER_ARGS: dict[str, Any] = {"down_transition": "conv3x3"}


def _positive_int(value: object) -> bool:
    return type(value) is int and value > 0


def path_counts(layers: int, n_scales: int = len(SCALES)) -> np.ndarray:
    """counts[l, j]: number of valid path endings from node (l, j) to the last layer (for uniform sampling)."""
    counts = np.zeros((layers, n_scales), dtype=object)  # exact integers: 3^L overflows int64 for large L
    counts[-1, :] = 1
    for layer in range(layers - 2, -1, -1):
        for j in range(n_scales):
            counts[layer, j] = sum(counts[layer + 1, k] for k in (j - 1, j, j + 1) if 0 <= k < n_scales)
    for layer in range(layers):  # unreachable nodes: scale index j needs j - 1 earlier layers
        counts[layer, layer + 2:] = 0
    return counts


def check_path(path: object, layers: int, source: str, at: str) -> None:
    """A GenotypeError naming ``at`` unless ``path`` is one scale index per layer, one step at a time."""
    if not isinstance(path, list) or len(path) != layers:
        raise GenotypeError(f"{source}: field '{at}' must list one scale index per layer ({layers} = space_args.layers)")
    prev = 0  # the stem ends at 1/4
    for i, j in enumerate(path):
        if type(j) is not int or not 0 <= j < len(SCALES) or abs(j - prev) > 1:
            raise GenotypeError(f"{source}: field '{at}[{i}]' is {j!r}; after scale index {prev} "
                                f"it must be one of {[k for k in (prev - 1, prev, prev + 1) if 0 <= k < 4]} "
                                "(0 = 1/4 .. 3 = 1/32; one step per layer, the stem ends at 1/4)")
        prev = j


class AutoDeepLabSpace(SearchSpace):
    """A shared cell over an L-layer path through scales 1/4 .. 1/32, with ASPP and a DeepLabv3+ decoder."""

    name = "autodeeplab"
    version = 1

    def default_args(self) -> dict[str, Any]:
        return {"layers": 12, "blocks": 5, "filter_multiplier": 20, "ops": list(OPS), "stem": [64, 64, 128],
                "aspp_channels": 256, "decoder_channels": 256, "low_level_channels": 48, **LATER_ARGS}

    def check_args(self, args: dict[str, Any], source: str) -> None:
        """Raise GenotypeError naming the bad ``space_args`` field."""
        for key in ("layers", "blocks", "filter_multiplier", "aspp_channels", "decoder_channels",
                    "low_level_channels"):
            if not _positive_int(args[key]):
                raise GenotypeError(f"{source}: field 'space_args.{key}' must be a positive integer")
        check_ops(args["ops"], OPS, source)
        stem = args["stem"]
        if not isinstance(stem, list) or len(stem) != 3 or not all(map(_positive_int, stem)):
            raise GenotypeError(f"{source}: field 'space_args.stem' must be three positive integers "
                                "(channels of the three stem convolutions)")
        if args["down_transition"] not in DOWN_TRANSITIONS:
            raise GenotypeError(f"{source}: field 'space_args.down_transition' is {args['down_transition']!r}; "
                                f"choose one of {', '.join(DOWN_TRANSITIONS)} (conv3x3: a stride-2 3x3 conv "
                                "going down; released: the authors' released network)")

    def make_genotype(self, structure: dict[str, Any], args: dict[str, Any] | None = None,
                      name: str | None = None, meta: dict[str, Any] | None = None) -> Genotype:
        """As the base class, with ``LATER_ARGS`` left out where they have the value older genotypes built."""
        g = super().make_genotype(structure, args, name, meta)
        for key, value in LATER_ARGS.items():
            if g.space_args.get(key) == value:
                del g.space_args[key]
        return g

    def check_structure(self, structure: dict[str, Any], args: dict[str, Any], source: str) -> None:
        self.check_args(args, source)
        path, cell = structure.get("path"), structure.get("cell")
        if set(structure) != {"path", "cell"}:
            raise GenotypeError(f"{source}: field 'structure' must have exactly the keys 'path' and 'cell'")
        check_path(path, args["layers"], source, "structure.path")
        if not isinstance(cell, list) or len(cell) != args["blocks"]:
            raise GenotypeError(f"{source}: field 'structure.cell' must list {args['blocks']} blocks "
                                "(space_args.blocks)")
        allowed = [op for op in args["ops"] if op != "none"]
        for k, block in enumerate(cell):
            at = f"structure.cell[{k}]"
            if not isinstance(block, dict) or set(block) != {"inputs", "ops"}:
                raise GenotypeError(f"{source}: field '{at}' must be an object with keys inputs, ops")
            inputs, ops = block["inputs"], block["ops"]
            if (not isinstance(inputs, list) or len(inputs) != 2 or any(type(i) is not int for i in inputs)
                    or not all(0 <= i < k + 2 for i in inputs) or inputs[0] == inputs[1]):
                raise GenotypeError(f"{source}: field '{at}.inputs' is {inputs!r}; block {k} takes two distinct "
                                    f"states from 0..{k + 1} (0 = h_(l-1), 1 = h_(l-2), i + 2 = block i)")
            if not isinstance(ops, list) or len(ops) != 2 or any(op not in allowed for op in ops):
                raise GenotypeError(f"{source}: field '{at}.ops' is {ops!r}; two operators from {allowed}")

    def encode(self, structure: dict[str, Any], args: dict[str, Any]) -> list[int]:
        out = list(structure["path"])
        for block in structure["cell"]:
            for i, op in zip(block["inputs"], block["ops"]):
                out += [i, args["ops"].index(op)]
        return out

    def choice_spec(self, args: dict[str, Any] | None = None) -> list[Decision]:
        """``layers`` path decisions, then ``input0, op0, input1, op1`` per block."""
        args = self.resolve_args(args)
        self.check_args(args, "space_args")
        ops = args["ops"]
        spec = [Decision("path.layer0", len(SCALES), "0 or 1: one step from the stem at 1/4")]
        spec += [Decision(f"path.layer{i}", len(SCALES), f"within one of path.layer{i - 1}")
                 for i in range(1, args["layers"])]
        for k in range(args["blocks"]):
            spec += block_decisions(f"cell.block{k}", k, ops, "0 = h(l-1), 1 = h(l-2), i + 2 = block i")
        return spec

    def decode(self, choices: Sequence[int], args: dict[str, Any] | None = None, name: str | None = None,
               meta: dict[str, Any] | None = None) -> Genotype:
        """The genotype of ``choices`` (see ``choice_spec``); GenotypeError names the bad decision."""
        args = self.resolve_args(args)
        spec = self.choice_spec(args)
        vals = read_choices(choices, spec, f"{self.name} with {args['layers']} layers and {args['blocks']} blocks "
                                           "(layers + 4 * blocks)")
        prev = 0  # the stem ends at 1/4
        for pos in range(args["layers"]):
            if abs(vals[pos] - prev) > 1:
                allowed = [j for j in (prev - 1, prev, prev + 1) if 0 <= j < len(SCALES)]
                raise GenotypeError(f"choices[{pos}] ({spec[pos].name}) is {vals[pos]}; after scale index {prev} it "
                                    f"must be one of {allowed} (one step per layer, the stem ends at 1/4)")
            prev = vals[pos]
        ops, cell = args["ops"], []
        for k in range(args["blocks"]):
            pos = args["layers"] + 4 * k
            i0, op0, i1, op1 = read_block(vals, pos, spec, ops, k)
            cell.append({"inputs": [i0, i1], "ops": [op0, op1]})
        return self._decoded({"path": vals[:args["layers"]], "cell": cell}, vals, [d.name for d in spec],
                             args, name, meta)

    def build(self, genotype: Genotype, num_classes: int, aux: bool = True) -> nn.Module:
        self.validate(genotype)
        a = self.resolve_args(genotype.space_args)
        s = genotype.structure
        return AutoDeepLabNet(s["path"], s["cell"], num_classes, a["filter_multiplier"], a["stem"],
                              a["aspp_channels"], a["decoder_channels"], a["low_level_channels"],
                              a["down_transition"])

    def sample(self, rng: np.random.Generator, args: dict[str, Any] | None = None) -> Genotype:
        """A path drawn uniformly over all valid paths and a cell with uniform inputs and operators."""
        args = self.resolve_args(args)
        self.check_args(args, "space_args")
        counts = path_counts(args["layers"])
        path, prev = [], 0
        for layer in range(args["layers"]):
            options = [j for j in (prev - 1, prev, prev + 1) if 0 <= j < len(SCALES)]
            weights = np.array([float(counts[layer, j]) for j in options])
            prev = int(options[rng.choice(len(options), p=weights / weights.sum())])
            path.append(prev)
        ops = [op for op in args["ops"] if op != "none"]
        cell = []
        for k in range(args["blocks"]):
            inputs = rng.choice(k + 2, size=2, replace=False).tolist()
            cell.append({"inputs": [int(i) for i in inputs], "ops": [str(rng.choice(ops)) for _ in range(2)]})
        return self.make_genotype({"path": path, "cell": cell}, args, meta={"source": "random sample"})

    def describe(self, genotype: Genotype) -> str:
        s, a = genotype.structure, self.resolve_args(genotype.space_args)
        names = ["h(l-1)", "h(l-2)"] + [f"block {k}" for k in range(len(s["cell"]))]
        lines = [f"path ({len(s['path'])} layers, F = {a['filter_multiplier']}, down transition "
                 f"{a['down_transition']}): " + " ".join(f"1/{SCALES[j]}" for j in s["path"]),
                 f"cell ({len(s['cell'])} blocks, output = concat of all blocks):"]
        for k, block in enumerate(s["cell"]):
            terms = " + ".join(f"{op}({names[i]})" for i, op in zip(block["inputs"], block["ops"]))
            lines.append(f"  block {k} = {terms}")
        return "\n".join(lines)


__all__ = ["AutoDeepLabSpace", "check_path", "AutoDeepLabNet", "DOWN_TRANSITIONS", "LATER_ARGS", "OPS", "SCALES", "path_counts"]
