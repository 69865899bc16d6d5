"""DCNAS building blocks and the derived network (supplement Sec. 1.1, 1.2).

Stem: a 7x7 conv with ``stem_channels`` (32) filters at stride 2, then four
3x3 convs of stride 2 in a chain, with F, 2F, 4F, 8F filters: their outputs
are the 1/4, 1/8, 1/16 and 1/32 inputs (layer 0). The paper names the
strides of the four 3x3 convs only; stride 2 on the 7x7 is segnas' choice, the
one that puts the first 3x3 output at 1/4. Every unit is conv - BN - ReLU.

A node at scale index j has ``F * 2^j`` channels. Its input is the sum of its
kept inputs, each passed through a shape-alignment layer (the paper's
"bilinear upsampling or 3x3 conv with proper stride, then a 1x1 conv for the
channels"); where the paper is silent segnas chooses, per input from scale j'
into scale j:

* every unit is ReLU - conv - BN (pre-activation, as Auto-DeepLab's
  transitions): node outputs are sums of BN outputs and residuals, not
  activations, and the BN at the end of every alignment keeps each input of a
  sum at unit scale, so sums do not grow from layer to layer;
* same scale: ReLU - 1x1 - BN (the channels already match; the 1x1 gives every
  connection its own map and its own BN, for the reason above);
* going up (j' > j): ReLU - 1x1 - BN at the source's resolution, then bilinear
  upsampling (align_corners=True) to the target size. Both are linear after
  the ReLU, so the 1x1 runs on the small map; inputs of a node from the same
  coarser scale are summed before one shared upsampling (the same result);
* going down by d scales (``down_align``): ``chain`` (default) is d times
  ReLU - stride-2 3x3 - BN keeping the source's channels, then ReLU - 1x1 - BN
  to the node's channels; ``single`` is one ReLU - 3x3 - BN of stride 2^d, then
  the 1x1 (a literal "3x3 conv with proper stride"; at stride 4 or 8 a 3x3
  kernel skips pixels). Both give ceil-halved sizes, as the stem does.

``fusion``: ``sum`` (default) adds the aligned inputs; ``mean`` divides the
sum by their number. The node's operator follows. Head: the last layer's four
nodes, ReLU'd, upsampled to 1/4 and concatenated, a 3x3 conv - BN - ReLU to
``head_channels``, a 1x1 conv (with bias) to the classes, bilinear
upsampling to the input size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...choices import InputChoice
from ...ops import ConvBNReLU, ReLUConvBN, cell_op, mobile_op, parse_mbconv, upsample_to
from .graph import N_SCALES, SCALES, Node

DOWN_ALIGNS = ("chain", "single")
FUSIONS = ("sum", "mean")


def node_channels(filter_multiplier: int, j: int) -> int:
    """Channels of a node at scale index ``j``: F * 2^j (F at 1/4 .. 8F at 1/32)."""
    return filter_multiplier * 2 ** j


def node_op(name: str, c: int, act: str = "hswish") -> nn.Module:
    """A node's operator on ``c`` channels: an MBConv by name, else an Auto-DeepLab cell operator."""
    return mobile_op(name, c, act=act) if parse_mbconv(name) else cell_op(name, c)


def alignment(c_in: int, c_out: int, j_src: int, j_dst: int, down: str = "chain") -> nn.Module:
    """The shape-alignment layer from scale ``j_src`` to ``j_dst`` (going up: without the upsampling)."""
    if j_src >= j_dst:
        return ReLUConvBN(c_in, c_out, 1)
    d = j_dst - j_src
    if down == "chain":
        steps = [ReLUConvBN(c_in, c_in, 3, stride=2) for _ in range(d)]
    elif down == "single":
        steps = [ReLUConvBN(c_in, c_in, 3, stride=2 ** d)]
    else:
        raise ValueError(f"down_align {down!r}: choose one of {', '.join(DOWN_ALIGNS)}")
    return nn.Sequential(*steps, ReLUConvBN(c_in, c_out, 1))


