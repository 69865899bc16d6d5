"""Architecture drawings as PNG files (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from ..genotype import Genotype

OP_STYLE = {  # operator -> (colour, marker)
    "skip": ("#9e9e9e", "o"),
    "conv": ("#1f77b4", "s"),
    "conv_2x": ("#0b3d91", "D"),
    "zoomed_conv": ("#ff7f0e", "^"),
    "zoomed_conv_2x": ("#d62728", "v"),
}


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_fasterseg(genotype: Genotype, path: str | Path) -> Path:
    """Each branch as a path over (cell, scale) like the paper's Figure 6, operators as markers, chi as labels."""
    plt = _figure()
    branches = genotype.structure["branches"]
    n = max(len(b["cells"]) for b in branches)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * n + 2), 3.2 + 0.4 * len(branches)))
    levels = {8: 0, 16: 1, 32: 2}
    for b, branch in enumerate(branches):
        cells = branch["cells"]
        offset = (b - (len(branches) - 1) / 2) * 0.12
        xs = list(range(len(cells) + 1))
        ys = [levels[c["scale"]] + offset for c in cells] + [levels[cells[-1]["scale"]] + offset]
        ax.plot(xs, ys, "-", color="0.6", lw=1.5, zorder=1)
        for i, cell in enumerate(cells):
            colour, marker = OP_STYLE.get(cell["op"], ("black", "x"))
            ax.scatter(i + 0.5, (ys[i] + ys[i + 1]) / 2, c=colour, marker=marker, s=90, zorder=2,
                       edgecolors="black", linewidths=0.5)
            ax.annotate(str(cell["chi"]), (i + 0.5, (ys[i] + ys[i + 1]) / 2), textcoords="offset points",
                        xytext=(0, 8), ha="center", fontsize=7)
        ax.annotate(f"branch {b} (1/{cells[-1]['scale']})", (len(cells), ys[-1]), textcoords="offset points",
                    xytext=(6, -3), fontsize=8)
    ax.set_yticks([0, 1, 2], ["1/8", "1/16", "1/32"])
    ax.invert_yaxis()
    ax.set_xlabel("cell")
    ax.set_xlim(-0.3, n + 2.5)
    for op, (colour, marker) in OP_STYLE.items():
        ax.scatter([], [], c=colour, marker=marker, label=op, edgecolors="black", linewidths=0.5)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=5, fontsize=7, frameon=False)
    ax.set_title(f"{genotype.name or genotype.space}  [{genotype.archid}]  (numbers: expansion ratio chi)",
                 fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


DRAWERS = {"fasterseg": draw_fasterseg}


def draw_genotype(genotype: Genotype, path: str | Path) -> Path:
    """Draw ``genotype`` to a PNG with its space's drawer."""
    if genotype.space not in DRAWERS:
        raise NotImplementedError(f"no drawing for space {genotype.space!r} yet")
    return DRAWERS[genotype.space](genotype, path)
