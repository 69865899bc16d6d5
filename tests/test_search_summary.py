"""The CamVid summary pools searches correctly and refuses what must not be pooled."""

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "camvid_search_summary.py"


def result(path, student, diffs, **extra):
    data = {"quick": False, "search_final": {"architectures": {"student": {"archid": student}}},
            "per_seed": [{"seed": s, "difference": d} for s, d in enumerate(diffs)],
            "searched_minus_random_median": sum(diffs) / len(diffs), **extra}
    path.write_text(json.dumps(data))
    return str(path)


def config(seed=0, epochs=6, lut="runs/a/latency_table.json"):
    return {"seed": seed, "threads": None, "data": {"root": "/x/camvid", "crop": [256, 256]},
            "search": {"epochs": epochs, "lut": lut}, "train": {"epochs": 20}}


def settings(**kw):
    return {"search_config": config(**kw), "train_config": config()}


def _script():
    spec = importlib.util.spec_from_file_location("camvid_search_summary", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SUMMARY = _script()


def run(*args):
    """The script's ``main`` in this process (as its command line would run it: exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = [str(SCRIPT), *args, "--rounds", "400"]
    with mock.patch.object(sys, "argv", argv), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = SUMMARY.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) or e.code is None else 1
            if isinstance(e.code, str):
                print(e.code, file=err)
    return SimpleNamespace(returncode=code or 0, stdout=out.getvalue(), stderr=err.getvalue())


def test_summary_averages_searches_and_brackets_them(tmp_path):
    a = result(tmp_path / "a.json", "s1", [0.04, 0.02], search_seed=0, **settings())
    # another seed and the same table by another path: the same settings
    b = result(tmp_path / "b.json", "s2", [-0.01], search_seed=1, **settings(seed=1, lut="/abs/runs/a/t.json"))
    out = run(a, b, "--json", str(tmp_path / "sum.json"))
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "sum.json").read_text())
    assert abs(summary["mean_difference"] - 0.01) < 1e-12  # (0.03 + -0.01) / 2
    low, high = summary["interval"]
    assert -0.01 - 1e-12 <= low <= 0.01 <= high <= 0.04 + 1e-12
    assert summary["searches_meeting_target"] == 1 and not summary["meets_target"]
    assert summary["settings_recorded"] and not summary["interval_above_target"]
    assert "only indicative" in out.stderr


def test_summary_refuses_one_search_twice_and_mixed_settings(tmp_path):
    a = result(tmp_path / "a.json", "s1", [0.04], **settings())
    again = result(tmp_path / "a2.json", "s1", [0.04, 0.0], **settings())
    out = run(a, again)
    assert out.returncode == 2 and "same search" in out.stderr and "a2.json" in out.stderr
    other = result(tmp_path / "c.json", "s3", [0.0], **settings(seed=1, epochs=12))
    out = run(a, other)
    assert out.returncode == 2 and "other settings" in out.stderr and "c.json" in out.stderr
    # an older result (no rule recorded) was decoded by the whole-path product: not pooled with the new rule
    newer = result(tmp_path / "d.json", "s4", [0.0], path_rule="joint-down", **settings(seed=1))
    out = run(a, newer)
    assert out.returncode == 2 and "path rule" in out.stderr and "d.json" in out.stderr
    (tmp_path / "bad.json").write_text("{}")
    out = run(a, str(tmp_path / "bad.json"))
    assert out.returncode != 0 and "bad.json" in out.stderr


def test_summary_fills_keys_added_since_as_older_runs_behaved(tmp_path):
    old = result(tmp_path / "old.json", "s1", [0.02], **settings())  # before fasterseg.sandwich_arch existed (then search.sandwich_arch)
    off = settings(seed=1)
    off["search_config"]["search"]["sandwich_arch"] = False
    assert run(old, result(tmp_path / "off.json", "s2", [0.0], **off)).returncode == 0
    on = settings(seed=1)
    on["search_config"]["search"]["sandwich_arch"] = True
    out = run(old, result(tmp_path / "on.json", "s3", [0.0], **on))
    assert out.returncode == 2 and "other settings" in out.stderr and "on.json" in out.stderr


def new_settings(seed=0, epochs=6, lut="runs/a/latency_table.json", **fasterseg):
    """Configs as results record them since methods have sections: the search's own and the retrains'."""
    search = {"seed": seed, "threads": None, "method": "fasterseg", "strategy": "differentiable",
              "data": {"root": "/x/camvid", "crop": [256, 256]}, "search": {"epochs": epochs},
              "fasterseg": {"lut": lut, "sandwich_arch": False, **fasterseg},
              "train": {"epochs": 20, "patience": None}}
    train = {"seed": 0, "threads": None, "method": None, "strategy": None,
             "data": {"root": "/x/camvid", "crop": [256, 256]}, "search": {"epochs": 6},
             "train": {"epochs": 20, "patience": None}}
    return {"search_config": search, "train_config": train}


def test_summary_pools_results_saved_before_and_after_method_sections(tmp_path):
    old = result(tmp_path / "old.json", "s1", [0.02], **settings())
    new = result(tmp_path / "new.json", "s2", [0.0], **new_settings(seed=1, lut="/elsewhere/t.json"))
    out = run(old, new)
    assert out.returncode == 0, out.stderr
    other = result(tmp_path / "other.json", "s3", [0.0], **new_settings(seed=2, sandwich_arch=True))
    out = run(old, other)
    assert out.returncode == 2 and "other settings" in out.stderr and "other.json" in out.stderr
