"""Latency lookup tables measured on the user's own device.

A table maps an operator instance (name, input size, channels in/out, stride,
and a free ``extra`` field for blocks that need more, such as a second input's
channels) to its measured latency in milliseconds. A space says which
instances it can use and how to build each one (a *probe*); the table only
times and stores them. Latency depends on the device,
the backend, the thread count and the torch version, so a table records them
and refuses to be used where any differs: a stale or foreign table would bias a
search silently. A lookup that misses is an error naming the entry, never a
silent measurement written somewhere (an authors' habit this avoids).
Entries are timed in rounds, each round timing every entry once, and an entry
keeps its fastest round. A shared machine has slow spells lasting seconds
(other tenants of a VM's host, background jobs on a laptop); an entry timed
in one burst inside such a spell comes out slow as a whole, whereas rounds
spread an entry's samples over the whole build, and other processes can only
lengthen a call, never shorten it. Networks are timed the same way
(:func:`interleaved_fastest`), so estimate and measurement mean the same thing.
Each entry is timed with the per-core caches flushed before every call: inside
a network an operator's weights have been evicted by the layers before it, and
timing it hot in isolation underestimates wide operators (benchmarks/lut_fidelity.py).
The other way round, a small network run repeatedly stays cache-resident as a
whole and runs faster than its flushed parts add up to. A table is therefore
*calibrated* once against a few whole networks measured where it was built:
every lookup is scaled by the median measured/summed ratio, so estimates are
in the milliseconds of whole networks on this machine (their fastest rounds;
correlation is unchanged).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from .. import jsonio
from ..errors import SegnasError
from ..fileio import atomic_write_text
from ..ops import make_op
from ..backends import backend_of_table, prepare, table_backend, time_networks, timed_calls
from ..profile import cpu_name

TABLE_FORMAT = 4  # 2: private caches flushed before each call; 3: and the fastest of interleaved rounds;
# 4: entries timed as deployed on a named backend (eager: BatchNorm folded, channels_last, inference mode)
FLUSH_MB = 8.0  # more than the per-core caches of common CPUs, less than their shared cache


def interleaved_fastest(nets: Sequence[nn.Module], input_size: tuple[int, ...], device: str | torch.device = "cpu",
                        rounds: int = 5, threads: int | None = None, backend: str = "eager") -> list[list[float]]:
    """Each round times every network once on ``backend`` (prepared, and warmed up by one call, before the
    first round); returns each network's times (ms).

    Interleaving puts a slow spell of the machine into one round of every
    network rather than into all rounds of one; a network's fastest round is
    then the estimate of its own latency, the statistic table entries use.
    """
    rows = time_networks(nets, input_size, [backend], rounds, threads, device, parity=False)
    for row in rows:
        if row[backend]["error"] is not None:
            raise SegnasError(f"backend {backend}: {row[backend]['error']}")
    return [row[backend]["times_ms"] for row in rows]


def time_entry(module: nn.Module, shapes: list[tuple[int, ...]], backend: str, device: str | torch.device,
               threads: int | None, warmup: int = 1, artifact: Any = None) -> tuple[float, Any]:
    """One table entry's timed call (ms) with the private caches flushed first, and the artifact (compiled
    module, ONNX model) a later round of the same entry reuses."""
    device = torch.device(device)
    # an entry runs in channels_last, the format most networks of the space deploy in; whole networks are timed
    # in their faster format, and calibration against them takes up the difference
    runner = prepare(module, shapes, backend, device, threads, artifact, memory_format="channels_last")
    return timed_calls(runner, 1, threads, warmup, FLUSH_MB)[0], runner.artifact


def _runtime(backend: Any) -> str:
    """A table's backend without the runtime's version: two onnxruntime versions are one backend, rebuilt."""
    return "onnxruntime" if str(backend).startswith("onnxruntime-") else str(backend)


class LatencyMiss(SegnasError):
    """The table has no entry for an operator the caller needs."""


@dataclass(frozen=True)
class OpKey:
    """One measurable operator instance."""

    op: str
    h: int
    w: int
    c_in: int
    c_out: int
    stride: int = 1
    extra: str = ""

    @property
    def id(self) -> str:
        base = f"{self.op}|{self.h}x{self.w}|{self.c_in}->{self.c_out}|s{self.stride}"
        return f"{base}|{self.extra}" if self.extra else base


# a probe builds the module an entry times and the shapes of its inputs
Probe = Callable[[OpKey], tuple[nn.Module, list[tuple[int, ...]]]]


def op_probe(key: OpKey) -> tuple[nn.Module, list[tuple[int, ...]]]:
    """Probe for the shared operators (``segnas.ops.OPS``) on a 1 x c_in x h x w input."""
    return make_op(key.op, key.c_in, key.c_out, key.stride), [(1, key.c_in, key.h, key.w)]


def device_name(device: torch.device) -> str:
    """A name that tells devices of different speed apart (CPU model or GPU name)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{cpu_name()}"


