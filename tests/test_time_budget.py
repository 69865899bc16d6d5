"""search.time_budget: the shared search loops stop at the first step / trial / round boundary past it.

The clock every loop reads (``segnas.engine.budget.clock``) is replaced by one that advances a fixed
number of seconds per training step or trial, so where a search stops is exact.
"""

import json

import pytest

from segnas.engine import budget
from segnas.errors import ConfigError
from segnas.genotype import load as load_genotype
from segnas.methods import get_method
from segnas.strategies import differentiable, multi_trial, random_search

SMALL = ["data.synthetic_train=8", "data.synthetic_val=2", "data.max_val_images=2", "data.synthetic_size=[32,32]",
         "data.crop=[32,32]"]


class StepClock:
    """A clock that moves only when the search trains: ``seconds`` per wrapped call."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def counting(self, fn, seconds: float):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            self.now += seconds
            return out

        return wrapped


@pytest.fixture
def clock(monkeypatch):
    c = StepClock()
    monkeypatch.setattr(budget, "clock", c)
    return c


def _dots(budget_s: float):
    return get_method("dots").config("tiny", overrides=SMALL + [f"search.time_budget={budget_s}"])


def test_a_one_shot_search_stops_mid_epoch_at_its_budget_and_a_resume_keeps_the_time_spent(clock, monkeypatch,
                                                                                            tmp_path):
    monkeypatch.setattr(differentiable, "search_step", clock.counting(differentiable.search_step, 10.0))
    method, run = get_method("dots"), tmp_path / "run"
    # 10 s a step, 25 s of budget, DOTS' four stages of one 2-step epoch each: an unbroken search stops after
    # step 3, inside the operation search (epoch 2). Killed at step 3 (its checkpoint: step 2, 20 s spent)
    # and resumed, it goes on from 20 s and stops after step 3 as well (a budget restarted at 0 would not)
    assert method.search(_dots(25), run, stop_after=3, progress=False)["interrupted"]
    r = method.search(_dots(25), run, resume=True, progress=False)
    b = r["budget"]
    assert (b["stopped"], b["step"], b["steps"], b["epochs_done"], b["epochs"]) == (True, 3, 8, 2, 4)
    assert b["elapsed_s"] == pytest.approx(30.0) and b["seconds"] == 25.0
    assert r["steps"] == 3 and r["final"]["phase"] == "op_search"
    g = load_genotype(run / "genotype.json")
    assert g.archid == r["final"]["architectures"]["genotype"]["archid"]
    assert json.loads((run / "result.json").read_text())["budget"]["stopped"] is True
    # the same command again: finished by its budget, nothing to do
    assert method.search(_dots(25), run, resume=True, progress=False)["already_complete"]


def test_a_random_search_stops_after_the_trial_that_spends_its_budget(clock, monkeypatch, tmp_path):
    monkeypatch.setattr(random_search, "train_network", clock.counting(random_search.train_network, 10.0))
    method = get_method("dcnas")
    cfg = method.config("tiny", overrides=SMALL + ["random.trials=4", "random.steps=1", "search.time_budget=15"],
                        strategy="random")
    r = method.search(cfg, tmp_path / "random", progress=False)
    assert len(r["trials"]) == 2 and r["budget"]["stopped"] and r["budget"]["trials"] == 2
    assert r["budget"]["trials_planned"] == 4
    assert load_genotype(tmp_path / "random" / "genotype.json").archid == r["final"]["architectures"]["genotype"][
        "archid"]
    # no budget: every trial, however long they take
    cfg = method.config("tiny", overrides=SMALL + ["random.trials=3", "random.steps=1"], strategy="random")
    r = method.search(cfg, tmp_path / "whole", progress=False)
    assert len(r["trials"]) == 3 and not r["budget"]["stopped"] and r["budget"]["seconds"] == 0


def test_a_multi_trial_search_stops_at_the_trial_boundary_past_its_budget(clock, monkeypatch, tmp_path):
    monkeypatch.setattr(multi_trial, "train_network", clock.counting(multi_trial.train_network, 10.0))
    learned = []
    monkeypatch.setattr(multi_trial.PPOSampler, "learn", lambda self, p, r: learned.append(len(r)) or {})
    method = get_method("fasterseg")
    cfg = method.config("tiny", overrides=SMALL + ["ppo.trials=8", "ppo.batch=4", "ppo.steps=1",
                                                   "search.time_budget=15"], strategy="ppo")
    r = method.search(cfg, tmp_path / "ppo", progress=False)
    # rounds of 4 trials, 10 s each: after trial 2 (20 s) the budget is spent; the round ends there, the
    # controller learns nothing from half a round, and the search decodes the better of trials 1-2
    assert [t["trial"] for t in r["trials"]] == [1, 2] and learned == []
    assert r["budget"]["stopped"] and r["budget"]["trials"] == 2 and r["budget"]["elapsed_s"] == pytest.approx(20.0)
    best = max(r["trials"], key=lambda t: (t["reward"], -t["trial"]))
    assert r["final"]["architectures"]["student"]["trial"] == best["trial"]
    assert (tmp_path / "ppo" / "student.json").is_file()
    # the same command again: finished by its budget
    assert method.search(cfg, tmp_path / "ppo", resume=True, progress=False)["already_complete"]


@pytest.mark.parametrize("text,seconds", [("90s", 90.0), ("10m", 600.0), ("1.5h", 5400.0), ("45", 45.0)])
def test_durations_read_as_seconds(text, seconds):
    assert budget.parse_duration(text) == seconds
    assert budget.parse_duration(budget.format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "10x", "-5m", "0s", "m", "1e999s", "nan"])
def test_bad_durations_are_one_clear_line(text):
    with pytest.raises(ConfigError, match="--budget .*90s, 10m or 1.5h"):
        budget.parse_duration(text)


def test_a_negative_budget_is_refused_by_the_config():
    with pytest.raises(ConfigError, match="search.time_budget"):
        get_method("dcnas").config("tiny", overrides=["search.time_budget=-1"])
