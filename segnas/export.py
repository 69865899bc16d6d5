"""Export a derived network to ONNX, verified against eager PyTorch with onnxruntime.

What is exported is the network users deploy (``segnas.ops.fold.inference_copy``):
no training-only auxiliary heads, eval mode, BatchNorm folded into the
convolutions before it. One input ``image`` (N x 3 x H x W float32, RGB,
``(pixel / 255 - mean) / std`` with the datasets' ImageNet mean and std), one
output ``logits`` (N x classes x H x W, the input's size).

Sizes. The batch is always dynamic. Height and width are exported dynamic and
then checked: onnxruntime must match eager PyTorch at sizes other than the
export size. The probes try ``d`` = 1, 2, 4, ..., 64 (those dividing the export
size) at (H + d, W + d) and (H + 2d, W + 3d); the first ``d`` whose probes all
match gives "any HxW divisible by d" ("any HxW" for d = 1). When none matches
(a traced graph that baked a size in), the model is exported again with a fixed
H and W: "only HxW". A size the network itself cannot take (eager PyTorch fails
or gives logits of another size) is refused before anything is exported, with
one line naming the size and the sizes the network does take.

The file is written atomically, carries its metadata in ``metadata_props``
(segnas version, genotype JSON, archid, class names, sizes, opset,
normalisation) and the writer's mark ``segnas_output`` = ``export``, so
exporting again to the same path replaces it while a foreign file is refused
(``--force`` to replace that).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .bounds import MAX_SIDE
from .data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .errors import ConfigError, SegnasError
from .fileio import atomic_write
from .genotype import Genotype
from .onnx_runtime import onnx_bytes, ort_session, require_onnxruntime
from .ops.fold import count_batchnorms, inference_copy
from .outputs import MARK, claim_file

__all__ = ["ExportError", "export_onnx", "onnx_metadata", "read_metadata", "DEFAULT_CLASSES", "MEAN", "STD"]

MEAN: tuple[float, float, float] = tuple(IMAGENET_MEAN)  # type: ignore[assignment]
STD: tuple[float, float, float] = tuple(IMAGENET_STD)  # type: ignore[assignment]
DEFAULT_CLASSES = 19  # a bare genotype's class count (Cityscapes')
STRIDES = (1, 2, 4, 8, 16, 32, 64)  # divisibility probed for the accepted sizes
MIN_ARGMAX_AGREEMENT = 0.999
COMMAND = "export"


class ExportError(SegnasError):
    """The exported model does not reproduce the network (onnxruntime against eager PyTorch)."""


def _check_onnx_installed() -> tuple[Any, Any]:
    return require_onnxruntime("export --format onnx")


def _check_size(size: Any, field: str = "input_size") -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
        ok = all(not isinstance(v, bool) and int(v) == v for v in size)
    except (TypeError, ValueError):
        ok = False
    if not ok or not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise ConfigError(f"{field} is {size!r}; give (H, W), two integers from 1 to {MAX_SIDE}")
    return h, w


def random_images(n: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """``n`` seeded random RGB images, normalised as the datasets normalise theirs."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 3, *size)).astype(np.float32)
    mean = np.asarray(MEAN, np.float32).reshape(1, 3, 1, 1) * 255.0
    std = np.asarray(STD, np.float32).reshape(1, 3, 1, 1) * 255.0
    return torch.from_numpy((pixels - mean) / std)


