"""kill -9 campaign: every command killed at many points, continued, and compared with an unbroken run.

For each scenario (a retrain, each one-shot search and its strategies, the multi-trial searches, a
latency-table build) an unbroken reference run counts its events (training steps, atomic writes
and their renames, metrics appends, latency timings; ``benchmarks/killpoints.py``). Each kill point
is then a fresh run that SIGKILLs itself just before the N-th event of one kind, continued the way a
user would (``--resume`` where a checkpoint exists, else the same command again), and compared
with the reference: every checkpoint tensor, every genotype, ``result.json`` and ``metrics.jsonl``
(wall-clock fields and the run folder's own path aside). A latency table's timings differ from run
to run by nature: its comparison is the set of entries and the calibration networks.

    python benchmarks/kill_campaign.py --json benchmarks/results/kill_campaign.json
    python benchmarks/kill_campaign.py --quick     # two scenarios, a few points (pipeline check)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write  # noqa: E402

HERE = Path(__file__).parent
VOLATILE = {"wall_s", "images_per_s", "seconds", "search_s", "retrain_s", "elapsed_s", "argv", "path"}
COMMON = ["--preset", "tiny", "--quiet", "--threads", "1"]


@dataclass
class Scenario:
    name: str
    argv: list[str]  # with "{out}" where the output goes
    kinds: tuple[str, ...] = ("step", "rename", "write", "log")
    fractions: tuple[float, ...] = (0.5,)  # where in each kind's count the kills go
    step_fractions: tuple[float, ...] = (0.3, 0.7)
    table: bool = False  # a latency table: compare its entries, not its timings
    needs: list[str] = field(default_factory=list)  # scenarios whose output this one reads
    extra: tuple[str, ...] = ("rename@last.pt:1", "rename@last.pt:2")  # checkpoint written, not yet renamed


def scenarios(work: Path) -> list[Scenario]:
    lut = str(work / "latency-build-fasterseg" / "reference" / "table.json")  # that scenario's unbroken table
    return [
        Scenario("retrain-fasterseg", ["retrain", "fasterseg", "--out", "{out}", *COMMON]),
        Scenario("latency-build-fasterseg", ["latency", "build", "--space", "fasterseg", "--input", "64x64",
                                             "--repeats", "1", "--out", "{out}/table.json", *COMMON],
                 kinds=("latency", "rename"), fractions=(0.25, 0.75), table=True, extra=()),
        Scenario("search-fasterseg", ["search", "fasterseg", "--lut", lut, "--deploy-size", "64x64",
                                      "--out", "{out}", *COMMON], needs=["latency-build-fasterseg"]),
        Scenario("search-autodeeplab", ["search", "autodeeplab", "--out", "{out}", *COMMON]),
        Scenario("search-dcnas", ["search", "dcnas", "--out", "{out}", *COMMON]),
        Scenario("search-dots", ["search", "dots", "--out", "{out}", *COMMON], step_fractions=(0.2, 0.45, 0.7, 0.95)),
        Scenario("search-autodeeplab-dots", ["search", "autodeeplab", "--strategy", "dots", "--out", "{out}",
                                             *COMMON], kinds=("step", "rename")),
        Scenario("search-nekrasov-ppo", ["search", "nekrasov", "--out", "{out}", *COMMON]),
        Scenario("search-dcnas-random", ["search", "dcnas", "--strategy", "random", "--out", "{out}", *COMMON],
                 kinds=("step", "rename")),
    ]


def run(argv: list[str], point: str) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(HERE / "killpoints.py"), point, "--", *argv], env=env,
                          capture_output=True, text=True)
    if proc.returncode not in (0, -9):
        print(proc.stderr[-2000:], file=sys.stderr)
    return proc.returncode


def fill(argv: list[str], out: Path) -> list[str]:
    return [a.replace("{out}", str(out)) for a in argv]


def continue_argv(sc: Scenario, out: Path) -> list[str]:
    """How a user continues: --resume where a checkpoint exists, else the same command again."""
    if (out / "checkpoints" / "last.pt").is_file():
        head = sc.argv[:2] if sc.argv[0] == "search" else sc.argv[:1]
        return [*head, "--out", str(out), "--resume", "--quiet", "--threads", "1"]
    return fill(sc.argv, out)


# -- comparison ----------------------------------------------------------------------------------------

def same(a: Any, b: Any, where: str, diffs: list[str]) -> None:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and torch.equal(a, b)):
            diffs.append(where)
    elif isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key in VOLATILE:
                continue
            if key not in a or key not in b:
                diffs.append(f"{where}.{key} (missing)")
            else:
                same(a[key], b[key], f"{where}.{key}", diffs)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            diffs.append(f"{where} (length)")
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]", diffs)
    elif a != b and not (isinstance(a, float) and isinstance(b, float) and a != a and b != b):
        diffs.append(where)


def _json(path: Path, run: Path) -> Any:
    return json.loads(path.read_text().replace(str(run), "<RUN>"))


def compare(ref: Path, got: Path, table: bool) -> list[str]:
    diffs: list[str] = []
    if table:
        a, b = _json(ref / "table.json", ref), _json(got / "table.json", got)
        if sorted(a["entries"]) != sorted(b["entries"]):
            diffs.append("entries")
        if a["calibration"]["networks"] != b["calibration"]["networks"]:
            diffs.append("calibration.networks")
        return diffs
    names = sorted({p.relative_to(ref).as_posix() for p in ref.rglob("*") if p.is_file()}
                   | {p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()})
    for name in names:
        if name.startswith("tb/") or name.endswith((".png", ".csv", ".md")) or name == "env.json":
            continue  # TensorBoard events and drawings carry times; env.json the command line
        pa, pb = ref / name, got / name
        if not (pa.is_file() and pb.is_file()):
            diffs.append(f"{name} (only in {'reference' if pa.is_file() else 'resumed run'})")
        elif name.endswith(".pt"):
            load = lambda p: torch.load(p, map_location="cpu", weights_only=True)  # noqa: E731
            same(load(pa), load(pb), name, diffs)
        elif name.endswith(".json"):
            same(_json(pa, ref), _json(pb, got), name, diffs)
        elif name.endswith(".jsonl"):
            rows = [[json.loads(line) for line in p.read_text().replace(str(r), "<RUN>").splitlines() if line]
                    for p, r in ((pa, ref), (pb, got))]
            same(rows[0], rows[1], name, diffs)
        elif name.endswith((".yaml", ".txt")):
            if pa.read_text().replace(str(ref), "<RUN>") != pb.read_text().replace(str(got), "<RUN>"):
                diffs.append(name)
    return diffs


# -- the campaign ------------------------------------------------------------------------------------------

def points_of(sc: Scenario, counts: dict[str, int]) -> list[tuple[str, int]]:
    """Kills at fractions of each kind's count, then the scenario's named points (e.g. a checkpoint's rename)."""
    out = []
    for kind in sc.kinds:
        n = counts.get(kind, 0)
        fractions = sc.step_fractions if kind == "step" else sc.fractions
        for f in fractions:
            if n:
                out.append((kind, max(1, min(n, round(f * n)))))
    out += [(point.rsplit(":", 1)[0], int(point.rsplit(":", 1)[1])) for point in sc.extra]
    return list(dict.fromkeys(out))


def campaign(work: Path, quick: bool, only: list[str] | None) -> dict[str, Any]:
    rows, census = [], {}
    chosen = [sc for sc in scenarios(work) if (only is None or sc.name in only)]
    if quick:
        chosen = [sc for sc in chosen if sc.name in ("retrain-fasterseg", "search-dots")]
    for sc in chosen:
        for need in sc.needs:  # another scenario's reference output this one reads
            if not (work / need / "reference").is_dir():
                dep = next(s for s in scenarios(work) if s.name == need)
                (work / need / "reference").mkdir(parents=True)
                assert run(fill(dep.argv, work / need / "reference"), f"count:{work / need / 'counts.json'}") == 0
        ref = work / sc.name / "reference"
        counts_file = work / sc.name / "counts.json"
        t0 = time.perf_counter()
        if not counts_file.is_file():
            shutil.rmtree(ref, ignore_errors=True)
            ref.mkdir(parents=True)
            code = run(fill(sc.argv, ref), f"count:{counts_file}")
            if code != 0:
                counts_file.unlink(missing_ok=True)
                raise SystemExit(f"{sc.name}: the unbroken run failed ({code})")
        ref_s = time.perf_counter() - t0
        counts = json.loads(counts_file.read_text())
        census[sc.name] = {"events": counts, "reference_s": round(ref_s, 1)}
        points = points_of(sc, counts)[: 2 if quick else None]
        for kind, n in points:
            out = work / sc.name / f"{kind.replace('@', '-')}-{n}"
            if (out / "point.json").is_file():  # done by an earlier invocation: rerunning the script continues
                rows.append(json.loads((out / "point.json").read_text()))
                continue
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            t0 = time.perf_counter()
            killed = run(fill(sc.argv, out), f"{kind}:{n}")
            how = "--resume" if (out / "checkpoints" / "last.pt").is_file() else "rerun"  # as the kill left it
            attempts = []
            while len(attempts) < 3:
                attempts.append(run(continue_argv(sc, out), "count:/dev/null"))
                if attempts[-1] == 0:
                    break
            diffs = compare(ref, out, sc.table) if attempts[-1] == 0 else ["did not finish"]
            row = {"scenario": sc.name, "point": f"{kind}:{n}", "of": counts.get(kind), "killed": killed == -9,
                   "continued_with": how,
                   "continue_codes": attempts, "identical": killed == -9 and not diffs, "differences": diffs[:8],
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            (out / "point.json").write_text(json.dumps(row) + "\n")
            print(f"{sc.name:<26} {kind}:{n:<4} of {counts.get(kind)}: killed={row['killed']} "
                  f"continued={attempts} identical={row['identical']} {diffs[:3] if diffs else ''}", flush=True)
    killed = [r for r in rows if r["killed"]]
    return {"points": len(rows), "killed": len(killed), "identical": sum(r["identical"] for r in rows),
            "scenarios": sorted({r["scenario"] for r in rows}), "census": census, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="runs/kill_campaign", help="folder for the runs (reused: references kept)")
    ap.add_argument("--only", nargs="*", default=None, help="scenario names")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    result = campaign(Path(args.work).absolute(), args.quick, args.only)
    result.update(benchmark="kill_campaign", quick=args.quick, wall_s=time.perf_counter() - t0, machine=machine())
    write(result, args.json)
    print(f"{result['identical']} of {result['points']} kill points finished identical to the unbroken run "
          f"({result['killed']} killed)")


if __name__ == "__main__":
    main()
