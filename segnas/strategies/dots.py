"""DOTS (Gu et al., CVPR 2021): operation search and topology search, decoupled, on any supernet of cell DAGs.

The search runs in four stages on the differentiable strategy's loop
(``Phase``): *operation pretrain* (weights only), *operation search*,
*topology pretrain* and *topology search* (``dots.*`` sets each one's
epochs; the weights are reset before the topology stages unless
``dots.reset_weights`` is false; the authors reset them).

- **Operation search, group strategy.** The operators of an edge are split by
  what they are (``segnas.ops``: ``PARAMETER_FREE``, ``OP_FAMILY``), never by
  their place in the list: Group-V2 (default; DropNAS) puts the parameter-free
  ones (``none``, pooling, skip) against the parametric ones, Group-V1 the
  skip, pooling, separable and dilated convs (as the paper lists it, without
  ``none``, which then takes no part). Each group is its own softmax
  (``choices.group_softmax``), so an edge is the sum of one mixture per group.
- **Topology search.** Each edge keeps the strongest operator of each group
  (its alpha frozen from then on) mixed by a per-edge *group balance*,
  softmax(balance / (1e-3 T)), nearly hard. Each node has logits beta over
  every pair of its incoming edges; an edge's weight is the summed
  probability of the pairs holding it, softmax(beta / T), with T annealed
  from T0 = 10 by 0.72 per topology-search epoch (1 before it).
- **Derivation.** In the operation stages (each epoch's interim genotype)
  the space's own decoding of the grouped weights (which compares weights
  across groups: a rough reading); in the topology stages, per node the most probable pair,
  then on each kept edge its kept operators by group balance, the first that
  is not ``none``.

A space offers this by its problem's ``cell_dags()`` (``choices.CellDag``:
which alpha rows are edges into which node, from which input) and
``derive_cells(cells, loader)`` (its genotype from two (input, operator)
pairs per node); the supernet reads its edge weights through
``ArchParameters.weights`` and computes only the options
``ArchParameters.active`` leaves (two per edge with Group-V2 in the topology
stages). Pair logits and group balances are declared in the supernet's own
architecture parameters, so they are saved, moved and resumed with it;
the stage and temperature are functions of the epoch, so a run killed in any
stage ends with the genotype an unbroken one reaches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..choices import CellDag, ChoiceSpec, best_in_groups, group_softmax, pairs, pairwise_input_weights
from ..config import RunConfig
from ..errors import ConfigError
from ..ops import OP_FAMILY, PARAMETER_FREE
from .differentiable import Phase, run_differentiable

STRATEGY = "dots"
OP_STAGES = ("op_pretrain", "op_search")
TOPOLOGY_STAGES = ("topology_pretrain", "topology_search")
# Group-V1's four groups by operator family, in the paper's order
V1_FAMILIES = ("skip", "pooling", "separable", "dilated")


@dataclass
class DotsConfig:
    """The ``dots.*`` section: groups, epochs per stage, weight reset, temperature."""

    group: str = "v2"  # v2: parameter-free vs parametric operators; v1: skip / pooling / separable / dilated
    op_pretrain_epochs: int = 1
    op_epochs: int = 1
    topology_pretrain_epochs: int = 1
    topology_epochs: int = 1
    reset_weights: bool = True  # fresh weights before the topology stages (the authors')
    t0: float = 10.0  # initial temperature of the pair and balance softmaxes
    decay: float = 0.72  # T *= decay per topology-search epoch
    balance_scale: float = 1e-3  # group balance: softmax(balance / (balance_scale * T))

    CHOICES: ClassVar[dict[str, tuple]] = {"group": ("v2", "v1")}


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"dots": {"op_pretrain_epochs": 1, "op_epochs": 1, "topology_pretrain_epochs": 1, "topology_epochs": 1}},
    "cpu": {"dots": {"op_pretrain_epochs": 1, "op_epochs": 2, "topology_pretrain_epochs": 1, "topology_epochs": 2}},
    # CIFAR's schedule (the ImageNet search follows it): 30 epochs of operation search, 40 of topology
    # search, the first half of each weights only; SGD 0.025 cosine to 0.001; alpha/beta Adam 3e-3 (ImageNet)
    "paper": {"dots": {"op_pretrain_epochs": 15, "op_epochs": 15, "topology_pretrain_epochs": 20,
                       "topology_epochs": 20},
              "search": {"lr": 0.025, "lr_schedule": "cosine", "lr_min": 0.001, "momentum": 0.9,
                         "weight_decay": 3e-4, "arch_lr": 3e-3, "arch_weight_decay": 1e-3}},
}


def check_config(cfg: RunConfig) -> None:
    """A ConfigError naming the ``dots.*`` key that cannot run."""
    dc = cfg.dots
    for key in ("op_pretrain_epochs", "op_epochs", "topology_pretrain_epochs", "topology_epochs"):
        value = getattr(dc, key)
        if type(value) is not int or value < 0:
            raise ConfigError(f"dots.{key} is {value!r}; give a whole number of epochs >= 0")
    for key, what in (("op_epochs", "the kept operators would be untrained alpha's argmax"),
                      ("topology_epochs", "each node's pair would be its initial logits' argmax")):
        if getattr(dc, key) < 1:
            raise ConfigError(f"dots.{key} is 0: {what}; give it at least 1 epoch")
    for key in ("t0", "decay", "balance_scale"):
        value = getattr(dc, key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"dots.{key} is {value!r}; it must be a positive number")


def dots_phases(cfg: RunConfig) -> list[Phase]:
    """The four stages; the weight reset falls on the first topology stage that has epochs."""
    dc = cfg.dots
    phases = [Phase("op_pretrain", dc.op_pretrain_epochs, False), Phase("op_search", dc.op_epochs, True)]
    reset = dc.reset_weights and dc.op_pretrain_epochs + dc.op_epochs > 0
    for name, epochs, arch in (("topology_pretrain", dc.topology_pretrain_epochs, False),
                               ("topology_search", dc.topology_epochs, True)):
        phases.append(Phase(name, epochs, arch, reset_weights=reset and epochs > 0))
        reset = reset and epochs == 0
    return phases


def temperature(cfg: RunConfig, epoch: int) -> float:
    """T of ``epoch``: T0 until the topology search starts, then T0 * decay^(epochs into it)."""
    dc = cfg.dots
    start = dc.op_pretrain_epochs + dc.op_epochs + dc.topology_pretrain_epochs
    return float(dc.t0 * dc.decay ** max(0, epoch - start))


def op_groups(ops: tuple[str, ...], kind: str) -> dict[str, tuple[int, ...]]:
    """Group name -> option indices of ``ops``, by the operators' declared property (empty groups left out)."""
    if kind == "v2":
        named = {"parameter_free": [k for k, op in enumerate(ops) if op in PARAMETER_FREE],
                 "parametric": [k for k, op in enumerate(ops) if op not in PARAMETER_FREE]}
    elif kind == "v1":
        unknown = [op for op in ops if op != "none" and OP_FAMILY.get(op) not in V1_FAMILIES]
        if unknown:
            raise ConfigError(f"dots.group v1: operator(s) {', '.join(unknown)} belong to none of Group-V1's "
                              f"families ({', '.join(V1_FAMILIES)}); use dots.group v2")
        named = {family: [k for k, op in enumerate(ops) if OP_FAMILY.get(op) == family] for family in V1_FAMILIES}
    else:
        raise ConfigError(f"dots.group is {kind!r}; choose v2 or v1")
    groups = {name: tuple(ix) for name, ix in named.items() if ix}
    if all("none" in [ops[k] for k in ix] for ix in groups.values()):
        raise ConfigError(f"dots.group {kind}: operators {', '.join(ops)} leave every group holding 'none', so an "
                          "edge could keep nothing but 'none'; search at least one parametric operator")
    return groups


