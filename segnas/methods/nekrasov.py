"""Nekrasov et al. (CVPR 2019): a controller searches compact decoders; each trial trains in two stages.

The method composes the ``nekrasov`` space with the multi-trial strategies
(``ppo``: the paper's LSTM controller trained by PPO; ``random``: the
baseline of its Fig. 2, the same staged trials on uniform draws) and gives
them its own trial (``engine.proxy``): stage 1 trains the decoder on cached
encoder outputs, the early-termination gate decides in trial order, stage 2
trains end to end; the reward is the geometric mean of mIoU, fwIoU and mean
pixel accuracy on a held-out 10% of the training split.

Networks are searched with ``nekrasov.search_args`` (agg_size 48, separable
convolutions once) and the result is written with ``nekrasov.final_args``
(64, twice: the paper's final networks), so ``genotype.json`` retrains as
the paper's networks do; each trial's genotype under ``genotypes/`` keeps
the search's arguments.

The ``paper`` preset follows Sect. 4 and 4.1: stage 1 for 5 epochs on 4000
cached images, stage 2 for 1 epoch, Adam 3e-3 (decoder) and SGD 1e-3 with
momentum 0.9 (encoder), Polyak 0.9 / 0.99, auxiliary weight 0.15, L2
distillation 0.3 (give a teacher with ``nekrasov.distill_teacher``), PPO at
lr 1e-4 with clip 0.1, a 10% held-out set, p annealed from 0.9. Where the
paper is silent it is segnas' choice: the search batch size (32), the
number of trials (2000; the paper stopped its search after 4 days on two
GPUs), trials per PPO update (8), p's schedule (``stages``), the stage-1
image size (VOC's images differ in size; 512x512 here) and a constant
learning rate within each stage.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..engine import proxy
from ..engine.proxy import ProxyConfig
from ..errors import ConfigError
from ..genotype import Genotype
from ..report.draw import draw_nekrasov
from ..spaces import get_space
from ..strategies.multi_trial import StagedTrial
from ..strategies.stages import EarlyTermination
from . import Method

NAME = "nekrasov"

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        NAME: {"stage1_epochs": 1.0, "stage2_epochs": 0.5, "batch_size": 4, "polyak2": 0.9, "p_decay": 0.9,
               "search_args": {"agg_size": 8, "sep_repeats": 1}},
        "ppo": {"trials": 4, "batch": 2, "hidden_size": 16},
        "random": {"trials": 4},
    },
    # minutes a trial on 2 cores: fewer images; a stage 2 this short (7 steps) averages with 0.9, not 0.99,
    # or its Polyak weights would stay ~93% the ones it started from
    "cpu": {
        "data": {"crop": [96, 128], "scale_range": [0.75, 1.25], "synthetic_train": 128},
        NAME: {"stage1_epochs": 5.0, "stage2_epochs": 1.0, "batch_size": 16, "polyak2": 0.9, "p_decay": 0.95},
        "ppo": {"trials": 12, "batch": 4},
        "random": {"trials": 12},
    },
    "paper": {
        "data": {"dataset": "voc", "crop": [500, 500], "scale_range": [0.5, 2.0], "hflip": True},
        NAME: {"stage1_epochs": 5.0, "stage2_epochs": 1.0, "batch_size": 32, "stage1_images": 4000,
               "stage1_size": [512, 512]},
        "ppo": {"trials": 2000, "batch": 8},
        "random": {"trials": 2000},
    },
}


def sample_args(cfg: RunConfig) -> dict[str, Any]:
    """Trials are drawn and built with the search's arguments (agg_size 48, separable convs once)."""
    return dict(cfg.sections[NAME].search_args)


def check(cfg: RunConfig) -> None:
    """Refuse space arguments the space would refuse, before a run folder is made."""
    space = get_space(NAME)
    for key in ("search_args", "final_args"):
        args = getattr(cfg.sections[NAME], key)
        try:
            space.check_args(space.resolve_args(args), f"{NAME}.{key}")
        except Exception as e:  # noqa: BLE001 - GenotypeError or an unknown key: one line naming the key
            raise ConfigError(str(e).splitlines()[0]) from None
    pc = cfg.sections[NAME]
    for key in ("encoder_weights", "distill_teacher"):
        path = getattr(pc, key)
        if path and not Path(path).exists():
            raise ConfigError(f"{NAME}.{key}: {path}: no such file or folder")
    if cfg.search.space_args:
        raise ConfigError(f"search.space_args: {NAME} searches with {NAME}.search_args (and writes its result "
                          f"with {NAME}.final_args); set those instead")


def final_genotype(genotype: Genotype, cfg: RunConfig) -> Genotype:
    """The searched architecture with the final networks' arguments (agg_size 64, separable convs twice)."""
    pc = cfg.sections[NAME]
    meta = {**genotype.meta, "searched_with": dict(pc.search_args), "searched_archid": genotype.archid}
    return get_space(NAME).decode(genotype.choices, dict(pc.final_args), name=genotype.name, meta=meta)


def gate(cfg: RunConfig) -> EarlyTermination:
    pc = cfg.sections[NAME]
    return EarlyTermination(pc.p_start, pc.p_decay, pc.p_min, pc.mean_decay)


def report(result: dict[str, Any], out: Path) -> list[str]:
    lines = []
    for name, r in ((result.get("final") or {}).get("architectures") or {}).items():
        lines.append(f"{name}: {r['archid']} (searched as {r['searched_archid']}) trial {r['trial']}, reward "
                     f"{100 * r['reward']:.1f}% -> {out / (name + '.json')}")
    if result.get("trials_csv"):
        lines.append(f"trials: {result['trials_csv']}, {result['trials_md']}; rewards: {result['rewards_png']}")
    lines.append(f"next: segnas retrain {out / 'genotype.json'} --out {out}-retrain")
    return lines


def reads_coarsest(genotype: Genotype) -> bool:
    """Some block reads the encoder's 1/32 output (pool entry 3): what ``planted-context`` rewards, read for
    this space (its cue lies beyond what the 1/4-1/16 outputs' receptive fields reach)."""
    return any(3 in pair for pair in genotype.structure["connections"])


TRIAL = StagedTrial(prepare=partial(proxy.prepare, section=NAME), stage1=proxy.stage1_task,
                    stage2=proxy.stage2_task, gate=gate, final=final_genotype)

METHOD = Method(
    name=NAME, title="Nekrasov et al. (CVPR 2019)", space=NAME, strategies=("ppo", "random"), presets=PRESETS,
    section=ProxyConfig, outputs=("genotype",), primary="genotype", check=check, sample_args=sample_args,
    report=report, trial=TRIAL, draw=draw_nekrasov,
    planted={"planted-context": ("a block reading the encoder's 1/32 output", reads_coarsest)},
)
