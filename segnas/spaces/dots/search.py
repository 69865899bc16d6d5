"""The DOTS space's supernet problem for a differentiable strategy (``differentiable`` or ``dots``).

Weights on trainA with BiSeNet's training loss: the cross-entropy of the main
output plus that of each auxiliary head (weight 1 each, as BiSeNet trains).
Architecture on trainB with the cross-entropy of the main output alone: the
architecture is judged by what the network predicts at inference, where the
auxiliary heads do not run; their losses would also reward cells for what
the intermediate context features alone can classify, and computing them
would cost an arch step two more heads for nothing it keeps. Each backward
pass computes only the gradients its step uses.

Decoding (``derive``): DARTS' rule, per cell kind: per node the two inputs
whose strongest non-``none`` operator weighs most, then each one's best
non-``none`` operator (``segnas.spaces.cells.decode_cell`` implements exactly
that). The genotype is built with the searched space arguments: the method
has no config section (``dots.*`` is the DOTS strategy's), so a retrain at
another width is ``segnas retrain`` of an edited genotype. For the ``dots``
strategy the problem describes its two cells as DAGs (``cell_dags``) and
builds the genotype of DOTS' own decoding (``derive_cells``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from ...choices import CellDag
from ...config import RunConfig
from ...errors import ConfigError, GenotypeError
from ...genotype import Genotype
from ...losses import CrossEntropy, seg_loss_with_aux
from ..cells import cell_dag, cell_edges, decode_cell
from ..base import other_args_note, representable_args, unknown_op
from ..problem import SupernetProblem
from . import CELLS, DotsSpace, short_cell
from .supernet import ALPHAS, DotsSupernet

AUX_WEIGHT = 1.0  # BiSeNet's weight of each auxiliary loss


class DotsSearch(SupernetProblem):
    """Losses and decoding of the DOTS-BiSeNet supernet (see ``segnas.strategies.differentiable``)."""

    def __init__(self, cfg: RunConfig, num_classes: int, ignore_index: int, device: torch.device | str = "cpu") -> None:
        self.space = DotsSpace()
        self.args = self.check_config(cfg)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.device = torch.device(device)
        self.net = DotsSupernet(self.args, num_classes).to(self.device)
        self.criterion = CrossEntropy(ignore_index)

    @staticmethod
    def check_config(cfg: RunConfig) -> dict[str, Any]:
        """The search's space arguments (also the derived genotypes'); a ConfigError naming the bad key."""
        space = DotsSpace()
        try:
            args = space.resolve_args(cfg.search.space_args)
            space.check_args(args, "search.space_args")
        except GenotypeError as e:
            raise ConfigError(str(e).replace("field 'space_args.", "field 'search.space_args.")) from None
        if cfg.search.arch_loss not in (None, "ce"):
            raise ConfigError(f"search.arch_loss is {cfg.search.arch_loss!r}: the DOTS space's architecture step "
                              "uses plain cross-entropy of the main output; leave it unset or set 'ce'")
        if cfg.search.batch_size < 2:
            raise ConfigError(f"search.batch_size is {cfg.search.batch_size}: BiSeNet's attention normalises pooled "
                              "1x1 maps with BatchNorm, which needs at least 2 images per batch")
        return args

    def weight_backward(self, images: torch.Tensor, masks: torch.Tensor, pretrain: bool) -> dict[str, torch.Tensor]:
        """Main plus auxiliary cross-entropy on a trainA batch; gradients for the weights only."""
        logits, aux = self.net(images, aux=True)
        loss = seg_loss_with_aux(self.criterion, logits, aux, masks, AUX_WEIGHT)
        loss.backward(inputs=self.weight_parameters())
        return {"loss_weights": loss.detach()}

    # -- decoding ------------------------------------------------------------------------------
    def decode(self) -> dict[str, list[list]]:
        """Both cells by DARTS' rule from the current edge weights (a strategy's relaxation, or the softmax)."""
        structure = {}
        with torch.no_grad():
            for cell, alpha in zip(CELLS, ALPHAS):
                weights = self.net.arch.weights(alpha).cpu().double().numpy()
                blocks = decode_cell(weights, self.net.ops, self.net.nodes)
                structure[cell] = [[op, int(i)] for b in blocks for i, op in zip(b["inputs"], b["ops"])]
        return structure

    # -- one architecture in the supernet (segnas correlate) ----------------------------------------
    def fixed_weights(self, genotype: Genotype) -> dict[str, tuple[torch.Tensor, list[tuple[int, ...]]]]:
        """Per alpha: one-hot rows at each kept edge's operator (zero rows elsewhere) and the operators that
        run (none on the edges the cell does not keep). A genotype of other ``layers`` or ``nodes``, or with
        an operator the supernet does not search, is refused."""
        representable_args(self.space, genotype, self.args, ("layers", "nodes"))
        structure = genotype.structure
        unknown_op([op for cell in CELLS for op, _ in structure[cell]], self.net.ops, genotype)
        edges = cell_edges(self.net.nodes)
        out = {}
        for cell, alpha in zip(CELLS, ALPHAS):
            weights = torch.zeros(len(edges), len(self.net.ops), device=self.device)
            active: list[tuple[int, ...]] = [() for _ in edges]
            for e, (op, i) in enumerate(structure[cell]):
                row, k = edges.index((e // 2, int(i))), self.net.ops.index(op)
                weights[row, k], active[row] = 1.0, (k,)
            out[alpha] = (weights, active)
        return out

    def fixed_notes(self, genotype: Genotype) -> list[str]:
        """Where the supernet with ``genotype`` fixed still computes otherwise than the child network."""
        notes = ["the supernet's pooling operators pass a BatchNorm without affine parameters (DARTS' search); "
                 "the child's do not"]
        return notes + other_args_note(self.space.resolve_args(genotype.space_args), self.args,
                                       ("channels", "spatial_channels", "context_channels", "fusion_channels",
                                        "head_channels"))

    # -- the cells as DAGs (DOTS' topology search) --------------------------------------------------
    def cell_dags(self) -> list[CellDag]:
        """Two cells (normal, reduction): node k sums the edges (rows of its alpha) from states 0 .. k+1."""
        return [cell_dag(alpha, self.net.nodes) for alpha in ALPHAS]

    def derive_cells(self, cells: dict[str, list[list[tuple[int, str]]]], loader: DataLoader | None) -> dict[str, Any]:
        """The genotype of the cells ``cells[alpha]`` give (two (input, operator) pairs per node, per cell kind)."""
        structure = {cell: [[str(op), int(i)] for node in cells[alpha] for i, op in node]
                     for cell, alpha in zip(CELLS, ALPHAS)}
        return self.derive(loader, structure)

    def derive(self, loader: DataLoader | None, structure: dict[str, list[list]] | None = None) -> dict[str, Any]:
        structure = self.decode() if structure is None else structure
        miou = self.supernet_miou(loader) if loader is not None else None
        g = self.space.make_genotype(structure, self.args, name="dots-searched",
                                     meta={"source": "dots space search", "search_miou": miou})
        record = {"archid": g.archid, "normal": short_cell(structure["normal"]),
                  "reduce": short_cell(structure["reduce"]), "miou": miou}
        return {"genotypes": {"genotype": g}, "records": {"genotype": record}}
