"""DCNAS' supernet problem for a differentiable strategy (main paper Sec. 3, supplement Sec. 1.3-1.5).

Weights on trainA with the cross-entropy of the head's output; alpha and beta
on trainB with the cross-entropy plus the three regularizers of the
supplement (``segnas.objectives.regularizers``), each with its weight in the
``dcnas.*`` section (0 switches one off, for the paper's Table 4 ablation):
L_alpha (entropy of each node's operator weights), L_beta (the gates'
-p ln p) and L_con (in-degree outside [1, k], k = ``dcnas.max_indegree``).
The paper gives no weights for them; at segnas' defaults (0.01 each) the
connection terms' gradient per gate is of the order of the cross-entropy's
(about 1e-3 against 4e-4 on the ``cpu`` preset's supernet at initialisation);
L_alpha's gradient is zero at uniform operator weights and grows as a row
commits to an operator.
Each backward pass only computes the gradients its step uses. Their values
(unweighted) are in the architecture step's log (``arch_reg_*``, per step in
metrics.jsonl) and in every epoch's record (``reg_*``, at the decoded epoch's
parameters). Every epoch the architecture is decoded (``derive``) into a
genotype built with ``dcnas.genotype_args`` over the searched space arguments
(the same network by default); its meta holds sigmoid(beta) of each kept
connection (``connection_weights``, aligned with each node's inputs), which
the drawing shows as edge widths.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader

from ...config import RunConfig
from ...errors import ConfigError, GenotypeError
from ...genotype import Genotype
from ...losses import CrossEntropy
from ...objectives.regularizers import entropy, gate_entropy, indegree_penalty
from ..base import other_args_note, representable_args, unknown_op
from ..problem import SupernetProblem
from . import DCNASSpace
from .derive import decode, kept_weights
from .graph import SCALES, n_connections, node_index, offset, sources
from .supernet import DCNASSupernet


@dataclass
class DCNASConfig:
    """The ``dcnas.*`` section: partial channels, the regularizers, the derived networks' arguments."""

    genotype_args: dict = field(default_factory=dict)  # space args of the derived networks (e.g. another F)
    partial_ratio: float = 0.25  # r: the share of a node's channels its mixture layer sees (1/k, k an integer)
    max_indegree: int = 3  # k of L_con: a node's summed gates beyond it are penalised
    alpha_weight: float = 0.01  # L_alpha, entropy of the operator weights (0: off)
    beta_weight: float = 0.01  # L_beta, -p ln p of the connection gates (0: off)
    con_weight: float = 0.01  # L_con, in-degree outside [1, k] (0: off)

    RANGES: ClassVar[dict[str, tuple]] = {"partial_ratio": (0, 1, False), "max_indegree": (1, None, True),
                                          "alpha_weight": (0, None, True), "beta_weight": (0, None, True),
                                          "con_weight": (0, None, True)}


def partial_channels(ratio: float) -> int:
    """k of a partial ratio r = 1/k; a ConfigError naming the key if r is not one over an integer."""
    k = round(1.0 / ratio)
    if k < 1 or not math.isclose(k * ratio, 1.0, rel_tol=1e-6):
        raise ConfigError(f"config key 'dcnas.partial_ratio' is {ratio}; it must be 1/k for an integer k "
                          "(1, 0.5, 0.25, 0.125, ...)")
    return k


