"""Cost profile of a network: parameters, FLOPs and measured latency.

FLOPs come from torch's own ``torch.utils.flop_counter`` (2 FLOPs per
multiply-add); papers in this field report multiply-adds as "FLOPs", so both
are given. Parameters are reported for inference (without training-only
auxiliary heads, the modules under ``aux_heads``) and in total. Latency is
timed on the network as deployed (``segnas.backends``), with the thread count
recorded, because a CPU latency without its thread count is not comparable.
"""

from __future__ import annotations

import copy
import math
import platform
import statistics
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .errors import SegnasError


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo where there is one): latencies only compare on the same model."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def count_params(net: nn.Module, include_aux: bool = False) -> int:
    """Parameters of ``net``; training-only ``aux_heads`` are excluded unless asked for."""
    total = sum(p.numel() for p in net.parameters())
    if include_aux:
        return total
    aux = getattr(net, "aux_heads", None)
    return total - (sum(p.numel() for p in aux.parameters()) if isinstance(aux, nn.Module) else 0)


REAL_COUNT_ELEMENTS = 600_000  # inputs up to about 1x3x360x480 are counted by a real forward pass


def count_flops(net: nn.Module, input_size: tuple[int, ...]) -> int:
    """FLOPs of one inference forward pass. Small inputs run for real on zeros (the count depends on shapes
    only, and a small forward is 10-30x faster than tracing on the meta device, where every operator goes
    through Python); large ones on the meta device, where nothing is computed or allocated."""
    if math.prod(input_size) <= REAL_COUNT_ELEMENTS:
        was_training = net.training
        param = next(net.parameters(), None)
        x = torch.zeros(input_size, device=param.device if param is not None else "cpu")
        try:
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                net.eval()(x)
        finally:
            net.train(was_training)
        return int(counter.get_total_flops())
    meta = copy.deepcopy(net).to("meta").eval()
    x = torch.empty(input_size, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(x)
    return int(counter.get_total_flops())


def measure_latency(net: nn.Module, input_size: tuple[int, ...] | list[tuple[int, ...]],
                    device: str | torch.device = "cpu", warmup: int = 3, repeats: int = 10,
                    threads: int | None = None, flush_mb: float = 0.0, backend: str = "eager") -> dict[str, Any]:
    """Median wall-clock latency (ms) of ``net`` as deployed on ``backend`` (``segnas.backends``: for
    ``eager``, BN folded, its faster memory format, inference mode) on ``device``.

    ``input_size`` is one shape, or a list of shapes for a module taking several inputs.
    ``flush_mb`` > 0 overwrites a buffer of that size before every call (not timed), so the
    module's weights and input come from the shared cache or memory, as they do when it runs
    inside a network after other layers, not from the private caches a repeated call keeps hot.
    """
    from .backends import prepare, timed_calls

    device = torch.device(device)
    shapes = input_size if isinstance(input_size, list) else [input_size]
    runner = prepare(net, [tuple(s) for s in shapes], backend, device, threads)
    times = timed_calls(runner, repeats, threads, warmup, flush_mb)
    return {"latency_ms": statistics.median(times), "latency_min_ms": min(times), "latency_repeats": repeats,
            "warmup": max(1, warmup), "threads": int(threads or torch.get_num_threads()), "device": str(device),
            "backend": backend, **runner.detail, "flush_mb": flush_mb}


def profile(net: nn.Module, input_size: tuple[int, ...] = (1, 3, 1024, 2048), latency: bool = True,
            device: str | torch.device = "cpu", rounds: int = 10, threads: int | None = None,
            backend: str = "eager") -> dict[str, Any]:
    """Parameters, FLOPs, multiply-adds and (optionally) the latency at ``input_size`` on ``backend``: the
    fastest of ``rounds`` timed calls after a warm-up, the statistic ``segnas profile`` and latency tables use."""
    flops = count_flops(net, tuple(input_size))
    out: dict[str, Any] = {
        "input_size": list(input_size),
        "params": count_params(net),
        "params_with_aux": count_params(net, include_aux=True),
        "flops": flops,
        "macs": flops // 2,
        "torch": torch.__version__,
    }
    if latency:
        from .backends import time_backends

        entry = time_backends(net, tuple(input_size), [backend], rounds, threads, device, flops)[backend]
        if entry["error"] is not None:
            raise SegnasError(f"backend {backend}: {entry['error']}")
        out.update(backend=backend, device=str(torch.device(device)), **entry)
    return out
