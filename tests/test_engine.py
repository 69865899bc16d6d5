import json

import pytest
import torch

import segnas
from segnas.config import make_config
from segnas.engine import load_checkpoint, retrain
from segnas.errors import CheckpointError, ConfigError, SegnasError


def tiny_cfg(**train):
    cfg = make_config("tiny")
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def val_records(run):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "val_miou" in r]


def test_resume_after_interruption_matches_an_unbroken_run(tmp_path):
    g = segnas.zoo.get("fasterseg")
    full = retrain(g, tiny_cfg(ema_decay=0.9), tmp_path / "full", progress=False)
    # "kill" after step 6: the last checkpoint is from step 4, so steps 5-6 are redone
    part = retrain(g, tiny_cfg(ema_decay=0.9), tmp_path / "part", stop_after=6, progress=False)
    assert part["interrupted"] and load_checkpoint(tmp_path / "part/checkpoints/last.pt")["step"] == 4
    resumed = retrain(g, tiny_cfg(), tmp_path / "part", resume=True, progress=False)
    a = load_checkpoint(tmp_path / "full/checkpoints/last.pt")
    b = load_checkpoint(tmp_path / "part/checkpoints/last.pt")
    assert a["step"] == b["step"] == full["steps"] == 8
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), (key, name)
    assert resumed["final"]["miou"] == full["final"]["miou"]
    assert val_records(tmp_path / "full") == val_records(tmp_path / "part")


