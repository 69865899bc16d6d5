"""FasterSeg latency: which table entries the space uses, how to time each, and the estimates.

Every entry is timed at the *deployment* resolution (a parameter separate from
the search crop, as the paper's authors computed latency at 1024x2048 while
searching on crops). A derived network's latency is estimated as the sum of
its blocks: stem, cells (shared branch prefixes once), coarse-to-fine refine
blocks and the fusion head. The supernet's relaxed latency (paper Sec. 3.2,
App. E) replaces each operator by its table latency, weighted by the
architecture's softmax/Gumbel probabilities and propagated along beta.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError
from ...genotype import Genotype
from ...backends import backend_of_table
from ...objectives.latency import LatencyTable, OpKey, interleaved_fastest, op_probe
from .network import SCALES, FusionHead, Refine, branch_specs, fusion_of, make_stem


def ceil_half(n: int) -> int:
    return (n + 1) // 2


def scale_sizes(hw: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Feature sizes at 1/8, 1/16, 1/32 of an input (every stride-2 layer rounds up)."""
    h, w = int(hw[0]), int(hw[1])
    for _ in range(3):
        h, w = ceil_half(h), ceil_half(w)
    out = {8: (h, w)}
    for s in (16, 32):
        h, w = ceil_half(h), ceil_half(w)
        out[s] = (h, w)
    return out


def cell_key(op: str, scale: int, c_in: int, c_out: int, stride: int, sizes: dict[int, tuple[int, int]]) -> OpKey:
    h, w = sizes[scale]
    return OpKey(op, h, w, c_in, c_out, stride)


def stem_key(stem_chi: int, hw: Sequence[int]) -> OpKey:
    return OpKey("stem", int(hw[0]), int(hw[1]), 3, 8 * stem_chi, 8)


def refine_key(fine_scale: int, c_coarse: int, c_out: int, c_fine: int,
               sizes: dict[int, tuple[int, int]]) -> OpKey:
    h, w = sizes[fine_scale]
    return OpKey("refine", h, w, c_coarse, c_out, 1, f"fine={c_fine}")


def head_key(c_in: int, num_classes: int, hw: Sequence[int], fusion: str = "plain") -> OpKey:
    """The fusion head; an attention head keeps the key tables measured before the option existed."""
    h, w = scale_sizes(hw)[8]
    extra = f"out={int(hw[0])}x{int(hw[1])}" + ("" if fusion == "attention" else f" fusion={fusion}")
    return OpKey("head", h, w, c_in, num_classes, 1, extra)


def probe(key: OpKey) -> tuple[nn.Module, list[tuple[int, ...]]]:
    """Build the module a FasterSeg table entry times, with its input shapes."""
    if key.op == "stem":
        return make_stem(key.c_out // 8), [(1, 3, key.h, key.w)]
    if key.op == "refine":
        c_fine = int(key.extra.split("=", 1)[1])
        coarse = (1, key.c_in, ceil_half(key.h), ceil_half(key.w))
        return Refine(key.c_in, key.c_out, c_fine), [coarse, (1, c_fine, key.h, key.w)]
    if key.op == "head":
        out, _, fusion = key.extra.partition(" fusion=")
        out_h, out_w = (int(v) for v in out.split("=", 1)[1].split("x"))
        return _HeadProbe(key.c_in, key.c_out, (out_h, out_w), fusion or "attention"), [(1, key.c_in, key.h, key.w)]
    return op_probe(key)


class _HeadProbe(nn.Module):
    def __init__(self, c_in: int, num_classes: int, size: tuple[int, int], fusion: str) -> None:
        super().__init__()
        self.head, self.size = FusionHead(c_in, num_classes, fusion), size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x, self.size)


