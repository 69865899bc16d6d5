"""The shared bilevel loop: trainB batches per architecture step, averaged architecture gradients, their loss."""

import pytest
import torch

from segnas.config import make_config
from segnas.engine.loaders import train_loader
from segnas.errors import ConfigError
from segnas.methods import get_method
from segnas.spaces.autodeeplab.search import AutoDeepLabSearch
from segnas.spaces.fasterseg.search import FasterSegSearch
from segnas.strategies.differentiable import arch_step
from segnas.strategies.halves import epoch_steps, search_data, trainb_batches

from test_fasterseg_search import fake_table, fs_cfg

ADL = get_method("autodeeplab")
# a small supernet for tests of the loop itself
SMALL_ADL = ["search.space_args.layers=3", "search.space_args.blocks=1",
             "search.space_args.ops=[sep_conv_3x3,skip_connect,none]"]


def _cfg(**search):
    return ADL.config("tiny", overrides=SMALL_ADL,
                      extra={"data": {"dataset": "synthetic"}, **({"search": search} if search else {})})


def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))


def test_one_trainb_batch_per_step_is_the_epochs_single_pass(tmp_path):
    cfg = _cfg(batch_size=2, steps_per_epoch=None)
    data = search_data(cfg, tmp_path)
    sc = cfg.search
    steps = epoch_steps(sc, data)
    got = list(trainb_batches(data, sc, 5, epoch=2))
    want = list(train_loader(data.train_b, sc.batch_size, 5, 2))[:steps]
    assert len(got) == steps and _same(got, want)


def test_several_trainb_batches_per_step_resume_where_they_stopped(tmp_path):
    cfg = _cfg(batch_size=2, steps_per_epoch=None, arch_batches=3)
    data = search_data(cfg, tmp_path)
    sc = cfg.search
    steps, per_pass = epoch_steps(sc, data), len(data.train_b) // sc.batch_size
    full = list(trainb_batches(data, sc, 5, epoch=1))
    assert len(full) >= 3 * steps > per_pass  # more than one pass over trainB in an epoch
    tail = list(trainb_batches(data, sc, 5, epoch=1, start_step=2))
    assert _same(tail, full[6:])
    # each pass is its own shuffle: the second pass is not the first one repeated
    assert not _same(full[per_pass:2 * per_pass], full[:per_pass])
    # and another epoch draws other batches
    assert not _same(list(trainb_batches(data, sc, 5, epoch=2))[:3], full[:3])


def _arch_grads(problem, batches):
    arch_step(problem, batches, torch.device("cpu"))
    return [p.grad.clone() for p in problem.arch_parameters()]


def test_arch_step_averages_the_gradients_of_its_batches():
    torch.manual_seed(0)
    problem = AutoDeepLabSearch(_cfg(), num_classes=4, ignore_index=255)
    b1 = (torch.randn(2, 3, 48, 48), torch.randint(0, 4, (2, 48, 48)))
    b2 = (torch.randn(2, 3, 48, 48), torch.randint(0, 4, (2, 48, 48)))
    g1, g2 = _arch_grads(problem, [b1]), _arch_grads(problem, [b2])
    both = _arch_grads(problem, [b1, b2])
    assert all(torch.allclose(m, (a + b) / 2, atol=1e-7) for m, a, b in zip(both, g1, g2))
    assert all(torch.allclose(m, a, atol=1e-7) for m, a in zip(_arch_grads(problem, [b1, b1]), g1))
    assert all(p.grad is None for p in problem.weight_parameters())


def test_search_with_several_trainb_batches_per_step_resumes_to_the_same_genotype(tmp_path):
    cfg = _cfg(arch_batches=3)
    full = ADL.search(cfg, tmp_path / "full", progress=False)
    assert full["final"]["arch_signal"]["steps"] == epoch_steps(cfg.search, search_data(cfg, tmp_path))
    assert ADL.search(cfg, tmp_path / "killed", stop_after=3, progress=False)["interrupted"]
    ADL.search(cfg, tmp_path / "killed", resume=True, progress=False)
    assert (tmp_path / "killed" / "genotype.json").read_text() == (tmp_path / "full" / "genotype.json").read_text()


