"""The FasterSeg child network built from a genotype (paper Sec. 3.1, Appendix A).

Stem to 1/8, then one chain of single-operator cells per branch; branches that
start with identical cells share them (weights and feature maps, paper 3.4).
The head fuses the branches coarse-to-fine: 1x1 conv to reduce the coarser map,
bilinear up, concat with the finer feature of the same branch, 3x3 conv; then a
feature-fusion block over the concatenated 1/8 maps and a 3x3 + 1x1 classifier.
The fusion block is the paper's Appendix A, a 1x1 conv-BN-ReLU (``fusion="plain"``,
also what the authors' inference code ran: its attention was commented out);
``fusion="attention"`` adds BiSeNet's channel attention (GAP, 1x1, ReLU, 1x1,
sigmoid, applied as x + x*a), which genotypes written before the option existed
were built with.
Auxiliary heads on the 1/16 and 1/32 features exist for training only (the
paper's 4.4M parameters count them; inference does not run them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...ops import ConvBNReLU, make_op, upsample_to

SCALES = (8, 16, 32)  # the downsampling rates a cell can run at


class SegHead(nn.Module):
    """3x3 conv-BN-ReLU then a 1x1 classifier; wide inputs are halved first (BiSeNet style)."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        mid = c_in if c_in <= 256 else c_in // 2
        self.conv = ConvBNReLU(c_in, mid, 3)
        self.cls = nn.Conv2d(mid, num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls(self.conv(x))


FUSIONS = ("plain", "attention")


def fusion_of(space_args: dict) -> str:
    """The head's fusion block; files from before the ``fusion`` field were built with attention."""
    return str(space_args.get("fusion", "attention"))


class FeatureFusion(nn.Module):
    """1x1 conv-BN-ReLU; with ``attention``, channel attention (GAP, 1x1, ReLU, 1x1, sigmoid) as x + x*a."""

    def __init__(self, c_in: int, c_out: int, attention: bool = False) -> None:
        super().__init__()
        self.conv = ConvBNReLU(c_in, c_out, 1)
        self.attention = attention
        if attention:
            self.att1 = nn.Conv2d(c_out, c_out, 1, bias=False)
            self.att2 = nn.Conv2d(c_out, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if not self.attention:
            return x
        a = torch.sigmoid(self.att2(F.relu(self.att1(x.mean((2, 3), keepdim=True)))))
        return x + x * a


def make_stem(stem_chi: int) -> nn.Sequential:
    """Stem to 1/8: conv3x3 s2 (4*chi), conv_2x s2 (8*chi), conv_2x s2 (8*chi)."""
    c1, c2 = 4 * stem_chi, 8 * stem_chi
    return nn.Sequential(ConvBNReLU(3, c1, 3, stride=2), make_op("conv_2x", c1, c2, 2),
                         make_op("conv_2x", c2, c2, 2))


class Refine(nn.Module):
    """Coarse-to-fine fusion: 1x1 conv on the coarse map, bilinear up, concat the fine map, 3x3 conv."""

    def __init__(self, c_coarse: int, c_out: int, c_fine: int) -> None:
        super().__init__()
        self.arm = ConvBNReLU(c_coarse, c_out, 1)
        self.ref = ConvBNReLU(c_out + c_fine, c_out, 3)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        return self.ref(torch.cat([upsample_to(self.arm(coarse), fine.shape[-2:]), fine], 1))


class FusionHead(nn.Module):
    """Feature fusion over the concatenated 1/8 branch features, classifier, bilinear up to the input."""

    def __init__(self, c_in: int, num_classes: int, fusion: str = "plain") -> None:
        super().__init__()
        self.ffm = FeatureFusion(c_in, c_in, attention=fusion == "attention")
        self.head = SegHead(c_in, num_classes)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
        return upsample_to(self.head(self.ffm(x)), size)


@dataclass(frozen=True)
class CellSpec:
    """One cell: operator, input scale, output scale, channels in and out."""

    op: str
    scale: int
    out_scale: int
    c_in: int
    c_out: int


def branch_specs(cells: list[dict], stem_channels: int) -> list[CellSpec]:
    """Channel bookkeeping of one branch: a cell's output has ``out_scale * chi`` channels."""
    specs, c_in = [], stem_channels
    for i, cell in enumerate(cells):
        out_scale = cells[i + 1]["scale"] if i + 1 < len(cells) else cell["scale"]
        c_out = out_scale * cell["chi"]
        specs.append(CellSpec(cell["op"], cell["scale"], out_scale, c_in, c_out))
        c_in = c_out
    return specs


class FasterSegNet(nn.Module):
    """Multi-branch FasterSeg network. ``forward(x)`` gives logits at input size;
    ``forward(x, aux=True)`` also returns the auxiliary logits (training only)."""

    def __init__(self, branches: list[list[dict]], num_classes: int, stem_chi: int, head_chi: int,
                 aux: bool = True, fusion: str = "plain") -> None:
        super().__init__()
        c2 = 8 * stem_chi
        self.stem = make_stem(stem_chi)
        self.cells = nn.ModuleDict()
        # keys[b][i] names the module computing cell i of branch b; equal prefixes share a key
        self.keys: list[list[str]] = []
        self.finals: list[int] = []
        self.specs: list[list[CellSpec]] = []
        prefix_key: dict[tuple, str] = {}
        for cells in branches:
            specs = branch_specs(cells, c2)
            keys = []
            for i, spec in enumerate(specs):
                prefix = tuple(specs[: i + 1])
                if prefix not in prefix_key:
                    prefix_key[prefix] = f"c{len(prefix_key)}"
                    self.cells[prefix_key[prefix]] = make_op(spec.op, spec.c_in, spec.c_out,
                                                             2 if spec.out_scale > spec.scale else 1)
                keys.append(prefix_key[prefix])
            self.keys.append(keys)
            self.specs.append(specs)
            self.finals.append(specs[-1].out_scale)

        h8, h16 = 8 * head_chi, 16 * head_chi
        self.refine = nn.ModuleList()
        fused = 0
        for specs, final in zip(self.specs, self.finals):
            last = {s.scale: s.c_in for s in specs if s.out_scale > s.scale}  # features before each down
            c_final = specs[-1].c_out
            stages = nn.ModuleDict()
            if final >= 32:
                stages["s32"] = Refine(c_final, h16, last[16])
                c_final = h16
            if final >= 16:
                stages["s16"] = Refine(c_final, h8, last[8])
                c_final = h8
            self.refine.append(stages)
            fused += c_final
        self.fusion = FusionHead(fused, num_classes, fusion)

        self.aux_heads = nn.ModuleDict()
        if aux:
            c16 = sum(self._c16(specs, final) for specs, final in zip(self.specs, self.finals) if final >= 16)
            c32 = sum(specs[-1].c_out for specs, final in zip(self.specs, self.finals) if final == 32)
            if c16:
                self.aux_heads["s16"] = SegHead(c16, num_classes)
            if c32:
                self.aux_heads["s32"] = SegHead(c32, num_classes)

    @staticmethod
    def _c16(specs: list[CellSpec], final: int) -> int:
        if final == 16:
            return specs[-1].c_out
        return next(s.c_in for s in specs if s.scale == 16 and s.out_scale == 32)

    def forward(self, x: torch.Tensor, aux: bool = False):
        size = x.shape[-2:]
        stem = self.stem(x)
        computed: dict[str, torch.Tensor] = {}
        fused, feats16, feats32 = [], [], []
        for keys, specs, final, stages in zip(self.keys, self.specs, self.finals, self.refine):
            h = stem
            at_scale: dict[int, torch.Tensor] = {8: stem}
            for key, spec in zip(keys, specs):
                if key not in computed:
                    computed[key] = self.cells[key](h)
                h = computed[key]
                at_scale[spec.out_scale] = h
            # at_scale[s] is the last feature at scale s: the input of the down cell, or the output
            if final == 32:
                feats32.append(h)
                feats16.append(at_scale[16])
                h = stages["s32"](h, at_scale[16])
            elif final == 16:
                feats16.append(h)
            if final >= 16:
                h = stages["s16"](h, at_scale[8])
            fused.append(h)
        logits = self.fusion(torch.cat(fused, 1), size)
        if not aux:
            return logits
        extra = []
        if "s16" in self.aux_heads:
            extra.append(upsample_to(self.aux_heads["s16"](torch.cat(feats16, 1)), size))
        if "s32" in self.aux_heads:
            extra.append(upsample_to(self.aux_heads["s32"](torch.cat(feats32, 1)), size))
        return logits, extra