def width_options(args: dict[str, Any], teacher_chi: int | None = None) -> dict[str, dict[int, list[int]]]:
    """Channel counts each position can take: cell inputs, same-scale outputs, down outputs."""
    chis = sorted(set(args["chis"]))
    stems = sorted({args["stem_chi"]} | ({teacher_chi} if teacher_chi else set()))
    heads = sorted({args["head_chi"]} | ({teacher_chi} if teacher_chi else set()))
    return {
        "in": {s: sorted({s * c for c in chis} | ({s * c for c in stems} if s == 8 else set())) for s in SCALES},
        "same": {s: sorted({s * c for c in chis} | {s * c for c in heads}) for s in SCALES},
        "down": {s: sorted({2 * s * c for c in chis}) for s in SCALES[:-1]},
        "heads": {0: heads}, "stems": {0: stems},
    }


def space_keys(args: dict[str, Any], hw: Sequence[int], num_classes: int,
               teacher_chi: int | None = None) -> list[OpKey]:
    """Every entry the search (supernet relaxation) and its derived networks can ask for."""
    sizes, opts = scale_sizes(hw), width_options(args, teacher_chi)
    keys = [stem_key(c, hw) for c in opts["stems"][0]]
    for s in SCALES:
        for op in args["ops"]:
            keys += [cell_key(op, s, ci, co, 1, sizes) for ci in opts["in"][s] for co in opts["same"][s]]
            if s != SCALES[-1]:
                keys += [cell_key(op, s, ci, co, 2, sizes) for ci in opts["in"][s] for co in opts["down"][s]]
    for head in opts["heads"][0]:
        h8, h16 = 8 * head, 16 * head
        for c in opts["same"][32]:  # 1/32 branch: 32 -> 16 with the branch's last 1/16 feature
            keys += [refine_key(16, c, h16, cf, sizes) for cf in opts["in"][16]]
        for c in sorted(set(opts["same"][16]) | {h16}):  # 16 -> 8 (from a 1/16 or a refined 1/32 branch)
            keys += [refine_key(8, c, h8, cf, sizes) for cf in opts["in"][8]]
        # a search's space_args: a missing fusion is the default (plain), unlike a genotype file's
        keys += [head_key(n * h8, num_classes, hw, args.get("fusion", "plain")) for n in range(1, int(args["branches"]) + 1)]
    return list(dict.fromkeys(keys))


def network_keys(genotype: Genotype, hw: Sequence[int], num_classes: int) -> list[OpKey]:
    """The blocks a built child network runs, each once (shared branch prefixes counted once)."""
    args, sizes = genotype.space_args, scale_sizes(hw)
    keys = [stem_key(args["stem_chi"], hw)]
    h8, h16 = 8 * args["head_chi"], 16 * args["head_chi"]
    seen: set[tuple] = set()
    fused = 0
    for branch in genotype.structure["branches"]:
        specs = branch_specs(branch["cells"], 8 * args["stem_chi"])
        for i, spec in enumerate(specs):
            prefix = tuple(specs[: i + 1])
            if prefix not in seen:
                seen.add(prefix)
                stride = 2 if spec.out_scale > spec.scale else 1
                keys.append(cell_key(spec.op, spec.scale, spec.c_in, spec.c_out, stride, sizes))
        last = {sp.scale: sp.c_in for sp in specs if sp.out_scale > sp.scale}
        final, c = specs[-1].out_scale, specs[-1].c_out
        if final >= 32:
            keys.append(refine_key(16, c, h16, last[16], sizes))
            c = h16
        if final >= 16:
            keys.append(refine_key(8, c, h8, last[8], sizes))
            c = h8
        fused += c
    keys.append(head_key(fused, num_classes, hw, fusion_of(args)))
    return keys


def estimate_latency(genotype: Genotype, table: LatencyTable, hw: Sequence[int], num_classes: int) -> float:
    """Sum of the table's latencies (ms) of the network's blocks; a missing entry raises LatencyMiss."""
    return table.total(network_keys(genotype, hw, num_classes))


