"""Nekrasov et al.'s search: cached stage 1, the staged trial loop (ppo and random), executors, resuming."""

import dataclasses
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from segnas.cli import main
from segnas.engine.checkpoint import load_checkpoint
from segnas.engine.feature_cache import encoder_outputs, load_features
from segnas.engine.proxy import CachedDecoder, proxy_data, reference_encoder, trial_network
from segnas.errors import ConfigError
from segnas.executors import InlineExecutor
from segnas.losses import make_criterion, seg_loss_with_aux
from segnas.methods import get_method
from segnas.strategies.multi_trial import Proposal, StagedTrial, run_round
from segnas.strategies.stages import EarlyTermination

NEKRASOV = get_method("nekrasov")


def _cfg(strategy="ppo", overrides=()):
    return NEKRASOV.config("tiny", strategy=strategy, overrides=list(overrides),
                           extra={"data": {"dataset": "synthetic"}})


def _table(trials):
    """A trial table without wall times (the only column a rerun changes)."""
    return [{k: v for k, v in t.items() if k != "wall_s"} for t in trials]


def test_cached_encoder_outputs_give_the_live_stage1_loss(tmp_path):
    cfg = _cfg()
    data = proxy_data(cfg, cfg.nekrasov)
    encoder = reference_encoder(cfg.seed, None)
    path, _ = encoder_outputs(tmp_path, encoder, data.stage1, torch.device("cpu"))
    cached = load_features(path)
    g = NEKRASOV.sample(np.random.default_rng(0), cfg)
    net = trial_network(g, cached.num_classes, 3, encoder)
    net.train()
    net.encoder.eval()  # stage 1: the encoder is fixed
    criterion = make_criterion("ce", cached.ignore_index)
    inputs, masks = next(iter(DataLoader(cached, batch_size=4)))
    images, live_masks = next(iter(DataLoader(data.stage1, batch_size=4)))
    assert torch.equal(masks, live_masks)
    live = net(images, aux=True)
    from_cache = CachedDecoder(net, cached.size)(inputs, aux=True)
    assert len(live[1]) == len(from_cache[1]) == 3
    loss_live = seg_loss_with_aux(criterion, *live, live_masks, 0.15)
    loss_cached = seg_loss_with_aux(criterion, *from_cache, masks, 0.15)
    assert torch.allclose(loss_live, loss_cached, rtol=1e-5, atol=1e-6)


def test_the_cache_is_reused_and_invalidated_by_new_encoder_weights_or_other_images(tmp_path):
    cfg = _cfg()
    data = proxy_data(cfg, cfg.nekrasov)
    encoder, cpu = reference_encoder(cfg.seed, None), torch.device("cpu")
    first, computed = encoder_outputs(tmp_path, encoder, data.stage1, cpu)
    assert computed and first.is_file()
    again, computed = encoder_outputs(tmp_path, reference_encoder(cfg.seed, None), data.stage1, cpu)
    assert again == first and not computed  # the same weights (seeded): reused
    with torch.no_grad():
        encoder.stem[0].weight.add_(0.01)
    changed, computed = encoder_outputs(tmp_path, encoder, data.stage1, cpu)
    assert computed and changed != first
    other, computed = encoder_outputs(tmp_path, encoder, data.held_out, cpu)
    assert computed and other not in (first, changed)
    # given weights: loaded, and a cache of their own
    weights = tmp_path / "enc.pt"
    torch.save(encoder.state_dict(), weights)
    assert encoder_outputs(tmp_path, reference_encoder(cfg.seed, str(weights)), data.stage1, cpu) == (changed, False)


def _fake_trial(stage1, stage2=None, gate=None):
    return StagedTrial(prepare=lambda cfg, run, device: {"num_classes": 2, "background": None, "notes": []},
                       stage1=stage1, stage2=stage2, gate=gate)


