"""The Nekrasov space's genotype structure, its flat integer choices and the paper's integer encoding.

Structure::

    {"connections": [[3, 3], [3, 2], [3, 0]],
     "cell": {"op": "sep5x5_rate6",
              "branches": [{"inputs": [0, 0], "ops": ["conv3x3_rate3", "sep3x3"]},
                           {"inputs": [0, 2], "ops": ["sep5x5_rate6", "sep5x5_rate6"]},
                           {"inputs": [0, 5], "ops": ["conv3x3", "gap"]}]}}

Decoder pool: 0..3 are the encoder outputs at 1/4, 1/8, 1/16 and 1/32, block
k's output is 4 + k; ``connections[k]`` are the two pool entries block k
reads (0 .. 3 + k, with replacement). Cell pool (the paper's Fig. 9): 0 is
the cell's input, 1 the output of ``op`` on it; branch b (1..3) adds 3b - 1
(its first operation's output), 3b (its second's) and 3b + 1 (their sum), and
reads two positions in 0 .. 3b - 2 (with replacement). Operation names are
Table 4's abbreviations (``OPS``, in index order).

The paper's encoding (appendix A) is
``[[[c1, c2], [c3, c4], [c5, c6]], [o1, [i2, i3, o2, o3], [i4, i5, o4, o5], [i6, i7, o6, o7]]]`` with
operations as Table 4 indices. The flat choices are its 19 integers in that
order. Decisions: connections (no group: each pool size is its own kind,
the controller's separate heads), ``o*`` (group ``"op"``: 11 ways, Table 4),
cell positions ``i*`` (no group either: their sizes 2, 5, 8 grow with the
cell's pool as the connections' do). Every integer in range is an
architecture: there is no constraint beyond the sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import GenotypeError
from ..base import Decision
from .ops import OPS

ENCODER_SCALES = (4, 8, 16, 32)
BLOCKS = 3  # pairs of pool entries the decoder merges (the paper's first hyper-parameter)
BRANCHES = 3  # sampled pairs inside the cell (its second)


def pool_size(block: int) -> int:
    """Entries block ``block`` may read: the encoder's outputs and the earlier blocks'."""
    return len(ENCODER_SCALES) + block


def cell_pool_size(branch: int) -> int:
    """Positions cell branch ``branch`` (1-based, the paper's) may read: input, o1, three per earlier branch."""
    return 3 * branch - 1


def pool_name(i: int) -> str:
    """A decoder pool entry in words."""
    n = len(ENCODER_SCALES)
    return f"encoder 1/{ENCODER_SCALES[i]}" if i < n else f"block {i - n}"


def cell_position_name(p: int) -> str:
    """A cell pool position in words."""
    if p == 0:
        return "input"
    if p == 1:
        return "o1"
    branch, k = divmod(p - 2, 3)
    return f"branch {branch + 1} " + ("sum" if k == 2 else f"op {k + 1}")


def _connection_legend(block: int) -> str:
    return "pool: 0..3 = encoder 1/4, 1/8, 1/16, 1/32" + (f", 4..{3 + block} = blocks 0..{block - 1}" if block else "")


def _cell_legend(branch: int) -> str:
    return "cell positions: " + ", ".join(f"{p} = {cell_position_name(p)}" for p in range(cell_pool_size(branch)))


def choice_spec() -> list[Decision]:
    """The 19 decisions, in the paper's order (see the module docstring)."""
    spec, n = [], 1
    for k in range(BLOCKS):
        for _ in range(2):
            spec.append(Decision(f"block{k}.c{n}", pool_size(k), _connection_legend(k)))
            n += 1
    spec.append(Decision("cell.o1", len(OPS), group="op"))
    for b in range(1, BRANCHES + 1):
        i, size = 2 * b, cell_pool_size(b)
        spec += [Decision(f"cell.branch{b}.i{i}", size, _cell_legend(b)),
                 Decision(f"cell.branch{b}.i{i + 1}", size, _cell_legend(b)),
                 Decision(f"cell.branch{b}.o{i}", len(OPS), group="op"),
                 Decision(f"cell.branch{b}.o{i + 1}", len(OPS), group="op")]
    return spec


def paper_paths() -> list[str]:
    """Where each flat choice sits in the paper's nested list, e.g. ``[1][2][0]`` for i4."""
    paths = [f"[0][{k}][{j}]" for k in range(BLOCKS) for j in range(2)] + ["[1][0]"]
    return paths + [f"[1][{b}][{j}]" for b in range(1, BRANCHES + 1) for j in range(4)]


def structure_of(values: Sequence[int]) -> dict[str, Any]:
    """The structure of 19 in-range integers (the flat choices)."""
    connections = [[values[2 * k], values[2 * k + 1]] for k in range(BLOCKS)]
    pos = 2 * BLOCKS
    cell: dict[str, Any] = {"op": OPS[values[pos]], "branches": []}
    for b in range(BRANCHES):
        i0, i1, o0, o1 = values[pos + 1 + 4 * b:pos + 5 + 4 * b]
        cell["branches"].append({"inputs": [i0, i1], "ops": [OPS[o0], OPS[o1]]})
    return {"connections": connections, "cell": cell}


def encode(structure: dict[str, Any]) -> list[int]:
    """The flat choices of a checked structure: the paper's integers in order."""
    out = [i for pair in structure["connections"] for i in pair]
    cell = structure["cell"]
    out.append(OPS.index(cell["op"]))
    for branch in cell["branches"]:
        out += list(branch["inputs"]) + [OPS.index(op) for op in branch["ops"]]
    return out


def _index_list(value: Any, n: int) -> bool:
    return isinstance(value, list) and len(value) == n and all(type(v) is int for v in value)


def check_structure(structure: Any, source: str) -> None:
    """Raise GenotypeError naming the field if ``structure`` is not an architecture of the space."""
    if not isinstance(structure, dict) or set(structure) != {"connections", "cell"}:
        raise GenotypeError(f"{source}: field 'structure' must have exactly the keys 'connections' and 'cell'")
    connections = structure["connections"]
    if not isinstance(connections, list) or len(connections) != BLOCKS:
        raise GenotypeError(f"{source}: field 'structure.connections' must list {BLOCKS} pairs of pool indices")
    for k, pair in enumerate(connections):
        if not _index_list(pair, 2) or not all(0 <= i < pool_size(k) for i in pair):
            raise GenotypeError(f"{source}: field 'structure.connections[{k}]' is {pair!r}; block {k} reads two "
                                f"entries of 0..{pool_size(k) - 1} ({_connection_legend(k)})")
    cell = structure["cell"]
    if not isinstance(cell, dict) or set(cell) != {"op", "branches"}:
        raise GenotypeError(f"{source}: field 'structure.cell' must be an object with keys op, branches")
    if cell["op"] not in OPS:
        raise GenotypeError(f"{source}: field 'structure.cell.op' is {cell['op']!r}; one of {', '.join(OPS)}")
    branches = cell["branches"]
    if not isinstance(branches, list) or len(branches) != BRANCHES:
        raise GenotypeError(f"{source}: field 'structure.cell.branches' must list {BRANCHES} branches")
    for b, branch in enumerate(branches, 1):
        at = f"structure.cell.branches[{b - 1}]"
        if not isinstance(branch, dict) or set(branch) != {"inputs", "ops"}:
            raise GenotypeError(f"{source}: field '{at}' must be an object with keys inputs, ops")
        inputs, ops = branch["inputs"], branch["ops"]
        if not _index_list(inputs, 2) or not all(0 <= i < cell_pool_size(b) for i in inputs):
            raise GenotypeError(f"{source}: field '{at}.inputs' is {inputs!r}; branch {b} reads two positions of "
                                f"0..{cell_pool_size(b) - 1} ({_cell_legend(b)})")
        if not isinstance(ops, list) or len(ops) != 2 or any(op not in OPS for op in ops):
            raise GenotypeError(f"{source}: field '{at}.ops' is {ops!r}; two operations of {', '.join(OPS)}")


def flatten_paper(encoding: Any) -> list[int]:
    """The 19 integers of the paper's nested list, in order; GenotypeError names the first bad position."""
    shape = "[[[c1, c2], [c3, c4], [c5, c6]], [o1, [i2, i3, o2, o3], [i4, i5, o4, o5], [i6, i7, o6, o7]]]"
    if not isinstance(encoding, list) or len(encoding) != 2:
        raise GenotypeError(f"paper encoding: expected two lists, connections and cell: {shape}")
    connections, cell = encoding
    if not isinstance(connections, list) or len(connections) != BLOCKS:
        raise GenotypeError(f"paper encoding[0]: expected {BLOCKS} pairs [[c1, c2], [c3, c4], [c5, c6]], "
                            f"got {connections!r}")
    for k, pair in enumerate(connections):
        if not isinstance(pair, list) or len(pair) != 2:
            raise GenotypeError(f"paper encoding[0][{k}]: expected a pair [c{2 * k + 1}, c{2 * k + 2}], got {pair!r}")
    if not isinstance(cell, list) or len(cell) != BRANCHES + 1:
        raise GenotypeError(f"paper encoding[1]: expected [o1, [i2, i3, o2, o3], [i4, i5, o4, o5], "
                            f"[i6, i7, o6, o7]], got {cell!r}")
    for b in range(1, BRANCHES + 1):
        if not isinstance(cell[b], list) or len(cell[b]) != 4:
            i = 2 * b
            raise GenotypeError(f"paper encoding[1][{b}]: expected [i{i}, i{i + 1}, o{i}, o{i + 1}], got {cell[b]!r}")
    flat = [v for pair in connections for v in pair] + [cell[0]] + [v for branch in cell[1:] for v in branch]
    for value, path, d in zip(flat, paper_paths(), choice_spec()):
        symbol = d.name.rsplit(".", 1)[1]
        if type(value) is not int or not 0 <= value < d.size:
            what = f" ({d.constraint})" if d.constraint else " (Table 4's operation indices)"
            raise GenotypeError(f"paper encoding{path} ({symbol}) is {value!r}; allowed 0..{d.size - 1}{what}")
    return flat


def to_paper_list(choices: Sequence[int]) -> list:
    """The paper's nested list of the 19 flat choices."""
    c = list(choices)
    pos = 2 * BLOCKS
    return [[c[2 * k:2 * k + 2] for k in range(BLOCKS)],
            [c[pos]] + [c[pos + 1 + 4 * b:pos + 5 + 4 * b] for b in range(BRANCHES)]]


def head_inputs(connections: Sequence[Sequence[int]]) -> list[int]:
    """Decoder pool entries the head concatenates: the block outputs no later block reads (the last always)."""
    n = len(ENCODER_SCALES)
    read = {i for pair in connections for i in pair}
    return [n + k for k in range(len(connections)) if n + k not in read]
