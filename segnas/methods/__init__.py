"""The method registry: one record per published method, composing a space with the strategies it accepts.

A method is what ``segnas search METHOD`` runs: its space, its default strategy
and the others it accepts, its presets, its config section, what it writes and
how it reports. The CLI, the demo, the drawings, ``segnas show`` and the
benchmarks find methods here and nowhere else; adding a method is its module
plus one entry in ``_MODULES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from ..config import RunConfig, make_config
from ..errors import ConfigError, GenotypeError
from ..genotype import Genotype
from ..spaces import get_space
from ..strategies import NEEDS, SECTION_NAMES, STRATEGIES, strategy_presets, strategy_sections


@dataclass(frozen=True)
class Method:
    """Everything a search method adds to a space and the strategies."""

    name: str
    title: str  # paper, for listings
    space: str  # registered space name
    strategies: tuple[str, ...]  # accepted strategies; the first is the default
    presets: dict[str, dict[str, Any]]  # merged over segnas.config.PRESETS, per preset name
    section: type | None  # dataclass of the ``<name>.*`` config section
    outputs: tuple[str, ...]  # architectures a search writes (``<name>.json`` each)
    primary: str  # the architecture that is also written as ``genotype.json``
    # differentiable strategies: (cfg, data, run, device, progress) -> supernet problem
    problem: Callable[..., Any] | None = None
    # a finished search's problem rebuilt only to read its supernet (``segnas correlate``), measuring and
    # writing nothing: (cfg, run, num_classes, ignore_index, device) -> problem; None: ``problem`` serves
    reload: Callable[..., Any] | None = None
    hooks: Callable[[RunConfig], list] = lambda cfg: []  # extras of the method's differentiable search
    check: Callable[[RunConfig], Any] = lambda cfg: None  # refuses a config before a run folder is made
    sample_args: Callable[[RunConfig], dict[str, Any]] = lambda cfg: dict(cfg.search.space_args)
    # (genotype drawn by the space, cfg) -> the architecture the search would consider (e.g. a fixed part put
    # back); None: the draw as it is
    restrict: Callable[[Genotype, RunConfig], Genotype] | None = None
    draw: Callable[[Genotype, Path], Path] | None = None  # a genotype of this space as a PNG
    draw_results: bool = False  # draw each final genotype into the run folder
    report: Callable[[dict[str, Any], Path], list[str]] | None = None  # lines printed after a search
    epoch_line: Callable[[dict[str, Any]], str] = lambda record: ""  # a decoded architecture, per search epoch
    # ``segnas latency build`` for this space: (table, entries measured, calibration, lines to print)
    latency_table: Callable[..., Any] | None = None
    section_strategies: tuple[str, ...] | None = None  # strategies that read the section (None: all)
    # planted-architecture dataset -> (the property that dataset rewards, stated for this space; its test)
    planted: dict[str, tuple[str, Callable[[Genotype], bool]]] = field(default_factory=dict)
    # a multi-trial search's own trial (``strategies.multi_trial.StagedTrial``); None: the generic one-stage trial
    trial: Any = None

    def has_planted(self, dataset: str, genotype: Genotype) -> bool:
        """Whether ``genotype`` has the property planted in ``dataset`` (a ConfigError if none is stated)."""
        if dataset not in self.planted:
            raise ConfigError(f"method {self.name} states no planted property for dataset {dataset!r}; "
                              f"it does for: {', '.join(self.planted) or 'none'}")
        if genotype.space != self.space:
            raise GenotypeError(f"genotype of space {genotype.space!r}: method {self.name} judges {self.space!r} ones")
        return bool(self.planted[dataset][1](genotype))

    def sections(self, strategy: str) -> dict[str, Any]:
        """Fresh config sections of this method and ``strategy`` (name -> dataclass)."""
        reads = self.section is not None and (self.section_strategies is None or strategy in self.section_strategies)
        return {**({self.name: self.section()} if reads else {}),
                **strategy_sections(strategy, staged=self.trial is not None)}

    def strategy(self, name: str | None) -> str:
        """``name`` (or the default) if this method accepts it; else one line listing those it does."""
        name = name or self.strategies[0]
        if name not in STRATEGIES:
            raise ConfigError(f"--strategy {name!r} is unknown; known strategies: {', '.join(STRATEGIES)}")
        if name not in self.strategies:
            raise ConfigError(f"--strategy {name!r} needs {NEEDS[name]}, which method {self.name}'s {self.space} "
                              f"space does not offer; it accepts {', '.join(self.strategies)}")
        return name

    def config(self, preset: str = "cpu", file: str | Path | None = None, overrides: list[str] | None = None,
               extra: dict[str, Any] | None = None, strategy: str | None = None) -> RunConfig:
        """A checked search config: general preset, this method's preset, file, CLI options, ``--set``."""
        strategy = self.strategy(strategy)
        sections = self.sections(strategy)
        presets = {}
        for name in set(self.presets) | set(strategy_presets(strategy)):
            # the strategy's defaults, then the method's own (a method may size its trials for each strategy)
            merged = _merged(strategy_presets(strategy).get(name, {}), self.presets.get(name, {}))
            presets[name] = {k: v for k, v in merged.items()
                             if k in sections or (k != self.name and k not in SECTION_NAMES)}
        cfg = make_config(preset, file, overrides, {**(extra or {}), "method": self.name, "strategy": strategy},
                          method_presets=presets, sections=sections)
        get_space(self.space).check_pretrained(cfg.train.pretrained)  # trials load it: refused before any run
        self.check(cfg)
        return cfg

    def search(self, cfg: RunConfig, out: str | Path, resume: bool = False, stop_after: int | None = None,
               progress: bool = True, resume_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run (or resume) a search of this method with the strategy ``cfg`` names (a resume: the run's own)."""
        strategy = _run_strategy(Path(out)) if resume else None
        run = STRATEGIES[self.strategy(strategy or cfg.strategy)]
        return run(self, cfg, out, resume=resume, stop_after=stop_after, progress=progress,
                   resume_overrides=resume_overrides)

    def choice_spec(self, cfg: RunConfig) -> list:
        """The flat decisions of this method's space as ``cfg``'s search builds it (what a controller emits)."""
        return get_space(self.space).choice_spec(self.sample_args(cfg))

    def decode(self, choices: list[int], cfg: RunConfig) -> Genotype:
        """The architecture of flat ``choices``; GenotypeError where the space refuses them."""
        return get_space(self.space).decode(choices, self.sample_args(cfg), meta={"source": "controller"})

    def sample(self, rng: np.random.Generator, cfg: RunConfig) -> Genotype:
        """A random architecture of this method's space, drawn as ``cfg``'s search would build it (and
        restricted to what it searches)."""
        g = get_space(self.space).sample(rng, self.sample_args(cfg))
        return g if self.restrict is None else self.restrict(g, cfg)


def genotype_report(key: str, describe: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any], Path], list[str]]:
    """``Method.report`` of a method whose search writes one ``genotype.json``: each final architecture
    (``describe`` of its record where the record has ``key``, else the random search's trial) with its
    files, then the retrain command."""
    def report(result: dict[str, Any], out: Path) -> list[str]:
        lines = []
        for name, r in ((result.get("final") or {}).get("architectures") or {}).items():
            what = (f" {describe(r)}" if key in r
                    else f" trial {r.get('trial')}, search mIoU {100 * r['miou']:.1f}%")
            lines.append(f"{name}: {r['archid']}{what} -> {out / (name + '.json')} (drawing {out / (name + '.png')})")
        lines.append(f"next: segnas retrain {out / 'genotype.json'} --out {out}-retrain")
        return lines

    return report


