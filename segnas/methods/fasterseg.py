"""FasterSeg (Chen et al., ICLR 2020): the multi-resolution space, co-searched teacher and student, a latency table.

The method composes the FasterSeg space's supernet problem with a strategy;
what is FasterSeg's own beyond the space lives here: its presets, the latency
table the search measures (or is given), the adaptive latency weight as a hook
of the differentiable strategy, and how a finished search is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig, to_dict
from ..genotype import Genotype
from ..engine import distributed
from ..engine.rundir import write_yaml
from ..errors import ConfigError
from ..backends import backend_of_table
from ..objectives.latency import LatencyMiss, LatencyTable, latency_environment
from ..report.draw import draw_fasterseg
from ..spaces.fasterseg import FasterSegSpace
from ..spaces.fasterseg.lut import calibrate_table, probe, space_keys, table_latency_weights
from ..spaces.fasterseg.search import FasterSegConfig, FasterSegSearch
from . import Method

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "search": {"pretrain_epochs": 1, "epochs": 1, "batch_size": 2, "steps_per_epoch": 2, "select_images": 2,
                   "space_args": {"layers": 4, "chis": [1, 2], "stem_chi": 1, "head_chi": 1}},
        "fasterseg": {"lut_repeats": 1, "sandwich_random": 1, "ohem_min_kept": 16, "deploy_size": [64, 64]},
    },
    # a CPU search takes hundreds of steps, not the paper's 12,000: architecture steps are 10x larger
    "cpu": {
        "search": {"pretrain_epochs": 4, "epochs": 6, "batch_size": 4, "lr": 0.02, "arch_lr": 3e-3,
                   "select_images": 16, "space_args": {"layers": 8, "chis": [2, 3, 4], "stem_chi": 3, "head_chi": 3}},
        "fasterseg": {"sandwich_random": 1, "ohem_min_kept": 500, "deploy_size": [360, 480]},
    },
    "paper": {
        "data": {"crop": [224, 448], "scale_range": [0.375, 0.625]},
        "search": {"pretrain_epochs": 20, "epochs": 30, "batch_size": 2, "lr": 0.01, "steps_per_epoch": 400,
                   "select_images": 500,
                   "space_args": {"layers": 16, "chis": [4, 6, 8, 10, 12], "stem_chi": 8, "head_chi": 8}},
        "fasterseg": {"sandwich_random": 2, "ohem_min_kept": 2 * 224 * 448 // (16 * 64),
                      "deploy_size": [1024, 2048], "teacher_chi": 12},
    },
}


def search_table_file(cfg: RunConfig, run: Path) -> Path:
    """Where the latency table of the search in ``run`` is: the one it was given
    (``fasterseg.lut``), else the one it measured into its folder."""
    return Path(cfg.fasterseg.lut) if cfg.fasterseg.lut else run / "latency_table.json"


def table_keys(cfg: RunConfig, num_classes: int, hw) -> tuple[list, dict[str, Any]]:
    """(the table entries a search of ``cfg`` needs at ``hw``, the meta a new table for them records)."""
    fc = cfg.fasterseg
    args = FasterSegSpace().resolve_args(cfg.search.space_args)
    teacher = int(fc.teacher_chi or max(args["chis"])) if fc.cosearch else None
    meta = {"space": "fasterseg", "space_args": args, "input": list(hw), "num_classes": num_classes,
            "teacher_chi": teacher}
    return space_keys(args, hw, num_classes, teacher), meta


def fasterseg_table(cfg: RunConfig, num_classes: int, run: Path | None, device: torch.device,
                    progress: bool = True) -> LatencyTable:
    """The search's latency table: the user's (checked for this machine and complete), or one
    measured now into the run folder (and reused on resume)."""
    fc = cfg.fasterseg
    keys, meta = table_keys(cfg, num_classes, fc.deploy_size)
    env = latency_environment(device, cfg.threads, fc.backend)
    if fc.lut:
        table = LatencyTable.load(fc.lut, env)
        missing = [k for k in keys if k not in table]
        if missing:
            raise LatencyMiss(f"{fc.lut}: lacks {len(missing)} of the {len(keys)} entries this search needs "
                              f"(e.g. {missing[0].id}); build it for the same space arguments, deployment size "
                              f"{fc.deploy_size[0]}x{fc.deploy_size[1]} and {num_classes} classes with "
                              "'segnas latency build --space fasterseg'")
        return table
    path = search_table_file(cfg, run) if run is not None else None
    if path is not None and path.is_file():
        table = LatencyTable.load(path, env)
    else:
        table = LatencyTable(env, meta=meta)
    built = table.build(keys, probe, device, warmup=1, repeats=fc.lut_repeats, progress=progress)
    if built or table.calibration is None:
        calibrate_table(table, meta["space_args"], fc.deploy_size, num_classes, device,
                        repeats=max(3, fc.lut_repeats), seed=cfg.seed)
        if path is not None:
            table.save(path)
    return table


def build_table(cfg: RunConfig, num_classes: int, hw, out: Path, extend: bool, repeats: int,
                device: torch.device, progress: bool,
                backend: str = "eager") -> tuple[LatencyTable, int, dict[str, Any], list[str]]:
    """``segnas latency build --space fasterseg``: (table, entries measured now, calibration, lines to print)."""
    keys, meta = table_keys(cfg, num_classes, hw)
    env = latency_environment(device, cfg.threads, backend)
    table = (LatencyTable.load(out, env, hint=f"pass --backend {backend_of_table(LatencyTable.load(out).environment['backend'])} "
                               "to extend it, or --force to replace it")
             if out.is_file() and extend else LatencyTable(env, meta=meta))
    measured = table.build(keys, probe, device, repeats=repeats, progress=progress)
    cal = calibrate_table(table, meta["space_args"], hw, num_classes, device, repeats=repeats, seed=cfg.seed)
    args = meta["space_args"]
    weights, gaps, text = table_latency_weights(table, args, hw, args["chis"], args["stem_chi"], args["head_chi"])
    table.meta["latency_gaps_ms"], table.meta["latency_weights"] = gaps, weights
    lines = [f"{text} (paper footnote 1: w1*gap_O = w2*gap_s = w3*gap_chi); a search uses them with "
             "--set fasterseg.latency_weights=auto"]
    return table, measured, cal, lines


def make_problem(cfg: RunConfig, data, run: Path, device: torch.device, progress: bool) -> FasterSegSearch:
    """The search problem; latency weights asked for as ``auto`` are solved from its table and
    written into the run's config, so the run records (and a resume uses) the numbers it ran with."""
    table = fasterseg_table(cfg, data.num_classes, run, device, progress)
    problem = FasterSegSearch(cfg, data.num_classes, data.ignore_index, table, cfg.seed, device)
    if problem.solved_weights is not None:
        cfg.fasterseg.latency_weights = list(problem.latency_weights)
        if distributed.is_main():  # under torchrun every process solves the same weights; the first writes
            write_yaml(run / "config.yaml", to_dict(cfg))
        if progress:
            print(problem.solved_weights)
    return problem


