"""Curves of a run's log as PNG bytes (matplotlib, headless): search epochs, trials, training and evaluation.

Each chart takes the records of ``metrics.jsonl`` as they are and plots what they hold; a chart whose values
are missing from the log is not drawn (None), so a run of any method and any age gives the charts it can.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .draw import figure_png, finish_trial_axes, pyplot

Panel = tuple[str, dict[str, tuple[list[float], list[float]]], str]  # (title, {label: (xs, ys)}, x label)
MAX_POINTS = 2000  # per line: a long run's per-step losses are thinned to this many points

# per-epoch values of a decoded architecture -> (chart title, scale to percent)
EPOCH_KEYS: dict[str, tuple[str, bool]] = {
    "miou": ("supernet mIoU on trainB (%)", True),
    "latency_ms": ("estimated latency (ms, from the latency table)", False),
    "reg_alpha": ("L_alpha: entropy of the operator weights", False),
    "reg_beta": ("L_beta: entropy of the connection gates", False),
    "reg_con": ("L_con: in-degree outside [1, k]", False),
    "path_log_prob": ("log-probability of the decoded path", False),
    "temperature": ("temperature of the pair weights", False),
    "nodes": ("nodes of the decoded architecture", False),
    "connections": ("connections of the decoded architecture", False),
}
SIGNAL_KEYS: dict[str, str] = {
    "median_snr": "architecture-gradient signal: median SNR of a row",
    "rows_resolved": "share of architecture rows the budget decides",
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _thin(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    step = max(1, math.ceil(len(xs) / MAX_POINTS))
    return list(xs[::step]), list(ys[::step])


def small_multiples(panels: list[Panel], columns: int = 3) -> bytes | None:
    """One chart per panel ``(title, {label: (xs, ys)}, x label)``, in a grid; None when no panel has data."""
    panels = [p for p in panels if any(xs for xs, _ in p[1].values())]
    if not panels:
        return None
    plt = pyplot()
    cols = min(columns, len(panels))
    rows = math.ceil(len(panels) / cols)
    from matplotlib.ticker import MaxNLocator

    width, height = 4.2 * cols, 2.9 * rows
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False)
    # margins in inches, the same for any grid (tight_layout would draw every chart twice to find them)
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.5 / height, top=1 - 0.35 / height,
                        wspace=0.75 / (4.2 - 0.75), hspace=0.85 / (2.9 - 0.85))
    for ax, (title, lines, xlabel) in zip(axes.flat, panels):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, steps and trials count
        for label, (xs, ys) in lines.items():
            if xs:
                xs, ys = _thin(xs, ys)
                ax.plot(xs, ys, marker="o" if len(xs) <= 40 else None, ms=3, lw=1.2, label=label)
        xs_all = {x for xs, _ in lines.values() for x in xs}
        if len(xs_all) == 1:  # one evaluation or epoch: one tick, not a fractional axis around it
            ax.set_xticks(sorted(xs_all))
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return figure_png(fig, plt, "report", tight=False, dpi=100)


def _series(records: list[dict[str, Any]], x: Callable[[dict[str, Any]], Any],
            y: Callable[[dict[str, Any]], Any], scale: float = 1.0) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        xv, yv = _number(x(r)), _number(y(r))
        if xv is not None and yv is not None:
            xs.append(xv)
            ys.append(scale * yv)
    return xs, ys


def epoch_panels(records: list[dict[str, Any]]) -> list[Panel]:
    """The per-epoch charts a one-shot search's log allows: each decoded architecture's supernet mIoU (%),
    estimated latency and the other values its method logs (regularizers, path probability, ...), the
    architecture-weight signal and the latency weight; panels without values are left out."""
    epochs = [r for r in records if isinstance(r.get("architectures"), dict)]
    names = sorted({n for r in epochs for n in r["architectures"]})

    def epoch(r: dict[str, Any]) -> Any:
        return r["epoch"] + 1 if _number(r.get("epoch")) is not None else None

    panels: list[Panel] = []
    for key, (title, percent) in EPOCH_KEYS.items():
        lines = {n: _series(epochs, epoch, lambda r, n=n: (r["architectures"].get(n) or {}).get(key),
                            100.0 if percent else 1.0) for n in names}
        panels.append((title, lines, "epoch"))
    for key, title in SIGNAL_KEYS.items():
        panels.append((title, {key: _series(epochs, epoch, lambda r: (r.get("arch_signal") or {}).get(key))},
                       "epoch"))
    panels.append(("latency weight lambda", {"lambda": _series(epochs, epoch, lambda r: r.get("latency_lambda"))},
                   "epoch"))
    return [p for p in panels if any(xs for xs, _ in p[1].values())]


def search_epoch_chart(records: list[dict[str, Any]]) -> bytes | None:
    """The charts of :func:`epoch_panels` in one image; None for a log without epochs."""
    return small_multiples(epoch_panels(records))


def step_panels(records: list[dict[str, Any]]) -> list[Panel]:
    """Per-step losses: the weights' (``loss*``) and the architecture's (``arch_*``), and the learning rate."""
    steps = [r for r in records if "architectures" not in r and "val_miou" not in r and "trial" not in r]
    keys = sorted({k for r in steps for k, v in r.items() if _number(v) is not None and k != "step"})
    weight = {k: _series(steps, lambda r: r.get("step"), lambda r, k=k: r.get(k)) for k in keys
              if k.startswith("loss")}
    arch = {k: _series(steps, lambda r: r.get("step"), lambda r, k=k: r.get(k)) for k in keys
            if k.startswith("arch_")}
    lr = {"lr": _series(steps, lambda r: r.get("step"), lambda r: r.get("lr"))}
    panels = [("training loss (weights)", weight, "step"), ("architecture loss", arch, "step"),
              ("learning rate", lr, "step")]
    return [p for p in panels if any(xs for xs, _ in p[1].values())]


def eval_panels(records: list[dict[str, Any]]) -> list[Panel]:
    """A retrain's evaluations: val mIoU, fwIoU, pixel and mean accuracy (%) by step."""
    evals = [r for r in records if _number(r.get("val_miou")) is not None]
    lines = {label: _series(evals, lambda r: r.get("step"), lambda r, k=k: r.get(k), 100.0)
             for k, label in (("val_miou", "mIoU"), ("val_fwiou", "fwIoU"), ("val_pixel_acc", "pixel acc"),
                              ("val_mean_acc", "mean acc"))}
    return [("val metrics (%)", lines, "step")] if evals else []


