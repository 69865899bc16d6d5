"""Retraining a genotype: the child-network training loop.

Seeded and resumable: the learning rate is a pure function of the step, data
order and augmentation are functions of (seed, epoch, index), and every
evaluation writes ``checkpoints/last.pt`` (and ``best.pt`` when mIoU improves)
atomically. ``--resume`` reloads ``last.pt`` and continues to the same final
weights and metrics an unbroken run reaches. Ctrl-C saves the current step
first, so nothing trained is lost.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..config import RunConfig, anchored, as_saved, from_dict, to_dict
from ..errors import CheckpointError, ConfigError, SegnasError
from ..genotype import Genotype, save as save_genotype
from ..losses import kl_distillation, make_criterion, seg_loss_with_aux
from ..spaces import get_space
from .checkpoint import atomic_save, load_checkpoint
from .ema import ModelEMA
from .evaluate import evaluate
from .loaders import eval_loader, make_datasets, train_loader
from .rundir import MetricsLog, environment, prepare_run_dir, write_json, write_yaml


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


def resolve_device(name: str) -> torch.device:
    """A torch device that exists here, or a ConfigError saying what to use instead."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {name!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: no CUDA GPU here; use --device cpu (the paper preset "
                          "assumes a GPU)")
    return device


def resumed_config(ckpt: dict[str, Any], overrides: dict[str, Any] | None, what: str = "run") -> RunConfig:
    """The checkpoint's own config; a resume may change only where it runs (device, threads)."""
    cfg = from_dict(as_saved(ckpt["config"]))
    for key, value in (overrides or {}).items():
        if key not in ("device", "threads"):
            raise ConfigError(f"--resume continues the {what} with its own config; '{key}' cannot change "
                              "(only --device and --threads can)")
        setattr(cfg, key, value)
    return cfg


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
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt.get('path', 'checkpoint')}: weights do not fit the genotype "
                              f"({str(e).splitlines()[0]})") from None
    if not aux:
        model.aux_heads = nn.ModuleDict()
    return model, genotype


@dataclass
class _State:
    step: int = 0
    best_miou: float = -1.0