class DCNASSearch(SupernetProblem):
    """Losses, regularizers and decoding of the DCNAS supernet (see ``segnas.strategies.differentiable``)."""

    def __init__(self, cfg: RunConfig, num_classes: int, ignore_index: int, device: torch.device | str = "cpu") -> None:
        self.space = DCNASSpace()
        self.args, self.genotype_args = self.check_config(cfg)
        section = cfg.dcnas
        self.partial = partial_channels(section.partial_ratio)
        self.max_indegree = float(section.max_indegree)
        self.reg_weights = {"alpha": float(section.alpha_weight), "beta": float(section.beta_weight),
                            "con": float(section.con_weight)}
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.device = torch.device(device)
        self.net = DCNASSupernet(self.args, num_classes, self.partial).to(self.device)
        self.criterion = CrossEntropy(ignore_index)

    @staticmethod
    def check_config(cfg: RunConfig) -> tuple[dict[str, Any], dict[str, Any]]:
        """(search space arguments, derived genotypes' arguments); a ConfigError naming the bad key."""
        space = DCNASSpace()
        section = cfg.dcnas
        key = "search.space_args"
        try:
            args = space.resolve_args(cfg.search.space_args)
            space.check_args(args, key)
            key = "dcnas.genotype_args"
            genotype_args = space.resolve_args({**args, **section.genotype_args})
            space.check_args(genotype_args, key)
        except GenotypeError as e:
            message = str(e).replace("field 'space_args.", "field '").replace("space_args: unknown", "unknown")
            raise ConfigError(message if key in message else f"{key}: {message}") from None
        for key in ("layers", "ops"):
            if genotype_args[key] != args[key]:
                raise ConfigError(f"dcnas.genotype_args.{key}: the derived network must keep the searched "
                                  f"{key}; change search.space_args.{key} instead")
        k = partial_channels(section.partial_ratio)
        if args["filter_multiplier"] % k:
            raise ConfigError(f"config key 'dcnas.partial_ratio' is {section.partial_ratio}: 1/{k} of a node's "
                              f"channels needs search.space_args.filter_multiplier ({args['filter_multiplier']}) "
                              f"divisible by {k}; change either")
        if cfg.search.arch_loss == "ohem":
            raise ConfigError("search.arch_loss: DCNAS' search uses plain cross-entropy for weights and "
                              "architecture; leave it unset or set 'ce'")
        return args, genotype_args

    def regularizers(self) -> dict[str, torch.Tensor]:
        """L_alpha, L_beta and L_con at the current alpha and beta (unweighted)."""
        beta = self.net.arch["beta"]
        return {"alpha": entropy(self.net.alpha_weights()), "beta": gate_entropy(beta),
                "con": indegree_penalty(torch.sigmoid(beta), self.net.target, self.net.n_nodes, self.max_indegree)}

    def weight_backward(self, images: torch.Tensor, masks: torch.Tensor, pretrain: bool) -> dict[str, torch.Tensor]:
        """Cross-entropy on a trainA batch; gradients for the weights only."""
        loss = self.criterion(self.net(images), masks)
        loss.backward(inputs=self.weight_parameters())
        return {"loss_weights": loss.detach()}

    def arch_backward(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy on a trainB batch plus the weighted regularizers; gradients for alpha and beta only."""
        ce = self.criterion(self.net(images), masks)
        regs = self.regularizers()
        loss = ce
        for name, value in regs.items():
            if self.reg_weights[name] > 0:
                loss = loss + self.reg_weights[name] * value
        loss.backward(inputs=self.arch_parameters())
        return {"arch_loss": ce.detach(), "arch_total": loss.detach(),
                **{f"arch_reg_{name}": value.detach() for name, value in regs.items()}}

    # -- decoding ---------------------------------------------------------------------------
    def decode(self) -> tuple[list[dict], list[list[float]]]:
        """(genotype nodes, sigmoid(beta) of each kept connection) from the current alpha and beta."""
        with torch.no_grad():
            alpha = self.net.alpha_weights().cpu().double().numpy()
            beta = self.net.arch["beta"].detach().cpu().double()
        nodes = decode(alpha, beta.numpy(), self.net.ops, self.net.layers)
        return nodes, kept_weights(torch.sigmoid(beta).numpy(), nodes)

    # -- one architecture in the supernet (segnas correlate) ----------------------------------
    def fixed_weights(self, genotype: Genotype) -> tuple[torch.Tensor, torch.Tensor]:
        """(operator weights, gates) that make the supernet compute ``genotype``: a one-hot row per node of
        the genotype, a zero row per absent node; gate 1 per kept connection, 0 for every other.

        Absent nodes still compute (on a zero input) but every gate leaving them is 0, so they add nothing.
        A genotype of other ``layers`` or with an operator the supernet does not search is refused.
        """
        representable_args(self.space, genotype, self.args, ("layers",))
        unknown_op([n["op"] for n in genotype.structure["nodes"]], self.net.ops, genotype)
        alpha = torch.zeros(self.net.n_nodes, len(self.net.ops), device=self.device)
        gates = torch.zeros(n_connections(self.net.layers), device=self.device)
        index = {s: j for j, s in enumerate(SCALES)}
        for node in genotype.structure["nodes"]:
            layer, j = node["layer"], index[node["scale"]]
            alpha[node_index(layer, j), self.net.ops.index(node["op"])] = 1.0
            cand = sources(layer)
            for src, scale in node["inputs"]:
                gates[offset(layer, j) + cand.index((src, index[scale]))] = 1.0
        return alpha, gates

    def fixed_plan(self, genotype: Genotype) -> dict[tuple[int, int], tuple[int, list[int]]]:
        """Per node of ``genotype``, in the supernet's node order: (its operator's index, the positions of its
        kept inputs among the node's candidates). The supernet then runs only these, which computes what
        :meth:`fixed_weights` do (every other term has weight 0) at the cost of the child network."""
        index = {s: j for j, s in enumerate(SCALES)}
        plan = {}
        for node in genotype.structure["nodes"]:
            layer, j = node["layer"], index[node["scale"]]
            cand = sources(layer)
            plan[(layer, j)] = (self.net.ops.index(node["op"]),
                                sorted(cand.index((src, index[scale])) for src, scale in node["inputs"]))
        return dict(sorted(plan.items()))

    def fixed_notes(self, genotype: Genotype) -> list[str]:
        """Where the supernet with ``genotype`` fixed still computes otherwise than the child network."""
        args = self.space.resolve_args(genotype.space_args)
        notes = other_args_note(args, self.args, ("filter_multiplier", "stem_channels", "head_channels", "down_align",
                                                  "fusion", "activation"))
        if self.partial > 1:
            notes.append(f"partial channels: each node's operator sees 1/{self.partial} of its channels, the rest "
                         "bypass it (the child's operator sees all)")
        if self.args["fusion"] == "mean":
            notes.append("fusion 'mean': the supernet divides a node's input by its candidate count, the child "
                         "by its kept inputs")
        return notes

    @contextmanager
    def fixed(self, genotype: Genotype) -> Iterator[list[str]]:
        """Inside, the supernet computes ``genotype``'s architecture (its nodes' operators and kept connections),
        so ``supernet_miou`` is that architecture's search-time score; alpha and beta are never changed.

        Yields the ways this still differs from the child network (``fixed_notes``). A genotype the
        supernet cannot compute is a GenotypeError naming the mismatch.
        """
        if self.net.fixed is not None:
            raise RuntimeError("an architecture is already fixed in this supernet")
        alpha, gates = self.fixed_weights(genotype)
        notes = self.fixed_notes(genotype)
        self.net.fixed = {"alpha": alpha, "gates": gates, "plan": self.fixed_plan(genotype)}
        try:
            yield notes
        finally:
            self.net.fixed = None

    def derive(self, loader: DataLoader | None) -> dict[str, Any]:
        nodes, weights = self.decode()
        miou = self.supernet_miou(loader) if loader is not None else None
        with torch.no_grad():
            regs = {f"reg_{name}": float(v) for name, v in self.regularizers().items()}
        g = self.space.make_genotype({"nodes": nodes}, self.genotype_args, name="dcnas-searched",
                                     meta={"source": "dcnas search", "search_miou": miou,
                                           "search_space_args": self.args, "connection_weights": weights})
        record = {"archid": g.archid, "nodes": len(nodes), "connections": sum(len(n["inputs"]) for n in nodes),
                  "miou": miou, **regs}
        return {"genotypes": {"genotype": g}, "records": {"genotype": record}}

