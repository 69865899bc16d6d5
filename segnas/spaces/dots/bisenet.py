"""BiSeNet (Yu et al., ECCV 2018) around any context-path backbone giving 1/16 and 1/32 features.

- Spatial path: three conv - BN - ReLU of stride 2 (1/8 of the input). The
  paper gives neither kernels nor widths; segnas follows the authors' released
  code (a 7x7 conv, then two 3x3, 64 channels each, then a 1x1 to 128),
  folding its 1x1 into the third conv's width: ``spatial_channels`` = [64, 64, 128].
- Context path: the backbone's 1/32 and 1/16 features each pass an attention
  refinement module (ARM): a 3x3 conv - BN - ReLU to ``context_channels`` (as
  released: the sums below need one width), then the paper's channel attention
  (global pool - 1x1 conv - BN - sigmoid) multiplied in. The global context
  (global pool - 1x1 conv - BN - ReLU of the 1/32 feature) is added to the
  1/32 branch; each branch is upsampled to the next finer scale and refined by
  a 3x3 conv - BN - ReLU (released), the 1/16 one after its ARM output is added.
- Feature fusion module (FFM): concat of spatial and context paths, 1x1 conv
  - BN - ReLU to ``fusion_channels``, channel attention (global pool - 1x1 -
  ReLU - 1x1 - sigmoid) applied as x + x * a.
- Head: 3x3 conv - BN - ReLU to ``head_channels`` and a 1x1 classifier,
  upsampled to the input size. Two auxiliary heads (3x3 to ``fusion_channels``,
  1x1 classifier; as released) on the refined 1/16 and 1/8 context features
  supervise training only (BiSeNet's weight 1 each): ``net(x, aux=True)`` gives
  ``(logits, [aux logits])``, the list empty in eval mode and once
  ``aux_heads`` is emptied, so inference never runs them.

The ARM's and the global context's BatchNorm normalise 1x1 pooled maps, so a
training batch needs at least two images (eval uses the running statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...ops import ConvBNReLU, upsample_to


def _pooled(x: torch.Tensor) -> torch.Tensor:
    return x.mean((2, 3), keepdim=True)


class SpatialPath(nn.Module):
    """Three stride-2 conv - BN - ReLU (7x7, 3x3, 3x3): a wide, shallow 1/8 feature that keeps the detail."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        c1, c2, c3 = (int(c) for c in channels)
        self.layers = nn.Sequential(ConvBNReLU(3, c1, 7, stride=2), ConvBNReLU(c1, c2, 3, stride=2),
                                    ConvBNReLU(c2, c3, 3, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class AttentionRefinement(nn.Module):
    """ARM: 3x3 conv - BN - ReLU to ``c_out``, times sigmoid(BN(1x1 conv(global pool))) per channel."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(c_in, c_out, 3)
        self.attention = ConvBNReLU(c_out, c_out, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x * torch.sigmoid(self.attention(_pooled(x)))


class GlobalContext(nn.Module):
    """Global average pool - 1x1 conv - BN - ReLU: one context vector per image (added to the 1/32 branch)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_pooled(x))


class FeatureFusion(nn.Module):
    """FFM: concat, 1x1 conv - BN - ReLU, channel attention (pool - 1x1 - ReLU - 1x1 - sigmoid) as x + x * a."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(c_in, c_out, 1)
        self.attention = nn.Sequential(nn.Conv2d(c_out, c_out, 1, bias=False), nn.ReLU(inplace=True),
                                       nn.Conv2d(c_out, c_out, 1, bias=False), nn.Sigmoid())

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.conv(torch.cat([spatial, context], 1))
        return x + x * self.attention(_pooled(x))


class SegHead(nn.Sequential):
    """3x3 conv - BN - ReLU, then a 1x1 classifier with a bias."""

    def __init__(self, c_in: int, c_mid: int, num_classes: int) -> None:
        super().__init__(ConvBNReLU(c_in, c_mid, 3), nn.Conv2d(c_mid, num_classes, 1, bias=True))


class BiSeNet(nn.Module):
    """Spatial path + context path (``backbone``: x -> (1/16, 1/32) features of widths ``backbone.channels``)."""

    def __init__(self, backbone: nn.Module, num_classes: int, spatial_channels: Sequence[int] = (64, 64, 128),
                 context_channels: int = 128, fusion_channels: int = 256, head_channels: int = 64,
                 aux: bool = True) -> None:
        super().__init__()
        c16, c32 = backbone.channels
        cc = int(context_channels)
        self.backbone = backbone
        self.spatial = SpatialPath(spatial_channels)
        self.global_context = GlobalContext(c32, cc)
        self.arm32, self.arm16 = AttentionRefinement(c32, cc), AttentionRefinement(c16, cc)
        self.refine32, self.refine16 = ConvBNReLU(cc, cc, 3), ConvBNReLU(cc, cc, 3)
        self.ffm = FeatureFusion(int(spatial_channels[-1]) + cc, fusion_channels)
        self.head = SegHead(fusion_channels, head_channels, num_classes)
        self.aux_heads = nn.ModuleDict()
        if aux:
            self.aux_heads["context16"] = SegHead(cc, fusion_channels, num_classes)
            self.aux_heads["context8"] = SegHead(cc, fusion_channels, num_classes)

    def context_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The backbone's (1/16, 1/32) features (a supernet passes its architecture weights here)."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor, aux: bool = False):
        if self.training and x.shape[0] < 2:
            raise ValueError("BiSeNet normalises pooled 1x1 maps with BatchNorm (its attention refinement), so "
                             "training needs a batch of at least 2 images; raise the batch size")
        size = x.shape[-2:]
        spatial = self.spatial(x)
        f16, f32 = self.context_features(x)
        branch32 = self.arm32(f32) + self.global_context(f32)
        context16 = self.refine32(upsample_to(branch32, f16.shape[-2:]))
        branch16 = self.arm16(f16) + context16
        context8 = self.refine16(upsample_to(branch16, spatial.shape[-2:]))
        logits = upsample_to(self.head(self.ffm(spatial, context8)), size)
        if not aux:
            return logits
        if not self.training or not self.aux_heads:  # inference never runs an auxiliary head
            return logits, []
        feats = {"context16": context16, "context8": context8}
        return logits, [upsample_to(head(feats[name]), size) for name, head in self.aux_heads.items()]
