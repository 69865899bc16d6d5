"""Inference backends: a derived network run the way users deploy it, and timed the same way everywhere.

- ``eager``: PyTorch on the inference copy of the network (training-only
  auxiliary heads dropped, eval mode, BatchNorm folded into the convolutions,
  ``segnas.ops.fold``), ``channels_last`` activations and ``torch.inference_mode``;
- ``compile``: that module through ``torch.compile`` (inductor, static shapes);
  the compile time is reported apart, calls are timed after it;
- ``onnxruntime``: that module exported to ONNX in memory (as ``segnas export``
  writes it) and run by an onnxruntime CPU session with the same thread count;
- ``bf16``: ``eager`` under autocast to bfloat16, on devices with native bf16
  (AVX512-BF16 or AMX on CPUs): elsewhere it is emulated, slower than float32,
  and refused with the reason.

Profiles, latency tables and whole-network timings all go through
:func:`prepare` and :func:`timed_call`, so an entry of a table built for a
backend and a network measured on it mean the same thing.
"""

from __future__ import annotations

import copy
import shutil
import time
from contextlib import nullcontext
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, one_line
from .threads import torch_threads
from .ops.fold import inference_copy

BACKENDS = ("eager", "compile", "onnxruntime", "bf16")
ONNX_OPSET = 17
COMPILE_CACHE = 4096  # compiled graphs torch keeps per function: a latency table compiles hundreds of modules
PEAK_CONVS = ((256, 96, 96), (512, 48, 48))  # (channels, H, W) of the 3x3 convolutions the peak is taken from


