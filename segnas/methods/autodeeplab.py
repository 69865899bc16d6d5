"""Auto-DeepLab (Liu et al., CVPR 2019): a cell and a path through the scale trellis, searched together.

The method composes the Auto-DeepLab space's supernet problem with a strategy;
its own parts are its presets, the ``autodeeplab.genotype_args`` and
``autodeeplab.down_transition`` its derived networks are built with (the paper
searches at F = 8, retrains at F = 20/32/48; the ``cpu`` and ``paper`` presets
build them with the authors' ``released`` transitions, as the zoo's S/M/L, the
``tiny`` one keeps ``conv3x3``), ``autodeeplab.fixed_path`` (the network level
fixed to one path, only the cell searched: the supernet then computes that path
alone) and the drawing of each result next to its genotype. Besides the paper's
bilevel search, its cell can be searched by DOTS (``--strategy dots``: grouped
operation search, then topology search over pairs of each block's inputs), a
combination no published code has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig
from ..genotype import Genotype
from ..report.draw import draw_autodeeplab
from ..spaces import get_space
from ..spaces.autodeeplab.network import SCALES
from ..spaces.autodeeplab.search import AutoDeepLabConfig, AutoDeepLabSearch
from . import Method, genotype_report, supernet_epoch_line

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "search": {"pretrain_epochs": 1, "epochs": 1, "batch_size": 2, "steps_per_epoch": 2, "select_images": 2,
                   "lr": 0.025, "lr_schedule": "cosine", "lr_min": 0.001, "weight_decay": 3e-4,
                   "arch_lr": 3e-3, "arch_betas": [0.9, 0.999], "arch_weight_decay": 1e-3,
                   "space_args": {"layers": 4, "blocks": 2, "filter_multiplier": 2, "stem": [8, 8, 16]}},
        "autodeeplab": {"genotype_args": {"filter_multiplier": 4, "aspp_channels": 16, "decoder_channels": 16,
                                          "low_level_channels": 8}},
    },
    "cpu": {
        "data": {"crop": [128, 128]},
        "search": {"pretrain_epochs": 3, "epochs": 3, "batch_size": 4, "lr": 0.025, "lr_schedule": "cosine",
                   "lr_min": 0.001, "weight_decay": 3e-4, "arch_lr": 3e-3, "arch_betas": [0.9, 0.999],
                   "arch_weight_decay": 1e-3, "select_images": 8,
                   "space_args": {"layers": 8, "blocks": 3, "filter_multiplier": 4, "stem": [16, 16, 32]}},
        "autodeeplab": {"genotype_args": {"filter_multiplier": 20, "stem": [64, 64, 128]},
                        "down_transition": "released"},
    },
    "paper": {
        "data": {"crop": [321, 321], "scale_range": [0.5, 0.5]},
        "search": {"pretrain_epochs": 20, "epochs": 20, "batch_size": 2, "lr": 0.025, "lr_schedule": "cosine",
                   "lr_min": 0.001, "weight_decay": 3e-4, "arch_lr": 3e-3, "arch_betas": [0.9, 0.999],
                   "arch_weight_decay": 1e-3, "grad_clip": 5.0, "select_images": 16,
                   "space_args": {"layers": 12, "blocks": 5, "filter_multiplier": 8}},
        "autodeeplab": {"genotype_args": {"filter_multiplier": 20}, "down_transition": "released"},
    },
}


def make_problem(cfg: RunConfig, data, run: Path, device: torch.device, progress: bool) -> AutoDeepLabSearch:
    return AutoDeepLabSearch(cfg, data.num_classes, data.ignore_index, device)


def sample_args(cfg: RunConfig) -> dict[str, Any]:
    """Random networks are drawn at the size the searched one is retrained at."""
    return AutoDeepLabSearch.check_config(cfg)[1]


def on_fixed_path(genotype: Genotype, cfg: RunConfig) -> Genotype:
    """A drawn architecture on ``autodeeplab.fixed_path`` where one is set: random search then compares
    cells alone, as the search does."""
    path = cfg.autodeeplab.fixed_path
    if not path:
        return genotype
    space = get_space(genotype.space)
    return space.make_genotype({"path": list(path), "cell": genotype.structure["cell"]}, genotype.space_args,
                               name=genotype.name, meta=genotype.meta)


def describe(record: dict[str, Any]) -> str:
    return f"path {' '.join(str(SCALES[j]) for j in record['path'])}"


def reaches_coarsest(genotype: Genotype) -> bool:
    """A path reaching 1/32: what ``planted-context`` rewards (its cue lies beyond a fine path's reach)."""
    return max(genotype.structure["path"]) == len(SCALES) - 1


METHOD = Method(
    name="autodeeplab", title="Auto-DeepLab (Liu et al., CVPR 2019)", space="autodeeplab",
    strategies=("differentiable", "dots", "random"), presets=PRESETS, section=AutoDeepLabConfig,
    outputs=("genotype",), primary="genotype", problem=make_problem, check=AutoDeepLabSearch.check_config,
    sample_args=sample_args, restrict=on_fixed_path, draw=draw_autodeeplab, draw_results=True, epoch_line=supernet_epoch_line(describe),
    report=genotype_report("path", describe),
    planted={"planted-context": ("a path reaching 1/32", reaches_coarsest)},
)
