"""Random search on every space: draws, the shared trainer, the best kept, outputs, resuming."""

import json

import pytest

from segnas.cli import main
from segnas.genotype import load as load_genotype
from segnas.methods import get_method


def _cfg(name, **random):
    return get_method(name).config("tiny", strategy="random", extra={
        "data": {"dataset": "synthetic"}, **({"random": random} if random else {})})


def test_trials_train_without_drop_path_whatever_the_retraining_setting(tmp_path):
    method = get_method("fasterseg")  # its networks have no DropPath: a retrain would refuse 0.3
    cfg = method.config("tiny", strategy="random", overrides=["train.drop_path=0.3"],
                                         extra={"data": {"dataset": "synthetic"}, "random": {"trials": 1}})
    result = method.search(cfg, tmp_path / "run", progress=False)
    assert len(result["trials"]) == 1 and 0 <= result["trials"][0]["miou"] <= 1


@pytest.mark.parametrize("name", ["fasterseg", "autodeeplab"])
def test_random_search_keeps_the_best_trial_and_resumes_to_the_same_genotype(name, tmp_path):
    method = get_method(name)
    cfg = _cfg(name, trials=3)
    full = method.search(cfg, tmp_path / "full", progress=False)
    trials = full["trials"]
    assert len(trials) == 3 and len({t["archid"] for t in trials}) == 3
    best = max(trials, key=lambda t: t["miou"])
    g = load_genotype(tmp_path / "full" / "genotype.json")
    assert g.archid == best["archid"] == full["final"]["architectures"][method.primary]["archid"]
    assert (tmp_path / "full" / f"{method.primary}.json").read_text() == (tmp_path / "full" / "genotype.json").read_text()
    assert sorted(p.name for p in (tmp_path / "full" / "genotypes").iterdir()) == [
        "trial001.json", "trial002.json", "trial003.json"]
    assert all(t["steps"] == cfg.random.steps for t in trials)
    # stopped after its first trial, then resumed: the same trials and the same genotype
    killed = tmp_path / "killed"
    assert method.search(cfg, killed, stop_after=1, progress=False)["interrupted"]
    again = method.search(cfg, killed, resume=True, progress=False)
    assert [t["archid"] for t in again["trials"]] == [t["archid"] for t in trials]
    assert [t["miou"] for t in again["trials"]] == [t["miou"] for t in trials]
    assert (killed / "genotype.json").read_text() == (tmp_path / "full" / "genotype.json").read_text()
    assert method.search(cfg, killed, resume=True, progress=False)["already_complete"]


def test_random_search_draws_autodeeplab_at_its_retraining_size_and_keeps_trials_when_asked(tmp_path, capsys):
    cfg = _cfg("autodeeplab", trials=1, save_trials=True)
    get_method("autodeeplab").search(cfg, tmp_path / "r", progress=False)
    g = load_genotype(tmp_path / "r" / "genotype.json")
    assert g.space_args["filter_multiplier"] == cfg.autodeeplab.genotype_args["filter_multiplier"] == 4
    assert g.meta["trial"] == 1 and (tmp_path / "r" / "genotype.png").is_file()
    # the kept trial is a checkpoint that segnas evaluate reads
    trial = tmp_path / "r" / "checkpoints" / "trial001.pt"
    assert main(["evaluate", str(trial), "--split", "val", "--out", str(tmp_path / "eval")]) == 0
    assert "mIoU" in capsys.readouterr().out


def test_random_search_cli_resumes_with_the_runs_own_strategy(capsys, tmp_path):
    out = tmp_path / "cli"
    args = ["search", "fasterseg", "--strategy", "random", "--preset", "tiny", "--quiet", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "student:" in printed and "trial" in printed
    saved = json.loads((out / "result.json").read_text())
    assert saved["strategy"] == "random" and saved["config"]["random"]["trials"] == 2
    # a resume names no strategy: it continues the run's own
    assert main(["search", "fasterseg", "--out", str(out), "--resume", "--quiet"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert main(["search", "fasterseg", "--strategy", "random", "--set", "random.trials=0", "--preset", "tiny",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "random.trials" in capsys.readouterr().err


def test_a_random_fasterseg_search_refuses_the_options_only_its_supernet_search_reads(capsys, tmp_path):
    from segnas.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'fasterseg\.lut' is unknown.*random"):
        get_method("fasterseg").config("tiny", strategy="random", overrides=["fasterseg.lut=t.json"])
    assert main(["search", "fasterseg", "--strategy", "random", "--lut", "t.json", "--preset", "tiny",
                 "--out", str(tmp_path / "x")]) == 2
    assert "no latency objective" in capsys.readouterr().err and not (tmp_path / "x").exists()
    # Auto-DeepLab's section holds the retraining size its random draws use: it stays
    assert "autodeeplab" in get_method("autodeeplab").sections("random")
