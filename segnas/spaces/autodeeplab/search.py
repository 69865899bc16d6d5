"""Auto-DeepLab's supernet problem for a differentiable strategy (paper Sec. 4.2, 5.1).

Weights on trainA, alpha and beta on trainB, both with the cross-entropy of
the summed ASPP outputs at full resolution; the strategy starts architecture
steps after ``search.pretrain_epochs`` (the paper's 20 of 40 epochs). Each
backward pass only computes the gradients its step uses, so weight steps never
touch alpha/beta and architecture steps skip every weight gradient.
Every epoch the path (Viterbi) and cell (top-2) are decoded into a genotype
whose space arguments are the search's, updated with ``autodeeplab.genotype_args``
(the paper searches with F = 8 and retrains with F = 20/32/48) and
``autodeeplab.down_transition`` (how the derived network goes down a scale:
``conv3x3`` or the authors' ``released`` one). The supernet always goes down
with the paper's stride-2 conv (3x3 in segnas), so ``down_transition`` belongs
to the derived networks only and is refused in ``search.space_args``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader

from ...choices import CellDag
from ...errors import ConfigError, GenotypeError
from ...config import RunConfig
from ...genotype import Genotype
from ...losses import CrossEntropy
from ..base import other_args_note, representable_args, unknown_op
from ..problem import SupernetProblem
from . import LATER_ARGS, AutoDeepLabSpace, check_path
from ..cells import cell_dag, cell_edges, decode_cell
from .derive import viterbi
from .supernet import AutoDeepLabSupernet, path_moves


@dataclass
class AutoDeepLabConfig:
    """The ``autodeeplab.*`` section."""

    genotype_args: dict = field(default_factory=dict)  # space args of the derived networks (e.g. a larger F)
    down_transition: str = LATER_ARGS["down_transition"]  # the derived networks': conv3x3 | released
    fixed_path: list = field(default_factory=list)  # a scale index per layer: only the cell is searched ([]: both)

    CHOICES: ClassVar[dict[str, tuple]] = {"down_transition": ("conv3x3", "released")}


class AutoDeepLabSearch(SupernetProblem):
    """Losses and decoding of the Auto-DeepLab supernet (see ``segnas.strategies.differentiable``)."""

    def __init__(self, cfg: RunConfig, num_classes: int, ignore_index: int, device: torch.device | str = "cpu") -> None:
        self.space = AutoDeepLabSpace()
        self.args, self.genotype_args = self.check_config(cfg)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.device = torch.device(device)
        self.net = AutoDeepLabSupernet(self.args, num_classes, cfg.autodeeplab.fixed_path or None).to(self.device)
        self.criterion = CrossEntropy(ignore_index)

    @staticmethod
    def check_config(cfg: RunConfig) -> tuple[dict[str, Any], dict[str, Any]]:
        """(search space arguments, derived genotypes' arguments); a ConfigError naming the bad key."""
        space = AutoDeepLabSpace()
        section = cfg.autodeeplab
        if cfg.search.space_args.get("down_transition", "conv3x3") != "conv3x3":
            raise ConfigError("search.space_args.down_transition: the supernet goes down with the paper's stride-2 "
                              "conv; the derived networks' transition is autodeeplab.down_transition")
        if "down_transition" in section.genotype_args:
            raise ConfigError("autodeeplab.genotype_args.down_transition: set autodeeplab.down_transition instead")
        try:
            args = space.resolve_args(cfg.search.space_args)
            space.check_args(args, "search.space_args")
            genotype_args = space.resolve_args({**args, **section.genotype_args,
                                                "down_transition": section.down_transition})
            space.check_args(genotype_args, "autodeeplab.genotype_args")
        except GenotypeError as e:
            raise ConfigError(str(e).replace("field 'space_args.", "field '")) from None
        for key in ("layers", "blocks", "ops"):
            if genotype_args[key] != args[key]:
                raise ConfigError(f"autodeeplab.genotype_args.{key}: the derived network must keep the searched "
                                  f"{key}; change search.space_args.{key} instead")
        if section.fixed_path:
            try:
                check_path(section.fixed_path, args["layers"], "autodeeplab.fixed_path", "autodeeplab.fixed_path")
            except GenotypeError as e:
                raise ConfigError(str(e)) from None
        if cfg.search.arch_loss == "ohem":
            raise ConfigError("search.arch_loss: Auto-DeepLab's search uses plain cross-entropy for weights and "
                              "architecture; leave it unset or set 'ce'")
        return args, genotype_args

    def weight_backward(self, images: torch.Tensor, masks: torch.Tensor, pretrain: bool) -> dict[str, torch.Tensor]:
        """Cross-entropy on a trainA batch; gradients for the weights only."""
        loss = self.criterion(self.net(images), masks)
        loss.backward(inputs=self.weight_parameters())
        return {"loss_weights": loss.detach()}

    # -- decoding ---------------------------------------------------------------------------
    def decode(self) -> tuple[list[int], float, list[dict], list[list[int]]]:
        """(path, its log-probability, cell, strongest moves) from the current alpha and beta.

        ``moves[l][j]`` is the scale index node (l, j)'s strongest outgoing beta leads to (-1 where
        the node does not exist or is in the last layer): the paper's gray dashed arrows (Fig. 3).
        """
        with torch.no_grad():
            probs = self.net.beta_weights().cpu().double().numpy()
            alpha = self.net.alpha_weights().cpu().double().numpy()
        path, logp = viterbi(probs)  # a fixed network level: its one path, of probability 1
        moves = [[-1] * probs.shape[1] for _ in range(probs.shape[0])]
        for layer in range(probs.shape[0] - 1):
            for j in range(probs.shape[1]):
                row = probs[layer + 1, j]
                if row.sum() > 0:
                    moves[layer][j] = j + 1 - int(row.argmax())  # direction 0 = down = j + 1
        return path, logp, decode_cell(alpha, self.args["ops"], self.args["blocks"]), moves

    # -- one architecture in the supernet (segnas correlate) ----------------------------------
    def fixed_weights(self, genotype: Genotype) -> dict[str, Any]:
        """Edge weights, moves and the head that make the supernet compute ``genotype``'s cell along its path.

        ``alpha``: per edge of the cell a one-hot row at its operator, a zero row for edges the cell does
        not keep; ``beta``: 1 for the path's move into each layer, 0 for every other move, so nodes off
        the path are zero (and not computed); ``path``: the nodes computed, its last scale's head the only
        one that predicts. A genotype of
        other ``layers`` or ``blocks``, or with an operator the supernet does not search, is refused.
        """
        representable_args(self.space, genotype, self.args, ("layers", "blocks"))
        cell, path = genotype.structure["cell"], genotype.structure["path"]
        unknown_op([op for block in cell for op in block["ops"]], self.net.ops, genotype)
        first = [sum(b + 2 for b in range(k)) for k in range(self.net.blocks)]  # block k's first edge
        alpha = torch.zeros(len(cell_edges(self.net.blocks)), len(self.net.ops), device=self.device)
        for k, block in enumerate(cell):
            for i, op in zip(block["inputs"], block["ops"]):
                alpha[first[k] + i, self.net.ops.index(op)] = 1.0
        beta = path_moves(path, self.net.layers).to(self.device)
        return {"alpha": alpha, "beta": beta, "path": [int(j) for j in path]}

    def fixed_notes(self, genotype: Genotype) -> list[str]:
        """Where the supernet with ``genotype`` fixed still computes otherwise than the child network."""
        path = genotype.structure["path"]
        moved = [layer for layer in range(2, len(path))
                 if self.net.prev2(layer, path[layer]) != (layer - 2, path[layer - 2])]
        notes = ["the supernet's search stem, stride-2 conv transitions and one ASPP head per scale stand for "
                 "the child's stem, down transition, ASPP and decoder"]
        notes += other_args_note(self.space.resolve_args(genotype.space_args), self.args,
                                 ("filter_multiplier", "stem"))
        if moved:
            notes.append(f"h(l-2) of the cells at layer(s) {', '.join(map(str, moved))}: the supernet reads the "
                         "same scale two layers back (Eq. 6), off the path there and so zero; the child reads "
                         "the path's own node")
        return notes

    # -- the cell as a DAG (DOTS' topology search) ---------------------------------------------------
    def cell_dags(self) -> list[CellDag]:
        """One shared cell: block k sums the edges (rows of alpha, block by block) from states 0 .. k+1."""
        return [cell_dag("alpha", self.net.blocks)]

    def derive_cells(self, cells: dict[str, list[list[tuple[int, str]]]], loader: DataLoader | None) -> dict[str, Any]:
        """The genotype of the cell ``cells["alpha"]`` gives (two (input, operator) per block) on the decoded path."""
        cell = [{"inputs": [int(i) for i, _ in block], "ops": [op for _, op in block]} for block in cells["alpha"]]
        return self.derive(loader, cell)

    def derive(self, loader: DataLoader | None, cell: list[dict] | None = None) -> dict[str, Any]:
        path, logp, decoded, moves = self.decode()
        cell = decoded if cell is None else cell
        miou = self.supernet_miou(loader) if loader is not None else None
        g = self.space.make_genotype({"path": path, "cell": cell}, self.genotype_args, name="autodeeplab-searched",
                                     meta={"source": "autodeeplab search", "path_log_prob": logp,
                                           "search_miou": miou, "search_space_args": self.args,
                                           "strongest_moves": moves})
        record = {"archid": g.archid, "path": path, "path_log_prob": logp, "miou": miou}
        return {"genotypes": {"genotype": g}, "records": {"genotype": record}}
