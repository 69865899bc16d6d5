"""Divergence: a NaN or infinite loss or weight stops the run on that step, naming it and the last good
checkpoint; nothing non-finite is ever saved; ``--resume`` continues from the last good checkpoint."""

import pytest
import torch

import segnas
from segnas.config import make_config
from segnas.engine import load_checkpoint, model_from_checkpoint, retrain
from segnas.engine import trainer as trainer_module
from segnas.engine.session import non_finite
from segnas.errors import CheckpointError, SegnasError
from segnas.methods import get_method
from segnas.strategies import run_differentiable


def _cfg():
    cfg = make_config("tiny")  # 8 steps, a checkpoint every 4
    cfg.data.dataset = "synthetic"
    return cfg


def _nan_loss_at(monkeypatch, step):
    """The training loss of global step ``step`` (1-based) becomes NaN, as a blown-up network's would."""
    calls = {"n": 0}
    original = trainer_module.seg_loss_with_aux

    def loss(*args, **kwargs):
        calls["n"] += 1
        value = original(*args, **kwargs)
        return value * float("nan") if calls["n"] == step else value

    monkeypatch.setattr(trainer_module, "seg_loss_with_aux", loss)


def _all_finite(run):
    for name in ("best.pt", "last.pt"):
        path = run / "checkpoints" / name
        if path.is_file():
            assert non_finite(torch.load(path, weights_only=True)) is None, name


def test_a_nan_loss_stops_the_retrain_at_its_step_and_resume_continues_from_the_last_good_checkpoint(
        tmp_path, monkeypatch):
    run, g = tmp_path / "run", segnas.zoo.get("fasterseg")
    with monkeypatch.context() as m:
        _nan_loss_at(m, 6)
        with pytest.raises(SegnasError) as err:
            retrain(g, _cfg(), run, progress=False)
    message = str(err.value)
    assert "\n" not in message and "diverged at step 6" in message
    assert f"last good checkpoint is {run / 'checkpoints' / 'last.pt'} (step 4)" in message and "--resume" in message
    _all_finite(run)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4
    resumed = retrain(g, _cfg(), run, resume=True, progress=False)  # the fault gone: on to the end
    assert resumed["steps"] == 8 and load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 8
    _all_finite(run)


def test_a_divergence_before_the_first_checkpoint_says_there_is_none(tmp_path, monkeypatch):
    _nan_loss_at(monkeypatch, 2)
    with pytest.raises(SegnasError, match="diverged at step 2 .*there is no checkpoint yet"):
        retrain(segnas.zoo.get("fasterseg"), _cfg(), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_a_non_finite_statistic_is_caught_before_the_evaluation_and_never_saved(tmp_path, monkeypatch):
    """A NaN that the training loss does not see (a BatchNorm running statistic) is found before evaluating."""
    original = trainer_module.Trainer.train_step

    def step(self, images, masks):
        logs = original(self, images, masks)
        if self.step == 3:
            bn = next(m for m in self.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
            bn.running_var.fill_(float("inf"))
        return logs

    monkeypatch.setattr(trainer_module.Trainer, "train_step", step)
    with pytest.raises(SegnasError, match=r"diverged at step 4 \(model\.\S+running_var is not finite\).*no checkpoint"):
        retrain(segnas.zoo.get("fasterseg"), _cfg(), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists() or not list((tmp_path / "run" / "checkpoints").iterdir())


class _NanArchLoss:
    """A search problem whose architecture loss is NaN at one step: ``arch_backward``'s ``at``-th call."""

    def __init__(self, problem, at):
        self.problem, self.at, self.calls = problem, at, 0

    def __getattr__(self, name):
        return getattr(self.problem, name)

    def arch_backward(self, images, masks):
        self.calls += 1
        logs = self.problem.arch_backward(images, masks)
        return {k: v * float("nan") for k, v in logs.items()} if self.calls == self.at else logs


def _search_cfg():
    return get_method("autodeeplab").config("tiny", overrides=[
        "search.space_args.layers=3", "search.space_args.blocks=1",
        "search.space_args.ops=[sep_conv_3x3,skip_connect,none]"], extra={"data": {"dataset": "synthetic"}})


def test_a_nan_architecture_loss_stops_the_search_and_resume_finishes_it(tmp_path):
    method, run = get_method("autodeeplab"), tmp_path / "search"
    # pretraining is steps 1-2 (checkpoint at 2), searching steps 3-4: the second architecture step is step 4
    with pytest.raises(SegnasError) as err:
        run_differentiable(method, _search_cfg(), run, progress=False, wrap=lambda p, cfg: _NanArchLoss(p, 2))
    message = str(err.value)
    assert "\n" not in message and "diverged at step 4" in message and "arch_loss nan" in message
    assert f"{run / 'checkpoints' / 'last.pt'} (step 2)" in message and "--resume" in message
    _all_finite(run)
    done = run_differentiable(method, _search_cfg(), run, resume=True, progress=False)
    assert done["steps"] == 4 and segnas.load(run / "genotype.json")
    assert non_finite(torch.load(run / "checkpoints" / "last.pt", weights_only=True)) is None


def test_evaluate_refuses_a_checkpoint_with_a_nan_weight(tmp_path):
    cfg = _cfg()
    cfg.train.epochs = 1
    run = tmp_path / "run"
    retrain(segnas.zoo.get("fasterseg"), cfg, run, progress=False)
    ckpt = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    name = next(k for k, v in ckpt["model"].items() if v.is_floating_point())
    ckpt["model"][name][0] = float("nan")
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match=rf"bad\.pt: weight {name} holds NaN"):
        model_from_checkpoint(load_checkpoint(bad), use_ema=False)
    model_from_checkpoint(load_checkpoint(run / "checkpoints" / "best.pt"))  # the good one still loads
