"""Retraining a genotype: a :class:`Trainer` inside a :class:`RunSession`.

Every evaluation writes ``checkpoints/last.pt`` (and ``best.pt`` when mIoU
improves) atomically; ``--resume`` reloads ``last.pt`` and continues to the same
final weights and metrics an unbroken run reaches. Ctrl-C saves the current
step first, so nothing trained is lost.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..config import RunConfig, to_dict
from ..errors import ConfigError, SegnasError
from ..genotype import Genotype, save as save_genotype
from ..spaces import get_space
from .checkpoint import load_checkpoint
from .loaders import make_datasets
from .session import Diverged, RunSession
from .trainer import Trainer, model_from_checkpoint


def retrain(genotype: Genotype, cfg: RunConfig, out: str | Path, resume: bool = False,
            stop_after: int | None = None, progress: bool = True,
            resume_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``genotype``'s child network as ``cfg`` says, writing the run to ``out``.

    ``stop_after`` ends the run after that many steps without saving, like a
    kill; it exists so tests can check that resuming reaches the same result.
    On resume the run's own config is used; ``resume_overrides`` may change only
    where it runs (``device``, ``threads``), never what it computes.
    """
    if not resume:  # a space without a pretrained part refuses train.pretrained before a run folder is made
        get_space(genotype.space).check_pretrained(cfg.train.pretrained)
    session = RunSession(out, cfg, resume, resume_overrides, what="run")
    run, ckpt, cfg = session.run, session.ckpt, session.cfg
    if ckpt is not None:
        stored = Genotype.from_dict(ckpt["genotype"], source=str(run / "checkpoints" / "last.pt"))
        if stored.archid != genotype.archid:
            raise ConfigError(f"{run}: this run trains genotype {stored.archid}, not {genotype.archid}; "
                              "resume with the run's own genotype.json")
        done = session.finished()
        if done is not None:  # finished: nothing to build or load (its teacher may be gone by now)
            if (done.get("steps"), done.get("epochs"), done.get("archid")) == \
                    (int(ckpt["step"]), cfg.train.epochs, genotype.archid):
                return {**done, "already_complete": True}
    tc = cfg.train
    session.resume_command = f"segnas retrain --out {run} --resume"
    with session:
        device = session.device
        progress = progress and session.main  # under torchrun rank 0 alone prints
        train_ds, val_ds = make_datasets(cfg.data, cfg.seed)
        num_classes = train_ds.num_classes
        torch.manual_seed(cfg.seed)
        space = get_space(genotype.space)
        model = space.build(genotype, num_classes, aux=True)
        if ckpt is not None:  # a resume loads every weight from its checkpoint; the run's start stays its own
            start = str(ckpt.get("start") or "resumed")
            shown = f"resumed from checkpoints/last.pt at step {int(ckpt['step'])} (the run started {start})"
        elif tc.pretrained:
            start = shown = f"pretrained: {space.load_pretrained(model, tc.pretrained)}; the rest from scratch"
        else:
            start = shown = "from scratch: no train.pretrained given, every weight starts random (seeded)"
        if progress:
            tqdm.write(shown)
        teacher = None
        if tc.distill_teacher:
            teacher, _ = model_from_checkpoint(load_checkpoint(tc.distill_teacher), num_classes)
        trainer = Trainer(model, tc, train_ds, val_ds, device, cfg.seed, cfg.data.num_workers, teacher,
                          progress=progress)
        if ckpt is not None:
            trainer.load_state_dict(ckpt)
            torch.set_rng_state(ckpt["torch_rng"])
            if device.type == "cuda" and ckpt.get("cuda_rng") is not None:  # DropPath draws its masks there
                torch.cuda.set_rng_state(ckpt["cuda_rng"], device)
        elif session.main:
            save_genotype(genotype, run / "genotype.json")
        session.begin()
        session.open_logs(trainer.step)
        log, writer = session.log, session.writer

        def checkpoint(best: bool) -> None:
            trainer.sync_buffers()
            payload = {**trainer.state_dict(), "genotype": genotype.to_dict(), "num_classes": num_classes,
                       "class_names": list(train_ds.class_names), "config": to_dict(cfg), "start": start,
                       "torch_rng": torch.get_rng_state(),
                       **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {})}
            if best:
                session.save(payload, "best.pt")
            session.save(payload, "last.pt")

        saved = {"step": trainer.step if ckpt is not None else -1}

        def on_log(record: dict[str, Any]) -> None:
            log.write(record)
            writer.add_scalar("train/loss", record["loss"], record["step"])
            writer.add_scalar("train/lr", record["lr"], record["step"])

        def on_eval(m: dict[str, Any], best: bool) -> None:
            log.write({"step": trainer.step, "epoch": (trainer.step - 1) // trainer.steps_per_epoch,
                       "val_miou": m["miou"], "val_fwiou": m["fwiou"], "val_pixel_acc": m["pixel_acc"],
                       "val_mean_acc": m["mean_acc"], "val_iou": m["iou"]})
            writer.add_scalar("val/miou", m["miou"], trainer.step)
            writer.add_scalar("val/pixel_acc", m["pixel_acc"], trainer.step)
            checkpoint(best)
            saved["step"] = trainer.step

        t_start = time.perf_counter()
        try:
            why = trainer.fit(on_log, on_eval, should_stop=session.stop.is_set, stop_after=stop_after,
                              patience=tc.patience)
        except Diverged as e:
            raise session.diverged(e) from None
        if why == "killed":
            return {"interrupted": True, "step": trainer.step}
        if why == "stopped":  # Ctrl-C: stop between steps, where the state is consistent
            if saved["step"] != trainer.step:
                checkpoint(False)
            raise SegnasError(f"interrupted at step {trainer.step}/{trainer.total}; continue with "
                              f"'segnas retrain --out {run} --resume'")
        wall = time.perf_counter() - t_start
        return session.finish({
            "run_dir": str(run), "archid": genotype.archid, "steps": trainer.step, "epochs": tc.epochs,
            "best_miou": trainer.best_miou, "early_stopped": why == "early_stop",
            "final": {k: v for k, v in trainer.metrics.items() if k != "confusion"},
            "wall_s": wall, "images_per_s": trainer.images_seen / wall if wall > 0 else math.nan,
            "num_classes": num_classes, "class_names": list(train_ds.class_names), "start": start,
        })
