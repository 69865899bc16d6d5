"""Architecture drawings as PNG files (matplotlib, headless)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..fileio import atomic_write
from ..genotype import Genotype
from ..outputs import png_text

OP_STYLE = {  # operator -> (colour, marker)
    "skip": ("#9e9e9e", "o"),
    "conv": ("#1f77b4", "s"),
    "conv_2x": ("#0b3d91", "D"),
    "zoomed_conv": ("#ff7f0e", "^"),
    "zoomed_conv_2x": ("#d62728", "v"),
}


def pyplot() -> Any:
    """matplotlib's pyplot on the headless Agg backend (imported on first use: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any, plt: Any, command: str = "draw", tight: bool = True, dpi: int = 120) -> bytes:
    """The figure as PNG bytes marked as written by ``command`` (so a rerun of it may replace the file); the
    figure is closed. ``tight``: fit the layout to the labels (a grid laid out beforehand skips it)."""
    buf = io.BytesIO()
    try:
        if tight:
            fig.tight_layout()
        fig.savefig(buf, format="png", dpi=dpi, metadata=png_text(command))
    finally:
        plt.close(fig)
    return buf.getvalue()


def save_figure(plt: Any, fig: Any, path: str | Path, command: str = "draw") -> Path:
    """Write the figure to ``path`` as a PNG marked as ``command``'s, atomically."""
    png = figure_png(fig, plt, command)
    return atomic_write(path, lambda f: f.write(png), binary=True)


def finish_trial_axes(ax: Any, ylabel: str, title: str) -> None:
    """The axes of a per-trial chart (multi-trial searches): integer trial numbers, labels, grid, legend."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def draw_fasterseg(genotype: Genotype, path: str | Path) -> Path:
    """Each branch as a path over (cell, scale) like the paper's Figure 6, operators as markers, chi as labels."""
    plt = pyplot()
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
    return save_figure(plt, fig, path)


def draw_autodeeplab(genotype: Genotype, path: str | Path) -> Path:
    """The path in the L-layer trellis (paper Fig. 1/3 style) next to the cell as a graph of its blocks."""
    plt = pyplot()
    structure = genotype.structure
    layers, cell = structure["path"], structure["cell"]
    n = len(layers)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(max(7.0, 0.55 * n + 3) + 6, 3.8),
                                 gridspec_kw={"width_ratios": [max(7.0, 0.55 * n + 3), 6]})
    for layer in range(n):  # every node of the trellis the path could visit
        for j in range(min(4, layer + 2)):
            ax.scatter(layer + 1, j, s=60, c="#d9d9d9", edgecolors="0.5", linewidths=0.5, zorder=1)
    ax.scatter(0, 0, s=60, c="0.5", zorder=2)
    for layer, row in enumerate(genotype.meta.get("strongest_moves") or []):  # a search's result: Fig. 3 arrows
        for j, k in enumerate(row):
            if k >= 0 and layer + 1 < n:
                ax.annotate("", (layer + 2, k), (layer + 1, j),
                            arrowprops={"arrowstyle": "->", "color": "0.55", "linestyle": "--", "lw": 0.8})
    xs, ys = list(range(n + 1)), [0] + list(layers)
    ax.plot(xs, ys, "-", color="#1f77b4", lw=2.5, zorder=2)
    ax.scatter(xs[1:], ys[1:], s=70, c="#1f77b4", edgecolors="black", linewidths=0.5, zorder=3)
    ax.set_yticks([0, 1, 2, 3], ["1/4", "1/8", "1/16", "1/32"])
    ax.set_xticks(xs, ["stem"] + [str(i + 1) for i in range(n)], fontsize=7)
    ax.set_ylim(3.5, -0.5)
    ax.set_xlabel("layer")
    ax.set_ylabel("downsample")
    ax.set_title(f"{genotype.name or genotype.space}  [{genotype.archid}]", fontsize=9)

    nb = len(cell)
    pos = {0: (0.0, 0.75), 1: (0.0, 0.25)}
    for k in range(nb):
        pos[k + 2] = (1.0 + k, 0.15 + 0.7 * (k % 2))
    out = (nb + 1.0, 0.5)
    for k, block in enumerate(cell):
        for i, op in zip(block["inputs"], block["ops"]):
            (x0, y0), (x1, y1) = pos[i], pos[k + 2]
            bx.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "color": "0.4",
                                                           "connectionstyle": "arc3,rad=0.15"})
            bx.text((x0 + x1) / 2, (y0 + y1) / 2, op.replace("_conv", "").replace("_", " "), fontsize=6,
                    ha="center", va="center", bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})
        bx.annotate("", out, pos[k + 2], arrowprops={"arrowstyle": "->", "color": "#9ecae1", "lw": 0.8})
    for i, (x, y) in pos.items():
        label = "h(l-1)" if i == 0 else "h(l-2)" if i == 1 else f"b{i - 2}"
        bx.scatter(x, y, s=500, c="#fdd49e" if i < 2 else "#c6dbef", edgecolors="black", linewidths=0.5, zorder=3)
        bx.text(x, y, label, fontsize=7, ha="center", va="center", zorder=4)
    bx.scatter(*out, s=500, c="#a1d99b", edgecolors="black", linewidths=0.5, zorder=3)
    bx.text(*out, "concat", fontsize=7, ha="center", va="center", zorder=4)
    bx.set_xlim(-0.6, nb + 1.6)
    bx.set_ylim(-0.1, 1.1)
    bx.axis("off")
    bx.set_title("cell (h(l): concat of the blocks)", fontsize=9)
    return save_figure(plt, fig, path)


