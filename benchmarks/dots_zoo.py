"""The published DOTS cell in BiSeNet (zoo ``dots-bisenet``) beside the zoo FasterSeg: parameters, multiply-adds, CPU latency.

Both are built for 19 classes (Cityscapes, the table's dataset) without
training-only heads. Counted at 1024x2048 (Cityscapes' full size), 512x1024
and CamVid's 360x480, with the paper's 8.0 M / 12.9 G FLOPs beside DOTS'
(its supplement states no input size; ``best_side`` is the 1:2 size whose
multiply-adds come closest to 12.9 G). CPU latency at ``--size`` (default
360x480), the median of ``--repeats`` runs after a warm-up, the two networks
measured in alternating rounds so drifting machine load hits both alike.

    python benchmarks/dots_zoo.py --json benchmarks/results/dots_zoo_cpu.json [--size 360 480] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write  # noqa: E402
from segnas import zoo  # noqa: E402
from segnas.profile import count_flops, count_params, measure_latency  # noqa: E402
from segnas.spaces import get_space  # noqa: E402

CLASSES = 19
PAPER_DOTS = {"params": 8.0e6, "flops": 12.9e9}
SIZES = ((1024, 2048), (512, 1024), (360, 480))


def macs(net: torch.nn.Module, hw: tuple[int, int]) -> float:
    return count_flops(net, (1, 3, *hw)) / 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--size", type=int, nargs=2, default=[360, 480])
    ap.add_argument("--repeats", type=int, default=5, help="latency rounds per network")
    args = ap.parse_args()
    nets = {}
    for name in ("dots-bisenet", "fasterseg"):
        g = zoo.get(name)
        nets[name] = get_space(g.space).build(g, CLASSES, aux=False).eval()
    rows = {name: {"params": count_params(net), **{f"gmacs_{h}x{w}": macs(net, (h, w)) / 1e9 for h, w in SIZES}}
            for name, net in nets.items()}
    sides = range(384, 641, 16)
    fits = {h: macs(nets["dots-bisenet"], (h, 2 * h)) for h in sides}
    best = min(sides, key=lambda h: abs(fits[h] - PAPER_DOTS["flops"]))  # NAS papers' "FLOPs" are multiply-adds
    rows["dots-bisenet"].update({"paper_params": PAPER_DOTS["params"], "paper_gflops": PAPER_DOTS["flops"] / 1e9,
                                 "best_side": [best, 2 * best], "gmacs_best_side": fits[best] / 1e9})
    times: dict[str, list[float]] = {name: [] for name in nets}
    shape = (1, 3, *args.size)
    for _ in range(args.repeats):  # alternate the two so load changes hit both
        for name, net in nets.items():
            times[name].append(measure_latency(net, shape, "cpu", warmup=1, repeats=1)["latency_ms"])
    for name in nets:
        rows[name][f"cpu_latency_ms_{args.size[0]}x{args.size[1]}"] = statistics.median(times[name])
        rows[name]["cpu_latency_ms_all"] = times[name]
    write({"benchmark": "dots_zoo", "classes": CLASSES, "latency_size": args.size, "repeats": args.repeats,
           "threads": torch.get_num_threads(), "results": rows, "machine": machine()}, args.json)
    for name, r in rows.items():
        print(f"{name}: {r['params'] / 1e6:.2f} M params, " + ", ".join(f"{r[f'gmacs_{h}x{w}']:.2f} G at {h}x{w}"
                                                                       for h, w in SIZES)
              + f"; CPU {r[f'cpu_latency_ms_{args.size[0]}x{args.size[1]}']:.1f} ms at {args.size[0]}x{args.size[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
