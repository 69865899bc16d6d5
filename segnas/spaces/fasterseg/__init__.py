"""FasterSeg's multi-resolution branching space (Chen et al., ICLR 2020).

Structure of a genotype::

    {"branches": [{"cells": [{"op": "conv_2x", "scale": 8, "chi": 4}, ...]}, ...]}

Each cell runs one operator at input ``scale`` (8, 16 or 32); it downsamples
when the next cell's scale is twice its own. ``chi`` is the expansion ratio of
the cell's output: ``channels = output scale * chi``. For a downsampling cell
this is twice the ``c_out`` column of the paper's Table 7 (which multiplies by
the input scale); the authors' code builds ``2s * chi``, and only that gives
the paper's 4.4M parameters.
The stem has ``4*stem_chi, 8*stem_chi, 8*stem_chi`` channels and the head works
at ``s * head_chi`` channels: the published student uses 8 for both (the
authors' ``stem_head_width = 8/12`` with Fch = 12), the teacher 12.
``fusion`` is the head's feature-fusion block: ``plain`` (the paper's Appendix
A, default) or ``attention`` (BiSeNet's channel attention). A genotype file
without the field was written before it existed and is built with attention,
as it was then, so its checkpoints keep loading.

Choices, per branch: the final scale index (into SCALES), the number of cells
n, then n triples (op index, scale index, chi index). The length varies, so
``choice_spec`` lists the longest sequence (len(SCALES) branches of ``layers``
cells) and ``decode`` reads sequentially: n triples per branch, then another
branch while integers remain, at most len(SCALES) branches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from ...errors import GenotypeError
from ...genotype import Genotype
from ..base import Decision, SearchSpace, read_choice
from .derive import decode_branch
from .network import FUSIONS, SCALES, FasterSegNet, fusion_of

OPS = ["skip", "conv", "conv_2x", "zoomed_conv", "zoomed_conv_2x"]


def _positive_int(value: object) -> bool:
    return type(value) is int and value > 0


class FasterSegSpace(SearchSpace):
    """Branches of sequential single-operator cells over scales 1/8, 1/16, 1/32."""

    name = "fasterseg"
    version = 1

    def default_args(self) -> dict[str, Any]:
        return {"layers": 16, "ops": list(OPS), "chis": [4, 6, 8, 10, 12], "stem_chi": 8,
                "head_chi": 8, "branches": 2, "fusion": "plain"}

    def check_args(self, args: dict[str, Any], source: str) -> None:
        """Raise GenotypeError naming the bad ``space_args`` field."""
        for key in ("stem_chi", "head_chi", "layers", "branches"):
            if not _positive_int(args[key]):
                raise GenotypeError(f"{source}: field 'space_args.{key}' must be a positive integer")
        if not isinstance(args["ops"], list) or not args["ops"] or any(op not in OPS for op in args["ops"]):
            raise GenotypeError(f"{source}: field 'space_args.ops' must be a list drawn from {OPS}")
        if not isinstance(args["chis"], list) or not args["chis"] or not all(map(_positive_int, args["chis"])):
            raise GenotypeError(f"{source}: field 'space_args.chis' must be a list of positive integers")
        if args["fusion"] not in FUSIONS:
            raise GenotypeError(f"{source}: field 'space_args.fusion' is {args['fusion']!r}; use one of {list(FUSIONS)}")
        if args["chis"] != sorted(set(args["chis"])):  # the sandwich rule takes the first as min, the last as max
            raise GenotypeError(f"{source}: field 'space_args.chis' must be ascending without repeats, "
                                f"e.g. {sorted(set(args['chis']))}")

    def check_structure(self, structure: dict[str, Any], args: dict[str, Any], source: str) -> None:
        branches = structure.get("branches")
        if not isinstance(branches, list) or not branches:
            raise GenotypeError(f"{source}: field 'structure.branches' must be a non-empty list")
        if len(branches) > len(SCALES):
            raise GenotypeError(f"{source}: field 'structure.branches' has {len(branches)} branches; "
                                f"at most {len(SCALES)} (one per final scale)")
        self.check_args(args, source)
        finals = []
        for b, branch in enumerate(branches):
            where = f"structure.branches[{b}]"
            cells = branch.get("cells") if isinstance(branch, dict) else None
            if not isinstance(cells, list) or not cells:
                raise GenotypeError(f"{source}: field '{where}.cells' must be a non-empty list")
            if len(cells) > args["layers"]:
                raise GenotypeError(f"{source}: field '{where}.cells' has {len(cells)} cells, more "
                                    f"than space_args.layers = {args['layers']}")
            prev = 8
            for i, cell in enumerate(cells):
                at = f"{where}.cells[{i}]"
                if not isinstance(cell, dict) or set(cell) != {"op", "scale", "chi"}:
                    raise GenotypeError(f"{source}: field '{at}' must be an object with keys op, scale, chi")
                if cell["op"] not in args["ops"]:
                    raise GenotypeError(f"{source}: field '{at}.op' is {cell['op']!r}; "
                                        f"choose one of {args['ops']}")
                if not _positive_int(cell["chi"]) or cell["chi"] not in args["chis"]:
                    raise GenotypeError(f"{source}: field '{at}.chi' is {cell['chi']!r}; "
                                        f"choose one of {args['chis']}")
                allowed = [8] if i == 0 else [prev, 2 * prev]
                if not _positive_int(cell["scale"]) or cell["scale"] not in allowed or cell["scale"] not in SCALES:
                    raise GenotypeError(f"{source}: field '{at}.scale' is {cell['scale']!r}; after scale "
                                        f"{prev} it must be one of {[s for s in allowed if s in SCALES]} "
                                        "(the first cell is at 8, each cell keeps or doubles the scale)")
                prev = cell["scale"]
            finals.append(prev)
        if len(set(finals)) != len(finals):
            raise GenotypeError(f"{source}: field 'structure.branches' has two branches ending at scale "
                                f"{max(set(finals), key=finals.count)}; each branch needs its own final scale")

    def encode(self, structure: dict[str, Any], args: dict[str, Any]) -> list[int]:
        out: list[int] = []
        for branch in structure["branches"]:
            cells = branch["cells"]
            out += [SCALES.index(cells[-1]["scale"]), len(cells)]
            for c in cells:
                out += [args["ops"].index(c["op"]), SCALES.index(c["scale"]), args["chis"].index(c["chi"])]
        return out

    def choice_spec(self, args: dict[str, Any] | None = None) -> list[Decision]:
        """The longest choice sequence: len(SCALES) branches of ``layers`` cells (see the module docstring)."""
        args = self.resolve_args(args)
        self.check_args(args, "space_args")
        spec = []
        for b in range(len(SCALES)):
            extra = "" if b == 0 else f"present only when integers follow branch{b - 1}; "
            if b >= args["branches"]:
                extra += f"beyond space_args.branches = {args['branches']}, which searches never derive; "
            spec += [Decision(f"branch{b}.final", len(SCALES), f"{extra}branch{b}'s last cell scale; distinct from "
                                                               "the other branches' final scales"),
                     Decision(f"branch{b}.cells", args["layers"] + 1, f"{extra}at least 1")]
            for i in range(args["layers"]):
                present = extra + (f"present only for cell {i} < branch{b}.cells; " if i else "")
                scale = f"{present}branch{b}.cell{i - 1}.scale or one more" if i else f"{present}0 (the stem's 1/8)"
                spec += [Decision(f"branch{b}.cell{i}.op", len(args["ops"]), present.rstrip("; "), "op"),
                         Decision(f"branch{b}.cell{i}.scale", len(SCALES), scale),
                         Decision(f"branch{b}.cell{i}.chi", len(args["chis"]), present.rstrip("; "))]
        return spec

    def decode(self, choices: Sequence[int], args: dict[str, Any] | None = None, name: str | None = None,
               meta: dict[str, Any] | None = None) -> Genotype:
        """The genotype of ``choices``, read sequentially (see the module docstring).

        Raises GenotypeError naming the decision for an out-of-range or
        inconsistent integer, a truncated branch and integers left over after
        the last possible branch.
        """
        args = self.resolve_args(args)
        by_name = {d.name: d for d in self.choice_spec(args)}
        choices, vals, names = list(choices), [], []

        def take(decision: str) -> int:
            pos = len(vals)
            if pos >= len(choices):
                raise GenotypeError(f"choices ends after {pos} integers, so choices[{pos}] ({decision}) is missing")
            vals.append(read_choice(choices, pos, by_name[decision]))
            names.append(decision)
            return vals[-1]

        if not choices:
            take("branch0.final")
        ops, chis, branches, finals = args["ops"], args["chis"], [], []
        while len(vals) < len(choices):
            b = len(branches)
            if b == len(SCALES):
                raise GenotypeError(f"choices has {len(choices) - len(vals)} integer(s) after "
                                    f"choices[{len(vals) - 1}] ({names[-1]}), the last decision of branch{b - 1}; "
                                    f"there are at most {len(SCALES)} branches (one per final scale): remove them")
            at_final, final = len(vals), take(f"branch{b}.final")
            if final in finals:
                raise GenotypeError(f"choices[{at_final}] (branch{b}.final) is {final}, the final scale index of "
                                    f"branch{finals.index(final)} too; each branch needs its own final scale")
            n = take(f"branch{b}.cells")
            if n == 0:
                raise GenotypeError(f"choices[{len(vals) - 1}] (branch{b}.cells) is 0; a branch has "
                                    f"1..{args['layers']} cells")
            cells, prev = [], 0
            for i in range(n):
                op, scale = take(f"branch{b}.cell{i}.op"), take(f"branch{b}.cell{i}.scale")
                if scale not in ((0,) if i == 0 else (prev, prev + 1)):
                    rule = ("it must be 0 (1/8, the stem's output)" if i == 0 else
                            f"after branch{b}.cell{i - 1}.scale = {prev} it must be one of "
                            f"{[j for j in (prev, prev + 1) if j < len(SCALES)]} (keep or double the scale)")
                    raise GenotypeError(f"choices[{len(vals) - 1}] (branch{b}.cell{i}.scale) is {scale}; {rule}")
                cells.append({"op": ops[op], "scale": SCALES[scale], "chi": chis[take(f"branch{b}.cell{i}.chi")]})
                prev = scale
            if final != prev:
                raise GenotypeError(f"choices[{at_final}] (branch{b}.final) is {final} but branch{b}'s last cell "
                                    f"(branch{b}.cell{n - 1}.scale) is at scale index {prev}; they must agree")
            finals.append(final)
            branches.append({"cells": cells})
        return self._decoded({"branches": branches}, vals, names, args, name, meta)

    def build(self, genotype: Genotype, num_classes: int, aux: bool = True) -> nn.Module:
        self.validate(genotype)
        args = self.resolve_args(genotype.space_args)
        branches = [b["cells"] for b in genotype.structure["branches"]]
        return FasterSegNet(branches, num_classes, args["stem_chi"], args["head_chi"], aux=aux,
                            fusion=fusion_of(genotype.space_args))

    def sample(self, rng: np.random.Generator, args: dict[str, Any] | None = None) -> Genotype:
        """A random architecture of the space as the search would derive it.

        Random architecture parameters (flat Dirichlet rows for every alpha,
        beta and gamma of the supernet) go through the FasterSeg derivation, so
        every operator and width choice is uniform, a single downsampling is
        equally likely at every position with a beta, and ``skip`` cells are
        removed by the paper's rules; the final scales are distinct random ones.
        Random baselines and latency calibration then see the networks a search
        can produce, not a deeper family of its own.
        """
        args = self.resolve_args(args)
        layers, n_ops, chis = args["layers"], len(args["ops"]), args["chis"]

        def rows(n: int, k: int) -> np.ndarray:
            return rng.dirichlet(np.ones(k), size=n)

        alphas = [rows(layers - j, n_ops) for j in range(len(SCALES))]
        betas = [None] + [rows(max(layers - j - 1, 0), 2) for j in range(1, len(SCALES))]
        gammas = [rows(layers - max(j, 1), len(chis)) for j in range(len(SCALES))] if len(chis) > 1 else None
        reachable = min(len(SCALES), layers)  # a branch ending at 1/32 needs two down cells and a last cell
        finals = sorted(rng.choice(reachable, size=min(args["branches"], reachable), replace=False).tolist(),
                        reverse=True)
        branches = [{"cells": decode_branch(alphas, betas, gammas, args, final, chis, args["head_chi"])}
                    for final in finals]
        return self.make_genotype({"branches": branches}, args, meta={"source": "random sample"})

    def describe(self, genotype: Genotype) -> str:
        lines = []
        for b, branch in enumerate(genotype.structure["branches"]):
            cells = branch["cells"]
            lines.append(f"branch {b}: final scale 1/{cells[-1]['scale']}, {len(cells)} cells")
            lines.append(f"  {'cell':>4}  {'operator':<16}{'s':>4}{'chi':>5}{'c_out':>7}")
            for i, c in enumerate(cells):
                out_scale = cells[i + 1]["scale"] if i + 1 < len(cells) else c["scale"]
                lines.append(f"  {i + 1:>4}  {c['op']:<16}{c['scale']:>4}{c['chi']:>5}{out_scale * c['chi']:>7}")
        return "\n".join(lines)


__all__ = ["FasterSegSpace", "FasterSegNet", "OPS", "SCALES", "fusion_of"]
