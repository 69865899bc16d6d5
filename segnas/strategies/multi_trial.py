"""Multi-trial search: a sampler proposes architectures, trials train them through an executor, the best is kept.

Two samplers share one loop: ``ppo`` (an LSTM controller trained by PPO on
the trial rewards, Nekrasov et al.) and the uniform draw of ``random``
through the method's ``sample`` (the baseline). A trial is the method's own
:class:`StagedTrial` where it has one (Nekrasov: stage 1 on cached encoder
outputs, the early-termination gate, stage 2 end to end) and otherwise the
generic one-stage trial: the shared trainer for ``ppo.steps`` on trainA,
reward = mIoU on trainB.

The loop works in rounds (``ppo.batch`` trials per controller update; the
random baseline: ``executor.workers``). A round's stage-1 tasks run through
the executor; the gate then decides the round's trials in trial-index order
(not in the order workers finish), its stage-2 tasks run, and the controller
learns from the round. A spent ``search.time_budget`` ends the search at the
next finished trial: the rest of the round is dropped and the controller does
not learn from the part that ran (the search's first trial always finishes,
so there is a result). A trial's reward is its stage-2 reward where stage 2
ran, else its stage-1 reward: what the controller learns from and what the
best trial is chosen by. Trials are keyed by archid: an architecture seen
before reuses its result (recorded as reused, no training). A controller
draw that ``decode`` refuses (whole and as every prefix, see ``PPOSampler``)
is drawn again (at most ``ppo.max_draws`` in a row) and never enters the PPO
batch. A trial that fails (an exception, a NaN,
a dead worker, an undefined reward) is recorded with its error and left out
of the controller update, never scored 0.

After every round the checkpoint holds the trial table, the controller, PPO's
optimiser and baseline, the gate's running mean and the sampler's generator
state; the gate's uniform draws and trial seeds are functions of (seed,
trial) alone. A resumed search redoes the round it stopped in and ends with
the same table and controller as an unbroken one (wall times aside).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm import tqdm

from ..config import RunConfig, to_dict
from ..engine.budget import TimeBudget
from ..engine.session import RunSession
from ..engine.trainer import train_network
from ..errors import ConfigError, GenotypeError, SegnasError
from ..executors import KINDS, TaskResult, make_executor
from ..executors.ray_executor import import_ray
from ..fileio import atomic_write_text
from ..genotype import Genotype, load as load_genotype, save as save_genotype
from ..report.trials import draw_rewards
from . import random_search
from .controller import Controller
from .halves import search_data
from .ppo import PPO, Experience
from .stages import EarlyTermination, reward as stage_reward

_GATE = 7  # stream of the gate's uniform draws: np.random.default_rng([seed, _GATE, trial])
COLUMNS = ("trial", "archid", "stage1_reward", "decision", "stage2_reward", "reward", "error", "wall_s")


@dataclass
class ExecutorConfig:
    """The ``executor.*`` section: where trials run (inline in this process, local worker processes, or Ray)."""

    kind: str = "inline"
    workers: int = 1
    address: str | None = None  # a Ray cluster to join; none: a local Ray
    cpus_per_trial: float = 1.0  # Ray's request per trial
    gpus_per_trial: float = 0.0
    threads_per_worker: int = 1  # torch threads of a local worker

    RANGES: ClassVar[dict[str, tuple]] = {"workers": (1, None, True), "cpus_per_trial": (0, None, False),
                                          "gpus_per_trial": (0, None, True), "threads_per_worker": (1, None, True)}
    CHOICES: ClassVar[dict[str, tuple]] = {"kind": KINDS}


@dataclass
class PPOConfig:
    """The ``ppo.*`` section: the controller, its PPO settings (the paper's) and the search's length."""

    trials: int = 40
    batch: int = 4  # trials per controller update
    steps: int = 300  # training steps of a generic one-stage trial (a method's own trial has its own budget)
    lr: float = 1e-4
    clip: float = 0.1
    baseline_decay: float = 0.95
    max_grad_norm: float = 2.0
    epochs: int = 4  # PPO passes over each batch
    entropy_weight: float = 0.0
    hidden_size: int = 100
    max_draws: int = 1000  # controller draws in a row that decode may refuse before the search stops

    RANGES: ClassVar[dict[str, tuple]] = {
        "trials": (1, None, True), "batch": (1, None, True), "steps": (1, None, True), "lr": (0, None, False),
        "clip": (0, 1, False), "baseline_decay": (0, 1, True), "max_grad_norm": (0, None, False),
        "epochs": (1, None, True), "entropy_weight": (0, None, True), "hidden_size": (1, None, True),
        "max_draws": (1, None, True)}


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"ppo": {"trials": 4, "batch": 2, "steps": 2, "hidden_size": 16}},
    "cpu": {"ppo": {"trials": 16, "batch": 4, "steps": 300}},
    "paper": {"ppo": {"trials": 2000, "batch": 8, "steps": 4000}},
}


@dataclass(frozen=True)
class StagedTrial:
    """A method's own trial: ``prepare(cfg, run, device) -> context`` once per search (in this process), then
    picklable top-level tasks ``stage1(payload)`` and ``stage2(payload)`` (payload: cfg, genotype, seed,
    context; stage 2 also the stage-1 value). A task returns ``{"reward": r}`` or ``{"confusion": cm}``
    (scored by ``stages.reward``, the context's ``background`` class left out). ``gate(cfg)`` builds the
    early-termination rule between them; ``final(genotype, cfg)`` is the genotype the search writes."""

    prepare: Callable[[RunConfig, Path, torch.device], dict[str, Any]]
    stage1: Callable[[dict[str, Any]], dict[str, Any]]
    stage2: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    gate: Callable[[RunConfig], EarlyTermination] | None = None
    final: Callable[[Genotype, RunConfig], Genotype] | None = None


def _generic_prepare(cfg: RunConfig, run: Path, device: torch.device) -> dict[str, Any]:
    data = search_data(cfg, run)  # writes the halves to splits.json once
    return {"run": str(run), "steps": cfg.sections[cfg.strategy].steps, "num_classes": data.num_classes,
            "background": None, "notes": []}


def generic_trial(payload: dict[str, Any]) -> dict[str, Any]:
    """One-stage trial: the shared trainer for the strategy's ``steps`` on trainA; reward = mIoU on trainB."""
    cfg, ctx = payload["cfg"], payload["context"]
    data = search_data(cfg, Path(ctx["run"]))
    tc = dataclasses.replace(cfg.train, eval_every=ctx["steps"], drop_path=0.0)
    r, _ = train_network(Genotype.from_dict(payload["genotype"]), tc, data.train_a, data.plain_b,
                         torch.device(cfg.device), payload["seed"], ctx["steps"], cfg.data.num_workers)
    if not math.isfinite(r["final"]["miou"]):
        raise SegnasError("the trial's mIoU on trainB is undefined")
    return {"reward": r["final"]["miou"], "steps": r["steps"]}


GENERIC = StagedTrial(prepare=_generic_prepare, stage1=generic_trial)


# -- samplers ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Proposal:
    genotype: Genotype
    actions: list[int] | None = None
    log_prob: float | None = None


class UniformSampler:
    """Trial i's architecture is the method's ``sample`` with a generator seeded by (seed, i): nothing to save."""

    def __init__(self, method, cfg: RunConfig) -> None:
        self.method, self.cfg = method, cfg

    def propose(self, start: int, count: int) -> list[Proposal]:
        return [Proposal(self.method.sample(np.random.default_rng([self.cfg.seed, i]), self.cfg))
                for i in range(start, start + count)]

    def learn(self, proposals: list[Proposal], records: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class PPOSampler:
    """The controller draws each architecture's choices; PPO learns from each round's rewards."""

    def __init__(self, method, cfg: RunConfig) -> None:
        pc = cfg.ppo
        self.method, self.cfg, self.max_draws = method, cfg, pc.max_draws
        controller = Controller(method.choice_spec(cfg), generator=torch.Generator().manual_seed(cfg.seed),
                                hidden_size=pc.hidden_size)
        self.ppo = PPO(controller, lr=pc.lr, clip=pc.clip, baseline_decay=pc.baseline_decay,
                       max_grad_norm=pc.max_grad_norm, epochs=pc.epochs, entropy_weight=pc.entropy_weight)
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.invalid = 0  # draws decode refused, over the search

    def propose(self, start: int, count: int) -> list[Proposal]:
        out = []
        for _ in range(count):
            for _ in range(self.max_draws):
                rollout = self.ppo.controller.sample(self.generator)
                g = self._decode(rollout.actions)
                if g is None:
                    self.invalid += 1
                    continue
                out.append(Proposal(g, rollout.actions, float(rollout.log_prob)))
                break
            else:
                raise SegnasError(f"ppo.max_draws: {self.max_draws} controller draws in a row were not "
                                  f"architectures of space {self.method.space}; raise ppo.max_draws")
        return out

    def _decode(self, actions: list[int]) -> Genotype | None:
        """The architecture of a draw: all of it, else its longest prefix ``decode`` accepts (a space whose
        choices are read one after another and may end early, e.g. FasterSeg's branches and cells, reads the
        controller's fixed-length draw that way; the unread tail does not change the reward); None if none."""
        for k in range(len(actions), 0, -1):
            try:
                return self.method.decode(actions[:k], self.cfg)
            except GenotypeError:
                continue
        return None

    def learn(self, proposals: list[Proposal], records: list[dict[str, Any]]) -> dict[str, Any]:
        batch = [Experience(p.actions, p.log_prob, r["reward"]) for p, r in zip(proposals, records)]
        stats = self.ppo.update(batch)
        return {k: v for k, v in stats.items() if isinstance(v, (int, float, bool)) or v is None}

    def state_dict(self) -> dict[str, Any]:
        return {"ppo": self.ppo.state_dict(), "generator": self.generator.get_state(), "invalid": self.invalid}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ppo.load_state_dict(state["ppo"])
        self.generator.set_state(state["generator"])
        self.invalid = int(state["invalid"])


SAMPLERS = {"ppo": PPOSampler, "random": UniformSampler}


# -- one round of trials -------------------------------------------------------------------------------------
def _score(value: dict[str, Any], background: int | None) -> float:
    if "reward" in value:
        return float(value["reward"])
    return stage_reward(value["confusion"], background)


def _record(i: int, archid: str) -> dict[str, Any]:
    return {"trial": i + 1, "archid": archid, "stage1_reward": None, "decision": None, "stage2_reward": None,
            "reward": None, "error": None, "wall_s": 0.0, "reused_from": None}


def _scored(result: TaskResult, background: int | None) -> tuple[float | None, str | None]:
    """(reward, None), or (None, the error) of a task that failed or whose reward is undefined."""
    if not result.ok:
        return None, result.error
    try:
        return _score(result.value, background), None
    except ValueError as e:
        return None, f"ValueError: {e}"


def run_round(spec: StagedTrial, proposals: list[Proposal], start: int, earlier: list[dict[str, Any]],
              executor, cfg: RunConfig, context: dict[str, Any], gate: EarlyTermination | None,
              stop: Callable[[], bool] | None = None) -> list[dict[str, Any]]:
    """Train the round's new architectures (stage 1, the gate in trial order, stage 2); reuse known ones.

    ``stop`` (a spent time budget) is asked after every task that finishes: once it says yes, tasks not
    started are dropped and the round ends with its longest run of finished trials from its first (fewer
    records than proposals). The first trial of a search always finishes, so a search has a result.
    """
    known = {t["archid"]: t for t in earlier if t["reused_from"] is None}
    first: dict[str, int] = {}  # archid -> index in this round of its first occurrence
    for j, p in enumerate(proposals):
        if p.genotype.archid not in known:
            first.setdefault(p.genotype.archid, j)
    order = sorted(first.items(), key=lambda kv: kv[1])
    records: dict[str, dict[str, Any]] = {}
    second: dict[str, dict[str, Any]] = {}

    def payload(j: int) -> dict[str, Any]:
        return {"cfg": cfg, "genotype": proposals[j].genotype.to_dict(), "seed": cfg.seed + start + j,
                "context": context}

    def complete(archid: str) -> bool:
        rec = records.get(archid)
        return rec is not None and (archid not in second or rec["stage2_reward"] is not None
                                    or rec["error"] is not None)

    def stopping() -> bool:  # only once some trial of the search is complete
        return stop is not None and (bool(earlier) or any(complete(a) for a in records)) and stop()

    results1: dict[str, TaskResult] = {}
    for r in executor.map(spec.stage1, {a: payload(j) for a, j in order}):
        results1[r.key] = r
        if stop is not None and (earlier or order[0][0] in results1) and stop():
            break  # the gate may still decide what finished; stage 2 runs while no trial is complete
    for archid, j in order:  # the gate decides in trial order: up to the first trial stage 1 did not finish
        if archid not in results1:
            break
        rec = records[archid] = _record(start + j, archid)
        r = results1[archid]
        rec["wall_s"] = r.wall_s
        rec["stage1_reward"], rec["error"] = _scored(r, context.get("background"))
        if rec["error"] is not None:
            rec["decision"] = "failed"
        elif spec.stage2 is None or gate is None:
            rec["decision"], rec["reward"] = "one-stage", rec["stage1_reward"]
        else:
            d = gate.decide(rec["stage1_reward"], np.random.default_rng([cfg.seed, _GATE, start + j]))
            rec["decision"] = d.reason
            if d.proceed:
                second[archid] = {**payload(j), "stage1": r.value}
            else:
                rec["reward"] = rec["stage1_reward"]
    if second and not stopping():
        for r in executor.map(spec.stage2, second):
            rec = records[r.key]
            rec["wall_s"] += r.wall_s
            rec["stage2_reward"], rec["error"] = _scored(r, context.get("background"))
            rec["reward"] = rec["stage2_reward"]
            if rec["error"] is not None:
                rec["error"] = f"stage 2: {rec['error']}"
            if stopping():
                break
    out = []
    for j, p in enumerate(proposals):
        archid = p.genotype.archid
        if archid in first and first[archid] == j:
            if not complete(archid):
                break  # stopped: this trial and the ones after it did not finish
            out.append(records[archid])
        else:  # seen before: its result, no training
            src = known.get(archid) or records[archid]
            out.append({**src, "trial": start + j + 1, "decision": "reused", "wall_s": 0.0,
                        "reused_from": src["trial"]})
    return out


# -- the search -------------------------------------------------------------------------------------------
def best_trial(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trial of highest final reward; of equal ones, the earliest (None when every trial failed)."""
    scored = [t for t in trials if t["reward"] is not None]
    return max(scored, key=lambda t: (t["reward"], -t["trial"])) if scored else None


def _progress_line(rec: dict[str, Any], trials: list[dict[str, Any]], total: int) -> str:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    best = best_trial(trials)
    rewards = [t["reward"] for t in trials if t["reward"] is not None]
    gated = [t for t in trials if t["decision"] in ("first", "above-mean", "kept-by-chance", "stopped")]
    rate = f" | stage-2 rate {100 * sum(t['decision'] != 'stopped' for t in gated) / len(gated):.0f}%" if gated else ""
    if rec["error"]:
        what = f"failed: {rec['error']}"
    elif rec["reused_from"]:
        what = f"reused trial {rec['reused_from']}: reward {pct(rec['reward'])}"
    else:
        what = f"stage 1 {pct(rec['stage1_reward'])} {rec['decision']}"
        what += f", stage 2 {pct(rec['stage2_reward'])}" if rec["stage2_reward"] is not None else ""
    top = f"{pct(best['reward'])} (trial {best['trial']})" if best else "-"
    mean = pct(sum(rewards) / len(rewards)) if rewards else "-"
    return (f"trial {rec['trial']}/{total} {rec['archid'][:8]}: {what} ({rec['wall_s']:.0f} s) | done "
            f"{len(trials)}, best {top}, mean {mean}{rate}")


def trial_table(trials: list[dict[str, Any]]) -> tuple[str, str]:
    """(CSV, markdown) of every trial: the columns of ``COLUMNS`` plus ``reused_from``."""
    cols = COLUMNS + ("reused_from",)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for t in trials:
        writer.writerow(["" if t[c] is None else t[c] for c in cols])

    def cell(t: dict[str, Any], c: str) -> str:
        v = t[c]
        if v is None:
            return ""
        if c in ("stage1_reward", "stage2_reward", "reward"):
            return f"{v:.4f}"
        if c == "wall_s":
            return f"{v:.1f}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(t, c) for c in cols) + " |" for t in trials]
    return buf.getvalue(), "\n".join(lines) + "\n"


def _executor(cfg: RunConfig):
    ec = cfg.executor
    return make_executor(ec.kind, ec.workers, threads_per_worker=ec.threads_per_worker, num_cpus=ec.cpus_per_trial,
                         num_gpus=ec.gpus_per_trial, address=ec.address)


def run_trials(strategy: str, method, cfg: RunConfig, out: str | Path, resume: bool = False,
               stop_after: int | None = None, progress: bool = True,
               resume_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) a multi-trial search with sampler ``strategy``; ``stop_after`` trials end it like a kill
    (at the end of that trial's round; tests)."""
    if not resume:
        method.check(cfg)
        check_executor(cfg)
    session = RunSession(out, cfg, resume, resume_overrides, required=("search",),
                         sections=method.sections(strategy), what="search")
    run, ckpt, cfg = session.run, session.ckpt, session.cfg
    if ckpt is not None:
        session.expect(method.name, strategy)
    total = cfg.sections[strategy].trials
    done = session.finished()
    if done is not None and (len(ckpt["search"]["trials"]) >= total or (ckpt.get("budget") or {}).get("stopped")):
        return {**done, "already_complete": True}  # finished (or its time budget ended it): nothing to do
    spec = method.trial or GENERIC
    per_round = cfg.ppo.batch if strategy == "ppo" else cfg.executor.workers
    with session:
        budget = TimeBudget.resumed(cfg.search.time_budget, ckpt)  # from here: shared caches count
        session.begin()
        executor = _executor(cfg)  # before any work: a missing Ray is one line
        with executor:
            context = spec.prepare(cfg, run, session.device)
            sampler = SAMPLERS[strategy](method, cfg)
            gate = spec.gate(cfg) if spec.gate is not None and spec.stage2 is not None else None
            trials: list[dict[str, Any]] = []
            if ckpt is not None:
                trials = list(ckpt["search"]["trials"])
                sampler.load_state_dict(ckpt["search"]["sampler"])
                if gate is not None:
                    gate.load_state_dict(ckpt["search"]["gate"])
            session.open_logs(len(trials))
            for note in context.get("notes", []):
                if ckpt is None:  # the log holds them once: a resume prints them but ends with the same log
                    session.log.write({"step": len(trials), "note": note})
                if progress:
                    tqdm.write(note)
            t_start = time.perf_counter()
            while len(trials) < total and not budget.stopped:
                start = len(trials)
                proposals = sampler.propose(start, min(per_round, total - start))
                records = run_round(spec, proposals, start, trials, executor, cfg, context, gate,
                                    stop=budget.over if budget.seconds > 0 else None)
                for p, rec in zip(proposals, records):
                    trials.append(rec)
                    if rec["reused_from"] is None:
                        g = p.genotype
                        g.name, g.meta["source"] = f"{method.name}-{strategy}-{rec['trial']:03d}", \
                            f"{method.name} {strategy} search"
                        g.meta.update({"trial": rec["trial"], "search_reward": rec["reward"]})
                        save_genotype(g, run / "genotypes" / f"trial{rec['trial']:03d}.json")
                    session.log.write({"step": rec["trial"], **rec})
                    if rec["reward"] is not None:
                        session.writer.add_scalar("search/trial_reward", rec["reward"], rec["trial"])
                    if progress:
                        tqdm.write(_progress_line(rec, trials, total))
                cut = len(records) < len(proposals)  # the budget ended the round: no update from part of it
                stats = {} if cut else sampler.learn(proposals, records)
                if stats:
                    session.log.write({"step": len(trials), "update": stats})
                if cut or (len(trials) < total and budget.over()):  # the search ends with these trials
                    budget.stopped = True
                    if progress:
                        tqdm.write(f"search.time_budget {budget.seconds:g} s spent ({budget.elapsed():.0f} s) after "
                                   f"trial {len(trials)}/{total}: the search ends with the best trial so far")
                session.save({"search": {"trials": trials, "sampler": sampler.state_dict(),
                                         "gate": gate.state_dict() if gate is not None else None},
                              "budget": budget.state(trials=len(trials)),
                              "method": method.name, "config": to_dict(cfg), "step": len(trials),
                              "num_classes": context["num_classes"]})
                if stop_after is not None and len(trials) >= stop_after and len(trials) < total:
                    return {"interrupted": True, "step": len(trials)}
                if session.stop.is_set() and len(trials) < total:  # Ctrl-C: after the round, which is saved
                    raise SegnasError(f"interrupted after trial {len(trials)}/{total}; continue with "
                                      f"'segnas search {method.name} --out {run} --resume'")
        return _finish(session, method, strategy, spec, cfg, trials, sampler, context, time.perf_counter() - t_start,
                       budget.state(trials=len(trials), trials_planned=total))


def _finish(session: RunSession, method, strategy: str, spec: StagedTrial, cfg: RunConfig,
            trials: list[dict[str, Any]], sampler, context: dict[str, Any], wall: float,
            budget: dict[str, Any] | None = None) -> dict[str, Any]:
    run = session.run
    csv_text, md_text = trial_table(trials)
    atomic_write_text(run / "trials.csv", csv_text)
    atomic_write_text(run / "trials.md", md_text)
    draw_rewards(trials, run / "rewards.png", f"{method.name}, {strategy}: reward per trial")
    best = best_trial(trials)
    if best is None:
        errors = sorted({t["error"] for t in trials if t["error"]})
        raise SegnasError(f"every trial failed ({len(trials)}); first error: {errors[0] if errors else '?'} "
                          f"(all in {run / 'trials.csv'})")
    g = load_genotype(run / "genotypes" / f"trial{best['trial']:03d}.json")
    if spec.final is not None:
        g = spec.final(g, cfg)
    names = [method.primary] + (["genotype"] if method.primary != "genotype" else [])
    for name in names:
        save_genotype(g, run / f"{name}.json")
    if method.draw_results and method.draw is not None:
        method.draw(g, run / f"{method.primary}.png")
    final = {"phase": strategy, "architectures": {method.primary: {
        "archid": g.archid, "searched_archid": best["archid"], "miou": best["reward"], "reward": best["reward"],
        "trial": best["trial"]}}}
    failed = sum(t["error"] is not None for t in trials)
    return session.finish({
        "run_dir": str(run), "method": method.name, "strategy": strategy, "trials": trials, "failed": failed,
        "invalid_draws": getattr(sampler, "invalid", 0), "wall_s": wall, "num_classes": context["num_classes"],
        **({"budget": budget} if budget is not None else {}),
        "notes": [r["note"] for r in session.log.read() if "note" in r] or context.get("notes", []), "final": final, "config": to_dict(cfg),
        "trials_csv": str(run / "trials.csv"), "trials_md": str(run / "trials.md"),
        "rewards_png": str(run / "rewards.png"),
        **{f"{name}_genotype": str(run / f"{name}.json") for name in names}})


def run_random(method, cfg: RunConfig, out: str | Path, **kwargs: Any) -> dict[str, Any]:
    """``--strategy random``: a method's own staged trial on uniform draws, through this loop (the baseline of
    ``ppo``: the same trials, the same count); for other methods the one-stage random search."""
    if method.trial is not None:
        return run_trials("random", method, cfg, out, **kwargs)
    return random_search.run_random(method, cfg, out, **kwargs)


def run_ppo(method, cfg: RunConfig, out: str | Path, **kwargs: Any) -> dict[str, Any]:
    """``--strategy ppo``: the controller proposes, PPO learns from each round's rewards."""
    return run_trials("ppo", method, cfg, out, **kwargs)


def check_executor(cfg: RunConfig) -> None:
    """Refuse an executor that cannot run here before a run folder is made (a missing Ray: one line)."""
    ec = cfg.executor
    if ec.kind == "inline" and ec.workers != 1:
        raise ConfigError(f"executor.workers is {ec.workers} but executor.kind is inline (one trial at a time); "
                          "use --executor local")
    if ec.kind == "ray":
        import_ray()


__all__ = [
    "COLUMNS",
    "GENERIC",
    "PRESETS",
    "ExecutorConfig",
    "PPOConfig",
    "PPOSampler",
    "Proposal",
    "StagedTrial",
    "UniformSampler",
    "best_trial",
    "check_executor",
    "generic_trial",
    "run_ppo",
    "run_random",
    "run_round",
    "run_trials",
    "trial_table",
]
