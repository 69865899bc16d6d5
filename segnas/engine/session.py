"""One run lifecycle, shared by retraining and every search strategy.

A :class:`RunSession` owns a run folder from start to result: it checks the
folder (a new run never overwrites one, a resume needs a checkpoint), pins the
config's paths, reloads the run's own config on resume (only where it runs may
change), sets the device and thread count (restored on exit), writes
``config.yaml`` and ``env.json``, keeps ``metrics.jsonl`` and TensorBoard in
step with the checkpoint, turns Ctrl-C into a stop between steps, saves
checkpoints atomically (never a non-finite one) and writes ``result.json``.

Under ``torchrun`` it also joins the processes (``segnas.engine.distributed``): every rank checks
the folder and computes, rank 0 alone writes, and a checkpoint's state is checked to be the same on
every rank before it is written. A divergence (:class:`Diverged`) becomes one line naming the step
and the last good checkpoint (:meth:`RunSession.diverged`).
"""

from __future__ import annotations

import json
import signal
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig, anchored, from_dict, to_dict
from ..config_io import as_saved
from ..errors import ConfigError, SegnasError
from ..threads import torch_threads
from . import distributed
from .checkpoint import atomic_save, load_checkpoint
from .rundir import MetricsLog, environment, prepare_run_dir, write_json, write_yaml