def draw_dcnas(genotype: Genotype, path: str | Path) -> Path:
    """Kept nodes on the layer x scale grid with their kept connections; edge width = sigmoid(beta) where known.

    A searched genotype's meta holds each kept connection's weight (``connection_weights``, aligned with
    the nodes' inputs); other genotypes (samples, hand-written) draw every edge at one width.
    """
    plt = pyplot()
    nodes = genotype.structure["nodes"]
    layers = int(genotype.space_args.get("layers", max(n["layer"] for n in nodes)))
    level = {4: 0, 8: 1, 16: 2, 32: 3}
    weights = genotype.meta.get("connection_weights")
    if not (isinstance(weights, list) and len(weights) == len(nodes)
            and all(isinstance(w, list) and len(w) == len(n["inputs"]) for w, n in zip(weights, nodes))):
        weights = None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * layers + 3), 3.8))
    for layer in range(layers + 1):  # the whole grid, the stem as layer 0
        for y in range(4):
            ax.scatter(layer, y, s=40, c="0.5" if layer == 0 else "#e0e0e0", edgecolors="0.6", linewidths=0.5,
                       zorder=1)
    cmap = plt.get_cmap("tab20")
    ops = sorted({n["op"] for n in nodes})
    for i, node in enumerate(nodes):
        x1, y1 = node["layer"], level[node["scale"]]
        for k, (layer, scale) in enumerate(node["inputs"]):
            w = weights[i][k] if weights is not None else 0.5
            ax.annotate("", (x1, y1), (layer, level[scale]),
                        arrowprops={"arrowstyle": "-|>", "color": "#4a6fa5", "alpha": 0.35 + 0.55 * w,
                                    "lw": 0.4 + 2.6 * w, "shrinkA": 4, "shrinkB": 6,
                                    "connectionstyle": "arc3,rad=0.12"})
        ax.scatter(x1, y1, s=110, color=cmap(ops.index(node["op"]) % 20), edgecolors="black", linewidths=0.6,
                   zorder=3)
    for y in range(4):  # the head reads the last layer's four nodes
        ax.annotate("", (layers + 0.8, 1.5), (layers, y), arrowprops={"arrowstyle": "-|>", "color": "#2ca02c",
                                                                       "lw": 0.8, "shrinkA": 6})
    ax.text(layers + 0.9, 1.5, "head", fontsize=8, va="center")
    for op in ops:
        ax.scatter([], [], s=60, color=cmap(ops.index(op) % 20), edgecolors="black", linewidths=0.5,
                   label=op.replace("mbconv_", "").replace("_conv", ""))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(len(ops), 5), fontsize=7, frameon=False)
    ax.set_yticks([0, 1, 2, 3], ["1/4", "1/8", "1/16", "1/32"])
    ax.set_xticks(range(layers + 1), ["stem"] + [str(i) for i in range(1, layers + 1)], fontsize=7)
    ax.set_xlim(-0.5, layers + 1.6)
    ax.set_ylim(3.6, -0.6)
    ax.set_xlabel("layer")
    edges = "edge width = sigmoid(beta)" if weights is not None else "kept connections"
    ax.set_title(f"{genotype.name or genotype.space}  [{genotype.archid}]  ({len(nodes)} nodes; {edges})",
                 fontsize=9)
    return save_figure(plt, fig, path)