def test_a_failing_trial_is_recorded_with_its_error_and_left_out_of_the_ppo_update(tmp_path, monkeypatch):
    from segnas.strategies import ppo as ppo_module

    def stage1(payload):
        if payload["seed"] == payload["cfg"].seed + 1:  # the second trial
            raise RuntimeError("out of memory (simulated)")
        return {"reward": 0.1 + 0.01 * (payload["seed"] - payload["cfg"].seed)}

    batches, original = [], ppo_module.PPO.update

    def spy(self, batch):
        batches.append([e.reward for e in batch])
        stats = original(self, batch)
        batches[-1].append(stats)
        return stats

    monkeypatch.setattr(ppo_module.PPO, "update", spy)
    method = dataclasses.replace(NEKRASOV, trial=_fake_trial(stage1))
    result = method.search(_cfg(), tmp_path / "run", progress=False)
    trials = result["trials"]
    assert trials[1]["error"] == "RuntimeError: out of memory (simulated)" and trials[1]["reward"] is None
    assert trials[1]["decision"] == "failed" and result["failed"] == 1
    assert batches[0][:2] == [pytest.approx(0.1), None] and batches[0][2]["trials"] == 1
    assert batches[0][2]["failed"] == 1 and all(None not in b[:-1] for b in batches[1:])
    assert "out of memory" in (tmp_path / "run" / "trials.csv").read_text()


class _Reversed(InlineExecutor):
    """Finishes tasks in the reverse of their submission order (as parallel workers may)."""

    def map(self, fn, tasks):
        return reversed(list(super().map(fn, tasks)))


def test_the_gate_decides_in_trial_order_whatever_order_trials_finish(tmp_path):
    cfg = _cfg()
    rewards = {0: 0.5, 1: 0.2, 2: 0.9, 3: 0.1}
    ran2 = []

    def stage1(payload):
        return {"reward": rewards[payload["seed"] - payload["cfg"].seed]}

    def stage2(payload):
        ran2.append(payload["seed"] - payload["cfg"].seed)
        return {"reward": 1.0}

    spec = _fake_trial(stage1, stage2)
    proposals = [Proposal(NEKRASOV.sample(np.random.default_rng(100 + i), cfg)) for i in range(4)]
    gate = EarlyTermination(p_start=0.0, decay=1.0, p_min=0.0)  # below the running mean: always stopped
    records = run_round(spec, proposals, 0, [], _Reversed(), cfg, {"background": None}, gate)
    assert [r["decision"] for r in records] == ["first", "stopped", "above-mean", "stopped"]
    assert sorted(ran2) == [0, 2] and [r["reward"] for r in records] == [1.0, 0.2, 1.0, 0.1]
    assert [r["stage2_reward"] for r in records] == [1.0, None, 1.0, None]


def _staged_round_with_budget(spent_after: int, earlier: list) -> tuple[list, list]:
    """A round of 4 staged trials (every one passes the gate) whose budget is spent after ``spent_after``
    finished tasks; (records, the tasks run as (stage, trial))."""
    cfg = _cfg()
    ran = []

    def task(stage):
        def fn(payload):
            ran.append((stage, payload["seed"] - payload["cfg"].seed))
            return {"reward": 0.1 * stage + 0.01 * len(ran)}
        return fn

    spec = _fake_trial(task(1), task(2))
    proposals = [Proposal(NEKRASOV.sample(np.random.default_rng(200 + i), cfg)) for i in range(4)]
    gate = EarlyTermination(p_start=1.0, decay=1.0, p_min=1.0)  # below the mean still goes on: every trial
    start = len(earlier)
    records = run_round(spec, proposals, start, earlier, InlineExecutor(), cfg, {"background": None}, gate,
                        stop=lambda: len(ran) >= spent_after)
    return records, ran


def test_a_spent_budget_ends_a_staged_round_at_a_finished_trial():
    # spent after the first task: stage 1 stops, but the search's first trial still finishes (its stage 2)
    records, ran = _staged_round_with_budget(1, [])
    assert ran == [(1, 0), (2, 0)] and [r["trial"] for r in records] == [1]
    assert records[0]["stage2_reward"] is not None and records[0]["reward"] == records[0]["stage2_reward"]
    # spent after 3 tasks: stage 1 of trials 1-3 ran, then trial 1's stage 2; trials 2-4 are dropped
    records, ran = _staged_round_with_budget(3, [])
    assert ran == [(1, 0), (1, 1), (1, 2), (2, 0)] and [r["trial"] for r in records] == [1]
    # with earlier trials the round may end with none of its own: nothing half-trained is recorded
    earlier = [{"trial": 1, "archid": "x" * 16, "reward": 0.5, "reused_from": None}]
    records, ran = _staged_round_with_budget(1, earlier)
    assert ran == [(1, 1)] and records == []
    # never spent: the whole round
    records, ran = _staged_round_with_budget(99, [])
    assert len(ran) == 8 and [r["trial"] for r in records] == [1, 2, 3, 4]


