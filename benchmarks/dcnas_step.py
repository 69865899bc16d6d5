"""DCNAS supernet step time and peak memory on this CPU at partial-channel ratios r = 1, 1/2, 1/4.

The paper's claim: sampling a fraction r of each node's channels through the
mixture layer trades memory and time for little accuracy. Each ratio runs in
its own process so each peak memory is its own, at the ``cpu`` search preset
(batch, crop, L and F of that preset; F = 8 divides by 4). Times the weight
step (weight gradients only) and the architecture step (alpha/beta gradients
only, with the regularizers), medians over repeats; ratios of each against
r = 1 measured in the same run.

    python benchmarks/dcnas_step.py [--quick] [--json benchmarks/results/dcnas_step_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import bilevel_steps, in_children, machine, peak_rss_mb, write  # noqa: E402
from segnas.methods import get_method  # noqa: E402
from segnas.profile import profile  # noqa: E402
from segnas.spaces.dcnas.search import DCNASSearch  # noqa: E402

RATIOS = ("1", "0.5", "0.25")


def one(ratio: str, repeats: int, num_classes: int) -> dict:
    cfg = get_method("dcnas").config("cpu", overrides=[f"dcnas.partial_ratio={ratio}"], extra={"device": "cpu"})
    sc = cfg.search
    torch.manual_seed(0)
    problem = DCNASSearch(cfg, num_classes, 255)
    h, w = cfg.data.crop
    images = torch.randn(sc.batch_size, 3, h, w)
    masks = torch.randint(0, num_classes, (sc.batch_size, h, w))
    macs = profile(problem.net, (1, 3, h, w), latency=False)["macs"]

    timing = bilevel_steps(problem, images, masks, repeats)
    return {"partial_ratio": float(ratio), "batch_size": sc.batch_size, "crop": [h, w], "space_args": problem.args,
            "weight_params": sum(p.numel() for p in problem.weight_parameters()), "supernet_macs": macs,
            **timing,
            "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--num-classes", type=int, default=11)
    ap.add_argument("--quick", action="store_true", help="1 repeat each")
    ap.add_argument("--json", default=None)
    ap.add_argument("--ratio", choices=RATIOS, help=argparse.SUPPRESS)  # one ratio, in a child process
    args = ap.parse_args()
    repeats = 1 if args.quick else args.repeats
    if args.ratio:
        print(json.dumps(one(args.ratio, repeats, args.num_classes)))
        return 0
    rows = in_children(__file__, "--ratio", RATIOS, "--repeats", str(repeats),
                       "--num-classes", str(args.num_classes))
    full = rows[0]
    for row in rows:
        row["vs_r1"] = {"iteration": row["iteration_s"] / full["iteration_s"],
                        "peak_rss": row["peak_rss_mb"] / full["peak_rss_mb"],
                        "supernet_macs": row["supernet_macs"] / full["supernet_macs"]}
    write({"benchmark": "dcnas_step", "quick": args.quick, "results": rows, "machine": machine()}, args.json)
    for row in rows:
        print(f"r = {row['partial_ratio']}: weight step {row['steps']['weight_step']['median_s']:.2f} s, "
              f"architecture step {row['steps']['arch_step']['median_s']:.2f} s, peak RSS {row['peak_rss_mb']:.0f} MB, "
              f"supernet {row['supernet_macs'] / 1e9:.2f} GMACs per image ({row['vs_r1']['iteration']:.2f}x time, "
              f"{row['vs_r1']['peak_rss']:.2f}x memory of r = 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