def supernet_epoch_line(describe: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
    """``Method.epoch_line`` of a one-shot method: ``describe`` of the decoded architecture, then the
    supernet's trainB mIoU where the epoch scored one."""
    def epoch_line(record: dict[str, Any]) -> str:
        line = describe(record)
        return line if record.get("miou") is None else f"{line} | supernet mIoU(trainB) {100 * record['miou']:.1f}"

    return epoch_line


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _run_strategy(run: Path) -> str | None:
    """The strategy a run folder's search was started with (None where it did not record one)."""
    try:
        saved = yaml.safe_load((run / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return saved.get("strategy") if isinstance(saved, dict) else None


# one entry per method: the module segnas/methods/<entry>.py defines its METHOD record
_MODULES = ("fasterseg", "autodeeplab", "dcnas", "nekrasov", "dots")
METHODS: dict[str, Method] = {m.name: m for m in (import_module(f".{n}", __name__).METHOD for n in _MODULES)}


def get_method(name: str) -> Method:
    """The registered method ``name``; an unknown name is one line listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"method {name!r} is unknown; known methods: {', '.join(METHODS)}") from None


def method_for_space(space: str) -> Method:
    """The method whose space is ``space`` (drawings, latency tables)."""
    for method in METHODS.values():
        if method.space == space:
            return method
    raise GenotypeError(f"no method uses space {space!r}; known spaces: "
                        f"{', '.join(sorted({m.space for m in METHODS.values()}))}")


def draw_genotype(genotype: Genotype, path: str | Path) -> Path:
    """Draw ``genotype`` to a PNG with the drawing of its space's method."""
    method = method_for_space(genotype.space)
    if method.draw is None:
        raise GenotypeError(f"no drawing for space {genotype.space!r} yet")
    return method.draw(genotype, Path(path))


__all__ = ["METHODS", "Method", "draw_genotype", "genotype_report", "get_method", "method_for_space",
           "supernet_epoch_line"]