class DotsProblem:
    """A space's supernet problem searched by DOTS: the same losses, its edge weights DOTS' relaxation.

    ``set_stage(phase, epoch)`` (called at every epoch start) switches between the operation stages
    (grouped softmax of alpha) and the topology stages (kept operators, group balance and pair weights
    at the epoch's temperature); everything else is the space's problem.
    """

    def __init__(self, inner: Any, cfg: RunConfig) -> None:
        if not (hasattr(inner, "cell_dags") and hasattr(inner, "derive_cells")):
            raise ConfigError(f"method {cfg.method}: its supernet describes no cell DAGs (cell_dags, derive_cells), "
                              "which DOTS needs")
        self.inner, self.cfg = inner, cfg
        self.arch = inner.net.arch
        self.dags: list[CellDag] = list(inner.cell_dags())
        self.groups: dict[str, dict[str, tuple[int, ...]]] = {}
        self.kept: dict[str, list[list[int]]] = {}  # per DAG, per edge: its strongest operator of each group
        self.stage, self.temp = "op", float(cfg.dots.t0)
        device = self.arch[self.dags[0].alpha].device
        for dag in self.dags:
            spec = self.arch.specs[dag.alpha]
            rows = sorted(row for node in dag.nodes for row, _ in node)
            if (spec.kind != "softmax" or spec.mask is not None or self.arch[dag.alpha].dim() != 2
                    or rows != list(range(self.arch[dag.alpha].shape[0])) or not all(dag.nodes)):
                raise ConfigError(f"architecture parameter {dag.alpha!r} is not an unmasked softmax row per edge of "
                                  "its cell, each edge into one node of at least one input")
            self.groups[dag.alpha] = op_groups(spec.options, cfg.dots.group)
            n_groups = len(self.groups[dag.alpha])
            self.arch.declare(f"{dag.alpha}_balance", torch.zeros(dag.rows(), n_groups, device=device), "softmax",
                              tuple(self.groups[dag.alpha]), where=f"group balance of each edge of {dag.alpha}'s cell")
            for k, node in enumerate(dag.nodes):
                if len(node) >= 2:
                    init = (1e-3 * torch.randn(len(pairs(len(node))))).to(device)  # drawn on the CPU: seeded alike
                    self.arch.declare(f"{dag.alpha}_pairs{k}", init,
                                      "pairwise", tuple(f"in{i}" for _, i in node),
                                      where=f"pairs of node {k}'s incoming edges in {dag.alpha}'s cell")
            self.arch.relax(dag.alpha, self._op_weights(dag))

    # -- the problem contract, delegated ---------------------------------------------------------
    def weight_parameters(self) -> list[nn.Parameter]:
        return self.inner.weight_parameters()

    def arch_parameters(self) -> list[nn.Parameter]:
        return self.inner.arch_parameters()

    def arch_specs(self) -> list[ChoiceSpec]:
        return self.inner.arch_specs()

    def weight_backward(self, images: torch.Tensor, masks: torch.Tensor, pretrain: bool) -> dict[str, torch.Tensor]:
        return self.inner.weight_backward(images, masks, pretrain)

    def arch_backward(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """The space's architecture loss; gradients reach only the parameters the stage uses."""
        return self.inner.arch_backward(images, masks)

    def reset_weights(self) -> None:
        self.inner.reset_weights()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def supernet_miou(self, loader: DataLoader) -> float:
        return self.inner.supernet_miou(loader)

    @contextmanager
    def fixed(self, genotype: Any) -> Iterator[list[str]]:
        """The space's own fixing of one architecture in the supernet (``segnas correlate``), noting that
        after the weight reset only the operators each edge kept trained again."""
        with self.inner.fixed(genotype) as notes:
            extra = []
            if self.cfg.dots.reset_weights and self.cfg.dots.topology_pretrain_epochs + self.cfg.dots.topology_epochs:
                extra = ["after DOTS' weight reset only each edge's kept operators (one per group) trained again: "
                         "an architecture using others is scored with their reset weights"]
            yield [*notes, *extra]

    # -- stages ------------------------------------------------------------------------------------
    def set_stage(self, phase: str, epoch: int) -> None:
        """The relaxation of ``phase`` at ``epoch``'s temperature. Entering the topology stages fixes each
        edge's kept operators from alpha, which no longer changes after (so a resume finds the same)."""
        self.temp = temperature(self.cfg, epoch)
        if phase in OP_STAGES:
            self.stage = "op"
            for dag in self.dags:
                self.arch.relax(dag.alpha, self._op_weights(dag))
            return
        self.stage = "topology"
        for dag in self.dags:
            groups = list(self.groups[dag.alpha].values())
            with torch.no_grad():
                self.kept[dag.alpha] = best_in_groups(group_softmax(self.arch[dag.alpha], groups), groups)
            ops = self.arch.specs[dag.alpha].options  # `none` computes nothing: never an active operator
            active = [[k for k in row if ops[k] != "none"] for row in self.kept[dag.alpha]]
            self.arch.relax(dag.alpha, self._topology_weights(dag), active=active)

    def _op_weights(self, dag: CellDag):
        groups = list(self.groups[dag.alpha].values())
        return lambda: group_softmax(self.arch[dag.alpha], groups)

    def edge_weights(self, dag: CellDag) -> torch.Tensor:
        """Per edge row, the summed probability of its node's pairs that hold it (softmax(beta / T))."""
        rows = []
        for k, node in enumerate(dag.nodes):
            if len(node) >= 2:
                rows.append(pairwise_input_weights(self.arch[f"{dag.alpha}_pairs{k}"] / self.temp, len(node)))
            else:
                rows.append(torch.ones(len(node), device=self.arch[dag.alpha].device))
        weights = torch.cat(rows)
        order = torch.tensor([row for node in dag.nodes for row, _ in node], device=weights.device)
        return torch.zeros_like(weights).index_copy(0, order, weights)

    def balance_weights(self, dag: CellDag) -> torch.Tensor:
        """Per edge, the near-hard softmax over its groups: softmax(balance / (balance_scale * T))."""
        scale = self.cfg.dots.balance_scale * self.temp
        return torch.softmax(self.arch[f"{dag.alpha}_balance"] / scale, dim=-1)

    def _topology_weights(self, dag: CellDag):
        alpha = self.arch[dag.alpha]
        n_ops = alpha.shape[1]
        kept = torch.tensor(self.kept[dag.alpha], device=alpha.device)  # (edges, groups)

        def weights() -> torch.Tensor:
            per_group = self.edge_weights(dag).unsqueeze(1) * self.balance_weights(dag)  # (edges, groups)
            return per_group.new_zeros(per_group.shape[0], n_ops).scatter_add(1, kept, per_group)

        return weights

    # -- derivation ------------------------------------------------------------------------------------
    def topology_cells(self) -> tuple[dict[str, list[list[tuple[int, str]]]], dict[str, list[float]]]:
        """Per DAG and node: the most probable pair of inputs, each with its kept operator of the strongest
        group balance that is not ``none``; and each node's pair probability (at the current T)."""
        cells, probs = {}, {}
        with torch.no_grad():
            for dag in self.dags:
                ops = self.arch.specs[dag.alpha].options
                balance = self.balance_weights(dag).cpu().double()
                alpha = group_softmax(self.arch[dag.alpha], list(self.groups[dag.alpha].values())).cpu().double()
                nodes, node_probs = [], []
                for k, node in enumerate(dag.nodes):
                    if len(node) >= 2:
                        p = torch.softmax(self.arch[f"{dag.alpha}_pairs{k}"].double() / self.temp, -1).cpu()
                        best = int(torch.argmax(p))
                        chosen, prob = pairs(len(node))[best], float(p[best])
                    else:
                        chosen, prob = (0,), 1.0
                    edges = []
                    for position in chosen:
                        row, state = node[position]
                        edges.append((state, self._edge_op(ops, self.kept[dag.alpha][row], balance[row], alpha[row])))
                    nodes.append(edges)
                    node_probs.append(prob)
                cells[dag.alpha], probs[dag.alpha] = nodes, node_probs
        return cells, probs

    @staticmethod
    def _edge_op(ops: tuple[str, ...], kept: list[int], balance: torch.Tensor, alpha: torch.Tensor) -> str:
        order = sorted(range(len(kept)), key=lambda g: (-float(balance[g]), g))
        for g in order:
            if ops[kept[g]] != "none":
                return ops[kept[g]]
        real = [k for k, op in enumerate(ops) if op != "none"]  # every kept operator is none: the best other
        return ops[max(real, key=lambda k: (float(alpha[k]), -k))]

    def derive(self, loader: DataLoader | None) -> dict[str, Any]:
        """The space's decoding of the grouped weights (operation stages) or DOTS' (topology stages)."""
        if self.stage == "op":
            decoded = self.inner.derive(loader)
        else:
            cells, probs = self.topology_cells()
            decoded = self.inner.derive_cells(cells, loader)
            for record in decoded["records"].values():
                record["pair_probs"] = probs
        for record in decoded["records"].values():
            record["dots_stage"], record["temperature"] = self.stage, self.temp
        return decoded


class StageHook:
    """Sets the stage's relaxation and temperature at every epoch start (from the phase and epoch alone)."""

    def on_epoch_start(self, epoch: int, phase: Phase, problem: DotsProblem) -> None:
        problem.set_stage(phase.name, epoch)

    def on_epoch_end(self, epoch: int, searching: bool, record: dict[str, Any], problem: DotsProblem) -> str:
        return f"{'operations' if problem.stage == 'op' else 'topology'} T {problem.temp:.3g}"


def run_dots(method, cfg: RunConfig, out: str | Path, resume: bool = False, stop_after: int | None = None,
             progress: bool = True, resume_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) a DOTS search of ``method`` (its supernet problem must describe cell DAGs)."""
    if not resume:
        check_config(cfg)
    return run_differentiable(method, cfg, out, resume=resume, stop_after=stop_after, progress=progress,
                              resume_overrides=resume_overrides, phases=dots_phases, hooks=[StageHook()],
                              strategy=STRATEGY, wrap=DotsProblem)


__all__ = ["DotsConfig", "DotsProblem", "PRESETS", "STRATEGY", "StageHook", "check_config", "dots_phases",
           "op_groups", "run_dots", "temperature"]
