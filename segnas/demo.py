"""The README's demo: a real FasterSeg search on a planted-architecture dataset, end to end.

On ``planted-context`` a target's class is the colour of the nearest beacon,
far beyond a fine branch's receptive field: a network needs a branch ending at
1/32 (the property FasterSeg states for it). The demo

1. searches a student (latency table measured here, at 360x480);
2. retrains, with one recipe and from scratch (no pretrained weights exist
   offline), the searched student, 3 random students of its cost band
   (+-25% multiply-adds), a hand-designed network of similar latency and the
   zoo FasterSeg;
3. prints mIoU, whether each has the planted property, parameters,
   multiply-adds and measured CPU latency side by side;
4. ends with ``segnas report`` of the run folder: one HTML page of every run.

Everything is small enough for about six minutes on two CPU cores; the
figures show the search at work, not the paper's numbers.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import planted, zoo
from .config import make_config
from .data import EvalTransform, build_dataset
from .engine import load_checkpoint, model_from_checkpoint, per_class_table, retrain
from .engine.evaluate import evaluate_deployed
from .engine.loaders import dataset_kwargs, eval_loader
from .genotype import Genotype
from .genotype import load as load_genotype
from .objectives.latency import LatencyTable, interleaved_fastest
from .outputs import claim_folder
from .profile import profile
from .cost import DEFAULT_BACKENDS
from .report.html import write_report
from .spaces import get_space
from .spaces.fasterseg.lut import estimate_latency
from .methods import get_method
from .methods.fasterseg import search_table_file

DEPLOY = (360, 480)
RANDOM = 3  # random students retrained for the median


def hand_designed(space_args: dict[str, Any], table: LatencyTable, num_classes: int, target_ms: float,
                  deploy: tuple[int, int] = DEPLOY) -> Genotype:
    """A hand-designed network with the space's number of branches (ending at 1/32, then 1/16, then
    1/8; evenly spaced downsampling, one operator and one width throughout), with the operator and
    width whose estimated latency is closest to ``target_ms``."""
    space, L = get_space("fasterseg"), int(space_args["layers"])
    plans = ((L // 3, 2 * L // 3), (L // 2,), ())[: int(space_args["branches"])]
    best = None
    for op in ("conv", "conv_2x"):
        for chi in space_args["chis"]:
            branches = []
            for downs in plans:
                scale, cells = 8, []
                for i in range(L):
                    cells.append({"op": op, "scale": scale, "chi": space_args["head_chi"] if i == L - 1 else chi})
                    if i in downs:
                        scale *= 2
                branches.append({"cells": cells})
            g = space.make_genotype({"branches": branches}, space_args, name="hand-designed",
                                    meta={"source": f"hand-designed: {op} everywhere, chi {chi}"})
            lat = estimate_latency(g, table, deploy, num_classes)
            if best is None or abs(lat - target_ms) < best[0]:
                best = (abs(lat - target_ms), g)
    return best[1]


def run_demo(out: Path | None = None, quick: bool = False) -> int:
    out = claim_folder(out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S"), "demo")
    t0 = time.perf_counter()
    preset = "tiny" if quick else "cpu"
    method = get_method("fasterseg")
    scenes = planted.DEMO
    search_set = scenes.data() if quick else planted.search_overrides(method, scenes=scenes)
    search_cfg = method.config(preset, overrides=search_set)
    prop = method.planted[planted.DATASET][0]
    print(f"segnas demo: FasterSeg search on the built-in planted dataset {planted.DATASET} "
          f"({search_cfg.data.synthetic_train} images, {scenes.size[0]}x{scenes.size[1]}: a target's class is "
          f"the colour of the nearest beacon; the planted property: {prop}), preset {preset}; all networks train "
          "from scratch (no pretrained weights offline)")
    method.search(search_cfg, out / "search", progress=not quick)
    search_s = time.perf_counter() - t0
    print(f"search done in {search_s:.0f} s")

    train_set = planted.QUICK_RETRAIN if quick else scenes.retrain_overrides()
    train_cfg = make_config(preset, overrides=train_set)
    val = build_dataset(planted.DATASET, None, "val", transform=EvalTransform(), seed=train_cfg.seed,
                        **dataset_kwargs(train_cfg.data, "val"))
    table = LatencyTable.load(search_table_file(search_cfg, out / "search"))
    deploy = tuple(search_cfg.fasterseg.deploy_size)
    student = load_genotype(out / "search" / "student.json")
    baseline = hand_designed(student.space_args, table, val.num_classes,
                             estimate_latency(student, table, deploy, val.num_classes), deploy)
    randoms = planted.random_in_band(method, search_cfg, planted.cost(student, val.num_classes, scenes.size), val.num_classes,
                                     1 if quick else RANDOM, np.random.default_rng(search_cfg.seed))

    def train(name: str, genotype: Genotype) -> Path:
        print(f"retraining {name} ({genotype.archid})")
        retrain(genotype, make_config(preset, overrides=train_set), out / name, progress=not quick)
        return out / name

    runs = {"searched student": (train("student", student), student)}
    for i, g in enumerate(randoms):
        runs[f"random student {i + 1}"] = (train(f"random{i + 1}", g), g)
    runs["hand-designed"] = (train("hand_designed", baseline), baseline)
    runs["zoo FasterSeg"] = (train("zoo_fasterseg", zoo.get("fasterseg")), zoo.get("fasterseg"))
    rows = []
    for label, (run, genotype) in runs.items():
        model, _ = model_from_checkpoint(load_checkpoint(run), val.num_classes)
        metrics = evaluate_deployed(model, eval_loader(val), val.num_classes, "cpu", val.ignore_index,
                                    save_dir=out / run.name / "predictions" if label == "searched student" else None,
                                    palette=val.palette, max_images=4)
        if label == "searched student":
            print(per_class_table(metrics, list(val.class_names)))
        cost = profile(model, (1, 3, *deploy), latency=False)
        est = estimate_latency(genotype, table, deploy, val.num_classes) if genotype.space_args.get(
            "layers") == student.space_args["layers"] else None
        rows.append((label, metrics["miou"], method.has_planted(planted.DATASET, genotype), cost, est, model.eval()))
    # the networks are timed in interleaved rounds and keep their fastest, the statistic the table's
    # entries use: a slow spell of a shared machine then hits one round of all, not all rounds of one
    rounds = 3 if quick else 10
    times = interleaved_fastest([row[5] for row in rows], (1, 3, *deploy), "cpu", rounds=rounds)
    print(f"\nval mIoU on {planted.DATASET}; 'planted' = has {prop}; cost at {deploy[0]}x{deploy[1]} on this CPU "
          f"({torch.get_num_threads()} threads; latency: fastest of {rounds} interleaved rounds)")
    print(f"{'network':<18}{'mIoU %':>8}{'planted':>9}{'params M':>10}{'GMACs':>8}{'latency ms':>12}{'table est. ms':>15}")
    for (label, miou, has, cost, est, _), runs_ms in zip(rows, times):
        print(f"{label:<18}{100 * miou:>8.1f}{'yes' if has else 'no':>9}{cost['params'] / 1e6:>10.3f}"
              f"{cost['macs'] / 1e9:>8.2f}{min(runs_ms):>12.1f}{'-' if est is None else f'{est:.1f}':>15}")
    random_mious = [miou for label, miou, *_ in rows if label.startswith("random")]
    if random_mious:
        searched = rows[0][1]
        print(f"searched student {100 * searched:.1f} vs median of {len(random_mious)} random students "
              f"{100 * statistics.median(random_mious):.1f} mIoU ({100 * (searched - statistics.median(random_mious)):+.1f})")
    print(f"run folder: {out}  (search {search_s:.0f} s, total {time.perf_counter() - t0:.0f} s)")
    # what ``segnas report`` on the run folder writes: every run of the demo on one self-contained page (the
    # quick version counts its networks' cost without timing them again)
    report = write_report(out, backends=DEFAULT_BACKENDS, latency=not quick)
    print(f"report: {report}  (open it in a browser; it needs no network)")
    return 0
