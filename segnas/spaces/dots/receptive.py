"""Theoretical receptive field of a DOTS network's context path (its backbone's 1/32 output), in input pixels.

How far the cells carry information is what ``planted-context`` tests. The
usual rule: a layer of kernel k and dilation d on a map of stride J (input
pixels per position) widens the field by (k - 1) d J; a stride multiplies J.
Per part of the backbone (``backbone.py``):

* stems: 3x3/2, 3x3/2 (7 px at 1/4), 3x3/2 (15 px at 1/8);
* preprocessing: 1x1 convs (strided after a reduction): no growth;
* an operator on a state of stride J, striding s (2 on a reduction cell's
  inputs): the separable kxk conv (two depthwise rounds, the first strided)
  (k - 1) J + (k - 1) s J; the dilated kxk conv (one round at rate 2)
  2 (k - 1) J; 3x3 pooling 2 J; skip nothing;
* a node's field is the widest of its two branches; a cell's output (the
  concatenation) the widest node.

BiSeNet's global context (a global pool) and the attention refinement's
pooled channel weights see the whole image but not where anything is; the
field here is the one spatially resolved path from a target to a cue. It is
an upper bound (the effective field is far narrower) that ranks networks by
reach.
"""

from __future__ import annotations

from typing import Any

from .backbone import cell_plans, op_stride

STEMS = ((3, 2), (3, 2), (3, 2))  # (kernel, stride) of stem0's two convs and stem1's


def op_growth(op: str, jump: int, stride: int) -> int:
    """Pixels operator ``op`` on a state of stride ``jump`` (striding ``stride``) adds to the field."""
    if op in ("skip_connect", "none"):
        return 0
    if op in ("avg_pool_3x3", "max_pool_3x3"):
        return 2 * jump
    k = int(op[-1])
    if op.startswith("sep_conv_"):
        return (k - 1) * jump + (k - 1) * stride * jump
    if op.startswith("dil_conv_"):
        return 2 * (k - 1) * jump
    raise ValueError(f"operator {op!r}: unknown to the receptive-field rule")


def backbone_field(structure: dict[str, Any], args: dict[str, Any]) -> int:
    """Receptive field (px, diameter) of the backbone's last (1/32) output."""
    field, jump = 1, 1
    fields = []
    for k, s in STEMS:
        field, jump = field + (k - 1) * jump, jump * s
        fields.append((field, jump))
    (prev2, _), (prev, jump1) = fields[1], fields[2]  # c(k-2): stem0 (1/4), c(k-1): stem1 (1/8)
    nodes = len(structure["normal"]) // 2
    for plan in cell_plans(int(args["channels"]), int(args["layers"]), nodes):
        entries = structure["reduce" if plan.reduction else "normal"]
        states = [(prev2, jump1), (prev, jump1)]  # after preprocessing both are at c(k-1)'s stride
        out_jump = jump1 * (2 if plan.reduction else 1)
        for n in range(nodes):
            widest = 0
            for op, i in entries[2 * n: 2 * n + 2]:
                f, j = states[int(i)]
                widest = max(widest, f + op_growth(str(op), j, op_stride(plan, int(i))))
            states.append((widest, out_jump))
        prev2, prev, jump1 = prev, max(f for f, _ in states[2:]), out_jump
    return prev


def context_radius(structure: dict[str, Any], args: dict[str, Any]) -> float:
    """Half the backbone's 1/32 receptive field: how far the context path carries a cue (px)."""
    return (backbone_field(structure, args) - 1) / 2
