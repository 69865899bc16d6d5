"""The README's demo: end to end on the built-in synthetic dataset, no download.

Until the FasterSeg search lands it retrains the zoo FasterSeg student from
scratch (no pretrained weights exist offline), evaluates it with a per-class
table and prediction images, and profiles it on this machine.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import zoo
from .config import make_config
from .data import EvalTransform, build_dataset
from .engine import evaluate, load_checkpoint, model_from_checkpoint, per_class_table, retrain
from .engine.loaders import dataset_kwargs, eval_loader
from .profile import profile


def run_demo(out: Path | None = None, quick: bool = False) -> int:
    out = out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    t0 = time.perf_counter()
    genotype = zoo.get("fasterseg")
    preset = "tiny" if quick else "cpu"
    overrides = [] if quick else ["data.crop=[96,128]", "data.scale_range=[0.75,1.5]", "train.epochs=12",
                                  "train.batch_size=8", "train.eval_every=64", "train.ohem_min_kept=8000"]
    cfg = make_config(preset, overrides=overrides, extra={"data": {"dataset": "synthetic"}})
    print(f"segnas demo: retraining the zoo FasterSeg ({genotype.archid}) from scratch on the built-in "
          f"synthetic dataset ({cfg.data.synthetic_train} train / {cfg.data.synthetic_val} val images, "
          f"{cfg.data.synthetic_size[0]}x{cfg.data.synthetic_size[1]}), preset {preset}")
    retrain(genotype, cfg, out / "retrain", progress=not quick)
    ckpt = load_checkpoint(out / "retrain")
    val = build_dataset("synthetic", None, "val", transform=EvalTransform(), seed=cfg.seed,
                        **dataset_kwargs(cfg.data, "val"))
    model, _ = model_from_checkpoint(ckpt, val.num_classes)
    metrics = evaluate(model, eval_loader(val), val.num_classes, "cpu", val.ignore_index,
                       save_dir=out / "predictions", palette=val.palette, max_images=4)
    print(per_class_table(metrics, list(val.class_names)))
    h, w = cfg.data.synthetic_size
    cost = profile(model, (1, 3, h, w), repeats=5)
    print(f"FasterSeg: val mIoU {100 * metrics['miou']:.2f}%  params {cost['params'] / 1e6:.2f} M  "
          f"multiply-adds {cost['macs'] / 1e9:.3f} G at {h}x{w}  CPU latency {cost['latency_ms']:.1f} ms "
          f"({cost['threads']} threads)")
    print(f"run folder: {out}  ({time.perf_counter() - t0:.0f} s)")
    return 0
