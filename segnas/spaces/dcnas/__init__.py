"""DCNAS' densely connected space (Zhang et al., CVPR 2021): L layers x 4 scales, every node fed by any earlier one.

Structure of a genotype::

    {"nodes": [{"layer": 1, "scale": 8, "op": "mbconv_k5_e6_se", "inputs": [[0, 4], [0, 8]]},
               ...,
               {"layer": 3, "scale": 32, "op": "skip_connect", "inputs": [[1, 8], [2, 32]]}]}

Each node is layer ``layer`` (1 .. L) at scale 1/``scale`` (4, 8, 16, 32)
with one operator and the list of its inputs ``[layer, scale]``; layer 0 is
the stem's four outputs. Nodes are listed by (layer, scale), inputs likewise,
so an architecture has one spelling and one archid. Rules: the last layer's
four nodes are present (the head reads them); every input comes from an
earlier layer and, unless it is the stem, names a listed node; every listed
node below the last layer is some listed node's input (it reaches the head).
Nodes that are not listed do not exist in the network. ``none`` may be
searched over but never appears in a genotype.

Space arguments: ``layers`` (L), ``filter_multiplier`` (F: a node at 1/s has
F * s / 4 channels), ``ops`` (a list of operator names, or the set names
``mobilenetv3``: twelve MBConv variants, kernel 3/5/7 x expansion 3/6 x
with/without squeeze-excitation, and ``skip_connect``, the paper's; or
``autodeeplab``: Auto-DeepLab's eight, for the paper's ablation),
``stem_channels`` (32), ``head_channels`` (the head's 3x3 conv; the paper
gives none), ``down_align``, ``fusion`` and ``activation`` (see ``network``).
The paper gives no F; the default F = 48 with L = 14 builds networks of its
size: random samples (1-3 inputs per node, 21-30 of the 56 nodes kept) have
16-23 M parameters and 310-326 G multiply-adds at 1024x2048 and 19 classes
(Table 1's searched network: 21.49 M, 294.57 G).

Choices (fixed length ``4 L + 8 L (L + 1)``): per node in (layer, scale)
order, its operator, then one keep-bit (0/1) per candidate input in the
order of ``graph.sources``. A node is present when any of its keep-bits is
1; an absent node's operator is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from ...errors import GenotypeError
from ...genotype import Genotype
from ...ops import ACTIVATIONS, CELL_OPS, MOBILE_OPS
from ..base import Decision, SearchSpace, read_choices
from .graph import N_SCALES, SCALES, Node, node_name, nodes, reached, sources
from .network import DOWN_ALIGNS, FUSIONS, DCNASNet

OP_SETS: dict[str, tuple[str, ...]] = {"mobilenetv3": MOBILE_OPS, "autodeeplab": CELL_OPS + ("none",)}
KNOWN_OPS = tuple(dict.fromkeys(MOBILE_OPS + CELL_OPS + ("none",)))
SAMPLE_MAX_INPUTS = 3  # ``sample`` draws 1..3 inputs per node (L_con's default k)


def _positive_int(value: object) -> bool:
    return type(value) is int and value > 0


def op_list(args: dict[str, Any]) -> list[str]:
    """The operator names of resolved ``args`` (a set name expanded)."""
    ops = args["ops"]
    return list(OP_SETS[ops]) if isinstance(ops, str) else list(ops)


def _node_of(item: Any, scales: dict[int, int]) -> Node | None:
    """(layer, scale index) of a ``[layer, scale]`` pair, None if it is not one."""
    if (isinstance(item, list) and len(item) == 2 and type(item[0]) is int and type(item[1]) is int
            and item[1] in scales):
        return (item[0], scales[item[1]])
    return None


class DCNASSpace(SearchSpace):
    """A grid of L layers x 4 scales, densely connected, one operator per node, a stem and a concat head."""

    name = "dcnas"
    version = 1

    def default_args(self) -> dict[str, Any]:
        return {"layers": 14, "filter_multiplier": 48, "ops": "mobilenetv3", "stem_channels": 32,
                "head_channels": 256, "down_align": "chain", "fusion": "sum", "activation": "hswish"}

    def check_args(self, args: dict[str, Any], source: str) -> None:
        """Raise GenotypeError naming the bad ``space_args`` field."""
        for key in ("layers", "filter_multiplier", "stem_channels", "head_channels"):
            if not _positive_int(args[key]):
                raise GenotypeError(f"{source}: field 'space_args.{key}' must be a positive integer")
        ops = args["ops"]
        if isinstance(ops, str):
            if ops not in OP_SETS:
                raise GenotypeError(f"{source}: field 'space_args.ops' is {ops!r}; name a set "
                                    f"({', '.join(OP_SETS)}) or list operators from {list(KNOWN_OPS)}")
        elif (not isinstance(ops, list) or not ops or any(op not in KNOWN_OPS for op in ops)
              or len(set(ops)) != len(ops)):
            raise GenotypeError(f"{source}: field 'space_args.ops' must be a set name ({', '.join(OP_SETS)}) or "
                                f"a list of distinct names from {list(KNOWN_OPS)}")
        elif not [op for op in ops if op != "none"]:
            raise GenotypeError(f"{source}: field 'space_args.ops' needs an operator besides 'none'")
        for key, options in (("down_align", DOWN_ALIGNS), ("fusion", FUSIONS), ("activation", ACTIVATIONS)):
            if args[key] not in options:
                raise GenotypeError(f"{source}: field 'space_args.{key}' is {args[key]!r}; choose one of "
                                    f"{', '.join(options)}")

    def check_structure(self, structure: dict[str, Any], args: dict[str, Any], source: str) -> None:
        self.check_args(args, source)
        if not isinstance(structure, dict) or set(structure) != {"nodes"}:
            raise GenotypeError(f"{source}: field 'structure' must have exactly the key 'nodes'")
        items, layers = structure["nodes"], args["layers"]
        if not isinstance(items, list):
            raise GenotypeError(f"{source}: field 'structure.nodes' must be a list of nodes")
        scales = {s: j for j, s in enumerate(SCALES)}
        allowed = [op for op in op_list(args) if op != "none"]
        keys: list[Node] = []
        for i, node in enumerate(items):
            at = f"structure.nodes[{i}]"
            if not isinstance(node, dict) or set(node) != {"layer", "scale", "op", "inputs"}:
                raise GenotypeError(f"{source}: field '{at}' must be an object with keys layer, scale, op, inputs")
            layer, scale = node["layer"], node["scale"]
            if type(layer) is not int or not 1 <= layer <= layers:
                raise GenotypeError(f"{source}: field '{at}.layer' is {layer!r}; a layer in 1..{layers} "
                                    "(space_args.layers; 0 is the stem)")
            if type(scale) is not int or scale not in scales:
                raise GenotypeError(f"{source}: field '{at}.scale' is {scale!r}; one of {list(SCALES)} (1/scale)")
            key = (layer, scales[scale])
            if keys and key <= keys[-1]:
                raise GenotypeError(f"{source}: field '{at}' (layer {layer}, scale {scale}) is out of order or "
                                    "repeated; list each node once, by layer, then scale")
            keys.append(key)
            if node["op"] not in allowed:
                raise GenotypeError(f"{source}: field '{at}.op' is {node['op']!r}; one of {allowed}")
            inputs = node["inputs"]
            pairs = [_node_of(item, scales) for item in inputs] if isinstance(inputs, list) else [None]
            if not pairs or any(p is None or not 0 <= p[0] < layer for p in pairs):
                raise GenotypeError(f"{source}: field '{at}.inputs' is {inputs!r}; give one or more [layer, scale] "
                                    f"pairs with layer in 0..{layer - 1} (0 = stem) and scale in {list(SCALES)}")
            if pairs != sorted(set(pairs)):
                raise GenotypeError(f"{source}: field '{at}.inputs' must list distinct inputs by layer, then scale")
        present = set(keys)
        missing = [(layers, j) for j in range(N_SCALES) if (layers, j) not in present]
        if missing:
            raise GenotypeError(f"{source}: field 'structure.nodes' lacks the last layer's node(s) "
                                f"{', '.join(node_name(n) for n in missing)}; the head reads all four")
        used: set[Node] = set()
        for i, node in enumerate(items):
            for pair in node["inputs"]:
                src = _node_of(pair, scales)
                if src[0] > 0 and src not in present:
                    raise GenotypeError(f"{source}: field 'structure.nodes[{i}].inputs' takes {pair}, a node not "
                                        "in structure.nodes; add that node or drop the input")
                used.add(src)
        for i, key in enumerate(keys):
            if key[0] < layers and key not in used:
                raise GenotypeError(f"{source}: field 'structure.nodes[{i}]' ({node_name(key)}) is no node's input, "
                                    "so it never reaches the head; drop it or use it")

    def encode(self, structure: dict[str, Any], args: dict[str, Any]) -> list[int]:
        ops = op_list(args)
        scales = {s: j for j, s in enumerate(SCALES)}
        by_key = {(n["layer"], scales[n["scale"]]): n for n in structure["nodes"]}
        out: list[int] = []
        for key in nodes(args["layers"]):
            node = by_key.get(key)
            kept = set() if node is None else {(layer, scales[s]) for layer, s in node["inputs"]}
            out.append(0 if node is None else ops.index(node["op"]))
            out += [int(src in kept) for src in sources(key[0])]
        return out

    def choice_spec(self, args: dict[str, Any] | None = None) -> list[Decision]:
        """Per node: its operator, then a keep-bit per candidate input (``graph`` order)."""
        args = self.resolve_args(args)
        self.check_args(args, "space_args")
        ops = op_list(args)
        no_none = f"; not {ops.index('none')} ('none')" if "none" in ops else ""
        spec: list[Decision] = []
        for key in nodes(args["layers"]):
            name = node_name(key)
            spec.append(Decision(f"{name}.op", len(ops), f"0 when {name} has no kept input{no_none}", "op"))
            last = key[0] == args["layers"]
            rule = ("at least one of the node's keep-bits is 1 (the head reads it)" if last else
                    "1 only from the stem or a present node; a present node must be some later node's input")
            spec += [Decision(f"{name}<-{node_name(src)}", 2, f"1 keeps the connection; {rule}")
                     for src in sources(key[0])]
        return spec

    def decode(self, choices: Sequence[int], args: dict[str, Any] | None = None, name: str | None = None,
               meta: dict[str, Any] | None = None) -> Genotype:
        """The genotype of ``choices`` (see ``choice_spec``); GenotypeError names the bad decision."""
        args = self.resolve_args(args)
        spec = self.choice_spec(args)
        layers = args["layers"]
        vals = read_choices(choices, spec, f"{self.name} with {layers} layers (4 L + 8 L (L + 1))")
        ops = op_list(args)
        inputs: dict[Node, list[Node]] = {}
        op_at: dict[Node, int] = {}
        pos = 0
        for key in nodes(layers):
            op_at[key] = pos
            cand = sources(key[0])
            bits = vals[pos + 1: pos + 1 + len(cand)]
            kept = [src for src, bit in zip(cand, bits) if bit]
            if kept:
                inputs[key] = kept
                if ops[vals[pos]] == "none":
                    raise GenotypeError(f"choices[{pos}] ({spec[pos].name}) is {vals[pos]} = 'none', which a "
                                        f"genotype never contains; choose one of "
                                        f"{[i for i, op in enumerate(ops) if op != 'none']}")
            elif key[0] == layers:
                raise GenotypeError(f"choices[{pos + 1}..{pos + len(cand)}] ({node_name(key)}'s keep-bits) are all "
                                    "0; the head reads every last-layer node: keep at least one input")
            elif vals[pos] != 0:
                raise GenotypeError(f"choices[{pos}] ({spec[pos].name}) is {vals[pos]}, but the node keeps no input "
                                    "(it does not exist); set it to 0 or keep an input")
            pos += 1 + len(cand)
        used = {src for kept in inputs.values() for src in kept}
        for key, kept in inputs.items():
            for src in kept:
                if src[0] > 0 and src not in inputs:
                    at = op_at[key] + 1 + sources(key[0]).index(src)
                    raise GenotypeError(f"choices[{at}] ({spec[at].name}) keeps a connection from {node_name(src)}, "
                                        "which keeps no input of its own; keep one of its inputs or set this to 0")
            if key[0] < layers and key not in used:
                raise GenotypeError(f"choices[{op_at[key]}] ({spec[op_at[key]].name}): {node_name(key)} keeps inputs "
                                    "but is no later node's input (it never reaches the head); use it or clear "
                                    "its keep-bits")
        structure = {"nodes": [self._node(key, ops[vals[op_at[key]]], kept) for key, kept in sorted(inputs.items())]}
        return self._decoded(structure, vals, [d.name for d in spec], args, name, meta)

    @staticmethod
    def _node(key: Node, op: str, inputs: list[Node]) -> dict[str, Any]:
        """A genotype node (scales as 4 .. 32) from (layer, scale index) keys."""
        return {"layer": key[0], "scale": SCALES[key[1]], "op": op,
                "inputs": [[layer, SCALES[j]] for layer, j in inputs]}

    def build(self, genotype: Genotype, num_classes: int, aux: bool = True) -> nn.Module:
        self.validate(genotype)
        a = self.resolve_args(genotype.space_args)
        return DCNASNet(genotype.structure["nodes"], num_classes, a["filter_multiplier"], a["stem_channels"],
                        a["head_channels"], a["down_align"], a["fusion"], a["activation"])

    def sample(self, rng: np.random.Generator, args: dict[str, Any] | None = None) -> Genotype:
        """Per node 1..3 distinct inputs and an operator, uniformly; nodes the head cannot reach are dropped.

        Not uniform over all valid architectures (those are dense: half of all
        connections kept on average); this draws the sparse ones L_con steers
        a search to, with at most ``SAMPLE_MAX_INPUTS`` inputs per node.
        """
        args = self.resolve_args(args)
        self.check_args(args, "space_args")
        ops = [op for op in op_list(args) if op != "none"]

        def choose(layer: int, j: int) -> list[Node]:
            cand = sources(layer)
            k = int(rng.integers(1, min(SAMPLE_MAX_INPUTS, len(cand)) + 1))
            return [cand[i] for i in sorted(rng.choice(len(cand), size=k, replace=False).tolist())]

        kept = reached(choose, args["layers"])
        structure = {"nodes": [self._node(key, str(rng.choice(ops)), inputs) for key, inputs in kept.items()]}
        return self.make_genotype(structure, args, meta={"source": "random sample"})

    def describe(self, genotype: Genotype) -> str:
        s, a = genotype.structure, self.resolve_args(genotype.space_args)
        layers = a["layers"]
        n_in = sum(len(n["inputs"]) for n in s["nodes"])
        lines = [f"{len(s['nodes'])} of {4 * layers} nodes, {n_in} of {8 * layers * (layers + 1)} connections "
                 f"(L = {layers}, F = {a['filter_multiplier']}, down_align {a['down_align']}, fusion {a['fusion']}):"]
        for n in s["nodes"]:
            srcs = ", ".join(f"{'stem' if layer == 0 else f'L{layer}'} 1/{scale}" for layer, scale in n["inputs"])
            lines.append(f"  L{n['layer']:<2d} 1/{n['scale']:<2d} {n['op']:<16s} <- {srcs}")
        lines.append("  head <- " + ", ".join(f"L{layers} 1/{scale}" for scale in SCALES))
        return "\n".join(lines)


__all__ = ["DCNASSpace", "DCNASNet", "KNOWN_OPS", "OP_SETS", "SAMPLE_MAX_INPUTS", "op_list"]
