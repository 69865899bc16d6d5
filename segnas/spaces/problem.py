"""What every space's supernet problem shares: two parameter groups, their declared choices, state, mIoU.

A differentiable strategy drives a *problem* (``segnas.strategies.differentiable.BilevelProblem``):
the supernet ``net`` with its weights and its :class:`~segnas.choices.ArchParameters` ``net.arch``
kept apart, so two optimisers never share a parameter. The spaces' problems add their losses and
decoding to this base.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..choices import ChoiceSpec
from ..genotype import Genotype
from ..metrics import ConfusionMatrix
from ..ops import reset_parameters


class SupernetModule(nn.Module):
    """A supernet whose architecture parameters live in ``self.arch`` (an ``ArchParameters``)."""

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.arch.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch.values()}
        return [p for p in self.parameters() if id(p) not in arch]


class SupernetProblem:
    """Parameter groups, choice specs, state and the supernet's mIoU of a problem holding ``net``
    (with ``num_classes``, ``ignore_index`` and ``device`` set by the subclass)."""

    net: nn.Module
    criterion: nn.Module  # the loss of the default architecture step
    num_classes: int
    ignore_index: int
    device: torch.device

    def weight_parameters(self) -> list[nn.Parameter]:
        return self.net.weight_parameters()

    def arch_parameters(self) -> list[nn.Parameter]:
        return self.net.arch_parameters()

    def arch_specs(self) -> list[ChoiceSpec]:
        """What each of :meth:`arch_parameters` decides, in the same order."""
        return self.net.arch.spec_list()

    def arch_backward(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy (``self.criterion``) of the supernet's output on a trainB batch; gradients for the
        architecture parameters only (spaces with another architecture loss override it)."""
        loss = self.criterion(self.net(images), masks)
        loss.backward(inputs=self.arch_parameters())
        return {"arch_loss": loss.detach()}

    @contextmanager
    def fixed(self, genotype: Genotype) -> Iterator[list[str]]:
        """Inside, the supernet computes ``genotype`` as far as the space allows (``net.fixed`` holds the
        space's ``fixed_weights``), so ``supernet_miou`` is that architecture's search-time score; the
        architecture parameters are never changed. Yields the ways this still differs from the child network
        (``fixed_notes``); a genotype the supernet cannot compute is a GenotypeError naming the mismatch."""
        if self.net.fixed is not None:
            raise RuntimeError("an architecture is already fixed in this supernet")
        weights = self.fixed_weights(genotype)
        notes = self.fixed_notes(genotype)
        self.net.fixed = weights
        try:
            yield notes
        finally:
            self.net.fixed = None

    def reset_weights(self) -> None:
        """Fresh weights, the architecture kept (a search stage that retrains the supernet from scratch)."""
        reset_parameters(self.net)

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])

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
