"""How well the FasterSeg latency table predicts real latency on this CPU.

Builds the table for the FasterSeg space (paper widths, 11 classes) at the
deployment size, then measures >= 30 random derived networks (and the zoo
FasterSeg) end to end and compares with the table estimate (sum of blocks),
before and after calibrating the table on six further networks.
Target: Pearson r >= 0.99 (the paper reports 0.993 on a GPU with TensorRT).

Networks are timed in interleaved rounds and each is represented by its
fastest round, the statistic the table's entries are built from (see
segnas.objectives.latency): a slow spell of a shared machine can only lengthen
a round. r against each network's median round is reported beside it, with
the rounds' spread, so a noisy machine shows in the JSON.

The table and the networks are timed on one backend (``--backend``, see
segnas.backends: eager, compile, onnxruntime, bf16); run once per backend for
r per backend.

    python benchmarks/lut_fidelity.py [--quick] [--backend onnxruntime] [--json benchmarks/results/lut_fidelity_cpu.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _common import machine, peak_rss_mb, write  # noqa: E402
from segnas import zoo  # noqa: E402
from segnas.backends import BACKENDS  # noqa: E402
from segnas.objectives import LatencyTable, interleaved_fastest, latency_environment  # noqa: E402
from segnas.objectives.latency import FLUSH_MB, TABLE_FORMAT  # noqa: E402
from segnas.profile import measure_latency  # noqa: E402
from segnas.spaces import get_space  # noqa: E402
from segnas.spaces.fasterseg.lut import estimate_latency, network_keys, probe, space_keys  # noqa: E402


def spread_sample(space, args, rng):
    """A random derived network whose latency may lie anywhere in the space's range: per network,
    an operator preference, a largest width and one or two branches are drawn first (uniform
    per-cell choices average out and give nearly equal latencies)."""
    ops = [o for o in args["ops"] if o != "skip"]
    chis = args["chis"][: int(rng.integers(1, len(args["chis"]) + 1))]
    pref = rng.dirichlet(np.full(len(ops), 0.5))
    g = space.sample(rng, dict(args, branches=int(rng.integers(1, 3))))
    branches = [{"cells": [{"op": str(rng.choice(ops, p=pref)), "scale": c["scale"],
                            "chi": args["head_chi"] if i == len(b["cells"]) - 1 else int(rng.choice(chis))}
                           for i, c in enumerate(b["cells"])]} for b in g.structure["branches"]]
    return space.make_genotype({"branches": branches}, args, meta={"source": "lut_fidelity sample"})


def _spread(times: list[float]) -> float:
    """Interquartile range over median of one network's rounds: how noisy its timing was."""
    q = np.percentile(times, [25, 50, 75])
    return float((q[2] - q[0]) / q[1])


