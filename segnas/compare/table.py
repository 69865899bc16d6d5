"""A comparison's outputs: one row per search, its Pareto front, ``compare.md`` / ``compare.csv`` and the
latency-vs-mIoU plot ``pareto.png``."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..report.draw import pyplot, save_figure


COLUMNS = ("label", "method", "strategy", "space", "val_miou", "params", "macs", "latency_ms", "search_s",
           "retrain_s", "budget_stopped", "pareto", "archid", "error")


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Labels of the (latency, mIoU) points no other point beats on both (lower latency, higher mIoU), by
    latency; of equal points, the first."""
    front, best = [], float("-inf")
    for label, (lat, miou) in sorted(points.items(), key=lambda kv: (kv[1][0], -kv[1][1])):
        if miou > best:
            front.append(label)
            best = miou
    return front


def _num(value: Any, scale: float = 1.0, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value * scale, fmt)


def markdown(rows: list[dict[str, Any]], header: list[str]) -> str:
    """The table as markdown, after ``header`` lines (the settings)."""
    cols = ("method", "strategy", "space", "val mIoU %", "params M", "GMACs", "latency ms", "search s", "retrain s",
            "budget stopped", "Pareto")
    lines = [*header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r["method"], r["strategy"], r["space"], _num(r["val_miou"], 100, ".1f"), _num(r["params"], 1e-6, ".3f"),
                 _num(r["macs"], 1e-9, ".3g"), _num(r["latency_ms"], 1, ".2f"), _num(r["search_s"], 1, ".0f"),
                 _num(r["retrain_s"], 1, ".0f"), {True: "yes", False: "no", None: "-"}[r["budget_stopped"]],
                 "yes" if r["pareto"] else ""]
        if r["error"]:
            cells[3] = "failed: " + r["error"].replace("|", "\\|")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Every row with every column of ``COLUMNS`` (raw numbers; empty where a stage did not finish)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow(["" if r[c] is None else r[c] for c in COLUMNS])
    return buf.getvalue()


def draw_pareto(rows: list[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Latency (ms) against val mIoU (%): every retrained network a labelled point (random baselines hollow),
    the Pareto front a step line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    done = [r for r in rows if r["latency_ms"] is not None and r["val_miou"] is not None]
    shown: set[str] = set()
    for r in done:
        x, y = r["latency_ms"], 100 * r["val_miou"]
        kind = "random baseline" if r.get("baseline") else "searched"
        ax.scatter([x], [y], s=40, zorder=3, facecolors="none" if kind != "searched" else "#1f77b4",
                   edgecolors="#1f77b4", label=None if kind in shown else kind)
        shown.add(kind)
        ax.annotate(r["label"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    front = sorted((r for r in done if r["pareto"]), key=lambda r: r["latency_ms"])
    if front:
        xs = [r["latency_ms"] for r in front]
        ys = [100 * r["val_miou"] for r in front]
        right = max(r["latency_ms"] for r in done) * 1.05
        ax.step(xs + [right], ys + [ys[-1]], where="post", c="#ff7f0e", lw=1.2, zorder=2, label="Pareto front")
    if done:
        ax.margins(0.15)
        ax.legend(fontsize=7, loc="best")
    if not done:
        ax.text(0.5, 0.5, "no network was retrained", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("val mIoU (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    return save_figure(plt, fig, path, "compare")


__all__ = ["COLUMNS", "csv_text", "draw_pareto", "markdown", "pareto_front"]
