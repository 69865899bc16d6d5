"""Searches on planted-architecture data: the settings the demo and ``benchmarks/planted.py`` share.

A planted dataset (``segnas.data.planted``) is built to reward one architecture
property that each method states for its space (``Method.planted``). Judging a search
there needs three things beside the search itself: the same CPU budget for
every run, random architectures of the searched one's cost band, and one
retraining recipe for all of them. The cost band is measured in multiply-adds
at the data's size: it is computed for any space without a latency table and
is exact, where CPU timings of hundreds of candidates would take longer than
the search.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .config import RunConfig
from .genotype import Genotype
from .methods import Method
from .profile import profile
from .spaces import get_space

DATASET = "planted-context"


@dataclass(frozen=True)
class Scenes:
    """A scene size of the planted dataset and the one retraining recipe every network compared there gets."""

    size: tuple[int, int]
    retrain: tuple[str, ...]

    def data(self) -> list[str]:
        """``--set`` items of whole scenes, unscaled: a crop could cut away the beacon a target's class depends on."""
        h, w = self.size
        return [f"data.dataset={DATASET}", f"data.synthetic_size=[{h},{w}]", f"data.crop=[{h},{w}]",
                "data.scale_range=[1,1]"]

    def retrain_overrides(self) -> list[str]:
        return [*self.data(), *self.retrain]


# The benchmark's scenes: at 32x448 the cue lies beyond what networks without the property learn to
# reach, so the property is necessary (benchmarks/planted.py --matters measures it); from scratch, with
# epochs enough for networks with the property to learn the cue, OHEM keeping the rare target pixels.
BENCH = Scenes((32, 448), ("train.epochs=60", "train.batch_size=8", "train.lr=0.05", "train.loss=ohem",
                           "train.ohem_min_kept=4000", "train.eval_every=100000"))
# The demo's: small enough for a five-minute demo on 2 cores. There the property speeds learning
# but is not necessary: 1/8 networks learn the cue too given enough epochs.
DEMO = Scenes((64, 96), ("train.epochs=12", "train.batch_size=8", "train.lr=0.05", "train.loss=ce",
                         "train.eval_every=100000"))
QUICK_RETRAIN = [*DEMO.data(), "train.epochs=1", "train.loss=ce"]  # pipeline checks
# a search per method at a CPU budget of a few minutes (on top of the method's cpu preset)
SEARCH: dict[str, list[str]] = {
    "fasterseg": ["search.batch_size=8", "search.pretrain_epochs=6", "search.epochs=4", "search.lr=0.05",
                  "search.arch_lr=0.005", "search.select_images=64", "fasterseg.cosearch=false",
                  "fasterseg.sandwich_random=0", "fasterseg.sandwich_search=false", "fasterseg.lut_repeats=3",
                  "fasterseg.ohem_min_kept=400", "fasterseg.deploy_size=[360,480]",
                  "search.space_args.layers=6", "search.space_args.chis=[2,3,4]", "search.space_args.stem_chi=3",
                  "search.space_args.head_chi=3", "search.space_args.branches=1"],
    "autodeeplab": ["search.batch_size=8", "search.pretrain_epochs=2", "search.epochs=3", "search.select_images=32",
                    "search.space_args.layers=6", "search.space_args.blocks=2", "search.space_args.filter_multiplier=4",
                    "search.space_args.stem=[16,16,32]",
                    "autodeeplab.genotype_args={filter_multiplier: 8, stem: [16, 16, 32], aspp_channels: 32, "
                    "decoder_channels: 32, low_level_channels: 16}"],
    "dcnas": ["search.batch_size=8", "search.pretrain_epochs=2", "search.epochs=3", "search.select_images=32",
              "search.space_args.layers=4", "search.space_args.filter_multiplier=8",
              "search.space_args.stem_channels=16", "search.space_args.head_channels=32"],
    # 3 cells of 3 nodes: about 57% of random networks reach 220 px (every one of the cpu preset's 5 x 4 does)
    "dots": ["search.batch_size=8", "search.pretrain_epochs=2", "search.epochs=3", "search.select_images=32",
             "search.space_args.layers=3", "search.space_args.nodes=3"],
}
BAND = 0.25  # random architectures within +-25% of the searched one's multiply-adds


