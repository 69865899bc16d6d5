"""The scatter plot of ``segnas correlate``: search-time score against retrained mIoU, one point per architecture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .draw import pyplot, save_figure

SOURCE_STYLE = {  # where an architecture came from -> (colour, marker, legend)
    "along": ("#1f77b4", "o", "along the search (decoded per epoch)"),
    "around": ("#ff7f0e", "^", "around the final genotype (1-2 choices changed)"),
    "file": ("#2ca02c", "s", "given genotype files"),
}


def _stat(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "undefined"
    lo, hi = entry["interval"]
    interval = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
    return f"{entry['value']:.2f}{interval}"


def draw_correlation(result: dict[str, Any], path: str | Path) -> Path:
    """Search score (x) against retrained val mIoU (y) in percent, by source; rho and tau with their intervals
    in the title, the final genotype of the search ringed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    archs = [a for a in result["architectures"] if a.get("retrained_miou") is not None]
    for source, (colour, marker, label) in SOURCE_STYLE.items():
        pts = [a for a in archs if a["source"] == source]
        if pts:
            ax.scatter([100 * a["search_score"] for a in pts], [100 * a["retrained_miou"] for a in pts], c=colour,
                       marker=marker, s=55, edgecolors="black", linewidths=0.5, label=f"{label} ({len(pts)})",
                       zorder=3)
    final = [a for a in archs if a.get("final")]
    if final:
        ax.scatter([100 * a["search_score"] for a in final], [100 * a["retrained_miou"] for a in final], s=200,
                   facecolors="none", edgecolors="#d62728", linewidths=1.5, label="the search's final genotype",
                   zorder=4)
    for a in archs:
        ax.annotate(a["archid"][:6], (100 * a["search_score"], 100 * a["retrained_miou"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=6, color="0.35")
    ax.set_xlabel("search-time score: supernet mIoU (%) on trainB, architecture fixed")
    ax.set_ylabel("retrained val mIoU (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    stats = result.get("statistics") or {}
    ci = round(100 * stats.get("confidence", 0.9))
    ax.set_title(f"{result['settings']['method']}: Pearson rho {_stat(stats.get('pearson'))}, Kendall tau "
                 f"{_stat(stats.get('kendall'))}\n({ci}% bootstrap intervals, n = {stats.get('n', len(archs))})",
                 fontsize=9)
    return save_figure(plt, fig, path)


__all__ = ["SOURCE_STYLE", "draw_correlation"]
