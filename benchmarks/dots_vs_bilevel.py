"""DOTS against the plain bilevel search on the same cell space and budget, each derived cell retrained alike.

The paper's claim: decoupling the topology search from the operation search
finds better cells than deriving the topology from the operation weights.
Per search seed, on one space and dataset, two searches share everything
but the strategy: ``dots`` (operation pretrain / search, topology pretrain /
search, ``--epochs a b c d``) and ``differentiable`` with the same weight
epochs (``search.pretrain_epochs = a + c``) and architecture epochs
(``search.epochs = b + d``). Every derived genotype is retrained by one
recipe (the ``cpu`` preset's, ``--train-set`` on top) and scored on val.

Spaces: ``autodeeplab`` (the cell alone: the network level fixed to
``--path``, so only the cell differs) and ``dots`` (DARTS cells in BiSeNet).
Data: ``synthetic`` (built in) or ``camvid`` (``--root``, $SEGNAS_CAMVID or
../shared/data/camvid). Searches and retrains already finished in ``--out``
are reused when the script is rerun; a killed one resumes.

    python benchmarks/dots_vs_bilevel.py --space autodeeplab --data synthetic --seeds 0 1 2 --json dots_adl.json
    python benchmarks/dots_vs_bilevel.py --space dots --data camvid --seeds 0 --json dots_camvid.json
    python benchmarks/dots_vs_bilevel.py --space dots --quick        # pipeline check, a few minutes
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import camvid_root, machine, peak_rss_mb, write  # noqa: E402
from segnas.config import make_config  # noqa: E402
from segnas.engine.retrain import retrain  # noqa: E402
from segnas.genotype import load as load_genotype  # noqa: E402
from segnas.methods import get_method  # noqa: E402
from segnas.planted import cost  # noqa: E402

# the searched cell space per space, on top of the method's cpu preset: small enough for minutes per search
SPACE_SET = {
    "autodeeplab": ["search.space_args.layers=6", "search.space_args.blocks=3", "search.space_args.filter_multiplier=4",
                    "search.space_args.stem=[16,16,32]", "search.select_images=16",
                    "autodeeplab.genotype_args={filter_multiplier: 8, stem: [16, 16, 32], aspp_channels: 32, "
                    "decoder_channels: 32, low_level_channels: 16}"],
    "dots": ["search.select_images=16"],
}
DEFAULT_PATH = "[0,1,1,2,2,3]"  # 1/4 -> 1/8 -> 1/16 -> 1/32 over 6 layers
QUICK_SEARCH = ["search.steps_per_epoch=2", "search.select_images=2", "data.max_val_images=4", "data.crop=[64,64]"]
QUICK_TRAIN = ["train.epochs=1", "train.batch_size=4", "data.crop=[64,64]", "data.max_val_images=4"]
RETRAIN = ["train.epochs=12", "train.batch_size=8", "data.crop=[128,128]", "train.eval_every=0"]
HW = (360, 480)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", choices=tuple(SPACE_SET), required=True)
    ap.add_argument("--data", choices=("synthetic", "camvid"), default="synthetic")
    ap.add_argument("--root", default=None, help="CamVid folder (default: $SEGNAS_CAMVID or ../shared/data/camvid)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, nargs=4, default=[1, 2, 1, 2], metavar=("OP_PRE", "OP", "TOPO_PRE", "TOPO"))
    ap.add_argument("--path", default=DEFAULT_PATH, help="autodeeplab: the fixed network level (a scale index per layer)")
    ap.add_argument("--search-set", action="append", default=[], help="extra --set for both searches")
    ap.add_argument("--train-set", action="append", default=[], help="extra --set for every retrain")
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    method = get_method(args.space)
    data: dict = {"data": {"dataset": args.data}}
    if args.data == "camvid":
        root = camvid_root(args.root)
        if root is None:
            return 2
        data["data"]["root"] = str(root)
    out = Path(args.out or f"runs/bench_dots_{args.space}_{args.data}{'_quick' if args.quick else ''}")
    a, b, c, d = (1, 1, 1, 1) if args.quick else args.epochs
    common = [*SPACE_SET[args.space], *(QUICK_SEARCH if args.quick else []), *args.search_set]
    if args.space == "autodeeplab":
        common.append(f"autodeeplab.fixed_path={args.path}")
    budgets = {"dots": [f"dots.op_pretrain_epochs={a}", f"dots.op_epochs={b}", f"dots.topology_pretrain_epochs={c}",
                        f"dots.topology_epochs={d}"],
               "differentiable": [f"search.pretrain_epochs={a + c}", f"search.epochs={b + d}"]}
    recipe = [*RETRAIN, *(QUICK_TRAIN if args.quick else []), *args.train_set]
    t0 = time.perf_counter()
    rows = []
    for seed in args.seeds:
        for strategy, budget in budgets.items():
            cfg = method.config("cpu", overrides=[*common, *budget, f"seed={seed}"], extra=data, strategy=strategy)
            run = out / f"{strategy}-s{seed}"
            started = time.perf_counter()
            if not (run / "result.json").is_file():
                method.search(cfg, run, resume=(run / "checkpoints" / "last.pt").is_file(), progress=False)
            search_s = time.perf_counter() - started
            g = load_genotype(run / "genotype.json")
            started = time.perf_counter()
            tcfg = make_config("cpu", overrides=[*recipe, "seed=0"], extra=data)
            trained = out / f"{strategy}-s{seed}-retrain"
            result = retrain(g, tcfg, trained, resume=(trained / "checkpoints" / "last.pt").is_file(), progress=False)
            classes = int(result.get("num_classes") or tcfg.data.num_classes or 0) or None
            row = {"seed": seed, "strategy": strategy, "archid": g.archid, "structure": g.structure,
                   "val_miou": float(result["best_miou"]), "search_s": search_s,
                   "retrain_s": time.perf_counter() - started,
                   "gmacs_360x480": cost(g, classes, HW) / 1e9 if classes else None}
            rows.append(row)
            print(f"seed {seed} {strategy}: {g.archid} val mIoU {100 * row['val_miou']:.1f}", flush=True)
    diffs = []
    for seed in args.seeds:
        by = {r["strategy"]: r["val_miou"] for r in rows if r["seed"] == seed}
        diffs.append(by["dots"] - by["differentiable"])
    summary = {"dots_minus_bilevel": diffs, "mean_dots_minus_bilevel": statistics.mean(diffs),
               "dots_wins": sum(x > 0 for x in diffs), "seeds": len(diffs)}
    print(f"DOTS minus bilevel val mIoU over {len(diffs)} seed(s): "
          + ", ".join(f"{100 * x:+.1f}" for x in diffs) + f" (mean {100 * summary['mean_dots_minus_bilevel']:+.1f})")
    write({"benchmark": "dots_vs_bilevel", "space": args.space, "data": args.data, "quick": args.quick,
           "epochs": {"op_pretrain": a, "op": b, "topology_pretrain": c, "topology": d},
           "fixed_path": args.path if args.space == "autodeeplab" else None, "search_set": common,
           "retrain_set": recipe, "pretrained": False, "rows": rows, "summary": summary,
           "wall_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "machine": machine()}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
