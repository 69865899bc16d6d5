"""Auto-DeepLab supernet step time and peak memory on this CPU.

Two settings, each in its own process so each peak memory is its own: the
cpu search preset, and the paper's search setting (321x321 crops, batch 2,
F = 8, L = 12, B = 5). Times the weight step (trainA batch, weight gradients
only) and the architecture step (alpha/beta gradients only), medians over
repeats.

    python benchmarks/autodeeplab_step.py [--quick] [--json benchmarks/results/autodeeplab_step_cpu.json]
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
from segnas.spaces.autodeeplab.search import AutoDeepLabSearch  # noqa: E402

SETTINGS = {
    "cpu": ("cpu", []),
    "paper_crop": ("paper", []),  # 321x321, batch 2, F = 8, 12 layers, 5 blocks
}


def one(setting: str, repeats: int, num_classes: int) -> dict:
    preset, overrides = SETTINGS[setting]
    cfg = get_method("autodeeplab").config(preset, overrides=overrides, extra={"device": "cpu"})
    sc = cfg.search
    torch.manual_seed(0)
    problem = AutoDeepLabSearch(cfg, num_classes, 255)
    h, w = cfg.data.crop
    images = torch.randn(sc.batch_size, 3, h, w)
    masks = torch.randint(0, num_classes, (sc.batch_size, h, w))

    timing = bilevel_steps(problem, images, masks, repeats)
    return {"setting": setting, "preset": preset, "batch_size": sc.batch_size, "crop": [h, w],
            "space_args": problem.args, "weight_params": sum(p.numel() for p in problem.weight_parameters()),
            **timing,
            "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--num-classes", type=int, default=19)
    ap.add_argument("--quick", action="store_true", help="1 repeat each")
    ap.add_argument("--json", default=None)
    ap.add_argument("--setting", choices=sorted(SETTINGS), help=argparse.SUPPRESS)  # one setting, in a child
    args = ap.parse_args()
    repeats = 1 if args.quick else args.repeats
    if args.setting:
        print(json.dumps(one(args.setting, repeats, args.num_classes)))
        return 0
    rows = in_children(__file__, "--setting", SETTINGS, "--repeats", str(repeats),
                       "--num-classes", str(args.num_classes))
    write({"benchmark": "autodeeplab_step", "quick": args.quick, "results": rows, "machine": machine()}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
