"""``segnas compare``: the searches, their retrains and the cost measurement, resumable stage by stage.

The stages run as executor tasks (``segnas.executors``): first every search that has not finished
(independent tasks), then the retrain of every genotype they found (a second round of tasks, once the
searches have ended: each retrain needs its search's genotype), then,
in this process, the parameters, multiply-adds and latency of every retrained network, timed together
in interleaved rounds. ``compare.json`` records the settings and every stage's state and result and is
rewritten (atomically) after each stage, so a rerun of the same command continues where the last one
stopped: finished stages are kept, an interrupted run is continued with its own ``--resume``, and a
failed one is tried again.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..engine import distributed
from ..engine.budget import format_duration, parse_duration
from ..errors import ConfigError, SegnasError
from ..executors import make_executor
from ..executors.ray_executor import import_ray
from ..fileio import atomic_write_text
from ..genotype import load as load_genotype
from ..outputs import claim_folder, marked
from .cost import measure
from .plan import (Entry, check_same, command_extra, entries, method_list, retrain_config, search_config,
                   settings, split_overrides)
from .table import csv_text, draw_pareto, markdown, pareto_front
from .tasks import retrain_task, search_task

COMMAND = "compare"
EXECUTORS = ("local", "ray", "inline")


@dataclass
class CompareOptions:
    """The command's options (see ``segnas compare --help``)."""

    out: str
    methods: str | None = None
    random_for: str | None = None
    no_random: bool = False
    budget: str = "10m"
    preset: str = "cpu"
    overrides: list[str] = field(default_factory=list)
    data: str | None = None
    root: str | None = None
    num_classes: int | None = None
    seed: int | None = None
    device: str | None = None
    latency_size: tuple[int, int] | None = None
    executor: str = "local"
    workers: int = 1
    address: str | None = None
    threads: int | None = None
    quiet: bool = False


@dataclass
class Plan:
    """A checked comparison: its searches and their configs, the retraining recipe, the settings."""

    entries: list[Entry]
    search_cfgs: dict[str, RunConfig]
    retrain_cfg: RunConfig
    settings: dict[str, Any]
    threads: int


