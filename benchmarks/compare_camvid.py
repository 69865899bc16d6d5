"""`segnas compare` on real CamVid: every method and random baselines with one search budget, retrained alike.

Runs ``segnas compare --data camvid --preset cpu`` (the command a user runs; rerunning this script with the
same arguments continues an interrupted comparison) and writes its table, settings and the machine to JSON,
with the latency-vs-mIoU plot copied beside it. Extra ``--set`` items go to the comparison (e.g. a shorter
retrain recipe), and are recorded.

    python benchmarks/compare_camvid.py --out runs/bench_compare --budget 3m \
        --json benchmarks/results/compare_camvid_cpu.json [--random-for fasterseg] [--set train.epochs=8 ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the comparison's folder (rerun to continue)")
    ap.add_argument("--budget", default="3m")
    ap.add_argument("--methods", default=None)
    ap.add_argument("--random-for", default=None)
    ap.add_argument("--root", default=None, help="CamVid folder (default: segnas' default)")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "segnas", "compare", "--data", "camvid", "--preset", "cpu", "--budget", args.budget,
           "--out", args.out, "--quiet"]
    for flag, value in (("--methods", args.methods), ("--random-for", args.random_for), ("--root", args.root)):
        if value:
            cmd += [flag, value]
    for item in args.overrides:
        cmd += ["--set", item]
    t0 = time.perf_counter()
    code = subprocess.run(cmd).returncode
    wall = time.perf_counter() - t0
    record = json.loads((Path(args.out) / "compare.json").read_text())
    result = {"benchmark": "compare_camvid", "command": " ".join(cmd[1:]), "exit_code": code,
              "wall_s_this_invocation": wall, "settings": record.get("settings"), "rows": record.get("rows"),
              "cost": {k: v for k, v in (record.get("cost") or {}).items() if k != "results"},
              "machine": machine()}
    if args.json:
        plot = Path(args.json).with_suffix(".png")
        shutil.copyfile(Path(args.out) / "pareto.png", plot)
        result["plot"] = plot.name
    write(result, args.json)
    return code


if __name__ == "__main__":
    sys.exit(main())