def _burst_entries(table, keys, repeats, backend):
    """The same entries timed the format-2 way, for comparison: each in one burst of
    ``repeats`` calls (flushed caches), keeping the median."""
    out = {}
    with torch.random.fork_rng(devices=[]):
        for key in dict.fromkeys(keys):
            module, shapes = probe(key)
            out[key.id] = measure_latency(module, shapes, "cpu", 2, repeats, threads=table.environment["threads"],
                                          flush_mb=FLUSH_MB, backend=backend)["latency_ms"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default="360x480", help="deployment size HxW")
    ap.add_argument("--nets", type=int, default=60, help="random networks (at least 30)")
    ap.add_argument("--repeats", type=int, default=30, help="timing rounds of every entry and network")
    ap.add_argument("--num-classes", type=int, default=11)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lut", default=None, help="reuse this table (built here when missing)")
    ap.add_argument("--quick", action="store_true", help="30 networks, fewer repeats (under 5 minutes)")
    ap.add_argument("--burst-table", action="store_true",
                    help="also time every entry in one burst (the format-2 way) and report r for that table")
    ap.add_argument("--backend", default="eager", choices=BACKENDS, help="what the table and networks time")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    hw = tuple(int(v) for v in args.input.split("x"))
    n_nets, repeats = (30, 5) if args.quick else (max(30, args.nets), args.repeats)
    space = get_space("fasterseg")
    space_args = space.default_args()
    env = latency_environment("cpu", backend=args.backend)
    t0 = time.perf_counter()
    lut_path = Path(args.lut) if args.lut else None
    table = LatencyTable.load(lut_path, env) if lut_path and lut_path.is_file() else LatencyTable(env)
    # only what the sampled networks need is measured: the same probes 'segnas latency build' uses
    rng = np.random.default_rng(args.seed)
    genotypes = [zoo.get("fasterseg")] + [spread_sample(space, space_args, rng) for _ in range(n_nets)]
    # six more networks, not among those compared, calibrate the table's absolute scale
    cal_genotypes = [spread_sample(space, space_args, np.random.default_rng(args.seed + 1000 + i)) for i in range(6)]
    needed = [k for g in genotypes + cal_genotypes for k in network_keys(g, hw, args.num_classes)]
    all_keys = set(space_keys(space_args, hw, args.num_classes, 12))
    assert all(k in all_keys for k in needed), "a network needs an entry the space's table would lack"
    built = table.build(needed, probe, "cpu", repeats=repeats)
    if lut_path:
        table.save(lut_path)
    lut_s = time.perf_counter() - t0
    burst = _burst_entries(table, needed, repeats, args.backend) if args.burst_table else None
    nets = []
    for i, g in enumerate(genotypes + cal_genotypes):
        torch.manual_seed(i)
        nets.append(space.build(g, args.num_classes, aux=False).eval())
    times = interleaved_fastest(nets, (1, 3, *hw), "cpu", rounds=repeats, backend=args.backend)
    cal = table.calibrate([(min(times[len(genotypes) + i]), network_keys(g, hw, args.num_classes))
                           for i, g in enumerate(cal_genotypes)])
    rows = [{"archid": g.archid, "zoo": i == 0,
             "estimated_ms": table.total(network_keys(g, hw, args.num_classes), raw=True),  # as timed
             "calibrated_ms": estimate_latency(g, table, hw, args.num_classes),
             "measured_ms": min(times[i]), "measured_median_ms": statistics.median(times[i]),
             "measured_spread": _spread(times[i])} for i, g in enumerate(genotypes)]
    est = np.array([r["estimated_ms"] for r in rows])
    meas = np.array([r["measured_ms"] for r in rows])
    calibrated = np.array([r["calibrated_ms"] for r in rows])
    pearson = float(np.corrcoef(est, meas)[0, 1])
    meas_median = np.array([r["measured_median_ms"] for r in rows])
    pearson_median = float(np.corrcoef(est, meas_median)[0, 1])
    slope, intercept = np.polyfit(est, meas, 1)
    if burst is not None:
        est_burst = np.array([sum(burst[k.id] for k in network_keys(g, hw, args.num_classes)) for g in genotypes])
        burst_r = {"pearson_r": float(np.corrcoef(est_burst, meas)[0, 1]),
                   "pearson_r_median_round": float(np.corrcoef(est_burst, meas_median)[0, 1])}
    write({
        "benchmark": "lut_fidelity", "backend": env["backend"], "space": "fasterseg", "input": list(hw), "num_classes": args.num_classes,
        "quick": args.quick, "networks": len(rows), "repeats": repeats, "entries_measured": built,
        "pearson_r": pearson, "target_pearson_r": 0.99, "meets_target": pearson >= 0.99,
        "measured_statistic": "fastest of the interleaved rounds", "table_format": TABLE_FORMAT,
        "pearson_r_median_round": pearson_median,
        "burst_table": None if burst is None else dict(burst_r, entries="median of one burst per entry (format 2)"),
        "median_measured_spread": float(statistics.median(r["measured_spread"] for r in rows)),
        "fit_measured_vs_estimated": {"slope": float(slope), "intercept_ms": float(intercept)},
        "median_abs_rel_error": float(statistics.median(np.abs(est - meas) / meas)),
        "calibration_factor": cal["factor"],
        "median_abs_rel_error_calibrated": float(statistics.median(np.abs(calibrated - meas) / meas)),
        "measured_ms_range": [float(meas.min()), float(meas.max())],
        "table_build_s": lut_s, "wall_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(),
        "machine": machine(), "networks_detail": rows,
    }, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