def search_overrides(method: Method, strategy: str | None = None, scenes: Scenes = BENCH) -> list[str]:
    """``--set`` items of a planted search of ``method``: the data, then its budget."""
    own = SEARCH.get(method.name, [])
    if strategy is not None and method.section_strategies and strategy not in method.section_strategies:
        own = [o for o in own if not o.startswith(f"{method.name}.")]  # that strategy has no such section
    return [*scenes.data(), *own]


def cost(genotype: Genotype, num_classes: int, size: tuple[int, int] = BENCH.size) -> float:
    """Multiply-adds of the built inference network at ``size`` (the band's measure)."""
    with torch.random.fork_rng(devices=[]):
        net = get_space(genotype.space).build(genotype, num_classes, aux=False)
    return float(profile(net, (1, 3, *size), latency=False)["macs"])


def _drawn(method: Method, cfg: RunConfig, num_classes: int, rng: np.random.Generator,
           draws: int, size: tuple[int, int] | None = None) -> Iterator[tuple[Genotype, float]]:
    """Random architectures of ``cfg``'s space as the search would derive them, with their cost at ``size``
    (default: ``cfg``'s scenes)."""
    size = tuple(size or cfg.data.synthetic_size)
    for _ in range(draws):
        g = method.sample(rng, cfg)
        yield g, cost(g, num_classes, size)


def random_in_band(method: Method, cfg: RunConfig, reference: float, num_classes: int, count: int,
                   rng: np.random.Generator, draws: int = 400, size: tuple[int, int] | None = None,
                   band: float = BAND) -> list[Genotype]:
    """Up to ``count`` distinct random architectures whose cost at ``size`` is within ``band`` of ``reference``."""
    found: dict[str, Genotype] = {}
    for g, c in _drawn(method, cfg, num_classes, rng, draws, size):
        if abs(c - reference) <= band * reference:
            found.setdefault(g.archid, g)
            if len(found) == count:
                break
    return list(found.values())


def matched_pairs(method: Method, cfg: RunConfig, num_classes: int, count: int, rng: np.random.Generator,
                  draws: int = 400) -> list[tuple[Genotype, Genotype]]:
    """Up to ``count`` (with, without the planted property) pairs of random architectures whose costs
    differ by at most BAND, closest first: the property's effect at equal cost."""
    seen = {g.archid: (g, c) for g, c in _drawn(method, cfg, num_classes, rng, draws)}
    withs = [(g, c) for g, c in seen.values() if method.has_planted(DATASET, g)]
    withouts = [(g, c) for g, c in seen.values() if not method.has_planted(DATASET, g)]
    candidates = sorted((abs(cw - co) / max(cw, co), i, j) for i, (_, cw) in enumerate(withs)
                        for j, (_, co) in enumerate(withouts))
    pairs, used_w, used_o = [], set(), set()
    for gap, i, j in candidates:
        if gap > BAND or len(pairs) == count:
            break
        if i not in used_w and j not in used_o:
            used_w.add(i)
            used_o.add(j)
            pairs.append((withs[i][0], withouts[j][0]))
    return pairs


def property_rate(method: Method, cfg: RunConfig, reference: float, num_classes: int, rng: np.random.Generator,
                  draws: int = 200) -> dict[str, Any]:
    """How often random architectures of the band have the planted property (and how many were in it)."""
    flags = [method.has_planted(DATASET, g) for g, c in _drawn(method, cfg, num_classes, rng, draws)
             if abs(c - reference) <= BAND * reference]
    return {"in_band": len(flags), "drawn": draws, "rate": statistics.mean(flags) if flags else None}
