"""The FasterSeg supernet: a multi-resolution trellis of mixed operators with superkernel widths.

Node (l, j) is the input of the cell at layer l and scale 1/SCALES[j]; it is
the beta-weighted sum of the previous layer's same-scale output and the
downsampled output of the finer scale (paper Eq. 1). Each cell runs one mixed
operator at its scale and one stride-2 mixed operator into the next scale,
both weighted by the cell's alpha (Eq. 2). Operators are slimmable
superkernels: the width of every node is chosen per step (max, min, random,
or by straight-through Gumbel-softmax over gamma), only that width runs, and
the output is multiplied by the straight-through scores.

Co-searching keeps two architectures in one supernet: a teacher (alpha, beta;
always the widest ratio, no latency loss) and a student (alpha, beta, gamma),
each with its own stem and heads; the cells' weights are shared. Heads predict
at 1/8 from every final scale alone and from every fusion of ``branches`` of
them, which is what branch selection compares.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...choices import ArchParameters, InputChoice, MixedOp, gumbel_hard, uniform_weights
from ...errors import ConfigError
from ...ops import make_op
from .lut import width_options
from .network import SCALES, Refine, SegHead, make_stem


def subsets(branches: int) -> list[tuple[int, ...]]:
    """Scale-index subsets that get a head: every single final scale and every ``branches``-fusion."""
    out = [(j,) for j in range(3)]
    if branches > 1:
        out += list(itertools.combinations(range(3), min(branches, 3)))
    return out


def subset_name(subset: Sequence[int]) -> str:
    return "+".join(str(SCALES[j]) for j in subset)


def slim_mixed_op(ops: Sequence[str], stride: int, in_widths: Sequence[int], out_widths: Sequence[int]) -> MixedOp:
    """Every operator as a superkernel over the given widths, mixed by alpha."""
    return MixedOp([make_op(name, max(in_widths), max(out_widths), stride, widths=(in_widths, out_widths))
                    for name in ops])


class SearchCell(nn.Module):
    def __init__(self, ops: Sequence[str], in_widths: Sequence[int], same_widths: Sequence[int],
                 down_widths: Sequence[int] | None) -> None:
        super().__init__()
        self.same = slim_mixed_op(ops, 1, in_widths, same_widths)
        self.down = slim_mixed_op(ops, 2, in_widths, down_widths) if down_widths else None


class SearchHead(nn.Module):
    """Per-architecture head: coarse-to-fine refinement of the three final outputs, one classifier per subset."""

    def __init__(self, head_chi: int, num_classes: int, heads: Sequence[tuple[int, ...]]) -> None:
        super().__init__()
        h8, h16, h32 = 8 * head_chi, 16 * head_chi, 32 * head_chi
        self.r16 = Refine(h16, h8, h8)
        self.r32a = Refine(h32, h16, h16)
        self.r32b = Refine(h16, h8, h8)
        self.subsets = [tuple(s) for s in heads]
        self.cls = nn.ModuleDict({subset_name(s).replace("+", "_"): SegHead(h8 * len(s), num_classes)
                                  for s in self.subsets})

    def forward(self, finals: list[torch.Tensor]) -> dict[tuple[int, ...], torch.Tensor]:
        o8, o16, o32 = finals
        feats = [o8, self.r16(o16, o8), self.r32b(self.r32a(o32, o16), o8)]
        return {s: self.cls[subset_name(s).replace("+", "_")](torch.cat([feats[j] for j in s], 1))
                for s in self.subsets}


class FasterSegSupernet(nn.Module):
    """Supernet over ``args`` (FasterSeg space arguments) with a student and, when co-searching, a teacher."""

    def __init__(self, args: dict[str, Any], num_classes: int, teacher_chi: int | None = None,
                 cosearch: bool = True) -> None:
        super().__init__()
        self.args = dict(args)
        self.layers = L = int(args["layers"])
        if L < 3:
            raise ConfigError(f"space_args.layers is {L}; the FasterSeg supernet needs at least 3 layers "
                              "to reach scale 1/32")
        self.ops = list(args["ops"])
        self.num_classes = num_classes
        teacher_chi = int(teacher_chi or max(args["chis"]))
        self.specs: dict[str, dict[str, Any]] = {
            "student": {"stem_chi": args["stem_chi"], "head_chi": args["head_chi"], "chis": list(args["chis"])}}
        if cosearch:
            self.specs = {"teacher": {"stem_chi": teacher_chi, "head_chi": teacher_chi, "chis": [teacher_chi]},
                          **self.specs}
        self.heads_subsets = subsets(int(args["branches"]))
        opts = width_options(args, teacher_chi if cosearch else None)
        self.stems = nn.ModuleDict({n: make_stem(sp["stem_chi"]) for n, sp in self.specs.items()})
        self.cells = nn.ModuleDict()
        for l in range(L):
            for j in range(min(l, 2) + 1):
                s = SCALES[j]
                down = opts["down"][s] if j < 2 and l < L - 1 else None
                self.cells[f"{l}_{j}"] = SearchCell(self.ops, opts["in"][s], opts["same"][s], down)
        self.heads = nn.ModuleDict({n: SearchHead(sp["head_chi"], num_classes, self.heads_subsets)
                                    for n, sp in self.specs.items()})
        # per architecture name, hard operator and input weights and widths used instead of alpha, beta
        # and gamma while set (``FasterSegSearch.fixed``); the parameters themselves are never touched
        self.fixed: dict[str, dict[str, Any]] = {}
        self.arch = ArchParameters()
        free = tuple(k for k, op in enumerate(self.ops) if op == "skip")
        groups = {"parameter_free": free, "parametric": tuple(k for k in range(len(self.ops)) if k not in free)}
        self.merge = InputChoice()
        for name, sp in self.specs.items():
            for j in range(3):
                self.arch.declare(f"{name}_alpha{j}", torch.full((L - j, len(self.ops)), 1e-3), "softmax", self.ops,
                                  groups, f"{name}: operator of each cell at 1/{SCALES[j]}, rows = layers {j}..")
            for j in (1, 2):
                self.arch.declare(f"{name}_beta{j}", torch.full((L - 1 - j, 2), 1e-3), "softmax",
                                  ("from_down", "from_same"),
                                  where=f"{name}: input of each two-input node at 1/{SCALES[j]}, rows = layers {j + 1}..")
            if len(sp["chis"]) > 1:
                for j in range(3):
                    self.arch.declare(f"{name}_gamma{j}", torch.full((L - max(j, 1), len(sp["chis"])), 1e-3),
                                      "softmax", [str(c) for c in sp["chis"]],
                                      where=f"{name}: expansion ratio of each node at 1/{SCALES[j]}")

    # -- parameter groups ------------------------------------------------
    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("arch.")]

    def arch_parameters(self, name: str | None = None) -> list[nn.Parameter]:
        return [p for n, p in self.arch.items() if name is None or n.startswith(name + "_")]

    # -- architecture probabilities -------------------------------------
    @staticmethod
    def gamma_row(l: int, j: int) -> int:
        return l - max(j, 1)

    def alphas(self, name: str, uniform: bool = False) -> list[torch.Tensor]:
        if name in self.fixed and not uniform:
            return self.fixed[name]["alphas"]
        keys = [f"{name}_alpha{j}" for j in range(3)]
        return [uniform_weights(self.arch[k]) if uniform else self.arch.weights(k) for k in keys]

    def betas(self, name: str, uniform: bool = False) -> list[torch.Tensor | None]:
        if name in self.fixed and not uniform:
            return self.fixed[name]["betas"]
        keys = [f"{name}_beta{j}" for j in (1, 2)]
        return [None] + [uniform_weights(self.arch[k]) if uniform else self.arch.weights(k) for k in keys]

    def nodes(self) -> list[tuple[int, int]]:
        """Nodes whose width is chosen: every cell input but the stem's output."""
        return [(l, j) for l in range(1, self.layers) for j in range(min(l, 2) + 1)]

    def sample_widths(self, name: str, mode: str, generator: torch.Generator | None = None,
                      tau: float = 1.0) -> dict[tuple[int, int], tuple[int, torch.Tensor | None]]:
        """Width index (into this architecture's ratios) and straight-through vector per node.

        ``mode``: max | min | random | argmax | gumbel. Only ``gumbel`` returns
        vectors that carry gradients to gamma (hard one-hot forward, softmax
        backward); the others return None. While an architecture ``name`` is fixed, its widths, whatever the mode.
        """
        if name in self.fixed:
            return dict(self.fixed[name]["widths"])
        chis = self.specs[name]["chis"]
        n = len(chis)
        out: dict[tuple[int, int], tuple[int, torch.Tensor | None]] = {}
        if n == 1 or mode in ("max", "min"):
            idx = n - 1 if mode != "min" else 0
            return {node: (idx, None) for node in self.nodes()}
        if mode == "random":
            picks = torch.randint(0, n, (len(self.nodes()),), generator=generator).tolist()
            return {node: (i, None) for node, i in zip(self.nodes(), picks)}
        gammas = [self.arch[f"{name}_gamma{j}"] for j in range(3)]
        if mode == "argmax":
            rows = [g.detach().argmax(-1).tolist() for g in gammas]
            return {(l, j): (rows[j][self.gamma_row(l, j)], None) for l, j in self.nodes()}
        if mode != "gumbel":
            raise ValueError(f"unknown width mode {mode!r}")
        hard = [gumbel_hard(g, generator, tau) for g in gammas]
        picks = [h.detach().argmax(-1).tolist() for h in hard]  # the widths slice channels: one read per scale
        for l, j in self.nodes():
            row = self.gamma_row(l, j)
            out[l, j] = (picks[j][row], hard[j][row])
        return out

    def width_vectors(self, widths: dict[tuple[int, int], tuple[int, torch.Tensor | None]], n: int
                      ) -> dict[tuple[int, int], torch.Tensor]:
        """One-hot (or straight-through) vectors for the relaxed latency, on the supernet's device."""
        eye = torch.eye(n, device=self.arch_parameters()[0].device)
        return {node: vec if vec is not None else eye[i] for node, (i, vec) in widths.items()}

    # -- forward -----------------------------------------------------------
    def forward(self, x: torch.Tensor, name: str = "student",
                widths: dict[tuple[int, int], tuple[int, torch.Tensor | None]] | None = None
                ) -> dict[tuple[int, ...], torch.Tensor]:
        """Logits at 1/8 per head subset for architecture ``name`` (widths default to the widest)."""
        sp, L = self.specs[name], self.layers
        chis, head_chi = sp["chis"], sp["head_chi"]
        widths = widths if widths is not None else self.sample_widths(name, "max")
        alphas, betas = self.alphas(name), self.betas(name)
        feats: dict[tuple[int, int], torch.Tensor] = {(0, 0): self.stems[name](x)}
        finals = []
        for l in range(L):
            pending: dict[int, list[torch.Tensor | None]] = {}
            for j in range(min(l, 2) + 1):
                s, cell, a = SCALES[j], self.cells[f"{l}_{j}"], alphas[j][l - j]
                score_in = _score(widths[l, j][1], widths[l, j][0]) if (l, j) in widths else None
                if l == L - 1:
                    finals.append(_scaled(cell.same(feats[l, j], a, width=s * head_chi), score_in, None))
                    continue
                i_same, v_same = widths[l + 1, j]
                out = cell.same(feats[l, j], a, width=s * chis[i_same])
                pending.setdefault(j, [None, None])[1] = _scaled(out, score_in, _score(v_same, i_same))
                if cell.down is not None:
                    i_down, v_down = widths[l + 1, j + 1]
                    out = cell.down(feats[l, j], a, width=2 * s * chis[i_down])
                    pending.setdefault(j + 1, [None, None])[0] = _scaled(out, score_in, _score(v_down, i_down))
            for j, (from_down, from_same) in pending.items():
                if from_down is not None and from_same is not None:
                    feats[l + 1, j] = self.merge([from_down, from_same], betas[j][l - j])
                else:
                    feats[l + 1, j] = from_down if from_same is None else from_same
            for j in range(min(l, 2) + 1):
                feats.pop((l, j), None)  # free what the next layer no longer needs
        return self.heads[name](finals)


def _score(vec: torch.Tensor | None, idx: int) -> torch.Tensor | None:
    return None if vec is None else vec[idx]


def _scaled(x: torch.Tensor, a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor:
    """Multiply by the straight-through scores (1 in value, gradient to gamma)."""
    if a is None and b is None:
        return x
    if a is None or b is None:
        return x * (a if b is None else b)
    return x * (a * b)
