"""First-order bilevel differentiable search, on any space whose method offers a supernet problem.

Weights are updated on trainA with SGD, architecture parameters on trainB
with Adam (two optimisers, two parameter groups), alternating step by step
(DARTS first order, as FasterSeg and Auto-DeepLab use); an architecture step
may average several trainB batches (``search.arch_batches``) when one is too
noisy to decide on. The run is a list of *phases* (by default ``pretrain``:
weights only for ``search.pretrain_epochs``, then ``search``: both, for
``search.epochs``); a phase may reset the weights, and *hooks* see each phase
start, each epoch start (schedules such as temperature annealing) and each
epoch end (method extras such as FasterSeg's adaptive latency weight). The
space supplies a problem object with the losses and the decoding (``derive``
returns the genotypes and a record per architecture, which the method's
``epoch_line`` prints); this
module owns the loop, the learning-rate schedule (exponential per epoch or
cosine per step), the checkpoints and resuming.

Resumable: the learning rate is a function of the epoch and step, the data order of
(seed, epoch), and every random draw comes from the problem's own generator,
saved in the checkpoint with everything else. A checkpoint is written after
every epoch's decoding and when Ctrl-C stops the run between steps;
``--resume`` continues to the same genotypes an unbroken run reaches.

Every search epoch's record carries ``arch_signal`` (``arch_signal.py``): how
far the architecture gradients stand above their noise, and how many steps
that takes to decide a row, against the steps the search has.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..choices import ChoiceSpec
from ..config import RunConfig, to_dict
from ..engine.loaders import train_loader
from ..engine import distributed
from ..engine.budget import TimeBudget
from ..engine.session import Diverged, RunSession, non_finite
from ..ops.syncbn import convert_sync_batchnorm
from ..errors import ConfigError, SegnasError
from ..genotype import load as load_genotype, save as save_genotype
from .arch_signal import ArchSignal, signal_line
from .halves import epoch_steps, search_data, trainb_batches

STRATEGY = "differentiable"


class BilevelProblem(Protocol):
    """What a space hands the strategy: parameters, their declared choices, losses (they call backward), decoding.

    A problem used with a phase that resets the weights also has ``reset_weights()``. One that
    ``segnas correlate`` can score also has ``supernet_miou(loader) -> float`` and
    ``fixed(genotype)``: a context manager inside which the supernet computes that architecture as
    far as the space allows (yielding notes on where it still differs from the child network; a
    GenotypeError names a genotype of another shape).
    """

    def weight_parameters(self) -> list[nn.Parameter]: ...
    def arch_parameters(self) -> list[nn.Parameter]: ...
    def arch_specs(self) -> list[ChoiceSpec]: ...
    def weight_backward(self, images: torch.Tensor, masks: torch.Tensor, pretrain: bool) -> dict[str, torch.Tensor]: ...
    def arch_backward(self, images: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]: ...
    def derive(self, loader: DataLoader | None) -> dict[str, Any]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Phase:
    """A stretch of epochs: ``arch`` alternates architecture steps with the weight steps;
    ``reset_weights`` calls ``problem.reset_weights()`` (and clears the weights' optimiser) first."""

    name: str
    epochs: int
    arch: bool
    reset_weights: bool = False


def default_phases(cfg: RunConfig) -> list[Phase]:
    return [Phase("pretrain", cfg.search.pretrain_epochs, False), Phase("search", cfg.search.epochs, True)]


def arch_step(problem: BilevelProblem, batches: list, device: torch.device) -> dict[str, torch.Tensor]:
    """Architecture gradients averaged over ``batches``: one forward and backward each, so the memory
    stays that of one batch while the noise of the step falls as 1/sqrt(len(batches))."""
    params = problem.arch_parameters()
    for p in params:
        p.grad = None
    logs: dict[str, torch.Tensor] = {}
    for images, masks in batches:
        for key, value in problem.arch_backward(images.to(device), masks.to(device)).items():
            logs[key] = logs.get(key, 0.0) + value / len(batches)
    if len(batches) > 1:
        for p in params:
            if p.grad is not None:
                p.grad.div_(len(batches))
    distributed.average_gradients(params)  # under torchrun: the global batch's gradient
    return logs


def search_step(problem: BilevelProblem, opt_w: torch.optim.Optimizer, opt_a: torch.optim.Optimizer,
                batch_a: tuple[torch.Tensor, torch.Tensor], batches_b: list, device: torch.device,
                grad_clip: float | None, signal: ArchSignal | None = None) -> dict[str, torch.Tensor]:
    """One step: the weights on a trainA batch, then, given trainB ``batches_b`` (none while
    pretraining), the architecture. Losses come back as tensors: reading them is the caller's sync."""
    opt_w.zero_grad(set_to_none=True)
    images, masks = batch_a
    logs = problem.weight_backward(images.to(device), masks.to(device), pretrain=not batches_b)
    distributed.average_gradients(problem.weight_parameters())  # under torchrun: the global batch's gradient
    if grad_clip:
        nn.utils.clip_grad_norm_(problem.weight_parameters(), grad_clip)
    opt_w.step()
    if batches_b:
        logs.update(arch_step(problem, batches_b, device))
        if signal is not None:
            signal.update(problem.arch_parameters())
        opt_a.step()
    return logs


def supernet_module(problem: Any) -> nn.Module | None:
    """The supernet ``nn.Module`` of a problem (or of the problem a strategy wraps as ``inner``), for its
    BatchNorm layers and statistics; None when it has none."""
    for holder in (problem, getattr(problem, "inner", None)):
        net = getattr(holder, "net", None)
        if isinstance(net, nn.Module):
            return net
    return None


def _call(hooks: list, event: str, *args: Any) -> list[Any]:
    return [getattr(hook, event)(*args) for hook in hooks if hasattr(hook, event)]


def run_differentiable(method, cfg: RunConfig, out: str | Path, resume: bool = False,
                       stop_after: int | None = None, progress: bool = True,
                       resume_overrides: dict[str, Any] | None = None,
                       phases: list[Phase] | Callable[[RunConfig], list[Phase]] | None = None,
                       hooks: list | None = None, strategy: str = STRATEGY,
                       wrap: Callable[[Any, RunConfig], BilevelProblem] | None = None) -> dict[str, Any]:
    """Run (or resume) a differentiable search of ``method``, writing genotypes per epoch and the final ones.

    ``method`` (a registry record) supplies the supernet problem, its hooks, the
    architecture written as ``genotype.json`` and whether results are drawn; a
    strategy built on this loop passes its own name, ``phases`` (a list, or a function of the run's
    config, which a resume reads from the run folder), ``hooks`` and ``wrap``, which turns the method's
    problem into the strategy's (e.g. another relaxation of the same supernet).
    Hooks keep no state of their own: they set what they change from (epoch,
    phase), and anything that must survive a resume lives in the problem's
    ``state_dict`` (``on_phase_start`` runs once per phase, not again when a run
    resumes inside it; ``on_epoch_start`` runs whenever an epoch is entered).
    ``stop_after`` ends the run after that many steps without saving, like a kill (tests).

    Under torchrun each process takes its share of every global batch (``search.batch_size``), gradients of
    both steps are averaged, the architecture parameters are checked to agree after every architecture
    step and the whole state at every checkpoint; rank 0 alone writes the run folder. A NaN or infinite
    loss (weights' or architecture's, checked every step) or weight stops the run naming the step and the
    last good checkpoint.
    """
    if not resume:
        method.check(cfg)
    session = RunSession(out, cfg, resume, resume_overrides, required=("search",),
                         sections=method.sections(strategy), what="search")
    run, ckpt, cfg = session.run, session.ckpt, session.cfg
    if ckpt is not None:
        session.expect(method.name, strategy, default_strategy=STRATEGY)
    cfg.method, cfg.strategy = method.name, strategy  # also for runs saved before these were recorded
    sc = cfg.search
    phases = phases(cfg) if callable(phases) else phases if phases is not None else default_phases(cfg)
    hooks = method.hooks(cfg) + list(hooks or [])
    n_epochs = sum(p.epochs for p in phases)
    done = session.finished()
    if done is not None and (int(ckpt["epochs_done"]) >= n_epochs or (ckpt.get("budget") or {}).get("stopped")):
        return {**done, "already_complete": True}  # finished (or its time budget ended it): nothing to do
    session.resume_command = f"segnas search {method.name} --out {run} --resume"
    with session:
        budget = TimeBudget.resumed(sc.time_budget, ckpt)  # from here: data halves and latency tables count
        device = session.device
        progress = progress and session.main  # under torchrun rank 0 alone prints
        distributed.check_batch(sc.batch_size, "search.batch_size")
        data = search_data(cfg, run)
        session.begin()
        torch.manual_seed(cfg.seed)
        # under torchrun rank 0 builds first (a problem may measure and save what the others then read, such
        # as FasterSeg's latency table), then the others; all continue from rank 0's random state
        if not session.main:
            distributed.barrier()
        problem = method.problem(cfg, data, run, device, progress)
        if session.main:
            distributed.barrier()
        if distributed.active():
            torch.set_rng_state(distributed.broadcast_object(torch.get_rng_state()))
        if wrap is not None:
            problem = wrap(problem, cfg)
        net = supernet_module(problem)
        if sc.sync_bn and distributed.active() and net is not None:
            convert_sync_batchnorm(net)
        opt_w = torch.optim.SGD(problem.weight_parameters(), lr=sc.lr, momentum=sc.momentum,
                                weight_decay=sc.weight_decay)
        opt_a = torch.optim.Adam(problem.arch_parameters(), lr=sc.arch_lr, betas=tuple(sc.arch_betas),
                                 weight_decay=sc.arch_weight_decay)
        steps_per_epoch = epoch_steps(sc, data)
        if steps_per_epoch == 0:
            raise ConfigError(f"search.batch_size {sc.batch_size} is larger than trainA/trainB "
                              f"({len(data.train_a)}/{len(data.train_b)} images); lower it")
        total = n_epochs * steps_per_epoch
        planned = sum(p.epochs for p in phases if p.arch) * steps_per_epoch
        step, epochs_done, history = 0, 0, []
        signal = ArchSignal(problem.arch_parameters(), [spec.kind for spec in problem.arch_specs()])
        if ckpt is not None:
            try:
                problem.load_state_dict(ckpt["search"])
            except (RuntimeError, KeyError) as e:  # a supernet of another layout or segnas version
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ConfigError(f"{run}: its checkpoint does not fit this {method.name} supernet ({first}); "
                                  "start a new search with another --out") from None
            opt_w.load_state_dict(ckpt["opt_w"])
            opt_a.load_state_dict(ckpt["opt_a"])
            torch.set_rng_state(ckpt["torch_rng"])
            step, epochs_done = int(ckpt["step"]), int(ckpt["epochs_done"])
            if "arch_signal" in ckpt:
                signal.load_state_dict(ckpt["arch_signal"])
            history = list(ckpt["history"])
        # every process from rank 0's state (they are seeded alike; this makes it so, whatever the device)
        distributed.broadcast_tensors(problem.weight_parameters() + problem.arch_parameters())
        if net is not None:
            distributed.broadcast_buffers(net)
        arch_names = [spec.name for spec in problem.arch_specs()]
        session.open_logs(step)
        log, writer = session.log, session.writer
        select_loader = DataLoader(data.select, batch_size=1, shuffle=False) if len(data.select) else None

        def checkpoint() -> None:
            if net is not None:
                distributed.broadcast_buffers(net)
            session.save({"search": problem.state_dict(), "opt_w": opt_w.state_dict(), "opt_a": opt_a.state_dict(),
                          "step": step, "epochs_done": epochs_done, "history": history,
                          "torch_rng": torch.get_rng_state(), "arch_signal": signal.state_dict(),
                          "budget": budget.state(step=step, epochs_done=epochs_done),
                          "config": to_dict(cfg), "method": method.name, "num_classes": data.num_classes})

        starts = [sum(p.epochs for p in phases[:i]) for i in range(len(phases))]
        bar = tqdm(total=total, initial=step, disable=not progress, desc=f"search {method.name}", unit="step",
                   dynamic_ncols=True, mininterval=1.0)
        t_start = time.perf_counter()
        saved_step = step if ckpt is not None else -1
        try:
            while epochs_done < n_epochs and not budget.stopped:
                epoch = epochs_done
                index = max(i for i, s in enumerate(starts) if s <= epoch)
                phase, searching = phases[index], phases[index].arch
                start = step - epoch * steps_per_epoch
                if start == 0 and epoch == starts[index]:
                    if phase.reset_weights:
                        problem.reset_weights()
                        opt_w.state.clear()
                    _call(hooks, "on_phase_start", phase, problem)
                _call(hooks, "on_epoch_start", epoch, phase, problem)
                if start < steps_per_epoch:
                    loader_a = train_loader(data.train_a, sc.batch_size, cfg.seed, epoch, start, cfg.data.num_workers)
                    stream_b = trainb_batches(data, sc, cfg.seed + 1, epoch, start, cfg.data.num_workers)
                    for img_a, mask_a in loader_a:
                        lr = search_lr(sc, epoch, step, total)
                        for group in opt_w.param_groups:
                            group["lr"] = lr
                        batches_b = [next(stream_b) for _ in range(sc.arch_batches)] if searching else []
                        logs = search_step(problem, opt_w, opt_a, (img_a, mask_a), batches_b, device, sc.grad_clip,
                                           signal)
                        step += 1
                        bar.update(1)
                        # one host sync a step: every loss (weights' and architecture's, averaged over the
                        # processes) finite, and whether any process was asked to stop
                        logs, finite, stop = distributed.step_flags(logs, session.stop.is_set())
                        logs = {k: float(v) for k, v in logs.items()}
                        if not finite:
                            values = ", ".join(f"{k} {v:g}" for k, v in logs.items())
                            raise Diverged(step, f"loss not finite ({values})",
                                           f"lower search.lr (now {sc.lr}) or search.arch_lr (now {sc.arch_lr})")
                        if searching:  # checked, not assumed: every process holds the same architecture
                            distributed.check_identical(list(zip(arch_names, problem.arch_parameters())),
                                                        f"{run}: architecture step {step}")
                        loss = sum(v for k, v in logs.items() if k.startswith("loss_"))
                        log.write({"step": step, "epoch": epoch, "lr": lr, "searching": searching, **logs})
                        writer.add_scalar("search/weight_loss", loss, step)
                        bar.set_postfix(phase=phase.name, loss=f"{loss:.3f}")
                        if stop_after is not None and step >= stop_after:
                            return {"interrupted": True, "step": step}
                        if stop:
                            if saved_step != step:
                                checkpoint()
                            raise SegnasError(f"interrupted at step {step}/{total}; continue with "
                                              f"'segnas search {method.name} --out {run} --resume'")
                        if step < total and budget.over():  # decode this epoch's state, then end
                            budget.stopped = True
                            break
                        if step - epoch * steps_per_epoch >= steps_per_epoch:
                            break
                if net is not None:  # rank 0's BatchNorm statistics: every process checks and decodes the same
                    distributed.broadcast_buffers(net)
                bad = non_finite(problem.state_dict())
                if bad is not None:
                    raise Diverged(step, f"{bad} is not finite", f"lower search.lr (now {sc.lr})")
                decoded = distributed.broadcast_object(problem.derive(select_loader))
                record = {"epoch": epoch, "phase": phase.name,
                          "architectures": {name: dict(r) for name, r in decoded["records"].items()}}
                if searching:
                    record["arch_signal"] = signal.summary(problem.arch_parameters(), planned)
                    signal.reset()
                extras = [e for e in _call(hooks, "on_epoch_end", epoch, searching, record, problem) if e]
                for name, g in decoded["genotypes"].items():
                    if session.main:
                        save_genotype(g, run / "genotypes" / f"epoch{epoch + 1:03d}_{name}.json")
                history.append(record)
                log.write({"step": step, **record})
                for name, r in record["architectures"].items():
                    for key, value in r.items():
                        if isinstance(value, (int, float)) and not isinstance(value, bool):
                            writer.add_scalar(f"{name}/{key}", value, step)
                if record.get("arch_signal", {}).get("median_snr") is not None:
                    writer.add_scalar("search/arch_signal_snr", record["arch_signal"]["median_snr"], step)
                if progress:
                    tqdm.write(_epoch_line(record, method.epoch_line, n_epochs, extras))
                epochs_done += 1
                if not budget.stopped and epochs_done < n_epochs and budget.over():
                    budget.stopped = True
                if budget.stopped and progress:
                    tqdm.write(f"search.time_budget {budget.seconds:g} s spent ({budget.elapsed():.0f} s) at step "
                               f"{step}/{total}, epoch {epoch + 1}/{n_epochs}: the search ends with this epoch's "
                               "architectures")
                checkpoint()
                saved_step = step
        except Diverged as e:
            raise session.diverged(e) from None
        finally:
            bar.close()
        final = decoded_final(run, history, method.primary, write=session.main)
        if method.draw_results and history and session.main:
            for name in history[-1]["architectures"]:
                method.draw(load_genotype(run / f"{name}.json"), run / f"{name}.png")
        return session.finish({
            "run_dir": str(run), "method": method.name, "strategy": strategy, "epochs": n_epochs, "steps": step,
            "wall_s": time.perf_counter() - t_start, "num_classes": data.num_classes,
            "budget": budget.state(step=step, steps=total, epochs_done=epochs_done, epochs=n_epochs),
            "final": history[-1] if history else None, "config": to_dict(cfg), **final})


def search_lr(sc, epoch: int, step: int, total: int) -> float:
    """Weight learning rate: ``lr * lr_decay^epoch`` (exp), or over all steps cosine from ``lr`` to ``lr_min``
    or poly ``lr_min + (lr - lr_min) (1 - step / total)^poly_power`` (DCNAS' search)."""
    if sc.lr_schedule == "poly":
        return sc.lr_min + (sc.lr - sc.lr_min) * (1.0 - min(step, total) / max(total, 1)) ** sc.poly_power
    if sc.lr_schedule == "cosine":
        return sc.lr_min + 0.5 * (sc.lr - sc.lr_min) * (1.0 + math.cos(math.pi * step / max(total, 1)))
    return sc.lr * sc.lr_decay ** epoch


def _epoch_line(record: dict[str, Any], describe, n_epochs: int, extras: list[str]) -> str:
    parts = [f"epoch {record['epoch'] + 1}/{n_epochs} [{record['phase']}]"]
    for name, r in record["architectures"].items():
        parts.append(f"{name} {r['archid'][:8]}: {describe(r)}")
    parts += extras
    if record.get("arch_signal", {}).get("rows"):
        parts.append(signal_line(record["arch_signal"]))
    return " | ".join(parts)


def decoded_final(run: Path, history: list[dict[str, Any]], primary: str, write: bool = True) -> dict[str, Any]:
    """Copy the last epoch's genotypes to ``<name>.json``; ``genotype.json`` is the ``primary`` one's.
    ``write=False`` (a torchrun rank other than 0) only names the files."""
    if not history:
        return {}
    epoch = history[-1]["epoch"]
    out = {}
    for name in history[-1]["architectures"]:
        if write:
            g = load_genotype(run / "genotypes" / f"epoch{epoch + 1:03d}_{name}.json")
            save_genotype(g, run / f"{name}.json")
        out[f"{name}_genotype"] = str(run / f"{name}.json")
    if write and primary != "genotype" and (run / f"{primary}.json").is_file():
        save_genotype(load_genotype(run / f"{primary}.json"), run / "genotype.json")
    return out
