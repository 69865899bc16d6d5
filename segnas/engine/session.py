"""One run lifecycle, shared by retraining and every search strategy.

A :class:`RunSession` owns a run folder from start to result: it checks the
folder (a new run never overwrites one, a resume needs a checkpoint), pins the
config's paths, reloads the run's own config on resume (only where it runs may
change), sets the device and thread count (restored on exit), writes
``config.yaml`` and ``env.json``, keeps ``metrics.jsonl`` and TensorBoard in
step with the checkpoint, turns Ctrl-C into a stop between steps, saves
checkpoints atomically (never a non-finite one) and writes ``result.json``.
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
from .checkpoint import atomic_save, load_checkpoint
from .rundir import MetricsLog, environment, prepare_run_dir, write_json, write_yaml


def resolve_device(name: str) -> torch.device:
    """A torch device that exists here, or a ConfigError saying what to use instead."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {name!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: no CUDA GPU here; use --device cpu (the paper preset "
                          "assumes a GPU)")
    return device


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


def non_finite(obj: Any, path: str = "") -> str | None:
    """The path of the first floating tensor in ``obj`` holding NaN or infinity, else None."""
    if isinstance(obj, torch.Tensor):
        return path or "tensor" if obj.is_floating_point() and not bool(torch.isfinite(obj).all()) else None
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for key, value in items:
        found = non_finite(value, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


class RunSession:
    """A run folder for the duration of a ``with`` block (see the module docstring).

    ``required``: the checkpoint entries a resume needs; ``sections``: the method's and
    strategy's config sections (searches); ``what`` names the run in messages.
    """

    def __init__(self, out: str | Path, cfg: RunConfig, resume: bool = False,
                 resume_overrides: dict[str, Any] | None = None, required: tuple[str, ...] = ("model", "genotype"),
                 sections: dict[str, Any] | None = None, what: str = "run") -> None:
        self.run = prepare_run_dir(out, resume)
        self.cfg = anchored(cfg)
        self.ckpt = load_checkpoint(self.run / "checkpoints" / "last.pt", required) if resume else None
        if self.ckpt is not None:
            self.cfg = resumed_config(self.ckpt, resume_overrides, what, sections)
        self.what = what
        self.log: MetricsLog | None = None
        self.writer: Any = None
        self.stop = threading.Event()
        self._stack = ExitStack()

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
        self.device = resolve_device(self.cfg.device)  # before anything that would need undoing
        self._stack.callback(torch.set_num_threads, torch.get_num_threads())
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.stop = self._stack.enter_context(stop_requests())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.writer is not None:
            self.writer.close()
        self._stack.close()

    def begin(self) -> None:
        """Write the config and environment of a new run (nothing on resume: they are the run's own)."""
        if self.ckpt is None:
            write_yaml(self.run / "config.yaml", to_dict(self.cfg))
            write_json(self.run / "env.json", environment(self.cfg.seed, str(self.device)))

    def open_logs(self, step: int) -> None:
        """``metrics.jsonl`` and TensorBoard, continued from ``step`` (the checkpoint's; 0 for a new run)."""
        # a fresh run drops whatever a failed earlier start logged; a resumed one what came after its checkpoint
        self.log = MetricsLog(self.run / "metrics.jsonl", resume_step=step)
        self.writer = tensorboard(self.run / "tb", purge_step=step + 1)

    def save(self, payload: dict[str, Any], name: str = "last.pt") -> Path:
        """Write ``checkpoints/<name>`` atomically; a state holding NaN or infinity is refused, never saved."""
        bad = non_finite(payload)
        if bad is not None:
            raise SegnasError(f"{self.run}: the {self.what} diverged ({bad} is not finite); nothing was saved, "
                              "the last checkpoint stays: lower the learning rate and resume or start again")
        return atomic_save(payload, self.run / "checkpoints" / name)

    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        write_json(self.run / "result.json", result)
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
