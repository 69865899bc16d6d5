"""DOTS (Gu et al., CVPR 2021) for segmentation: a DARTS cell backbone in BiSeNet, searched end to end.

DOTS' published code covers classification only; its supplement (Table 2)
stacks the cell it searched on ImageNet as BiSeNet's context-path backbone.
segnas searches the cells inside that BiSeNet directly: a new combination
(``segnas.spaces.dots``). The default strategy is DOTS' own (operation
search, then topology search; ``dots.*`` is that strategy's section, this
method has none); ``differentiable`` runs DARTS' first-order search on the
same supernet and ``random`` trains random cells.

Presets: ``tiny`` (a few channels and cells: seconds), ``cpu`` (minutes on
two cores at 128x128 crops), ``paper`` (the evaluated network's C = 48 and
14 cells; DARTS' search optimisers: SGD 0.025 cosine to 0.001, wd 3e-4;
alpha Adam 3e-3 (DOTS on ImageNet), betas (0.5, 0.999), wd 1e-3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig
from ..report.draw import draw_dots
from ..genotype import Genotype
from ..spaces.dots.receptive import context_radius
from ..spaces.dots.search import DotsSearch
from . import Method, genotype_report, supernet_epoch_line

_OPTIMISERS = {"lr": 0.025, "lr_schedule": "cosine", "lr_min": 0.001, "momentum": 0.9, "weight_decay": 3e-4,
               "arch_lr": 3e-3, "arch_betas": [0.5, 0.999], "arch_weight_decay": 1e-3}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "search": {"pretrain_epochs": 1, "epochs": 1, "batch_size": 2, "steps_per_epoch": 2, "select_images": 2,
                   **_OPTIMISERS,
                   "space_args": {"channels": 4, "layers": 3, "nodes": 2, "spatial_channels": [4, 4, 8],
                                  "context_channels": 8, "fusion_channels": 8, "head_channels": 8}},
    },
    "cpu": {
        "data": {"crop": [128, 128]},
        "search": {"pretrain_epochs": 2, "epochs": 3, "batch_size": 4, "select_images": 8, **_OPTIMISERS,
                   "space_args": {"channels": 8, "layers": 5, "nodes": 4, "spatial_channels": [16, 16, 32],
                                  "context_channels": 32, "fusion_channels": 64, "head_channels": 32}},
    },
    "paper": {
        "data": {"crop": [512, 1024], "scale_range": [0.75, 2.0]},
        "search": {"pretrain_epochs": 15, "epochs": 15, "batch_size": 8, "select_images": 16, "grad_clip": 5.0,
                   **_OPTIMISERS, "space_args": {"channels": 48, "layers": 14}},
    },
}


def make_problem(cfg: RunConfig, data, run: Path, device: torch.device, progress: bool) -> DotsSearch:
    return DotsSearch(cfg, data.num_classes, data.ignore_index, device)


def sample_args(cfg: RunConfig) -> dict[str, Any]:
    """Random networks are drawn with the arguments the searched one is built with."""
    return DotsSearch.check_config(cfg)


# the radius ``planted-context`` at the benchmark's 32x448 scenes asks for (the cue 149 px from the targets):
# the one FasterSeg and DCNAS networks are judged by, read for this space's context path
REACH_RADIUS = 220.0


def reaches_far(genotype: Genotype) -> bool:
    """The backbone's 1/32 output has a theoretical receptive-field radius of at least REACH_RADIUS px
    (``spaces.dots.receptive``: BiSeNet's global pooling sees the whole image but not where the cue is)."""
    return context_radius(genotype.structure, genotype.space_args) >= REACH_RADIUS


def describe(record: dict[str, Any]) -> str:
    return f"normal {record['normal']} / reduce {record['reduce']}"


METHOD = Method(
    name="dots", title="DOTS (Gu et al., CVPR 2021), cell backbone in BiSeNet", space="dots",
    strategies=("dots", "differentiable", "random"), presets=PRESETS, section=None,
    outputs=("genotype",), primary="genotype", problem=make_problem, check=DotsSearch.check_config,
    sample_args=sample_args, draw=draw_dots, draw_results=True, epoch_line=supernet_epoch_line(describe),
    report=genotype_report("normal", describe),
    planted={"planted-context": (f"a context-path receptive-field radius of at least {REACH_RADIUS:.0f} px",
                                 reaches_far)},
)
