"""MobileNet-v2 (Sandler et al., CVPR 2018) as an encoder of four feature maps (Nekrasov et al.'s decoders read them).

Stem: 3x3 conv of stride 2 to 32 channels - BN - ReLU6. Then the inverted
residual blocks of ``SETTINGS`` (expansion t, channels c, repeats n, stride s
of a stage's first block), each an ``MBConv`` with ReLU6 and no
squeeze-excitation; a block with t = 1 has no expansion conv (torchvision's
network, so its weights fit). The classifier's 1x1 conv to 1280 channels is
left out. ``forward`` returns the outputs of stages 1, 2, 4 and 6 (0-based):
24 channels at 1/4, 32 at 1/8, 96 at 1/16 and 320 at 1/32 of the input (the
paper's "layers 2, 3, 6, 8", counting the stem as layer 1). Sizes halve with
ceil on odd inputs, as stride-2 3x3 convs give.

Nothing is downloaded: ``load_encoder_weights`` reads a state dict file the
user provides; without one the encoder trains from its random initialisation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch
from torch import nn

from .conv import conv_layer
from .mbconv import MBConv
from .weights import load_weights

SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
OUTPUT_STAGES = (1, 2, 4, 6)
STEM_CHANNELS = 32


def _block_expansions() -> list[int]:
    """Expansion t of every block, in order (the layout ``torchvision_key_map`` renames into)."""
    return [t for t, _, n, _ in SETTINGS for _ in range(n)]


class MobileNetV2Encoder(nn.Module):
    """Stem and 17 inverted residual blocks; ``forward(x)`` gives the four decoder inputs (see ``channels``)."""

    channels = tuple(SETTINGS[i][1] for i in OUTPUT_STAGES)  # (24, 32, 96, 320)
    strides = (4, 8, 16, 32)

    def __init__(self) -> None:
        super().__init__()
        c = STEM_CHANNELS
        self.stem = nn.Sequential(conv_layer(3, c, 3, stride=2), nn.BatchNorm2d(c), nn.ReLU6())
        blocks: list[nn.Module] = []
        taps: list[int] = []
        for stage, (t, c_out, n, s) in enumerate(SETTINGS):
            for i in range(n):
                blocks.append(MBConv(c, c_out, 3, t, stride=s if i == 0 else 1, act="relu6"))
                c = c_out
            if stage in OUTPUT_STAGES:
                taps.append(len(blocks) - 1)
        self.blocks = nn.ModuleList(blocks)
        self.taps = tuple(taps)  # indices of the blocks whose outputs are returned

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                out.append(x)
                if len(out) == len(self.taps):
                    break
        return out


_TV_STEM = re.compile(r"^features\.0\.(\d+)\.(.+)$")
_TV_BLOCK = re.compile(r"^features\.(\d+)\.conv\.(\d+)\.(.+)$")


def torchvision_key_map(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with torchvision's ``mobilenet_v2`` key names renamed to ``MobileNetV2Encoder``'s.

    The rule: ``features.0.J.*`` -> ``stem.J.*``; ``features.N.conv.*`` (N = 1..17) -> ``blocks.(N-1).body.*``
    where torchvision's conv-BN-ReLU6 units ``conv.U.J`` become ``body.(3U + J)`` and the projection that
    follows them (``conv.E``, ``conv.(E+1)`` for E units: 1 where t = 1, else 2) becomes ``body.3E``,
    ``body.(3E+1)``. ``features.18.*`` (the 1280-channel conv) and ``classifier.*`` are dropped (the
    encoder has neither); other keys pass unchanged, so a load names them as unexpected.
    """
    expansions = _block_expansions()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _TV_STEM.match(key)
        if m:
            out[f"stem.{m.group(1)}.{m.group(2)}"] = value
            continue
        m = _TV_BLOCK.match(key)
        if m and 1 <= int(m.group(1)) <= len(expansions):
            n, idx, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            units = 1 if expansions[n - 1] == 1 else 2
            if idx < units:
                unit, _, tail = rest.partition(".")
                if not unit.isdigit():
                    out[key] = value
                    continue
                out[f"blocks.{n - 1}.body.{3 * idx + int(unit)}.{tail}"] = value
            else:
                out[f"blocks.{n - 1}.body.{3 * units + idx - units}.{rest}"] = value
            continue
        if key.startswith(("classifier.", f"features.{len(expansions) + 1}.")):
            continue
        out[key] = value
    return out


def load_encoder_weights(encoder: MobileNetV2Encoder, path: str | os.PathLike) -> None:
    """Load a state dict file (``torch.save(state_dict, path)``) into ``encoder``, on the encoder's device.

    Expected keys: ``stem.0.weight`` (the 3x3 conv), ``stem.1.{weight,bias,running_mean,running_var,
    num_batches_tracked}`` (its BN), and per block i = 0..16 ``blocks.i.body.J.*``: for a block with an
    expansion conv J = 0 conv, 1 BN, 3 depthwise conv, 4 BN, 6 projection conv, 7 BN; for block 0 (t = 1)
    J = 0 depthwise conv, 1 BN, 3 projection conv, 4 BN (2 and 5 are the parameter-free ReLU6).
    torchvision's ``mobilenet_v2().state_dict()`` (keys ``features.N...``) is accepted as it is: it is
    renamed with ``torchvision_key_map``. A file that does not fit raises one CheckpointError naming the
    file and the first missing, unexpected or differently shaped keys.
    """
    load_weights(encoder, path, "the MobileNet-v2 encoder",
                 "see segnas.ops.mobilenetv2.load_encoder_weights for the expected keys",
                 rename=lambda state: torchvision_key_map(state) if any(k.startswith("features.") for k in state)
                 else state)