def test_an_architecture_seen_before_reuses_its_result(tmp_path):
    cfg = _cfg()
    calls = []

    def stage1(payload):
        calls.append(payload["genotype"]["choices"])
        return {"reward": 0.3}

    spec = _fake_trial(stage1)
    a, b = (NEKRASOV.sample(np.random.default_rng(s), cfg) for s in (1, 2))
    first = run_round(spec, [Proposal(a), Proposal(b), Proposal(a)], 0, [], InlineExecutor(), cfg,
                      {"background": None}, None)
    assert len(calls) == 2
    assert [r["decision"] for r in first] == ["one-stage", "one-stage", "reused"]
    assert first[2]["reused_from"] == 1 and first[2]["reward"] == 0.3 and first[2]["trial"] == 3
    later = run_round(spec, [Proposal(b)], 3, first, InlineExecutor(), cfg, {"background": None}, None)
    assert len(calls) == 2 and later[0]["reused_from"] == 2 and later[0]["trial"] == 4


def test_a_resumed_ppo_search_ends_with_the_same_trials_and_controller(tmp_path):
    cfg = _cfg(overrides=["ppo.trials=2", "ppo.batch=1"])  # two rounds, two controller updates
    full = NEKRASOV.search(cfg, tmp_path / "full", progress=False)
    assert len(full["trials"]) == 2
    assert all(t["error"] is None and t["stage1_reward"] is not None for t in full["trials"])
    killed = tmp_path / "killed"
    assert NEKRASOV.search(cfg, killed, stop_after=1, progress=False)["interrupted"]
    assert len(load_checkpoint(killed / "checkpoints" / "last.pt", ("search",))["search"]["trials"]) == 1
    again = NEKRASOV.search(cfg, killed, resume=True, progress=False)
    assert _table(again["trials"]) == _table(full["trials"])
    a, b = (load_checkpoint(run / "checkpoints" / "last.pt", ("search",))["search"] for run in (tmp_path / "full", killed))
    assert a["gate"] == b["gate"] and torch.equal(a["sampler"]["generator"], b["sampler"]["generator"])
    assert a["sampler"]["ppo"]["baseline"] == b["sampler"]["ppo"]["baseline"]
    for key, value in a["sampler"]["ppo"]["controller"].items():
        assert torch.equal(value, b["sampler"]["ppo"]["controller"][key]), key
    assert (killed / "genotype.json").read_text() == (tmp_path / "full" / "genotype.json").read_text()
    g = full["final"]["architectures"]["genotype"]
    written = (tmp_path / "full" / "genotype.json").read_text()
    assert '"agg_size": 64' in written and '"sep_repeats": 2' in written and g["searched_archid"] != g["archid"]
    assert (tmp_path / "full" / "rewards.png").is_file()
    assert (tmp_path / "full" / "trials.md").read_text().count("\n") == 2 + 2
    assert NEKRASOV.search(cfg, killed, resume=True, progress=False)["already_complete"]