def retrain(genotype: Genotype, cfg: RunConfig, out: str | Path, resume: bool = False,
            stop_after: int | None = None, progress: bool = True,
            resume_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``genotype``'s child network as ``cfg`` says, writing the run to ``out``.

    ``stop_after`` ends the run after that many steps without saving, like a
    kill; it exists so tests can check that resuming reaches the same result.
    On resume the run's own config is used; ``resume_overrides`` may change only
    where it runs (``device``, ``threads``), never what it computes.
    """
    run = prepare_run_dir(out, resume)
    cfg = anchored(cfg)
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt") if resume else None
    if ckpt is not None:
        cfg = resumed_config(ckpt, resume_overrides)
        stored = Genotype.from_dict(ckpt["genotype"], source=str(run / "checkpoints" / "last.pt"))
        if stored.archid != genotype.archid:
            raise ConfigError(f"{run}: this run trains genotype {stored.archid}, not {genotype.archid}; "
                              "resume with the run's own genotype.json")
        done = run / "result.json"
        if done.is_file():  # finished: nothing to build or load (its teacher may be gone by now)
            result = json.loads(done.read_text())
            if (result.get("steps"), result.get("epochs"), result.get("archid")) == \
                    (int(ckpt["step"]), cfg.train.epochs, genotype.archid):
                return {**result, "already_complete": True}
    tc = cfg.train
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    train_ds, val_ds = make_datasets(cfg.data, cfg.seed)
    num_classes = train_ds.num_classes
    steps_per_epoch = len(train_ds) // tc.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size {tc.batch_size} is larger than the {len(train_ds)} training "
                          "images; lower it")
    total = tc.epochs * steps_per_epoch
    eval_every = tc.eval_every or steps_per_epoch

    torch.manual_seed(cfg.seed)
    model = get_space(genotype.space).build(genotype, num_classes, aux=True)
    fmt = torch.channels_last if tc.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    optimizer = make_optimizer(model, tc)
    ema = ModelEMA(model, tc.ema_decay) if tc.ema_decay else None
    teacher = None
    if tc.distill_teacher:
        teacher, _ = model_from_checkpoint(load_checkpoint(tc.distill_teacher), num_classes)
        teacher = teacher.to(device, memory_format=fmt).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    criterion = make_criterion(tc.loss, train_ds.ignore_index,
                               **({"thresh": tc.ohem_thresh, "min_kept": tc.ohem_min_kept} if tc.loss == "ohem" else {}))
    state = _State()
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        torch.set_rng_state(ckpt["torch_rng"])
        state = _State(int(ckpt["step"]), float(ckpt["best_miou"]))
    else:
        write_yaml(run / "config.yaml", to_dict(cfg))
        write_json(run / "env.json", environment(cfg.seed, str(device)))
        save_genotype(genotype, run / "genotype.json")

    # a fresh run drops whatever a failed earlier start logged; a resumed one what came after its checkpoint
    log = MetricsLog(run / "metrics.jsonl", resume_step=state.step)
    writer = _tensorboard(run / "tb", purge_step=state.step + 1)
    val_loader = eval_loader(val_ds, cfg.data.num_workers)

    def checkpoint(metrics: dict[str, Any] | None) -> None:
        payload = {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "ema": ema.state_dict() if ema is not None else None, "step": state.step,
            "best_miou": state.best_miou, "genotype": genotype.to_dict(), "num_classes": num_classes,
            "class_names": list(train_ds.class_names), "config": to_dict(cfg),
            "torch_rng": torch.get_rng_state(),
            "metrics": {k: v for k, v in (metrics or {}).items() if k != "confusion"},
        }
        if metrics is not None and metrics["miou"] >= state.best_miou:
            payload["best_miou"] = metrics["miou"]
            atomic_save(payload, run / "checkpoints" / "best.pt")
            state.best_miou = metrics["miou"]
        atomic_save(payload, run / "checkpoints" / "last.pt")

    saved_step = state.step if ckpt is not None else -1
    bar = tqdm(total=total, initial=state.step, disable=not progress, desc="retrain", unit="step",
               dynamic_ncols=True, mininterval=1.0)
    t_start, images_seen, last_loss = time.perf_counter(), 0, math.nan
    last_metrics: dict[str, Any] = dict(ckpt["metrics"]) if ckpt is not None else {}
    model.train()
    try:
        with _stop_requests() as stop:
            while state.step < total:
                epoch, start_batch = divmod(state.step, steps_per_epoch)
                for images, masks in train_loader(train_ds, tc.batch_size, cfg.seed, epoch, start_batch,
                                                  cfg.data.num_workers):
                    lr = lr_at(state.step, total, steps_per_epoch, tc)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    images = images.to(device).contiguous(memory_format=fmt)
                    masks = masks.to(device)
                    logits, aux = model(images, aux=True)
                    loss = seg_loss_with_aux(criterion, logits, aux, masks, tc.aux_weight)
                    record: dict[str, Any] = {"step": state.step + 1, "epoch": epoch, "lr": lr}
                    if teacher is not None:
                        with torch.no_grad():
                            t_logits = teacher(images)
                        kd = kl_distillation(logits, t_logits, tc.distill_temperature)
                        record["distill"] = kd.detach()
                        loss = loss + tc.distill_weight * kd
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if tc.grad_clip:
                        nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                    optimizer.step()
                    if ema is not None:
                        ema.update(model)
                    state.step += 1
                    images_seen += images.shape[0]
                    bar.update(1)
                    if state.step % tc.log_every == 0 or state.step == total:
                        # reading the loss syncs with the device: only on logging steps
                        record["loss"] = last_loss = loss.item()
                        if "distill" in record:
                            record["distill"] = record["distill"].item()
                        if not math.isfinite(record["loss"]):
                            raise SegnasError(f"loss became {record['loss']} at step {state.step}; lower "
                                              f"train.lr (now {tc.lr}) or check the data")
                        log.write(record)
                        writer.add_scalar("train/loss", record["loss"], state.step)
                        writer.add_scalar("train/lr", lr, state.step)
                        bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{lr:.2g}",
                                        miou=f"{100 * last_metrics.get('miou', 0):.1f}")
                    if state.step % eval_every == 0 or state.step == total:
                        net = ema.shadow if ema is not None else model
                        last_metrics = evaluate(net, val_loader, num_classes, device, train_ds.ignore_index,
                                                channels_last=tc.channels_last)
                        model.train()
                        log.write({"step": state.step, "epoch": epoch, "val_miou": last_metrics["miou"],
                                   "val_fwiou": last_metrics["fwiou"], "val_pixel_acc": last_metrics["pixel_acc"],
                                   "val_mean_acc": last_metrics["mean_acc"], "val_iou": last_metrics["iou"]})
                        writer.add_scalar("val/miou", last_metrics["miou"], state.step)
                        writer.add_scalar("val/pixel_acc", last_metrics["pixel_acc"], state.step)
                        checkpoint(last_metrics)
                        saved_step = state.step
                        bar.set_postfix(loss=f"{last_loss:.3f}", lr=f"{lr:.2g}",
                                        miou=f"{100 * last_metrics['miou']:.1f}")
                    if stop_after is not None and state.step >= stop_after:
                        return {"interrupted": True, "step": state.step}
                    if stop.is_set():  # Ctrl-C: stop between steps, where the state is consistent
                        if saved_step != state.step:
                            checkpoint(None)
                        raise SegnasError(f"interrupted at step {state.step}/{total}; continue with "
                                          f"'segnas retrain --out {run} --resume'")
                    if state.step >= total:
                        break
    finally:
        bar.close()
        writer.close()
    wall = time.perf_counter() - t_start
    result = {
        "run_dir": str(run), "archid": genotype.archid, "steps": state.step, "epochs": tc.epochs,
        "best_miou": state.best_miou, "final": {k: v for k, v in last_metrics.items() if k != "confusion"},
        "wall_s": wall, "images_per_s": images_seen / wall if wall > 0 else math.nan,
        "num_classes": num_classes, "class_names": list(train_ds.class_names),
    }
    write_json(run / "result.json", result)
    return result


@contextmanager
def _stop_requests():
    """Turn the first Ctrl-C into a request to stop after the current step; a second one stops at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request(signum, frame):
        stop.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


class _NullWriter:
    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def _tensorboard(path: Path, purge_step: int | None):
    """TensorBoard scalars when the package is installed; a no-op writer otherwise."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard missing or broken: training must not depend on it
        return _NullWriter()
    return SummaryWriter(str(path), purge_step=purge_step)
