"""FasterSeg search on real CamVid, then retraining: searched student vs random students vs the zoo.

The search runs on trainA/trainB halves of CamVid train (cpu preset); the
teacher is retrained, then the searched student and N random student
architectures (random points of the search space, derived by the same rules:
``FasterSegSpace.sample``) whose table latency lies within +-5% of the
student's are retrained identically (KL distillation from the same teacher), and the zoo
FasterSeg with the same recipe but no teacher. All from scratch, evaluated
on CamVid val. Target: searched >= median(random) + 3 mIoU.

One retrain per network leaves the comparison at the mercy of retrain noise
(a random arm spreads over 5-6 mIoU), so ``--retrain-seeds 0,1,2`` retrains
every network (teacher included: each seed's students learn from that seed's
teacher) once per seed, and compares the student's mean with the median of
the random students' means. Seed 0 keeps the plain folder names, so an earlier
single-seed run in ``--out`` is reused through ``--resume``.

    python benchmarks/camvid_search.py --out runs/bench_search [--json benchmarks/results/camvid_search_cpu.json]
    python benchmarks/camvid_search.py --quick     # pipeline check, under 5 minutes
    python benchmarks/camvid_search.py --out runs/bench_search --resume   # continue a killed run

Each result is one search; ``benchmarks/camvid_search_summary.py`` pools the
results of several search seeds (``--search-set seed=N``) of the same settings.

``--search-set fasterseg.lut=runs/<earlier>/search/latency_table.json`` reuses an
earlier run's table: no time spent measuring it, and the random latency band of
the two runs is the same.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import camvid_search, camvid_search_args, machine, peak_rss_mb, resumable, write  # noqa: E402
from segnas import zoo  # noqa: E402
from segnas.config import make_config, to_dict  # noqa: E402
from segnas.engine import retrain  # noqa: E402
from segnas.genotype import load as load_genotype  # noqa: E402
from segnas.objectives import LatencyTable, interleaved_fastest  # noqa: E402
from segnas.spaces import get_space  # noqa: E402
from segnas.spaces.fasterseg.lut import estimate_latency  # noqa: E402
from segnas.methods.fasterseg import search_table_file  # noqa: E402

QUICK_SEARCH = ["search.pretrain_epochs=1", "search.epochs=1", "search.steps_per_epoch=6", "search.select_images=4",
                "fasterseg.lut_repeats=2", "data.crop=[128,128]", "data.max_val_images=10"]
QUICK_TRAIN = ["train.epochs=1", "data.max_val_images=10", "train.eval_every=0"]


BAND = 0.05  # random students lie within +-5% of the searched student's table latency


def random_band(space, args, table, hw, num_classes, target, n, seed, band=BAND, tries=4000):
    """The first ``n`` distinct random architectures whose table latency is within ``band`` of ``target``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(tries):
        g = space.sample(rng, args)
        lat = estimate_latency(g, table, hw, num_classes)
        if abs(lat - target) <= band * target and g.archid not in {x[0].archid for x in out}:
            out.append((g, lat))
            if len(out) == n:
                break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    camvid_search_args(ap)
    ap.add_argument("--random", type=int, default=5, help="random students in the latency band")
    ap.add_argument("--retrain-seeds", default="0", type=_seeds,
                    help="comma-separated retrain seeds; every network is retrained once per seed")
    args = ap.parse_args()
    run = camvid_search("fasterseg", args, QUICK_SEARCH, "bench_search")
    if run is None:
        return 2
    out, data, scfg, search, search_s, t0 = run.out, run.data, run.cfg, run.result, run.search_s, run.t0
    n_random = 2 if args.quick else args.random
    hw, num_classes = tuple(scfg.fasterseg.deploy_size), search["num_classes"]
    table = LatencyTable.load(search_table_file(scfg, out / "search"))
    student, teacher = load_genotype(out / "search" / "student.json"), load_genotype(out / "search" / "teacher.json")
    target = estimate_latency(student, table, hw, num_classes)
    space = get_space("fasterseg")
    randoms = random_band(space, student.space_args, table, hw, num_classes, target, n_random, seed=1)

    train_overrides = (QUICK_TRAIN if args.quick else ["train.eval_every=180"]) + args.train_set

    def train(name, genotype, seed, teacher_run=None):
        cfg = make_config("cpu", overrides=train_overrides + [f"seed={seed}"], extra=data)
        if teacher_run is not None:
            cfg.train.distill_teacher = str(teacher_run / "checkpoints" / "best.pt")
        result = retrain(genotype, cfg, out / name, resume=resumable(out / name, args.resume), progress=True)
        return {"seed": seed, "run": name, "val_miou": result["best_miou"], "wall_s": result["wall_s"]}

    def network(genotype, measured):
        est = estimate_latency(genotype, table, hw, num_classes) if genotype.space_args == student.space_args or \
            genotype.space_args == teacher.space_args else None
        return {"archid": genotype.archid, "estimated_ms": est, "measured_ms": measured, "runs": []}

    nets = {"teacher": (teacher, False), "student": (student, True),
            **{f"random{i}": (g, True) for i, (g, _) in enumerate(randoms)},
            "zoo_fasterseg": (zoo.get("fasterseg"), False)}
    # timed as the table's entries are (fastest of interleaved rounds), so measured and estimated compare
    times = interleaved_fastest([space.build(g, num_classes, aux=False) for g, _ in nets.values()], (1, 3, *hw),
                                "cpu", rounds=5)
    rows = {name: network(g, min(t)) for (name, (g, _)), t in zip(nets.items(), times)}
    for seed in args.retrain_seeds:
        suffix = "" if seed == 0 else f"_s{seed}"
        for name, (g, kd) in nets.items():
            teacher_run = out / f"teacher{suffix}" if kd else None
            rows[name]["runs"].append(train(name + suffix, g, seed, teacher_run))
    for row in rows.values():
        row["val_miou"] = statistics.mean(r["val_miou"] for r in row["runs"])
    rand = [rows[f"random{i}"]["val_miou"] for i in range(len(randoms))]
    median = statistics.median(rand) if rand else None
    per_seed = []
    for k, seed in enumerate(args.retrain_seeds):
        rand_s = [rows[f"random{i}"]["runs"][k]["val_miou"] for i in range(len(randoms))]
        if rand_s:
            student_s, median_s = rows["student"]["runs"][k]["val_miou"], statistics.median(rand_s)
            per_seed.append({"seed": seed, "student": student_s, "random_median": median_s,
                             "difference": student_s - median_s})
    write({
        "benchmark": "camvid_search", "method": "fasterseg", "preset": "cpu", "quick": args.quick,
        "resumed": args.resume, "search_set": args.search_set, "train_set": args.train_set,
        # what ran, as resolved (a resumed search runs with its own saved config, whatever the command line says)
        "search_seed": search["config"]["seed"], "search_config": search["config"],
        "path_rule": search["config"]["fasterseg"].get("path_rule", "paper"),
        "train_config": to_dict(make_config("cpu", overrides=train_overrides, extra=data)),
        "pretrained": False, "deploy_size": list(hw), "search_s": search_s, "search_loop_s": search.get("wall_s"),
        "search_final": search["final"], "retrain_seeds": args.retrain_seeds,
        "results": {"teacher": rows["teacher"], "student": rows["student"],
                    "random": [rows[f"random{i}"] for i in range(len(randoms))], "zoo_fasterseg": rows["zoo_fasterseg"]},
        "random_found": len(randoms), "random_band": BAND,
        "random_median_miou": median, "per_seed": per_seed,
        "searched_minus_random_median": None if median is None else rows["student"]["val_miou"] - median,
        "target": "searched >= random median + 0.03 mIoU",
        "meets_target": None if median is None else rows["student"]["val_miou"] >= median + 0.03,
        "wall_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "machine": machine(),
    }, args.json)
    return 0


def _seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> [0, 1, 2]: distinct non-negative retrain seeds, seed order kept."""
    try:
        seeds = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct non-negative seeds, e.g. 0,1,2")
    return seeds


if __name__ == "__main__":
    sys.exit(main())
