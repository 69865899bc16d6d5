"""Proxy training of one sampled encoder-decoder network in two stages (Nekrasov et al., Sect. 3.2 and 4.1).

Stage 1 trains the decoder and its auxiliary cells alone, on encoder outputs
cached on disk (``feature_cache``: computed once per search and reused by every
trial), with Adam at 3e-3 and Polyak averaging at 0.9; its reward is measured
with the averaged weights. Stage 2 (for trials the search lets continue)
trains end to end from those averaged weights: Adam at 3e-3 for the decoder,
SGD at 1e-3 with momentum 0.9 for the encoder, Polyak averaging at 0.99. Both
stages are the shared :class:`~segnas.engine.trainer.Trainer` with a budget,
its own optimiser and its Polyak average; the auxiliary loss weight is 0.15.

Distillation (stage 1 only, as in the paper: "pre-computed for the first
stage and omitted during the second one"): an L2 loss on the logits, weight
0.3, against a teacher's logits on the stage-1 images, from a segnas run
folder or checkpoint (computed once and cached like the encoder outputs) or
from a file of precomputed logits (N x C x H x W, the stage-1 images in
order; the run's ``feature_cache/stage1.json`` lists them).

Data: the training split minus a seeded held-out fraction (10%) that scores
every trial. Stage-1 images are read without random augmentation (each
cached output stands for one fixed image); stage 2 uses the run's training
augmentation. Without ``encoder_weights`` the encoder starts from seeded
random weights (the same in every trial, so the cache stays valid) and
learns only in stage 2; the search's log says so.

Tasks (``stage1_task``, ``stage2_task``) are top-level functions of a payload
dict so any executor can run them: ``{"cfg", "genotype", "seed", "context"}``,
the context coming from :func:`prepare` (run once per search).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..config import RunConfig, TrainConfig
from ..data import EvalTransform, build_dataset, save_splits
from ..data.splits import make_splits
from ..errors import ConfigError
from ..fileio import atomic_write_text
from ..genotype import Genotype
from ..losses import l2_distillation
from ..ops.mobilenetv2 import MobileNetV2Encoder, load_encoder_weights
from ..spaces import get_space
from .checkpoint import load_checkpoint
from .feature_cache import encoder_outputs, load_features, teacher_outputs
from .loaders import data_root, dataset_kwargs, make_datasets
from .trainer import Trainer, model_from_checkpoint


@dataclass
class ProxyConfig:
    """The two stages of a trial: lengths, learning rules, Polyak decays, distillation, held-out data, the gate.

    Stage lengths are passes over the stage's training images (the paper: 5
    and 1); ``search_args`` are the space arguments networks are searched with
    (agg_size 48, separable convs once), ``final_args`` those the result's
    genotype is written with (64, twice: the paper's final networks).
    """

    stage1_epochs: float = 5.0
    stage2_epochs: float = 1.0
    batch_size: int = 32  # the paper gives none for the search
    decoder_lr: float = 3e-3  # Adam, both stages
    encoder_lr: float = 1e-3  # SGD, stage 2
    encoder_momentum: float = 0.9
    polyak1: float = 0.9
    polyak2: float = 0.99
    aux_weight: float = 0.15
    distill_teacher: str | None = None  # a segnas run folder / checkpoint, or a file of stage-1 logits
    distill_weight: float = 0.3
    encoder_weights: str | None = None  # a MobileNet-v2 state dict; none: random start, trained in stage 2
    held_out: float = 0.1  # of the training split, scoring every trial
    stage1_images: int | None = None  # training images cached for stage 1 (the paper: 4000); None: all
    stage1_size: list[int] | None = None  # [H, W] stage-1 and held-out images are resized to; None: as they are
    p_start: float = 0.9  # early termination: a below-mean trial's chance to continue, annealed
    p_decay: float = 0.997
    p_min: float = 0.25
    mean_decay: float | None = None  # None: plain running mean of stage-1 rewards
    cache_dir: str | None = None  # where encoder outputs are kept; None: the run's feature_cache/
    search_args: dict = field(default_factory=lambda: {"agg_size": 48, "sep_repeats": 1})
    final_args: dict = field(default_factory=lambda: {"agg_size": 64, "sep_repeats": 2})

    RANGES: ClassVar[dict[str, tuple]] = {
        "stage1_epochs": (0, None, False), "stage2_epochs": (0, None, False), "batch_size": (1, None, True),
        "decoder_lr": (0, None, False), "encoder_lr": (0, None, False), "encoder_momentum": (0, 1, True),
        "polyak1": (0, 1, False), "polyak2": (0, 1, False), "aux_weight": (0, None, True),
        "distill_weight": (0, None, True), "held_out": (0, 1, False), "stage1_images": (1, None, True),
        "p_start": (0, 1, True), "p_decay": (0, 1, False), "p_min": (0, 1, True)}
    PATHS: ClassVar[tuple[str, ...]] = ("distill_teacher", "encoder_weights", "cache_dir")

    def check(self) -> None:
        for key in ("polyak1", "polyak2", "held_out"):
            if getattr(self, key) >= 1:
                raise ConfigError(f"{key} is {getattr(self, key)} in the method's section; it must be below 1")
        if self.p_min > self.p_start:
            raise ConfigError(f"p_min {self.p_min} is above p_start {self.p_start}; lower it")
        if self.stage1_size is not None and (len(self.stage1_size) != 2 or min(self.stage1_size) < 32):
            raise ConfigError(f"stage1_size is {self.stage1_size} in the method's section; give [height, width] "
                              "of at least 32")
        if self.mean_decay is not None and not 0 <= self.mean_decay < 1:
            raise ConfigError(f"mean_decay is {self.mean_decay} in the method's section; it must be in [0, 1) "
                              "or null")


# -- data -------------------------------------------------------------------------------------------------
@dataclass
class ProxyData:
    stage1: Any  # training images without augmentation (cached encoder outputs are of these)
    train: Any  # training images with the run's augmentation (stage 2)
    held_out: Any  # images scoring the trials, without augmentation
    splits: dict[str, list[int]]


def proxy_data(cfg: RunConfig, pc: ProxyConfig) -> ProxyData:
    """The training split cut into the trials' training images and a seeded held-out fraction."""
    train, _ = make_datasets(cfg.data, cfg.seed)
    resize = tuple(pc.stage1_size) if pc.stage1_size else None
    plain = build_dataset(cfg.data.dataset, data_root(cfg.data), cfg.data.train_split,
                          transform=EvalTransform(size=resize),
                          seed=cfg.seed, cache=cfg.data.cache, **dataset_kwargs(cfg.data, cfg.data.train_split))
    held = make_splits(len(train), cfg.seed, pc.held_out, 0.5)["val"]
    if not held:
        raise ConfigError(f"held_out {pc.held_out} of {len(train)} training images leaves none to score trials; "
                          "raise it or use more images")
    rest = sorted(set(range(len(train))) - set(held))
    first = rest
    if pc.stage1_images is not None and pc.stage1_images < len(rest):
        pick = np.random.default_rng([cfg.seed, len(rest), 1]).permutation(len(rest))[: pc.stage1_images]
        first = sorted(rest[i] for i in pick)
    splits = {"train": rest, "held_out": sorted(held), "stage1": first}
    return ProxyData(plain.subset(first), train.subset(rest), plain.subset(splits["held_out"]), splits)


def background_class(dataset: Any) -> int | None:
    """The dataset's background class, left out of the reward: its own ``background_index`` if it states one,
    else a class named "background" (VOC's 0); None where it has none."""
    if getattr(dataset, "background_index", None) is not None:
        return int(dataset.background_index)
    names = [n.lower() for n in dataset.class_names]
    return names.index("background") if "background" in names else None


# -- networks -----------------------------------------------------------------------------------------------
def reference_encoder(seed: int, weights: str | None) -> MobileNetV2Encoder:
    """The encoder every trial starts from: the user's weights, or seeded random ones (identical in every trial)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = MobileNetV2Encoder()
    if weights:
        load_encoder_weights(encoder, weights)
    return encoder


def trial_network(genotype: Genotype, num_classes: int, seed: int, encoder: nn.Module) -> nn.Module:
    """The trial's network: decoder initialised from ``seed``, encoder a copy of ``encoder``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = get_space(genotype.space).build(genotype, num_classes, aux=True)
    net.encoder.load_state_dict(encoder.state_dict())
    return net


@contextmanager
def without_encoder(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` with its encoder detached for a while: stage 1's optimiser, Polyak average and state see the
    decoder and auxiliary cells only (the encoder is fixed and its outputs are cached)."""
    encoder = net.encoder
    net.encoder = None
    try:
        yield net
    finally:
        net.encoder = encoder


class CachedDecoder(nn.Module):
    """Stage 1's network: the decoder (and auxiliary cells) on cached encoder outputs, logits at ``size``."""

    def __init__(self, net: nn.Module, size: tuple[int, int]) -> None:
        super().__init__()
        self.net, self.size = net, tuple(size)

    def forward(self, inputs: dict[str, Any], aux: bool = False) -> Any:
        return self.net.decode(inputs["feats"], self.size, aux)


class CachedTeacher(nn.Module):
    """A teacher whose logits were computed before: it reads them from the batch."""

    def forward(self, inputs: dict[str, Any]) -> torch.Tensor:
        return inputs["teacher"]


class ChainedOptimizer:
    """Several optimisers stepped as one (stage 2: Adam for the decoder, SGD for the encoder): what the trainer
    uses of an optimiser (``param_groups``, ``zero_grad``, ``step``, state)."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = list(optimizers)
        self.param_groups = [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)


def stage_steps(epochs: float, images: int, batch_size: int) -> int:
    """Steps of a stage of ``epochs`` passes over ``images`` (at least one)."""
    return max(1, round(epochs * images / batch_size))


def _stage_config(tc: TrainConfig, pc: ProxyConfig, polyak: float, steps: int, batch: int) -> TrainConfig:
    """The ``train.*`` settings of a stage: a constant rate (the optimiser's own), one evaluation at its end."""
    return dataclasses.replace(tc, lr=pc.decoder_lr, schedule="constant", warmup_steps=0, ema_decay=polyak,
                               aux_weight=pc.aux_weight, eval_every=steps, drop_path=0.0, batch_size=batch,
                               distill_weight=pc.distill_weight, log_every=min(tc.log_every, steps))


def train_stage1(net: nn.Module, tc: TrainConfig, pc: ProxyConfig, train, held_out, device: torch.device,
                 seed: int) -> tuple[dict[str, Any], int]:
    """Stage 1 on cached outputs; ``net``'s decoder ends with the averaged weights. (held-out metrics, steps)."""
    batch = min(pc.batch_size, len(train))
    steps = stage_steps(pc.stage1_epochs, len(train), batch)
    with without_encoder(net):
        model = CachedDecoder(net, train.size)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=pc.decoder_lr)
        teacher = CachedTeacher() if train.teacher is not None else None
        trainer = Trainer(model, _stage_config(tc, pc, pc.polyak1, steps, batch), train, held_out, device, seed,
                          teacher=teacher, total_steps=steps, optimizer=optimizer, distill_loss=l2_distillation)
        trainer.fit()
        model.load_state_dict(trainer.ema.state_dict())  # stage 2 goes on from the weights the reward measured
    return trainer.metrics, trainer.step


def train_stage2(net: nn.Module, tc: TrainConfig, pc: ProxyConfig, train, held_out, device: torch.device,
                 seed: int, num_workers: int = 0) -> tuple[dict[str, Any], int]:
    """Stage 2, end to end, scored with the averaged weights: (held-out metrics, steps)."""
    batch = min(pc.batch_size, len(train))
    steps = stage_steps(pc.stage2_epochs, len(train), batch)
    decoder = [p for name, p in net.named_parameters() if not name.startswith("encoder.")]
    optimizer = ChainedOptimizer(torch.optim.Adam(decoder, lr=pc.decoder_lr),
                                 torch.optim.SGD(net.encoder.parameters(), lr=pc.encoder_lr,
                                                 momentum=pc.encoder_momentum))
    trainer = Trainer(net, dataclasses.replace(_stage_config(tc, pc, pc.polyak2, steps, batch), distill_weight=0.0),
                      train, held_out, device, seed, num_workers, total_steps=steps, optimizer=optimizer)
    trainer.fit()
    return trainer.metrics, trainer.step


# -- the search's side: prepared once, then one task per stage and trial ----------------------------------
def _teacher_logits(pc: ProxyConfig, folder: Path, data: ProxyData, num_classes: int,
                    device: torch.device) -> tuple[str | None, str | None]:
    """(the stage-1 teacher logits file, a note for the log) from ``distill_teacher``."""
    if not pc.distill_teacher:
        return None, None
    path = Path(pc.distill_teacher)
    if not path.exists():
        raise ConfigError(f"distill_teacher {path}: no such run folder or file")
    if path.is_file():
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many types for foreign files
            raise ConfigError(f"distill_teacher {path}: cannot read it ({type(e).__name__}); give a segnas "
                              "checkpoint or a torch file of N x C x H x W logits") from None
        if not (isinstance(loaded, dict) and "model" in loaded and "genotype" in loaded):
            return str(path), f"distillation: precomputed logits {path}"
    teacher, genotype = model_from_checkpoint(load_checkpoint(path), num_classes)
    logits, _ = teacher_outputs(folder, teacher.to(device), data.stage1, device)
    return str(logits), f"distillation: teacher {genotype.archid[:8]} from {path} (logits cached)"


def prepare(cfg: RunConfig, run: Path, device: torch.device, section: str) -> dict[str, Any]:
    """Once per search: the splits, the cached encoder (and teacher) outputs; the context of every task."""
    pc = cfg.sections[section]
    data = proxy_data(cfg, pc)
    save_splits(run / "splits.json", data.splits, {"dataset": cfg.data.dataset, "split": cfg.data.train_split,
                                                   "seed": cfg.seed, "held_out": pc.held_out})
    folder = Path(pc.cache_dir) if pc.cache_dir else run / "feature_cache"
    folder.mkdir(parents=True, exist_ok=True)
    encoder = reference_encoder(cfg.seed, pc.encoder_weights).to(device)
    train_cache, _ = encoder_outputs(folder, encoder, data.stage1, device)
    held_cache, _ = encoder_outputs(folder, encoder, data.held_out, device)
    atomic_write_text(folder / "stage1.json", json.dumps({"train_split_indices": data.splits["stage1"]}))
    scratch = (f"encoder: no {section}.encoder_weights given, so it starts from random weights (seed {cfg.seed}), "
               "stays fixed in stage 1 and trains from scratch in stage 2")
    notes = [f"encoder: weights from {pc.encoder_weights}" if pc.encoder_weights else scratch,
             (f"stage 1: {len(data.stage1)} images without augmentation, encoder outputs cached in {folder} "
              "(reused when present: a continued or repeated run reads them); "
              f"{len(data.held_out)} held-out images score the trials")]
    teacher, note = _teacher_logits(pc, folder, data, data.stage1.num_classes, device)
    if note:
        notes.append(note)
        load_features(train_cache, teacher)  # logits that do not fit the stage-1 images: one line, now
    return {"section": section, "train_cache": str(train_cache), "held_cache": str(held_cache),
            "teacher": teacher, "num_classes": data.stage1.num_classes,
            "background": background_class(data.stage1), "notes": notes}


def _task(payload: dict[str, Any]) -> tuple[RunConfig, ProxyConfig, torch.device, nn.Module]:
    """A task's config, section, device and freshly built trial network (decoder seeded, reference encoder)."""
    cfg, ctx = payload["cfg"], payload["context"]
    pc: ProxyConfig = cfg.sections[ctx["section"]]
    net = trial_network(Genotype.from_dict(payload["genotype"]), ctx["num_classes"], payload["seed"],
                        reference_encoder(cfg.seed, pc.encoder_weights))
    return cfg, pc, torch.device(cfg.device), net


def stage1_task(payload: dict[str, Any]) -> dict[str, Any]:
    """Stage 1 of one trial: {"confusion" (held-out), "state" (averaged decoder, for stage 2), "steps"}."""
    cfg, pc, device, net = _task(payload)
    ctx = payload["context"]
    train, held = load_features(ctx["train_cache"], ctx["teacher"]), load_features(ctx["held_cache"])
    metrics, steps = train_stage1(net, cfg.train, pc, train, held, device, payload["seed"])
    state = {k: v.detach().cpu() for k, v in net.state_dict().items() if not k.startswith("encoder.")}
    return {"confusion": metrics["confusion"], "state": state, "steps": steps}


def stage2_task(payload: dict[str, Any]) -> dict[str, Any]:
    """Stage 2 of one trial, from its stage-1 weights (``payload["stage1"]["state"]``): {"confusion", "steps"}."""
    cfg, pc, device, net = _task(payload)
    net.load_state_dict({**net.state_dict(), **payload["stage1"]["state"]})
    data = proxy_data(cfg, pc)
    metrics, steps = train_stage2(net, cfg.train, pc, data.train, data.held_out, device, payload["seed"] + 1,
                                  cfg.data.num_workers)
    return {"confusion": metrics["confusion"], "steps": steps}


__all__ = ["CachedDecoder", "ChainedOptimizer", "ProxyConfig", "ProxyData", "background_class", "prepare",
           "proxy_data", "reference_encoder", "stage1_task", "stage2_task", "stage_steps", "train_stage1",
           "train_stage2", "trial_network", "without_encoder"]
