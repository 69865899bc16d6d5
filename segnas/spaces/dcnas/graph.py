"""The DCNAS node grid and its connections, in the one order the supernet, decoding and encoding share.

Node (l, j) is layer l (1 .. L) at scale index j (0 = 1/4 .. 3 = 1/32); layer
0 is the stem's four outputs. Node (l, j) may take any node of an earlier layer
at any scale: its candidate sources are (l', j') for l' < l, j' = 0..3, in
that order (``sources``), 4 l of them. Connections are numbered target-major
in node order (layer, then scale), so node (l, j)'s candidates are the slice
``offset(l, j) .. offset(l, j) + 4 l`` of the flat beta vector and of the
genotype's keep-decisions; there are 8 L (L + 1) in all.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

SCALES = (4, 8, 16, 32)
N_SCALES = len(SCALES)

Node = tuple[int, int]  # (layer, scale index)


def nodes(layers: int) -> Iterator[Node]:
    """Every searchable node, layer by layer, finest scale first (the stem's layer 0 is not one)."""
    for layer in range(1, layers + 1):
        for j in range(N_SCALES):
            yield (layer, j)


def sources(layer: int) -> list[Node]:
    """Candidate inputs of a node of ``layer``: every node of layers 0 .. layer - 1, at every scale."""
    return [(src, j) for src in range(layer) for j in range(N_SCALES)]


def offset(layer: int, j: int) -> int:
    """Index of node (layer, j)'s first candidate connection in the flat order."""
    return 8 * layer * (layer - 1) + 4 * layer * j


def n_connections(layers: int) -> int:
    """Candidate connections of an L-layer grid: sum over layers of 4 nodes x 4 l sources."""
    return 8 * layers * (layers + 1)


def connections(layers: int) -> list[tuple[Node, Node]]:
    """(target, source) of every candidate connection, in the flat order."""
    return [(node, src) for node in nodes(layers) for src in sources(node[0])]


def node_index(layer: int, j: int) -> int:
    """Row of node (layer, j) in per-node tensors (alpha)."""
    return (layer - 1) * N_SCALES + j


def reached(choose: Callable[[int, int], list[Node]], layers: int) -> dict[Node, list[Node]]:
    """Breadth-first from the last layer's four nodes (the head's inputs) back towards the stem.

    ``choose(layer, j)`` gives the inputs a node keeps; the nodes they name are
    visited in turn (the stem, layer 0, ends a branch). Nodes no visited node
    takes as input are never visited: they are the ones that cannot reach the head.
    """
    queue = deque((layers, j) for j in range(N_SCALES))
    seen = set(queue)
    out: dict[Node, list[Node]] = {}
    while queue:
        node = queue.popleft()
        out[node] = list(choose(*node))
        for src in out[node]:
            if src[0] > 0 and src not in seen:
                seen.add(src)
                queue.append(src)
    return dict(sorted(out.items()))


def scale_name(j: int) -> str:
    """``1/4`` .. ``1/32`` for scale index 0 .. 3."""
    return f"1/{SCALES[j]}"


def node_name(node: Node) -> str:
    """``stem@1/8``, ``layer3@1/16``: how messages and decision names call a node."""
    layer, j = node
    return f"{'stem' if layer == 0 else f'layer{layer}'}@{scale_name(j)}"
