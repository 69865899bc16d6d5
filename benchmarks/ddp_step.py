"""Retrain-step throughput on this CPU: 2 processes of 1 thread (gloo, torchrun's layout) against 1 process of 2
threads, at the same global batch.

Each setting runs in fresh processes: a :class:`~segnas.engine.trainer.Trainer` of a zoo network at the
preset's crop and ``train.batch_size`` (the global batch; each of the 2 processes takes half), timing
optimisation steps (forward, backward, gradient all-reduce, update) on one fixed batch, medians over
repeats; images/s counts the global batch. ``--sync-bn`` adds the synchronised BatchNorm's all-reduces.

    python benchmarks/ddp_step.py [--quick] [--preset cpu|tiny] [--genotype fasterseg] [--sync-bn]
                                  [--json benchmarks/results/ddp_step_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import machine, write  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, threads: int, port: int, args: argparse.Namespace, out: str) -> None:
    """One process of a setting: builds the trainer, times the steps, rank 0 writes its timings to ``out``."""
    os.environ.update({"OMP_NUM_THREADS": str(threads), "WORLD_SIZE": str(world), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(threads)
    import torch.distributed as dist

    from segnas import zoo
    from segnas.config import make_config
    from segnas.engine.loaders import make_datasets, train_loader
    from segnas.engine.trainer import Trainer
    from segnas.spaces import get_space

    if world > 1:
        dist.init_process_group("gloo")
    try:
        cfg = make_config(args.preset, overrides=[f"train.sync_bn={str(args.sync_bn).lower()}"])
        cfg.data.dataset = "synthetic"
        cfg.data.synthetic_size = list(cfg.data.crop or cfg.data.synthetic_size)
        cfg.data.synthetic_train = max(cfg.data.synthetic_train, 2 * cfg.train.batch_size)
        train, val = make_datasets(cfg.data, cfg.seed)
        g = zoo.get(args.genotype)
        torch.manual_seed(cfg.seed)
        model = get_space(g.space).build(g, train.num_classes, aux=True)
        trainer = Trainer(model, cfg.train, train, val, torch.device("cpu"), cfg.seed)
        images, masks = next(iter(train_loader(train, cfg.train.batch_size, cfg.seed, 0)))
        trainer.train_step(images, masks)  # warm-up
        times = []
        for _ in range(args.repeats):
            if world > 1:
                dist.barrier()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                logs = trainer.train_step(images, masks)
            float(logs["loss"])
            times.append((time.perf_counter() - t0) / args.steps)
        if rank == 0:
            step = statistics.median(times)
            Path(out).write_text(json.dumps({
                "processes": world, "threads_each": threads, "global_batch": cfg.train.batch_size,
                "local_batch": int(masks.shape[0]), "median_step_s": step, "min_step_s": min(times),
                "images_per_s": cfg.train.batch_size / step, "repeats": args.repeats, "steps_per_repeat": args.steps}))
    finally:
        if world > 1:
            dist.destroy_process_group()


def run_setting(world: int, threads: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "result.json")
        torch.multiprocessing.spawn(_worker, args=(world, threads, _free_port(), args, out), nprocs=world, join=True)
        return json.loads(Path(out).read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu", choices=["tiny", "cpu"])
    ap.add_argument("--genotype", default="fasterseg")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="steps per timed repeat")
    ap.add_argument("--sync-bn", action="store_true", help="train.sync_bn (BatchNorm over the global batch)")
    ap.add_argument("--quick", action="store_true", help="tiny preset, 2 repeats of 2 steps (a check that it runs)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.quick:
        args.preset, args.repeats, args.steps = "tiny", 2, 2
    one = run_setting(1, 2, args)
    two = run_setting(2, 1, args)
    write({"benchmark": "ddp_step", "machine": {**machine(), "threads": "per setting"}, "preset": args.preset,
           "genotype": args.genotype, "sync_bn": args.sync_bn, "quick": args.quick,
           "one_process_two_threads": one, "two_processes_one_thread": two,
           "speedup": two["images_per_s"] / one["images_per_s"]}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
