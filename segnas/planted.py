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
from typing import Any

import numpy as np
import torch

from .config import RunConfig
from .genotype import Genotype
from .methods import Method
from .profile import profile
from .spaces import get_space

DATASET = "planted-context"
SIZE = (64, 96)
# whole scenes, unscaled: a crop could cut away the beacon a target's class depends on
DATA = [f"data.dataset={DATASET}", f"data.synthetic_size=[{SIZE[0]},{SIZE[1]}]",
        f"data.crop=[{SIZE[0]},{SIZE[1]}]", "data.scale_range=[1,1]"]
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
}
# one recipe for every network compared: from scratch, cross-entropy (every pixel counts)
RETRAIN = [*DATA, "train.epochs=12", "train.batch_size=8", "train.lr=0.05", "train.loss=ce", "train.eval_every=100000"]
QUICK_RETRAIN = [*DATA, "train.epochs=1", "train.loss=ce"]  # pipeline checks
BAND = 0.25  # random architectures within +-25% of the searched one's multiply-adds


def search_overrides(method: Method, strategy: str | None = None) -> list[str]:
    """``--set`` items of a planted search of ``method``: the data, then its budget."""
    own = SEARCH.get(method.name, [])
    if strategy is not None and method.section_strategies and strategy not in method.section_strategies:
        own = [o for o in own if not o.startswith(f"{method.name}.")]  # that strategy has no such section
    return [*DATA, *own]


def cost(genotype: Genotype, num_classes: int, size: tuple[int, int] = SIZE) -> float:
    """Multiply-adds of the built inference network at ``size`` (the band's measure)."""
    with torch.random.fork_rng(devices=[]):
        net = get_space(genotype.space).build(genotype, num_classes, aux=False)
    return float(profile(net, (1, 3, *size), latency=False)["macs"])


def _drawn(method: Method, cfg: RunConfig, num_classes: int, rng: np.random.Generator,
           draws: int) -> Iterator[tuple[Genotype, float]]:
    """Random architectures of ``cfg``'s space as the search would derive them, with their cost."""
    for _ in range(draws):
        g = method.sample(rng, cfg)
        yield g, cost(g, num_classes)


def random_in_band(method: Method, cfg: RunConfig, reference: float, num_classes: int, count: int,
                   rng: np.random.Generator, draws: int = 400) -> list[Genotype]:
    """Up to ``count`` distinct random architectures whose cost is within BAND of ``reference``."""
    found: dict[str, Genotype] = {}
    for g, c in _drawn(method, cfg, num_classes, rng, draws):
        if abs(c - reference) <= BAND * reference:
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
