"""Proximal policy optimisation of a ``Controller`` from trial rewards (Nekrasov et al.'s outer loop).

The settings are the paper's where it gives them: clipped surrogate with
clip 0.1, Adam at lr 1e-4, a moving-average reward baseline with decay 0.95
as the advantage reference, gradient norm clipped to 2.0. Each ``update``
takes a batch of finished trials and makes ``epochs`` full-batch gradient
steps on it (no shuffling, so an update is a function of the batch and the
state alone). ``state_dict`` holds the controller, Adam and the baseline, so
a resumed search continues bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .controller import Controller


@dataclass(frozen=True)
class Experience:
    """A trial for the PPO batch: the actions, their log-probability when sampled, and the reward.

    ``reward`` is None for a trial that failed (out of memory, NaN loss, a
    dead worker): it is left out of the update, never counted as 0.
    """

    actions: Sequence[int]
    log_prob: float
    reward: float | None


class PPO:
    """Clipped-PPO trainer of one controller, with its optimiser and baseline."""

    def __init__(self, controller: Controller, lr: float = 1e-4, clip: float = 0.1, baseline_decay: float = 0.95,
                 max_grad_norm: float = 2.0, epochs: int = 4, entropy_weight: float = 0.0) -> None:
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1; got {epochs}")
        self.controller = controller
        self.clip, self.baseline_decay, self.max_grad_norm = clip, baseline_decay, max_grad_norm
        self.epochs, self.entropy_weight = epochs, entropy_weight
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=lr)
        self.baseline: float | None = None  # set from the first batch's mean reward
        self.updates = 0

    def update(self, batch: Sequence[Experience]) -> dict[str, Any]:
        """One PPO update on the trials of ``batch`` that have a reward; returns numbers for the log.

        Trials whose reward is None (failed) are dropped before anything is
        computed: they are never zeros, which would push the controller away
        from whatever it sampled alongside them (Nekrasov et al.'s code counted
        empty rollout slots as zero rewards). A batch with no reward left is a
        no-op: parameters, Adam's state and the baseline stay as they were.
        Advantages are measured against the baseline from before this batch
        (the first batch: its own mean reward); the baseline then moves
        towards each reward in batch order, ``b = decay * b + (1 - decay) * r``.
        """
        kept = [e for e in batch if e.reward is not None]
        for e in kept:
            if not math.isfinite(e.reward):
                raise ValueError(f"reward {e.reward} is not finite; record a failed trial's reward as None")
        stats: dict[str, Any] = {"trials": len(kept), "failed": len(batch) - len(kept), "updated": False,
                                 "baseline": self.baseline}
        if not kept:
            return stats
        rewards = [float(e.reward) for e in kept]
        baseline = self.baseline if self.baseline is not None else sum(rewards) / len(rewards)
        device = self.controller.start.device
        advantage = torch.tensor([r - baseline for r in rewards], dtype=torch.float32, device=device)
        old = torch.tensor([float(e.log_prob) for e in kept], dtype=torch.float32, device=device)
        actions = [list(e.actions) for e in kept]
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        for _ in range(self.epochs):
            log_prob, entropy = self.controller.evaluate(actions)
            ratio = torch.exp(log_prob - old)
            surrogate = torch.min(ratio * advantage, ratio.clamp(1 - self.clip, 1 + self.clip) * advantage)
            loss = -surrogate.mean() - self.entropy_weight * entropy.mean()
            self.optimizer.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
            self.optimizer.step()
        for r in rewards:
            baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * r
        self.baseline = baseline
        self.updates += 1
        with torch.no_grad():
            clipped = ((ratio - 1).abs() > self.clip).float().mean()
        stats.update({"updated": True, "baseline": baseline, "mean_reward": sum(rewards) / len(rewards),
                      "mean_advantage": float(advantage.mean()), "loss": float(loss.detach()),
                      "entropy": float(entropy.detach().mean()), "clip_fraction": float(clipped),
                      "grad_norm": float(grad_norm)})
        return stats

    def state_dict(self) -> dict[str, Any]:
        """Controller weights, Adam's state, the baseline and the update count (settings come from ``__init__``)."""
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved, into a PPO built with the same decisions and settings."""
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.updates = int(state["updates"])
