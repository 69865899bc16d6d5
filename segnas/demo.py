"""The README's demo: a real FasterSeg search on the built-in synthetic dataset, end to end.

1. co-search a teacher and a student (latency table measured here, at 360x480);
2. retrain the teacher, then the student with KL distillation from it;
3. retrain the zoo FasterSeg and a hand-designed network of similar latency
   with the same budget (no pretrained weights exist offline: all from scratch);
4. print mIoU, parameters, multiply-adds and measured CPU latency side by side.

Everything is small enough for a few minutes on two CPU cores; the
figures show the pipeline working, not the paper's numbers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from . import zoo
from .config import make_config
from .data import EvalTransform, build_dataset
from .engine import evaluate, load_checkpoint, model_from_checkpoint, per_class_table, retrain
from .engine.loaders import dataset_kwargs, eval_loader
from .genotype import Genotype
from .genotype import load as load_genotype
from .objectives.latency import LatencyTable, interleaved_fastest
from .profile import profile
from .spaces import get_space
from .spaces.fasterseg.lut import estimate_latency
from .methods import get_method
from .methods.fasterseg import search_table_file

DEPLOY = (360, 480)

SEARCH = ["data.crop=[64,64]", "data.scale_range=[0.75,1.25]", "search.batch_size=8",
          "search.pretrain_epochs=2", "search.epochs=3", "search.arch_lr=0.005", "fasterseg.sandwich_random=1",
          "fasterseg.sandwich_search=false", "search.select_images=8", "fasterseg.lut_repeats=3",
          "fasterseg.ohem_min_kept=400", "search.space_args.layers=6", "search.space_args.chis=[2,3,4]",
          "search.space_args.stem_chi=3", "search.space_args.head_chi=3",
          f"fasterseg.deploy_size=[{DEPLOY[0]},{DEPLOY[1]}]"]
RETRAIN = ["data.crop=[96,128]", "data.scale_range=[0.75,1.5]", "train.epochs=5", "train.batch_size=8",
           "train.eval_every=80", "train.ohem_min_kept=8000"]


def hand_designed(space_args: dict[str, Any], table: LatencyTable, num_classes: int, target_ms: float,
                  deploy: tuple[int, int] = DEPLOY) -> Genotype:
    """A hand-designed two-branch network (1/32 and 1/16, evenly spaced downsampling, one operator
    and one width throughout), with the operator and width whose estimated latency is closest to
    ``target_ms``."""
    space, L = get_space("fasterseg"), int(space_args["layers"])
    best = None
    for op in ("conv", "conv_2x"):
        for chi in space_args["chis"]:
            branches = []
            for downs in ((L // 3, 2 * L // 3), (L // 2,)):
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
    out = out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    t0 = time.perf_counter()
    preset = "tiny" if quick else "cpu"
    method = get_method("fasterseg")
    search_cfg = method.config(preset, overrides=[] if quick else SEARCH, extra={"data": {"dataset": "synthetic"}})
    print(f"segnas demo: FasterSeg search on the built-in synthetic dataset ({search_cfg.data.synthetic_train} "
          f"images, {search_cfg.data.synthetic_size[0]}x{search_cfg.data.synthetic_size[1]}), preset {preset}; "
          "all networks train from scratch (no pretrained weights offline)")
    method.search(search_cfg, out / "search", progress=not quick)
    search_s = time.perf_counter() - t0
    print(f"search done in {search_s:.0f} s")

    train_cfg = make_config(preset, overrides=[] if quick else RETRAIN, extra={"data": {"dataset": "synthetic"}})
    val = build_dataset("synthetic", None, "val", transform=EvalTransform(), seed=train_cfg.seed,
                        **dataset_kwargs(train_cfg.data, "val"))
    table = LatencyTable.load(search_table_file(search_cfg, out / "search"))
    deploy = tuple(search_cfg.fasterseg.deploy_size)
    student = load_genotype(out / "search" / "student.json")
    teacher = load_genotype(out / "search" / "teacher.json")
    baseline = hand_designed(student.space_args, table, val.num_classes,
                             estimate_latency(student, table, deploy, val.num_classes), deploy)

    def train(name: str, genotype: Genotype, teacher_run: Path | None = None) -> Path:
        cfg = make_config(preset, overrides=[] if quick else RETRAIN, extra={"data": {"dataset": "synthetic"}})
        if teacher_run is not None:
            cfg.train.distill_teacher = str(teacher_run / "checkpoints" / "best.pt")
        print(f"retraining {name} ({genotype.archid})" + (" with distillation from the teacher" if teacher_run else ""))
        retrain(genotype, cfg, out / name, progress=not quick)
        return out / name

    teacher_run = train("teacher", teacher)
    runs = {"searched student": (train("student", student, teacher_run), student),
            "zoo FasterSeg": (train("zoo_fasterseg", zoo.get("fasterseg")), zoo.get("fasterseg")),
            "hand-designed": (train("hand_designed", baseline), baseline),
            "searched teacher": (teacher_run, teacher)}
    rows = []
    for label, (run, genotype) in runs.items():
        model, _ = model_from_checkpoint(load_checkpoint(run), val.num_classes)
        metrics = evaluate(model, eval_loader(val), val.num_classes, "cpu", val.ignore_index,
                           save_dir=out / run.name / "predictions" if label == "searched student" else None,
                           palette=val.palette, max_images=4)
        if label == "searched student":
            print(per_class_table(metrics, list(val.class_names)))
        cost = profile(model, (1, 3, *deploy), latency=False)
        est = estimate_latency(genotype, table, deploy, val.num_classes) if genotype.space_args.get(
            "layers") == student.space_args["layers"] else None
        rows.append((label, metrics["miou"], cost, est, model.eval()))
    # the networks are timed in interleaved rounds and keep their fastest, the statistic the table's
    # entries use: a slow spell of a shared machine then hits one round of all, not all rounds of one
    rounds = 3 if quick else 10
    times = interleaved_fastest([row[4] for row in rows], (1, 3, *deploy), "cpu", rounds=rounds)
    print(f"\nval mIoU on the synthetic dataset; cost at {deploy[0]}x{deploy[1]} on this CPU "
          f"({torch.get_num_threads()} threads; latency: fastest of {rounds} interleaved rounds)")
    print(f"{'network':<18}{'mIoU %':>8}{'params M':>10}{'GMACs':>8}{'latency ms':>12}{'table est. ms':>15}")
    for (label, miou, cost, est, _), runs in zip(rows, times):
        print(f"{label:<18}{100 * miou:>8.1f}{cost['params'] / 1e6:>10.3f}{cost['macs'] / 1e9:>8.2f}"
              f"{min(runs):>12.1f}{'-' if est is None else f'{est:.1f}':>15}")
    print(f"run folder: {out}  (search {search_s:.0f} s, total {time.perf_counter() - t0:.0f} s)")
    return 0