def test_run_folder_contents_and_safe_checkpoints(tmp_path):
    run = tmp_path / "run"
    result = retrain(segnas.zoo.get("fasterseg"), tiny_cfg(), run, progress=False)
    for name in ("config.yaml", "env.json", "genotype.json", "metrics.jsonl", "result.json",
                 "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert list((run / "tb").iterdir())
    assert segnas.load(run / "genotype.json").archid == segnas.zoo.get("fasterseg").archid
    best = load_checkpoint(run)
    assert best["path"].endswith("best.pt") and best["best_miou"] == pytest.approx(result["best_miou"])
    assert not list(run.glob("checkpoints/*.tmp"))
    with pytest.raises(ConfigError, match="already exists"):
        retrain(segnas.zoo.get("fasterseg"), tiny_cfg(), run, progress=False)
    (run / "checkpoints" / "broken.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="broken.pt"):
        load_checkpoint(run / "checkpoints" / "broken.pt")


def test_distillation_from_a_teacher_checkpoint(tmp_path):
    g = segnas.zoo.get("fasterseg")
    retrain(g, tiny_cfg(epochs=1), tmp_path / "teacher", progress=False)
    cfg = tiny_cfg(epochs=1, distill_teacher=str(tmp_path / "teacher"))
    retrain(g, cfg, tmp_path / "student", progress=False)
    logged = [json.loads(line) for line in (tmp_path / "student/metrics.jsonl").read_text().splitlines()]
    assert any(r.get("distill", 0) > 0 for r in logged)


def test_a_run_started_with_relative_paths_resumes_from_another_folder(tmp_path, monkeypatch):
    g = segnas.zoo.get("fasterseg")
    monkeypatch.chdir(tmp_path)
    retrain(g, tiny_cfg(epochs=1), "teacher", progress=False)
    cfg = tiny_cfg(distill_teacher="teacher")
    part = retrain(g, cfg, "student", stop_after=6, progress=False)
    assert part["interrupted"]
    saved = load_checkpoint(tmp_path / "student/checkpoints/last.pt")["config"]["train"]["distill_teacher"]
    assert saved == str(tmp_path / "teacher")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # "teacher" would now mean elsewhere/teacher
    resumed = retrain(g, cfg, tmp_path / "student", resume=True, progress=False)
    assert resumed["steps"] == 8 and "already_complete" not in resumed
    # a finished run answers from its result, without loading the teacher it no longer needs
    (tmp_path / "teacher").rename(tmp_path / "teacher_moved")
    again = retrain(g, cfg, tmp_path / "student", resume=True, progress=False)
    assert again["already_complete"] and again["best_miou"] == resumed["best_miou"]


def test_learning_rate_schedules():
    from segnas.engine.trainer import lr_at

    cfg = make_config("tiny").train
    cfg.lr, cfg.schedule, cfg.poly_power = 0.1, "poly", 1.0
    assert lr_at(0, 10, 5, cfg) == pytest.approx(0.1) and lr_at(5, 10, 5, cfg) == pytest.approx(0.05)
    cfg.schedule, cfg.exp_gamma = "exp", 0.5
    assert lr_at(4, 10, 5, cfg) == pytest.approx(0.1) and lr_at(5, 10, 5, cfg) == pytest.approx(0.05)
    cfg.warmup_steps = 4
    assert lr_at(1, 10, 5, cfg) == pytest.approx(0.05)


def test_unbatchable_training_images_are_refused(tmp_path):
    cfg = make_config("tiny", overrides=["data.crop=null"])
    with pytest.raises(ConfigError, match="data.crop"):
        retrain(segnas.zoo.get("fasterseg"), cfg, tmp_path / "r", progress=False)


def _unbroken(tmp_path):
    g = segnas.zoo.get("fasterseg")
    retrain(g, tiny_cfg(ema_decay=0.9), tmp_path / "full", progress=False)
    return load_checkpoint(tmp_path / "full/checkpoints/last.pt")


def _assert_same_weights(a, b):
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), (key, name)


@pytest.mark.parametrize("where", ["mid-step", "during-eval"])
def test_ctrl_c_stops_between_steps_and_resume_matches(tmp_path, monkeypatch, where):
    import signal

    import segnas.engine.trainer as trainer

    before = signal.getsignal(signal.SIGINT)  # the default handler, or SIG_IGN in a background job
    full = _unbroken(tmp_path)
    calls = {"n": 0}
    if where == "mid-step":  # Ctrl-C after the optimizer step of step 7, before the step is counted
        original = trainer.ModelEMA.update

        def update(self, model):
            calls["n"] += 1
            if calls["n"] == 7:
                signal.raise_signal(signal.SIGINT)
            original(self, model)

        monkeypatch.setattr(trainer.ModelEMA, "update", update)
    else:  # Ctrl-C while the step-4 evaluation runs
        original = trainer.evaluate

        def evaluate(*args, **kwargs):
            signal.raise_signal(signal.SIGINT)
            return original(*args, **kwargs)

        monkeypatch.setattr(trainer, "evaluate", evaluate)
    with pytest.raises(SegnasError, match="--resume"):
        retrain(segnas.zoo.get("fasterseg"), tiny_cfg(ema_decay=0.9), tmp_path / "part", progress=False)
    stopped = load_checkpoint(tmp_path / "part/checkpoints/last.pt")["step"]
    assert stopped == (7 if where == "mid-step" else 4)
    monkeypatch.undo()
    retrain(segnas.zoo.get("fasterseg"), tiny_cfg(), tmp_path / "part", resume=True, progress=False)
    _assert_same_weights(full, load_checkpoint(tmp_path / "part/checkpoints/last.pt"))
    assert [r["step"] for r in val_records(tmp_path / "part")] == [4, 8]
    assert signal.getsignal(signal.SIGINT) is before  # the run put the handler back


def test_resuming_a_finished_run_keeps_its_result(tmp_path):
    g = segnas.zoo.get("fasterseg")
    first = retrain(g, tiny_cfg(), tmp_path / "r", progress=False)
    before = (tmp_path / "r/result.json").read_text()
    again = retrain(g, tiny_cfg(), tmp_path / "r", resume=True, progress=False)
    assert again["already_complete"] and again["best_miou"] == first["best_miou"]
    assert (tmp_path / "r/result.json").read_text() == before


def test_failed_start_can_be_restarted_but_foreign_files_are_kept(tmp_path):
    g = segnas.zoo.get("fasterseg")
    run = tmp_path / "r"
    retrain(g, tiny_cfg(), run, stop_after=1, progress=False)  # dies before its first checkpoint (step 4)
    assert (run / "env.json").is_file() and not (run / "checkpoints").exists()
    retrain(g, tiny_cfg(), run, progress=False)  # starts again cleanly
    assert [r["step"] for r in val_records(run)] == [4, 8]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("# my notes\n")
    with pytest.raises(ConfigError, match="not written by a segnas run"):
        retrain(g, tiny_cfg(), mine, progress=False)
    assert (mine / "config.yaml").read_text() == "# my notes\n"


def test_half_written_metrics_line_does_not_break_resume(tmp_path):
    g = segnas.zoo.get("fasterseg")
    retrain(g, tiny_cfg(), tmp_path / "r", stop_after=6, progress=False)
    with open(tmp_path / "r/metrics.jsonl", "a") as f:
        f.write('{"step": 7, "ep')
    retrain(g, tiny_cfg(), tmp_path / "r", resume=True, progress=False)
    assert [r["step"] for r in val_records(tmp_path / "r")] == [4, 8]


def test_distillation_term_enters_the_loss(tmp_path):
    g = segnas.zoo.get("fasterseg")
    retrain(g, tiny_cfg(epochs=1), tmp_path / "teacher", progress=False)
    runs = {}
    for weight in (0.0, 5.0):
        cfg = tiny_cfg(epochs=1, distill_teacher=str(tmp_path / "teacher"), distill_weight=weight)
        retrain(g, cfg, tmp_path / f"s{weight}", progress=False)
        runs[weight] = load_checkpoint(tmp_path / f"s{weight}/checkpoints/last.pt")["model"]
    assert any(not torch.equal(runs[0.0][k], runs[5.0][k]) for k in runs[0.0] if "weight" in k)


# -- scheduled drop path -------------------------------------------------------------------------

def _adl_genotype():
    """A small released Auto-DeepLab network: going down, strided operators on h(l-1) and h(l-2)."""
    from segnas.spaces import get_space

    return get_space("autodeeplab").make_genotype(
        {"path": [0, 1, 1, 0], "cell": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "atrous_conv_3x3"]},
                                        {"inputs": [2, 0], "ops": ["skip_connect", "max_pool_3x3"]}]},
        {"layers": 4, "blocks": 2, "filter_multiplier": 4, "stem": [8, 8, 16], "aspp_channels": 16,
         "decoder_channels": 16, "low_level_channels": 8, "down_transition": "released"})


