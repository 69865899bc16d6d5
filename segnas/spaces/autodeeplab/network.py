"""Auto-DeepLab building blocks and the final network (paper Sec. 3, 5.2).

A layer at scale s (block width ``C_s = F * s / 4``) runs a cell over two
inputs, h_{l-1} from the previous layer and h_{l-2} from the one before. The
cell's B blocks each add two operators over earlier states; the layer's output
is the concatenation of the blocks (B * C_s channels).

The paper's text gives: the cell and path (Fig. 3), C_s, the three-conv stem
(64, 64, 128; strides 2, 1, 2), ASPP on the last layer and the DeepLabv3+
decoder on a 1/4 feature, and for the search network "a stride 2 convolution"
for every s/2 -> s connection and "bilinear upsampling followed by 1x1
convolution" for every 2s -> s one. How h_{l-1} goes down in the *final*
network is ``down_transition`` (a space argument, so it follows from the genotype):

* ``conv3x3`` (segnas' reading, the default of genotypes without the argument):
  ReLU - stride-2 3x3 conv - BN (the paper gives no kernel; 3x3 is segnas'
  choice); the cell runs at stride 1 on inputs at its own scale.
* ``released`` (the authors' released TensorFlow network): h_{l-1} passes
  ReLU - 1x1 conv - BN at its own resolution and the cell's operators on
  h_{l-1} and h_{l-2} run at stride 2 (an atrous operator at stride 2 is a
  bilinear x0.5 and a rate-1 conv, see ``segnas.ops.cellops``); a ReLU precedes
  ASPP (a cell outputs sums of BN outputs, ASPP's convs expect
  activations). With it the zoo's S/M/L have Table 2's parameters (10.147 /
  21.622 / 44.424 M against 10.15 / 21.62 / 44.42 M at 19 classes).

Both: going up is bilinear x2 then ReLU - 1x1 conv - BN (the paper's text),
at the same scale the 1x1 alone (segnas' reading, as released); h_{l-2} is
resized bilinearly to the size h_{l-1} enters the cell at (the layer's scale,
or h_{l-1}'s own scale for a ``released`` cell going down) and reduced by
ReLU - 1x1 conv - BN; layer 0's h_{l-2} is the stem's middle conv. Every cell operator except a stride-1 skip passes a ``DropPath``
(identity unless a retraining sets ``train.drop_path``). segnas' reading for
both: ASPP rates 6/12/18 at output stride 16, scaled to the path's last scale,
256 channels, plain (not separable) 3x3 convolutions in ASPP and decoder
(separable ones would put the multiply-adds far below Table 2), the decoder's
1/4 feature is the last layer at 1/4 (the stem's output when the path never
runs there). Multiply-adds (torch's counter) stay under Table 2 either way:
-4.7 / -5.6 / -6.0% for S/M/L ``released``, -4.5 / -5.2 / -5.3% ``conv3x3``
(pinned in ``tests/test_autodeeplab.py``); the authors' counting convention is
the likely cause.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...ops import ASPP, ConvBNReLU, DropPath, ReLUConvBN, cell_op, upsample_to

SCALES = (4, 8, 16, 32)
DIRECTIONS = ("down", "same", "up")  # transition from the previous layer's scale index j-1, j, j+1
DOWN_TRANSITIONS = ("conv3x3", "released")  # see the module docstring
ASPP_RATES_OS16 = (6, 12, 18)


def block_channels(filter_multiplier: int, j: int) -> int:
    """C_s of scale index ``j``: F * s / 4 channels per block (the paper's B * F * s / 4 per layer)."""
    return filter_multiplier * SCALES[j] // 4


def scale_sizes(hw: Sequence[int], n: int = len(SCALES)) -> list[tuple[int, int]]:
    """Spatial sizes of scale indices 0..n-1 from the 1/4 size (ceil halving, as stride-2 3x3 convs give)."""
    sizes = [(int(hw[0]), int(hw[1]))]
    for _ in range(n - 1):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


class Resample1x1(nn.Module):
    """Bilinear resize to the target size (when it differs), then ReLU - 1x1 conv - BN."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = ReLUConvBN(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.conv(upsample_to(x, size))


class Down(nn.Module):
    """ReLU - stride-2 3x3 conv - BN: halves the size, changes the channels."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = ReLUConvBN(c_in, c_out, 3, stride=2)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.conv(x)


def transition(direction: str, c_in: int, c_out: int, down: str = "conv3x3") -> nn.Module:
    """The h_{l-1} input of a cell coming ``direction`` (down / same / up) into its scale.

    ``down = "released"``: going down is a 1x1 at h_{l-1}'s own size; the cell's operators then stride.
    """
    return Down(c_in, c_out) if direction == "down" and down == "conv3x3" else Resample1x1(c_in, c_out)


class Cell(nn.Module):
    """A discrete cell: block k = op_a(state a) + op_b(state b); states 0 = h_{l-1}, 1 = h_{l-2}, k+2 = block k.

    ``stride`` 2 (a ``released`` cell going down): the operators on h_{l-1} and h_{l-2} halve the size.
    Each operator's output passes ``drop`` (a whole path dropped per sample in training), except an
    identity, which NASNet and DARTS never drop either.
    """

    def __init__(self, blocks: Sequence[dict], c: int, stride: int = 1) -> None:
        super().__init__()
        self.inputs = [tuple(int(i) for i in b["inputs"]) for b in blocks]
        self.ops = nn.ModuleList(nn.ModuleList(cell_op(op, c, stride if i < 2 else 1)
                                               for i, op in zip(b["inputs"], b["ops"])) for b in blocks)
        self.drop = DropPath()  # no parameters: the state_dict is the one of a cell without it

    def branch(self, op: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return x if isinstance(op, nn.Identity) else self.drop(op(x))

    def forward(self, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        states = [h1, h2]
        for (a, b), (op_a, op_b) in zip(self.inputs, self.ops):
            states.append(self.branch(op_a, states[a]) + self.branch(op_b, states[b]))
        return torch.cat(states[2:], 1)


def make_stem(channels: Sequence[int]) -> nn.ModuleList:
    """Three 3x3 conv-BN-ReLU with strides 2, 1, 2 (the final network's stem)."""
    c1, c2, c3 = channels
    return nn.ModuleList([ConvBNReLU(3, c1, 3, stride=2), ConvBNReLU(c1, c2, 3), ConvBNReLU(c2, c3, 3, stride=2)])


def make_search_stem(channels: Sequence[int]) -> nn.ModuleList:
    """Two 3x3 conv-BN-ReLU of stride 2 (the paper's search stem), to ``channels[1]`` at 1/2 and
    ``channels[2]`` at 1/4: the same output widths as the final stem, one layer fewer."""
    _, c2, c3 = channels
    return nn.ModuleList([ConvBNReLU(3, c2, 3, stride=2), ConvBNReLU(c2, c3, 3, stride=2)])


class Decoder(nn.Module):
    """DeepLabv3+ decoder: 1x1 on the low-level feature, concat with the upsampled ASPP output, 2 x 3x3, classifier."""

    def __init__(self, c_high: int, c_low: int, c_low_out: int, c_mid: int, num_classes: int) -> None:
        super().__init__()
        self.low = ConvBNReLU(c_low, c_low_out, 1)
        self.fuse = nn.Sequential(ConvBNReLU(c_high + c_low_out, c_mid, 3), ConvBNReLU(c_mid, c_mid, 3))
        self.cls = nn.Conv2d(c_mid, num_classes, 1, bias=True)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = self.low(low)
        return self.cls(self.fuse(torch.cat([upsample_to(high, low.shape[-2:]), low], 1)))


class AutoDeepLabNet(nn.Module):
    """The decoded path of cells with ASPP and the DeepLabv3+ decoder (no supernet code)."""

    def __init__(self, path: Sequence[int], blocks: Sequence[dict], num_classes: int, filter_multiplier: int,
                 stem: Sequence[int] = (64, 64, 128), aspp_channels: int = 256, decoder_channels: int = 256,
                 low_level_channels: int = 48, down_transition: str = "conv3x3") -> None:
        super().__init__()
        if down_transition not in DOWN_TRANSITIONS:
            raise ValueError(f"down_transition {down_transition!r}: choose one of {DOWN_TRANSITIONS}")
        self.path = [int(j) for j in path]
        nb, f = len(blocks), filter_multiplier
        released = down_transition == "released"
        self.stem = make_stem(stem)
        # (channels, scale index) of h_{l-2} and h_{l-1}: the stem's middle conv and its output for layer 0
        prev2, prev1 = (stem[1], -1), (stem[2], 0)
        self.transitions, self.reduce, self.cells = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.in_scales: list[int] = []  # scale index each cell's inputs enter at (before a strided cell halves it)
        for j in self.path:
            c = block_channels(f, j)
            direction = DIRECTIONS[prev1[1] - j + 1]
            strided = released and direction == "down"
            self.in_scales.append(prev1[1] if strided else j)
            self.transitions.append(transition(direction, prev1[0], c, down_transition))
            self.reduce.append(Resample1x1(prev2[0], c))
            self.cells.append(Cell(blocks, c, 2 if strided else 1))
            prev2, prev1 = prev1, (nb * c, j)
        last = self.path[-1]
        self.pre_aspp = nn.ReLU() if released else nn.Identity()
        rates = [max(1, r * 16 // SCALES[last]) for r in ASPP_RATES_OS16]
        self.aspp = ASPP(nb * block_channels(f, last), aspp_channels, rates)
        at_4 = [i for i, j in enumerate(self.path) if j == 0]
        self.low_level = at_4[-1] if at_4 else -1  # the last layer at 1/4; -1: the stem output
        c_low = nb * block_channels(f, 0) if at_4 else stem[2]
        self.decoder = Decoder(aspp_channels, c_low, low_level_channels, decoder_channels, num_classes)
        self.aux_heads = nn.ModuleDict()  # none: the paper trains the final network with one loss

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(last layer output, low-level 1/4 feature)."""
        h = self.stem[1](self.stem[0](x))
        h2, h1 = h, self.stem[2](h)
        sizes = scale_sizes(h1.shape[-2:])
        low = h1
        for i, (j, trans, red, cell) in enumerate(zip(self.in_scales, self.transitions, self.reduce, self.cells)):
            out = cell(trans(h1, sizes[j]), red(h2, sizes[j]))
            h2, h1 = h1, out
            if i == self.low_level:
                low = out
        return h1, low

    def forward(self, x: torch.Tensor, aux: bool = False):
        last, low = self.features(x)
        logits = upsample_to(self.decoder(self.aspp(self.pre_aspp(last)), low), x.shape[-2:])
        return (logits, []) if aux else logits
