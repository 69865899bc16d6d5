"""``segnas compare``: every method searched with one budget on one dataset, retrained identically.

Wire into ``segnas.cli.build_parser`` with ``add_compare_parser(sub)``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .bounds import parse_hw


def add_compare_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand to ``sub`` (the subparsers of ``segnas``); returns its parser."""
    p = sub.add_parser(
        "compare", help="every method searched with one budget, retrained identically",
        description="Search every method (its own strategy) and a random baseline on one dataset and device, each "
                    "with the same search-time budget; retrain every result with one recipe; write one table "
                    "(val mIoU, parameters, multiply-adds, measured latency, search and retrain time) and a "
                    "latency-vs-mIoU plot with the Pareto front. Rerunning the same command on --out continues it.")
    p.add_argument("--out", required=True, help="output folder: search/, retrain/, compare.json, compare.md, "
                                                "compare.csv, pareto.png (rerunning the command continues there)")
    p.add_argument("--methods", default=None, metavar="A,B,...",
                   help="methods to compare (default: every one of 'segnas methods')")
    random = p.add_mutually_exclusive_group()
    random.add_argument("--random-for", default=None, metavar="A,B,...",
                        help="random-search baselines on these methods' spaces (default: every compared method)")
    random.add_argument("--no-random", action="store_true", help="no random-search baseline")
    p.add_argument("--budget", default="10m", help="search wall-clock time per search on this device, e.g. 90s, 10m, "
                                                   "1.5h (default 10m); epochs and trials still come from the preset "
                                                   "and --set: the budget is a cap")
    p.add_argument("--data", default=None, help="dataset: synthetic or planted-context (built-in), camvid, "
                                                "cityscapes, voc, ade20k, folder")
    p.add_argument("--root", default=None, help="dataset folder")
    p.add_argument("--num-classes", type=int, default=None, help="class count (needed for 'folder')")
    p.add_argument("--preset", default="cpu", help="tiny (tests), cpu (default), paper (GPU)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="data.* and train.* apply to every search and retrain (train.*: the one retraining "
                        "recipe, which random trials also train with), search.* to every search, a method's or "
                        "strategy's own section (e.g. random.trials) to the searches that have it (repeatable)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu (default), cuda, ...: every search, retrain and timing")
    p.add_argument("--latency-size", type=parse_hw, default=None, metavar="HxW",
                   help="input size the latency is measured at (default: the size of the data's val images)")
    p.add_argument("--executor", default="local", help="where stages run: local (default: worker processes), ray, "
                                                       "or inline (in this process, one at a time)")
    p.add_argument("--workers", type=int, default=1,
                   help="stages at once (default 1, so searches do not share cores and their budgets stay "
                        "comparable)")
    p.add_argument("--address", default=None, help="--executor ray: the cluster to join (default: a local Ray)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per stage and for the timing (default: the CPU count divided by --workers)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_compare)
    return p


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import CompareOptions, run_compare

    opts = CompareOptions(out=args.out, methods=args.methods, random_for=args.random_for, no_random=args.no_random,
                          budget=args.budget, preset=args.preset, overrides=list(args.overrides), data=args.data,
                          root=args.root, num_classes=args.num_classes, seed=args.seed, device=args.device,
                          latency_size=args.latency_size, executor=args.executor, workers=args.workers,
                          address=args.address, threads=args.threads, quiet=args.quiet)
    return run_compare(opts)
