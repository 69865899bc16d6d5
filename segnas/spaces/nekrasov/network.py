"""Nekrasov et al.'s encoder-decoder network (paper Sec. 3.1.1, appendix A) built from a genotype.

Encoder: MobileNet-v2 (``segnas.ops.MobileNetV2Encoder``), outputs at 1/4,
1/8, 1/16 and 1/32. Every encoder output a block reads passes a 1x1 conv -
BN - ReLU to ``agg_size`` channels (48 in the paper's search, 64 in its final
networks). Block k runs the genotype's cell (own weights) on each of its two
pool entries, a 1x1 conv - BN - ReLU on each result, upsamples the smaller to
the larger (bilinear) and sums: its output joins the pool at the larger
resolution. The head upsamples the block outputs no later block reads to the
largest of them, concatenates them, reduces them by a 1x1 conv - BN - ReLU to
``agg_size`` and classifies with a 3x3 conv (with a bias); the logits are
upsampled bilinearly to the input size.

Auxiliary cells (``aux_heads``, built with ``aux=True``): after each block's
sum a cell of the same design (own weights) and a 3x3 classifier, upsampled
to the input size. They never change the main logits. As every space's
network: ``net(x)`` gives the logits, ``net(x, aux=True)`` gives ``(logits,
[aux logits per block])`` for the shared trainer's weighted auxiliary loss;
the list is empty in eval mode and once ``aux_heads`` is emptied (a checkpoint
loaded for inference), so inference never runs an auxiliary cell.
``decode(features, size)`` runs the decoder alone on encoder outputs (a
search's first stage trains it on cached ones).

Where the paper is silent, segnas follows the authors' released code: 3x3
main and auxiliary classifiers, conv - BN - ReLU for the 1x1 adaptations,
block projections and the head's reduction, and the separable convolutions'
pre-activation rounds (``ops``). segnas' own choices: an encoder output that
no block reads gets no 1x1 conv (the released code builds all four; an unread
one has no effect on any output and no gradient, it would only add 1.7-21 k
parameters); upsampling is ``upsample_to`` (align_corners=True) everywhere;
decoder and auxiliary convolutions start from Xavier-uniform weights and zero
biases (the paper: "Decoder weights are randomly initialised using the
Xavier scheme").

Size of the zoo's arch0/1/2 (21 classes, agg_size 64, separable convs twice,
without the auxiliary cells): 2.626 / 2.807 / 2.850 M parameters, Table 1's
2.6 / 2.8 / 2.9 M to its one decimal (+1.0 / +0.3 / -1.7%). Multiply-adds
(torch's counter: convolutions only) at Table 1's stated 512x512 are 4.133 /
2.762 / 3.281 G, 7.5 / 6.4 / 5.5% under its 4.47 / 2.95 / 3.47 G; at
525x525 all three match within 1.3% (-1.1 / +0.4 / +1.2%). Read as FLOPs
(twice the multiply-adds) the best size, ~370x370, fits worse (to 3.3%), so
the table counts multiply-adds, likely with work this counter leaves out:
BatchNorm, activations and sums (about 0.1 G at 512x512), bilinear resizing,
and the authors' encoder's expansion conv in its t = 1 block (0.07 G), which
torchvision's network, and so this one, does not have. The architectures are
built as published, not tuned towards the table; the tests pin these counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...ops import ConvBNReLU, MobileNetV2Encoder, conv_layer, upsample_to
from .cell import Cell
from .encoding import head_inputs


def _area(size: Sequence[int]) -> int:
    return int(size[0]) * int(size[1])


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every convolution under ``module`` (BN keeps its own)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Block(nn.Module):
    """The cell on each of two pool entries (own weights), 1x1 conv-BN-ReLU each, upsampled to the larger, summed."""

    def __init__(self, cell: dict[str, Any], c: int, sep_repeats: int = 2) -> None:
        super().__init__()
        self.cells = nn.ModuleList([Cell(cell, c, sep_repeats), Cell(cell, c, sep_repeats)])
        self.project = nn.ModuleList([ConvBNReLU(c, c, 1), ConvBNReLU(c, c, 1)])

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ya = self.project[0](self.cells[0](a))
        yb = self.project[1](self.cells[1](b))
        size = ya.shape[-2:] if _area(ya.shape[-2:]) >= _area(yb.shape[-2:]) else yb.shape[-2:]
        return upsample_to(ya, size) + upsample_to(yb, size)


class Decoder(nn.Module):
    """1x1 adaptations, the blocks of ``connections`` and the head; ``forward`` gives (logits, block outputs)."""

    def __init__(self, connections: Sequence[Sequence[int]], cell: dict[str, Any], in_channels: Sequence[int],
                 num_classes: int, agg_size: int = 64, sep_repeats: int = 2) -> None:
        super().__init__()
        self.n_inputs = len(in_channels)
        self.connections = [tuple(int(i) for i in pair) for pair in connections]
        read = sorted({i for pair in self.connections for i in pair if i < self.n_inputs})
        self.adapt = nn.ModuleDict({str(i): ConvBNReLU(in_channels[i], agg_size, 1) for i in read})
        self.blocks = nn.ModuleList(Block(cell, agg_size, sep_repeats) for _ in self.connections)
        self.concat = head_inputs(self.connections)
        self.fuse = ConvBNReLU(agg_size * len(self.concat), agg_size, 1)
        self.classifier = conv_layer(agg_size, num_classes, 3, bias=True)

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if len(feats) != self.n_inputs:
            raise ValueError(f"the decoder takes {self.n_inputs} encoder outputs (1/4 .. 1/32), got {len(feats)}")
        pool: list[Any] = [self.adapt[str(i)](f) if str(i) in self.adapt else None for i, f in enumerate(feats)]
        for (a, b), block in zip(self.connections, self.blocks):
            pool.append(block(pool[a], pool[b]))
        outs = [pool[i] for i in self.concat]
        size = outs[0].shape[-2:]  # the largest output's (the first of equals); a loop torch.compile traces whole
        for o in outs[1:]:
            if _area(o.shape[-2:]) > _area(size):
                size = o.shape[-2:]
        fused = self.fuse(torch.cat([upsample_to(o, size) for o in outs], 1))
        return self.classifier(fused), pool[self.n_inputs:]


class NekrasovNet(nn.Module):
    """MobileNet-v2 encoder, the genotype's decoder and (``aux``) one auxiliary cell and classifier per block."""

    def __init__(self, connections: Sequence[Sequence[int]], cell: dict[str, Any], num_classes: int,
                 agg_size: int = 64, sep_repeats: int = 2, aux: bool = True) -> None:
        super().__init__()
        self.encoder = MobileNetV2Encoder()
        self.decoder = Decoder(connections, cell, self.encoder.channels, num_classes, agg_size, sep_repeats)
        self.aux_heads = nn.ModuleDict()
        if aux:
            for k in range(len(connections)):
                self.aux_heads[f"block{k}"] = nn.Sequential(Cell(cell, agg_size, sep_repeats),
                                                            conv_layer(agg_size, num_classes, 3, bias=True))
        xavier_init(self.decoder)
        xavier_init(self.aux_heads)

    def decode(self, feats: Sequence[torch.Tensor], size: Sequence[int],
               aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits at ``size`` from the encoder's four outputs; with ``aux`` also the auxiliary logits (training)."""
        logits, blocks = self.decoder(feats)
        logits = upsample_to(logits, tuple(size))
        if not aux:
            return logits
        if not self.training:  # inference never runs an auxiliary cell
            return logits, []
        return logits, [upsample_to(head(out), tuple(size)) for head, out in zip(self.aux_heads.values(), blocks)]

    def forward(self, x: torch.Tensor, aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        return self.decode(self.encoder(x), x.shape[-2:], aux)