@torch.no_grad()
def _eager(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = net(x)
    if isinstance(out, (tuple, list)):  # a network that returns aux outputs too: the logits come first
        out = out[0]
    return out


def size_problem(net: nn.Module, size: tuple[int, int]) -> str | None:
    """None when ``net`` takes a 1x3xHxW input and gives logits of that size; else why not (short)."""
    try:
        out = _eager(net, torch.zeros(1, 3, *size))
    except Exception as e:  # any failure inside a forward pass means the size does not fit
        return " ".join(f"{type(e).__name__}: {e}".split())[:100]
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or tuple(out.shape[-2:]) != tuple(size):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return f"logits of shape {got}, not 1xCx{size[0]}x{size[1]}"
    return None


def _round_up(v: int, d: int) -> int:
    return -(-v // d) * d


def refuse_size(net: nn.Module, size: tuple[int, int], why: str) -> ConfigError:
    """The one-line error for a size the network cannot take, naming the sizes it does take."""
    h, w = size
    for d in STRIDES[1:]:
        fit = (_round_up(h, d), _round_up(w, d))
        if max(fit) <= MAX_SIDE and size_problem(net, fit) is None and \
                size_problem(net, (fit[0] + d, fit[1] + d)) is None:
            return ConfigError(f"input size {h}x{w}: the network cannot take it ({why}); it accepts HxW "
                               f"divisible by {d}, e.g. {fit[0]}x{fit[1]}: choose such a size with --input")
    return ConfigError(f"input size {h}x{w}: the network cannot take it ({why}); no nearby size divisible by "
                       f"{', '.join(map(str, STRIDES[1:]))} works either: check the network")


def _export_bytes(net: nn.Module, size: tuple[int, int], opset: int, dynamic_hw: bool) -> bytes:
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    return onnx_bytes(net, [torch.zeros(1, 3, *size)], ["image"], ["logits"], {"image": axes, "logits": axes}, opset)


def _session(model_bytes: bytes):
    return ort_session(model_bytes, quiet=True)


def _run(session, x: torch.Tensor) -> np.ndarray:
    return session.run(["logits"], {"image": x.numpy().astype(np.float32, copy=False)})[0]


def _compare(ort_out: np.ndarray, ref: torch.Tensor) -> tuple[float, float]:
    """(max absolute difference, fraction of pixels with the same argmax) of ``ort_out`` against ``ref``."""
    ref_np = ref.numpy()
    if ort_out.shape != ref_np.shape:
        return float("inf"), 0.0
    diff = float(np.abs(ort_out - ref_np).max()) if ort_out.size else 0.0
    agree = float((ort_out.argmax(1) == ref_np.argmax(1)).mean()) if ort_out.size else 1.0
    return diff, agree


def _tolerance(ref: torch.Tensor) -> float:
    """What counts as the same logits: float32 rounding of a deep network, relative to the logits' scale."""
    return 1e-3 * max(1.0, float(ref.abs().max()))


def _probe(session, net: nn.Module, size: tuple[int, int], seed: int) -> bool:
    """onnxruntime gives eager PyTorch's logits at ``size`` (False when either fails)."""
    if max(size) > MAX_SIDE:
        return False
    x = random_images(1, size, seed)
    try:
        out = _run(session, x)  # first: a size baked into the graph fails here, before any eager work
    except Exception:  # onnxruntime refused the shape
        return False
    try:
        ref = _eager(net, x)
    except Exception:  # the network itself cannot take the size
        return False
    diff, agree = _compare(out, ref)
    return diff <= _tolerance(ref) and agree >= MIN_ARGMAX_AGREEMENT


def _accepted(session, net: nn.Module, size: tuple[int, int]) -> tuple[int | None, list[str]]:
    """The smallest probed divisor ``d`` whose sizes onnxruntime handles like eager PyTorch (None: none),
    and the sizes tried. The largest divisor of the export size is tried first: when even its sizes fail
    the graph holds the export size and no smaller divisor is tried."""
    h, w = size
    divisors = [d for d in STRIDES if h % d == 0 and w % d == 0]
    tried: list[str] = []

    def passes(d: int) -> bool:
        probes = [(h + d, w + d), (h + 2 * d, w + 3 * d)]
        tried.extend(f"{a}x{b}" for a, b in probes)
        return all(_probe(session, net, p, seed=100 + i) for i, p in enumerate(probes))

    if not passes(divisors[-1]):
        return None, tried
    for d in divisors[:-1]:
        if passes(d):
            return d, tried
    return divisors[-1], tried


def _as_images(check_images: Any, size: tuple[int, int]) -> list[torch.Tensor]:
    """Verification images as batches of equal size (each N x 3 x H x W float32)."""
    if check_images is None:
        return [random_images(2, size, seed=0)]
    if isinstance(check_images, (torch.Tensor, np.ndarray)):
        items = [torch.as_tensor(check_images)]
    else:
        items = [torch.as_tensor(np.asarray(im)) if not isinstance(im, torch.Tensor) else im for im in check_images]
    batches: dict[tuple[int, int], list[torch.Tensor]] = {}
    for i, t in enumerate(items):
        t = t.detach().to("cpu", torch.float32)
        if t.dim() == 3:
            t = t.unsqueeze(0)
        if t.dim() != 4 or t.shape[1] != 3 or t.shape[0] < 1:
            raise ConfigError(f"check_images[{i}] has shape {tuple(t.shape)}; give normalised 3xHxW images "
                              "or Nx3xHxW batches")
        batches.setdefault(tuple(t.shape[-2:]), []).append(t)
    return [torch.cat(group) for group in batches.values()]


def _resolve_network(net_or_genotype: nn.Module | Genotype, num_classes: int | None, genotype: Genotype | None,
                     seed: int) -> tuple[nn.Module, Genotype | None, bool]:
    """(network, genotype, untrained) from a network or a genotype (built with seeded weights)."""
    if isinstance(net_or_genotype, Genotype):
        from .spaces import get_space

        genotype = net_or_genotype if genotype is None else genotype
        classes = DEFAULT_CLASSES if num_classes is None else num_classes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = get_space(net_or_genotype.space).build(net_or_genotype, classes, aux=False)
        return net, genotype, True
    if not isinstance(net_or_genotype, nn.Module):
        raise ConfigError(f"export: expected a network or a genotype, got {type(net_or_genotype).__name__}")
    net = net_or_genotype
    if any(t.device.type != "cpu" for t in (*net.parameters(), *net.buffers())):
        net = copy.deepcopy(net).cpu()  # exported and checked on the CPU; the caller's network stays where it is
    return net, genotype, False


def onnx_metadata(model_or_path: Any) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX model (a loaded ``onnx.ModelProto`` or a path)."""
    onnx, _ = _check_onnx_installed()
    model = model_or_path if isinstance(model_or_path, onnx.ModelProto) else \
        onnx.load(os.fspath(model_or_path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def read_metadata(path: str | os.PathLike) -> dict[str, str] | None:
    """The metadata of an ONNX file segnas wrote; None for anything else (not ONNX, unreadable, foreign)."""
    try:
        meta = onnx_metadata(path)
    except Exception:  # a foreign or corrupt file is simply not ours
        return None
    return meta if meta.get(MARK) == COMMAND else None


def export_onnx(net_or_genotype: nn.Module | Genotype, out_path: str | os.PathLike,
                input_size: Sequence[int] = (512, 1024), num_classes: int | None = None,
                class_names: Sequence[str] | None = None, genotype: Genotype | None = None, opset: int = 17,
                dynamic: bool = True, check_images: Any = None, force: bool = False, seed: int = 0,
                source: str | None = None) -> dict[str, Any]:
    """Export the inference network of ``net_or_genotype`` to ``out_path`` (ONNX) and verify it.

    ``net_or_genotype``: a built network (trained or not; its aux heads are dropped, BN folded, the network
    itself is left as it was) or a genotype (built with ``seed``-ed untrained weights, ``num_classes``
    classes, 19 when not given). ``input_size`` (H, W) is the export size. ``dynamic``: a dynamic batch and,
    where the network allows, dynamic H and W (see the module's docstring); False fixes H and W (the batch
    stays dynamic). ``check_images``: normalised images (3xHxW or Nx3xHxW tensors or arrays) to verify
    with; seeded random normalised images (a batch of 2) when None. ``force`` replaces a file segnas did
    not write. Prints nothing; returns the file, sizes, opset, parameters and the parity of onnxruntime's
    logits against eager PyTorch: ``max_abs_diff`` (against the folded inference copy),
    ``max_abs_diff_original`` (against the original network in eval mode), ``argmax_agreement`` (fraction
    of pixels whose class is the original network's), ``argmax_agreement_folded``.
    Raises ConfigError for a size the network cannot take or bad arguments, ExportError when onnxruntime
    does not reproduce the network (nothing is written then).
    """
    onnx, _ = _check_onnx_installed()
    size = _check_size(input_size)
    if isinstance(opset, bool) or not isinstance(opset, int) or not 9 <= opset <= 20:
        raise ConfigError(f"opset is {opset!r}; give an ONNX opset from 9 to 20 (17 is the default)")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise ConfigError(f"num_classes is {num_classes!r}; give a positive integer")
    net, genotype, untrained = _resolve_network(net_or_genotype, num_classes, genotype, seed)
    path = claim_file(out_path, COMMAND, force)

    was_training = net.training
    try:
        net.eval()
        infer = inference_copy(net)
        why = size_problem(infer, size)
        if why is not None:
            raise refuse_size(infer, size, why)
        batches = _as_images(check_images, size)
        for batch in batches:
            why = size_problem(infer, tuple(batch.shape[-2:]))
            if why is not None:
                raise ConfigError(f"check_images of size {batch.shape[-2]}x{batch.shape[-1]}: the network cannot "
                                  f"take them ({why}); give images of the export size {size[0]}x{size[1]}")
        refs_folded = [_eager(infer, b) for b in batches]
        refs_orig = [_eager(net, b) for b in batches]
    finally:
        net.train(was_training)
    classes = int(refs_folded[0].shape[1])
    if num_classes is not None and classes != num_classes:
        raise ConfigError(f"num_classes is {num_classes} but the network gives {classes} logit channels")
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) != classes:
            raise ConfigError(f"class_names has {len(class_names)} names for a network of {classes} classes; "
                              "give one name per class")

    model_bytes = _export_bytes(infer, size, opset, dynamic)
    session = _session(model_bytes)
    divisor, tried = (None, [])
    if dynamic:
        divisor, tried = _accepted(session, infer, size)
        if divisor is None:  # the traced graph holds the export size: export it fixed
            model_bytes = _export_bytes(infer, size, opset, False)
            session = _session(model_bytes)
    h, w = size
    if divisor is None:
        accepted = f"only {h}x{w}"
        fixed = [b for b in batches if tuple(b.shape[-2:]) != size]
        if fixed:
            raise ConfigError(f"check_images of size {fixed[0].shape[-2]}x{fixed[0].shape[-1]}: the model is exported "
                              f"for {h}x{w} only; give images of that size")
    else:
        accepted = "any HxW" if divisor == 1 else f"any HxW divisible by {divisor}"

    # parity on the verification images, with a batch of at least 2 (the dynamic batch)
    if all(b.shape[0] < 2 for b in batches):
        extra = random_images(2, size, seed=1)
        batches.append(extra)
        refs_folded.append(_eager(infer, extra))
        was_training = net.training
        try:
            refs_orig.append(_eager(net.eval(), extra))
        finally:
            net.train(was_training)
    diff_f = diff_o = 0.0
    agree_f_n = agree_o_n = pixels = 0.0
    scale = 0.0
    for batch, ref_f, ref_o in zip(batches, refs_folded, refs_orig):
        try:
            out = _run(session, batch)
        except Exception as e:  # onnxruntime's own message, on one line
            raise ExportError(f"onnxruntime cannot run the exported model on a {tuple(batch.shape)} input "
                              f"({' '.join(str(e).split())[:160]}); nothing was written to {path}") from None
        d_f, a_f = _compare(out, ref_f)
        d_o, a_o = _compare(out, ref_o)
        n = batch.shape[0] * batch.shape[2] * batch.shape[3]
        diff_f, diff_o = max(diff_f, d_f), max(diff_o, d_o)
        agree_f_n += a_f * n
        agree_o_n += a_o * n
        pixels += n
        scale = max(scale, float(ref_o.abs().max()))
    agree_f, agree_o = agree_f_n / pixels, agree_o_n / pixels
    tol = 1e-3 * max(1.0, scale)
    if not (diff_f <= tol and diff_o <= tol and agree_o >= MIN_ARGMAX_AGREEMENT):
        raise ExportError(f"onnxruntime does not reproduce the network: max abs difference {diff_o:.3g} "
                          f"(allowed {tol:.3g}), argmax agreement {100 * agree_o:.3f}% (at least "
                          f"{100 * MIN_ARGMAX_AGREEMENT:.1f}% needed); nothing was written to {path}")

    from . import __version__

    meta: dict[str, str] = {
        MARK: COMMAND,
        "segnas_version": __version__,
        "num_classes": str(classes),
        "class_names": json.dumps(list(class_names) if class_names is not None else []),
        "input_size": f"{h}x{w}",
        "accepted_sizes": accepted,
        "opset": str(opset),
        "input": "image: Nx3xHxW float32, RGB, (pixel / 255 - mean) / std",
        "output": "logits: NxCxHxW float32 (class scores at the input size; argmax over C gives the classes)",
        "mean": json.dumps(list(MEAN)),
        "std": json.dumps(list(STD)),
        "weights": "untrained (seeded)" if untrained else "trained",
    }
    if genotype is not None:
        meta["genotype"] = genotype.to_json()
        meta["archid"] = genotype.archid
        meta["space"] = genotype.space
        if genotype.name:
            meta["genotype_name"] = genotype.name
    if source:
        meta["source"] = str(source)
    model = onnx.load_from_string(model_bytes)
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "segnas"
    model.producer_version = __version__
    model.doc_string = (f"segnas {genotype.name or genotype.archid if genotype else 'network'}: "
                        f"{meta['input']} -> {meta['output']}; sizes: {accepted}")
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    atomic_write(path, lambda f: f.write(data), binary=True)

    params_infer = sum(p.numel() for p in infer.parameters())
    aux = getattr(net, "aux_heads", None)
    params_net = sum(p.numel() for p in net.parameters()) - \
        (sum(p.numel() for p in aux.parameters()) if isinstance(aux, nn.Module) else 0)
    return {
        "path": str(path),
        "format": "onnx",
        "opset": opset,
        "input_size": [h, w],
        "accepted_sizes": accepted,
        "size_divisor": divisor,
        "sizes_probed": tried,
        "dynamic_batch": True,
        "dynamic_hw": divisor is not None,
        "num_classes": classes,
        "max_abs_diff": diff_f,
        "max_abs_diff_original": diff_o,
        "argmax_agreement": agree_o,
        "argmax_agreement_folded": agree_f,
        "images": int(sum(b.shape[0] for b in batches)),
        "params": params_net,
        "params_folded": params_infer,
        "batchnorms": count_batchnorms(net) - (count_batchnorms(aux) if isinstance(aux, nn.Module) else 0),
        "batchnorms_left": count_batchnorms(infer),
        "untrained": untrained,
        "bytes": len(data),
        "metadata": meta,
    }

