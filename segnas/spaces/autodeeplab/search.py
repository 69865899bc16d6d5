"""Auto-DeepLab's search problem for the shared first-order bilevel strategy (paper Sec. 4.2, 5.1).

Weights on trainA, alpha and beta on trainB, both with the cross-entropy of
the summed ASPP outputs at full resolution; the strategy starts architecture
steps after ``search.pretrain_epochs`` (the paper's 20 of 40 epochs). Each
backward pass only computes the gradients its step uses, so weight steps never
touch alpha/beta and architecture steps skip every weight gradient.
Every epoch the path (Viterbi) and cell (top-2) are decoded into a genotype
whose space arguments are the search's, updated with ``search.genotype_args``
(the paper searches with F = 8 and retrains with F = 20/32/48).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ...errors import ConfigError, GenotypeError
from ...genotype import Genotype
from ...losses import CrossEntropy
from ...metrics import ConfusionMatrix
from . import AutoDeepLabSpace
from .derive import decode_cell, viterbi
from .network import SCALES
from .supernet import AutoDeepLabSupernet


class AutoDeepLabSearch:
    """Losses and decoding of the Auto-DeepLab supernet (see ``segnas.strategies.differentiable``)."""

    def __init__(self, cfg, num_classes: int, ignore_index: int, device: torch.device | str = "cpu") -> None:
        self.space = AutoDeepLabSpace()
        self.args, self.genotype_args = self.check_config(cfg)
        self.cfg, self.num_classes, self.ignore_index = cfg, num_classes, ignore_index
        self.device = torch.device(device)
        self.net = AutoDeepLabSupernet(self.args, num_classes).to(self.device)
        self.criterion = CrossEntropy(ignore_index)

    @staticmethod
    def check_config(cfg) -> tuple[dict[str, Any], dict[str, Any]]:
        """(search space arguments, derived genotypes' arguments); a ConfigError naming the bad key."""
        space = AutoDeepLabSpace()
        try:
            args = space.resolve_args(cfg.space_args)
            space.check_args(args, "search.space_args")
            genotype_args = space.resolve_args({**args, **cfg.genotype_args})
            space.check_args(genotype_args, "search.genotype_args")
        except GenotypeError as e:
            raise ConfigError(str(e).replace("field 'space_args.", "field '")) from None
        for key in ("layers", "blocks", "ops"):
            if genotype_args[key] != args[key]:
                raise ConfigError(f"search.genotype_args.{key}: the derived network must keep the searched "
                                  f"{key}; change search.space_args.{key} instead")
        if cfg.arch_loss == "ohem":
            raise ConfigError("search.arch_loss: Auto-DeepLab's search uses plain cross-entropy for weights and "
                              "architecture; leave it unset or set 'ce'")
        return args, genotype_args

    def weight_parameters(self) -> list[torch.nn.Parameter]:
        return self.net.weight_parameters()

    def arch_parameters(self) -> list[torch.nn.Parameter]:
        return self.net.arch_parameters()

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])

    def weight_backward(self, images: torch.Tensor, masks: torch.Tensor, pretrain: bool) -> dict[str, float]:
        """Cross-entropy on a trainA batch; gradients for the weights only."""
        loss = self.criterion(self.net(images), masks)
        loss.backward(inputs=self.weight_parameters())
        return {"loss_weights": float(loss.detach())}

    def arch_backward(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
        """Cross-entropy on a trainB batch; gradients for alpha and beta only."""
        loss = self.criterion(self.net(images), masks)
        loss.backward(inputs=self.arch_parameters())
        return {"arch_loss": float(loss.detach())}

    # -- decoding ---------------------------------------------------------------------------
    def decode(self) -> tuple[list[int], float, list[dict], list[list[int]]]:
        """(path, its log-probability, cell, strongest moves) from the current alpha and beta.

        ``moves[l][j]`` is the scale index node (l, j)'s strongest outgoing beta leads to (-1 where
        the node does not exist or is in the last layer): the paper's gray dashed arrows (Fig. 3).
        """
        with torch.no_grad():
            probs = self.net.beta_weights().cpu().double().numpy()
            alpha = self.net.alpha_weights().cpu().double().numpy()
        path, logp = viterbi(probs)
        moves = [[-1] * probs.shape[1] for _ in range(probs.shape[0])]
        for layer in range(probs.shape[0] - 1):
            for j in range(probs.shape[1]):
                row = probs[layer + 1, j]
                if row.sum() > 0:
                    moves[layer][j] = j + 1 - int(row.argmax())  # direction 0 = down = j + 1
        return path, logp, decode_cell(alpha, self.args["ops"], self.args["blocks"]), moves

    @torch.no_grad()
    def supernet_miou(self, loader: DataLoader) -> float:
        """mIoU of the supernet's prediction (trainB images, no augmentation): how far the search has come."""
        was = self.net.training
        self.net.eval()
        cm = ConfusionMatrix(self.num_classes, self.ignore_index)
        for images, masks in loader:
            cm.update(self.net(images.to(self.device)).argmax(1), masks.to(self.device))
        self.net.train(was)
        return float(cm.compute()["miou"])

    def derive(self, loader: DataLoader | None) -> dict[str, Any]:
        path, logp, cell, moves = self.decode()
        miou = self.supernet_miou(loader) if loader is not None else None
        g = self.space.make_genotype({"path": path, "cell": cell}, self.genotype_args, name="autodeeplab-searched",
                                     meta={"source": "autodeeplab search", "path_log_prob": logp,
                                           "search_miou": miou, "search_space_args": self.args,
                                           "strongest_moves": moves})
        record = {"archid": g.archid, "path": path, "path_log_prob": logp, "miou": miou}
        line = f"path {' '.join(str(SCALES[j]) for j in path)}"
        if miou is not None:
            line += f" | supernet mIoU(trainB) {100 * miou:.1f}"
        return {"genotypes": {"genotype": g}, "records": {"genotype": record}, "lines": {"genotype": line}}

    def drawings(self, genotypes: dict[str, Genotype], run: Path) -> None:
        """The decoded path and cell as PNG next to the genotype."""
        from ...report import draw_genotype

        for name, g in genotypes.items():
            draw_genotype(g, run / f"{name}.png")


# Method presets, merged over the general ones (segnas.config.PRESETS).
SEARCH_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "search": {"pretrain_epochs": 1, "epochs": 1, "batch_size": 2, "steps_per_epoch": 2, "select_images": 2,
                   "lr": 0.025, "lr_schedule": "cosine", "lr_min": 0.001, "weight_decay": 3e-4,
                   "arch_lr": 3e-3, "arch_betas": [0.9, 0.999], "arch_weight_decay": 1e-3,
                   "space_args": {"layers": 4, "blocks": 2, "filter_multiplier": 2, "stem": [8, 8, 16]},
                   "genotype_args": {"filter_multiplier": 4, "aspp_channels": 16, "decoder_channels": 16,
                                     "low_level_channels": 8}},
    },
    "cpu": {
        "data": {"crop": [128, 128]},
        "search": {"pretrain_epochs": 3, "epochs": 3, "batch_size": 4, "lr": 0.025, "lr_schedule": "cosine",
                   "lr_min": 0.001, "weight_decay": 3e-4, "arch_lr": 3e-3, "arch_betas": [0.9, 0.999],
                   "arch_weight_decay": 1e-3, "select_images": 8,
                   "space_args": {"layers": 8, "blocks": 3, "filter_multiplier": 4, "stem": [16, 16, 32]},
                   "genotype_args": {"filter_multiplier": 20, "stem": [64, 64, 128]}},
    },
    "paper": {
        "data": {"crop": [321, 321], "scale_range": [0.5, 0.5]},
        "search": {"pretrain_epochs": 20, "epochs": 20, "batch_size": 2, "lr": 0.025, "lr_schedule": "cosine",
                   "lr_min": 0.001, "weight_decay": 3e-4, "arch_lr": 3e-3, "arch_betas": [0.9, 0.999],
                   "arch_weight_decay": 1e-3, "grad_clip": 5.0, "select_images": 16,
                   "space_args": {"layers": 12, "blocks": 5, "filter_multiplier": 8},
                   "genotype_args": {"filter_multiplier": 20}},
    },
}


def run_autodeeplab_search(cfg, out: str | Path, resume: bool = False, stop_after: int | None = None,
                           progress: bool = True, resume_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``segnas search autodeeplab``: search the cell and the path, write the decoded genotype."""
    from ...strategies.differentiable import run_search

    def make_problem(cfg, data, run, device):
        return AutoDeepLabSearch(cfg.search, data.num_classes, data.ignore_index, device)

    return run_search("autodeeplab", make_problem, cfg, out, resume, stop_after, progress, resume_overrides,
                      check=AutoDeepLabSearch.check_config)
