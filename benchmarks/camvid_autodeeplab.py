"""Auto-DeepLab search on real CamVid, then the searched network next to the zoo Auto-DeepLab-S.

The search runs on trainA/trainB halves of CamVid train (cpu preset: 8 layers,
3 blocks, F = 4 in the supernet); the decoded genotype is built at F = 20 (the
size of Auto-DeepLab-S) and both it and the zoo's ``autodeeplab-s`` are
retrained from scratch with the same recipe and budget, then evaluated on
CamVid val (mIoU, parameters, multiply-adds and CPU latency at 360x480).

    python benchmarks/camvid_autodeeplab.py --out runs/bench_adl [--json benchmarks/results/camvid_autodeeplab_cpu.json]
    python benchmarks/camvid_autodeeplab.py --quick     # pipeline check, under 5 minutes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import camvid_search, camvid_search_args, machine, peak_rss_mb, resumable, write  # noqa: E402
from segnas import zoo  # noqa: E402
from segnas.config import make_config  # noqa: E402
from segnas.engine import retrain  # noqa: E402
from segnas.genotype import load as load_genotype  # noqa: E402
from segnas.profile import count_flops, count_params, measure_latency  # noqa: E402
from segnas.spaces import get_space  # noqa: E402

QUICK_SEARCH = ["search.pretrain_epochs=1", "search.epochs=1", "search.steps_per_epoch=3", "search.select_images=2",
                "data.crop=[64,64]", "data.max_val_images=4", "search.space_args.layers=4",
                "autodeeplab.genotype_args.filter_multiplier=4"]
QUICK_TRAIN = ["train.epochs=1", "data.max_val_images=4", "train.eval_every=0", "data.crop=[128,128]",
               "train.batch_size=4"]
HW = (360, 480)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    camvid_search_args(ap)
    args = ap.parse_args()
    run = camvid_search("autodeeplab", args, QUICK_SEARCH, "bench_adl")
    if run is None:
        return 2
    out, data, search, search_s, t0 = run.out, run.data, run.result, run.search_s, run.t0
    searched = load_genotype(out / "search" / "genotype.json")
    published = zoo.get("autodeeplab-s")
    space = get_space("autodeeplab")
    if args.quick:  # the same small size for both, so the pipeline check stays short
        published = space.make_genotype(published.structure, dict(
            published.space_args, filter_multiplier=searched.space_args["filter_multiplier"]), name="autodeeplab-s")

    def train(name, genotype):
        cfg = make_config("cpu", overrides=(QUICK_TRAIN if args.quick else []) + args.train_set, extra=data)
        result = retrain(genotype, cfg, out / name, resume=resumable(out / name, args.resume), progress=True)
        net = space.build(genotype, search["num_classes"], aux=False)
        return {"archid": genotype.archid, "path": genotype.structure["path"], "val_miou": result["best_miou"],
                "params": count_params(net), "gmacs_360x480": count_flops(net, (1, 3, *HW)) / 2e9,
                "cpu_latency_ms_360x480": measure_latency(net, (1, 3, *HW), "cpu", warmup=1, repeats=3)["latency_ms"],
                "wall_s": result["wall_s"]}

    rows = {"searched": train("searched", searched), "zoo_autodeeplab_s": train("zoo_autodeeplab_s", published)}
    write({
        "benchmark": "camvid_autodeeplab", "preset": "cpu", "quick": args.quick,
        "resumed": args.resume, "pretrained": False,
        "search_s": search_s, "search_loop_s": search.get("wall_s"), "search_final": search["final"], "results": rows,
        "searched_minus_zoo_miou": rows["searched"]["val_miou"] - rows["zoo_autodeeplab_s"]["val_miou"],
        "wall_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "machine": machine(),
    }, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
