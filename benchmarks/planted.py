"""Search quality on a planted-architecture dataset: does a search find the property the data rewards?

On ``planted-context`` (segnas.data.planted) a target's class is the colour
of the nearest beacon, which lies beyond a fine-resolution receptive field;
each method states the property that reaches it (``Method.planted``: a 1/32
FasterSeg branch, an Auto-DeepLab path reaching 1/32, a DCNAS head whose receptive-
field radius is 220 px or more, a Nekrasov decoder reading the 1/32 encoder output). For one method and
strategy this benchmark runs a search per seed at a CPU budget
(``segnas.planted.SEARCH``), then:

* rate: how many searched architectures have the property, against the rate
  among random architectures of the same cost band (+-25% multiply-adds,
  drawn as the space derives them);
* retrained mIoU: every searched architecture and R random ones of the band
  (around the median searched cost) retrained by one recipe from scratch;
  searched vs the random median;
* does the property matter: the retrained random architectures with the
  property vs those without (same band), topped up to 2 of each where the
  band has them; and ``--pairs`` pairs of random architectures, one with and
  one without the property, whose costs differ by at most 25%. ``--matters``
  runs these pairs alone (no search): the dataset's claim that the property
  is necessary, a gap of >= 10 mIoU.

Scenes are the benchmark's 32x448 (``segnas.planted.BENCH``), where the
property is necessary, or with ``--scenes demo`` the demo's 64x96, where it
only speeds learning. Target: every one-shot method finds the property in >= 4
of 5 seeds and beats the random median.

    python benchmarks/planted.py --method fasterseg --matters --pairs 3 --json benchmarks/results/planted_fasterseg_matters.json
    python benchmarks/planted.py --method fasterseg --seeds 0 1 2 3 4 --json benchmarks/results/planted_fasterseg_32x448.json
    python benchmarks/planted.py --method autodeeplab --strategy random --seeds 0 1 2 --no-retrain --scenes demo
    python benchmarks/planted.py --method nekrasov --strategy ppo --seeds 0 1 2   # multi-trial: ppo or random
    python benchmarks/planted.py --method fasterseg --quick      # pipeline check: one tiny search, two retrains
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import machine, write  # noqa: E402
from segnas import planted  # noqa: E402
from segnas.config import make_config, to_dict  # noqa: E402
from segnas.data import build_dataset  # noqa: E402
from segnas.engine import retrain  # noqa: E402
from segnas.engine.loaders import dataset_kwargs  # noqa: E402
from segnas.genotype import Genotype  # noqa: E402
from segnas.genotype import load as load_genotype  # noqa: E402
from segnas.methods import get_method  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", required=True)
    p.add_argument("--strategy", default=None, help="default: the method's own")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--random", type=int, default=5, help="random architectures retrained (default 5)")
    p.add_argument("--no-retrain", action="store_true", help="rates only")
    p.add_argument("--pairs", type=int, default=3,
                   help="random (with, without the property) pairs of equal cost retrained (default 3)")
    p.add_argument("--search-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default=None, help="run folder (default runs/planted-<method>-<strategy>)")
    p.add_argument("--json", default=None)
    p.add_argument("--scenes", choices=("bench", "demo"), default="bench",
                   help="32x448 scenes where the property is necessary (default) or the demo's 64x96")
    p.add_argument("--matters", action="store_true", help="no search: only the --pairs with vs without the property")
    p.add_argument("--quick", action="store_true", help="pipeline check at the tiny preset")
    args = p.parse_args()

    method = get_method(args.method)
    strategy = method.strategy(args.strategy)
    if planted.DATASET not in method.planted:
        raise SystemExit(f"method {method.name} states no property for {planted.DATASET}")
    scenes = planted.DEMO if args.quick or args.scenes == "demo" else planted.BENCH
    tag = f"{'-matters' if args.matters else ''}{'-demo' if scenes is planted.DEMO else ''}{'-quick' if args.quick else ''}"
    out = Path(args.out or f"runs/planted-{method.name}-{strategy}{tag}")
    preset = "tiny" if args.quick else "cpu"
    search_set = planted.search_overrides(method, strategy, scenes) + args.search_set
    train_set = scenes.retrain_overrides() + args.train_set
    if args.quick:
        search_set = [*scenes.data(), *args.search_set]
        train_set = planted.QUICK_RETRAIN + args.train_set
        args.seeds, args.random, args.pairs = args.seeds[:1], 1, min(args.pairs, 1)
    if args.matters:
        args.seeds, args.no_retrain = [], False
    t0 = time.perf_counter()
    searches = []
    for seed in args.seeds:
        cfg = method.config(preset, overrides=[*search_set, f"seed={seed}"], strategy=strategy)
        run = out / f"search-s{seed}"
        started = time.perf_counter()
        if not (run / "result.json").is_file():
            method.search(cfg, run, resume=(run / "checkpoints" / "last.pt").is_file(), progress=False)
        g = load_genotype(run / f"{method.primary}.json")
        searches.append({"seed": seed, "run": str(run), "genotype": g, "cfg": cfg,
                         "search_s": time.perf_counter() - started})
        print(f"seed {seed}: {g.archid} planted property: {method.has_planted(planted.DATASET, g)}", flush=True)

    base = searches[0]["cfg"] if searches else method.config(preset, overrides=[*search_set, "seed=0"],
                                                             strategy=strategy)
    num_classes = build_dataset(planted.DATASET, None, "val", **dataset_kwargs(base.data, "val")).num_classes
    costs = [planted.cost(s["genotype"], num_classes, scenes.size) for s in searches]
    reference = statistics.median(costs) if costs else None
    rng = np.random.default_rng(12345)
    rate = (planted.property_rate(method, base, reference, num_classes, rng, draws=60 if args.quick else 200)
            if searches else None)

    trained: dict[str, dict] = {}

    def train(name: str, g: Genotype) -> float:
        if g.archid not in trained:
            cfg = make_config(preset, overrides=[*train_set, "seed=0"])
            result = retrain(g, cfg, out / name, resume=(out / name / "checkpoints" / "last.pt").is_file(),
                             progress=False)
            trained[g.archid] = {"name": name, "miou": float(result["best_miou"]),
                                 "planted": method.has_planted(planted.DATASET, g),
                                 "macs": planted.cost(g, num_classes, scenes.size)}
            print(f"retrained {name} ({g.archid}): mIoU {100 * trained[g.archid]['miou']:.1f}", flush=True)
        return trained[g.archid]["miou"]

    randoms: list[dict] = []
    pairs: list[dict] = []
    if not args.no_retrain:
        for s in searches:
            s["miou"] = train(f"searched-s{s['seed']}", s["genotype"])
        pool = planted.random_in_band(method, base, reference, num_classes, args.random + 8, rng) if searches else []
        chosen = pool[: args.random]
        for flag in (True, False):  # top up so the property's effect is measured on both sides
            have = sum(method.has_planted(planted.DATASET, g) == flag for g in chosen)
            chosen += [g for g in pool[args.random:] if method.has_planted(planted.DATASET, g) == flag][: max(0, 2 - have)]
        for i, g in enumerate(chosen):
            train(f"random{i}", g)
            randoms.append({**trained[g.archid], "archid": g.archid, "in_median": i < args.random})
        for k, pair in enumerate(planted.matched_pairs(method, base, num_classes, args.pairs, rng,
                                                          draws=60 if args.quick else 400)):
            for side, g in zip(("with", "without"), pair):
                train(f"pair{k}-{side}", g)
            pairs.append({side: {**trained[g.archid], "archid": g.archid} for side, g in zip(("with", "without"), pair)})

    natural = [r["miou"] for r in randoms if r["in_median"]]
    median = statistics.median(natural) if natural else None
    with_p = [r["miou"] for r in randoms if r["planted"]]
    without = [r["miou"] for r in randoms if not r["planted"]]
    found = sum(method.has_planted(planted.DATASET, s["genotype"]) for s in searches)
    result = {
        "benchmark": "planted", "method": method.name, "strategy": strategy, "quick": args.quick,
        "dataset": planted.DATASET, "property": method.planted[planted.DATASET][0],
        "size": list(scenes.size), "matters_only": args.matters,
        "search_config": to_dict(base), "train_overrides": train_set,
        "searches": [{"seed": s["seed"], "archid": s["genotype"].archid, "search_s": s["search_s"],
                      "planted": method.has_planted(planted.DATASET, s["genotype"]), "macs": c,
                      "genotype_structure": s["genotype"].structure, "retrained_miou": s.get("miou")}
                     for s, c in zip(searches, costs)],
        "found": found, "seeds": len(searches),
        "random_rate": rate, "band": planted.BAND, "reference_macs": reference,
        "random": randoms, "random_median_miou": median,
        "searched_mean_miou": (statistics.mean(s["miou"] for s in searches)
                               if searches and "miou" in searches[0] else None),
        "searched_beats_random_median": (None if median is None else
                                         sum(s["miou"] > median for s in searches)),
        "property_gap_miou": (statistics.mean(with_p) - statistics.mean(without)) if with_p and without else None,
        "pairs": pairs,
        "pairs_gap_miou": (statistics.mean(p["with"]["miou"] - p["without"]["miou"] for p in pairs)
                           if pairs else None),
        "target": ("pairs: with the property >= 10 mIoU above without" if args.matters else
                   "property found in >= 4 of 5 seeds and searched above the random median"),
        "machine": machine(), "wall_s": time.perf_counter() - t0,
    }
    write(result, args.json)
    if rate is not None:
        rate_text = "-" if rate["rate"] is None else f"{100 * rate['rate']:.0f}%"
        print(f"\n{method.name}/{strategy}: property '{result['property']}' in {found}/{len(searches)} searches; "
              f"random rate in band {rate_text} ({rate['in_band']} of {rate['drawn']} drawn)")
    if median is not None:
        def pct(values: Iterable[float]) -> str:
            return ", ".join(f"{100 * v:.1f}" for v in values)
        print(f"retrained mIoU: searched {pct(s['miou'] for s in searches)} vs random median {100 * median:.1f}; "
              f"with the property {pct(with_p)} vs without {pct(without)}")
    if pairs:
        print(f"random pairs of equal cost (+-{100 * planted.BAND:.0f}% multiply-adds), with vs without the property: "
              + "; ".join(f"{100 * p['with']['miou']:.1f} vs {100 * p['without']['miou']:.1f}" for p in pairs)
              + f" (mean gap {100 * result['pairs_gap_miou']:+.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
