"""Decoding FasterSeg architecture parameters into branches of cells (paper Sec. 3, App. I).

* Path: the downsampling positions of the branch ending at a final scale are
  back-traced through beta. segnas takes the path of highest probability, the
  product of the chosen (from-down / from-same) beta of every node on it, by
  dynamic programming; the authors' code searched a restricted set of
  positions. A node with one input contributes probability 1.
* Operators: argmax alpha of each cell on the path.
* Widths: argmax gamma of each cell's output node; the last cell outputs the
  head width.
* Skip removal (the authors' rules): a stride-1 cell whose best operator is
  ``skip`` is removed, but never all cells of the segment after a
  downsampling (the weakest such skip is replaced instead), and at most
  ``len - (round(len / 3) + 2 * final_scale_index)`` cells are removed (the
  strongest skips go). Every other ``skip`` becomes the next-best operator, so
  derived networks contain no ``skip``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .network import SCALES


def _node_has_two_inputs(l: int, j: int) -> bool:
    return j >= 1 and l - 1 >= j


def backtrace(betas: Sequence[np.ndarray | None], final: int, layers: int) -> list[int]:
    """Scale index of each cell's input along the most probable path ending at scale index ``final``.

    ``betas[j][l - j - 1]`` holds the (from-down, from-same) probabilities of node (l, j).
    """
    if not 0 <= final <= min(2, layers - 1):
        raise ValueError(f"final scale index {final} is not reachable in {layers} layers")
    neg = -math.inf
    best = [[neg] * 3 for _ in range(layers)]
    came_down = [[False] * 3 for _ in range(layers)]
    best[0][0] = 0.0
    for l in range(1, layers):
        for j in range(min(l, 2) + 1):
            two = _node_has_two_inputs(l, j)
            b = betas[j][l - j - 1] if two else None
            same = best[l - 1][j] + (math.log(max(float(b[1]), 1e-30)) if two else 0.0) if l - 1 >= j else neg
            down = best[l - 1][j - 1] + (math.log(max(float(b[0]), 1e-30)) if two else 0.0) if j >= 1 else neg
            # ties keep the same-scale predecessor: downsampling happens as early as the path allows
            if down > same:
                best[l][j], came_down[l][j] = down, True
            else:
                best[l][j] = same
    path = [final]
    for l in range(layers - 1, 0, -1):
        j = path[-1]
        path.append(j - 1 if came_down[l][j] else j)
    path.reverse()
    return path


def decode_branch(alphas: Sequence[np.ndarray], betas: Sequence[np.ndarray | None],
                  gammas: Sequence[np.ndarray] | None, args: dict[str, Any], final: int,
                  chis: Sequence[int], head_chi: int) -> list[dict[str, Any]]:
    """Cells ``{"op", "scale", "chi"}`` of the branch ending at scale index ``final``.

    ``alphas[j]`` (rows = layers j..L-1) are operator probabilities, ``betas``
    as in :func:`backtrace`, ``gammas[j]`` width probabilities per node
    (rows from layer max(j, 1)); ``gammas=None`` means a single width.
    """
    layers, ops = int(args["layers"]), list(args["ops"])
    path = backtrace(betas, final, layers)
    probs = [np.asarray(alphas[path[i]][i - path[i]], dtype=np.float64).copy() for i in range(layers)]
    downs = [i < layers - 1 and path[i + 1] > path[i] for i in range(layers)]
    widths = []
    for i in range(layers - 1):
        j = path[i + 1]
        widths.append(chis[int(np.argmax(gammas[j][i + 1 - max(j, 1)]))] if gammas is not None else chis[-1])
    skip = ops.index("skip") if "skip" in ops else None
    removed: set[int] = set()
    if skip is not None:
        cand = [i for i in range(layers) if not downs[i] and int(np.argmax(probs[i])) == skip]
        bounds = [i for i in range(layers) if downs[i]] + [layers]
        for a, b in zip(bounds[:-1], bounds[1:]):
            segment = list(range(a + 1, b))
            if segment and all(i in cand for i in segment):
                weakest = min(segment, key=lambda i: (probs[i][skip], i))
                cand.remove(weakest)
        limit = max(0, layers - (int(round(layers / 3)) + 2 * final))
        removed = set(sorted(cand, key=lambda i: (-probs[i][skip], i))[:limit])
    cells: list[dict[str, Any]] = []
    for i in range(layers):
        if i in removed:
            continue
        p = probs[i]
        if skip is not None and int(np.argmax(p)) == skip:
            p = p.copy()
            p[skip] = -np.inf
        chi = widths[i] if i < layers - 1 else head_chi
        cells.append({"op": ops[int(np.argmax(p))], "scale": SCALES[path[i]], "chi": int(chi)})
    cells[-1]["chi"] = int(head_chi)  # when the last cell was removed, its predecessor feeds the head
    return cells


def target_score(acc: float, latency: float, target: float | None, exponent: float) -> float:
    """Branch-selection objective ACC * (LAT / T)^w (paper Sec. 3.4); T only rescales the score."""
    t = target if target else 1.0
    return float(acc) * (float(latency) / t) ** float(exponent)


def select(candidates: Sequence[dict[str, Any]], target: float | None, exponent: float) -> dict[str, Any]:
    """The candidate (dicts with ``miou`` and ``latency_ms``) of highest Target score; ties go to the faster."""
    return max(candidates, key=lambda c: (target_score(c["miou"], c["latency_ms"], target, exponent),
                                          -c["latency_ms"]))
