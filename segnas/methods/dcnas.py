"""DCNAS (Zhang et al., CVPR 2021): a densely connected multi-scale grid, connections and operators searched together.

The method composes the DCNAS space's supernet problem with a strategy; its
own parts are the presets, the ``dcnas.*`` section (partial-channel ratio,
the three regularizers and their weights, the derived networks' arguments)
and the drawing of each result next to its genotype.

Search settings of the supplement (Sec. 1.5) the presets follow: SGD at 0.01
with weight decay 1e-4 for the weights, Adam at 5e-4 without weight decay
for alpha and beta, poly(0.9) learning rate, 120 epochs, 1024x512 crops
from scale [0.5, 2.0]. The supplement mentions no warm-up (the ``paper`` preset has none) and no search batch
size (8 there is segnas' choice).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig
from ..genotype import Genotype
from ..report.draw import draw_dcnas
from ..spaces.dcnas.receptive import head_radius
from ..spaces.dcnas.search import DCNASConfig, DCNASSearch
from . import Method, genotype_report, supernet_epoch_line

_OPTIMISERS = {"lr": 0.01, "lr_schedule": "poly", "poly_power": 0.9, "lr_min": 0.0, "weight_decay": 1e-4,
               "arch_lr": 5e-4, "arch_betas": [0.9, 0.999], "arch_weight_decay": 0.0}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "search": {"pretrain_epochs": 1, "epochs": 1, "batch_size": 2, "steps_per_epoch": 2, "select_images": 2,
                   **_OPTIMISERS,
                   "space_args": {"layers": 2, "filter_multiplier": 4, "stem_channels": 8, "head_channels": 16}},
    },
    "cpu": {
        "data": {"crop": [128, 128]},
        "search": {"pretrain_epochs": 1, "epochs": 3, "batch_size": 4, "select_images": 8,
                   **_OPTIMISERS,
                   "space_args": {"layers": 4, "filter_multiplier": 8, "stem_channels": 16, "head_channels": 64}},
    },
    "paper": {
        "data": {"crop": [512, 1024], "scale_range": [0.5, 2.0]},
        "search": {"pretrain_epochs": 0, "epochs": 120, "batch_size": 8, "select_images": 16, **_OPTIMISERS,
                   "space_args": {"layers": 14}},
    },
}


def make_problem(cfg: RunConfig, data, run: Path, device: torch.device, progress: bool) -> DCNASSearch:
    return DCNASSearch(cfg, data.num_classes, data.ignore_index, device)


def sample_args(cfg: RunConfig) -> dict[str, Any]:
    """Random networks are drawn with the arguments the searched one is built with."""
    return DCNASSearch.check_config(cfg)[1]


def describe(record: dict[str, Any]) -> str:
    return f"{record['nodes']} nodes, {record['connections']} connections"


# ``planted-context`` at the benchmark's 32x448 scenes puts the cue 149 px from the targets; FasterSeg
# networks learnt it where their theoretical field reached 220 px or more (a 1/32 branch) and not at
# 120-200 px (a 1/8 branch): this space's networks are judged by the same radius.
REACH_RADIUS = 220.0


def reaches_far(genotype: Genotype) -> bool:
    """The head's theoretical receptive-field radius is at least REACH_RADIUS px.

    What ``planted-context`` rewards, read for this space: every DCNAS network
    has 1/32 nodes and the head reads the last one, so the scales present say
    little; how far the operators and connections on the way carry
    information does (``spaces.dcnas.receptive``).
    """
    return head_radius(genotype.structure, genotype.space_args) >= REACH_RADIUS


METHOD = Method(
    name="dcnas", title="DCNAS (Zhang et al., CVPR 2021)", space="dcnas",
    strategies=("differentiable", "random"), presets=PRESETS, section=DCNASConfig,
    outputs=("genotype",), primary="genotype", problem=make_problem, check=DCNASSearch.check_config,
    sample_args=sample_args, draw=draw_dcnas, draw_results=True, epoch_line=supernet_epoch_line(describe),
    report=genotype_report("nodes", describe),
    planted={"planted-context": (f"a head receptive-field radius of at least {REACH_RADIUS:.0f} px", reaches_far)},
)
