"""The ``segnas`` command line: search, retrain, evaluate, profile, export, report, compare and more.

Commands: search, methods, latency, retrain, evaluate, profile, correlate, zoo, show, export, report, compare, demo.

User mistakes end with one line on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import zoo
from .bounds import gib, machine_memory, parse_hw
from .errors import GenotypeError, SegnasError
from .threads import torch_threads
from .genotype import Genotype
from .genotype import load as load_genotype
from .backends import BACKENDS as BACKEND_NAMES
from .compare_cli import add_compare_parser
from .export_cli import add_export_parser
from .report_cli import add_report_parser
from .outputs import claim_file, claim_folder, marked


def resolve_genotype(arg: str) -> Genotype:
    """A genotype JSON path, or the name of a zoo entry."""
    path = Path(arg)
    if path.is_file() or path.suffix == ".json" or "/" in arg:
        return load_genotype(path)
    if arg in zoo.list():
        return zoo.get(arg)
    raise GenotypeError(f"{arg}: neither a genotype file nor a zoo entry; zoo: {', '.join(zoo.list())}")


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="dataset: synthetic or planted-context (built-in), camvid, cityscapes, voc, ade20k, folder")
    p.add_argument("--root", default=None, help="dataset folder (camvid defaults to ../shared/data/camvid or $SEGNAS_CAMVID)")
    p.add_argument("--num-classes", type=int, default=None, help="class count (needed for 'folder'; checked otherwise)")
    p.add_argument("--preset", default="cpu", help="tiny (tests), cpu (minutes to an hour on 2 cores), paper (GPU)")
    p.add_argument("--config", default=None, help="YAML file with overrides")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=0.01 (repeatable)")
    p.add_argument("--device", default=None, help="cpu (default), cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-data-check", action="store_true",
                   help="skip the scan of every image/mask pair before training (data.check=false)")


def _cli_extra(args: argparse.Namespace) -> dict:
    extra: dict = {}
    data = {k: v for k, v in (("dataset", args.data), ("root", args.root),
                               ("num_classes", args.num_classes)) if v is not None}
    if getattr(args, "no_data_check", False):
        data["check"] = False
    if data:
        extra["data"] = data
    for key in ("device", "seed", "threads"):
        if getattr(args, key) is not None:
            extra[key] = getattr(args, key)
    if getattr(args, "teacher", None):
        extra["train"] = {"distill_teacher": args.teacher}
    return extra


def cmd_retrain(args: argparse.Namespace) -> int:
    from .config import make_config
    from .engine import retrain

    out = Path(args.out)
    resume_overrides = None
    if args.resume:
        _resume_flags(args, (("--teacher", args.teacher),))
        genotype = load_genotype(out / "genotype.json") if args.genotype is None else resolve_genotype(args.genotype)
        cfg = make_config(args.preset)  # replaced by the run's own config on resume
        resume_overrides = {k: getattr(args, k) for k in ("device", "threads") if getattr(args, k) is not None}
    else:
        if args.genotype is None:
            raise GenotypeError("retrain needs a GENOTYPE (a .json file or a zoo name such as 'fasterseg')")
        genotype = resolve_genotype(args.genotype)
        cfg = make_config(args.preset, args.config, args.overrides, _cli_extra(args))
    result = retrain(genotype, cfg, out, resume=args.resume, progress=not args.quiet,
                     resume_overrides=resume_overrides)
    if result.get("already_complete"):
        print(f"{out} is already complete ({result['steps']} steps); nothing to resume")
    print(f"best val mIoU {100 * result['best_miou']:.2f}%  final {100 * result['final']['miou']:.2f}%  "
          f"({result['steps']} steps, {result['wall_s']:.0f} s, {result['images_per_s']:.1f} img/s)  -> {out}")
    return 0


def _resume_flags(args: argparse.Namespace, extra: tuple[tuple[str, object], ...] = ()) -> None:
    changed = [flag for flag, value in (("--set", args.overrides), ("--config", args.config), ("--data", args.data),
                                        ("--root", args.root), ("--num-classes", args.num_classes),
                                        ("--seed", args.seed), ("--no-data-check", args.no_data_check))
               + extra if value]
    if changed:
        raise SegnasError(f"--resume continues {args.out} with its own config; drop {', '.join(changed)} "
                          "(only --device and --threads may change)")


def cmd_search(args: argparse.Namespace) -> int:
    from .engine import distributed
    from .methods import get_method
    from .strategies import ONE_SHOT

    method = get_method(args.method)
    strategy = method.strategy(args.strategy)
    if distributed.launched() and strategy not in ONE_SHOT:
        raise SegnasError(f"strategy {strategy} trains separate trials, which torchrun does not share out; run it "
                          "in one process and spread the trials with --executor local or ray")
    if (args.lut or args.deploy_size) and (method.latency_table is None or method.name not in
                                           method.sections(strategy)):
        raise SegnasError(f"--lut and --deploy-size belong to latency-aware searches; {args.method} with "
                          f"strategy {strategy} has no latency objective")
    out = Path(args.out)
    resume_overrides = None
    if args.resume:
        _resume_flags(args, (("--lut", args.lut), ("--deploy-size", args.deploy_size), ("--strategy", args.strategy),
                             ("--executor", args.executor), ("--workers", args.workers), ("--address", args.address)))
        cfg = method.config(args.preset)  # replaced by the run's own config
        resume_overrides = {k: getattr(args, k) for k in ("device", "threads") if getattr(args, k) is not None}
    else:
        extra = _cli_extra(args)
        own = {k: v for k, v in (("lut", args.lut), ("deploy_size", args.deploy_size)) if v is not None}
        if "deploy_size" in own:
            own["deploy_size"] = list(own["deploy_size"])
        if own:
            extra[method.name] = own
        trials = {k: v for k, v in (("kind", args.executor), ("workers", args.workers), ("address", args.address))
                  if v is not None}
        if trials and "executor" not in method.sections(strategy):
            raise SegnasError(f"--executor, --workers and --address belong to multi-trial searches; {args.method} "
                              f"with strategy {strategy} trains no trials")
        if trials:
            extra["executor"] = trials
        cfg = method.config(args.preset, args.config, args.overrides, extra, strategy=args.strategy)
    result = method.search(cfg, out, resume=args.resume, progress=not args.quiet, resume_overrides=resume_overrides)
    if result.get("already_complete"):
        print(f"{out} is already complete; nothing to resume")
    for line in method.report(result, out) if method.report else []:
        print(line)
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    """The registry: every method with its space, strategies (default first), presets and outputs."""
    from .methods import METHODS
    from .strategies import STRATEGIES

    print(f"{'method':<13}{'space':<13}{'strategies (default first)':<30}{'presets':<18}writes")
    for m in METHODS.values():
        print(f"{m.name:<13}{m.space:<13}{', '.join(m.strategies):<30}{', '.join(m.presets):<18}"
              f"{', '.join(o + '.json' for o in m.outputs)}  ({m.title})")
    print(f"strategies: {', '.join(STRATEGIES)}")
    return 0


def cmd_latency(args: argparse.Namespace) -> int:
    from .backends import unavailable
    from .engine.loaders import make_datasets
    from .engine.session import resolve_device
    from .methods import METHODS, method_for_space

    method = method_for_space(args.space)
    if method.latency_table is None:
        raise SegnasError(f"--space {args.space!r}: no latency table for it; choose "
                          f"{', '.join(m.space for m in METHODS.values() if m.latency_table)}")
    out = Path(args.out)
    if out.is_dir():
        raise SegnasError(f"{out}: is a folder; give --out a file path such as latency_table.json")
    if out.exists() and not (args.extend or args.force):
        raise SegnasError(f"{out}: exists; pass --extend to add missing entries to it, --force to replace it, "
                          "or choose another --out")
    if args.extend and args.force:
        raise SegnasError("--extend keeps the table's entries and --force replaces it; pass one of them")
    cfg = method.config(args.preset, args.config, args.overrides, _cli_extra(args))
    device = resolve_device(cfg.device)
    why = unavailable(args.backend, device)
    if why is not None:
        raise SegnasError(f"--backend {args.backend}: {why}")
    num_classes = cfg.data.num_classes or make_datasets(cfg.data, cfg.seed)[0].num_classes
    with torch_threads(cfg.threads):  # restored after: in-process callers (tests, the demo) keep theirs
        table, measured, cal, lines = method.latency_table(cfg, num_classes, args.input, out,
                                                           args.extend and not args.force, args.repeats, device,
                                                           not args.quiet, backend=args.backend)
    table.save(out)
    env = table.environment
    print(f"{out}: {len(table)} entries ({measured} measured now) for {args.space} at "
          f"{args.input[0]}x{args.input[1]}, {num_classes} classes, on {env['device']} ({env['backend']}) with "
          f"{env['threads']} threads; "
          f"calibrated on {cal['networks']} whole networks (x{cal['factor']:.2f})")
    for line in lines:
        print(line)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .config import make_config
    from .data import EvalTransform, build_dataset
    from .engine import load_checkpoint, model_from_checkpoint, per_class_table
    from .engine.evaluate import evaluate_deployed
    from .engine.loaders import data_root, dataset_kwargs, eval_loader
    from .engine.rundir import write_json

    ckpt = load_checkpoint(args.checkpoint)
    cfg = make_config(args.preset, args.config, args.overrides, _cli_extra(args))
    if args.data is None:  # default to the data the checkpoint was trained on
        cfg.data.dataset = ckpt["config"]["data"]["dataset"]
        cfg.data.root = ckpt["config"]["data"]["root"] if args.root is None else args.root
        cfg.data.synthetic_val = ckpt["config"]["data"]["synthetic_val"]
        cfg.data.synthetic_size = ckpt["config"]["data"]["synthetic_size"]
        cfg.data.synthetic_seed = ckpt["config"]["data"].get("synthetic_seed", 0)
        cfg.data.num_classes = ckpt["config"]["data"].get("num_classes")
    ds = build_dataset(cfg.data.dataset, data_root(cfg.data), args.split, transform=EvalTransform(),
                       seed=ckpt["config"]["seed"], **dataset_kwargs(cfg.data, args.split))
    model, genotype = model_from_checkpoint(ckpt, ds.num_classes)
    out = claim_folder(Path(args.out) if args.out else Path(ckpt["path"]).parent.parent / f"eval_{args.split}",
                       "evaluate", args.force)
    metrics = evaluate_deployed(model, eval_loader(ds), ds.num_classes, cfg.device, ds.ignore_index,
                                save_dir=out / "predictions", palette=ds.palette, max_images=args.save_predictions)
    print(f"{genotype.name or genotype.archid} on {cfg.data.dataset}/{args.split} ({len(ds)} images)")
    print(per_class_table(metrics, list(ds.class_names)))
    write_json(out / "metrics.json", marked({**metrics, "class_names": list(ds.class_names),
                                             "checkpoint": ckpt["path"], "split": args.split}, "evaluate"))
    print(f"metrics -> {out / 'metrics.json'}; {min(args.save_predictions, len(ds))} prediction images -> "
          f"{out / 'predictions'}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    import torch

    from .backends import parse_backends, peak_gflops, time_backends, unavailable
    from .engine.session import resolve_device
    from .export import refuse_size
    from .profile import cpu_name, profile
    from .spaces import get_space

    genotype = resolve_genotype(args.genotype)
    for flag, value in (("--rounds", args.rounds), ("--batch", args.batch), ("--num-classes", args.num_classes),
                        ("--threads", args.threads or 1)):
        if value < 1:
            raise SegnasError(f"{flag} must be at least 1, got {value}")
    backends = parse_backends(args.backend)
    device = resolve_device(args.device)
    if not args.no_latency and len(backends) == 1 and unavailable(backends[0], device):
        raise SegnasError(f"--backend {backends[0]}: {unavailable(backends[0], device)}")
    h, w = args.input
    memory = machine_memory()
    if memory is not None and args.batch * 3 * h * w * 4 > memory // 2:
        raise SegnasError(f"--batch {args.batch} at --input {h}x{w}: the input alone needs "
                          f"{gib(args.batch * 3 * h * w * 4)}, more than half of this machine's {gib(memory)}; "
                          "give a smaller size or batch")
    net = get_space(genotype.space).build(genotype, args.num_classes, aux=True)
    shape = (args.batch, 3, h, w)
    try:
        result = profile(net, shape, latency=False)
    except RuntimeError as e:  # a size the network cannot take: say which sizes it does
        raise refuse_size(net, (h, w), " ".join(str(e).split())[:100]) from None
    result.update(genotype=genotype.name or genotype.archid, num_classes=args.num_classes)
    if not args.no_latency:
        result.update(device=f"{device} ({cpu_name()})" if device.type == "cpu" else str(device),
                      threads=int(args.threads or torch.get_num_threads()), rounds=args.rounds,
                      backends=time_backends(net, shape, backends, rounds=args.rounds, threads=args.threads,
                                             device=device, flops=result["flops"]),
                      peak=peak_gflops(device, args.threads))
        for entry in result["backends"].values():
            if entry.get("gflops_per_s") is not None:
                entry["peak_fraction"] = entry["gflops_per_s"] / result["peak"]["gflops_per_s"]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['genotype']} at {args.batch}x3x{h}x{w}, {args.num_classes} classes")
    print(f"  params      {result['params'] / 1e6:8.3f} M  (with training-only aux heads "
          f"{result['params_with_aux'] / 1e6:.3f} M)")
    print(f"  multiply-adds {result['macs'] / 1e9:6.2f} G  (FLOPs {result['flops'] / 1e9:.2f} G)")
    if "backends" in result:
        print(f"  latency on {result['device']}, {result['threads']} threads: fastest of {args.rounds} "
              "interleaved rounds")
        print(f"  {'backend':<13}{'latency ms':>11}{'vs eager':>10}{'setup s':>9}{'GFLOP/s':>9}{'of peak':>9}"
              f"{'max |diff|':>12}{'argmax':>10}")
        eager = result["backends"].get("eager", {}).get("latency_ms")
        for name, entry in result["backends"].items():
            if entry["latency_ms"] is None:
                print(f"  {name:<13}{'n/a: ' + entry['error']}")
                continue
            ratio = f"{entry['latency_ms'] / eager:.2f}x" if eager else "-"
            print(f"  {name:<13}{entry['latency_ms']:>11.2f}{ratio:>10}{entry['setup_s']:>9.1f}"
                  f"{entry['gflops_per_s']:>9.1f}{100 * entry['peak_fraction']:>8.0f}%"
                  f"{entry['max_abs_diff']:>12.1e}{100 * entry['argmax_agreement']:>9.2f}%")
        peak = result["peak"]
        print(f"  peak        {peak['gflops_per_s']:.1f} GFLOP/s ({peak['conv']}, fastest of {peak['rounds']}); "
              "eager = BatchNorm folded, channels_last, inference mode; diffs against the unfolded network")
    return 0


def cmd_correlate(args: argparse.Namespace) -> int:
    from .correlate import correlate, summary_lines

    out = Path(args.out)
    result = correlate(args.sources, out, around=args.around, seed=args.seed, overrides=args.overrides,
                       score_images=args.score_images, resamples=args.resamples, device=args.device,
                       threads=args.threads, progress=not args.quiet)
    for line in summary_lines(result, out):
        print(line)
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from .spaces import get_space

    if args.action == "list":
        for name in zoo.list():
            meta = zoo.info(name)
            print(f"{name:<20} {meta.get('source', '')}")
        return 0
    if not args.name:
        raise GenotypeError("zoo show needs a NAME; see 'segnas zoo list'")
    g = zoo.get(args.name)
    print(f"{args.name}  space={g.space} v{g.space_version}  archid={g.archid}")
    print(f"source: {g.meta.get('source', '-')}")
    for key, value in g.meta.get("paper", {}).items():
        print(f"  paper {key}: {value}")
    print(get_space(g.space).describe(g))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .methods import METHODS, draw_genotype
    from .spaces import get_space
    from .spaces.nekrasov import parse_paper

    # a nested integer list is Nekrasov et al.'s encoding (the only space with one)
    g = parse_paper(args.genotype) if args.genotype.lstrip().startswith("[") else resolve_genotype(args.genotype)
    print(f"{g.name or '(unnamed)'}  space={g.space} v{g.space_version}  archid={g.archid}")
    print(get_space(g.space).describe(g))
    if not any(m.space == g.space and m.draw is not None for m in METHODS.values()):
        print(f"no drawing for space {g.space} yet")
        return 0
    # the default name is the archid (a hash): text inside a genotype never chooses where a file lands
    png = claim_file(Path(args.png) if args.png else Path(f"{g.archid}.png"), "draw", args.force)
    draw_genotype(g, png)
    print(f"drawing -> {png}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out) if args.out else None, quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segnas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("search", help="search an architecture (writes its genotype(s) to --out)")
    p.add_argument("method", help="a method of 'segnas methods', e.g. fasterseg, autodeeplab")
    p.add_argument("--strategy", default=None, help="search strategy (default: the method's own; see 'segnas methods')")
    p.add_argument("--out", required=True, help="run folder (never overwritten)")
    p.add_argument("--resume", action="store_true", help="continue the search in --out")
    p.add_argument("--lut", default=None, help="latency table from 'segnas latency build' (default: measure one)")
    p.add_argument("--deploy-size", type=parse_hw, default=None, metavar="HxW",
                   help="input size the latency is optimised for (default from the preset)")
    p.add_argument("--executor", default=None, help="multi-trial searches: where trials run (inline, local, ray)")
    p.add_argument("--workers", type=int, default=None, help="multi-trial searches: trials at once")
    p.add_argument("--address", default=None, help="--executor ray: the cluster to join (default: a local Ray)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _config_args(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("methods", help="the search methods, their spaces and strategies")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("latency", help="latency lookup tables measured on this device")
    p.add_argument("action", choices=["build"])
    p.add_argument("--space", required=True, help="search space, e.g. fasterseg")
    p.add_argument("--input", type=parse_hw, required=True, metavar="HxW", help="deployment input size")
    p.add_argument("--out", default="latency_table.json", help="table file (default: latency_table.json)")
    p.add_argument("--extend", action="store_true", help="add missing entries to an existing table")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--repeats", type=int, default=5, help="timing rounds; each entry keeps its fastest")
    p.add_argument("--backend", default="eager", choices=BACKEND_NAMES,
                   help="what the table times: eager (default), compile, onnxruntime or bf16; a search uses the "
                        "table only with the same fasterseg.backend")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _config_args(p)
    p.set_defaults(func=cmd_latency)

    p = sub.add_parser("retrain", help="train a genotype's network from scratch")
    p.add_argument("genotype", nargs="?", help="genotype .json or zoo name (omit with --resume)")
    p.add_argument("--out", required=True, help="run folder (never overwritten)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--teacher", default=None, help="checkpoint of a retrained teacher for KL distillation")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _config_args(p)
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint: per-class table and prediction images")
    p.add_argument("checkpoint", help="checkpoint file or run folder")
    p.add_argument("--split", default="val")
    p.add_argument("--out", default=None, help="output folder (default: RUN/eval_SPLIT)")
    p.add_argument("--save-predictions", type=int, default=8, metavar="N", help="colourised PNGs to write")
    p.add_argument("--force", action="store_true", help="write into an --out folder segnas did not write")
    _config_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("profile", help="parameters, multiply-adds and measured latency")
    p.add_argument("genotype", help="genotype .json or zoo name")
    p.add_argument("--input", type=parse_hw, default=(1024, 2048), metavar="HxW")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--num-classes", type=int, default=19)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--backend", default="eager", metavar="B[,B...]",
                   help="eager, compile, onnxruntime, bf16 (several separated by commas: a table side by side)")
    p.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds; each backend keeps its fastest")
    p.add_argument("--no-latency", action="store_true", help="count only, do not time")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("correlate", help="search-time score against retrained mIoU: Pearson rho, Kendall tau, "
                                         "a scatter plot (any one-shot method)")
    p.add_argument("sources", nargs="+", metavar="RUN_OR_GENOTYPE",
                   help="the folder of one finished one-shot search (its supernet scores every architecture), "
                        "then any genotype files or zoo names to add")
    p.add_argument("--out", required=True, help="output folder: correlation.json, correlation.png, retrain/ARCHID "
                                                "(rerunning continues there)")
    p.add_argument("--around", type=int, default=4, metavar="N",
                   help="neighbours of the final genotype, 1-2 of its choices changed (default 4)")
    p.add_argument("--seed", type=int, default=0, help="draws of the neighbours and of the bootstrap")
    p.add_argument("--score-images", type=int, default=None, metavar="N",
                   help="trainB images the supernet scores on (default: all of trainB)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="train.KEY=VALUE",
                   help="retrain recipe (default: the search's preset recipe at a quarter of its epochs), "
                        "e.g. --set train.epochs=20 (repeatable)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: the search's)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_correlate)

    p = sub.add_parser("zoo", help="published architectures")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_zoo)

    p = sub.add_parser("show", help="print a genotype and draw it to a PNG")
    p.add_argument("genotype", help="genotype .json, zoo name, or Nekrasov et al.'s encoding "
                                    "'[[[c1, c2], ...], [o1, [i2, i3, o2, o3], ...]]'")
    p.add_argument("--png", default=None, help="drawing path (default: ARCHID.png)")
    p.add_argument("--force", action="store_true", help="replace a file segnas did not write")
    p.set_defaults(func=cmd_show)

    add_export_parser(sub)
    add_report_parser(sub)
    add_compare_parser(sub)

    p = sub.add_parser("demo", help="the end-to-end demo on the built-in dataset")
    p.add_argument("--out", default=None, help="run folder (default: runs/demo-DATE-TIME)")
    p.add_argument("--quick", action="store_true", help="a seconds-long version (used by the tests)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .engine import distributed

    if not distributed.is_main():  # under torchrun the first process alone reports
        sys.stdout = open(os.devnull, "w")
    try:
        return args.func(args)
    except SegnasError as e:
        print(f"segnas: error: {one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (e.g. '| head'): nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # disk full, permission denied, ...: the file and the reason, no traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"segnas: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2


def one_line(error: Exception) -> str:
    """The user's message, also when a DataLoader worker wrapped it in a traceback."""
    text = str(error).strip()
    if "Traceback" in text:  # re-raised from a worker: keep the original message
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