def test_the_random_baseline_runs_the_same_staged_trials_as_ppo(tmp_path, capsys):
    for preset in ("tiny", "cpu", "paper"):  # each preset gives both samplers the same number of trials
        assert (NEKRASOV.config(preset, strategy="random").random.trials
                == NEKRASOV.config(preset, strategy="ppo").ppo.trials)
    # the staged trials of a ppo search (stage-1 reward, gate decision, stage 2), drawn uniformly; kept short
    assert main(["search", "nekrasov", "--strategy", "random", "--preset", "tiny", "--set", "random.trials=3",
                 "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "encoder: no nekrasov.encoder_weights given" in out and "trials:" in out and "stage-2 rate" in out
    rows = (tmp_path / "r" / "trials.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3 and rows[0].startswith("trial,archid,stage1_reward,decision,stage2_reward,reward")
    assert ",first," in rows[1] and not any(",one-stage," in r for r in rows)


def test_fasterseg_ppo_runs_the_generic_one_stage_trial(tmp_path, capsys):
    assert main(["search", "fasterseg", "--strategy", "ppo", "--preset", "tiny", "--quiet", "--set", "ppo.trials=2",
                 "--out", str(tmp_path / "f")]) == 0
    rows = (tmp_path / "f" / "trials.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and all(",one-stage," in r or ",reused," in r for r in rows[1:])
    assert (tmp_path / "f" / "student.json").is_file() and (tmp_path / "f" / "genotype.json").is_file()


def test_a_missing_ray_is_one_line_before_any_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert main(["search", "nekrasov", "--executor", "ray", "--preset", "tiny", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs Ray" in err and not (tmp_path / "x").exists()
    assert main(["search", "dcnas", "--executor", "local", "--preset", "tiny", "--out", str(tmp_path / "y")]) == 2
    assert "belong to multi-trial searches" in capsys.readouterr().err


def test_two_local_workers_run_a_tiny_search(tmp_path, capsys):
    assert main(["search", "nekrasov", "--executor", "local", "--workers", "2", "--preset", "tiny", "--quiet",
                 "--set", "ppo.trials=2", "--out", str(tmp_path / "l")]) == 0
    rows = (tmp_path / "l" / "trials.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and ",failed," not in "".join(rows)


def test_stage1_distils_from_a_teacher_checkpoint_or_a_logits_file(tmp_path):
    from segnas.engine.proxy import prepare, stage1_task

    cfg = _cfg()
    data = proxy_data(cfg, cfg.nekrasov)
    g = NEKRASOV.sample(np.random.default_rng(5), cfg)
    teacher = trial_network(g, 8, 0, reference_encoder(0, None))
    torch.save({"genotype": g.to_dict(), "num_classes": 8, "model": teacher.state_dict()}, tmp_path / "t.pt")
    n, (h, w) = len(data.stage1), data.stage1[0][1].shape
    torch.save(torch.randn(n, 8, h, w), tmp_path / "logits.pt")
    for source, note in (("t.pt", "distillation: teacher"), ("logits.pt", "distillation: precomputed logits")):
        run = tmp_path / source.split(".")[0]
        run.mkdir()
        c = _cfg(overrides=[f"nekrasov.distill_teacher={tmp_path / source}"])
        ctx = prepare(c, run, torch.device("cpu"), section="nekrasov")
        assert any(line.startswith(note) for line in ctx["notes"]) and ctx["teacher"]
        value = stage1_task({"cfg": c, "genotype": g.to_dict(), "seed": 1, "context": ctx})
        assert np.asarray(value["confusion"]).shape == (8, 8)
    torch.save(torch.randn(n + 1, 8, h, w), tmp_path / "bad.pt")
    c = _cfg(overrides=[f"nekrasov.distill_teacher={tmp_path / 'bad.pt'}"])
    with pytest.raises(ConfigError, match="do not fit the"):
        prepare(c, tmp_path / "t", torch.device("cpu"), section="nekrasov")


def test_refused_controller_draws_are_drawn_again_and_never_enter_the_ppo_batch(tmp_path, monkeypatch):
    from segnas.errors import GenotypeError
    from segnas.methods import Method
    from segnas.strategies import ppo as ppo_module

    decode, batches = Method.decode, []

    def picky(self, choices, cfg):  # refuses every draw whose first decision is not 1 (and, as ever, prefixes)
        if choices[0] != 1:
            raise GenotypeError("refused (test)")
        return decode(self, choices, cfg)

    monkeypatch.setattr(Method, "decode", picky)
    original = ppo_module.PPO.update
    monkeypatch.setattr(ppo_module.PPO, "update", lambda self, batch: batches.append(list(batch)) or original(self, batch))
    method = dataclasses.replace(NEKRASOV, trial=_fake_trial(lambda p: {"reward": 0.5}))
    result = method.search(_cfg(overrides=["ppo.trials=2", "ppo.batch=2"]), tmp_path / "run", progress=False)
    assert result["invalid_draws"] >= 1 and len(batches) == 1 and len(batches[0]) == 2
    assert all(e.actions[0] == 1 for e in batches[0])


def test_the_planted_property_is_a_block_reading_the_encoders_coarsest_output():
    from segnas import zoo
    from segnas.spaces.nekrasov import from_paper

    assert NEKRASOV.has_planted("planted-context", zoo.get("nekrasov-arch0"))  # [[3, 3], ...]: reads 1/32
    fine = from_paper([[[0, 1], [2, 4], [1, 5]], [8, [0, 0, 5, 2], [0, 2, 8, 8], [0, 5, 1, 4]]])
    assert not NEKRASOV.has_planted("planted-context", fine)


def test_a_missing_encoder_weights_file_is_one_line_and_given_weights_are_loaded(tmp_path, capsys):
    assert main(["search", "nekrasov", "--preset", "tiny", "--set", f"nekrasov.encoder_weights={tmp_path / 'no.pt'}",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nekrasov.encoder_weights" in err and not (tmp_path / "x").exists()
    weights = reference_encoder(7, None).state_dict()
    torch.save(weights, tmp_path / "enc.pt")
    loaded = reference_encoder(0, str(tmp_path / "enc.pt")).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())
