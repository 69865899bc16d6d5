"""Latency of every zoo entry on every inference backend, against the eager inference of a reference commit.

For each input size and zoo entry (19 classes, seed-0 weights, no training-only
heads) the script times, in interleaved rounds (each round calls every
candidate once; a candidate keeps its fastest round):

- ``reference``: the network as the reference commit built and timed it
  (default: ``6b4d45a``, the last commit before this deployment work): that
  commit's ``segnas`` package, extracted with ``git archive`` and imported in
  this process as ``segnas_ref``, its network given the same weights, timed by
  its own ``profile.measure_latency`` (eval, ``no_grad``, contiguous);
- each backend of ``segnas.backends`` (eager: BatchNorm folded, channels_last,
  inference mode; compile; onnxruntime; bf16 where the CPU has it).

It records GFLOP/s against this machine's peak (large 3x3 convolutions,
measured before and after, the higher kept), the setup time of each backend
(compile, export), and each backend's max |diff| and argmax agreement against
the network's own eager output. Targets (issue 24): the zoo FasterSeg at
1024x2048 on eager <= 0.8x the reference, onnxruntime <= 0.5x, the best backend
>= 50% of peak, every output within 1e-4. The JSON is rewritten after each
entry, so a long run leaves its finished rows.

    python benchmarks/zoo_backends.py --json benchmarks/results/zoo_backends_cpu.json \
        [--sizes 360x480,1024x2048] [--entries fasterseg,...] [--backends eager,compile,onnxruntime,bf16] \
        [--rounds 3] [--ref 6b4d45a]
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write  # noqa: E402
from segnas import zoo  # noqa: E402
from segnas.backends import (Runner, compare_outputs, parse_backends, peak_gflops, prepare,  # noqa: E402
                             random_inputs, reference_output, timed_call, unavailable)
from segnas.profile import count_flops, count_params  # noqa: E402
from segnas.spaces import get_space  # noqa: E402

CLASSES = 19
REPO = Path(__file__).resolve().parent.parent


def import_reference(commit: str, where: Path) -> Any:
    """The ``segnas`` package of ``commit`` as the module ``segnas_ref`` (its absolute imports renamed)."""
    tar = subprocess.run(["git", "-C", str(REPO), "archive", commit, "segnas"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=tar, check=True)
    (where / "segnas").rename(where / "segnas_ref")
    for py in (where / "segnas_ref").rglob("*.py"):
        text = py.read_text()
        py.write_text(re.sub(r"\b(from|import) segnas\b", r"\1 segnas_ref", text))
    sys.path.insert(0, str(where))
    return SimpleNamespace(**{sub: importlib.import_module(f"segnas_ref.{sub}") for sub in ("zoo", "spaces", "profile")})


def reference_runner(ref: Any, name: str, net: torch.nn.Module, shape: tuple[int, ...]) -> Runner:
    """The reference commit's network (same weights as ``net``) timed by the reference's own measure_latency."""
    g = ref.zoo.get(name)
    ref_net = ref.spaces.get_space(g.space).build(g, CLASSES, aux=False)
    ref_net.load_state_dict(net.state_dict())
    ref_net.eval()
    x = random_inputs([shape], torch.device("cpu"))[0]
    with torch.no_grad():
        out = ref_net(x)
    out = out[0] if isinstance(out, (tuple, list)) else out

    def call() -> Any:
        return ref.profile.measure_latency(ref_net, shape, "cpu", warmup=0, repeats=1)

    runner = Runner("reference", call, torch.device("cpu"), 0.0)
    runner.output = lambda: out.float()  # type: ignore[method-assign]
    call()
    return runner


def measure(name: str, hw: tuple[int, int], backends: list[str], rounds: int, ref: Any) -> dict[str, Any]:
    g = zoo.get(name)
    torch.manual_seed(0)
    net = get_space(g.space).build(g, CLASSES, aux=False).eval()
    shape = (1, 3, *hw)
    flops = count_flops(net, shape)
    row: dict[str, Any] = {"entry": name, "size": list(hw), "params": count_params(net), "macs": flops // 2,
                           "flops": flops, "backends": {}}
    truth = reference_output(net, [shape])
    runners: dict[str, Runner] = {}
    if ref is not None:
        t0 = time.perf_counter()
        runners["reference"] = reference_runner(ref, name, net, shape)
        row["backends"]["reference"] = {"setup_s": time.perf_counter() - t0,
                                        **compare_outputs(runners["reference"].output(), truth)}
    for b in backends:
        why = unavailable(b)
        if why is not None:
            row["backends"][b] = {"latency_ms": None, "error": why}
            continue
        try:
            runners[b] = prepare(net, [shape], b)
        except Exception as e:  # reported in the row, the other backends go on
            row["backends"][b] = {"latency_ms": None, "error": " ".join(f"{type(e).__name__}: {e}".split())[:300]}
            continue
        row["backends"][b] = {"setup_s": runners[b].setup_s, **compare_outputs(runners[b].output(), truth)}
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, r in runners.items():
            times[k].append(timed_call(r))
    for k, ts in times.items():
        ms = min(ts)
        row["backends"][k].update(latency_ms=ms, times_ms=ts, gflops_per_s=flops / (ms / 1000) / 1e9)
    base = row["backends"].get("reference", {}).get("latency_ms")
    for k, entry in row["backends"].items():
        if base and entry.get("latency_ms"):
            entry["vs_reference"] = entry["latency_ms"] / base
    print(f"{name} {hw[0]}x{hw[1]}: " + ", ".join(
        f"{k} {e['latency_ms']:.1f} ms" + (f" ({e['vs_reference']:.2f}x)" if "vs_reference" in e else "")
        for k, e in row["backends"].items() if e.get("latency_ms")), file=sys.stderr, flush=True)
    return row


def targets(rows: list[dict[str, Any]], peak: float) -> dict[str, Any]:
    fs = next((r for r in rows if r["entry"] == "fasterseg" and r["size"] == [1024, 2048]), None)
    out: dict[str, Any] = {}
    if fs is not None:
        b = fs["backends"]
        timed = {k: e for k, e in b.items() if e.get("latency_ms") and k != "reference"}
        best = max(timed, key=lambda k: timed[k]["gflops_per_s"]) if timed else None
        out["fasterseg_1024x2048"] = {
            "eager_vs_reference": b.get("eager", {}).get("vs_reference"), "eager_target": 0.8,
            "onnxruntime_vs_reference": b.get("onnxruntime", {}).get("vs_reference"), "onnxruntime_target": 0.5,
            "best_backend": best, "best_peak_fraction": timed[best]["gflops_per_s"] / peak if best else None,
            "peak_fraction_target": 0.5}
    diffs = [e["max_abs_diff"] for r in rows for e in r["backends"].values() if "max_abs_diff" in e]
    out["max_abs_diff_all"] = max(diffs) if diffs else None
    out["max_abs_diff_target"] = 1e-4
    out["best_peak_fraction_per_row"] = {
        f"{r['entry']}@{r['size'][0]}x{r['size'][1]}": max(
            (e["gflops_per_s"] / peak for k, e in r["backends"].items() if e.get("latency_ms") and k != "reference"),
            default=None) for r in rows}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="360x480,1024x2048")
    ap.add_argument("--entries", default=",".join(zoo.list()))
    ap.add_argument("--backends", default="eager,compile,onnxruntime,bf16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ref", default="6b4d45a", help="reference commit ('none' to skip)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    backends = parse_backends(args.backends)
    with tempfile.TemporaryDirectory() as tmp:
        ref = None if args.ref == "none" else import_reference(args.ref, Path(tmp))
        peaks = [peak_gflops()]
        result: dict[str, Any] = {"benchmark": "zoo_backends", "machine": machine(), "reference_commit": args.ref,
                                  "rounds": rounds_note(args.rounds), "backends": backends, "rows": []}
        for hw in sizes:
            for name in args.entries.split(","):
                result["rows"].append(measure(name, hw, backends, args.rounds, ref))
                result["peak"] = max(peaks, key=lambda p: p["gflops_per_s"])
                result["targets"] = targets(result["rows"], result["peak"]["gflops_per_s"])
                if args.json:
                    write(result, args.json)
        peaks.append(peak_gflops())
        result["peak"] = max(peaks, key=lambda p: p["gflops_per_s"])
        result["peaks_measured"] = [p["gflops_per_s"] for p in peaks]
        result["targets"] = targets(result["rows"], result["peak"]["gflops_per_s"])
        write(result, args.json)
    return 0


def rounds_note(rounds: int) -> str:
    return f"fastest of {rounds} interleaved rounds (one call of every candidate per round) after one warm-up call"


if __name__ == "__main__":
    sys.exit(main())