def test_drop_path_schedule_is_linear_in_the_global_step():
    from segnas.engine.trainer import drop_path_at

    assert drop_path_at(0, 9, 0.3) == 0.0  # first step: nothing dropped
    assert drop_path_at(4, 9, 0.3) == pytest.approx(0.15)  # middle: half the final value
    assert drop_path_at(8, 9, 0.3) == pytest.approx(0.3)  # last step: the final value
    assert drop_path_at(20, 9, 0.3) == pytest.approx(0.3) and drop_path_at(5, 9, 0.0) == 0.0


def _trainer(drop_path, total=3):
    from segnas.engine.loaders import make_datasets
    from segnas.engine.trainer import Trainer
    from segnas.spaces import get_space

    cfg = tiny_cfg(drop_path=drop_path)
    train, val = make_datasets(cfg.data, cfg.seed)
    torch.manual_seed(0)
    model = get_space("autodeeplab").build(_adl_genotype(), train.num_classes)
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=4)))
    return Trainer(model, cfg.train, train, val, torch.device("cpu"), seed=0, total_steps=total), batch


def _p(trainer):
    from segnas.ops import DropPath

    return {m.p for m in trainer.model.modules() if isinstance(m, DropPath)}


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_drop_path_trains_from_its_second_step_and_follows_the_global_step():
    dropped, batch = _trainer(0.5)
    plain, _ = _trainer(0.0)
    for t in (dropped, plain):
        torch.manual_seed(1)
        t.train_step(*batch)
    assert _p(dropped) == {0.0}  # step 0 of the schedule: the same step as without drop path
    assert _same_weights(dropped, plain)
    for t in (dropped, plain):
        torch.manual_seed(1)
        t.train_step(*batch)
    assert _p(dropped) == {0.25} and dropped.drop_path == 0.25 and _p(plain) == {0.0}
    assert not _same_weights(dropped, plain)
    resumed, _ = _trainer(0.5)
    resumed.load_state_dict(dropped.state_dict())  # step 2: the probability comes from it, not from a fresh count
    resumed.train_step(*batch)
    assert _p(resumed) == {0.5}


def test_drop_path_resume_matches_an_unbroken_run(tmp_path):
    g = _adl_genotype()
    full = retrain(g, tiny_cfg(drop_path=0.3), tmp_path / "full", progress=False)
    assert retrain(g, tiny_cfg(drop_path=0.3), tmp_path / "part", stop_after=6, progress=False)["interrupted"]
    retrain(g, tiny_cfg(drop_path=0.3), tmp_path / "part", resume=True, progress=False)
    a = load_checkpoint(tmp_path / "full/checkpoints/last.pt")
    b = load_checkpoint(tmp_path / "part/checkpoints/last.pt")
    assert a["step"] == b["step"] == full["steps"] == 8
    assert all(torch.equal(t, b["model"][k]) for k, t in a["model"].items())
    logged = {run: [r["drop_path"] for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())
                    if "drop_path" in r] for run in ("full", "part")}
    assert logged["full"] == logged["part"] == pytest.approx([0.3 * k / 7 for k in range(8)])


def test_drop_path_on_a_network_without_drop_path_modules_is_refused():
    from segnas.engine.loaders import make_datasets
    from segnas.engine.trainer import Trainer
    from segnas.spaces import get_space

    cfg = tiny_cfg(drop_path=0.2)
    train, val = make_datasets(cfg.data, cfg.seed)
    model = get_space("fasterseg").build(segnas.zoo.get("fasterseg"), train.num_classes)
    with pytest.raises(ConfigError, match="train.drop_path is 0.2, but this .* has no DropPath module"):
        Trainer(model, cfg.train, train, val, torch.device("cpu"), seed=0)
