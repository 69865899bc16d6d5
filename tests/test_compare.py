"""``segnas compare``: searches with one budget, one retraining recipe, one table and plot; resumable."""

import csv
import json

import pytest
import yaml

from segnas.cli import main
from segnas.outputs import mark_of

SMALL = ["--set", "data.synthetic_train=8", "--set", "data.synthetic_val=2", "--set", "data.max_val_images=2",
         "--set", "data.synthetic_size=[32,32]", "--set", "data.crop=[32,32]", "--set", "train.epochs=1"]


def _compare(out, *extra):
    return main(["compare", "--out", str(out), "--preset", "tiny", "--threads", "1", "--quiet", *SMALL, *extra])


def _files(folder):
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_compare_writes_its_table_and_plot_and_a_rerun_redoes_nothing(tmp_path, capsys):
    out = tmp_path / "cmp"
    # a method's or strategy's own section reaches the searches that have it
    args = ("--methods", "dots,dcnas", "--random-for", "dcnas", "--budget", "1s", "--executor", "inline",
            "--set", "random.steps=1")
    assert _compare(out, *args) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "compare.json").read_text())
    labels = ["dots", "dcnas", "dcnas-random"]
    assert [r["label"] for r in record["rows"]] == labels
    assert [(r["method"], r["strategy"]) for r in record["rows"]] == [
        ("dots", "dots"), ("dcnas", "differentiable"), ("dcnas", "random")]
    for label in labels:
        stage = record["stages"][label]
        assert stage["search"]["state"] == stage["retrain"]["state"] == "done"
        assert (out / "search" / label / "result.json").is_file() and (out / "retrain" / label / "result.json").is_file()
        search = json.loads((out / "search" / label / "result.json").read_text())
        assert search["budget"]["seconds"] == 1.0  # every search ran with the command's budget
        assert search["config"].get("random", {"steps": 1})["steps"] == 1
        retrained = json.loads((out / "retrain" / label / "result.json").read_text())
        row = next(r for r in record["rows"] if r["label"] == label)
        assert row["val_miou"] == retrained["best_miou"] and row["archid"] == retrained["archid"]
        assert row["params"] > 0 and row["macs"] > 0 and row["latency_ms"] > 0 and row["error"] is None
    # one recipe: every retrain ran the same train.* and data.* (the preset's plus --set's)
    recipes = [yaml.safe_load((out / "retrain" / lb / "config.yaml").read_text()) for lb in labels]
    assert all((r["train"], r["data"], r["seed"]) == (recipes[0]["train"], recipes[0]["data"], 0) for r in recipes)
    assert recipes[0]["train"]["epochs"] == 1 and recipes[0]["data"]["synthetic_train"] == 8
    # the one-shot searches' budget of 1 s is spent before their first step ends: both were stopped by it
    assert [r["budget_stopped"] for r in record["rows"][:2]] == [True, True]
    assert record["cost"]["input"] == [1, 3, 32, 32]  # the data's val size
    front = [r["label"] for r in record["rows"] if r["pareto"]]
    assert front and all(not any(o["latency_ms"] < r["latency_ms"] and o["val_miou"] > r["val_miou"]
                                 for o in record["rows"]) for r in record["rows"] if r["label"] in front)
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [r["label"] for r in rows] == labels
    md = (out / "compare.md").read_text()
    assert md.count("\n| dcnas |") == 2 and md.count("\n| dots | dots |") == 1 and "| dcnas | random |" in md
    assert "| dcnas | random |" in printed  # the table is printed at the end
    assert mark_of(out / "pareto.png") == "compare" and mark_of(out) == "compare"

    # the same command again: every stage is kept, no run folder is touched
    before = {k: v for k, v in _files(out).items() if k.startswith(("search/", "retrain/"))}
    assert _compare(out, *args) == 0
    printed = capsys.readouterr().out
    after = {k: v for k, v in _files(out).items() if k.startswith(("search/", "retrain/"))}
    assert after == before
    for label in labels:
        assert f"search {label}: finished earlier, kept" in printed
        assert f"retrain {label}: finished earlier, kept" in printed
    assert "cost: measured earlier, kept" in printed and "queued" not in printed
    assert json.loads((out / "compare.json").read_text())["rows"] == record["rows"]

    # another budget on the same folder: refused in one line naming it, nothing changed
    assert _compare(out, *args[:4], "--budget", "2s", *args[6:]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--budget 1s, not 2s" in err
    assert _compare(out, *args[:8]) == 2  # without its --set: another recipe
    assert "ran with --set random.steps=1 too" in capsys.readouterr().err
    assert {k: v for k, v in _files(out).items() if k.startswith(("search/", "retrain/"))} == before


def test_a_failed_search_is_in_the_table_and_the_exit_status(tmp_path, capsys, monkeypatch):
    import segnas.compare.run as run

    def broken(payload):
        raise RuntimeError("the supernet caught fire")

    monkeypatch.setattr(run, "search_task", broken)
    out = tmp_path / "cmp"
    assert _compare(out, "--methods", "dcnas", "--no-random", "--executor", "inline") == 1
    captured = capsys.readouterr()
    record = json.loads((out / "compare.json").read_text())
    assert record["stages"]["dcnas"]["search"] == {"state": "failed", "error": "RuntimeError: the supernet caught fire",
                                                   "result": None}
    assert record["stages"]["dcnas"]["retrain"]["state"] == "skipped"
    assert "failed: search: RuntimeError: the supernet caught fire" in (out / "compare.md").read_text()
    assert "search dcnas: failed: RuntimeError: the supernet caught fire" in captured.out
    assert "1 of 1 searches did not reach the table" in captured.err
    assert (out / "pareto.png").is_file()


@pytest.mark.parametrize("args,message", [
    (["--methods", "dcnas,nope"], "--methods: method 'nope' is unknown; known methods: fasterseg, autodeeplab"),
    (["--methods", "dcnas", "--random-for", "fasterseg"], "--random-for: fasterseg is not among the compared"),
    (["--methods", "dcnas", "--budget", "ten minutes"], "--budget 'ten minutes': give a positive time such as 90s"),
    (["--methods", "dcnas", "--set", "ppo.trials=3"], "--set ppo.trials: no compared search reads it"),
    (["--methods", "dcnas", "--set", "search.time_budget=5"], "compare gives every search the same --budget"),
    (["--methods", "dcnas", "--set", "seed=3"], "--set seed: compare sets it with --seed"),
    (["--methods", "dcnas", "--set", "train.lr=-1"], "train.lr"),
    (["--methods", "dcnas", "--workers", "0"], "--workers is 0"),
])
def test_bad_options_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "cmp"
    assert main(["compare", "--out", str(out), "--preset", "tiny", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("segnas: error: ") and message in err
    assert not out.exists()


def test_ray_without_ray_installed_is_one_line(tmp_path, capsys):
    try:
        import ray  # noqa: F401
        pytest.skip("ray is installed here")
    except ImportError:
        pass
    assert main(["compare", "--out", str(tmp_path / "cmp"), "--methods", "dcnas", "--executor", "ray"]) == 2
    assert "--executor ray needs Ray: pip install" in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()


def test_a_folder_segnas_did_not_write_is_refused(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["compare", "--out", str(tmp_path), "--methods", "dcnas", "--preset", "tiny"]) == 2
    assert "not written by segnas compare" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


@pytest.mark.slow
def test_local_workers_run_the_stages_and_an_interrupted_comparison_continues(tmp_path, capsys, monkeypatch):
    out = tmp_path / "cmp"
    args = ("--methods", "dcnas", "--no-random", "--budget", "1s")
    # the retrain stage fails the first time (as if the machine went away): the search is kept, the rerun
    # retrains only
    import segnas.compare.run as run

    def gone(payload):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(run, "retrain_task", gone)
    assert _compare(out, *args, "--executor", "inline") == 1
    assert json.loads((out / "compare.json").read_text())["stages"]["dcnas"]["retrain"]["state"] == "failed"
    monkeypatch.undo()
    capsys.readouterr()
    assert _compare(out, *args) == 0  # local worker processes this time: scheduling is not a setting
    printed = capsys.readouterr().out
    assert "search dcnas: finished earlier, kept" in printed and "retrain dcnas: queued" in printed
    record = json.loads((out / "compare.json").read_text())
    assert record["rows"][0]["error"] is None and record["rows"][0]["latency_ms"] > 0



def test_the_pareto_front_keeps_the_points_nothing_beats_on_both_latency_and_miou():
    from segnas.compare.table import pareto_front

    points = {"a": (1.0, 0.5), "b": (2.0, 0.4), "c": (3.0, 0.7), "d": (3.0, 0.6), "e": (0.5, 0.1), "f": (1.0, 0.5)}
    assert pareto_front(points) == ["e", "a", "c"]  # b is beaten by a, d by c, f ties a and comes later