def step_chart(records: list[dict[str, Any]]) -> bytes | None:
    """A search's per-step losses and learning rate in one image."""
    return small_multiples(step_panels(records))


def retrain_chart(records: list[dict[str, Any]]) -> bytes | None:
    """A retrain's evaluations, training loss and learning rate in one image."""
    return small_multiples(eval_panels(records) + step_panels(records))


def trial_chart(trials: list[dict[str, Any]], title: str) -> bytes | None:
    """A random search: each trial's trainB mIoU (%) and the best so far (staged trials, which have rewards,
    are drawn by :func:`segnas.report.trials.draw_rewards`)."""
    xs, ys = _series(trials, lambda t: t.get("trial"), lambda t: t.get("miou"), 100.0)
    if not xs:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.scatter(xs, ys, s=18, c="#1f77b4", label="trainB mIoU", zorder=3)
    best, running = float("-inf"), []
    for y in ys:
        best = max(best, y)
        running.append(best)
    ax.step(xs, running, where="post", c="#ff7f0e", label="best so far")
    finish_trial_axes(ax, "mIoU on trainB (%)", title)
    return figure_png(fig, plt, "report", dpi=100)


__all__ = ["Panel", "epoch_panels", "eval_panels", "figure_png", "retrain_chart", "search_epoch_chart",
           "small_multiples", "step_chart", "step_panels", "trial_chart"]