def parse_backends(text: str | Sequence[str], field_name: str = "--backend") -> list[str]:
    """Backend names from ``eager,onnxruntime`` (or a list), checked; one line naming the bad one otherwise."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    bad = [n for n in names if n not in BACKENDS]
    if bad or not names:
        raise ConfigError(f"{field_name} {','.join(bad) if bad else repr(text)}: choose from {', '.join(BACKENDS)} "
                          "(several separated by commas)")
    return list(dict.fromkeys(names))


def table_backend(backend: str) -> str:
    """The name a latency table records for ``backend`` (with the runtime's version where it is not torch)."""
    if backend == "onnxruntime":
        try:
            import onnxruntime
        except ImportError:
            return "onnxruntime"
        return f"onnxruntime-{onnxruntime.__version__}"
    return {"eager": "pytorch-eager", "compile": "pytorch-compile", "bf16": "pytorch-eager-bf16"}[backend]


def backend_of_table(name: str) -> str:
    """The backend a table's recorded name stands for (inverse of :func:`table_backend`)."""
    if name.startswith("onnxruntime"):
        return "onnxruntime"
    inverse = {"pytorch-eager": "eager", "pytorch-compile": "compile", "pytorch-eager-bf16": "bf16"}
    if name not in inverse:
        raise ConfigError(f"latency table backend {name!r} is unknown; rebuild the table with 'segnas latency build'")
    return inverse[name]


def _cpu_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def unavailable(backend: str, device: str | torch.device = "cpu") -> str | None:
    """None when ``backend`` can run on ``device`` here; else why not (one line, with the fix)."""
    device = torch.device(device)
    if backend == "onnxruntime":
        if device.type != "cpu":
            return f"onnxruntime runs on the CPU here, not on {device}"
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError as e:
            return f"needs the package {e.name}: pip install onnx onnxruntime"
        return None
    if backend == "compile":
        if not torch._dynamo.is_dynamo_supported():
            return "torch.compile is not supported on this Python"
        if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
            return "torch.compile on the CPU needs a C++ compiler (g++ or clang++); none is on the PATH"
        return None
    if backend == "bf16":
        native = torch.cuda.is_bf16_supported() if device.type == "cuda" else _cpu_bf16()
        if not native:
            return ("this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 would be emulated, slower than "
                    "float32") if device.type == "cpu" else f"{device} has no native bf16"
        return None
    if backend == "eager":
        return None
    raise ConfigError(f"backend {backend!r}: choose from {', '.join(BACKENDS)}")


def random_inputs(shapes: Sequence[tuple[int, ...]], device: torch.device, seed: int = 0) -> list[torch.Tensor]:
    """Seeded normal inputs of ``shapes`` on ``device`` (the global RNG is left alone)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return [torch.randn(tuple(s), generator=gen, device=device) for s in shapes]


@dataclass
class Runner:
    """One module prepared for one backend, with its inputs: ``call()`` runs one forward pass."""

    backend: str
    call: Callable[[], Any]
    device: torch.device
    setup_s: float
    artifact: Any = None  # what a later round may reuse instead of preparing again (compiled module, ONNX bytes)
    detail: dict[str, Any] = field(default_factory=dict)

    def output(self) -> torch.Tensor:
        """The first output of one call, as a float32 CPU tensor (for parity checks)."""
        out = self.call()
        if isinstance(out, (tuple, list)):
            out = out[0]
        out = torch.from_numpy(np.asarray(out)) if isinstance(out, np.ndarray) else out
        return out.detach().float().cpu()


MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def deploy_module(net: nn.Module, device: str | torch.device = "cpu", memory_format: str = "channels_last") -> nn.Module:
    """The module users deploy, ready to time: inference copy (BN folded), on ``device``, in ``memory_format``."""
    return inference_copy(net).to(torch.device(device), memory_format=MEMORY_FORMATS[memory_format])


def _as_format(xs: Sequence[torch.Tensor], memory_format: str) -> list[torch.Tensor]:
    return [x.contiguous(memory_format=MEMORY_FORMATS[memory_format]) if x.dim() == 4 else x for x in xs]


def faster_format(net: nn.Module, xs: Sequence[torch.Tensor], device: torch.device,
                  threads: int | None) -> tuple[str, nn.Module]:
    """The memory format this network runs faster in here, with its deployed module. ``channels_last`` suits
    most convolutional networks on CPUs (oneDNN's blocked kernels skip reorders), but not all: a decoder of
    large dilated depthwise convolutions at 1024x2048 ran 1.9x slower in it. Each format is timed once after a
    warm-up call; the faster is kept."""
    best: tuple[float, str, nn.Module] | None = None
    for name in MEMORY_FORMATS:
        module, inputs = deploy_module(net, device, name), _as_format(xs, name)
        with torch_threads(threads), torch.inference_mode():
            module(*inputs)
            _sync(device)
            t0 = time.perf_counter()
            module(*inputs)
            _sync(device)
            seconds = time.perf_counter() - t0
        if best is None or seconds < best[0]:
            best = (seconds, name, module)
    return best[1], best[2]


def prepare(net: nn.Module, shapes: Sequence[tuple[int, ...]], backend: str = "eager",
            device: str | torch.device = "cpu", threads: int | None = None, artifact: Any = None,
            seed: int = 0, memory_format: str = "auto") -> Runner:
    """``net`` on ``backend`` with seeded inputs of ``shapes``, after one warm-up call (a compile happens there).

    ``memory_format`` (PyTorch backends): ``channels_last``, ``contiguous``, or ``auto``, the faster of the two
    here (:func:`faster_format`). ``artifact`` is a previous :class:`Runner`'s, for the same module: a
    compiled module or ONNX model is then reused rather than made again (latency tables time every entry in
    several rounds).
    """
    device = torch.device(device)
    reason = unavailable(backend, device)
    if reason is not None:
        raise ConfigError(f"backend {backend}: {reason}")
    xs = random_inputs(shapes, device, seed)
    t0 = time.perf_counter()
    if backend == "onnxruntime":
        from .onnx_runtime import onnx_bytes, ort_session

        if artifact is None:
            names = [f"input{i}" for i in range(len(xs))]
            artifact = onnx_bytes(inference_copy(net).to("cpu"), [x.cpu() for x in xs], names, ["output"],
                                  opset=ONNX_OPSET)
        session = ort_session(artifact, threads)
        feeds = {i.name: x.cpu().numpy() for i, x in zip(session.get_inputs(), xs)}
        runner = Runner(backend, lambda: session.run(None, feeds), device, 0.0, artifact,
                        {"opset": ONNX_OPSET, "session_threads": session.get_session_options().intra_op_num_threads})
    else:
        if artifact is None:
            if memory_format == "auto":
                memory_format, module = faster_format(net, xs, device, threads)
            else:
                module = deploy_module(net, device, memory_format)
            artifact = (torch.compile(module, dynamic=False, fullgraph=True) if backend == "compile" else module,
                        memory_format)
        model, memory_format = artifact
        xs = _as_format(xs, memory_format)

        def call() -> Any:
            with torch.inference_mode():
                if backend == "bf16":
                    with torch.autocast(device.type, dtype=torch.bfloat16):
                        return model(*xs)
                return model(*xs)

        runner = Runner(backend, call, device, 0.0, artifact, {"memory_format": memory_format})
    # the first call compiles (compile backend): many modules of one class (a latency table's entries) each
    # need their own graph, past torch's default limit, and hitting the limit must fail, not fall back to eager
    limits = torch._dynamo.config.patch(recompile_limit=COMPILE_CACHE, accumulated_recompile_limit=COMPILE_CACHE,
                                        fail_on_recompile_limit_hit=True) if backend == "compile" else nullcontext()
    with torch_threads(threads), limits:
        runner.call()
        _sync(device)
    runner.setup_s = time.perf_counter() - t0
    return runner


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_call(runner: Runner, threads: int | None = None, scratch: torch.Tensor | None = None) -> float:
    """Milliseconds of one call of ``runner``; ``scratch`` (if given) is overwritten first, untimed, so the
    call's weights and inputs come from the shared cache or memory rather than the private caches."""
    with torch_threads(threads):
        if scratch is not None:
            scratch.add_(1.0)
            _sync(runner.device)
        t0 = time.perf_counter()
        runner.call()
        _sync(runner.device)
        return (time.perf_counter() - t0) * 1000.0


def timed_calls(runner: Runner, repeats: int, threads: int | None = None, warmup: int = 1,
                flush_mb: float = 0.0) -> list[float]:
    """Milliseconds of ``repeats`` calls of ``runner`` after ``warmup`` calls in all (:func:`prepare`'s one
    included); ``flush_mb`` > 0 overwrites a buffer of that size before each, untimed (see :func:`timed_call`)."""
    for _ in range(warmup - 1):
        runner.call()
    scratch = torch.zeros(int(flush_mb * 2**18), device=runner.device) if flush_mb > 0 else None
    return [timed_call(runner, threads, scratch) for _ in range(repeats)]


def reference_output(net: nn.Module, shapes: Sequence[tuple[int, ...]], device: str | torch.device = "cpu",
                     seed: int = 0) -> torch.Tensor:
    """The network's own float32 output in eval mode (a copy on ``device``; ``net`` is left as it is) on
    :func:`prepare`'s inputs: what every backend must give."""
    device = torch.device(device)
    ref = copy.deepcopy(net).to(device).eval()
    with torch.inference_mode():
        out = ref(*random_inputs(shapes, device, seed))
    out = out[0] if isinstance(out, (tuple, list)) else out
    return out.detach().float().cpu()


def compare_outputs(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Max absolute difference and the fraction of pixels with the same argmax over classes (dim 1)."""
    if out.shape != ref.shape:
        return {"max_abs_diff": float("inf"), "argmax_agreement": 0.0}
    agree = float((out.argmax(1) == ref.argmax(1)).float().mean()) if ref.dim() >= 2 and ref.numel() else 1.0
    return {"max_abs_diff": float((out - ref).abs().max()) if ref.numel() else 0.0, "argmax_agreement": agree}


def time_networks(nets: Sequence[nn.Module], input_size: tuple[int, ...], backends: Sequence[str] = ("eager",),
                  rounds: int = 5, threads: int | None = None, device: str | torch.device = "cpu",
                  flops: Sequence[int | None] | None = None, parity: bool = True) -> list[dict[str, dict[str, Any]]]:
    """Latency of each network on each backend: the fastest of ``rounds`` interleaved rounds (each round calls
    every network on every backend once, so a slow spell of the machine hits one round of all rather than all
    rounds of one), with the setup (compile/export) time, parity against the network's own output (``parity``)
    and GFLOP/s where ``flops`` gives the network's FLOPs. Per network, backend -> entry; a backend that cannot
    run a network gets ``latency_ms`` None and its reason in ``error``."""
    device = torch.device(device)
    results: list[dict[str, dict[str, Any]]] = []
    runners: list[tuple[dict[str, Any], Runner]] = []
    for net in nets:
        ref = reference_output(net, [tuple(input_size)], device) if parity else None
        row: dict[str, dict[str, Any]] = {}
        for backend in backends:
            entry: dict[str, Any] = {"latency_ms": None, "error": unavailable(backend, device)}
            row[backend] = entry
            if entry["error"] is not None:
                continue
            try:
                runner = prepare(net, [tuple(input_size)], backend, device, threads)
            except Exception as e:  # a backend that fails on this network is reported, the others still run
                entry["error"] = one_line(e)
                continue
            entry.update(setup_s=runner.setup_s, **runner.detail)
            if ref is not None:
                entry.update(compare_outputs(runner.output(), ref))
            runners.append((entry, runner))
        results.append(row)
    times: list[list[float]] = [[] for _ in runners]
    for _ in range(rounds):
        for i, (_, runner) in enumerate(runners):
            times[i].append(timed_call(runner, threads))
    for (entry, _), ts in zip(runners, times):
        entry.update(latency_ms=min(ts), times_ms=ts, rounds=rounds, threads=int(threads or torch.get_num_threads()))
    for row, f in zip(results, flops or [None] * len(results)):
        for entry in row.values():
            if f is not None and entry["latency_ms"]:
                entry["gflops_per_s"] = f / (entry["latency_ms"] / 1000.0) / 1e9
    return results


def time_backends(net: nn.Module, input_size: tuple[int, ...], backends: Sequence[str] = ("eager",),
                  rounds: int = 5, threads: int | None = None, device: str | torch.device = "cpu",
                  flops: int | None = None) -> dict[str, dict[str, Any]]:
    """:func:`time_networks` of one network: backend -> its entry."""
    return time_networks([net], input_size, backends, rounds, threads, device, [flops])[0]


def peak_gflops(device: str | torch.device = "cpu", threads: int | None = None, rounds: int = 3) -> dict[str, Any]:
    """This machine's attainable convolution throughput: large 3x3 convolutions (``PEAK_CONVS``) on the eager
    backend, the fastest of ``rounds``; the highest GFLOP/s of them is the roofline networks are held to."""
    device = torch.device(device)
    best: dict[str, Any] = {"gflops_per_s": 0.0}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for c, h, w in PEAK_CONVS:
            conv = nn.Conv2d(c, c, 3, padding=1, bias=False, device=device)
            runner = prepare(conv, [(1, c, h, w)], "eager", device, threads, memory_format="channels_last")
            ms = min(timed_call(runner, threads) for _ in range(rounds))
            gflops = 2 * c * c * 9 * h * w / (ms / 1000.0) / 1e9
            if gflops > best["gflops_per_s"]:
                best = {"gflops_per_s": gflops, "conv": f"3x3 conv {c}->{c} at 1x{c}x{h}x{w}", "latency_ms": ms,
                        "rounds": rounds, "threads": int(threads or torch.get_num_threads())}
    return best
