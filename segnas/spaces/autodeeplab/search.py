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

from ...errors import ConfigError, GenotypeError
from ...choices import ChoiceSpec
from ...config import RunConfig
from ...losses import CrossEntropy
from ...metrics import ConfusionMatrix
from ...ops import reset_parameters
from . import LATER_ARGS, AutoDeepLabSpace
from .derive import decode_cell, viterbi
from .supernet import AutoDeepLabSupernet


@dataclass
class AutoDeepLabConfig:
    """The ``autodeeplab.*`` section."""

    genotype_args: dict = field(default_factory=dict)  # space args of the derived networks (e.g. a larger F)
    down_transition: str = LATER_ARGS["down_transition"]  # the derived networks': conv3x3 | released

    CHOICES: ClassVar[dict[str, tuple]] = {"down_transition": ("conv3x3", "released")}


class AutoDeepLabSearch:
    """Losses and decoding of the Auto-DeepLab supernet (see ``segnas.strategies.differentiable``)."""

    def __init__(self, cfg: RunConfig, num_classes: int, ignore_index: int, device: torch.device | str = "cpu") -> None:
        self.space = AutoDeepLabSpace()
        self.args, self.genotype_args = self.check_config(cfg)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.device = torch.device(device)
        self.net = AutoDeepLabSupernet(self.args, num_classes).to(self.device)
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
        if cfg.search.arch_loss == "ohem":
            raise ConfigError("search.arch_loss: Auto-DeepLab's search uses plain cross-entropy for weights and "
                              "architecture; leave it unset or set 'ce'")
        return args, genotype_args

    def weight_parameters(self) -> list[torch.nn.Parameter]:
        return self.net.weight_parameters()

    def arch_parameters(self) -> list[torch.nn.Parameter]:
        return self.net.arch_parameters()

    def arch_specs(self) -> list[ChoiceSpec]:
        """What each of :meth:`arch_parameters` decides, in the same order."""
        return self.net.arch.spec_list()

    def reset_weights(self) -> None:
        """Fresh weights, the architecture kept (a search stage that retrains the supernet from scratch)."""
        reset_parameters(self.net)

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])

    def weight_backward(self, images: torch.Tensor, masks: torch.Tensor, pretrain: bool) -> dict[str, torch.Tensor]:
        """Cross-entropy on a trainA batch; gradients for the weights only."""
        loss = self.criterion(self.net(images), masks)
        loss.backward(inputs=self.weight_parameters())
        return {"loss_weights": loss.detach()}

    def arch_backward(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy on a trainB batch; gradients for alpha and beta only."""
        loss = self.criterion(self.net(images), masks)
        loss.backward(inputs=self.arch_parameters())
        return {"arch_loss": loss.detach()}

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
        return {"genotypes": {"genotype": g}, "records": {"genotype": record}}
