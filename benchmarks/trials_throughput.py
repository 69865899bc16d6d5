"""Trials per hour of a Nekrasov search at the ``cpu`` preset: one process, local worker processes, Ray.

The same seeded search (``ppo``, ``--trials`` trials on the built-in
synthetic data) runs once per executor setting in its own run folder:
``inline`` (trials in this process with all ``--threads``), ``local`` with
``--workers`` processes of ``--threads / --workers`` torch threads each, and
``ray`` with the same split (skipped, and said so, without Ray). Trials per
hour count every trial the search trained (stage 2 or not); the stage-2 rate
is reported beside it because the gate's decisions decide how long a trial
runs. Every setting trains the same architectures with the same gate
decisions; rewards differ by the floating-point order of a different torch
thread count (inline uses all threads, a worker its share), enough to flip a
gate decision near the running mean. The benchmark records whether
architectures and decisions agree with inline's, the largest reward
difference, and the same between Ray and local (equal threads per trial).

    python benchmarks/trials_throughput.py --json benchmarks/results/trials_throughput_cpu.json [--trials 8]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write  # noqa: E402
from segnas.methods import get_method  # noqa: E402


def table(run: Path) -> list[dict[str, str]]:
    with open(run / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def agreement(rows: list[dict[str, str]], ref: list[dict[str, str]]) -> dict[str, object]:
    """Whether the architectures and the gate decisions are ``ref``'s, and the largest reward difference."""
    diffs = [abs(float(a[c]) - float(b[c])) for a, b in zip(rows, ref)
             for c in ("stage1_reward", "stage2_reward", "reward") if a[c] and b[c]]
    return {"same_archs": [(r["archid"], r["reused_from"]) for r in rows] == [(r["archid"], r["reused_from"]) for r in ref],
            "same_decisions": [r["decision"] for r in rows] == [r["decision"] for r in ref],
            "max_reward_diff": max(diffs, default=0.0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads in all, split among the workers")
    ap.add_argument("--out", default="runs/bench_trials")
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true", help="tiny preset, 2 trials: a pipeline check")
    args = ap.parse_args()
    method = get_method("nekrasov")
    preset, trials = ("tiny", 2) if args.quick else ("cpu", args.trials)
    per_worker = max(1, args.threads // args.workers)
    settings = {"inline": ["executor.kind=inline", f"threads={args.threads}"],
                "local": ["executor.kind=local", f"executor.workers={args.workers}",
                          f"executor.threads_per_worker={per_worker}"],
                "ray": ["executor.kind=ray", f"executor.workers={args.workers}",
                        f"executor.threads_per_worker={per_worker}", f"executor.cpus_per_trial={per_worker}"]}
    rows, tables = {}, {}
    for name, overrides in settings.items():
        if name == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                rows[name] = {"skipped": "Ray is not installed (pip install -e '.[ray]')"}
                print(f"{name}: skipped, Ray is not installed", flush=True)
                continue
        run = Path(args.out) / name
        shutil.rmtree(run, ignore_errors=True)
        cfg = method.config(preset, overrides=[f"ppo.trials={trials}", "seed=0", *overrides], strategy="ppo")
        t0 = time.perf_counter()
        result = method.search(cfg, run, progress=False)
        wall = time.perf_counter() - t0
        done = result.get("trials") or []
        trained = [t for t in done if not t.get("reused_from")]
        stage2 = [t for t in trained if t.get("stage2_reward") is not None]
        rows[name] = {"wall_s": wall, "trials": len(done), "trained": len(trained),
                      "trials_per_hour": 3600 * len(trained) / wall,
                      "stage2_rate": len(stage2) / len(trained) if trained else None,
                      "failed": sum(t.get("error") is not None for t in done), "overrides": overrides}
        tables[name] = table(run)
        print(f"{name}: {len(trained)} trials in {wall:.0f} s = {rows[name]['trials_per_hour']:.1f} trials/hour",
              flush=True)
    base = rows["inline"]["trials_per_hour"]
    for r in rows.values():
        if "trials_per_hour" in r:
            r["vs_inline"] = r["trials_per_hour"] / base
    same = {name: agreement(tables[name], tables["inline"]) for name in tables}
    if "ray" in tables:  # the same threads per trial as local: nothing but the executor differs
        same["ray_vs_local"] = agreement(tables["ray"], tables["local"])
    write({"benchmark": "trials_throughput", "preset": preset, "strategy": "ppo", "quick": args.quick,
           "workers": args.workers, "threads": args.threads, "results": rows, "agreement_with_inline": same,
           "machine": machine()}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
