"""How much signal the architecture gradients carry: is the search budget enough to decide?

A first-order search moves each row of architecture logits (one softmax over
operators, widths or scales) by the sum of its per-step gradients. When the
per-step gradient of (leading - runner-up logit) has a mean small against its
spread (signal-to-noise ratio ``snr``), that sum is mostly a random walk: its
sign is reliable (2 sigma) only after about ``(2 / snr)^2`` steps, whatever
the learning rate. Comparing that number with the search's
architecture steps tells whether the decoded argmax is a decision or noise,
which is the first question to ask when a searched network does no better
than random ones.

Statistics are gathered per epoch from the gradients the search computes
anyway (a few kilobytes, kept on the parameters' device so a step adds no
host sync). What a row is comes from each parameter's declared kind
(``segnas.choices``): the last dimension of a softmax or pairwise parameter
(leader against runner-up), or one sigmoid gate on its own (its logit's drift).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class ArchSignal:
    """Running mean and covariance of every architecture row's gradient over the steps seen.

    ``kinds`` are the parameters' declared choice kinds (default: softmax rows).
    """

    def __init__(self, params: Sequence[nn.Parameter], kinds: Sequence[str] | None = None) -> None:
        kinds = list(kinds) if kinds is not None else ["softmax"] * len(params)
        if len(kinds) != len(params):
            raise ValueError(f"{len(kinds)} kinds for {len(params)} architecture parameters")
        self.shapes = [(p.numel(), 1) if kind == "sigmoid" else (p.numel() // p.shape[-1], p.shape[-1])
                       for p, kind in zip(params, kinds)]
        self.devices = [p.device for p in params]
        self.reset()

    def reset(self) -> None:
        self.steps = 0
        self.s1 = [torch.zeros(r, k, dtype=torch.float64, device=d) for (r, k), d in zip(self.shapes, self.devices)]
        self.s2 = [torch.zeros(r, k, k, dtype=torch.float64, device=d) for (r, k), d in zip(self.shapes, self.devices)]

    @torch.no_grad()
    def update(self, params: Sequence[nn.Parameter]) -> None:
        """Add one step's gradients (a parameter without a gradient counts as zero)."""
        for p, (r, k), s1, s2 in zip(params, self.shapes, self.s1, self.s2):
            if p.grad is None:
                continue
            g = p.grad.detach().reshape(r, k).to(torch.float64)
            s1 += g
            s2 += g.unsqueeze(2) * g.unsqueeze(1)
        self.steps += 1

    def row_snr(self, params: Sequence[nn.Parameter]) -> list[float]:
        """Per row: SNR of the gradient of (leading - runner-up logit), the pair read off ``params``.

        The pair comes from the current logits, not from the gradients, so with
        the logits held fixed (``benchmarks/arch_signal.py``) its choice does not
        inflate the estimate; within a search epoch the logits moved with these
        same gradients, which favours the leader a little. The squared ratio is
        debiased by the ``1/n`` that noise alone adds to a mean of ``n`` steps
        (0 = no signal).
        """
        n = self.steps
        out: list[float] = []
        if n < 2:
            return out
        for p, (r, k), s1, s2 in zip(params, self.shapes, self.s1, self.s2):
            s1, s2 = s1.cpu(), s2.cpu()
            mean = s1 / n
            cov = (s2 / n - mean.unsqueeze(2) * mean.unsqueeze(1)) * (n / (n - 1))
            logits = p.detach().reshape(r, k).to("cpu", torch.float64)
            for i in range(r):
                # live options: those some step gave a gradient (not masked moves, not nodes that cannot exist)
                live = [o for o in range(k) if float(s2[i, o, o]) > 0.0]
                if k == 1 and live:  # a sigmoid gate: does its logit drift beyond its noise?
                    d, var = float(mean[i, 0]), float(cov[i, 0, 0])
                elif len(live) < 2:
                    continue
                else:
                    a, b = sorted(live, key=lambda o: (-float(logits[i, o]), o))[:2]
                    d = float(mean[i, a] - mean[i, b])
                    var = float(cov[i, a, a] + cov[i, b, b] - 2 * cov[i, a, b])
                if var <= 1e-12 * d * d or var <= 1e-30:  # no spread beyond rounding: a constant gradient
                    out.append(math.inf if abs(d) > 0 else 0.0)
                else:
                    out.append(math.sqrt(max(0.0, d * d / var - 1.0 / n)))
        return out

    def summary(self, params: Sequence[nn.Parameter], planned_steps: int) -> dict[str, Any]:
        """Median SNR, the steps it needs, and the share of rows resolved within ``planned_steps``
        (None where the median is infinite: an exact gradient, or no signal at all)."""
        snr = self.row_snr(params)
        if not snr:
            return {"steps": self.steps, "rows": 0}
        need = [steps_to_resolve(s) for s in snr]
        return {"steps": self.steps, "rows": len(snr), "median_snr": _finite(statistics.median(snr)),
                "snr_floor": 1.0 / math.sqrt(self.steps),
                "median_steps_to_resolve": _finite(statistics.median(need)), "planned_steps": int(planned_steps),
                "rows_resolved": sum(n <= planned_steps for n in need) / len(need)}

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "s1": [t.clone() for t in self.s1], "s2": [t.clone() for t in self.s2]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.s1 = [t.to(d, torch.float64).clone() for t, d in zip(state["s1"], self.devices)]
        self.s2 = [t.to(d, torch.float64).clone() for t, d in zip(state["s2"], self.devices)]


def _finite(x: float) -> float | None:
    """None for an infinite value, so records stay strict JSON."""
    return x if math.isfinite(x) else None


def steps_to_resolve(snr: float) -> float:
    """Steps after which a drift of ``snr`` per step stands 2 sigma above the random walk of its noise."""
    if snr <= 0:
        return math.inf
    return max(1.0, math.ceil((2.0 / snr) ** 2)) if math.isfinite(snr) else 1.0


def signal_line(summary: dict[str, Any]) -> str:
    """One progress-line fragment, e.g. ``arch signal: SNR 0.08 (floor 0.09), ~625 steps to decide a row,
    12% of rows within the 270 planned``."""
    if not summary.get("rows"):
        return ""
    need, snr = summary["median_steps_to_resolve"], summary["median_snr"]
    # a zero median SNR says the window was too short to see a drift, not that none exists
    need_s = (f"median row: no drift measurable in {summary['steps']} steps" if need is None
              else f"~{need:.0f} steps to decide a row")
    snr_s = "exact" if snr is None else f"{snr:.2f}"
    return (f"arch signal: SNR {snr_s} (floor {summary['snr_floor']:.2f}), {need_s}, "
            f"{summary['rows_resolved']:.0%} of rows within the {summary['planned_steps']} planned")
