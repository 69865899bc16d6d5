"""The reward-over-trials plot of a multi-trial search: each trial's stage-1 and final reward, the running best."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .draw import finish_trial_axes, pyplot, save_figure


def draw_rewards(trials: list[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Rewards (%) against the trial number: stage 1 (grey), final (blue; red crosses: failed), running best."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    first = [(t["trial"], 100 * t["stage1_reward"]) for t in trials
             if t["stage1_reward"] is not None and t["reused_from"] is None]
    final = [(t["trial"], 100 * t["reward"]) for t in trials if t["reward"] is not None]
    if first:
        ax.scatter(*zip(*first), s=14, c="0.6", label="stage 1", zorder=2)
    if final:
        ax.scatter(*zip(*final), s=18, c="#1f77b4", label="final reward", zorder=3)
        best, line = float("-inf"), []
        for t in trials:
            if t["reward"] is not None:
                best = max(best, 100 * t["reward"])
            line.append((t["trial"], best if best > float("-inf") else None))
        xs = [x for x, y in line if y is not None]
        ax.step(xs, [y for _, y in line if y is not None], where="post", c="#ff7f0e", label="best so far")
    failed = [t["trial"] for t in trials if t["error"] is not None]
    if failed:
        low = min([y for _, y in final] or [0.0])
        ax.scatter(failed, [low] * len(failed), marker="x", c="#d62728", label=f"failed ({len(failed)})", zorder=4)
    finish_trial_axes(ax, "reward (%)", title)
    return save_figure(plt, fig, path)


__all__ = ["draw_rewards"]
