"""Retrain the zoo FasterSeg on real CamVid with the cpu preset; report val mIoU and cost.

Target (issue 2): >= 35% val mIoU within 30 minutes on 2 CPU cores, trained
from scratch (no pretrained weights are available offline).

    python benchmarks/camvid_retrain.py --out runs/bench_camvid [--json results.json]
    python benchmarks/camvid_retrain.py --quick   # a 2-epoch smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import segnas  # noqa: E402
from _common import machine, peak_rss_mb, write  # noqa: E402
from segnas.config import make_config  # noqa: E402
from segnas.data import default_camvid_root  # noqa: E402
from segnas.engine import retrain  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="CamVid folder (default: $SEGNAS_CAMVID or ../shared/data/camvid)")
    ap.add_argument("--out", default=None, help="run folder (default: runs/bench_camvid-TIME)")
    ap.add_argument("--json", default=None, help="also write the JSON result here")
    ap.add_argument("--quick", action="store_true", help="2 epochs only")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    root = Path(args.root) if args.root else default_camvid_root()
    if not root.is_dir():
        print(f"CamVid not found at {root}; set SEGNAS_CAMVID or pass --root", file=sys.stderr)
        return 2
    # evaluate every 4 epochs (45 steps each): evaluation is ~5% of the budget instead of ~15%
    overrides = ["train.eval_every=180"] + (["train.epochs=2"] if args.quick else []) + args.overrides
    cfg = make_config("cpu", overrides=overrides, extra={"data": {"dataset": "camvid", "root": str(root)}})
    out = Path(args.out) if args.out else Path("runs") / time.strftime("bench_camvid-%Y%m%d-%H%M%S")
    t0 = time.perf_counter()
    result = retrain(segnas.zoo.get("fasterseg"), cfg, out, progress=True)
    wall = time.perf_counter() - t0
    write({
        "benchmark": "camvid_retrain", "genotype": "fasterseg (zoo)", "preset": "cpu",
        "quick": args.quick, "pretrained": False,
        "val_miou": result["best_miou"], "final_val_miou": result["final"]["miou"],
        "val_iou_per_class": dict(zip(result["class_names"], result["final"]["iou"])),
        "wall_s": wall, "train_images_per_s": result["images_per_s"], "steps": result["steps"],
        "epochs": result["epochs"], "peak_rss_mb": peak_rss_mb(),
        "target": {"val_miou": 0.35, "wall_s": 1800},
        "met": result["best_miou"] >= 0.35 and wall <= 1800,
        "machine": machine(), "run_dir": str(out), "config": {"data": vars(cfg.data), "train": vars(cfg.train)},
    }, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
