"""The cost stage of a comparison: parameters, multiply-adds and measured latency of every retrained network.

All networks are costed together by :func:`segnas.cost.cost_rows` (the rows ``segnas report`` shows):
timed in interleaved rounds, each keeping its fastest, so a slow spell of a shared machine falls on one
round of all of them rather than on every round of one. The stage is kept on a rerun unless the set of retrained networks changed;
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
from ..cost import cost_rows
from ..errors import SegnasError, one_line


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
    """Measure (or keep) the cost of every network whose retrain finished, into ``compare.json``'s ``cost``.
    A measurement is kept on a rerun only when it covered the same networks without an error."""
    retrained = {e.label: rec.stage(e.label, "retrain")["result"]["archid"] for e in p.entries
                 if rec.stage(e.label, "retrain").get("state") == "done"}
    cost = rec.state.get("cost") or {}
    if (cost.get("state") == "done" and cost.get("archids") == retrained
            and not any("error" in r for r in cost.get("results", {}).values())):
        if retrained:
            rec.say("cost: measured earlier, kept")
        return
    cfg = p.retrain_cfg
    size = tuple(opts.latency_size) if opts.latency_size else eval_size(cfg)
    device = resolve_device(cfg.device)
    rounds = 3 if opts.preset == "tiny" else 10
    results: dict[str, dict[str, Any]] = {}
    networks = []
    for label in retrained:
        try:
            ckpt = load_checkpoint(out / "retrain" / label)
            model, genotype = model_from_checkpoint(ckpt)
        except (SegnasError, RuntimeError) as e:
            results[label] = {"error": one_line(e)}
            continue
        results[label] = {"checkpoint": ckpt["path"]}
        networks.append((label, model, genotype, True))
    if networks:
        rec.say(f"cost: timing {len(networks)} network(s) at {size[0]}x{size[1]} on {device}, {p.threads} "
                f"thread(s), {rounds} interleaved rounds")
    try:
        rows = cost_rows(networks, size, ("eager",), rounds=rounds, threads=p.threads, device=device)
    except (SegnasError, RuntimeError) as e:  # recorded; a rerun measures again
        rows = []
        for label, *_ in networks:
            results[label]["error"] = one_line(e)
    for row in rows:
        entry = row.latency.get("eager", {})
        error = row.error or entry.get("error")
        results[row.label].update({"params": row.params, "macs": row.macs, "latency_ms": entry.get("latency_ms"),
                                   "latency_runs_ms": entry.get("times_ms")})
        if error:
            results[row.label]["error"] = error
    rec.state["cost"] = {"state": "done", "archids": retrained, "input": [1, 3, *size], "rounds": rounds,
                         "threads": p.threads, "device": str(device), "backend": "eager", "results": results}
    rec.save()


__all__ = ["eval_size", "measure"]
