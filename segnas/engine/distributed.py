"""Data-parallel runs under ``torchrun``: one process per device, each its share of every global batch.

``torchrun --nproc_per_node=N -m segnas search|retrain ...`` starts N copies of the
command; :class:`~segnas.engine.session.RunSession` calls :func:`process_group`, which
joins them in a process group (gloo on the CPU, nccl on CUDA) when the environment
says there are several (``WORLD_SIZE`` > 1). Everything here is then collective:
every rank must call it at the same point. In a single process (no ``torchrun``) every
function is a no-op that returns at once, so the same code runs both ways.

The design keeps the single-process run's arithmetic: the seeded global batch is cut into
contiguous per-rank slices (:func:`shard`), gradients are averaged after backward
(:func:`average_gradients`: with each rank's loss the mean over its equal slice, the average
is the gradient of the global batch's loss), and state that must agree is checked, not
assumed (:func:`check_identical`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError, SegnasError

T = TypeVar("T")


def launched() -> bool:
    """Whether this process is one of several started by ``torchrun`` (or another launcher setting WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Whether a process group of more than one process is up (collectives then do something)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank: the process group's, else the launcher's ``RANK`` (0 in a single process)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world_size() -> int:
    """Processes sharing each global batch (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes the run folder and prints progress."""
    return rank() == 0


def backend() -> str | None:
    return dist.get_backend() if active() else None


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each process takes its own GPU (``LOCAL_RANK``) when ``device`` names no index."""
    if launched() and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Join the torchrun processes (gloo for the CPU, nccl for CUDA) for the duration of the block;
    a group someone else set up is used and left alone; without torchrun nothing happens."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        yield
        return
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch has no torch.distributed; run a single process")
    name = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    minutes = float(os.environ.get("SEGNAS_DIST_TIMEOUT_MIN", "30"))
    dist.init_process_group(name, timeout=timedelta(minutes=minutes),
                            **({"device_id": device} if device.type == "cuda" else {}))
    try:
        yield
    finally:
        dist.destroy_process_group()


def check_batch(batch_size: int, key: str) -> None:
    """A global batch that every process can take an equal share of, or one ConfigError naming the fix."""
    w = world_size()
    if batch_size % w:
        raise ConfigError(f"{key} {batch_size} does not divide among the {w} processes of this torchrun; set "
                          f"{key} to a multiple of {w} (it stays the global batch) or change --nproc_per_node")


def shard(items: Sequence[Any], key: str = "the batch size") -> Sequence[Any]:
    """This rank's contiguous slice of one global batch (the whole batch in a single process)."""
    w = world_size()
    if w == 1:
        return items
    check_batch(len(items), key)
    b = len(items) // w
    r = rank()  # world_size() > 1: a process group is up
    return items[r * b:(r + 1) * b]


def eval_share(n: int) -> range:
    """The indices of an ``n``-image evaluation set this rank scores (contiguous, sizes differing by at most 1);
    all of them outside a process group (e.g. ``segnas evaluate`` started by torchrun)."""
    w, r = world_size(), (rank() if active() else 0)
    return range(r * n // w, (r + 1) * n // w)


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of ``params`` over the processes: one flat buffer, one all_reduce.

    Every rank must hold gradients for the same parameters (the same graph and, through the shared
    seeds, the same random draws); parameters without a gradient are left without one, as in a single
    process."""
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(dist.get_world_size())
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def broadcast_tensors(tensors: Iterable[torch.Tensor]) -> None:
    """Overwrite ``tensors`` in place with rank 0's (parameters at the start, BatchNorm statistics before
    an evaluation: without sync_bn each rank's running statistics saw only its own slices)."""
    if not active():
        return
    for t in tensors:
        dist.broadcast(t.data, 0)


def broadcast_module(module: nn.Module) -> None:
    """Rank 0's parameters and buffers in ``module`` on every rank."""
    broadcast_tensors(list(module.parameters()) + [b for b in module.buffers() if b is not None])


def broadcast_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm statistics) in ``module`` on every rank."""
    broadcast_tensors([b for b in module.buffers() if b is not None])


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` (picklable) on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, 0)
    return box[0]


def on_main(write: Callable[[], T]) -> T | None:
    """Run ``write`` on rank 0 alone and keep every rank in step with it: a failure there (a full disk, a
    bad file) is raised on every rank as the same one line, so no process waits for ever in a collective."""
    if not active():
        return write()
    result, error, failure = None, None, None
    if is_main():
        try:
            result = write()
        except Exception as e:  # shared first, then raised: the other ranks must not wait for ever
            failure, error = e, str(e) if isinstance(e, SegnasError) else f"process 0 failed: {type(e).__name__}: {e}"
    error = broadcast_object(error)
    if failure is not None:
        raise failure
    if error is not None:
        raise SegnasError(error)
    return result


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over the processes, in place (a confusion matrix of a sharded evaluation)."""
    if active():
        dist.all_reduce(tensor)
    return tensor


def step_flags(losses: dict[str, torch.Tensor], stop: bool) -> tuple[dict[str, torch.Tensor], bool, bool]:
    """(losses averaged over the processes, all finite, stop requested on any process): one small
    all_reduce and one host sync per step, so every rank takes the same decision on the same step."""
    device = next((v.device for v in losses.values() if isinstance(v, torch.Tensor)), torch.device("cpu"))
    values = [torch.as_tensor(v, device=device).detach().reshape(-1).float() for v in losses.values()]
    flat = torch.cat(values + [torch.tensor([float(stop)], device=device)])
    if active():
        dist.all_reduce(flat)
        flat.div_(dist.get_world_size())
    summary = torch.stack([torch.isfinite(flat[:-1]).all().float(), flat[-1]]).tolist()
    out, offset = {}, 0
    for key, v in zip(losses, values):
        out[key] = flat[offset:offset + v.numel()].reshape(torch.as_tensor(losses[key]).shape)
        offset += v.numel()
    return out, summary[0] == 1.0, summary[1] > 0


def agree(flag: bool) -> bool:
    """True on every rank when it is true on any (a stop request seen by one process)."""
    if not active():
        return flag
    t = torch.tensor([float(flag)])
    if dist.get_backend() == "nccl":
        t = t.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(t)
    return bool(t.item() > 0)


def barrier() -> None:
    if active():
        dist.barrier()


_INT_OF = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def fingerprint(t: torch.Tensor) -> torch.Tensor:
    """Two int64 numbers that change with any bit of ``t``: the sum and a position-weighted sum of its bits
    read as integers (exact arithmetic, so equal tensors give equal numbers on every rank)."""
    flat = t.detach().reshape(-1)
    if flat.is_floating_point():
        flat = flat.view(_INT_OF[flat.element_size()])
    x = flat.to(torch.int64)
    w = torch.arange(1, x.numel() + 1, device=x.device, dtype=torch.int64) % 1_000_003 + 1
    return torch.stack([x.sum(), (x * w).sum(), torch.tensor(x.numel(), device=x.device)])


def named_tensors(obj: Any, path: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in a nested dict/list (a checkpoint payload), with its path."""
    if isinstance(obj, torch.Tensor):
        return [(path or "tensor", obj)]
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return []
    out: list[tuple[str, torch.Tensor]] = []
    for key, value in items:
        out += named_tensors(value, f"{path}.{key}" if path else str(key))
    return out


def check_identical(named: Sequence[tuple[str, torch.Tensor]], what: str) -> None:
    """Raise a SegnasError naming the first tensor that is not bitwise the same on every rank (all_gather of
    fingerprints). Ranks start equal and apply the same averaged updates; this checks they stayed so."""
    if not active() or not named:
        return
    device = named[0][1].device
    local = torch.stack([fingerprint(t.to(device)) for _, t in named])
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    for other, theirs in enumerate(gathered):
        differs = (theirs != gathered[0]).any(1).nonzero()
        if len(differs):
            name = named[int(differs[0])][0]
            raise SegnasError(f"{what}: {name} differs between rank 0 and rank {other} (the processes drifted "
                              "apart; every process must run the same code on the same devices and versions)")


def describe() -> dict[str, Any]:
    """What env.json and result.json record of the process layout."""
    return {"world_size": world_size(), "backend": backend()}
