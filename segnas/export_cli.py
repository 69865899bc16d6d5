"""``segnas export``: a trained run, checkpoint, genotype file or zoo entry as an ONNX model.

Wire into ``segnas.cli.build_parser`` with ``add_export_parser(sub)``; the parser's ``func`` is ``cmd_export``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .bounds import parse_hw
from .errors import ConfigError

FORMATS = ("onnx",)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def add_export_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand to ``sub`` (the subparsers of ``segnas``); returns its parser."""
    p = sub.add_parser("export", help="export a network to ONNX (inference graph: no aux heads, BatchNorm folded), "
                                      "checked against PyTorch with onnxruntime")
    p.add_argument("source", help="a run folder or checkpoint (its trained weights), or a genotype .json or zoo "
                                  "name (untrained, seeded weights)")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="output format (onnx)")
    p.add_argument("--out", required=True, help="the output file, e.g. model.onnx")
    p.add_argument("--input", type=parse_hw, default=(512, 1024), metavar="HxW",
                   help="export size (default 512x1024); the file records which other sizes the model takes")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes (default: the checkpoint's; 19 for a genotype)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--seed", type=int, default=0, help="seed of the untrained weights of a genotype (default 0)")
    p.add_argument("--force", action="store_true", help="replace an existing file segnas did not write")
    p.set_defaults(func=cmd_export)
    return p


def _is_checkpoint(source: str) -> bool:
    path = Path(source)
    if path.is_dir() or path.suffix.lower() in CHECKPOINT_SUFFIXES:
        return True
    return path.is_file() and path.suffix.lower() != ".json"


def load_source(source: str, num_classes: int | None, seed: int = 0) -> dict[str, Any]:
    """The network to export from a run folder / checkpoint (trained) or a genotype / zoo name (untrained)."""
    if _is_checkpoint(source):
        from .engine import load_checkpoint, model_from_checkpoint

        ckpt = load_checkpoint(source)
        if num_classes is not None and num_classes != int(ckpt["num_classes"]):
            raise ConfigError(f"--num-classes {num_classes}: {ckpt['path']} was trained for {int(ckpt['num_classes'])} "
                              "classes; leave --num-classes out to export it")
        net, genotype = model_from_checkpoint(ckpt, aux=False)
        names = ckpt.get("class_names")
        names = [str(n) for n in names] if isinstance(names, (list, tuple)) else None
        return {"net": net, "genotype": genotype, "class_names": names, "trained": True,
                "source": f"checkpoint {ckpt['path']}", "num_classes": int(ckpt["num_classes"])}
    from .cli import resolve_genotype

    genotype = resolve_genotype(source)
    classes = 19 if num_classes is None else num_classes
    return {"net": genotype, "genotype": genotype, "class_names": None, "trained": False,
            "source": f"genotype {genotype.name or genotype.archid} (untrained weights, seed {seed})",
            "num_classes": classes}


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    if args.format not in FORMATS:
        raise ConfigError(f"--format {args.format}: choose one of {', '.join(FORMATS)}")
    if args.num_classes is not None and args.num_classes < 1:
        raise ConfigError(f"--num-classes must be at least 1, got {args.num_classes}")
    src = load_source(args.source, args.num_classes, getattr(args, "seed", 0))
    result = export_onnx(src["net"], args.out, input_size=tuple(args.input), num_classes=src["num_classes"],
                         class_names=src["class_names"], genotype=src["genotype"], opset=args.opset,
                         force=args.force, seed=getattr(args, "seed", 0), source=src["source"])
    g = src["genotype"]
    h, w = result["input_size"]
    print(f"{g.name or g.archid} ({g.space}, archid {g.archid}) -> {result['path']}")
    if not src["trained"]:
        print("  weights     untrained (seeded): a genotype has no trained weights; export a run folder or "
              "checkpoint for those")
    print(f"  format      ONNX opset {result['opset']}, {result['bytes'] / 1e6:.1f} MB; input 'image' "
          f"Nx3xHxW (exported at {h}x{w}), output 'logits' Nx{result['num_classes']}xHxW")
    print(f"  sizes       {result['accepted_sizes']}; batch: any")
    print(f"  parity      onnxruntime vs PyTorch on {result['images']} images: max abs diff "
          f"{result['max_abs_diff_original']:.2e} (folded network {result['max_abs_diff']:.2e}), "
          f"argmax agreement {100 * result['argmax_agreement']:.3f}%")
    print(f"  params      {result['params'] / 1e6:.3f} M (BatchNorm folded: {result['batchnorms']} -> "
          f"{result['batchnorms_left']} BatchNorm layers)")
    meta = result["metadata"]
    print(f"  normalise   (pixel / 255 - mean) / std, RGB, mean {meta['mean']}, std {meta['std']}")
    return 0
