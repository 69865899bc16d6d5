"""What a report reads from a run folder: its config, environment, result, log and genotypes.

A run folder is recognised by its ``env.json`` (``segnas_run``) or its folder mark; a folder holding run
folders one level down (a demo, a benchmark's seeds) is reported as a whole. Reading never fails on what a
run lacks or holds damaged: a missing file is an absent section, an unreadable one a note in the report.
Only a folder with no run in it at all is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import jsonio
from ..config_io import read_yaml
from ..engine.rundir import MetricsLog, is_segnas_run
from ..errors import ConfigError, SegnasError
from ..genotype import Genotype
from ..genotype import load as load_genotype
from ..outputs import mark_of

KIND_ORDER = {"search": 0, "retrain": 1}


@dataclass
class Run:
    """One run folder as the report sees it."""

    path: Path
    kind: str  # "search" or "retrain"
    config: dict[str, Any]
    env: dict[str, Any]
    result: dict[str, Any] | None
    records: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)  # files present but unreadable

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def method(self) -> str | None:
        return self.config.get("method") or (self.result or {}).get("method")

    @property
    def strategy(self) -> str | None:
        return self.config.get("strategy") or (self.result or {}).get("strategy")

    @property
    def data(self) -> dict[str, Any]:
        data = self.config.get("data")
        return data if isinstance(data, dict) else {}

    @property
    def when(self) -> str:
        """When the run last wrote its result (or its log), local time."""
        for name in ("result.json", "metrics.jsonl", "env.json", "config.yaml"):
            p = self.path / name
            if p.is_file():
                return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p.stat().st_mtime))
        return "-"

    def text(self, name: str) -> str | None:
        """A small text file of the run (config.yaml, ...), or None."""
        p = self.path / name
        try:
            return jsonio.read_text(p, name, ConfigError, jsonio.MAX_JSON_BYTES, "text") if p.is_file() else None
        except (SegnasError, OSError) as e:
            self.notes.append(f"{name}: unreadable ({e})")
            return None

    def genotypes(self) -> list[tuple[str, Genotype]]:
        """The run's architectures, each once: a retrain's ``genotype.json``; a search's primary result and
        every final architecture it names (FasterSeg's teacher and student), labelled by file name."""
        from ..methods import METHODS

        final = self.final_architectures()
        names = [n for n in final if n.isidentifier()]
        names += [] if "genotype" in names else ["genotype"]
        method = METHODS.get(str(self.method))
        if method is not None and method.primary in names:  # the method's result first (FasterSeg's student)
            names.insert(0, names.pop(names.index(method.primary)))
        if self.kind == "search" and not final:  # unfinished: what the search has written so far
            names += sorted(p.stem for p in self.path.glob("*.json")
                            if p.stem in ("student", "teacher") and p.stem not in names)
        out: list[tuple[str, Genotype]] = []
        seen: set[str] = set()
        for n in names:
            p = self.path / f"{n}.json"
            if not p.is_file():
                continue
            try:
                g = load_genotype(p)
            except SegnasError as e:
                self.notes.append(f"{p.name}: unreadable ({e})")
                continue
            if g.archid not in seen:
                seen.add(g.archid)
                out.append((n, g))
        return out

    def final_architectures(self) -> dict[str, dict[str, Any]]:
        """A finished search's result per architecture name (``result.json``'s ``final``), else nothing."""
        final = (self.result or {}).get("final")
        archs = final.get("architectures") if isinstance(final, dict) else None
        if not isinstance(archs, dict):
            return {}
        return {str(k): v for k, v in archs.items() if isinstance(v, dict)}

    def checkpoint(self) -> Path | None:
        """A retrain's trained weights: ``best.pt``, else ``last.pt``."""
        if self.kind != "retrain":
            return None
        for name in ("best.pt", "last.pt"):
            p = self.path / "checkpoints" / name
            if p.is_file():
                return p
        return None

    def epoch_records(self) -> list[dict[str, Any]]:
        """A one-shot search's per-epoch records (the decoded architectures with their scores)."""
        return [r for r in self.records if isinstance(r.get("architectures"), dict)]

    def trial_records(self) -> list[dict[str, Any]]:
        """A multi-trial search's trials (from the result, else from the log), in trial order."""
        trials = (self.result or {}).get("trials")
        if not isinstance(trials, list):
            trials = [r for r in self.records if "trial" in r and "archid" in r]
        trials = [t for t in trials if isinstance(t, dict) and isinstance(t.get("trial"), int)]
        return sorted(trials, key=lambda t: t["trial"])

    def eval_records(self) -> list[dict[str, Any]]:
        """A retrain's evaluations on the val set."""
        return [r for r in self.records if isinstance(r.get("val_miou"), (int, float))]


def read_run(path: Path) -> Run:
    """Everything the report shows of run folder ``path``; damaged files become notes."""
    notes: list[str] = []

    def json_file(name: str) -> dict[str, Any] | None:
        p = path / name
        if not p.is_file():
            return None
        try:
            value = jsonio.read(p, name)
        except (SegnasError, OSError) as e:
            notes.append(f"{name}: unreadable ({e})")
            return None
        return value if isinstance(value, dict) else None

    config: dict[str, Any] = {}
    if (path / "config.yaml").is_file():
        try:
            value = read_yaml(path / "config.yaml")
            config = value if isinstance(value, dict) else {}
        except (SegnasError, OSError) as e:
            notes.append(f"config.yaml: unreadable ({e})")
    result = json_file("result.json")
    if not config and isinstance((result or {}).get("config"), dict):
        config = result["config"]
    records = MetricsLog(path / "metrics.jsonl").read() if (path / "metrics.jsonl").is_file() else []
    searched = bool(config.get("method")) or bool((result or {}).get("method")) or (path / "splits.json").is_file()
    return Run(path=path, kind="search" if searched else "retrain", config=config, env=json_file("env.json") or {},
               result=result, records=records, notes=notes)


def find_runs(folder: str | Path) -> tuple[list[Run], str]:
    """The runs of ``folder`` and what it is (``run``, or the command that wrote a folder of runs such as
    ``demo``, else ``runs``); a folder without any is one ConfigError line."""
    folder = Path(folder)
    usage = "give a folder written by segnas search, retrain or demo"
    if not folder.exists():
        raise ConfigError(f"{folder}: no such folder; {usage}")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder; {usage}")
    if is_segnas_run(folder):
        return [read_run(folder)], "run"
    try:
        inside = sorted(p for p in folder.iterdir() if is_segnas_run(p))
    except OSError as e:
        raise ConfigError(f"{folder}: cannot list the folder ({e.strerror}); {usage}") from None
    if not inside:
        raise ConfigError(f"{folder}: not a segnas run folder (no env.json of a run, and no run folders inside); "
                          f"{usage}")
    runs = [read_run(p) for p in inside]
    runs.sort(key=lambda r: (KIND_ORDER[r.kind], _started(r.path), r.name))
    return runs, mark_of(folder) or "runs"


def _started(path: Path) -> float:
    """When a run began: its config is written first and never again."""
    for name in ("config.yaml", "env.json"):
        try:
            return (path / name).stat().st_mtime
        except OSError:
            continue
    return 0.0


__all__ = ["Run", "find_runs", "read_run"]
