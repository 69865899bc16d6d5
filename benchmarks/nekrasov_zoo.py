"""Nekrasov et al.'s published arch0/1/2 (the zoo) against the paper's Table 1: parameters and multiply-adds.

Each zoo network is built for 21 classes (PASCAL VOC, the table's dataset)
without its training-only auxiliary cells and counted at the input size the
table states (512x512) and at the square size that fits the table best
(searched over 480..560 px, the one minimising the largest relative error
over the three networks), both as multiply-adds and as FLOPs (2x), so the
counting convention the table used can be read off. ``--latency`` adds the
CPU latency at 512x512 (median of ``--repeats``).

    python benchmarks/nekrasov_zoo.py --json benchmarks/results/nekrasov_zoo.json [--latency]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write  # noqa: E402
from segnas import zoo  # noqa: E402
from segnas.profile import count_flops, count_params, measure_latency  # noqa: E402
from segnas.spaces import get_space  # noqa: E402

PAPER = {"nekrasov-arch0": (2.6e6, 4.47e9), "nekrasov-arch1": (2.8e6, 2.95e9), "nekrasov-arch2": (2.9e6, 3.47e9)}
CLASSES = 21
STATED = 512


def macs(net, side: int) -> float:
    return count_flops(net, (1, 3, side, side)) / 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--latency", action="store_true", help="also CPU latency at 512x512")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    nets = {name: get_space("nekrasov").build(zoo.get(name), CLASSES, aux=False).eval() for name in PAPER}
    sides = range(480, 561, 5)
    table = {name: {side: macs(net, side) for side in (STATED, *sides)} for name, net in nets.items()}

    def worst(side: int, factor: float) -> float:
        return max(abs(factor * table[n][side] / PAPER[n][1] - 1) for n in PAPER)

    best_macs = min(sides, key=lambda s: worst(s, 1.0))
    flops_sides = range(300, 481, 5)
    for name, net in nets.items():
        table[name].update({side: macs(net, side) for side in flops_sides})
    best_flops = min(flops_sides, key=lambda s: worst(s, 2.0))
    rows = {}
    for name, net in nets.items():
        params, paper_macs = count_params(net), PAPER[name][1]
        row = {"params": params, "paper_params": PAPER[name][0], "params_error": params / PAPER[name][0] - 1,
               "macs_512": table[name][STATED], "paper_macs": paper_macs,
               "macs_512_error": table[name][STATED] / paper_macs - 1,
               f"macs_{best_macs}": table[name][best_macs],
               f"macs_{best_macs}_error": table[name][best_macs] / paper_macs - 1,
               f"flops_{best_flops}_error": 2 * table[name][best_flops] / paper_macs - 1}
        if args.latency:
            row["cpu_latency_ms_512"] = measure_latency(net, (1, 3, STATED, STATED), "cpu", warmup=1,
                                                        repeats=args.repeats)["latency_ms"]
        rows[name] = row
    write({"benchmark": "nekrasov_zoo", "classes": CLASSES, "stated_size": STATED,
           "best_size_as_macs": best_macs, "worst_error_as_macs": worst(best_macs, 1.0),
           "best_size_as_flops": best_flops, "worst_error_as_flops": worst(best_flops, 2.0),
           "worst_error_at_512": worst(STATED, 1.0), "results": rows, "machine": machine()}, args.json)
    for name, r in rows.items():
        print(f"{name}: {r['params'] / 1e6:.3f} M params (paper {r['paper_params'] / 1e6:.1f} M), "
              f"{r['macs_512'] / 1e9:.2f} G multiply-adds at 512x512 (paper {r['paper_macs'] / 1e9:.2f} G, "
              f"{100 * r['macs_512_error']:+.1f}%)")
    print(f"best fit: {best_macs}x{best_macs} as multiply-adds (worst {100 * worst(best_macs, 1.0):.1f}%), "
          f"{best_flops}x{best_flops} as FLOPs (worst {100 * worst(best_flops, 2.0):.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
