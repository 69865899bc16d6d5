"""Searched-minus-random over several CamVid searches: is the +3 mIoU target met across search seeds?

One ``camvid_search.py`` result is one search; its difference from the random
median moves with the search seed as much as with the retrain seed. This reads
several results of the same settings and reports each search's mean difference
(the mean over its retrain seeds of student minus that seed's random
median), their mean, and a bootstrap interval that resamples
searches and then retrain seeds within each, so the spread of both shows.

    python benchmarks/camvid_search_summary.py benchmarks/results/camvid_search_cpu_ab4_r2.json \\
        benchmarks/results/camvid_search_cpu_ab4_s1_r2.json [--json benchmarks/results/camvid_search_cpu_ab4_summary.json]

Two results of the same search (same searched student) are refused: pass the one
with more retrain seeds. Results whose recorded configs differ beyond the seed and the
data and table paths are refused; older results that did not record them are
pooled as given, with a note on stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import machine, write  # noqa: E402
from segnas.config_io import as_saved  # noqa: E402

TARGET = 0.03


def one_search(path: Path) -> dict[str, Any]:
    """A result file's search: its student, settings and per-retrain-seed differences."""
    try:
        data = json.loads(path.read_text())
        student = data["search_final"]["architectures"]["student"]["archid"]
        if data.get("per_seed"):
            diffs = [(s["seed"], s["difference"]) for s in data["per_seed"]]
        else:  # single-seed results before --retrain-seeds
            diffs = [(0, data["searched_minus_random_median"])]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{path}: not a camvid_search.py result ({type(exc).__name__}: {exc}); "
                         "pass the --json files that benchmark wrote") from None
    if data.get("quick"):
        raise SystemExit(f"{path}: a --quick result; pass full runs only")
    if any(d is None for _, d in diffs):
        raise SystemExit(f"{path}: has no random students to compare with; rerun it with --random N")
    settings = None
    if "search_config" in data:
        settings = {"search": comparable(data["search_config"], ("fasterseg",)),
                    "train": comparable(data["train_config"], ())}
    # results from before the path rule was recorded were all decoded by the whole-path product;
    # "joint-down" is the former name of the paper's rule
    rule = data.get("path_rule", "path-product")
    return {"file": str(path), "student": student, "search_seed": data.get("search_seed"), "settings": settings,
            "path_rule": "paper" if rule == "joint-down" else rule,
            "differences": {str(seed): d for seed, d in diffs},
            "mean_difference": statistics.mean(d for _, d in diffs),
            "file_difference": data["searched_minus_random_median"]}


# what may differ between searches that are pooled: the seed, and where the data and table lie; the
# method and strategy are this benchmark's (FasterSeg, differentiable) whether recorded or not
_FREE = {("seed",), ("data", "root"), ("fasterseg", "lut"), ("device",), ("threads",), ("method",), ("strategy",)}


def comparable(config: dict[str, Any], sections: tuple[str, ...]) -> dict[str, Any]:
    """A run config without the keys searches of the same settings may differ in, read as today's
    (``sections``: those of the run; options of results saved before methods had sections map once)
    with the options added since filled in as the older runs behaved."""
    out = as_saved(config, sections)
    for key in _FREE:
        node = out
        for part in key[:-1]:
            node = node.get(part, {})
        node.pop(key[-1], None)
    return out


def bootstrap(searches: list[list[float]], rounds: int, seed: int, level: float) -> list[float]:
    """Percentile interval of the mean difference, resampling searches, then retrain seeds within each.

    Two-stage resampling counts the retrain noise twice over (once inside each
    search's mean, once through the spread of those means), so the interval errs
    wide; a search with one retrain seed adds no spread of its own, so many such
    searches make it err narrow. With under three searches it is only indicative.
    """
    rng = np.random.default_rng(seed)
    means = np.empty(rounds)
    for r in range(rounds):
        picked = rng.integers(len(searches), size=len(searches))
        means[r] = np.mean([np.mean(rng.choice(searches[i], size=len(searches[i]))) for i in picked])
    tail = (1 - level) / 2
    return [float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))]


def unlike(searches: list[dict[str, Any]], key: str, why: Callable[[dict, dict], str]) -> str | None:
    """``file: why`` for the first search whose ``key`` differs from the first search's, else None."""
    for s in searches[1:]:
        if s[key] != searches[0][key]:
            return f"{s['file']}: {why(s, searches[0])}"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path, help="camvid_search.py --json files, one per search")
    ap.add_argument("--rounds", type=int, default=10000, help="bootstrap rounds")
    ap.add_argument("--level", type=float, default=0.9, help="interval coverage")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    searches = [one_search(p) for p in args.results]
    seen: dict[str, str] = {}
    for s in searches:
        if s["student"] in seen:
            print(f"{s['file']}: the same search as {seen[s['student']]} (student {s['student']}); "
                  "pass only the one with more retrain seeds", file=sys.stderr)
            return 2
        seen[s["student"]] = s["file"]
    recorded = [s for s in searches if s["settings"] is not None]
    mixed = (unlike(searches, "path_rule", lambda s, f: f"its branches were decoded by the {s['path_rule']!r} "
                                                       f"path rule, {f['file']}'s by {f['path_rule']!r}")
             or unlike(recorded, "settings",
                       lambda s, f: f"run with other settings than {f['file']} (search or retrain config "
                                    "beyond seed, data and table paths)"))
    if mixed:
        print(f"{mixed}; summarise like with like", file=sys.stderr)
        return 2
    unrecorded = [Path(s["file"]).name for s in searches if s["settings"] is None]
    if unrecorded:
        print(f"note: {', '.join(unrecorded)} did not record their settings; pooled as given", file=sys.stderr)
    if len(searches) < 3:
        print(f"note: {len(searches)} search(es): the interval is only indicative", file=sys.stderr)
    per_search = [list(s["differences"].values()) for s in searches]
    means = [s["mean_difference"] for s in searches]
    mean = statistics.mean(means)
    for s in searches:
        diffs = ", ".join(f"{100 * d:+.1f}" for d in s["differences"].values())
        print(f"search seed {s['search_seed'] if s['search_seed'] is not None else '?'} ({Path(s['file']).name}): "
              f"{100 * s['mean_difference']:+.1f} mIoU (retrain seeds: {diffs}; student mean - median of "
              f"random means: {100 * s['file_difference']:+.1f})")
    interval = bootstrap(per_search, args.rounds, 0, args.level)
    print(f"mean over {len(searches)} searches: {100 * mean:+.1f} mIoU, "
          f"{100 * args.level:.0f}% bootstrap interval [{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}]")
    write({
        "benchmark": "camvid_search_summary", "searches": searches,
        "settings_recorded": len(recorded) == len(searches),
        "mean_difference": mean, "min_difference": min(means), "max_difference": max(means),
        "interval": interval, "interval_level": args.level, "bootstrap_rounds": args.rounds,
        "searches_meeting_target": sum(m >= TARGET for m in means),
        "target": f"mean over searches of searched - random median >= {TARGET} (3 mIoU points)",
        "meets_target": mean >= TARGET, "interval_above_target": interval[0] >= TARGET, "machine": machine(),
    }, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
