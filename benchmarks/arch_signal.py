"""Signal in a search's architecture gradients at one checkpoint: is its budget enough to decide?

Loads a differentiable search's checkpoint (FasterSeg or Auto-DeepLab), holds
every weight and architecture parameter fixed, and computes the architecture
gradients on K trainB batches exactly as the search's architecture step does.
Per row of architecture logits it reports the signal-to-noise ratio of the
gradient of (leading - runner-up logit) and the steps a first-order search needs
before that sign is 2 sigma certain (``segnas.strategies.arch_signal``),
against the architecture steps the search's configuration has.

    python benchmarks/arch_signal.py --run runs/search [--batches 96] [--json out.json]
    python benchmarks/arch_signal.py --run runs/search --quick    # 16 batches
    python benchmarks/arch_signal.py --run runs/search --set search.arch_loss=ce --set search.arch_batches=4

``--set`` measures a variant of the architecture step (its loss, batches per
step, batch size) at the same checkpoint; the steps needed are then steps of
that variant, so compare them with its cost per step (``supernet_step.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import machine, peak_rss_mb, write  # noqa: E402
from segnas.config import with_overrides  # noqa: E402
from segnas.engine.checkpoint import load_checkpoint  # noqa: E402
from segnas.engine.session import resumed_config  # noqa: E402
from segnas.errors import SegnasError  # noqa: E402
from segnas.methods import get_method  # noqa: E402
from segnas.strategies.arch_signal import ArchSignal  # noqa: E402
from segnas.strategies.differentiable import arch_step  # noqa: E402
from segnas.strategies.halves import epoch_steps, search_data, trainb_batches  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a search run folder (with checkpoints/last.pt)")
    ap.add_argument("--batches", type=int, default=96)
    ap.add_argument("--root", default=None, help="dataset folder, when it moved since the search")
    ap.add_argument("--quick", action="store_true", help="16 batches")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change the search config before measuring (e.g. search.arch_loss=ce)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    run = Path(args.run)
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt", required=("search",))
    try:
        method = get_method(ckpt["method"])
    except SegnasError as e:
        raise SystemExit(f"{run}: {e}") from None
    if method.problem is None:
        raise SystemExit(f"{run}: method {method.name!r} has no architecture gradients to measure")
    cfg = resumed_config(ckpt, None, "search", method.sections("differentiable"))
    if args.set:
        cfg = with_overrides(cfg, args.set)
    if args.root:
        cfg.data.root = args.root
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device("cpu")
    t0 = time.perf_counter()
    own = cfg.sections.get(method.name)
    if own is not None and hasattr(own, "lut") and not own.lut and (run / "latency_table.json").is_file():
        own.lut = str(run / "latency_table.json")  # the search's own table, read (checked for this machine)
    with tempfile.TemporaryDirectory() as tmp:  # splits and anything else written go here: the run stays untouched
        data = search_data(cfg, Path(tmp))
        problem = method.problem(cfg, data, Path(tmp), device, False)
    problem.load_state_dict(ckpt["search"])
    params = problem.arch_parameters()
    signal = ArchSignal(params, [spec.kind for spec in problem.arch_specs()])
    sc = cfg.search
    steps_per_epoch = epoch_steps(sc, data)
    n, epoch = 16 if args.quick else max(2, args.batches), 0
    while signal.steps < n:  # epochs past the search's own, so no batch repeats one the search used last
        stream = trainb_batches(data, sc, cfg.seed + 1, 1000 + epoch)
        for _ in range(steps_per_epoch):
            arch_step(problem, [next(stream) for _ in range(sc.arch_batches)], device)
            signal.update(params)
            if signal.steps >= n:
                break
        epoch += 1
    summary = signal.summary(params, sc.epochs * steps_per_epoch)
    write({"benchmark": "arch_signal", "run": str(run), "method": ckpt["method"],
           "epochs_done": int(ckpt["epochs_done"]), "batches": signal.steps, "batch_size": sc.batch_size,
           "arch_batches": sc.arch_batches, "arch_loss": sc.arch_loss or "method's own", "overrides": args.set,
           "arch_lr": sc.arch_lr, **summary, "wall_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(),
           "machine": machine()}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
