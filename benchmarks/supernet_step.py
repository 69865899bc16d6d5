"""FasterSeg supernet training-step time and peak memory on this CPU.

Times the weight step (pretraining: teacher + sandwich widths; searching:
teacher + Gumbel widths, with and without the min/max sandwich) and the
architecture step (teacher + student with the decoupled latency loss, also with
the student's min/max sandwich) at the cpu preset (or --preset paper), medians
over repeats. The latency table's values do not change the step's cost, so a table of constant entries is used.

    python benchmarks/supernet_step.py [--quick] [--preset cpu|paper] [--json benchmarks/results/supernet_step_cpu.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import machine, peak_rss_mb, timed, write  # noqa: E402
from segnas.methods import get_method  # noqa: E402
from segnas.objectives import LatencyTable, latency_environment  # noqa: E402
from segnas.spaces.fasterseg.lut import space_keys  # noqa: E402
from segnas.spaces.fasterseg.search import FasterSegSearch  # noqa: E402
from segnas.spaces import get_space  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu", choices=["tiny", "cpu", "paper"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--num-classes", type=int, default=11)
    ap.add_argument("--quick", action="store_true", help="2 repeats")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cfg = get_method("fasterseg").config(args.preset, extra={"device": "cpu"})
    sc, fc = cfg.search, cfg.fasterseg
    space_args = get_space("fasterseg").resolve_args(sc.space_args)
    keys = space_keys(space_args, fc.deploy_size, args.num_classes, fc.teacher_chi or max(space_args["chis"]))
    table = LatencyTable(latency_environment("cpu"), {k.id: 1.0 for k in keys})
    torch.manual_seed(0)
    search = FasterSegSearch(cfg, args.num_classes, 255, table, seed=0)
    h, w = cfg.data.crop
    images = torch.randn(sc.batch_size, 3, h, w)
    masks = torch.randint(0, args.num_classes, (sc.batch_size, h, w))
    repeats = 2 if args.quick else args.repeats
    params = sum(p.numel() for p in search.weight_parameters())
    res = {}
    res["weight_step_pretrain"] = timed(lambda: search.weight_backward(images, masks, pretrain=True), repeats)
    res["weight_step_search"] = timed(lambda: search.weight_backward(images, masks, pretrain=False), repeats)
    fc.sandwich_search = False
    res["weight_step_search_no_sandwich"] = timed(lambda: search.weight_backward(images, masks, pretrain=False),
                                                  repeats)
    res["arch_step"] = timed(lambda: search.arch_backward(images, masks), repeats)
    fc.sandwich_arch = True
    res["arch_step_sandwich"] = timed(lambda: search.arch_backward(images, masks), repeats)
    fc.sandwich_arch = False
    lat = timed(lambda: search.decoupled_latency(search.net.sample_widths("student", "gumbel",
                                                                         search.generator))[0].backward(), repeats)
    res["decoupled_latency_forward_backward"] = lat
    write({
        "benchmark": "supernet_step", "space": "fasterseg", "preset": args.preset, "quick": args.quick,
        "batch_size": sc.batch_size, "crop": [h, w], "space_args": space_args, "cosearch": fc.cosearch,
        "sandwich_random": fc.sandwich_random, "weight_params": params, "steps": res,
        "iteration_s_search": res["weight_step_search"]["median_s"] + res["arch_step"]["median_s"],
        "peak_rss_mb": peak_rss_mb(), "machine": machine(),
    }, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
