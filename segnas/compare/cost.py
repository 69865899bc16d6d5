"""The cost stage of a comparison: parameters, multiply-adds and measured latency of every retrained network.

All networks are timed together in interleaved rounds (each round times every network once; a network
keeps its fastest round), so a slow spell of a shared machine falls on one round of all of them rather
than on every round of one. The stage is kept on a rerun unless the set of retrained networks changed;
then every network is timed again, so the latencies in one table always come from one measurement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..data import EvalTransform, build_dataset
from ..engine import load_checkpoint, model_from_checkpoint
from ..engine.loaders import data_root, dataset_kwargs
from ..engine.session import resolve_device
from ..errors import SegnasError
from ..executors.base import one_line
from ..objectives.latency import interleaved_fastest
from ..profile import profile


def eval_size(cfg: RunConfig) -> tuple[int, int]:
    """The (H, W) the val split is evaluated at: its first image's size."""
    d = cfg.data
    ds = build_dataset(d.dataset, data_root(d), d.val_split, transform=EvalTransform(), seed=cfg.seed,
                       **dataset_kwargs(d, d.val_split))
    if len(ds) == 0:
        raise SegnasError(f"data {d.dataset}: the {d.val_split} split is empty; give --latency-size HxW")
    image, _ = ds[0]
    return int(image.shape[-2]), int(image.shape[-1])


def measure(rec, out: Path, p, opts) -> None:
    """Measure (or keep) the cost of every network whose retrain finished, into ``compare.json``'s ``cost``."""
    retrained = {e.label: rec.stage(e.label, "retrain")["result"]["archid"] for e in p.entries
                 if rec.stage(e.label, "retrain").get("state") == "done"}
    cost = rec.state.get("cost") or {}
    if cost.get("state") == "done" and cost.get("archids") == retrained:
        if retrained:
            rec.say("cost: measured earlier, kept")
        return
    cfg = p.retrain_cfg
    size = tuple(opts.latency_size) if opts.latency_size else eval_size(cfg)
    shape = (1, 3, *size)
    device = resolve_device(cfg.device)
    rounds = 3 if opts.preset == "tiny" else 10
    results: dict[str, dict[str, Any]] = {}
    models = []
    for label in retrained:
        try:
            ckpt = load_checkpoint(out / "retrain" / label)
            model, _ = model_from_checkpoint(ckpt)
            counted = profile(model, shape, latency=False)
        except (SegnasError, RuntimeError) as e:
            results[label] = {"error": one_line(e)}
            continue
        results[label] = {"params": counted["params"], "macs": counted["macs"], "checkpoint": ckpt["path"]}
        models.append((label, model))
    if models:
        rec.say(f"cost: timing {len(models)} network(s) at {size[0]}x{size[1]} on {device}, {p.threads} thread(s), "
                f"{rounds} interleaved rounds")
        times = interleaved_fastest([m for _, m in models], shape, device, rounds=rounds, threads=p.threads)
        for (label, _), runs in zip(models, times):
            results[label].update({"latency_ms": min(runs), "latency_runs_ms": runs})
    rec.state["cost"] = {"state": "done", "archids": retrained, "input": list(shape), "rounds": rounds,
                         "threads": p.threads, "device": str(device), "results": results}
    rec.save()


__all__ = ["eval_size", "measure"]
