"""First-order bilevel differentiable search, shared by every space with a supernet.

Weights are updated on trainA with SGD, architecture parameters on trainB
with Adam (two optimisers, two parameter groups), alternating step by step
after ``pretrain_epochs`` of weight-only training (DARTS first order, as
FasterSeg and Auto-DeepLab use); an architecture step may average several
trainB batches (``search.arch_batches``) when one is too noisy to decide on. The space supplies a *problem* object with
the losses and the decoding (``derive`` returns the genotypes, a record and a
progress line per architecture); this module owns the loop, the learning-rate
schedule (exponential per epoch or cosine per step), the data halves, the
checkpoints and resuming.

Resumable: the learning rate is a function of the epoch and step, the data order of
(seed, epoch), and every random width draw comes from the problem's own
generator, saved in the checkpoint with everything else. A checkpoint is
written after every epoch's decoding and when Ctrl-C stops the run between
steps; ``--resume`` continues to the same genotypes an unbroken run reaches.

Every search epoch's record carries ``arch_signal`` (``arch_signal.py``): how
far the architecture gradients stand above their noise, and how many steps
that takes to decide a row, against the steps the search has.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import RunConfig, anchored, to_dict
from ..data import EvalTransform, build_dataset, save_splits
from ..data.splits import make_splits
from ..engine.checkpoint import atomic_save, load_checkpoint
from ..engine.loaders import data_root, dataset_kwargs, make_datasets, train_loader
from ..engine.rundir import MetricsLog, environment, prepare_run_dir, write_json, write_yaml
from ..engine.trainer import _stop_requests, _tensorboard, resolve_device, resumed_config
from ..errors import ConfigError, SegnasError
from ..genotype import load as load_genotype, save as save_genotype
from .arch_signal import ArchSignal, signal_line


class BilevelProblem(Protocol):
    """What a space hands the strategy: parameters, losses (they call backward) and decoding."""

    def weight_parameters(self) -> list[nn.Parameter]: ...
    def arch_parameters(self) -> list[nn.Parameter]: ...
    def weight_backward(self, images: torch.Tensor, masks: torch.Tensor, pretrain: bool) -> dict[str, float]: ...
    def arch_backward(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]: ...
    def derive(self, loader: DataLoader | None) -> dict[str, Any]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class SearchData:
    train_a: Any
    train_b: Any
    select: Any  # trainB images without augmentation, for scoring candidates
    num_classes: int
    ignore_index: int


def search_data(cfg: RunConfig, run: Path) -> SearchData:
    """trainA / trainB halves of the training split (seeded, saved to ``splits.json``)."""
    train, _ = make_datasets(cfg.data, cfg.seed)
    plain = build_dataset(cfg.data.dataset, data_root(cfg.data), cfg.data.train_split, transform=EvalTransform(),
                          seed=cfg.seed, cache=cfg.data.cache, **dataset_kwargs(cfg.data, cfg.data.train_split))
    splits = make_splits(len(train), cfg.seed, 0.0, 0.5)
    save_splits(run / "splits.json", splits, {"dataset": cfg.data.dataset, "split": cfg.data.train_split,
                                              "seed": cfg.seed, "num_items": len(train)})
    select = plain.subset(splits["trainB"][: cfg.search.select_images])
    return SearchData(train.subset(splits["trainA"]), train.subset(splits["trainB"]), select,
                      train.num_classes, train.ignore_index)


def epoch_steps(sc, data: SearchData) -> int:
    """Steps in one search epoch: a trainA and a trainB batch each, capped by ``search.steps_per_epoch``."""
    steps = min(len(data.train_a), len(data.train_b)) // sc.batch_size
    return min(steps, sc.steps_per_epoch) if sc.steps_per_epoch else steps


def trainb_batches(data: SearchData, sc, seed: int, epoch: int, start_step: int = 0,
                   num_workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """trainB batches for one epoch's architecture steps from ``start_step`` on, ``search.arch_batches`` per step.

    They come in passes over trainB, each pass its own shuffle and augmentation
    (``epoch * passes + pass``), so a resumed epoch sees the same batches; with
    one batch per step this is the single pass ``epoch``.
    """
    k, per_pass = sc.arch_batches, len(data.train_b) // sc.batch_size
    passes = math.ceil(epoch_steps(sc, data) * k / per_pass)
    first = start_step * k
    for p in range(first // per_pass, passes):
        skip = first - p * per_pass if p == first // per_pass else 0
        yield from train_loader(data.train_b, sc.batch_size, seed, epoch * passes + p, skip, num_workers)


def arch_step(problem: BilevelProblem, batches: list, device: torch.device) -> dict[str, float]:
    """Architecture gradients averaged over ``batches``: one forward and backward each, so the memory
    stays that of one batch while the noise of the step falls as 1/sqrt(len(batches))."""
    params = problem.arch_parameters()
    for p in params:
        p.grad = None
    logs: dict[str, float] = {}
    for images, masks in batches:
        for key, value in problem.arch_backward(images.to(device), masks.to(device)).items():
            logs[key] = logs.get(key, 0.0) + value / len(batches)
    if len(batches) > 1:
        for p in params:
            if p.grad is not None:
                p.grad.div_(len(batches))
    return logs


@dataclass
class _State:
    step: int = 0
    epochs_done: int = 0


def run_search(method: str, make_problem, cfg: RunConfig, out: str | Path, resume: bool = False,
               stop_after: int | None = None, progress: bool = True,
               resume_overrides: dict[str, Any] | None = None,
               check: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Run (or resume) a search, writing genotypes per epoch and the final ones to ``out``.

    ``make_problem(cfg, data, run, device)`` builds the space's problem; ``check(cfg.search)``
    refuses a bad configuration before the run folder is created.
    ``stop_after`` ends the run after that many steps without saving, like a kill (tests).
    """
    if check is not None and not resume:
        check(cfg.search)
    run = prepare_run_dir(out, resume)
    cfg = anchored(cfg)
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt", required=("search",)) if resume else None
    if ckpt is not None:
        if ckpt["method"] != method:
            raise ConfigError(f"{run}: this is a {ckpt['method']} search, not {method}")
        cfg = resumed_config(ckpt, resume_overrides, "search")
    sc = cfg.search
    if ckpt is not None and int(ckpt["epochs_done"]) >= sc.pretrain_epochs + sc.epochs \
            and (run / "result.json").is_file():  # finished: nothing to build or load
        return {**json.loads((run / "result.json").read_text()), "already_complete": True}
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    data = search_data(cfg, run)
    if ckpt is None:
        write_yaml(run / "config.yaml", to_dict(cfg))
        write_json(run / "env.json", environment(cfg.seed, str(device)))
    torch.manual_seed(cfg.seed)
    problem = make_problem(cfg, data, run, device)
    opt_w = torch.optim.SGD(problem.weight_parameters(), lr=sc.lr, momentum=sc.momentum,
                            weight_decay=sc.weight_decay)
    opt_a = torch.optim.Adam(problem.arch_parameters(), lr=sc.arch_lr, betas=tuple(sc.arch_betas),
                             weight_decay=sc.arch_weight_decay)
    steps_per_epoch = epoch_steps(sc, data)
    if steps_per_epoch == 0:
        raise ConfigError(f"search.batch_size {sc.batch_size} is larger than trainA/trainB "
                          f"({len(data.train_a)}/{len(data.train_b)} images); lower it")
    n_epochs = sc.pretrain_epochs + sc.epochs
    total = n_epochs * steps_per_epoch
    state, history = _State(), []
    signal = ArchSignal(problem.arch_parameters())
    if ckpt is not None:
        try:
            problem.load_state_dict(ckpt["search"])
        except (RuntimeError, KeyError) as e:  # a supernet of another layout or segnas version
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"{run}: its checkpoint does not fit this {method} supernet ({first}); "
                              "start a new search with another --out") from None
        opt_w.load_state_dict(ckpt["opt_w"])
        opt_a.load_state_dict(ckpt["opt_a"])
        torch.set_rng_state(ckpt["torch_rng"])
        state = _State(int(ckpt["step"]), int(ckpt["epochs_done"]))
        if "arch_signal" in ckpt:
            signal.load_state_dict(ckpt["arch_signal"])
        history = list(ckpt["history"])
    log = MetricsLog(run / "metrics.jsonl", resume_step=state.step)
    writer = _tensorboard(run / "tb", purge_step=state.step + 1)
    select_loader = DataLoader(data.select, batch_size=1, shuffle=False) if len(data.select) else None

    def checkpoint() -> None:
        atomic_save({"search": problem.state_dict(), "opt_w": opt_w.state_dict(), "opt_a": opt_a.state_dict(),
                     "step": state.step, "epochs_done": state.epochs_done, "history": history,
                     "torch_rng": torch.get_rng_state(), "arch_signal": signal.state_dict(),
                     "config": to_dict(cfg), "method": method,
                     "num_classes": data.num_classes}, run / "checkpoints" / "last.pt")

    bar = tqdm(total=total, initial=state.step, disable=not progress, desc=f"search {method}", unit="step",
               dynamic_ncols=True, mininterval=1.0)
    t_start = time.perf_counter()
    saved_step = state.step if ckpt is not None else -1
    try:
        with _stop_requests() as stop:
            while state.epochs_done < n_epochs:
                epoch = state.epochs_done
                searching = epoch >= sc.pretrain_epochs
                start = state.step - epoch * steps_per_epoch
                if start < steps_per_epoch:
                    loader_a = train_loader(data.train_a, sc.batch_size, cfg.seed, epoch, start, cfg.data.num_workers)
                    stream_b = trainb_batches(data, sc, cfg.seed + 1, epoch, start, cfg.data.num_workers)
                    for img_a, mask_a in loader_a:
                        lr = search_lr(sc, epoch, state.step, total)
                        for group in opt_w.param_groups:
                            group["lr"] = lr
                        opt_w.zero_grad(set_to_none=True)
                        logs = problem.weight_backward(img_a.to(device), mask_a.to(device), pretrain=not searching)
                        if sc.grad_clip:
                            nn.utils.clip_grad_norm_(problem.weight_parameters(), sc.grad_clip)
                        opt_w.step()
                        if searching:
                            logs.update(arch_step(problem, [next(stream_b) for _ in range(sc.arch_batches)], device))
                            signal.update(problem.arch_parameters())
                            opt_a.step()
                        state.step += 1
                        bar.update(1)
                        loss = sum(v for k, v in logs.items() if k.startswith("loss_"))
                        if not math.isfinite(loss):
                            raise SegnasError(f"search loss became {loss} at step {state.step}; lower "
                                              f"search.lr (now {sc.lr}) or check the data")
                        log.write({"step": state.step, "epoch": epoch, "lr": lr, "searching": searching, **logs})
                        writer.add_scalar("search/weight_loss", loss, state.step)
                        bar.set_postfix(phase="search" if searching else "pretrain", loss=f"{loss:.3f}")
                        if stop_after is not None and state.step >= stop_after:
                            return {"interrupted": True, "step": state.step}
                        if stop.is_set():
                            if saved_step != state.step:
                                checkpoint()
                            raise SegnasError(f"interrupted at step {state.step}/{total}; continue with "
                                              f"'segnas search {method} --out {run} --resume'")
                        if state.step - epoch * steps_per_epoch >= steps_per_epoch:
                            break
                decoded = problem.derive(select_loader)
                record = _epoch_record(epoch, searching, decoded["records"], problem)
                if searching:
                    record["arch_signal"] = signal.summary(problem.arch_parameters(), sc.epochs * steps_per_epoch)
                    signal.reset()
                adapt = getattr(problem, "adapt_lambda", None)
                if adapt is not None and searching and "student" in record["architectures"]:
                    adapt(record["architectures"]["student"]["latency_ms"])
                    record["latency_lambda"] = problem.latency_lambda  # the lambda the next epoch uses
                for name, g in decoded["genotypes"].items():
                    save_genotype(g, run / "genotypes" / f"epoch{epoch + 1:03d}_{name}.json")
                history.append(record)
                log.write({"step": state.step, **record})
                for name, r in record["architectures"].items():
                    for key, value in r.items():
                        if isinstance(value, (int, float)) and not isinstance(value, bool):
                            writer.add_scalar(f"{name}/{key}", value, state.step)
                if record.get("arch_signal", {}).get("median_snr") is not None:
                    writer.add_scalar("search/arch_signal_snr", record["arch_signal"]["median_snr"], state.step)
                if progress:
                    tqdm.write(_epoch_line(record, decoded["lines"], n_epochs))
                state.epochs_done += 1
                checkpoint()
                saved_step = state.step
    finally:
        bar.close()
        writer.close()
    final = decoded_final(run, history)
    drawings = getattr(problem, "drawings", None)
    if drawings is not None and history:
        drawings({name: load_genotype(run / f"{name}.json") for name in history[-1]["architectures"]}, run)
    result = {"run_dir": str(run), "method": method, "epochs": n_epochs, "steps": state.step,
              "wall_s": time.perf_counter() - t_start, "num_classes": data.num_classes,
              "final": history[-1] if history else None, "config": to_dict(cfg), **final}
    write_json(run / "result.json", result)
    return result


