"""Progressive stages of a trial (Nekrasov et al.): the rule that stops weak trials after stage 1, and the reward.

After the short first stage a trial goes on to the second if its reward
beats the running mean of the stage-1 rewards seen so far; otherwise it goes
on only with probability p, which starts at 0.9 and is annealed during the
search (paper, Sect. 3.2.1). The paper gives no schedule; here p decays
geometrically with every decided trial down to a floor:
``p_k = max(p_min, p_start * decay**k)``, k = trials decided before this one.
The defaults (0.9, 0.997, 0.25) follow the pace of the authors' released
code, whose tolerance starts at 0.9 and is multiplied by 0.9, 0.8, 0.7, 0.6
after 100, 200, 300, 400 trials (0.27 from then on): p is 0.67 after 100
trials and 0.27 after 400. Short searches want a faster decay (e.g. 0.97).
The running mean is the plain mean of all earlier stage-1 rewards, or, with
``mean_decay``, an exponential moving average (the released code uses 0.99),
which follows a controller whose rewards keep rising.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..metrics import nekrasov_reward


@dataclass(frozen=True)
class StageDecision:
    """Whether a trial continues to stage 2, and why: ``first``, ``above-mean``, ``kept-by-chance`` or ``stopped``."""

    proceed: bool
    reason: str
    mean: float | None  # running mean of the earlier stage-1 rewards (None for the first trial)
    p: float  # the probability a below-mean trial had of continuing


class EarlyTermination:
    """The stage-1 -> stage-2 rule, with its running mean and annealed probability (resumable)."""

    def __init__(self, p_start: float = 0.9, decay: float = 0.997, p_min: float = 0.25,
                 mean_decay: float | None = None) -> None:
        if not 0.0 <= p_min <= p_start <= 1.0:
            raise ValueError(f"need 0 <= p_min <= p_start <= 1; got p_min {p_min}, p_start {p_start}")
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1]; got {decay}")
        if mean_decay is not None and not 0.0 <= mean_decay < 1.0:
            raise ValueError(f"mean_decay must be in [0, 1) or None; got {mean_decay}")
        self.p_start, self.decay, self.p_min, self.mean_decay = p_start, decay, p_min, mean_decay
        self.count = 0  # stage-1 rewards decided so far
        self.total = 0.0  # their sum (plain mean) or their moving average (mean_decay)

    @property
    def p(self) -> float:
        """The probability that the next below-mean trial continues."""
        return max(self.p_min, self.p_start * self.decay ** self.count)

    @property
    def mean(self) -> float | None:
        """Running mean of the stage-1 rewards decided so far (None before the first)."""
        if not self.count:
            return None
        return self.total if self.mean_decay is not None else self.total / self.count

    def decide(self, reward: float, rng: np.random.Generator) -> StageDecision:
        """Decide one trial from its stage-1 reward, then add the reward to the running mean.

        The reward is compared with the mean of the earlier rewards (the
        first trial always continues) and must beat it strictly. Every call
        draws exactly one uniform from ``rng``, whatever the outcome, so the
        k-th decision always reads the k-th draw; a failed trial has no
        stage-1 reward and is not passed here. Decide a batch's trials in a
        fixed order (their index), not in the order parallel workers finish
        them, or a rerun would decide differently.
        """
        if not math.isfinite(reward):
            raise ValueError(f"stage-1 reward {reward} is not finite; a failed trial is not decided")
        u = float(rng.random())
        mean, p = self.mean, self.p
        if mean is None:
            decision = StageDecision(True, "first", None, p)
        elif reward > mean:
            decision = StageDecision(True, "above-mean", mean, p)
        elif u < p:
            decision = StageDecision(True, "kept-by-chance", mean, p)
        else:
            decision = StageDecision(False, "stopped", mean, p)
        if self.mean_decay is None:
            self.total += float(reward)
        else:  # the first reward starts the average
            self.total = float(reward) if not self.count else (
                self.mean_decay * self.total + (1.0 - self.mean_decay) * float(reward))
        self.count += 1
        return decision

    def state_dict(self) -> dict[str, Any]:
        """The running mean's count and sum or average (settings: ``__init__``; the caller saves its ``rng``)."""
        return {"count": self.count, "total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count, self.total = int(state["count"]), float(state["total"])


def reward(confusion_matrix: Any, ignore_background: int | None) -> float:
    """The search reward: geometric mean of mIoU, frequency-weighted IoU and mean pixel accuracy.

    ``ignore_background`` is the background class index of a dataset that
    has one (VOC: 0), left out of all three averages as in the paper, since
    its many pixels would dominate them; None keeps every class. Raises
    ValueError when the reward is undefined (no pixel of a scored class), so
    the trial is recorded as failed rather than scored 0.
    """
    cm = np.asarray(confusion_matrix, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"the confusion matrix must be square; got shape {cm.shape}")
    if ignore_background is not None and not 0 <= ignore_background < cm.shape[0]:
        raise ValueError(f"background class {ignore_background} is outside 0..{cm.shape[0] - 1}")
    value = nekrasov_reward(cm, exclude=ignore_background)
    if math.isnan(value):
        raise ValueError("reward undefined: the evaluation images hold no pixel of a scored class")
    return value
