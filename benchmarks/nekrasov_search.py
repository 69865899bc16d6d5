"""PPO against random search for Nekrasov et al.'s space, over the same number of trials, per stage.

The paper's Fig. 2 claim: the controller finds more high-reward
architectures than random search. Per search seed, ``ppo`` and ``random``
run the same staged trials (the method's own: stage 1 on cached encoder
outputs, the gate, stage 2) for ``--trials`` trials each on the built-in
data. Reported per strategy, pooled over seeds: the stage-1 and stage-2
reward distributions (quantiles), the final rewards of the first and the
second half of the trials (a controller that learns should rise), the
number of trials above the pooled 75th percentile of all final rewards
(both strategies), the best reward, the stage-2 rate and the failed trials.

    python benchmarks/nekrasov_search.py --json benchmarks/results/nekrasov_search_cpu.json [--trials 16] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write  # noqa: E402
from segnas.methods import get_method  # noqa: E402

STRATEGIES = ("ppo", "random")


def quantiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return {"n": len(values), "min": q[0], "q25": q[1], "median": q[2], "q75": q[3], "max": q[4],
            "mean": statistics.mean(values)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--data", default="synthetic", help="a built-in dataset (synthetic or planted-context)")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    ap.add_argument("--out", default="runs/bench_nekrasov_search")
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true", help="tiny preset, 4 trials: a pipeline check")
    args = ap.parse_args()
    method = get_method("nekrasov")
    preset, trials = ("tiny", 4) if args.quick else ("cpu", args.trials)
    t0 = time.perf_counter()
    runs: dict[str, list[list[dict]]] = {s: [] for s in STRATEGIES}
    for seed in args.seeds:
        for strategy in STRATEGIES:
            run = Path(args.out) / f"{strategy}-s{seed}"
            cfg = method.config(preset, overrides=[f"data.dataset={args.data}", f"{strategy}.trials={trials}",
                                                   f"seed={seed}", *args.overrides], strategy=strategy)
            resume = (run / "checkpoints" / "last.pt").is_file()
            result = method.search(cfg, run, resume=resume, progress=False)
            runs[strategy].append(result["trials"])
            print(f"seed {seed} {strategy}: best reward {100 * max(t['reward'] or 0 for t in result['trials']):.1f}",
                  flush=True)
    pooled = [t["reward"] for s in STRATEGIES for table in runs[s] for t in table if t["reward"] is not None]
    top = float(np.percentile(pooled, 75)) if pooled else None
    rows = {}
    for strategy in STRATEGIES:
        tables = runs[strategy]
        trained = [t for table in tables for t in table if t["reused_from"] is None]
        rewards = [t["reward"] for table in tables for t in table if t["reward"] is not None]
        half = trials // 2
        rows[strategy] = {
            "trials": sum(len(table) for table in tables), "trained": len(trained),
            "reused": sum(t["reused_from"] is not None for table in tables for t in table),
            "failed": sum(t["error"] is not None for t in trained),
            "stage1": quantiles([t["stage1_reward"] for t in trained if t["stage1_reward"] is not None]),
            "stage2": quantiles([t["stage2_reward"] for t in trained if t["stage2_reward"] is not None]),
            "stage2_rate": (sum(t["stage2_reward"] is not None for t in trained) / len(trained)) if trained else None,
            "final": quantiles(rewards),
            "first_half_mean": statistics.mean(r for table in tables for t in table[:half]
                                               if (r := t["reward"]) is not None),
            "second_half_mean": statistics.mean(r for table in tables for t in table[half:]
                                                if (r := t["reward"]) is not None),
            "above_pooled_q75": sum(r > top for r in rewards) if top is not None else None,
            "best": max(rewards) if rewards else None}
    write({"benchmark": "nekrasov_search", "preset": preset, "data": args.data, "trials_per_search": trials,
           "seeds": args.seeds, "overrides": args.overrides, "pooled_q75": top, "results": rows,
           "tables": runs, "wall_s": time.perf_counter() - t0, "machine": machine()}, args.json)
    for strategy, r in rows.items():
        print(f"{strategy}: {r['trials']} trials, final reward median {100 * r['final']['median']:.1f} "
              f"(first half {100 * r['first_half_mean']:.1f}, second half {100 * r['second_half_mean']:.1f}), "
              f"{r['above_pooled_q75']} above the pooled 75th percentile, best {100 * r['best']:.1f}, "
              f"stage-2 rate {r['stage2_rate']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
