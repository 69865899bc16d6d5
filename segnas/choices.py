"""Architecture-choice primitives: the one mixed operator and input choice every supernet is built from.

A supernet keeps its architecture parameters in an :class:`ArchParameters`
(an ``nn.ParameterDict`` whose entries each declare what they are: a *softmax*
row per decision, independent *sigmoid* gates, or *pairwise* logits over pairs
of inputs), so strategies and diagnostics read the kind instead of assuming
softmax rows. The weights they turn into drive :class:`MixedOp` (a weighted
sum of candidate operators, optionally over a fraction of the channels with
the rest bypassing and a channel shuffle after, as PC-DARTS and DCNAS do) and
:class:`InputChoice` (a weighted sum of candidate inputs). Straight-through
Gumbel sampling (:func:`gumbel_hard`) draws hard choices whose gradients
still reach the logits. A search that splits one decision into groups of
options (DOTS) weighs them with :func:`group_softmax`; a search over pairs of
inputs (DOTS' topology search) with :func:`pairwise_input_weights`, on the
cells a supernet describes as :class:`CellDag`. A strategy may replace how a
parameter turns into weights (:meth:`ArchParameters.relax`) and say which
options can still carry weight, so the supernet skips the others' work.

Randomness comes from the caller's CPU ``torch.Generator`` (so runs are
seeded and resumable whatever the device) and is moved to the logits' device.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("softmax", "sigmoid", "pairwise")


@dataclass(frozen=True)
class ChoiceSpec:
    """What one architecture parameter decides.

    ``options`` label the last dimension (operators, widths, inputs, or for
    ``pairwise`` the input pairs); ``groups`` name subsets of the options (e.g.
    parameter-free vs parametric operators, for grouped search); ``where`` says
    where the rows sit in the supernet; ``mask`` marks the valid options per row
    where not all are (invalid ones get weight 0; a supernet that reads it every
    step keeps its own copy as a buffer on its device).
    """

    name: str
    kind: str
    options: tuple[str, ...]
    groups: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    where: str = ""
    mask: torch.Tensor | None = None


class ArchParameters(nn.ParameterDict):
    """The architecture parameters of a supernet, each with its declared :class:`ChoiceSpec`."""

    def __init__(self) -> None:
        super().__init__()
        self.specs: dict[str, ChoiceSpec] = {}
        self._relaxed: dict[str, Callable[[], torch.Tensor]] = {}
        self._active: dict[str, list[tuple[int, ...]]] = {}

    def declare(self, name: str, init: torch.Tensor, kind: str, options: Sequence[str],
                groups: Mapping[str, Sequence[int]] | None = None, where: str = "",
                mask: torch.Tensor | None = None) -> nn.Parameter:
        """Add parameter ``name`` (initial logits ``init``; last dimension = ``options``, or pairs of them)."""
        if kind not in KINDS:
            raise ValueError(f"choice kind {kind!r} is unknown; one of {', '.join(KINDS)}")
        labels = tuple(options)
        if kind == "pairwise":
            labels = tuple(f"{a}+{b}" for a, b in itertools.combinations(labels, 2))
        width = 1 if kind == "sigmoid" and init.dim() == 0 else init.shape[-1]
        if kind != "sigmoid" and width != len(labels):
            raise ValueError(f"{name}: last dimension {width} does not match its {len(labels)} options")
        self[name] = nn.Parameter(init)
        self.specs[name] = ChoiceSpec(name, kind, labels, {g: tuple(ix) for g, ix in (groups or {}).items()},
                                      where, mask)
        return self[name]

    def spec_list(self, names: Sequence[str] | None = None) -> list[ChoiceSpec]:
        """Specs in the order of ``names`` (default: every parameter, in insertion order)."""
        return [self.specs[n] for n in (names if names is not None else list(self.keys()))]

    def relax(self, name: str, weights: Callable[[], torch.Tensor] | None,
              active: Sequence[Sequence[int]] | None = None) -> None:
        """Let ``weights()`` compute what parameter ``name`` weighs its options with (a strategy's own
        relaxation, e.g. DOTS' grouped softmax); ``active[row]`` lists the options that may have a non-zero
        weight in that row (None: all). ``weights=None`` restores the declared kind's weights."""
        if name not in self.specs:
            raise KeyError(f"no architecture parameter {name!r}; declared: {', '.join(self.specs)}")
        self._relaxed.pop(name, None)
        self._active.pop(name, None)
        if weights is not None:
            self._relaxed[name] = weights
            if active is not None:
                self._active[name] = [tuple(int(k) for k in row) for row in active]

    def active(self, name: str) -> list[tuple[int, ...]] | None:
        """Per row, the options that can carry weight under the current relaxation (None: every option):
        a mixed operator computes only those."""
        return self._active.get(name)

    def weights(self, name: str) -> torch.Tensor:
        """The weights parameter ``name`` gives its options (see :func:`choice_weights`; a relaxation a
        strategy set with :meth:`relax` replaces them)."""
        if name in self._relaxed:
            return self._relaxed[name]()
        spec = self.specs[name]
        mask = None if spec.mask is None else spec.mask.to(self[name].device)
        return choice_weights(self[name], spec.kind, mask)


def choice_weights(logits: torch.Tensor, kind: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the last dimension (masked options exactly 0), sigmoid gates, or pair probabilities."""
    if kind == "sigmoid":
        return torch.sigmoid(logits)
    if kind not in ("softmax", "pairwise"):
        raise ValueError(f"choice kind {kind!r} is unknown; one of {', '.join(KINDS)}")
    if mask is None:
        return F.softmax(logits, dim=-1)
    probs = F.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.nan_to_num(probs, nan=0.0)  # rows with no valid option at all


def group_softmax(logits: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """A softmax over each group of options on its own (DOTS' grouped operation search): each group's weights
    sum to 1, so groups do not compete; options in no group get 0."""
    out = torch.zeros_like(logits)
    for group in groups:
        index = torch.tensor(list(group), dtype=torch.long, device=logits.device)
        out = out.index_copy(-1, index, F.softmax(logits.index_select(-1, index), dim=-1))
    return out


def best_in_groups(weights: torch.Tensor, groups: Sequence[Sequence[int]]) -> list[list[int]]:
    """Per row of a 2-D ``weights``, the strongest option of every group (ties: the group's first listed),
    in the groups' order: the operators an edge keeps for the topology search."""
    rows = weights.detach().cpu().double()
    return [[int(group[int(torch.argmax(row[list(group)]))]) for group in groups] for row in rows]


def uniform_weights(logits: torch.Tensor) -> torch.Tensor:
    """Every option equally likely (a relaxation that ignores this decision)."""
    return torch.full_like(logits, 1.0 / logits.shape[-1])


def gumbel_hard(logits: torch.Tensor, generator: torch.Generator | None = None, tau: float = 1.0) -> torch.Tensor:
    """Straight-through Gumbel-softmax: one-hot in the forward pass, the softmax's gradient backward.

    The noise is drawn on the CPU from ``generator`` and moved to the logits' device.
    """
    u = torch.rand(logits.shape, generator=generator).clamp_(1e-10, 1 - 1e-10).to(logits.device)
    y = F.softmax((F.log_softmax(logits, -1) - torch.log(-torch.log(u))) / tau, -1)
    one = F.one_hot(y.argmax(-1), logits.shape[-1]).to(y.dtype)
    return one - y.detach() + y


def pairs(n: int) -> list[tuple[int, int]]:
    """The pairs of ``n`` inputs, in the order of a pairwise parameter's last dimension."""
    return list(itertools.combinations(range(n), 2))


def pairwise_input_weights(pair_logits: torch.Tensor, n: int) -> torch.Tensor:
    """Weight of each of ``n`` inputs: the summed probability of the pairs holding it (they sum to 2).

    Topology search over edge pairs (DOTS) keeps two inputs per node; decoding
    takes the most probable pair.
    """
    probs = F.softmax(pair_logits, dim=-1)
    index = torch.tensor(pairs(n), device=pair_logits.device)  # (pairs, 2)
    out = probs.new_zeros(*probs.shape[:-1], n)
    return out.index_add(-1, index[:, 0], probs).index_add(-1, index[:, 1], probs)


@dataclass(frozen=True)
class CellDag:
    """A cell of a supernet as a DAG: each node sums edges from earlier states.

    ``alpha`` names the softmax parameter whose rows are the cell's edges (options:
    operators); ``nodes[k]`` lists node k's incoming edges as (row of ``alpha``, input
    state), inputs in the order pair weights number them. A strategy that picks two
    inputs per node (DOTS) needs nothing else from the space.
    """

    alpha: str
    nodes: tuple[tuple[tuple[int, int], ...], ...]

    def rows(self) -> int:
        return sum(len(node) for node in self.nodes)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal groups (mixes the bypassed and the operated channels)."""
    if groups == 1:
        return x
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _starts_with_relu(op: nn.Module) -> bool:
    return isinstance(op, nn.Sequential) and len(op) > 0 and isinstance(op[0], nn.ReLU)


def _after_first(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    for layer in itertools.islice(seq, 1, None):
        x = layer(x)
    return x


class MixedOp(nn.Module):
    """sum_k w_k op_k(x) over candidate operators; ``None`` candidates (no connection) are left out.

    ``partial = k > 1`` runs the operators on the first 1/k of the channels
    (build them for that many); the rest bypass (max-pooled where ``stride`` is
    2) and a channel shuffle of k groups follows. Operators that start with a
    ReLU of the same input share one. With ``width``, slimmable operators are set
    to (input channels, ``width``) first.
    """

    def __init__(self, ops: Sequence[nn.Module | None], partial: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.index = [k for k, op in enumerate(ops) if op is not None]
        self.ops = nn.ModuleList(op for op in ops if op is not None)
        self.pre_relu = [_starts_with_relu(op) for op in self.ops]
        self.shares_relu = sum(self.pre_relu) > 1
        self.partial, self.stride = int(partial), int(stride)
        if self.partial < 1:
            raise ValueError(f"partial must be >= 1, got {partial}")

    def forward(self, x: torch.Tensor, weights: torch.Tensor, width: int | None = None,
                only: int | Collection[int] | None = None) -> torch.Tensor:
        """``only = k`` runs candidate k alone (still times ``weights[k]``): what a one-hot row computes,
        without the others' zero-weighted work (a fixed architecture scored in its supernet); a collection
        of candidates runs those (the options a relaxation leaves active)."""
        keep = None if only is None else ({int(only)} if isinstance(only, numbers.Integral) else set(map(int, only)))
        bypass = None
        if self.partial > 1:
            c = x.shape[1] // self.partial
            x, bypass = x[:, :c], x[:, c:]
        relu = F.relu(x) if self.shares_relu else None
        out = None
        for k, op, pre in zip(self.index, self.ops, self.pre_relu):
            if keep is not None and k not in keep:
                continue
            if width is not None:
                op.set_width(x.shape[1], width)
            y = (_after_first(op, relu) if pre and relu is not None else op(x)) * weights[k]
            out = y if out is None else out + y
        if out is None:
            raise ValueError(f"MixedOp: candidates {sorted(keep or [])} are not among its operators {self.index}")
        if bypass is None:
            return out
        if self.stride > 1:
            bypass = F.max_pool2d(bypass, self.stride, self.stride, ceil_mode=True)
        return channel_shuffle(torch.cat([out, bypass], 1), self.partial)


class InputChoice(nn.Module):
    """sum_i w_i x_i over candidate inputs (``None`` inputs, e.g. nodes that do not exist, are left out)."""

    def forward(self, inputs: Sequence[torch.Tensor | None], weights: torch.Tensor) -> torch.Tensor:
        out = None
        for i, x in enumerate(inputs):
            if x is None:
                continue
            y = weights[i] * x
            out = y if out is None else out + y
        if out is None:
            raise ValueError("InputChoice needs at least one input")
        return out


__all__ = ["KINDS", "ArchParameters", "CellDag", "ChoiceSpec", "InputChoice", "MixedOp", "best_in_groups",
           "channel_shuffle", "choice_weights", "group_softmax", "gumbel_hard", "pairs", "pairwise_input_weights",
           "uniform_weights"]
