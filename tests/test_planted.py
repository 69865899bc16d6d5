"""The planted-search helpers: cost band, equal-cost pairs with and without the property."""

import numpy as np

from segnas import planted
from segnas.methods import get_method


def _cfg():
    method = get_method("fasterseg")
    return method, method.config("tiny", overrides=[*planted.DEMO.data(), "search.space_args.layers=6",
                                                    "search.space_args.branches=1"])


def test_random_architectures_of_a_band_lie_within_it():
    method, cfg = _cfg()
    rng = np.random.default_rng(0)
    reference = planted.cost(method.sample(np.random.default_rng(1), cfg), 3, planted.DEMO.size)
    found = planted.random_in_band(method, cfg, reference, 3, 4, rng, draws=60)
    assert found and len({g.archid for g in found}) == len(found)
    assert all(abs(planted.cost(g, 3, planted.DEMO.size) - reference) <= planted.BAND * reference for g in found)


def test_equal_cost_pairs_differ_in_the_property_only_within_the_band():
    method, cfg = _cfg()
    pairs = planted.matched_pairs(method, cfg, 3, 3, np.random.default_rng(0), draws=80)
    assert pairs
    for with_g, without_g in pairs:
        assert method.has_planted(planted.DATASET, with_g) and not method.has_planted(planted.DATASET, without_g)
        a, b = (planted.cost(g, 3, planted.DEMO.size) for g in (with_g, without_g))
        assert abs(a - b) <= planted.BAND * max(a, b)
    assert len({g.archid for pair in pairs for g in pair}) == 2 * len(pairs)  # no network in two pairs
