"""Decoding FasterSeg architecture parameters into branches of cells (paper Sec. 3, App. I).

* Path (``path_rule``): ``paper`` takes the downsampling positions of the branch
  ending at a final scale as those of highest joint from-down beta (the paper's
  footnote 2), over every position with a beta. ``authors`` reads them as the
  authors' released code did, over a restricted, partly mis-indexed set of
  positions (:func:`authors_path`); with it their released search output decodes
  to the published FasterSeg.
* Operators: argmax alpha of each cell on the path.
* Widths: argmax gamma of each cell's output node; the last cell outputs the
  head width.
* Skip removal (the authors' rules): a stride-1 cell whose best operator is
  ``skip`` is removed, but never all cells of the segment after a
  downsampling (the weakest such skip is replaced instead), and at most
  ``len - (round(len / 3) + 2 * final_scale_index)`` cells are removed (the
  strongest skips go). Every other ``skip`` becomes the next-best operator, so
  derived networks contain no ``skip``. With ``ignore_skip`` no cell is removed
  and every ``skip`` becomes the next-best operator (how the authors decoded
  their teacher).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .network import SCALES

# how a branch's downsampling positions are read from beta; results of different rules are different searches
PATH_RULES = ("paper", "authors")


def _node_has_two_inputs(l: int, j: int) -> bool:
    return j >= 1 and l - 1 >= j


def backtrace(betas: Sequence[np.ndarray | None], final: int, layers: int) -> list[int]:
    """Scale index of each cell's input along the path ending at scale index ``final`` (paper App. I).

    The downsampling positions are those of highest joint "from-down"
    probability, ``argmax_l beta0[1][l]`` or ``argmax_(l1<l2) beta0[1][l1] * beta0[2][l2]``
    (footnote 2); the from-same probabilities of the other cells are not
    multiplied in. Such a product over the whole path counts one factor per
    two-input node, so it favours staying at 1/8 until the last cells whatever
    beta learned, and random architectures decoded that way were nearly all
    1/8 backbones. Positions are restricted to two-input nodes (a one-input
    node has no beta) unless the branch is too short to have any; ties go to
    the earliest downsampling. ``betas[j][l - j - 1]`` holds the
    (from-down, from-same) probabilities of node (l, j).
    """
    if not 0 <= final <= min(2, layers - 1):
        raise ValueError(f"final scale index {final} is not reachable in {layers} layers")

    def down(l: int, j: int) -> float:
        return float(betas[j][l - j - 1][0])

    best: tuple[int, ...] = ()
    if final >= 1:
        # (l1, ..., l_final): the layer of the first cell at each coarser scale, strictly increasing
        choices = list(itertools.combinations(range(1, layers), final))
        scored = [ls for ls in choices if all(_node_has_two_inputs(l, j + 1) for j, l in enumerate(ls))]
        if scored:
            best = max(scored, key=lambda ls: (math.prod(down(l, j + 1) for j, l in enumerate(ls)),
                                               [-l for l in ls]))
        else:
            best = choices[0]  # too few layers for a choice: the only path downsamples at once
    return [sum(i >= l for l in best) for i in range(layers)]  # cell i's scale: downsamplings at or before i


def authors_path(betas: Sequence[np.ndarray | None], final: int, layers: int) -> list[int]:
    """Scale index of each cell along the branch ending at ``final``, read as the authors' code did.

    ``b16[k]``, ``b32[k]`` are the k-th stored rows of the 1/16 and 1/32 betas
    (``betas[1]``, ``betas[2]``). A 1/16 branch downsamples after cell
    ``d = argmax_{1 <= k <= len(b16) - 2} b16[k][0]``; a 1/32 branch after cells
    ``i + 1`` and ``j + 2`` for the ``(i, j)``, ``0 <= j <= layers - 5`` and
    ``1 <= i <= j - 2``, of largest ``b16[i][0] * b32[j][0]`` (strictly larger
    than earlier pairs; ``(0, 1)`` when the set is empty). Needs 5 or more layers.
    """
    if layers < 5:
        raise ValueError(f"the authors' path rule needs 5 or more layers, got {layers}")
    if not 0 <= final <= 2:
        raise ValueError(f"final scale index {final} is not one of 0, 1, 2")
    downs = [0] * (layers - 1)
    if final == 1:
        b16 = betas[1]
        downs[max(range(1, len(b16) - 1), key=lambda k: (float(b16[k][0]), -k))] = 1
    elif final == 2:
        b16, b32 = betas[1], betas[2]
        best, score = (0, 1), -math.inf
        for j in range(layers - 4):
            for i in range(1, j - 1):
                value = float(b16[i][0]) * float(b32[j][0])
                if value > score:
                    best, score = (i, j), value
        downs[best[0] + 1] = downs[best[1] + 2] = 1
    return [0] + list(itertools.accumulate(downs))


def decode_branch(alphas: Sequence[np.ndarray], betas: Sequence[np.ndarray | None],
                  gammas: Sequence[np.ndarray] | None, args: dict[str, Any], final: int,
                  chis: Sequence[int], head_chi: int, path_rule: str = "paper",
                  ignore_skip: bool = False) -> list[dict[str, Any]]:
    """Cells ``{"op", "scale", "chi"}`` of the branch ending at scale index ``final``.

    ``alphas[j]`` (rows = layers j..L-1) are operator probabilities, ``betas``
    as in :func:`backtrace`, ``gammas[j]`` width probabilities per node
    (rows from layer max(j, 1)); ``gammas=None`` means a single width.
    ``path_rule`` is one of PATH_RULES; ``ignore_skip`` keeps every cell.
    """
    layers, ops = int(args["layers"]), list(args["ops"])
    if path_rule not in PATH_RULES:
        raise ValueError(f"path_rule {path_rule!r} is not one of {PATH_RULES}")
    path = backtrace(betas, final, layers) if path_rule == "paper" else authors_path(betas, final, layers)
    probs = [np.asarray(alphas[path[i]][i - path[i]], dtype=np.float64).copy() for i in range(layers)]
    downs = [i < layers - 1 and path[i + 1] > path[i] for i in range(layers)]
    widths = []
    for i in range(layers - 1):
        j = path[i + 1]
        widths.append(chis[int(np.argmax(gammas[j][i + 1 - max(j, 1)]))] if gammas is not None else chis[-1])
    skip = ops.index("skip") if "skip" in ops else None
    removed: set[int] = set()
    if skip is not None and not ignore_skip:
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