@pytest.mark.parametrize("arch_loss", [None, "ce"])
def test_fasterseg_architecture_loss_is_ohem_or_plain_cross_entropy(arch_loss):
    torch.manual_seed(0)
    # OHEM keeps only the two hardest pixels here (none is under p = 0.05), so the two losses differ
    cfg = fs_cfg(search={"arch_loss": arch_loss}, ohem_thresh=0.05, ohem_min_kept=2)
    search = FasterSegSearch(cfg, 3, 255, fake_table(), seed=0)
    images, masks = torch.randn(2, 3, 64, 96), torch.randint(0, 3, (2, 64, 96))
    masks[:, :32] = 255
    logs = search.arch_backward(images, masks)
    with torch.no_grad():  # the teacher runs at its widest: deterministic, so the loss can be recomputed
        preds = search.net(images, "teacher", search.net.sample_widths("teacher", "max"))
    target = masks[:, ::8, ::8]
    ce = sum(torch.nn.functional.cross_entropy(p, target[:, : p.shape[-2], : p.shape[-1]], ignore_index=255)
             for p in preds.values())
    ohem = search._loss(preds, masks)  # the weights' loss, OHEM
    assert float(ohem) > float(ce)  # OHEM averages the hardest pixels only
    assert float(logs["arch_loss_teacher"]) == pytest.approx(float(ce if arch_loss == "ce" else ohem), rel=1e-5)


def test_arch_loss_is_checked():
    with pytest.raises(ConfigError, match="search.arch_loss.*ohem, ce"):
        make_config("tiny", overrides=["search.arch_loss=focal"])
    with pytest.raises(ConfigError, match="search.arch_batches"):
        make_config("tiny", overrides=["search.arch_batches=0"])
    with pytest.raises(ConfigError, match="search.arch_loss: Auto-DeepLab"):
        ADL.config("tiny", overrides=["search.arch_loss=ohem"])


def test_fasterseg_architecture_sandwich_averages_gumbel_max_and_min_widths():
    torch.manual_seed(0)
    search = FasterSegSearch(fs_cfg(latency_lambda=0.0), 3, 255, fake_table(), seed=0)
    assert len(search.net.specs["student"]["chis"]) > 1
    images, masks = torch.randn(2, 3, 64, 96), torch.randint(0, 3, (2, 64, 96))
    names = [k for k in search.net.arch if k.startswith("student")]
    student = [search.net.arch[k] for k in names]
    start = search.generator.get_state()

    def grads(sandwich: bool):
        search.cfg.sandwich_arch = sandwich
        search.generator.set_state(start)
        for p in search.arch_parameters():
            p.grad = None
        logs = {k: float(v) for k, v in search.arch_backward(images, masks).items()}
        return [p.grad.clone() for p in student], logs

    g_gumbel, _ = grads(False)
    fixed = []
    for mode in ("max", "min"):  # the deterministic widths, one pass each
        for p in search.arch_parameters():
            p.grad = None
        preds = search.net(images, "student", search.net.sample_widths("student", mode))
        search._loss(preds, masks, search.arch_criterion).backward(inputs=student)
        fixed.append([p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in student])
    g_all, logs = grads(True)
    gamma = [i for i, k in enumerate(names) if "gamma" in k]
    assert gamma and all(fixed[0][i].abs().sum() == 0 and fixed[1][i].abs().sum() == 0 for i in gamma)
    for i, (a, b, c, mean) in enumerate(zip(g_gumbel, *fixed, g_all)):
        assert torch.allclose(mean, (a + b + c) / 3, atol=1e-6), i
    assert logs["arch_loss_student"] == pytest.approx(
        (logs["arch_loss_student_gumbel"] + logs["arch_loss_student_max"] + logs["arch_loss_student_min"]) / 3)
    assert logs["arch_loss_student_max"] != logs["arch_loss_student_min"]


