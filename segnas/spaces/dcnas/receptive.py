"""Theoretical receptive fields of a derived DCNAS network, in input pixels.

How far a network can carry information is what ``planted-context`` tests,
and in this space it is not told by which scales exist (every network has
1/32 nodes, and the head reads the last one): it depends on which operators
and connections lie on the way. The theoretical receptive field follows the
usual rule: a layer of kernel k and dilation d on a map of stride J (input
pixels per position) widens the field by (k - 1) d J; a stride multiplies J.
Per part of the network (see ``network.py``):

* stem: a 7x7 conv at stride 2, then four stride-2 3x3 convs: 11, 19, 35 and
  67 px at 1/4 .. 1/32;
* an operator at scale s: MBConv kxk adds (k - 1) s; the separable kxk conv
  (two depthwise rounds) 2 (k - 1) s; the atrous kxk conv (rate 2) 2 (k - 1) s;
  3x3 pooling 2 s; skip and none nothing;
* an alignment: same scale (1x1) nothing; up from scale s (1x1, then
  bilinear, which mixes two neighbouring source positions) s; down by d
  scales from s: the ``chain`` of d stride-2 3x3 convs 2 s (2^d - 1), the
  ``single`` 3x3 of stride 2^d 2 s;
* a node's field is the widest over its inputs, plus its operator's growth;
  the head upsamples the last layer to 1/4 (bilinear, as above) and adds a
  3x3 conv at 1/4 (8 px).

These are upper bounds: the effective field, where the gradient actually
lands, is far narrower. They rank networks by reach, which is what a
property needs.
"""

from __future__ import annotations

import re
from typing import Any

from .graph import SCALES

STEM_FIELD = {4: 11, 8: 19, 16: 35, 32: 67}  # px at the stem's four outputs (layer 0)
_KERNEL = re.compile(r"_(\d+)x\1$|_k(\d+)_")


def _kernel(op: str) -> int:
    m = _KERNEL.search(op)
    if m is None:
        raise ValueError(f"operator {op!r}: no kernel size in its name")
    return int(m.group(1) or m.group(2))


def operator_growth(op: str, scale: int) -> int:
    """Pixels operator ``op`` at scale ``scale`` (4 .. 32) adds to a receptive field."""
    if op in ("skip_connect", "none"):
        return 0
    if op in ("avg_pool_3x3", "max_pool_3x3"):
        return 2 * scale
    k = _kernel(op)
    if op.startswith("mbconv_"):
        return (k - 1) * scale
    if op.startswith(("sep_conv_", "atrous_conv_")):
        return 2 * (k - 1) * scale
    raise ValueError(f"operator {op!r}: unknown to the receptive-field rule")


def alignment_growth(src_scale: int, dst_scale: int, down_align: str = "chain") -> int:
    """Pixels the shape-alignment layer from ``src_scale`` to ``dst_scale`` adds."""
    if src_scale == dst_scale:
        return 0
    if src_scale > dst_scale:  # going up: bilinear interpolation between two source positions
        return src_scale
    steps = dst_scale.bit_length() - src_scale.bit_length()
    return 2 * src_scale * (2 ** steps - 1) if down_align == "chain" else 2 * src_scale


def node_fields(structure: dict[str, Any], args: dict[str, Any]) -> dict[tuple[int, int], int]:
    """Receptive field (px, diameter) of every node (layer, scale) of a genotype's structure, stem included."""
    fields = {(0, s): f for s, f in STEM_FIELD.items()}
    down = args.get("down_align", "chain")
    for node in sorted(structure["nodes"], key=lambda n: (n["layer"], n["scale"])):
        scale = node["scale"]
        widest = max(fields[(int(layer), int(src))] + alignment_growth(int(src), scale, down)
                     for layer, src in node["inputs"])
        fields[(node["layer"], scale)] = widest + operator_growth(node["op"], scale)
    return fields


def head_field(structure: dict[str, Any], args: dict[str, Any]) -> int:
    """Receptive field (px, diameter) of the head's output: the widest last-layer node, upsampled, then a 3x3 at 1/4."""
    fields = node_fields(structure, args)
    last = max(layer for layer, _ in fields)
    return max(fields[(last, s)] + alignment_growth(s, SCALES[0]) for s in SCALES) + 2 * SCALES[0]


def head_radius(structure: dict[str, Any], args: dict[str, Any]) -> float:
    """Half the head's receptive field: how far from a pixel its prediction can see (px)."""
    return (head_field(structure, args) - 1) / 2