def reload_problem(cfg: RunConfig, run: Path, num_classes: int, ignore_index: int,
                   device: torch.device) -> FasterSegSearch:
    """A finished search's problem, to read its supernet: with the latency table it searched with, read as
    it is (neither measured again nor checked against this machine: scoring the supernet never times)."""
    path = search_table_file(cfg, run)
    if not path.is_file():
        raise ConfigError(f"{path}: the latency table of the search in {run} is gone; its supernet is rebuilt "
                          "with it: restore the file")
    return FasterSegSearch(cfg, num_classes, ignore_index, LatencyTable.load(path), cfg.seed, device)


class AdaptiveLambda:
    """After each epoch: halve or double the latency weight toward ``fasterseg.target_latency_ms``
    (when ``fasterseg.adaptive_lambda``), and record the weight the next epoch uses."""

    def on_epoch_end(self, epoch: int, searching: bool, record: dict[str, Any], problem: FasterSegSearch) -> str:
        if searching and "student" in record["architectures"]:
            problem.adapt_lambda(record["architectures"]["student"]["latency_ms"])
        record["latency_lambda"] = problem.latency_lambda
        return f"lambda {problem.latency_lambda:.3g}"


def epoch_line(record: dict[str, Any]) -> str:
    """One decoded architecture in the progress line of a search epoch."""
    return (f"branches 1/{record['branches'].replace('+', ',1/')} est. {record['latency_ms']:.2f} ms "
            f"mIoU(trainB) {100 * record['miou']:.1f}")


def report(result: dict[str, Any], out: Path) -> list[str]:
    final = result.get("final") or {}
    lines = []
    for name, r in final.get("architectures", {}).items():
        if "branches" in r:
            h, w = result["config"]["fasterseg"]["deploy_size"]
            lines.append(f"{name}: {r['archid']} branches 1/{r['branches'].replace('+', ',1/')}, estimated "
                         f"{r['latency_ms']:.2f} ms at {h}x{w}, search mIoU {100 * r['miou']:.1f}% "
                         f"-> {out / (name + '.json')}")
        else:  # a multi-trial search: the best trial
            lines.append(f"{name}: {r['archid']} trial {r.get('trial')}, search mIoU {100 * r['miou']:.1f}% "
                         f"-> {out / (name + '.json')}")
    if "teacher" in final.get("architectures", {}):
        lines.append(f"next: segnas retrain {out / 'teacher.json'} --out {out}-teacher, then "
                     f"segnas retrain {out / 'student.json'} --out {out}-student --teacher {out}-teacher")
    else:
        lines.append(f"next: segnas retrain {out / 'genotype.json'} --out {out}-retrain")
    return lines


def has_coarse_branch(genotype: Genotype) -> bool:
    """A branch ending at 1/32: what ``planted-context`` rewards (its cue lies beyond a 1/8-1/16 reach)."""
    return any(b["cells"][-1]["scale"] == 32 for b in genotype.structure["branches"])


METHOD = Method(
    name="fasterseg", title="FasterSeg (Chen et al., ICLR 2020)", space="fasterseg",
    strategies=("differentiable", "random", "ppo"), presets=PRESETS, section=FasterSegConfig,
    outputs=("teacher", "student"), primary="student", problem=make_problem, reload=reload_problem,
    hooks=lambda cfg: [AdaptiveLambda()], check=FasterSegSearch.check_config,
    draw=draw_fasterseg, report=report, epoch_line=epoch_line, latency_table=build_table,
    section_strategies=("differentiable",),  # a random search draws students: no table, no co-search
    planted={"planted-context": ("a branch ending at 1/32", has_coarse_branch)},
)
