"""Random search: N architectures drawn from the space, each trained for the same budget, the best kept.

Every method's baseline. Trial i draws its architecture from a generator
seeded by (seed, i) through the space's ``sample`` (as the method asks: e.g.
Auto-DeepLab draws at its retraining size), trains it on trainA for
``random.steps`` steps with the shared trainer and the ``train.*`` settings,
and is scored by its mIoU on trainB without augmentation at the end of that
budget: the same halves a differentiable search uses, so no trial is chosen on
the images it trained on. A checkpoint after every trial records the trials so
far; a resumed search redoes only the trial it stopped in (seeded, so it ends
exactly as it would have) and ends with the genotype an unbroken one reaches.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from tqdm import tqdm

from ..config import RunConfig, to_dict
from ..engine.budget import TimeBudget
from ..engine.session import RunSession
from ..engine.trainer import train_network
from ..errors import ConfigError, SegnasError
from ..genotype import Genotype, load as load_genotype, save as save_genotype
from .halves import search_data

STRATEGY = "random"


@dataclass
class RandomConfig:
    """The ``random.*`` section: how many architectures, and how long each one trains."""

    trials: int = 8
    steps: int = 300  # training steps of each trial (train.batch_size images a step)
    max_draws: int = 50  # draws per trial to find an architecture no earlier trial had
    save_trials: bool = False  # also keep each trial's trained weights (checkpoints/trialNNN.pt, for evaluate)

    RANGES: ClassVar[dict[str, tuple]] = {"trials": (1, None, True), "steps": (1, None, True),
                                          "max_draws": (1, None, True)}


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"random": {"trials": 2, "steps": 2}},
    "cpu": {"random": {"trials": 8, "steps": 300}},
    "paper": {"random": {"trials": 20, "steps": 4000}},
}


def draw(method, cfg: RunConfig, trial: int, seen: set[str]) -> Genotype:
    """Trial ``trial``'s architecture: a function of (seed, trial) alone, avoiding ``seen`` archids."""
    for attempt in range(cfg.random.max_draws):
        g = method.sample(np.random.default_rng([cfg.seed, trial, attempt]), cfg)
        if g.archid not in seen:
            return g
    raise ConfigError(f"random.max_draws: {cfg.random.max_draws} draws for trial {trial + 1} found only "
                      "architectures earlier trials had; the space is nearly exhausted: lower random.trials")


def best_trial(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The trial of highest mIoU; of equal ones, the earliest."""
    return max(trials, key=lambda t: (t["miou"], -t["trial"]))


def run_random(method, cfg: RunConfig, out: str | Path, resume: bool = False, stop_after: int | None = None,
               progress: bool = True, resume_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) a random search of ``method``'s space; ``stop_after`` trials end it like a kill (tests)."""
    if not resume:
        method.check(cfg)
        if cfg.train.distill_teacher:
            raise ConfigError("train.distill_teacher: random search trials train without distillation (their "
                              "teacher would be another search's); drop the option")
    session = RunSession(out, cfg, resume, resume_overrides, required=("search",),
                         sections=method.sections(STRATEGY), what="search")
    run, ckpt, cfg = session.run, session.ckpt, session.cfg
    if ckpt is not None:
        session.expect(method.name, STRATEGY)
    rc = cfg.random
    done = session.finished()
    if done is not None and (len(ckpt["search"]["trials"]) >= rc.trials or (ckpt.get("budget") or {}).get("stopped")):
        return {**done, "already_complete": True}  # finished (or its time budget ended it): nothing to do
    primary = method.primary
    with session:
        budget = TimeBudget.resumed(cfg.search.time_budget, ckpt)  # from here: the data halves count
        data = search_data(cfg, run)
        session.begin()
        trials: list[dict[str, Any]] = list(ckpt["search"]["trials"]) if ckpt is not None else []
        session.open_logs(len(trials))
        # one evaluation, at the end of the budget; DropPath is a retraining regulariser (and not every
        # space has it): trials train without it
        tc = dataclasses.replace(cfg.train, eval_every=rc.steps, drop_path=0.0)
        t_start = time.perf_counter()
        while len(trials) < rc.trials and not budget.stopped:
            i = len(trials)
            g = draw(method, cfg, i, {t["archid"] for t in trials})
            g.name, g.meta["source"] = f"{method.name}-random-{i + 1:03d}", f"{method.name} random search"
            if progress:
                tqdm.write(f"trial {i + 1}/{rc.trials}: {g.archid[:8]} training {rc.steps} steps")
            r, trainer = train_network(g, tc, data.train_a, data.plain_b, session.device, cfg.seed + i, rc.steps,
                                       cfg.data.num_workers, should_stop=session.stop.is_set)
            if r["stopped"]:
                raise SegnasError(f"interrupted in trial {i + 1}/{rc.trials} (it restarts on resume); continue "
                                  f"with 'segnas search {method.name} --out {run} --resume'")
            g.meta.update({"trial": i + 1, "search_miou": r["final"]["miou"], "train_steps": r["steps"]})
            save_genotype(g, run / "genotypes" / f"trial{i + 1:03d}.json")
            if rc.save_trials:
                session.save({**trainer.state_dict(), "genotype": g.to_dict(), "num_classes": data.num_classes,
                              "class_names": list(data.train_a.class_names), "config": to_dict(cfg)},
                             f"trial{i + 1:03d}.pt")
            record = {"trial": i + 1, "archid": g.archid, "miou": r["final"]["miou"], "steps": r["steps"],
                      "wall_s": r["wall_s"]}
            trials.append(record)
            best = best_trial(trials)
            session.log.write({"step": i + 1, **record, "best_trial": best["trial"]})
            session.writer.add_scalar("search/trial_miou", record["miou"], i + 1)
            if progress:
                tqdm.write(f"trial {i + 1}/{rc.trials} {g.archid[:8]}: mIoU(trainB) {100 * record['miou']:.1f}% "
                           f"({record['wall_s']:.0f} s) | best {100 * best['miou']:.1f}% (trial {best['trial']})")
            if i + 1 < rc.trials and budget.over():  # a trial boundary: the search ends with these trials
                budget.stopped = True
                if progress:
                    tqdm.write(f"search.time_budget {budget.seconds:g} s spent ({budget.elapsed():.0f} s) after trial "
                               f"{i + 1}/{rc.trials}: the search ends with the best trial so far")
            session.save({"search": {"trials": trials}, "budget": budget.state(trials=len(trials)),
                          "method": method.name, "config": to_dict(cfg), "step": i + 1,
                          "num_classes": data.num_classes})
            if stop_after is not None and i + 1 >= stop_after:
                return {"interrupted": True, "step": i + 1}
        best = best_trial(trials)
        g = load_genotype(run / "genotypes" / f"trial{best['trial']:03d}.json")
        names = [primary] + (["genotype"] if primary != "genotype" else [])
        for name in names:
            save_genotype(g, run / f"{name}.json")
        if method.draw_results:
            method.draw(g, run / f"{primary}.png")
        final = {"phase": "random", "architectures": {primary: {"archid": g.archid, "miou": best["miou"],
                                                                 "trial": best["trial"]}}}
        return session.finish({
            "run_dir": str(run), "method": method.name, "strategy": STRATEGY, "trials": trials,
            "steps": sum(t["steps"] for t in trials), "wall_s": time.perf_counter() - t_start,
            "num_classes": data.num_classes, "final": final, "config": to_dict(cfg),
            "budget": budget.state(trials=len(trials), trials_planned=rc.trials),
            **{f"{name}_genotype": str(run / f"{name}.json") for name in names}})