def latency_environment(device: str | torch.device = "cpu", threads: int | None = None,
                        backend: str = "eager") -> dict[str, Any]:
    """The fields a table must agree on with the machine that uses it (``backend``: see ``segnas.backends``)."""
    device = torch.device(device)
    return {"device": device_name(device), "backend": table_backend(backend),
            "threads": int(threads or torch.get_num_threads()), "torch": torch.__version__}


class LatencyTable:
    """Measured operator latencies (ms) for one environment."""

    def __init__(self, environment: dict[str, Any], entries: dict[str, float] | None = None,
                 meta: dict[str, Any] | None = None, calibration: dict[str, Any] | None = None) -> None:
        self.environment = dict(environment)
        self.entries: dict[str, float] = dict(entries or {})
        self.meta = dict(meta or {})
        self.calibration: dict[str, Any] | None = dict(calibration) if calibration else None

    @property
    def scale(self) -> float:
        """Factor applied to every entry: 1 for an uncalibrated table."""
        return float(self.calibration["factor"]) if self.calibration else 1.0

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: OpKey) -> bool:
        return key.id in self.entries

    def lookup(self, key: OpKey) -> float:
        """The entry's latency (ms), calibrated."""
        return self.raw(key) * self.scale

    def total(self, keys: Iterable[OpKey], raw: bool = False) -> float:
        """Sum of the entries of ``keys`` (ms): calibrated, or as timed with ``raw``."""
        summed = float(sum(self.raw(k) for k in keys))
        return summed if raw else summed * self.scale

    def raw(self, key: OpKey) -> float:
        """The entry's latency (ms) as timed, flushed caches and all."""
        try:
            return self.entries[key.id]
        except KeyError:
            raise LatencyMiss(f"latency table has no entry {key.id}; rebuild it for this space and input "
                              "size with 'segnas latency build'") from None

    def build(self, keys: Iterable[OpKey], probe: Probe = op_probe, device: str | torch.device = "cpu",
              warmup: int = 1, repeats: int = 5, progress: bool = False) -> int:
        """Measure every key not yet in the table; returns how many were measured.

        Each of ``repeats`` rounds builds and times every key once (after ``warmup``
        calls) on the table's backend; an entry is its fastest round. Modules are
        rebuilt each round, so a table for a large space never holds all of them
        at once (only a compiled module or ONNX model is kept). The global RNG is
        left as it was, so building a table or loading one leaves a run's
        initialisation the same.
        """
        todo = list(dict.fromkeys(k for k in keys if k not in self))
        backend = backend_of_table(self.environment["backend"])
        keep = backend != "eager"  # a compiled module or ONNX model is made once per entry, not once per round
        artifacts: dict[str, Any] = {}
        times: dict[str, list[float]] = {k.id: [] for k in todo}
        bar = tqdm(total=len(todo) * repeats, disable=not progress, desc="latency table", unit="op",
                   dynamic_ncols=True)
        with torch.random.fork_rng(devices=[]), torch.no_grad(), bar:
            for _ in range(repeats):
                for key in todo:
                    module, shapes = probe(key)
                    ms, artifact = time_entry(module, shapes, backend, device, self.environment["threads"], warmup,
                                              artifacts.get(key.id))
                    times[key.id].append(ms)
                    if keep:
                        artifacts[key.id] = artifact
                    bar.update()
        self.entries.update((k, min(v)) for k, v in times.items())
        return len(todo)

    def calibrate(self, networks: Iterable[tuple[float, Iterable[OpKey]]]) -> dict[str, Any]:
        """Set the factor from whole networks: (measured ms, the entries the network runs) pairs.

        The factor is the median of measured / sum of raw entries, so one odd
        network cannot move it far.
        """
        measured, summed = [], []
        for ms, keys in networks:
            measured.append(float(ms))
            summed.append(self.total(keys, raw=True))
        if not measured or min(summed) <= 0:
            raise SegnasError("latency table calibration needs at least one network with positive entries")
        factor = statistics.median(m / e for m, e in zip(measured, summed))
        self.calibration = {"factor": factor, "networks": len(measured), "measured_ms": measured,
                            "table_sum_ms": summed}
        return self.calibration

    def check_environment(self, expected: dict[str, Any], source: str = "latency table", hint: str = "") -> None:
        """Refuse a table measured elsewhere: name the field that differs and the fix (``hint`` replaces the
        default advice on a different backend, e.g. for a command that builds tables)."""
        for field in ("device", "backend", "threads", "torch"):
            have, want = self.environment.get(field), expected.get(field)
            if have == want:
                continue
            if field == "backend" and _runtime(have) != _runtime(want):
                raise SegnasError(f"{source}: built for backend {have!r} but this run optimises for {want!r}; "
                                  + (hint or "set fasterseg.backend to the table's backend, or rebuild the table "
                                     "with 'segnas latency build --backend ...'"))
            raise SegnasError(f"{source}: measured with {field}={have!r} but this run has {field}={want!r}; "
                              "rebuild the table here with 'segnas latency build'")

    def save(self, path: str | Path) -> Path:
        data = {"format": TABLE_FORMAT, "environment": self.environment, "meta": self.meta,
                "calibration": self.calibration, "entries": dict(sorted(self.entries.items()))}
        return atomic_write_text(path, json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path, expected: dict[str, Any] | None = None, hint: str = "") -> "LatencyTable":
        path = Path(path)
        if not path.is_file():
            raise SegnasError(f"{path}: no such latency table; build one with 'segnas latency build'")
        data = jsonio.read(path, "a latency table (from 'segnas latency build')")
        try:
            if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
                raise ValueError("expected an object with 'format', 'environment' and 'entries'")
            if data.get("format") != TABLE_FORMAT:
                raise ValueError(f"format {data.get('format')!r}; this segnas reads format {TABLE_FORMAT}, "
                                 "whose entries are timed differently")
            for key, typ in (("environment", dict), ("meta", (dict, type(None))), ("calibration", (dict, type(None)))):
                if not isinstance(data.get(key), typ):
                    raise ValueError(f"field '{key}' must be an object")
            bad = next((k for k, v in data["entries"].items()
                        if type(v) not in (int, float) or not 0 <= v < float("inf")), None)
            if bad is not None:
                raise ValueError(f"entry {bad!r} is {data['entries'][bad]!r}, not a latency in ms")
            table = cls(data["environment"], {k: float(v) for k, v in data["entries"].items()}, data.get("meta"),
                        data.get("calibration"))
            factor = table.calibration["factor"] if table.calibration is not None else 1.0
            if type(factor) not in (int, float) or not 0 < factor < float("inf"):
                raise ValueError(f"calibration factor {factor!r} is not a positive number")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise SegnasError(f"{path}: not a segnas latency table ({e}); rebuild it with "
                              "'segnas latency build'") from None
        if expected is not None:
            table.check_environment(expected, str(path), hint)
        return table