def resolve_device(name: str) -> torch.device:
    """A torch device that exists here, or one ConfigError line naming it and what to use instead."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {name!r} is not a torch device; use {_usable_devices()}") from None
    why = _unusable(device)
    if why is not None:
        raise ConfigError(f"device {name!r}: {why}; use {_usable_devices()}")
    return device


def _count(kind: str) -> int:
    """How many devices of ``kind`` (cuda, xpu, mps) this machine offers."""
    if kind == "cuda":
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        return 1 if mps is not None and mps.is_available() else 0
    if kind == "xpu":
        xpu = getattr(torch, "xpu", None)
        return xpu.device_count() if xpu is not None and xpu.is_available() else 0
    return 0


def _unusable(device: torch.device) -> str | None:
    """Why segnas cannot run on ``device`` here, or None."""
    if device.type == "cpu":
        return None
    if device.type not in ("cuda", "mps", "xpu"):
        return f"segnas does not run on {device.type} devices"
    n = _count(device.type)
    if n == 0:
        return f"no {device.type.upper() if device.type != 'xpu' else 'XPU'} device here" + (
            " (the paper preset assumes a GPU)" if device.type == "cuda" else "")
    if device.index is not None and device.index >= n:
        return f"there {'is' if n == 1 else 'are'} only {n} {device.type} device{'s' * (n != 1)} here " \
               f"({device.type}:0..{device.type}:{n - 1})"
    return None


def _usable_devices() -> str:
    """The --device values that work here, for messages."""
    found = ["--device cpu"]
    for kind in ("cuda", "mps", "xpu"):
        n = _count(kind)
        if n:
            found.append(f"--device {kind}" + (f" (or {kind}:0..{kind}:{n - 1})" if n > 1 else ""))
    return " or ".join(found)


def resumed_config(ckpt: dict[str, Any], overrides: dict[str, Any] | None, what: str = "run",
                   sections: dict[str, Any] | None = None) -> RunConfig:
    """The checkpoint's own config; a resume may change only where it runs (device, threads).

    ``sections``: the config sections of the run's method and strategy (a search's).
    """
    sections = sections or {}
    cfg = from_dict(as_saved(ckpt["config"], sections), sections)
    for key, value in (overrides or {}).items():
        if key not in ("device", "threads"):
            raise ConfigError(f"--resume continues the {what} with its own config; '{key}' cannot change "
                              "(only --device and --threads can)")
        setattr(cfg, key, value)
    return cfg


class Diverged(SegnasError):
    """A loss or weight became NaN or infinite at ``step``; the run that owns a folder names its last good
    checkpoint (:meth:`RunSession.diverged`)."""

    def __init__(self, step: int, detail: str, hint: str = "") -> None:
        self.step, self.detail = step, detail
        super().__init__(f"diverged at step {step}: {detail}" + (f"; {hint}" if hint else ""))


def non_finite(obj: Any) -> str | None:
    """The path of the first floating tensor in ``obj`` (a nested payload) holding NaN or infinity, else None."""
    return next((name for name, t in distributed.named_tensors(obj)
                 if t.is_floating_point() and not bool(torch.isfinite(t).all())), None)


class RunSession:
    """A run folder for the duration of a ``with`` block (see the module docstring).

    ``required``: the checkpoint entries a resume needs; ``sections``: the method's and
    strategy's config sections (searches); ``what`` names the run in messages.
    """

    def __init__(self, out: str | Path, cfg: RunConfig, resume: bool = False,
                 resume_overrides: dict[str, Any] | None = None, required: tuple[str, ...] = ("model", "genotype"),
                 sections: dict[str, Any] | None = None, what: str = "run") -> None:
        if distributed.is_main() or resume or Path(out).exists():
            self.run = prepare_run_dir(out, resume)  # checked on every rank, created by rank 0 alone
        else:
            self.run = Path(out)
        self.cfg = anchored(cfg)
        self.ckpt = load_checkpoint(self.run / "checkpoints" / "last.pt", required) if resume else None
        if self.ckpt is not None:
            self.cfg = resumed_config(self.ckpt, resume_overrides, what, sections)
        self.what = what
        self.log: MetricsLog | None = None
        self.writer: Any = None
        self.stop = threading.Event()
        self._stack = ExitStack()
        # the last checkpoint written (or resumed from) and its step: what a divergence message points to
        self.last_good: tuple[Path, int] | None = None
        if self.ckpt is not None:
            self.last_good = (self.run / "checkpoints" / "last.pt", int(self.ckpt.get("step", 0)))
        self.resume_command = "--resume"  # the run's own command continuing it (set by the run)

    def expect(self, method: str, strategy: str, default_strategy: str | None = None) -> None:
        """Refuse to resume a search of another method or strategy (``default_strategy``: what a run
        saved before strategies were recorded ran)."""
        saved = (self.ckpt.get("method"), self.ckpt["config"].get("strategy") or default_strategy)
        if saved != (method, strategy):
            raise ConfigError(f"{self.run}: this is a {saved[0]} search with strategy {saved[1]}, not {method} "
                              f"with {strategy}; resume it with its own method, or start a new --out")

    def finished(self) -> dict[str, Any] | None:
        """The result of a run that already ended (a resume then has nothing to do), else None."""
        path = self.run / "result.json"
        return json.loads(path.read_text()) if self.ckpt is not None and path.is_file() else None

    def __enter__(self) -> "RunSession":
        self.device = distributed.local_device(resolve_device(self.cfg.device))  # before anything to undo
        self._stack.enter_context(distributed.process_group(self.device))
        self._stack.enter_context(torch_threads(self.cfg.threads))
        self.stop = self._stack.enter_context(stop_requests())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.writer is not None:
            self.writer.close()
        self._stack.close()

    @property
    def main(self) -> bool:
        """Whether this process writes the run folder (always, but under torchrun rank 0 alone)."""
        return distributed.is_main()

    def begin(self) -> None:
        """Write the config and environment of a new run (nothing on resume: they are the run's own)."""
        if self.ckpt is None:
            def write() -> None:
                write_yaml(self.run / "config.yaml", to_dict(self.cfg))
                write_json(self.run / "env.json", {**environment(self.cfg.seed, str(self.device)),
                                                   **distributed.describe()})
            distributed.on_main(write)

    def open_logs(self, step: int) -> None:
        """``metrics.jsonl`` and TensorBoard, continued from ``step`` (the checkpoint's; 0 for a new run);
        under torchrun rank 0's, the other ranks' logs write nothing."""
        if not self.main:
            self.log, self.writer = _NullLog(), _NullWriter()
            return
        # a fresh run drops whatever a failed earlier start logged; a resumed one what came after its checkpoint
        self.log = MetricsLog(self.run / "metrics.jsonl", resume_step=step if self.ckpt is not None else -1)
        self.writer = tensorboard(self.run / "tb", purge_step=step + 1)

    def save(self, payload: dict[str, Any], name: str = "last.pt") -> Path:
        """Write ``checkpoints/<name>`` atomically; a state holding NaN or infinity is refused, never saved.

        Under torchrun every rank calls it: the state is checked to be the same on every rank, rank 0
        writes it, and the others wait for the write (so they stay in step)."""
        bad = non_finite(payload)
        if bad is not None:
            raise self.diverged(Diverged(int(payload.get("step", -1)), f"{bad} is not finite; nothing was saved"))
        path = self.run / "checkpoints" / name
        if distributed.active():
            distributed.check_identical([(k, t) for k, t in distributed.named_tensors(payload)
                                         if not k.endswith("_rng")], f"{self.run}: checkpoint {name}")
        distributed.on_main(lambda: atomic_save(payload, path))
        if name == "last.pt" and "step" in payload:
            self.last_good = (path, int(payload["step"]))
        return path

    def diverged(self, err: Diverged) -> SegnasError:
        """One line: where the run diverged and what it can continue from (the last good checkpoint)."""
        head = f"{self.run}: the {self.what} diverged at step {err.step} ({err.detail})"
        if self.last_good is None:
            return SegnasError(f"{head}; there is no checkpoint yet: start again with a lower learning rate")
        path, step = self.last_good
        return SegnasError(f"{head}; the last good checkpoint is {path} (step {step}): '{self.resume_command}' "
                           "continues from it (the run is seeded: if it diverges again, start a new run with a "
                           "lower learning rate)")

    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """Write ``result.json`` (rank 0) with the process layout; every rank returns the result."""
        result = {**result, **distributed.describe()}
        distributed.on_main(lambda: write_json(self.run / "result.json", result))
        return result


@contextmanager
def stop_requests():
    """Turn the first Ctrl-C into a request to stop after the current step; a second one stops at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request(signum, frame):
        stop.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


class _NullLog:
    """The metrics log of a rank that is not rank 0: writes nothing."""

    def write(self, record: dict[str, Any]) -> None:
        pass

    def read(self) -> list[dict[str, Any]]:
        return []


class _NullWriter:
    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def tensorboard(path: Path, purge_step: int | None):
    """TensorBoard scalars when the package is installed; a no-op writer otherwise."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard missing or broken: training must not depend on it
        return _NullWriter()
    return SummaryWriter(str(path), purge_step=purge_step)