class Recorder:
    """Hooks that log what the loop calls them with, and a per-epoch schedule written into the record."""

    def __init__(self):
        self.events, self.weights = [], {}

    def on_phase_start(self, phase, problem):
        self.events.append(("phase", phase.name))
        self.weights[f"start {phase.name}"] = problem.weight_parameters()[0].detach().clone()

    def on_epoch_start(self, epoch, phase, problem):
        self.events.append(("epoch", epoch, phase.name))

    def on_epoch_end(self, epoch, searching, record, problem):
        self.weights[f"end {epoch}"] = problem.weight_parameters()[0].detach().clone()
        record["tau"] = 1.0 / (epoch + 1)
        return f"tau {record['tau']:.2f}"


def test_phases_and_hooks_drive_the_loop_and_a_resume_does_not_repeat_a_phase_start(tmp_path):
    from segnas.strategies.differentiable import Phase, run_differentiable

    phases = [Phase("warmup", 1, False), Phase("stage2", 2, True, reset_weights=True)]
    cfg = _cfg()
    hooks = Recorder()
    full = run_differentiable(ADL, cfg, tmp_path / "full", progress=False, phases=phases, hooks=[hooks])
    assert hooks.events == [("phase", "warmup"), ("epoch", 0, "warmup"), ("phase", "stage2"), ("epoch", 1, "stage2"),
                            ("epoch", 2, "stage2")]
    # the second phase started from fresh weights, not from where the first one ended
    assert not torch.equal(hooks.weights["start stage2"], hooks.weights["end 0"])
    records = [r for r in adl_records(tmp_path / "full") if "architectures" in r]
    assert [r["phase"] for r in records] == ["warmup", "stage2", "stage2"]
    assert [r["tau"] for r in records] == pytest.approx([1.0, 1 / 2, 1 / 3])
    assert "arch_signal" not in records[0] and records[1]["arch_signal"]["steps"] == 2
    assert records[1]["arch_signal"]["planned_steps"] == 4 and full["epochs"] == 3
    again = Recorder()
    # killed in stage2's second epoch: the checkpoint after its first epoch is where it resumes
    assert run_differentiable(ADL, cfg, tmp_path / "killed", stop_after=5, progress=False, phases=phases,
                              hooks=[Recorder()])["interrupted"]
    run_differentiable(ADL, cfg, tmp_path / "killed", resume=True, progress=False, phases=phases, hooks=[again])
    assert again.events == [("epoch", 2, "stage2")]  # inside stage2: its start (and weight reset) is not redone
    assert (tmp_path / "killed" / "genotype.json").read_text() == (tmp_path / "full" / "genotype.json").read_text()


def adl_records(run):
    import json

    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_resume_at_a_phase_boundary_redoes_the_phase_start(tmp_path):
    from segnas.strategies.differentiable import Phase, run_differentiable

    phases = [Phase("warmup", 1, False), Phase("stage2", 1, True, reset_weights=True)]
    cfg = _cfg()
    run_differentiable(ADL, cfg, tmp_path / "full", progress=False, phases=phases)
    # killed inside stage2's first epoch: the last checkpoint is warmup's end, before stage2 started
    assert run_differentiable(ADL, cfg, tmp_path / "killed", stop_after=3, progress=False, phases=phases)["interrupted"]
    again = Recorder()
    run_differentiable(ADL, cfg, tmp_path / "killed", resume=True, progress=False, phases=phases, hooks=[again])
    assert again.events == [("phase", "stage2"), ("epoch", 1, "stage2")]
    assert (tmp_path / "killed" / "genotype.json").read_text() == (tmp_path / "full" / "genotype.json").read_text()


def test_poly_search_schedule_falls_from_lr_to_lr_min_as_dcnas_uses_it():
    from types import SimpleNamespace

    from segnas.strategies.differentiable import search_lr

    sc = SimpleNamespace(lr_schedule="poly", lr=0.01, lr_min=0.0, poly_power=0.9, lr_decay=0.9)
    assert search_lr(sc, 0, 0, 10) == pytest.approx(0.01)
    assert search_lr(sc, 0, 5, 10) == pytest.approx(0.01 * 0.5 ** 0.9)  # 0.005359
    assert search_lr(sc, 0, 10, 10) == pytest.approx(0.0)
    sc.lr_min = 0.001
    assert search_lr(sc, 0, 5, 10) == pytest.approx(0.001 + 0.009 * 0.5 ** 0.9)