def search_lr(sc, epoch: int, step: int, total: int) -> float:
    """Weight learning rate: ``lr * lr_decay^epoch`` (exp) or cosine from ``lr`` to ``lr_min`` over all steps."""
    if sc.lr_schedule == "cosine":
        return sc.lr_min + 0.5 * (sc.lr - sc.lr_min) * (1.0 + math.cos(math.pi * step / max(total, 1)))
    return sc.lr * sc.lr_decay ** epoch


def _epoch_record(epoch: int, searching: bool, records: dict[str, dict[str, Any]], problem) -> dict[str, Any]:
    record: dict[str, Any] = {"epoch": epoch, "phase": "search" if searching else "pretrain",
                              "architectures": {name: dict(r) for name, r in records.items()}}
    if hasattr(problem, "latency_lambda"):
        record["latency_lambda"] = problem.latency_lambda
    return record


def _epoch_line(record: dict[str, Any], lines: dict[str, str], n_epochs: int) -> str:
    parts = [f"epoch {record['epoch'] + 1}/{n_epochs} [{record['phase']}]"]
    for name, r in record["architectures"].items():
        parts.append(f"{name} {r['archid'][:8]}: {lines.get(name, '')}")
    if "latency_lambda" in record:
        parts.append(f"lambda {record['latency_lambda']:.3g}")
    if record.get("arch_signal", {}).get("rows"):
        parts.append(signal_line(record["arch_signal"]))
    return " | ".join(parts)


def decoded_final(run: Path, history: list[dict[str, Any]]) -> dict[str, Any]:
    """Copy the last epoch's genotypes to ``<name>.json``; ``genotype.json`` is the student's where there is one."""
    if not history:
        return {}
    epoch = history[-1]["epoch"]
    out = {}
    for name in history[-1]["architectures"]:
        g = load_genotype(run / "genotypes" / f"epoch{epoch + 1:03d}_{name}.json")
        save_genotype(g, run / f"{name}.json")
        out[f"{name}_genotype"] = str(run / f"{name}.json")
    if (run / "student.json").is_file():
        save_genotype(load_genotype(run / "student.json"), run / "genotype.json")
    return out
