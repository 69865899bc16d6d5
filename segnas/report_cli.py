"""``segnas report``: one self-contained HTML page of a run.

Wire into ``segnas.cli.build_parser`` with ``add_report_parser(sub)``; the parser's ``func`` is ``cmd_report``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .bounds import parse_hw
from .errors import ConfigError
from .cost import DEFAULT_BACKENDS


def add_report_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to ``sub`` (the subparsers of ``segnas``); returns its parser."""
    p = sub.add_parser("report", help="one self-contained HTML report of a run (drawings, curves, per-class IoU, "
                                      "predictions, cost, configuration)")
    p.add_argument("run", help="a run folder of segnas search or retrain, or a folder of runs such as a demo's")
    p.add_argument("--out", default=None, help="the HTML file (default: RUN/report.html)")
    p.add_argument("--images", type=int, default=4, metavar="N",
                   help="val images a retrained network is scored and shown on (default 4; 0: none)")
    p.add_argument("--backends", default=",".join(DEFAULT_BACKENDS), metavar="B1,B2",
                   help=f"backends the networks are timed on: eager, compile, onnxruntime, bf16 "
                        f"(default {','.join(DEFAULT_BACKENDS)})")
    p.add_argument("--no-latency", action="store_true", help="count parameters and multiply-adds, do not time")
    p.add_argument("--input", type=parse_hw, default=None, metavar="HxW",
                   help="input size of the cost table (default: the run's val images or training data)")
    p.add_argument("--force", action="store_true", help="replace an --out file segnas did not write")
    p.add_argument("--quiet", action="store_true", help="print only the report's path")
    p.set_defaults(func=cmd_report)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    from .backends import parse_backends
    from .report.evaluation import MAX_IMAGES
    from .report.html import write_report

    if not 0 <= args.images <= MAX_IMAGES:
        raise ConfigError(f"--images must be 0-{MAX_IMAGES}, got {args.images}")
    backends = tuple(parse_backends(args.backends, "--backends"))
    if args.out is not None and not args.out.lower().endswith((".html", ".htm")):
        raise ConfigError(f"--out {args.out}: a report is an HTML page; give a file name ending in .html")

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    path = write_report(args.run, args.out, force=args.force, images=args.images, backends=backends,
                        latency=not args.no_latency, size=args.input, log=log)
    print(f"report -> {path}")
    return 0


__all__ = ["add_report_parser", "cmd_report"]