def _total(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


class Fusion(nn.Module):
    """A node's input: its sources aligned to its shape and summed (weighted by ``weights`` in the supernet)."""

    def __init__(self, sources: Sequence[Node], j: int, filter_multiplier: int, down: str = "chain",
                 fusion: str = "sum") -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion {fusion!r}: choose one of {', '.join(FUSIONS)}")
        self.sources = [tuple(s) for s in sources]
        c = node_channels(filter_multiplier, j)
        self.aligns = nn.ModuleList(alignment(node_channels(filter_multiplier, js), c, js, j, down)
                                    for _, js in self.sources)
        # inputs at the target size after alignment, and per coarser scale those sharing one upsampling
        self.direct = [i for i, (_, js) in enumerate(self.sources) if js <= j]
        self.up = [[i for i, (_, js) in enumerate(self.sources) if js == s] for s in range(j + 1, N_SCALES)]
        self.up = [group for group in self.up if group]
        self.scale = 1.0 / len(self.sources) if fusion == "mean" else 1.0
        self.merge = InputChoice()

    def _sum(self, outputs: Mapping[Node, torch.Tensor], idx: list[int], weights: torch.Tensor | None) -> torch.Tensor:
        xs = [self.aligns[i](outputs[self.sources[i]]) for i in idx]
        return _total(xs) if weights is None else self.merge(xs, [weights[i] for i in idx])

    def forward(self, outputs: Mapping[Node, torch.Tensor], size: Sequence[int],
                weights: torch.Tensor | None = None, only: Sequence[int] | None = None) -> torch.Tensor:
        """``only``: the positions (in ``sources``) to sum, the others left out as if their weight were 0."""
        direct, up = self.direct, self.up
        if only is not None:
            direct = [i for i in direct if i in only]
            up = [kept for kept in ([i for i in group if i in only] for group in up) if kept]
        parts = [self._sum(outputs, direct, weights)] if direct else []
        parts += [upsample_to(self._sum(outputs, group, weights), size) for group in up]
        out = _total(parts)
        return out * self.scale if self.scale != 1.0 else out


class Stem(nn.Module):
    """7x7 conv (stride 2) then four chained stride-2 3x3 convs: F, 2F, 4F, 8F channels at 1/4 .. 1/32."""

    def __init__(self, stem_channels: int, filter_multiplier: int) -> None:
        super().__init__()
        self.conv7 = ConvBNReLU(3, stem_channels, 7, stride=2)
        widths = [stem_channels] + [node_channels(filter_multiplier, j) for j in range(N_SCALES)]
        self.down = nn.ModuleList(ConvBNReLU(widths[j], widths[j + 1], 3, stride=2) for j in range(N_SCALES))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], self.conv7(x)
        for conv in self.down:
            h = conv(h)
            out.append(h)
        return out


class Head(nn.Module):
    """The last layer's four nodes upsampled to 1/4 and concatenated, 3x3 conv - BN - ReLU, 1x1 to classes."""

    def __init__(self, filter_multiplier: int, head_channels: int, num_classes: int) -> None:
        super().__init__()
        c_in = sum(node_channels(filter_multiplier, j) for j in range(N_SCALES))
        self.fuse = ConvBNReLU(c_in, head_channels, 3)
        self.cls = nn.Conv2d(head_channels, num_classes, 1, bias=True)

    def forward(self, feats: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        at4 = feats[0].shape[-2:]
        x = torch.cat([F.relu(upsample_to(f, at4)) for f in feats], 1)
        return upsample_to(self.cls(self.fuse(x)), size)


def node_key(node: Node) -> str:
    return f"{node[0]}_{node[1]}"


class DCNASNet(nn.Module):
    """The derived network: the kept nodes with their operators and kept connections (no supernet code)."""

    def __init__(self, nodes: Sequence[dict], num_classes: int, filter_multiplier: int, stem_channels: int = 32,
                 head_channels: int = 256, down_align: str = "chain", fusion: str = "sum",
                 activation: str = "hswish") -> None:
        super().__init__()
        f = filter_multiplier
        self.order: list[Node] = []
        self.stem = Stem(stem_channels, f)
        self.fusions, self.ops = nn.ModuleDict(), nn.ModuleDict()
        index = {s: j for j, s in enumerate(SCALES)}
        for node in nodes:
            key = (int(node["layer"]), index[node["scale"]])
            srcs = [(int(layer), index[scale]) for layer, scale in node["inputs"]]
            self.order.append(key)
            self.fusions[node_key(key)] = Fusion(srcs, key[1], f, down_align, fusion)
            self.ops[node_key(key)] = node_op(node["op"], node_channels(f, key[1]), activation)
        self.layers = max(layer for layer, _ in self.order)
        self.head = Head(f, head_channels, num_classes)
        self.aux_heads = nn.ModuleDict()  # none: the paper trains with one loss

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The last layer's outputs at 1/4 .. 1/32."""
        stem = self.stem(x)
        sizes = [t.shape[-2:] for t in stem]
        out: dict[Node, torch.Tensor] = {(0, j): t for j, t in enumerate(stem)}
        for node in self.order:
            key = node_key(node)
            out[node] = self.ops[key](self.fusions[key](out, sizes[node[1]]))
        return [out[(self.layers, j)] for j in range(N_SCALES)]

    def forward(self, x: torch.Tensor, aux: bool = False):
        logits = self.head(self.features(x), x.shape[-2:])
        return (logits, []) if aux else logits