def calibrate_table(table: LatencyTable, args: dict[str, Any], hw: Sequence[int], num_classes: int,
                    device: torch.device | str = "cpu", networks: int = 6, seed: int = 0,
                    repeats: int = 5) -> dict[str, Any]:
    """Calibrate ``table`` against ``networks`` random derived networks timed whole at ``hw`` on its backend.

    The networks are drawn with :meth:`FasterSegSpace.sample` from the table's
    space arguments, so they are the kind of network the estimates are used for.
    The global torch RNG is left as it was (weights are initialised in a fork).
    """
    from . import FasterSegSpace

    space, rng = FasterSegSpace(), np.random.default_rng(seed)
    genotypes = [space.sample(rng, args) for _ in range(networks)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        nets = [space.build(g, num_classes, aux=False) for g in genotypes]
        times = interleaved_fastest(nets, (1, 3, int(hw[0]), int(hw[1])), device, rounds=repeats,
                                    threads=table.environment["threads"],
                                    backend=backend_of_table(table.environment["backend"]))
    return table.calibrate([(min(t), network_keys(g, hw, num_classes)) for t, g in zip(times, genotypes)])


class RelaxedLatency:
    """Differentiable expected latency of one architecture of the supernet (stem + cells).

    ``chis`` are the expansion ratios this architecture chooses from (the
    student's list; the teacher's single widest ratio). Node (l, s) is the input
    of the cell at layer l and scale index s; its latency tensors have shape
    (operators, input widths, output widths), so the expectation over operator
    probabilities and (straight-through) width choices is one contraction.
    """

    def __init__(self, table: LatencyTable, args: dict[str, Any], hw: Sequence[int], chis: Sequence[int],
                 stem_chi: int, head_chi: int, device: torch.device | str = "cpu") -> None:
        sizes = scale_sizes(hw)
        self.device = torch.device(device)
        self.layers, ops = int(args["layers"]), list(args["ops"])
        self.stem = table.lookup(stem_key(stem_chi, hw))
        self.same: dict[tuple[int, int], torch.Tensor] = {}
        self.down: dict[tuple[int, int], torch.Tensor] = {}
        L = self.layers
        for l in range(L):
            for j in range(min(l, 2) + 1):
                s = SCALES[j]
                c_in = [8 * stem_chi] if (l, j) == (0, 0) else [s * c for c in chis]
                c_same = [s * head_chi] if l == L - 1 else [s * c for c in chis]
                self.same[l, j] = self._tensor(table, ops, s, c_in, c_same, 1, sizes)
                if j < 2 and l < L - 1:
                    self.down[l, j] = self._tensor(table, ops, s, c_in, [2 * s * c for c in chis], 2, sizes)

    def _tensor(self, table, ops, s, c_in, c_out, stride, sizes) -> torch.Tensor:
        return torch.tensor([[[table.lookup(cell_key(op, s, ci, co, stride, sizes)) for co in c_out]
                              for ci in c_in] for op in ops], dtype=torch.float32, device=self.device)

    def expected(self, alphas: list[torch.Tensor], betas: list[torch.Tensor | None],
                 widths: dict[tuple[int, int], torch.Tensor]) -> torch.Tensor:
        """Expected latency (ms) of the path ending at each final scale: a tensor of 3.

        ``alphas[j]`` are operator probabilities per node of scale j (rows from
        layer j on), ``betas[j]`` the (from-down, from-same) probabilities of the
        nodes with two inputs, ``widths[(l, j)]`` a probability (or one-hot)
        vector over this architecture's ratios for every node but (0, 0).
        """
        L, one = self.layers, torch.ones(1, device=self.device)
        lat = {(0, 0): torch.tensor(self.stem, device=self.device)}
        finals = []
        for l in range(L):
            nxt: dict[tuple[int, int], list] = {}
            for j in range(min(l, 2) + 1):
                a = alphas[j][l - j]
                w_in = widths.get((l, j), one)
                w_out = one if l == L - 1 else widths[(l + 1, j)]
                cost = torch.einsum("k,i,o,kio->", a, w_in, w_out, self.same[l, j])
                if l == L - 1:
                    finals.append(lat[l, j] + cost)
                    continue
                nxt.setdefault(j, [None, None])[1] = lat[l, j] + cost
                if (l, j) in self.down:
                    cost = torch.einsum("k,i,o,kio->", a, w_in, widths[(l + 1, j + 1)], self.down[l, j])
                    nxt.setdefault(j + 1, [None, None])[0] = lat[l, j] + cost
            for j, (from_down, from_same) in nxt.items():
                if from_down is not None and from_same is not None:
                    b = betas[j][l - j]  # node (l+1, j): row (l+1) - j - 1
                    lat[l + 1, j] = b[0] * from_down + b[1] * from_same
                else:
                    lat[l + 1, j] = from_down if from_same is None else from_same
        return torch.stack(finals)


def latency_sensitivities(table: LatencyTable, args: dict[str, Any], hw: Sequence[int], chis: Sequence[int],
                          stem_chi: int, head_chi: int) -> dict[str, float]:
    """The supernet's latency gap (ms) along each granularity, the others held uniform (paper Table 2).

    ``operator``: every node taking its slowest operator vs its fastest (the
    operator of largest vs smallest total when used everywhere); ``scale``:
    every two-input node taking the from-down vs the from-same input;
    ``width``: every node at the widest vs the slimmest ratio. Summed over
    the three final scales, as the decoupled latency loss is.
    """
    r = RelaxedLatency(table, args, hw, chis, stem_chi, head_chi)
    layers, n_ops, n_w = int(args["layers"]), len(args["ops"]), len(chis)

    def alphas(op: int | None) -> list[torch.Tensor]:
        row = torch.full((n_ops,), 1.0 / n_ops) if op is None else torch.nn.functional.one_hot(
            torch.tensor(op), n_ops).float()
        return [row.expand(max(layers - j, 0), n_ops) for j in range(3)]

    def betas(down: float | None) -> list[torch.Tensor | None]:
        row = torch.tensor([0.5, 0.5] if down is None else [down, 1.0 - down])
        return [None] + [row.expand(max(layers - j - 1, 0), 2) for j in (1, 2)]

    def widths(pick: int | None) -> dict[tuple[int, int], torch.Tensor]:
        row = torch.full((n_w,), 1.0 / n_w) if pick is None else torch.nn.functional.one_hot(
            torch.tensor(pick), n_w).float()
        return {(l, j): row for l in range(1, layers) for j in range(min(l, 2) + 1)}

    def total(a, b, w) -> float:
        return float(r.expected(a, b, w).sum())

    by_op = [total(alphas(k), betas(None), widths(None)) for k in range(n_ops)]
    by_scale = [total(alphas(None), betas(d), widths(None)) for d in (0.0, 1.0)]
    by_width = [total(alphas(None), betas(None), widths(k)) for k in (0, n_w - 1)]
    return {"operator": max(by_op) - min(by_op), "scale": max(by_scale) - min(by_scale),
            "width": max(by_width) - min(by_width)}


def solve_latency_weights(gaps: dict[str, float]) -> list[float]:
    """w1, w2, w3 with w1 * gap_O = w2 * gap_s = w3 * gap_chi and w1 + w2 + w3 = 1 (paper footnote 1).

    A granularity with no gap (one operator, one width) has nothing to balance and gets weight 0.
    """
    inverse = [1.0 / g if g > 0 else 0.0 for g in (gaps["operator"], gaps["scale"], gaps["width"])]
    if sum(inverse) == 0:
        raise ConfigError("fasterseg.latency_weights=auto: the latency table gives no gap along operators, "
                          "scales or widths, so there is nothing to weigh; give the three weights instead")
    return [v / sum(inverse) for v in inverse]


def table_latency_weights(table: LatencyTable, args: dict[str, Any], hw: Sequence[int], chis: Sequence[int],
                          stem_chi: int, head_chi: int) -> tuple[list[float], dict[str, float], str]:
    """(weights solved from ``table``, rounded as recorded; the gaps they balance; a line describing both)."""
    gaps = latency_sensitivities(table, args, hw, chis, stem_chi, head_chi)
    weights = [round(w, 6) for w in solve_latency_weights(gaps)]
    text = (f"latency weights solved from the table: {weights} (gaps: operator {gaps['operator']:.3g} ms, "
            f"scale {gaps['scale']:.3g} ms, width {gaps['width']:.3g} ms)")
    return weights, gaps, text
