"""FasterSeg's supernet problem: losses, decoupled latency, derivation and branch choice.

A differentiable strategy calls :meth:`weight_backward` on trainA batches,
:meth:`arch_backward` on trainB batches once pretraining is over, and
:meth:`derive` to decode the current teacher and student genotypes. Following
the authors' code, the teacher and student weight losses (and the sandwich
widths) are accumulated into one weight update. ``FasterSegConfig`` is the
method's own config section (``fasterseg.*``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ...backends import BACKENDS, unavailable
from ...config import RunConfig, check_size
from ...errors import ConfigError, GenotypeError
from ...genotype import Genotype
from ...losses import CrossEntropy, OhemCrossEntropy
from ...metrics import ConfusionMatrix
from ...objectives.latency import LatencyTable
from ..base import representable_args, unknown_op
from ..problem import SupernetProblem
from . import FasterSegSpace
from .derive import PATH_RULES, decode_branch, select, target_score
from .lut import RelaxedLatency, estimate_latency, table_latency_weights
from .network import SCALES
from .supernet import FasterSegSupernet, subset_name


@dataclass
class FasterSegConfig:
    """The ``fasterseg.*`` section: teacher/student co-search, sandwich widths, latency objective, branch choice."""

    ohem_thresh: float = 0.7
    ohem_min_kept: int = 1000  # pixels at 1/8 resolution
    cosearch: bool = True  # also search a teacher (widest, no latency loss)
    teacher_chi: int | None = None  # teacher's expansion ratio; None: the largest
    sandwich_random: int = 2  # random widths per pretraining step, besides min and max
    sandwich_search: bool = True  # also train min and max widths while searching (paper); off halves the cost
    sandwich_arch: bool = False  # the architecture loss also runs the student at min and max width (authors' code)
    tau: float = 1.0  # Gumbel-softmax temperature
    latency_lambda: float = 0.01
    # w1, w2, w3 of the decoupled latency loss; the paper's were solved for a 1080Ti at 1024x2048;
    # "auto" solves them the same way from this search's latency table (recorded in the run's config)
    latency_weights: list[float] | str = field(default_factory=lambda: [0.001, 0.997, 0.002])
    target_latency_ms: float | None = None  # with adaptive_lambda: halve/double lambda toward it
    adaptive_lambda: bool = False
    select_exponent: float = -0.07  # w in ACC * (LAT / T)^w
    deploy_size: list[int] = field(default_factory=lambda: [360, 480])  # [H, W] the latency is for
    lut: str | None = None  # latency table; None: measure one into the run folder
    lut_repeats: int = 5  # timing rounds of the table; an entry keeps its fastest
    # what the latency is optimised for: eager, compile, onnxruntime or bf16 (segnas.backends); a --lut
    # table must have been built for the same backend
    backend: str = "eager"
    # how branches' downsampling positions are read from beta: "paper" (footnote 2's joint argmax) or
    # "authors" (their released code's restricted search; it decodes their released search to the
    # published student)
    path_rule: str = "paper"
    # the teacher keeps every cell, each skip replaced by its next-best operator (the authors' choice);
    # off by default: the paper states one decoding, skip cells shrunk, for both architectures
    teacher_ignore_skip: bool = False

    RANGES: ClassVar[dict[str, tuple]] = {
        "ohem_thresh": (0, 1, False), "ohem_min_kept": (1, None, True), "teacher_chi": (1, None, True),
        "sandwich_random": (0, None, True), "tau": (0, None, False), "latency_lambda": (0, None, True),
        "target_latency_ms": (0, None, False), "lut_repeats": (1, None, True)}
    PATHS: ClassVar[tuple[str, ...]] = ("lut",)

    def check(self) -> None:
        if isinstance(self.latency_weights, str):
            if self.latency_weights != "auto":
                raise ConfigError(f"config key 'fasterseg.latency_weights' is {self.latency_weights!r}; give "
                                  "three weights [w1, w2, w3] or 'auto' (solved from the latency table)")
        elif len(self.latency_weights) != 3 or min(self.latency_weights) < 0:
            raise ConfigError(f"config key 'fasterseg.latency_weights' is {self.latency_weights}; give three "
                              "non-negative weights for the operator, downsampling and width terms, or 'auto'")
        if self.adaptive_lambda and self.target_latency_ms is None:
            raise ConfigError("config key 'fasterseg.adaptive_lambda' needs a target: set fasterseg.target_latency_ms")
        check_size("fasterseg.deploy_size", self.deploy_size)
        if self.teacher_ignore_skip and not self.cosearch:
            raise ConfigError("config key 'fasterseg.teacher_ignore_skip' decodes the teacher, but "
                              "fasterseg.cosearch is false: there is no teacher; drop one of them")
        if self.path_rule not in PATH_RULES:
            raise ConfigError(f"config key 'fasterseg.path_rule' is {self.path_rule!r}; use one of {list(PATH_RULES)}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"config key 'fasterseg.backend' is {self.backend!r}; use one of {list(BACKENDS)}")


def _claims(cells: list[dict[str, Any]]) -> dict[tuple[str, int, int], Any]:
    """The supernet rows a branch of ``layers`` cells sets: ("op", l, j) the operator of the cell at layer l
    and scale index j, ("input", l, j) where node (l, j) of two inputs takes its input from, ("width", l, j)
    the expansion ratio of node (l, j) (the output of the cell before it)."""
    path = [SCALES.index(c["scale"]) for c in cells]
    out: dict[tuple[str, int, int], Any] = {}
    for l, cell in enumerate(cells):
        j = path[l]
        out["op", l, j] = cell["op"]
        if j >= 1 and l - 1 >= j:  # a node with two inputs
            out["input", l, j] = "from_down" if path[l - 1] < j else "from_same"
        if l < len(cells) - 1:
            out["width", l + 1, path[l + 1]] = cell["chi"]
    return out


class FasterSegSearch(SupernetProblem):
    """Supernet, losses and decoding of one FasterSeg search."""

    def __init__(self, cfg: RunConfig, num_classes: int, ignore_index: int, table: LatencyTable,
                 seed: int, device: torch.device | str = "cpu") -> None:
        self.space = FasterSegSpace()
        self.args = self.check_config(cfg)
        self.cfg, self.num_classes, self.ignore_index = cfg.fasterseg, num_classes, ignore_index
        fc = self.cfg
        self.device = torch.device(device)
        self.table = table
        self.net = FasterSegSupernet(self.args, num_classes, fc.teacher_chi, fc.cosearch).to(self.device)
        self.generator = torch.Generator().manual_seed(seed * 7919 + 17)
        self.latency_lambda = float(fc.latency_lambda)
        st = self.net.specs["student"]
        self.relaxed = RelaxedLatency(table, self.args, fc.deploy_size, st["chis"], st["stem_chi"], st["head_chi"],
                                      self.device)
        self.solved_weights: str | None = None  # how ``auto`` weights were solved, for the log
        if fc.latency_weights == "auto":
            self.latency_weights, _, self.solved_weights = table_latency_weights(
                table, self.args, fc.deploy_size, st["chis"], st["stem_chi"], st["head_chi"])
        else:
            self.latency_weights = [float(w) for w in fc.latency_weights]
        self._fixed: tuple[str, tuple[int, ...]] | None = None  # (architecture, head subset) while fixed
        self.criterion = OhemCrossEntropy(ignore_index, fc.ohem_thresh, fc.ohem_min_kept)
        # OHEM's hard-pixel subset changes every step; "ce" gives the architecture step every pixel
        self.arch_criterion = CrossEntropy(ignore_index) if cfg.search.arch_loss == "ce" else self.criterion

    @staticmethod
    def check_config(cfg: RunConfig) -> dict[str, Any]:
        """The resolved space arguments; a ConfigError naming the key for anything this search cannot use."""
        space = FasterSegSpace()
        args = space.resolve_args(cfg.search.space_args)
        space.check_args(args, "search.space_args")
        if args["head_chi"] not in args["chis"]:  # the last cell of every derived branch runs at head_chi
            raise ConfigError(f"search.space_args.head_chi is {args['head_chi']}; the derived networks' last cells "
                              f"run at it, so it must be one of chis {args['chis']}")
        if cfg.search.select_images < 1:
            raise ConfigError("search.select_images: FasterSeg scores its branch candidates on trainB images; "
                              "set it to 1 or more")
        own = getattr(cfg, "fasterseg", None)  # a random search has no fasterseg section
        if own is not None and own.path_rule == "authors" and args["layers"] < 5:
            raise ConfigError(f"config key 'fasterseg.path_rule' is 'authors', which needs 5 or more layers; "
                              f"search.space_args.layers is {args['layers']}: raise it or use path_rule=paper")
        if "skip" in args["ops"] and len(args["ops"]) == 1:
            raise ConfigError("search.space_args.ops: 'skip' alone cannot be derived; add real operators")
        if own is not None and not own.lut:  # the table is measured in the run: its backend must run here
            why = unavailable(own.backend, cfg.device or "cpu")
            if why is not None:
                raise ConfigError(f"config key 'fasterseg.backend' is {own.backend!r}: {why}")
        return args

    # -- what the strategy optimises ------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "generator": self.generator.get_state(),
                "latency_lambda": self.latency_lambda}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.generator.set_state(state["generator"])
        self.latency_lambda = float(state["latency_lambda"])

    # -- losses ----------------------------------------------------------------
    def _loss(self, preds: dict, masks: torch.Tensor, criterion=None) -> torch.Tensor:
        """OHEM cross-entropy (or ``criterion``) summed over every head, at the heads' 1/8 resolution."""
        target = masks[:, ::8, ::8]
        criterion = self.criterion if criterion is None else criterion
        total = None
        for logits in preds.values():
            t = target[:, : logits.shape[-2], : logits.shape[-1]]
            loss = criterion(logits, t)
            total = loss if total is None else total + loss
        return total

    def weight_backward(self, images: torch.Tensor, masks: torch.Tensor, pretrain: bool) -> dict[str, torch.Tensor]:
        """Gradients for the weights from the teacher (widest) and the student's sandwich widths."""
        net, cfg = self.net, self.cfg
        passes = [("teacher", "max")] if "teacher" in net.specs else []
        if pretrain:
            passes += [("student", "max"), ("student", "min")] + [("student", "random")] * cfg.sandwich_random
        else:
            passes += [("student", "gumbel")]
            if cfg.sandwich_search:
                passes += [("student", "max"), ("student", "min")]
        logs: dict[str, torch.Tensor] = {}
        weights = self.weight_parameters()
        for name, mode in passes:
            widths = net.sample_widths(name, mode, self.generator, cfg.tau)
            loss = self._loss(net(images, name, widths), masks)
            loss.backward(inputs=weights)  # no alpha/beta/gamma gradients: this step does not use them
            logs[f"loss_{name}_{mode}"] = logs.get(f"loss_{name}_{mode}", 0.0) + loss.detach()
        return logs

    def decoupled_latency(self, widths: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """w1 Lat(O | s, chi) + w2 Lat(s | O, chi) + w3 Lat(chi | O, s) of the student (paper Eq. 3).

        Each term relaxes one aspect and fixes the others: uniform operators,
        uniform beta, and the widest ratio where not searched; the width term
        uses this step's straight-through Gumbel sample. Summed over the three
        final scales, as the authors' code does.
        """
        net, r, n = self.net, self.relaxed, len(self.net.specs["student"]["chis"])
        widest = net.width_vectors(net.sample_widths("student", "max"), n)
        lat_op = r.expected(net.alphas("student"), net.betas("student", uniform=True), widest).sum()
        lat_s = r.expected(net.alphas("student", uniform=True), net.betas("student"), widest).sum()
        lat_chi = r.expected(net.alphas("student", uniform=True), net.betas("student", uniform=True),
                             net.width_vectors(widths, n)).sum()
        w1, w2, w3 = self.latency_weights
        total = w1 * lat_op + w2 * lat_s + w3 * lat_chi
        return total, {"lat_op": lat_op.detach(), "lat_scale": lat_s.detach(), "lat_width": lat_chi.detach()}

    def arch_backward(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Gradients for alpha, beta (teacher and student) and gamma; latency loss on the student only.

        Only the architecture parameters' gradients are computed: the weights'
        would be thrown away, and skipping them makes this step much cheaper.
        With ``sandwich_arch`` the student's task loss is the mean over its
        Gumbel-sampled widths and its min and max widths, as in the authors'
        code, so alpha and beta see three width settings per batch. Off by
        default: at a CamVid checkpoint it left the gradients' signal-to-noise
        ratio unchanged (the batch, not the width draw, is the noise) at twice
        the step's cost. The mean (the authors sum) keeps ``latency_lambda``
        weighed against one task loss either way.
        """
        logs: dict[str, torch.Tensor] = {}
        arch = self.arch_parameters()
        for name in self.net.specs:
            modes = ["max"] if name == "teacher" else ["gumbel"]
            if name == "student" and self.cfg.sandwich_arch and len(self.net.specs[name]["chis"]) > 1:
                modes += ["max", "min"]
            total = 0.0
            for mode in modes:  # one backward per pass: the memory stays that of one forward
                widths = self.net.sample_widths(name, mode, self.generator, self.cfg.tau)
                loss = self._loss(self.net(images, name, widths), masks, self.arch_criterion)
                value = loss.detach()
                total += value / len(modes)
                if len(modes) > 1:
                    logs[f"arch_loss_{name}_{mode}"] = value
                loss = loss / len(modes)
                if mode == "gumbel" and self.latency_lambda > 0:
                    lat, parts = self.decoupled_latency(widths)
                    loss = loss + self.latency_lambda * lat
                    logs.update(parts)
                loss.backward(inputs=arch)
            logs[f"arch_loss_{name}"] = total
        return logs

    # -- decoding ---------------------------------------------------------------
    def arch_arrays(self, name: str) -> tuple[list[np.ndarray], list[np.ndarray | None], list[np.ndarray] | None]:
        with torch.no_grad():
            alphas = [a.cpu().double().numpy() for a in self.net.alphas(name)]
            betas = [None if b is None else b.cpu().double().numpy() for b in self.net.betas(name)]
            gammas = None
            if f"{name}_gamma0" in self.net.arch:
                gammas = [F.softmax(self.net.arch[f"{name}_gamma{j}"], -1).cpu().double().numpy()
                          for j in range(3)]
        return alphas, betas, gammas

    def branches(self, name: str) -> dict[int, list[dict[str, Any]]]:
        """Decoded branch for every final scale index of architecture ``name``."""
        sp = self.net.specs[name]
        alphas, betas, gammas = self.arch_arrays(name)
        ignore_skip = name == "teacher" and self.cfg.teacher_ignore_skip
        return {j: decode_branch(alphas, betas, gammas, self.args, j, sp["chis"], sp["head_chi"],
                                 self.cfg.path_rule, ignore_skip) for j in range(3)}

    def genotype_for(self, name: str, subset: tuple[int, ...], branches: dict[int, list] | None = None,
                     meta: dict[str, Any] | None = None) -> Genotype:
        sp = self.net.specs[name]
        branches = branches or self.branches(name)
        args = dict(self.args, stem_chi=sp["stem_chi"], head_chi=sp["head_chi"],
                    chis=sorted(set(self.args["chis"]) | set(sp["chis"])))
        structure = {"branches": [{"cells": branches[j]} for j in sorted(subset, reverse=True)]}
        return self.space.make_genotype(structure, args, name=f"fasterseg-{name}", meta=meta)

    @torch.no_grad()
    def head_accuracy(self, name: str, loader: DataLoader) -> dict[tuple[int, ...], float]:
        """mIoU of every head of architecture ``name`` (argmax widths) on ``loader``'s images."""
        net = self.net
        was = net.training
        net.eval()
        cms = {s: ConfusionMatrix(self.num_classes, self.ignore_index) for s in net.heads_subsets}
        mode = "argmax" if len(net.specs[name]["chis"]) > 1 else "max"
        widths = net.sample_widths(name, mode)
        for images, masks in loader:
            images, masks = images.to(self.device), masks.to(self.device)
            for subset, logits in net(images, name, widths).items():
                up = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=True)
                cms[subset].update(up.argmax(1), masks)
        net.train(was)
        return {s: float(cm.compute()["miou"]) for s, cm in cms.items()}

    def derive(self, loader: DataLoader | None) -> dict[str, Any]:
        """Teacher and student genotypes with branch selection (paper Sec. 3.4, App. B).

        Every candidate set of ``branches`` final scales is scored by
        ACC * (LAT / T)^w: ACC is the mIoU of the supernet's head fusing those
        scales, LAT the table estimate of the derived network at the
        deployment size. The teacher is chosen by ACC alone.
        """
        cfg, nb = self.cfg, int(self.args["branches"])
        out: dict[str, Any] = {"genotypes": {}, "records": {}}
        for name in self.net.specs:
            branches = self.branches(name)
            acc = self.head_accuracy(name, loader) if loader is not None else {}
            rows = []
            exponent = cfg.select_exponent if name == "student" else 0.0
            for subset in (s for s in self.net.heads_subsets if len(s) == min(nb, 3)):
                g = self.genotype_for(name, subset, branches)
                lat = estimate_latency(g, self.table, cfg.deploy_size, self.num_classes)
                a = acc.get(subset, 0.0)
                rows.append({"branches": subset_name(subset), "miou": a, "latency_ms": lat,
                             "score": target_score(a, lat, cfg.target_latency_ms, exponent),
                             "subset": subset, "genotype": g})
            best = select(rows, cfg.target_latency_ms, exponent)
            g = best["genotype"]
            g.meta.update({"source": "fasterseg search", "architecture": name, "branches": best["branches"],
                           "estimated_latency_ms": best["latency_ms"], "search_miou": best["miou"],
                           "deploy_size": list(cfg.deploy_size)})
            out["genotypes"][name] = g
            out["records"][name] = {
                "archid": g.archid, "branches": best["branches"], "latency_ms": best["latency_ms"],
                "miou": best["miou"],
                "candidates": [{k: v for k, v in r.items() if k not in ("genotype", "subset")} for r in rows]}
        return out

    # -- one architecture in the supernet (segnas correlate) ----------------------------------
    def architecture_of(self, genotype: Genotype) -> str:
        """The supernet architecture (student, teacher) ``genotype`` is one of: the one its meta names (a
        search's own genotypes), else the first whose stem and head widths it has; else a GenotypeError."""
        args = self.space.resolve_args(genotype.space_args)
        named = genotype.meta.get("architecture")
        names = [named] if named in self.net.specs else [n for n in ("student", "teacher") if n in self.net.specs]
        for name in names:
            sp = self.net.specs[name]
            if (args["stem_chi"], args["head_chi"]) == (sp["stem_chi"], sp["head_chi"]):
                return name
        have = "; ".join(f"{n} {self.net.specs[n]['stem_chi']}, {self.net.specs[n]['head_chi']}" for n in names)
        raise GenotypeError(f"genotype {genotype.name or genotype.archid}: stem_chi, head_chi are {args['stem_chi']}, "
                            f"{args['head_chi']}; the supernet's ({have}) differ, so it cannot compute it")

    def fixed_layout(self, genotype: Genotype) -> tuple[str, tuple[int, ...], dict[str, Any], list[str]]:
        """(architecture, head subset, hard weights, notes) that make the supernet compute ``genotype``.

        Each branch is laid onto the L layers of the trellis: its cells in order and, where its derivation
        removed ``skip`` cells (fewer cells than layers), as many stride-1 ``skip`` cells at one place,
        keeping the width before them (the place that clashes least with the branches laid before; ties:
        the latest, before the last cell). Every cell a branch runs gets a one-hot operator row, every
        two-input node on its path a one-hot input row (from down, from same) and every node it writes its
        width. The branches share the trellis: where two ask one row for different choices the first
        branch's is kept and a note says so; rows no branch uses keep their searched weights.
        """
        args = representable_args(self.space, genotype, self.args, ("layers",))
        label = genotype.name or genotype.archid
        branches = [b["cells"] for b in genotype.structure["branches"]]
        unknown_op([c["op"] for cells in branches for c in cells], self.net.ops, genotype)
        name = self.architecture_of(genotype)
        sp = self.net.specs[name]
        subset = tuple(sorted(SCALES.index(cells[-1]["scale"]) for cells in branches))
        if subset not in self.net.heads_subsets:
            raise GenotypeError(f"genotype {label}: its branches end at {subset_name(subset)}, and the supernet "
                                f"has no head fusing them (space_args.branches {self.args['branches']}, "
                                f"genotype's {args['branches']})")
        rows: dict[tuple[str, int, int], tuple[Any, int]] = {}  # (kind, layer, scale index) -> (choice, branch)
        notes: list[str] = []
        for b, cells in enumerate(branches):
            if cells[-1]["chi"] != sp["head_chi"]:
                raise GenotypeError(f"genotype {label}: branch {b}'s last cell has chi {cells[-1]['chi']}; the "
                                    f"supernet's last cells run at head_chi {sp['head_chi']}, so it cannot compute it")
            for i, cell in enumerate(cells[:-1]):
                if cell["chi"] not in sp["chis"]:
                    raise GenotypeError(f"genotype {label}: branch {b} cell {i} has chi {cell['chi']}; the "
                                        f"supernet's {name} chooses from {sp['chis']}, so it cannot compute it")
            options = self._layouts(cells, sp, label, b)
            layered, note = min(options, key=lambda o: sum(rows.get(key, (value,))[0] != value
                                                           for key, value in _claims(o[0]).items()))
            notes += [note] if note else []
            for key, value in _claims(layered).items():
                held = rows.setdefault(key, (value, b))
                if held[0] != value:
                    kind, l, j = key
                    what = {"op": f"the operator of the cell at layer {l}, 1/{SCALES[j]}",
                            "input": f"the input of node (layer {l}, 1/{SCALES[j]})",
                            "width": f"the width of node (layer {l}, 1/{SCALES[j]})"}[kind]
                    notes.append(f"branch {b}: {what} is shared with branch {held[1]}, which chose {held[0]!r} "
                                 f"(not {value!r}); the supernet holds one choice, branch {held[1]}'s")
        with torch.no_grad():
            alphas = [a.detach().clone() for a in self.net.alphas(name)]
            betas = [None] + [bt.detach().clone() for bt in self.net.betas(name)[1:]]
        widths = self.net.sample_widths(name, "argmax" if len(sp["chis"]) > 1 else "max")
        for (kind, l, j), (value, _) in rows.items():
            if kind == "op":
                alphas[j][l - j] = 0.0
                alphas[j][l - j, self.net.ops.index(value)] = 1.0
            elif kind == "input":
                betas[j][l - j - 1] = 0.0
                betas[j][l - j - 1, 0 if value == "from_down" else 1] = 1.0
            else:
                widths[l, j] = (sp["chis"].index(value), None)
        finer = [j for j in range(max(subset)) if j not in subset]
        notes.append("the supernet's head refines a coarse output with the trellis' finer final outputs, not with "
                     "the branch's own earlier features as the child does"
                     + (f"; no branch ends at {', '.join(f'1/{SCALES[j]}' for j in finer)}, so those come from "
                        "the cells' searched weights"
                        if finer else ""))
        return name, subset, {"alphas": alphas, "betas": betas, "widths": widths}, notes

    def _layouts(self, cells: list[dict[str, Any]], sp: dict[str, Any], label: str,
                 b: int) -> list[tuple[list[dict[str, Any]], str | None]]:
        """A branch's cells on all L layers, with the note it needs: removed cells stand in as ``skip`` cells
        at any one place (latest first), each with the width of the cell before it."""
        pad = self.net.layers - len(cells)
        if pad == 0:
            return [(cells, None)]
        if "skip" not in self.net.ops:
            raise GenotypeError(f"genotype {label}: branch {b} has {len(cells)} cells for the supernet's "
                                f"{self.net.layers} layers, and without a 'skip' operator the supernet has no cell "
                                "to stand for the removed ones, so it cannot compute it")
        out = []
        for k in range(len(cells) - 1, -1, -1):  # the skips run before cell k, at its input scale
            if k:
                chi = cells[k - 1]["chi"]
            else:  # right after the stem: the searched width nearest the stem's
                chi = min(sp["chis"], key=lambda c: (abs(c - sp["stem_chi"]), c))
            skip = {"op": "skip", "scale": cells[k]["scale"], "chi": chi}
            note = (f"branch {b}: {pad} 'skip' cell(s) before its cell {k} stand for the cells its derivation "
                    "removed (the supernet cannot drop a cell; its skip is a 1x1 conv)")
            out.append((cells[:k] + [skip] * pad + cells[k:], note))
        return out

    @contextmanager
    def fixed(self, genotype: Genotype) -> Iterator[list[str]]:
        """Inside, the supernet computes ``genotype`` (a student or a teacher) as far as it can (see
        ``fixed_layout``), so ``supernet_miou`` is the mIoU of the head fusing its branches; alpha, beta
        and gamma are never changed. Yields the ways this differs from the child network; a genotype the
        supernet cannot compute is a GenotypeError naming the mismatch."""
        if self.net.fixed or self._fixed is not None:
            raise RuntimeError("an architecture is already fixed in this supernet")
        name, subset, weights, notes = self.fixed_layout(genotype)
        self.net.fixed, self._fixed = {name: weights}, (name, subset)
        try:
            yield notes
        finally:
            self.net.fixed, self._fixed = {}, None

    @torch.no_grad()
    def supernet_miou(self, loader: DataLoader) -> float:
        """mIoU on ``loader``'s images of the fixed architecture's head for its branches; with none fixed,
        of the student's best head fusing ``branches`` scales (the ACC of branch selection)."""
        if self._fixed is not None:
            name, subset = self._fixed
            return self.head_accuracy(name, loader)[subset]
        nb = min(int(self.args["branches"]), 3)
        return max(v for s, v in self.head_accuracy("student", loader).items() if len(s) == nb)

    def adapt_lambda(self, student_latency: float) -> None:
        """Halve lambda when the student is faster than the target band, double it when slower."""
        t = self.cfg.target_latency_ms
        if not self.cfg.adaptive_lambda or t is None:
            return
        if student_latency < 0.9 * t:
            self.latency_lambda /= 2
        elif student_latency > 1.1 * t:
            self.latency_lambda *= 2
