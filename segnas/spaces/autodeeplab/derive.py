"""Decoding Auto-DeepLab's discrete architecture from alpha and beta (paper Sec. 4.3).

Network level: beta as transition probabilities between scales from layer to
layer; Viterbi finds the path of maximum probability from the stem (at 1/4)
to any scale of the last layer, for any number of layers. Cell level: DARTS'
rule, shared with the other cell spaces (``segnas.spaces.cells.decode_cell``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from .network import SCALES

N_SCALES = len(SCALES)


def viterbi(probs: np.ndarray) -> tuple[list[int], float]:
    """Most probable path through the trellis and its log-probability.

    ``probs[l, js, d]``: probability that node (l-1, js) (the stem for l = 0,
    js = 0) moves in direction d (0: to js+1, 1: stay, 2: to js-1) into layer
    l; zero for moves that do not exist. Ties go to the earlier direction and,
    at the end, to the finer scale.
    """
    layers = probs.shape[0]
    with np.errstate(divide="ignore"):
        logp = np.log(probs)
    score = np.full(N_SCALES, -np.inf)
    score[0] = 0.0  # the stem
    back = np.zeros((layers, N_SCALES), dtype=int)
    for layer in range(layers):
        new = np.full(N_SCALES, -np.inf)
        for j in range(N_SCALES):
            for d in range(3):
                js = j - 1 + d
                if 0 <= js < N_SCALES and np.isfinite(score[js]) and np.isfinite(logp[layer, js, d]):
                    s = score[js] + logp[layer, js, d]
                    if s > new[j]:
                        new[j], back[layer, j] = s, js
        score = new
    j = int(np.argmax(score))
    best = float(score[j])
    path = [j]
    for layer in range(layers - 1, 0, -1):
        j = int(back[layer, j])
        path.append(j)
    return path[::-1], best


def path_log_prob(probs: np.ndarray, path: Sequence[int]) -> float:
    """log P(path) under the transition probabilities (``-inf`` for an invalid path)."""
    total, prev = 0.0, 0
    for layer, j in enumerate(path):
        d = {1: 0, 0: 1, -1: 2}.get(j - prev)
        if d is None or probs[layer, prev, d] <= 0:
            return float("-inf")
        total += float(np.log(probs[layer, prev, d]))
        prev = j
    return total


def brute_force_path(probs: np.ndarray) -> tuple[list[int], float]:
    """The best path by enumerating every one (3^L: for checking ``viterbi`` on small L)."""
    best, best_path = float("-inf"), None
    for path in itertools.product(range(N_SCALES), repeat=probs.shape[0]):
        s = path_log_prob(probs, path)
        if s > best:
            best, best_path = s, list(path)
    return best_path, best