def draw_dots(genotype: Genotype, path: str | Path) -> Path:
    """The normal and the reduction cell side by side (DARTS' figure style): inputs c(k-2), c(k-1) on the
    left, the nodes in a column, each edge labelled with its operator, every node feeding the output c(k)."""
    plt = pyplot()
    structure = genotype.structure
    nodes = len(structure["normal"]) // 2
    top = nodes - 1.0
    spread = max(0.5, top / 4)
    pos = {0: (0.0, top / 2 + spread), 1: (0.0, top / 2 - spread)}
    for k in range(nodes):
        pos[k + 2] = (2.4, top - k)
    out = (4.2, top / 2)
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 1.4 + 0.9 * max(nodes, 2)))
    for ax, cell in zip(axes, ("normal", "reduce")):
        for e, (op, i) in enumerate(structure[cell]):
            (x0, y0), (x1, y1) = pos[int(i)], pos[e // 2 + 2]
            rad = 0.0 if x0 != x1 else -0.45  # node to node: an arc bulging right
            ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "-|>", "color": "0.35", "shrinkA": 11,
                                                           "shrinkB": 11, "connectionstyle": f"arc3,rad={rad}"})
            # the label sits near the node (inputs' edges cross in the middle) or on the arc's middle (a quadratic
            # Bezier: half the control point's offset)
            mx, my = ((x0 + 0.7 * (x1 - x0), y0 + 0.7 * (y1 - y0)) if rad == 0.0
                      else ((x0 + x1) / 2 + 0.5 * rad * (y1 - y0), (y0 + y1) / 2 - 0.5 * rad * (x1 - x0)))
            ax.text(mx, my, str(op).replace("_", " "), fontsize=6.5, ha="center", va="center",
                    bbox={"boxstyle": "round,pad=0.12", "fc": "white", "ec": "none", "alpha": 0.9}, zorder=5)
        for k in range(nodes):
            ax.annotate("", out, pos[k + 2], arrowprops={"arrowstyle": "-|>", "color": "#9ecae1", "lw": 0.8,
                                                         "shrinkA": 11, "shrinkB": 13})
        for i, (x, y) in pos.items():
            label = "c(k-2)" if i == 0 else "c(k-1)" if i == 1 else str(i - 2)
            ax.scatter(x, y, s=650, c="#a1d99b" if i < 2 else "#c6dbef", edgecolors="black", linewidths=0.5,
                       zorder=3)
            ax.text(x, y, label, fontsize=7, ha="center", va="center", zorder=4)
        ax.scatter(*out, s=650, c="#fdd49e", edgecolors="black", linewidths=0.5, zorder=3)
        ax.text(*out, "c(k)", fontsize=7, ha="center", va="center", zorder=4)
        ax.set_xlim(-0.6, 4.8)
        ax.set_ylim(-0.6, top + 0.6)
        ax.set_aspect("equal")
        ax.axis("off")
        what = "normal cell" if cell == "normal" else "reduction cell (ops on c(k-2), c(k-1): stride 2)"
        ax.set_title(what, fontsize=9)
    fig.suptitle(f"{genotype.name or genotype.space}  [{genotype.archid}]  (c(k) = concat of the nodes)",
                 fontsize=9)
    return save_figure(plt, fig, path)


