"""Training a child network: a :class:`Trainer` with a step budget, callbacks and early stopping.

Seeded and resumable: the learning rate and the drop-path probability
(``train.drop_path``) are pure functions of the global step, data
order and augmentation are functions of (seed, epoch, index), so a trainer
restored from its ``state_dict`` continues to the same weights an unbroken
run reaches. The trainer knows nothing of run folders: ``retrain``
(``segnas.engine.retrain``) wraps it in a :class:`~segnas.engine.session.RunSession`,
and a trial of a multi-trial search is a trainer with a short budget that
returns its metrics (:func:`train_network`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..config import TrainConfig
from ..errors import CheckpointError, ConfigError
from ..genotype import Genotype
from ..losses import kl_distillation, make_criterion, seg_loss_with_aux
from ..ops import set_drop_path
from ..ops.syncbn import convert_sync_batchnorm
from ..spaces import get_space
from . import distributed
from .ema import ModelEMA
from .evaluate import evaluate
from .loaders import eval_loader, to_device, train_loader
from .session import Diverged, non_finite


def lr_at(step: int, total: int, steps_per_epoch: int, cfg) -> float:
    """Learning rate at ``step`` (0-based): optional linear warm-up, then the schedule."""
    base = cfg.lr
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return base * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "poly":
        return base * (1.0 - step / max(total, 1)) ** cfg.poly_power
    if cfg.schedule == "exp":
        return base * cfg.exp_gamma ** (step // max(steps_per_epoch, 1))
    if cfg.schedule == "constant":
        return base
    raise ConfigError(f"train.schedule {cfg.schedule!r} is unknown; choose poly, exp or constant")


def drop_path_at(step: int, total: int, final: float) -> float:
    """ScheduledDropPath (NASNet; Auto-DeepLab's retraining): linear in the global ``step`` (0-based) from 0 at
    the first step to ``final`` at the last, so a resumed run continues the schedule where it stopped."""
    if final <= 0:
        return 0.0
    return final * min(1.0, step / max(total - 1, 1))


def make_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"train.optimizer {cfg.optimizer!r} is unknown; choose sgd or adam")


def model_from_checkpoint(ckpt: dict[str, Any], num_classes: int | None = None, aux: bool = False,
                          use_ema: bool = True) -> tuple[nn.Module, Genotype]:
    """Rebuild a trained network (EMA weights when present) from a loaded checkpoint."""
    genotype = Genotype.from_dict(ckpt["genotype"], source=ckpt.get("path", "checkpoint"))
    ck_classes = int(ckpt["num_classes"])
    if num_classes is not None and num_classes != ck_classes:
        raise CheckpointError(f"{ckpt.get('path', 'checkpoint')}: trained for {ck_classes} classes but the "
                              f"data has {num_classes}; evaluate it on data with the same classes")
    model = get_space(genotype.space).build(genotype, ck_classes, aux=True)
    state = ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    bad = non_finite(state)
    if bad is not None:
        raise CheckpointError(f"{ckpt.get('path', 'checkpoint')}: weight {bad} holds NaN or infinity (a diverged "
                              "run); evaluate an earlier checkpoint")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt.get('path', 'checkpoint')}: weights do not fit the genotype "
                              f"({str(e).splitlines()[0]})") from None
    if not aux:
        model.aux_heads = nn.ModuleDict()
    return model, genotype


class Trainer:
    """Trains ``model`` on ``train_ds`` with the ``train.*`` settings and evaluates it on ``val_ds``.

    ``total_steps`` is the budget (default: ``train.epochs`` passes); ``teacher``
    adds distillation from a fixed network (``distill_loss`` of student and
    teacher logits, default KL at ``train.distill_temperature``). ``optimizer``
    replaces the one ``train.*`` describes (e.g. one learning rule per part of
    the network): each of its groups keeps its own learning rate, scaled by
    the schedule's factor ``lr_at(step) / train.lr``. A batch's inputs may be a
    tensor or a (nested) list or dict of them, whatever ``model`` reads.
    Call :meth:`fit`, or :meth:`train_step` for one optimisation step of your own.

    Under torchrun (see ``segnas.engine.distributed``) each process trains on its share of every
    global batch of ``train.batch_size``, gradients are averaged, ``train.sync_bn`` makes BatchNorm
    use the global batch's statistics, and evaluations score each process's share of the val set.
    """

    def __init__(self, model: nn.Module, tc: TrainConfig, train_ds, val_ds, device: torch.device, seed: int,
                 num_workers: int = 0, teacher: nn.Module | None = None, total_steps: int | None = None,
                 progress: bool = False, desc: str = "retrain", optimizer: torch.optim.Optimizer | None = None,
                 distill_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> None:
        self.tc, self.train_ds, self.val_ds, self.device, self.seed = tc, train_ds, val_ds, device, seed
        self.num_workers, self.progress, self.desc = num_workers, progress, desc
        distributed.check_batch(tc.batch_size, "train.batch_size")
        self.steps_per_epoch = len(train_ds) // tc.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"train.batch_size {tc.batch_size} is larger than the {len(train_ds)} training "
                              "images; lower it")
        self.total = total_steps if total_steps is not None else tc.epochs * self.steps_per_epoch
        self.eval_every = tc.eval_every or self.steps_per_epoch
        self.fmt = torch.channels_last if tc.channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=self.fmt)
        if tc.sync_bn and distributed.active():
            convert_sync_batchnorm(self.model)
        distributed.broadcast_module(self.model)  # every process starts from rank 0's weights
        self.drop_path = 0.0  # the probability of the last step
        if set_drop_path(self.model, 0.0) == 0 and tc.drop_path > 0:
            raise ConfigError(f"train.drop_path is {tc.drop_path}, but this {type(model).__name__} has no DropPath "
                              "module, so it would change nothing (Auto-DeepLab's cells have them); set "
                              "train.drop_path=0")
        self.own_lrs = None if optimizer is None else [g["lr"] for g in optimizer.param_groups]
        self.optimizer = optimizer if optimizer is not None else make_optimizer(self.model, tc)
        self.distill_loss = distill_loss or (lambda s, t: kl_distillation(s, t, tc.distill_temperature))
        self.ema = ModelEMA(self.model, tc.ema_decay) if tc.ema_decay else None
        self.teacher = teacher
        if teacher is not None:
            self.teacher = teacher.to(device, memory_format=self.fmt).eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        self.criterion = make_criterion(tc.loss, train_ds.ignore_index, **(
            {"thresh": tc.ohem_thresh, "min_kept": tc.ohem_min_kept} if tc.loss == "ohem" else {}))
        self.step, self.best_miou, self.evals_since_best = 0, -1.0, 0
        self.metrics: dict[str, Any] = {}
        self.images_seen, self.lr = 0, tc.lr

    # -- one step ----------------------------------------------------------------
    def train_step(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step at the learning rate of the current step; losses as tensors (no sync)."""
        tc = self.tc
        self.lr = lr_at(self.step, self.total, self.steps_per_epoch, tc)
        for k, group in enumerate(self.optimizer.param_groups):
            group["lr"] = self.lr if self.own_lrs is None else self.own_lrs[k] * (self.lr / tc.lr)
        if tc.drop_path > 0:
            self.drop_path = drop_path_at(self.step, self.total, tc.drop_path)
            set_drop_path(self.model, self.drop_path)
        images = to_device(images, self.device, self.fmt)
        masks = masks.to(self.device)
        logits, aux = self.model(images, aux=True)
        loss = seg_loss_with_aux(self.criterion, logits, aux, masks, tc.aux_weight)
        kd = None
        if self.teacher is not None:
            with torch.no_grad():
                t_logits = self.teacher(images)
            kd = self.distill_loss(logits, t_logits)
            loss = loss + tc.distill_weight * kd
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.model.parameters())
        if tc.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        self.images_seen += masks.shape[0] * distributed.world_size()
        return {"loss": loss.detach(), **({"distill": kd.detach()} if kd is not None else {})}

    def evaluate(self, loader=None) -> dict[str, Any]:
        """Metrics on the validation set (or ``loader``) with the EMA weights where there are some; a
        diverged network (a NaN or infinite weight) is a :class:`Diverged`, never evaluated."""
        self.sync_buffers()  # first: then every process checks the same statistics and decides alike
        self.check_finite()
        net = self.ema.shadow if self.ema is not None else self.model
        metrics = evaluate(net, loader if loader is not None else eval_loader(self.val_ds, self.num_workers),
                           self.train_ds.num_classes, self.device, self.train_ds.ignore_index,
                           channels_last=self.tc.channels_last)
        self.model.train()
        return metrics

    def check_finite(self) -> None:
        """Raise :class:`Diverged` when a weight or statistic of the network (or its EMA) is not finite."""
        bad = non_finite({"model": self.model.state_dict(),
                          **({"ema": self.ema.state_dict()} if self.ema is not None else {})})
        if bad is not None:
            raise Diverged(self.step, f"{bad} is not finite", f"lower train.lr (now {self.tc.lr}) or check the data")

    def sync_buffers(self) -> None:
        """Rank 0's BatchNorm statistics on every process (without sync_bn each saw only its shares), so
        evaluations and checkpoints agree; nothing in a single process."""
        distributed.broadcast_buffers(self.model)
        if self.ema is not None:
            distributed.broadcast_buffers(self.ema.shadow)

    # -- the loop ----------------------------------------------------------------------
    def fit(self, on_log: Callable[[dict[str, Any]], None] | None = None,
            on_eval: Callable[[dict[str, Any], bool], None] | None = None,
            should_stop: Callable[[], bool] | None = None, stop_after: int | None = None,
            patience: int | None = None) -> str:
        """Train to the budget; returns why it ended: "done", "early_stop", "stopped" or "killed".

        ``on_log(record)`` every ``train.log_every`` steps, ``on_eval(metrics, best)``
        every ``train.eval_every`` (``best``: no earlier evaluation was better); ``patience``
        evaluations in a row without a higher mIoU end it
        early; ``should_stop()`` is asked between steps; ``stop_after`` ends like a kill (tests).
        A NaN or infinite loss, checked every step, is a :class:`Diverged` naming the step.
        """
        tc = self.tc
        val_loader = eval_loader(self.val_ds, self.num_workers)
        bar = tqdm(total=self.total, initial=self.step, disable=not self.progress, desc=self.desc, unit="step",
                   dynamic_ncols=True, mininterval=1.0)
        self.model.train()
        if patience is not None and self.evals_since_best >= patience:
            return "early_stop"  # a resume after the evaluation that ended it
        try:
            while self.step < self.total:
                epoch, start_batch = divmod(self.step, self.steps_per_epoch)
                for images, masks in train_loader(self.train_ds, tc.batch_size, self.seed, epoch, start_batch,
                                                  self.num_workers):
                    logs = self.train_step(images, masks)
                    lr = self.lr
                    bar.update(1)
                    # one host sync a step: the losses, averaged over the processes
                    logs, finite, _ = distributed.step_flags(logs, False)
                    if not finite:
                        values = ", ".join(f"{k} {float(v):g}" for k, v in logs.items())
                        raise Diverged(self.step, f"loss not finite ({values})",
                                       f"lower train.lr (now {tc.lr}) or check the data")
                    if self.step % tc.log_every == 0 or self.step == self.total:
                        record = {"step": self.step, "epoch": epoch, "lr": lr,
                                  **({"drop_path": self.drop_path} if tc.drop_path > 0 else {}),
                                  **{k: float(v) for k, v in logs.items()}}
                        if on_log is not None:
                            on_log(record)
                        bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{lr:.2g}",
                                        miou=f"{100 * self.metrics.get('miou', 0):.1f}")
                    if self.step % self.eval_every == 0 or self.step == self.total:
                        self.metrics = self.evaluate(val_loader)
                        miou = self.metrics["miou"]
                        best = miou >= self.best_miou
                        self.evals_since_best = 0 if miou > self.best_miou else self.evals_since_best + 1
                        self.best_miou = max(self.best_miou, miou)  # a checkpoint in on_eval records this one
                        if on_eval is not None:
                            on_eval(self.metrics, best)
                        if patience is not None and self.evals_since_best >= patience:
                            return "early_stop"
                    if stop_after is not None and self.step >= stop_after:
                        return "killed"
                    # a stop asked of any process (also during the evaluation) stops every one after this step
                    if should_stop is not None and distributed.agree(should_stop()):
                        return "stopped"
                    if self.step >= self.total:
                        break
            return "done"
        finally:
            bar.close()

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None, "step": self.step,
                "best_miou": self.best_miou, "evals_since_best": self.evals_since_best,
                "metrics": {k: v for k, v in self.metrics.items() if k != "confusion"}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.step, self.best_miou = int(state["step"]), float(state["best_miou"])
        self.evals_since_best = int(state.get("evals_since_best", 0))
        self.metrics = dict(state.get("metrics") or {})


def train_network(genotype: Genotype, tc: TrainConfig, train_ds, val_ds, device: torch.device, seed: int,
                  steps: int | None = None, num_workers: int = 0,
                  should_stop: Callable[[], bool] | None = None) -> tuple[dict[str, Any], Trainer]:
    """Build ``genotype`` and train it for ``steps`` (a trial of a multi-trial search), without a run
    folder: (its metrics, the trainer holding the network). ``stopped`` is True where ``should_stop``
    cut it short."""
    torch.manual_seed(seed)
    space = get_space(genotype.space)
    model = space.build(genotype, train_ds.num_classes, aux=True)
    if tc.pretrained:
        space.load_pretrained(model, tc.pretrained)
    trainer = Trainer(model, tc, train_ds, val_ds, device, seed, num_workers, total_steps=steps)
    t0 = time.perf_counter()
    why = trainer.fit(should_stop=should_stop)
    return {"archid": genotype.archid, "best_miou": trainer.best_miou, "steps": trainer.step,
            "final": {k: v for k, v in trainer.metrics.items() if k != "confusion"},
            "wall_s": time.perf_counter() - t0, "stopped": why == "stopped"}, trainer
