"""DCNAS search on real CamVid, the searched network next to random ones of its cost, and the rank correlation.

The search runs at the ``cpu`` preset on the trainA/trainB halves of CamVid
train. Five random architectures of the space (drawn as the search derives
them, within +-10% of the searched network's multiply-adds at 360x480) join
the search's own architectures: the genotypes it decoded along its epochs
and neighbours of the final one (``--around``). ``segnas correlate`` then
scores every one with the supernet (architecture fixed, trainB) and
retrains every one from scratch with one recipe (the search's data and the
preset's retrain at a quarter of its epochs, then ``--train-set``), so the
searched-vs-random comparison and the correlation share the same retrains.

    python benchmarks/camvid_dcnas.py --out runs/bench_dcnas [--json benchmarks/results/camvid_dcnas_cpu.json]
    python benchmarks/camvid_dcnas.py --quick     # pipeline check, a few minutes
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import camvid_search, camvid_search_args, machine, peak_rss_mb, write  # noqa: E402
from segnas.correlate import correlate  # noqa: E402
from segnas.genotype import load as load_genotype  # noqa: E402
from segnas.genotype import save as save_genotype  # noqa: E402
from segnas.planted import cost, random_in_band  # noqa: E402

QUICK_SEARCH = ["search.epochs=1", "search.steps_per_epoch=3", "search.select_images=2", "data.max_val_images=4",
                "data.crop=[64,64]", "search.space_args.layers=2", "search.space_args.filter_multiplier=4"]
QUICK_TRAIN = ["train.epochs=1", "train.batch_size=4"]
HW = (360, 480)
BAND = 0.10  # random architectures within +-10% of the searched one's multiply-adds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    camvid_search_args(ap)
    ap.add_argument("--random", type=int, default=5, help="random architectures of the searched one's cost")
    ap.add_argument("--around", type=int, default=4, help="neighbours of the final genotype in the correlation")
    ap.add_argument("--seed", type=int, default=0, help="draws of the random architectures and the neighbours")
    args = ap.parse_args()
    run = camvid_search("dcnas", args, QUICK_SEARCH, "bench_dcnas")
    if run is None:
        return 2
    out, method, scfg, search, search_s, t0 = run.out, run.method, run.cfg, run.result, run.search_s, run.t0
    searched = load_genotype(out / "search" / "genotype.json")
    classes = int(search["num_classes"])
    reference = cost(searched, classes, HW)
    randoms = random_in_band(method, scfg, reference, classes, args.random, np.random.default_rng(args.seed),
                             draws=2000, size=HW, band=BAND)
    files = []
    for i, g in enumerate(randoms):
        path = out / "random" / f"random{i}.json"
        if not path.is_file():
            save_genotype(dataclasses.replace(g, name=f"random{i}"), path)
        files.append(str(path))
    t1 = time.perf_counter()
    result = correlate([str(out / "search"), *files], out / "correlate", around=args.around, seed=args.seed,
                       overrides=(QUICK_TRAIN if args.quick else []) + args.train_set)
    rows = result["architectures"]
    final = next(r for r in rows if r["final"])
    random_rows = [r for r in rows if r["source"] == "file"]
    random_miou = [r["retrained_miou"] for r in random_rows]
    for r in rows:
        r["gmacs_360x480"] = cost(load_genotype(Path(r["retrain_dir"]) / "genotype.json"), classes, HW) / 1e9
    write({
        "benchmark": "camvid_dcnas", "preset": "cpu", "quick": args.quick, "resumed": args.resume,
        "pretrained": False, "search_set": args.search_set, "train_set": args.train_set,
        "search_s": search_s, "search_loop_s": search.get("wall_s"), "search_final": search["final"],
        "band": BAND, "random_requested": args.random, "random_found": len(randoms),
        "searched": {"archid": final["archid"], "retrained_miou": final["retrained_miou"],
                     "gmacs_360x480": final["gmacs_360x480"], "search_score": final["search_score"]},
        "random_retrained_miou": random_miou,
        "random_median_miou": statistics.median(random_miou) if random_miou else None,
        "searched_minus_random_median": (final["retrained_miou"] - statistics.median(random_miou)
                                         if random_miou else None),
        "searched_rank_among_random": 1 + sum(m > final["retrained_miou"] for m in random_miou),
        "correlation": result["statistics"],
        "correlation_settings": result.get("settings"), "architectures": rows,
        "correlate_s": time.perf_counter() - t1,
        "wall_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "machine": machine(),
    }, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