def draw_nekrasov(genotype: Genotype, path: str | Path) -> Path:
    """The decoder (paper Fig. 2 style: encoder outputs, the three blocks and what each reads, the head) next to
    the cell (Fig. 9 style: o1 on the input, each branch's two operations and their sum, the summed output)."""
    from ..spaces.nekrasov.cell import cell_outputs
    from ..spaces.nekrasov.encoding import ENCODER_SCALES, head_inputs

    plt = pyplot()
    structure = genotype.structure
    connections, cell = structure["connections"], structure["cell"]
    n_enc, n_blocks = len(ENCODER_SCALES), len(connections)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13.0, 4.2), gridspec_kw={"width_ratios": [5, 8]})

    pos = {i: (0.0, float(i)) for i in range(n_enc)}  # the encoder's outputs, finest on top
    scales = list(ENCODER_SCALES)
    for k, (i, j) in enumerate(connections):
        scales.append(min(scales[i], scales[j]))
        pos[n_enc + k] = (1.6 + 1.3 * k, 0.5 + k)
    head = (1.6 + 1.3 * n_blocks, 1.5)
    for k, pair in enumerate(connections):
        for m, i in enumerate(pair):
            (x0, y0), (x1, y1) = pos[int(i)], pos[n_enc + k]
            ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "-|>", "color": "#4a6fa5", "lw": 1.2,
                                                           "shrinkA": 12, "shrinkB": 12,
                                                           "connectionstyle": f"arc3,rad={0.12 if m else -0.12}"})
    for i in head_inputs(connections):
        ax.annotate("", head, pos[i], arrowprops={"arrowstyle": "-|>", "color": "#2ca02c", "lw": 1.0, "shrinkA": 12,
                                                  "shrinkB": 14})
    for i, (x, y) in pos.items():
        label = f"1/{ENCODER_SCALES[i]}" if i < n_enc else f"block {i - n_enc}\n1/{scales[i]}"
        ax.scatter(x, y, s=900, c="#a1d99b" if i < n_enc else "#c6dbef", edgecolors="black", linewidths=0.5,
                   zorder=3)
        ax.text(x, y, label, fontsize=7, ha="center", va="center", zorder=4)
    ax.scatter(*head, s=900, c="#fdd49e", edgecolors="black", linewidths=0.5, zorder=3)
    ax.text(*head, "head", fontsize=7, ha="center", va="center", zorder=4)
    ax.text(0.0, -0.75, "encoder", fontsize=8, ha="center")
    ax.set_xlim(-0.6, head[0] + 0.6)
    ax.set_ylim(n_enc - 0.4, -1.0)
    ax.axis("off")
    ax.set_title("decoder: each block = cell(a) + cell(b)", fontsize=9)

    cpos = {0: (0.0, 0.0), 1: (1.2, 0.9)}
    for b in range(1, len(cell["branches"]) + 1):
        x = 1.2 + 1.9 * b
        cpos[3 * b - 1], cpos[3 * b], cpos[3 * b + 1] = (x - 0.5, 0.7), (x - 0.5, -0.7), (x + 0.45, 0.0)
    out = (cpos[3 * len(cell["branches"]) + 1][0] + 1.3, 0.0)

    bx.set_xlim(-0.5, out[0] + 0.6)
    bx.set_ylim(-1.3, 1.4)

    def edge(src: int, dst: tuple[float, float], label: str | None, colour: str = "0.35", rad: float = 0.0) -> None:
        (x0, y0), (x1, y1) = cpos[src], dst
        bx.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "-|>", "color": colour, "shrinkA": 10,
                                                       "shrinkB": 10, "connectionstyle": f"arc3,rad={rad}"})
        if label:  # three quarters along the arc (matplotlib's quadratic Bezier, in display coordinates)
            (a, b), (c, d) = bx.transData.transform([(x0, y0), (x1, y1)])
            cx, cy = (a + c) / 2 + rad * (d - b), (b + d) / 2 - rad * (c - a)
            t = 0.75
            px = (1 - t) ** 2 * a + 2 * t * (1 - t) * cx + t ** 2 * c
            py = (1 - t) ** 2 * b + 2 * t * (1 - t) * cy + t ** 2 * d
            lx, ly = bx.transData.inverted().transform((px, py))
            bx.text(lx, ly, label.replace("_", " "), fontsize=6, ha="center", va="center",
                    bbox={"boxstyle": "round,pad=0.12", "fc": "white", "ec": "none", "alpha": 0.9}, zorder=5)

    edge(0, cpos[1], cell["op"])
    for b, branch in enumerate(cell["branches"], 1):
        for m, (i, op) in enumerate(zip(branch["inputs"], branch["ops"])):
            far = cpos[3 * b - 1 + m][0] - cpos[int(i)][0] > 1.5  # an arc past the nodes between
            edge(int(i), cpos[3 * b - 1 + m], op, rad=(0.25 if m else -0.25) if far else 0.0)
            edge(3 * b - 1 + m, cpos[3 * b + 1], None, colour="0.6")
    for p in cell_outputs(cell):
        edge(p, out, None, colour="#9ecae1", rad=0.2 if out[0] - cpos[p][0] > 2.0 else 0.0)
    for p, (x, y) in cpos.items():
        if p == 0:
            label, colour = "input", "#a1d99b"
        elif p == 1:
            label, colour = "o1", "#c6dbef"
        else:
            b, k = divmod(p - 2, 3)
            label, colour = ("+", "#fdd49e") if k == 2 else (f"{b + 1}.{k + 1}", "#e5e5e5")
        bx.scatter(x, y, s=420, c=colour, edgecolors="black", linewidths=0.5, zorder=3)
        bx.text(x, y, label, fontsize=7, ha="center", va="center", zorder=4)
    bx.scatter(*out, s=700, c="#fdd49e", edgecolors="black", linewidths=0.5, zorder=3)
    bx.text(*out, "out\n(sum)", fontsize=7, ha="center", va="center", zorder=4)
    bx.axis("off")
    bx.set_title("cell: o1 on the input, three branches of two operations summed; unread sums form the output",
                 fontsize=9)
    fig.suptitle(f"{genotype.name or genotype.space}  [{genotype.archid}]", fontsize=9)
    return save_figure(plt, fig, path)