def plan(opts: CompareOptions) -> Plan:
    """Every check of the command, before anything is written."""
    if distributed.launched():
        raise SegnasError("compare runs its searches as separate tasks, which torchrun does not share out; run it in "
                          "one process (--executor local or ray spread the stages)")
    budget_s = parse_duration(opts.budget)
    methods = method_list(opts.methods, "--methods")
    if opts.no_random and opts.random_for is not None:
        raise ConfigError("--random-for and --no-random contradict each other; pass one of them")
    random_for = [] if opts.no_random else method_list(opts.random_for, "--random-for", within=methods)
    if opts.executor not in EXECUTORS:
        raise ConfigError(f"--executor {opts.executor!r} is unknown; choose local or ray (or inline: in this process)")
    if isinstance(opts.workers, bool) or opts.workers < 1:
        raise ConfigError(f"--workers is {opts.workers}; give at least 1")
    if opts.executor == "inline" and opts.workers != 1:
        raise ConfigError(f"--workers {opts.workers} with --executor inline (one stage at a time in this process); "
                          "use --executor local")
    if opts.address and opts.executor != "ray":
        raise ConfigError("--address names a Ray cluster; it needs --executor ray")
    if opts.threads is not None and opts.threads < 1:
        raise ConfigError(f"--threads is {opts.threads}; give at least 1")
    threads = opts.threads or max(1, (os.cpu_count() or 1) // opts.workers)
    if opts.executor == "ray":
        import_ray()  # a missing Ray is one line, before any folder is made
    chosen = entries(methods, random_for)
    by_section = split_overrides(opts.overrides, chosen)
    extra = command_extra(opts.data, opts.root, opts.num_classes, opts.seed, opts.device, threads)
    search_cfgs = {e.label: search_config(e, opts.preset, by_section, extra, budget_s) for e in chosen}
    retrain_cfg = retrain_config(opts.preset, by_section, extra)
    return Plan(chosen, search_cfgs, retrain_cfg,
                settings(chosen, methods, random_for, budget_s, opts.preset, opts.overrides, retrain_cfg,
                         opts.latency_size, threads), threads)


def _new_state(p: Plan) -> dict[str, Any]:
    return {"settings": p.settings, "stages": {
        e.label: {"method": e.method, "strategy": e.strategy, "space": e.space, "baseline": e.baseline,
                  "search": {"state": "pending"}, "retrain": {"state": "pending"}} for e in p.entries},
        "cost": {"state": "pending"}}


def _load_state(out: Path) -> dict[str, Any] | None:
    path = out / "compare.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        if not isinstance(state, dict) or not isinstance(state.get("settings"), dict) or "stages" not in state:
            raise ValueError
    except (OSError, ValueError):
        raise ConfigError(f"{path}: unreadable or not a comparison's record; choose another --out") from None
    return state


class Recorder:
    """``compare.json``, rewritten atomically whenever a stage changes."""

    def __init__(self, out: Path, state: dict[str, Any]) -> None:
        self.out, self.state = out, state

    def save(self) -> None:
        """Write the record now (a comparison killed later loses no finished stage)."""
        atomic_write_text(self.out / "compare.json", json.dumps(marked(self.state, COMMAND), indent=2) + "\n")

    def say(self, line: str) -> None:
        """A progress line of the comparison."""
        print(line, flush=True)

    def stage(self, label: str, kind: str) -> dict[str, Any]:
        """The record of stage ``kind`` ("search" or "retrain") of the search ``label`` (mutable)."""
        return self.state["stages"][label][kind]

    def settle(self, label: str, kind: str, result: Any) -> None:
        """Record a finished task (a ``TaskResult``) of stage ``kind`` of ``label`` and save."""
        stage = self.stage(label, kind)
        if result.ok:
            stage.update({"state": "done", "error": None, "result": result.value})
            v = result.value
            what = (f"{v['search_s']:.0f} s of search" + (", stopped by the budget" if v["budget_stopped"] else "")
                    if kind == "search" else f"val mIoU {100 * v['val_miou']:.1f}% in {v['retrain_s']:.0f} s")
            self.say(f"{kind} {label}: {'finished earlier, kept' if v['already_complete'] else 'done'} ({what})")
        else:
            stage.update({"state": "failed", "error": result.error, "result": None})
            self.say(f"{kind} {label}: failed: {result.error}")
        self.save()


def _done(stage: dict[str, Any], path_key: str | None = None) -> bool:
    if stage.get("state") != "done" or not stage.get("result"):
        return False
    return path_key is None or Path(stage["result"][path_key]).is_file()


class Stages:
    """The executor the stages run on, started at the first stage that needs it (a rerun with nothing left to
    do starts none) and kept for the retrains, so local workers start once."""

    def __init__(self, opts: CompareOptions, threads: int) -> None:
        self.opts, self.threads = opts, threads
        self._stack = ExitStack()
        self._executor = None

    def __enter__(self) -> "Stages":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def run(self, rec: Recorder, kind: str, fn, payloads: dict[str, dict[str, Any]]) -> None:
        """Run stage ``kind`` of every label in ``payloads`` (label -> payload), recording each as it ends."""
        if not payloads:
            return
        for label, payload in payloads.items():
            rec.stage(label, kind)["state"] = "queued"  # the executor starts it when a worker is free
            again = (Path(payload["out"]) / "checkpoints").is_dir()
            rec.say(f"{kind} {label}: queued{' (continues from its checkpoint)' if again else ''}")
        rec.save()
        if self._executor is None:
            o = self.opts
            self._executor = self._stack.enter_context(make_executor(
                o.executor, o.workers, threads_per_worker=self.threads, num_cpus=self.threads, address=o.address))
        for result in self._executor.map(fn, payloads):
            rec.settle(result.key, kind, result)


def run_compare(opts: CompareOptions) -> int:
    """Run (or continue) the comparison in ``opts.out``; 0 when every stage finished, 1 when one failed."""
    p = plan(opts)
    out = claim_folder(opts.out, COMMAND)
    state = _load_state(out)
    if state is not None:
        check_same(state["settings"], p.settings, str(out))
    else:
        state = _new_state(p)
    rec = Recorder(out, state)
    rec.save()
    progress = not opts.quiet and opts.workers == 1
    rec.say(f"segnas compare: {', '.join(e.label for e in p.entries)}; search budget "
            f"{format_duration(p.settings['budget_s'])} each, preset {opts.preset}, {p.threads} thread(s) per stage, "
            f"executor {opts.executor} ({opts.workers} at a time)")

    searches = {}
    for e in p.entries:
        if _done(rec.stage(e.label, "search"), "genotype"):
            rec.say(f"search {e.label}: finished earlier, kept")
            continue
        searches[e.label] = {"method": e.method, "cfg": p.search_cfgs[e.label], "out": str(out / "search" / e.label),
                             "progress": progress}
    with Stages(opts, p.threads) as runner:
        runner.run(rec, "search", search_task, searches)
        retrains = _retrains(rec, p, out, progress)
        rec.save()
        runner.run(rec, "retrain", retrain_task, retrains)

    measure(rec, out, p, opts)
    rows = _rows(rec.state, p.entries)
    _write_outputs(out, rows, rec, p, opts)
    failed = [f"{r['label']} ({r['error']})" for r in rows if r["error"]]
    if failed:
        print(f"segnas: {len(failed)} of {len(rows)} searches did not reach the table: {'; '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


def _retrains(rec: Recorder, p: Plan, out: Path, progress: bool) -> dict[str, dict[str, Any]]:
    """The retrain payloads of every finished search whose retrain has not finished (a failed search's is
    recorded as skipped)."""
    retrains = {}
    for e in p.entries:
        search, stage = rec.stage(e.label, "search"), rec.stage(e.label, "retrain")
        if search.get("state") != "done":
            stage.update({"state": "skipped", "error": "its search did not finish", "result": None})
            continue
        if _done(stage) and stage["result"].get("archid") == search["result"]["archid"]:
            rec.say(f"retrain {e.label}: finished earlier, kept")
            continue
        run = out / "retrain" / e.label
        old = run / "genotype.json"
        if old.is_file() and load_genotype(old).archid != search["result"]["archid"]:
            # this comparison's own retrain of a genotype its redone search no longer gives: start it anew
            rec.say(f"retrain {e.label}: its search now gives {search['result']['archid']}; the retrain of "
                    f"{load_genotype(old).archid} is removed")
            shutil.rmtree(run)
        retrains[e.label] = {"genotype": search["result"]["genotype"], "cfg": p.retrain_cfg,
                             "out": str(run), "progress": progress}
    return retrains


def _rows(state: dict[str, Any], plan_entries: list[Entry]) -> list[dict[str, Any]]:
    cost = (state.get("cost") or {}).get("results") or {}
    rows = []
    for e in plan_entries:
        st = state["stages"][e.label]
        s, r = st["search"].get("result") or {}, st["retrain"].get("result") or {}
        c = cost.get(e.label) or {}
        error = next((f"{kind}: {st[kind]['error']}" for kind in ("search", "retrain")
                      if st[kind].get("state") in ("failed", "skipped") and st[kind].get("error")), None)
        if error is None and c.get("error"):
            error = f"cost: {c['error']}"
        rows.append({"label": e.label, "method": e.method, "strategy": e.strategy, "space": e.space,
                     "baseline": e.baseline,
                     "val_miou": r.get("val_miou"), "params": c.get("params"), "macs": c.get("macs"),
                     "latency_ms": c.get("latency_ms"), "search_s": s.get("search_s"), "retrain_s": r.get("retrain_s"),
                     "budget_stopped": s.get("budget_stopped"), "archid": s.get("archid"), "error": error,
                     "pareto": False})
    points = {r["label"]: (r["latency_ms"], r["val_miou"]) for r in rows
              if r["latency_ms"] is not None and r["val_miou"] is not None and not r["error"]}
    front = set(pareto_front(points))
    for r in rows:
        r["pareto"] = r["label"] in front
    return rows


def _write_outputs(out: Path, rows: list[dict[str, Any]], rec: Recorder, p: Plan, opts: CompareOptions) -> None:
    st = p.settings
    cost = rec.state.get("cost") or {}
    size = cost.get("input")
    d = st["data"]
    recipe = [s for s in st["overrides"] if s.startswith(("train.", "data."))]
    header = [f"# segnas compare: {d['dataset']}, preset {st['preset']}",
              "",
              f"Each search: its method's own strategy (random: the baseline on that space), "
              f"{format_duration(st['budget_s'])} of search time at most, {st['threads']} thread(s), seed {st['seed']}, "
              f"device {st['device']}. Every network retrained with one recipe (preset {st['preset']} "
              f"train.*{' + ' + ' '.join(recipe) if recipe else ''}); val mIoU of its best checkpoint."
              + (f" Cost at 1x3x{size[2]}x{size[3]}: parameters, multiply-adds, latency the fastest of "
                 f"{cost.get('rounds')} interleaved rounds on {cost.get('device')} with {cost.get('threads')} "
                 "thread(s)." if size else "")]
    text = markdown(rows, header)
    atomic_write_text(out / "compare.md", text)
    atomic_write_text(out / "compare.csv", csv_text(rows))
    draw_pareto(rows, out / "pareto.png", f"{d['dataset']}, preset {st['preset']}, budget "
                                          f"{format_duration(st['budget_s'])} per search: val mIoU vs latency")
    rec.state["rows"] = rows
    rec.state["outputs"] = {name: str(out / name) for name in ("compare.md", "compare.csv", "pareto.png")}
    rec.save()
    print()
    print(text, end="")
    print(f"-> {out / 'compare.md'}, {out / 'compare.csv'}, {out / 'pareto.png'}")


__all__ = ["CompareOptions", "Plan", "plan", "run_compare"]
