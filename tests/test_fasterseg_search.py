"""FasterSeg search: supernet gradients, relaxed latency, derivation, branch choice, search runs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segnas.config import make_config
from segnas.methods import get_method
from segnas.genotype import load as load_genotype
from segnas.objectives import LatencyTable, latency_environment
from segnas.spaces import get_space
from segnas.spaces.fasterseg.derive import backtrace, decode_branch, select
from segnas.spaces.fasterseg.lut import RelaxedLatency, cell_key, scale_sizes, space_keys, stem_key
from segnas.spaces.fasterseg.search import FasterSegSearch
from segnas.spaces.fasterseg.supernet import FasterSegSupernet

OPS = ["skip", "conv", "conv_2x", "zoomed_conv", "zoomed_conv_2x"]
ARGS = {"layers": 5, "ops": OPS, "chis": [1, 2], "stem_chi": 1, "head_chi": 1, "branches": 2}
HW = (64, 96)


def fs_cfg(space_args=ARGS, search=None, **fasterseg):
    """A FasterSeg search config over ``space_args``, the latency at HW, teacher ratio 2."""
    return get_method("fasterseg").config("tiny", extra={
        "search": {"space_args": dict(space_args), **(search or {})},
        "fasterseg": {"deploy_size": list(HW), "teacher_chi": 2, **fasterseg}})


def fake_table(args=ARGS, hw=HW, num_classes=3, teacher_chi=2) -> LatencyTable:
    """A table with distinct made-up latencies for every entry the space can ask for."""
    rng = np.random.default_rng(0)
    keys = space_keys(args, hw, num_classes, teacher_chi)
    return LatencyTable(latency_environment("cpu"), {k.id: float(v) for k, v in zip(keys, rng.uniform(1, 9, len(keys)))})


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return FasterSegSupernet(ARGS, num_classes=3, teacher_chi=2, cosearch=True)


def _grad_names(net, prefix):
    return {n for n, p in net.arch.items() if n.startswith(prefix) and p.grad is not None and p.grad.abs().sum() > 0}


def test_task_loss_reaches_alpha_beta_gamma_of_the_student_only(supernet):
    supernet.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(0)
    widths = supernet.sample_widths("student", "gumbel", g)
    preds = supernet(torch.randn(2, 3, 64, 64), "student", widths)
    assert set(preds) == {(0,), (1,), (2,), (0, 1), (0, 2), (1, 2)}
    assert all(p.shape == (2, 3, 8, 8) for p in preds.values())
    sum(p.pow(2).mean() for p in preds.values()).backward()
    assert _grad_names(supernet, "student") == {f"student_{k}{j}" for k in ("alpha", "gamma") for j in range(3)} | {
        "student_beta1", "student_beta2"}
    assert not _grad_names(supernet, "teacher")
    assert all(p.grad is None for p in supernet.stems["teacher"].parameters())


def test_teacher_runs_widest_and_has_no_width_parameters(supernet):
    assert not any(n.startswith("teacher_gamma") for n in supernet.arch)
    widths = supernet.sample_widths("teacher", "gumbel", torch.Generator())
    assert {i for i, _ in widths.values()} == {0} and supernet.specs["teacher"]["chis"] == [2]


def test_latency_loss_reaches_alpha_beta_gamma_and_no_weight(supernet):
    search = FasterSegSearch(fs_cfg(), 3, 255, fake_table(), seed=0)
    net = search.net
    net.zero_grad(set_to_none=True)
    widths = net.sample_widths("student", "gumbel", torch.Generator().manual_seed(1))
    lat, parts = search.decoupled_latency(widths)
    lat.backward()
    assert _grad_names(net, "student") == {f"student_{k}{j}" for k in ("alpha", "gamma") for j in range(3)} | {
        "student_beta1", "student_beta2"}
    assert all(p.grad is None for p in net.weight_parameters())
    assert all(v > 0 for v in parts.values())


def test_each_search_step_computes_only_its_own_gradients():
    cfg = fs_cfg(ohem_min_kept=16)
    torch.manual_seed(0)
    search = FasterSegSearch(cfg, 3, 255, fake_table(), seed=0)
    images, masks = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    search.weight_backward(images, masks, pretrain=False)  # the student's widths drawn by Gumbel-softmax
    assert all(p.grad is None for p in search.arch_parameters())
    assert sum(p.grad is not None for p in search.weight_parameters()) > 0.5 * len(search.weight_parameters())
    search.net.zero_grad(set_to_none=True)
    search.arch_backward(images, masks)
    assert all(p.grad is None for p in search.weight_parameters())
    assert _grad_names(search.net, "student") == {f"student_{k}{j}" for k in ("alpha", "gamma") for j in range(3)} | {
        "student_beta1", "student_beta2"}
    assert {f"teacher_alpha{j}" for j in range(3)} <= _grad_names(search.net, "teacher")


def test_relaxed_latency_equals_the_table_sum_for_one_hot_architecture_weights():
    table, L = fake_table(), ARGS["layers"]
    chis, stem_chi, head_chi = ARGS["chis"], ARGS["stem_chi"], ARGS["head_chi"]
    relaxed = RelaxedLatency(table, ARGS, HW, chis, stem_chi, head_chi)
    rng = np.random.default_rng(3)
    op_idx = {(l, j): int(rng.integers(len(OPS))) for l in range(L) for j in range(min(l, 2) + 1)}
    w_idx = {(l, j): int(rng.integers(len(chis))) for l in range(1, L) for j in range(min(l, 2) + 1)}
    # one path per final scale, beta one-hot along them: into 1/16 at node (2, 1), into 1/32 at (3, 2)
    paths = {0: [0, 0, 0, 0, 0], 1: [0, 0, 1, 1, 1], 2: [0, 0, 1, 2, 2]}
    alphas = [torch.zeros(L - j, len(OPS)) for j in range(3)]
    for (l, j), k in op_idx.items():
        alphas[j][l - j, k] = 1.0
    betas = [None, torch.zeros(L - 2, 2), torch.zeros(L - 3, 2)]
    betas[1][:, 1] = 1.0  # 1/16 nodes take the same-scale input ...
    betas[1][2 - 2] = torch.tensor([1.0, 0.0])  # ... except node (2, 1), reached by downsampling
    betas[2][:, 1] = 1.0
    betas[2][3 - 3] = torch.tensor([1.0, 0.0])
    widths = {n: torch.nn.functional.one_hot(torch.tensor(i), len(chis)).float() for n, i in w_idx.items()}
    got = relaxed.expected(alphas, betas, widths)
    sizes = scale_sizes(HW)
    for j, path in paths.items():
        total = table.lookup(stem_key(stem_chi, HW))
        for l in range(L):
            s = 8 * 2 ** path[l]
            c_in = 8 * stem_chi if l == 0 else s * chis[w_idx[l, path[l]]]
            if l == L - 1:
                c_out, stride = s * head_chi, 1
            else:
                stride = 2 if path[l + 1] > path[l] else 1
                c_out = s * stride * chis[w_idx[l + 1, path[l + 1]]]
            total += table.lookup(cell_key(OPS[op_idx[l, path[l]]], s, c_in, c_out, stride, sizes))
        assert got[j].item() == pytest.approx(total, rel=1e-5)


def _all_paths(L: int, final: int) -> list[list[int]]:
    import itertools
    paths = [[0] + [int(v) for v in np.cumsum(steps)] for steps in itertools.product([0, 1], repeat=L - 1)]
    return [p for p in paths if p[-1] == final]


def test_backtrace_maximises_the_joint_down_probability_as_brute_force_does():
    """Paper footnote 2: only beta0 at the downsampling cells counts, whatever the path's length at each scale."""
    rng = np.random.default_rng(1)
    L = 7
    for _ in range(20):
        betas = [None] + [rng.dirichlet([1, 1], size=L - 1 - j) for j in (1, 2)]

        def score(path):
            downs = [l for l in range(1, L) if path[l] > path[l - 1]]
            if not all(path[l] - 1 <= l - 2 for l in downs):  # a down cell without beta (one input) is no choice
                return -1.0
            return float(np.prod([betas[path[l]][l - path[l] - 1][0] for l in downs]))

        for final in range(3):
            best = max(_all_paths(L, final), key=score)
            assert backtrace(betas, final, L) == best


def test_backtrace_is_not_drawn_to_late_downsampling_and_ties_go_early():
    L = 8
    uniform = [None, np.full((L - 2, 2), 0.5), np.full((L - 3, 2), 0.5)]
    assert backtrace(uniform, 1, L) == [0, 0, 1, 1, 1, 1, 1, 1]  # first cell with a beta
    assert backtrace(uniform, 2, L) == [0, 0, 1, 2, 2, 2, 2, 2]
    assert backtrace(uniform, 0, L) == [0] * L
    # random betas spread the single downsampling over every position with a beta
    rng = np.random.default_rng(0)
    firsts = [backtrace([None] + [rng.dirichlet([1, 1], size=L - 1 - j) for j in (1, 2)], 1, L).index(1)
              for _ in range(1200)]
    counts = np.bincount(firsts, minlength=L)[2:]
    assert len(counts) == L - 2 and counts.min() > 120  # ~200 each; a path-product decoder put 60% on the last
    # too few layers for any beta: the forced path
    assert backtrace([None, np.zeros((0, 2)), np.zeros((0, 2))], 2, 3) == [0, 1, 2]


def _hand_set_arrays():
    """L = 9, the 1/32 branch path [0,0,0,1,1,1,2,2,2] with skips chosen to exercise every rule."""
    L, n = 9, len(OPS)
    path = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    alphas = [np.full((L - j, n), 1.0 / n) for j in range(3)]
    wanted = {  # cell: (probabilities over skip, conv, conv_2x, zoomed_conv, zoomed_conv_2x)
        0: [0.60, 0.10, 0.20, 0.05, 0.05],  # skip candidate, weakest of three: becomes conv_2x
        1: [0.00, 0.70, 0.10, 0.10, 0.10],  # conv
        2: [0.50, 0.10, 0.10, 0.10, 0.20],  # downsampling skip: never removed, next best zoomed_conv_2x
        3: [0.70, 0.05, 0.05, 0.15, 0.05],  # all-skip segment after a down: removed (stronger skip)
        4: [0.50, 0.05, 0.05, 0.10, 0.30],  # ... the weaker skip of that segment stays: zoomed_conv_2x
        5: [0.00, 0.10, 0.60, 0.10, 0.20],  # down: conv_2x
        6: [0.00, 0.10, 0.10, 0.70, 0.10],  # zoomed_conv
        7: [0.00, 0.80, 0.10, 0.05, 0.05],  # conv (becomes the last cell)
        8: [0.90, 0.05, 0.05, 0.00, 0.00],  # last cell, strongest skip: removed
    }
    for i, p in wanted.items():
        alphas[path[i]][i - path[i]] = np.array(p)
    betas = [None, np.full((L - 2, 2), 0.5), np.full((L - 3, 2), 0.5)]
    for l in range(1, L):
        j = path[l]
        if j >= 1 and l - 1 >= j:
            betas[j][l - j - 1] = [0.9, 0.1] if path[l] > path[l - 1] else [0.1, 0.9]
    chis = [1, 2]
    gammas = [np.full((L - max(j, 1), 2), 0.5) for j in range(3)]
    out_w = {0: 1, 1: 0, 2: 1, 3: 0, 4: 1, 5: 0, 6: 1, 7: 0}  # width index of each cell's output
    for i, w in out_w.items():
        j = path[i + 1]
        gammas[j][i + 1 - max(j, 1)] = [0.8, 0.2] if w == 0 else [0.2, 0.8]
    return alphas, betas, gammas, chis, path


def test_hand_set_architecture_derives_the_known_branch():
    alphas, betas, gammas, chis, path = _hand_set_arrays()
    args = dict(ARGS, layers=9)
    assert backtrace(betas, 2, 9) == path
    cells = decode_branch(alphas, betas, gammas, args, 2, chis, head_chi=1)
    assert cells == [
        {"op": "conv_2x", "scale": 8, "chi": 2},
        {"op": "conv", "scale": 8, "chi": 1},
        {"op": "zoomed_conv_2x", "scale": 8, "chi": 2},  # down, its output is at 1/16
        {"op": "zoomed_conv_2x", "scale": 16, "chi": 2},
        {"op": "conv_2x", "scale": 16, "chi": 1},
        {"op": "zoomed_conv", "scale": 32, "chi": 2},
        {"op": "conv", "scale": 32, "chi": 1},  # now the last cell: head width
    ]
    g = get_space("fasterseg").make_genotype({"branches": [{"cells": cells}]}, args)
    assert "skip" not in json.dumps(g.structure)


def test_skip_removal_keeps_the_minimum_depth():
    L = 6
    alphas = [np.tile([0.9, 0.1, 0.0, 0.0, 0.0], (L - j, 1)) for j in range(3)]  # skip everywhere
    betas = [None, np.full((L - 2, 2), 0.5), np.full((L - 3, 2), 0.5)]
    cells = decode_branch(alphas, betas, None, dict(ARGS, layers=L), 0, [1, 2], head_chi=1)
    assert len(cells) == round(L / 3) and all(c["op"] == "conv" for c in cells)
    cells = decode_branch(alphas, betas, None, dict(ARGS, layers=L), 1, [1, 2], head_chi=1)
    assert len(cells) == round(L / 3) + 2 and cells[-1]["scale"] == 16


def test_random_samples_are_derived_networks_of_the_search_space():
    """Random baselines draw what a search can output: no skip, removed cells, every operator and width."""
    space, args = get_space("fasterseg"), dict(ARGS, layers=8, chis=[1, 2, 3], head_chi=2)
    rng = np.random.default_rng(0)
    samples = [space.sample(rng, args) for _ in range(300)]
    cells = [c for g in samples for b in g.structure["branches"] for c in b["cells"]]
    assert "skip" not in {c["op"] for c in cells} and {c["op"] for c in cells} == set(OPS[1:])
    assert {c["chi"] for c in cells} == {1, 2, 3}
    depths = [len(b["cells"]) for g in samples for b in g.structure["branches"]]
    assert min(depths) >= round(8 / 3) and max(depths) == 8 and sum(depths) / len(depths) < 8  # skips removed
    for g in samples:
        finals = [b["cells"][-1]["scale"] for b in g.structure["branches"]]
        assert len(set(finals)) == 2 and finals == sorted(finals, reverse=True)
        assert all(b["cells"][-1]["chi"] == 2 for b in g.structure["branches"])
        space.validate(g)
    assert space.sample(np.random.default_rng(5), args).archid == space.sample(np.random.default_rng(5), args).archid


def test_branch_choice_trades_accuracy_for_latency():
    fast = {"name": "16+32", "miou": 0.70, "latency_ms": 10.0}
    slow = {"name": "8+32", "miou": 0.72, "latency_ms": 20.0}
    assert select([slow, fast], None, -0.07)["name"] == "16+32"  # 0.70 * 10^-0.07 > 0.72 * 20^-0.07
    assert select([slow, fast], None, 0.0)["name"] == "8+32"  # accuracy alone (the teacher)
    assert select([slow, fast], 15.0, -0.07)["name"] == "16+32"  # the target only rescales


def test_search_derives_hand_set_parameters_and_picks_branches(monkeypatch):
    alphas, betas, gammas, chis, path = _hand_set_arrays()
    args = dict(ARGS, layers=9)
    search = FasterSegSearch(fs_cfg(args), 3, 255, fake_table(args), seed=0)
    with torch.no_grad():
        for j in range(3):
            search.net.arch[f"student_alpha{j}"].copy_(torch.log(torch.tensor(alphas[j]).clamp_min(1e-9)))
            search.net.arch[f"student_gamma{j}"].copy_(torch.log(torch.tensor(gammas[j])))
        for j in (1, 2):
            search.net.arch[f"student_beta{j}"].copy_(torch.log(torch.tensor(betas[j])))
    accs = {(0,): .1, (1,): .1, (2,): .1, (0, 1): 0.50, (0, 2): 0.60, (1, 2): 0.59}
    monkeypatch.setattr(search, "head_accuracy", lambda name, loader: accs)
    out = search.derive(loader=[])
    student = out["genotypes"]["student"]
    rows = {r["branches"]: r for r in out["records"]["student"]["candidates"]}
    expected = select([rows["8+16"], rows["8+32"], rows["16+32"]], None, -0.07)
    assert student.meta["branches"] == expected["branches"]
    branch32 = student.structure["branches"][0]["cells"]
    assert [c["op"] for c in branch32] == ["conv_2x", "conv", "zoomed_conv_2x", "zoomed_conv_2x", "conv_2x",
                                           "zoomed_conv", "conv"]
    assert out["genotypes"]["teacher"].meta["branches"] == "8+32"  # best accuracy, latency ignored
    assert all(c["chi"] == 2 for b in out["genotypes"]["teacher"].structure["branches"] for c in b["cells"])


def _tiny_cfg(**search):
    return get_method("fasterseg").config("tiny", extra={"data": {"dataset": "synthetic"},
                                                         **({"search": search} if search else {})})


@pytest.fixture(scope="module")
def tiny_search(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "run"
    return out, get_method("fasterseg").search(_tiny_cfg(), out, progress=False)


def test_tiny_search_writes_every_epochs_genotypes(tiny_search):
    out, result = tiny_search
    assert (out / "student.json").is_file() and (out / "teacher.json").is_file()
    assert sorted(p.name for p in (out / "genotypes").iterdir()) == [
        "epoch001_student.json", "epoch001_teacher.json", "epoch002_student.json", "epoch002_teacher.json"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("lat_scale" in r for r in records)  # the architecture step ran with the latency loss
    epochs = [r for r in records if "architectures" in r]
    assert "arch_signal" not in epochs[0]  # pretraining has no architecture steps
    signal = epochs[1]["arch_signal"]
    assert signal["steps"] == 2 and signal["planned_steps"] == 2 and signal["rows"] > 0
    student = load_genotype(out / "student.json")
    assert student.meta["estimated_latency_ms"] > 0 and "skip" not in json.dumps(student.structure)
    table = json.loads((out / "latency_table.json").read_text())
    assert table["calibration"]["networks"] == 6 and table["calibration"]["factor"] > 0


def test_resumed_search_ends_with_the_identical_genotypes(tiny_search, tmp_path):
    out, _ = tiny_search
    cfg = _tiny_cfg()
    again = tmp_path / "killed"
    # the shared table makes timings identical between the two runs (measurements are noisy)
    cfg.fasterseg.lut = str(out / "latency_table.json")
    full, method = tmp_path / "full", get_method("fasterseg")
    method.search(cfg, full, progress=False)
    assert method.search(cfg, again, stop_after=3, progress=False)["interrupted"]
    method.search(cfg, again, resume=True, progress=False)
    for name in ("student", "teacher"):
        assert (again / f"{name}.json").read_text() == (full / f"{name}.json").read_text()
    ca = torch.load(again / "checkpoints" / "last.pt", weights_only=True)
    cb = torch.load(full / "checkpoints" / "last.pt", weights_only=True)
    a, b = ca["search"]["net"], cb["search"]["net"]
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert ca["history"] == cb["history"] and cb["history"][-1]["arch_signal"]["steps"] == 2


def test_searched_genotype_round_trips_into_retrain(tiny_search, tmp_path):
    from segnas.engine import retrain

    out, _ = tiny_search
    g = load_genotype(out / "student.json")
    assert get_space("fasterseg").build(g, 8) is not None
    cfg = make_config("tiny", overrides=["train.epochs=1"], extra={"data": {"dataset": "synthetic"}})
    result = retrain(g, cfg, tmp_path / "student", progress=False)
    assert result["archid"] == g.archid and 0 <= result["best_miou"] <= 1
    assert load_genotype(tmp_path / "student" / "genotype.json").archid == g.archid


def test_adaptive_lambda_moves_toward_the_target():
    cfg = fs_cfg(target_latency_ms=10.0, adaptive_lambda=True, latency_lambda=0.01)
    search = FasterSegSearch(cfg, 3, 255, fake_table(), seed=0)
    search.adapt_lambda(5.0)  # faster than the target: relax the latency pressure
    assert search.latency_lambda == pytest.approx(0.005)
    search.adapt_lambda(20.0)
    search.adapt_lambda(20.0)  # slower: push harder
    assert search.latency_lambda == pytest.approx(0.02)
    search.adapt_lambda(10.5)  # inside the band: unchanged
    assert search.latency_lambda == pytest.approx(0.02)
    with pytest.raises(Exception, match="target_latency_ms"):
        get_method("fasterseg").config("tiny", overrides=["fasterseg.adaptive_lambda=true"])


def test_seeded_search_steps_decode_the_genotypes_they_did_before_the_rebuild_on_segnas_choices():
    from segnas.strategies.differentiable import search_step

    torch.manual_seed(0)
    search = FasterSegSearch(fs_cfg(ohem_min_kept=16, sandwich_random=2), 3, 255, fake_table(), seed=0)
    opt_w = torch.optim.SGD(search.weight_parameters(), lr=0.01, momentum=0.9)
    opt_a = torch.optim.Adam(search.arch_parameters(), lr=0.05, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(1)
    for step in range(4):  # one pretraining step, then three with architecture steps
        batch = (torch.randn(2, 3, 64, 96, generator=g), torch.randint(0, 3, (2, 64, 96), generator=g))
        search_step(search, opt_w, opt_a, batch, [batch] if step else [], torch.device("cpu"), 5.0)
    out = search.derive(None)
    # what the same steps gave with the supernet's own mixed operator and Gumbel sampling (d86c21f),
    # whose genotypes predate space_args.fusion (the fusion block is no part of the search)
    assert all(g.space_args.pop("fusion") == "plain" for g in out["genotypes"].values())
    assert {k: g.archid for k, g in out["genotypes"].items()} == {"teacher": "6cac6bcca2ccf780",
                                                                 "student": "679fa8549ed9d92f"}
    with torch.no_grad():
        assert float(sum(p.double().sum() for p in search.arch_parameters())) == pytest.approx(0.509895954746753,
                                                                                              rel=1e-9)


# -- the authors' decoding of their released search ----------------------------------------------
AUTHORS_FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "fasterseg_authors_search_output.json"
# the fixture's alpha columns follow the authors' operator list, not segnas' OPS
AUTHORS_OPS = ["skip", "conv", "zoomed_conv", "conv_2x", "zoomed_conv_2x"]


def _softmax(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _authors_arrays(arch: int):
    if not AUTHORS_FIXTURE.is_file():
        pytest.skip(f"{AUTHORS_FIXTURE} is absent (the shared fixtures sit beside the repository)")
    data = json.loads(AUTHORS_FIXTURE.read_text())[f"arch_{arch}"]
    order = [AUTHORS_OPS.index(op) for op in OPS]
    alphas = [_softmax(data[f"alpha_{arch}_{j}"])[:, order] for j in range(3)]
    betas = [None] + [_softmax(data[f"beta_{arch}_{j}"]) for j in (1, 2)]
    gammas = [_softmax(data[f"ratio_{arch}_{j}"]) for j in range(3)]
    return alphas, betas, gammas


def test_authors_rule_decodes_their_released_search_to_the_published_student():
    zoo = get_space("fasterseg").resolve_args(None)
    published = __import__("segnas").zoo.get("fasterseg")
    alphas, betas, gammas = _authors_arrays(1)
    branches = [decode_branch(alphas, betas, gammas, zoo, final, zoo["chis"], zoo["head_chi"], path_rule="authors")
                for final in (2, 1)]
    assert branches == [b["cells"] for b in published.structure["branches"]]
    g = get_space("fasterseg").make_genotype({"branches": [{"cells": c} for c in branches]}, zoo)
    assert g.archid == published.archid
    # the paper's joint argmax reads the same betas differently: the rules are different decodings
    paper = decode_branch(alphas, betas, gammas, zoo, 2, zoo["chis"], zoo["head_chi"], path_rule="paper")
    assert [c["scale"] for c in paper] != [c["scale"] for c in branches[0]]


def test_authors_teacher_keeps_every_cell_with_ignore_skip():
    args = get_space("fasterseg").resolve_args(None)
    alphas, betas, _ = _authors_arrays(0)
    kept = decode_branch(alphas, betas, None, args, 2, [12], 12, path_rule="authors", ignore_skip=True)
    shrunk = decode_branch(alphas, betas, None, args, 2, [12], 12, path_rule="authors")
    assert len(kept) == 16 and "skip" not in {c["op"] for c in kept}
    # b16[i][0] peaks at i = 4 (0.524) and b32[j][0] over j <= 11 at j = 11 (0.511): downs after cells 5 and 13
    assert [c["scale"] for c in kept] == [8] * 6 + [16] * 8 + [32] * 2
    assert len(shrunk) < 16  # the teacher's alphas favour skip at 1/8: the paper's rule removes those cells
    # a cell whose best operator is not skip is the same either way
    for i, c in enumerate(kept):
        p = alphas[[8, 16, 32].index(c["scale"])][i - [8, 16, 32].index(c["scale"])]
        if int(np.argmax(p)) != 0:
            assert c["op"] == OPS[int(np.argmax(p))]


def test_authors_path_rule_on_hand_set_betas():
    from segnas.spaces.fasterseg.derive import authors_path
    L = 8
    b16, b32 = np.full((L - 2, 2), 0.5), np.full((L - 3, 2), 0.5)
    b16[3] = [0.9, 0.1]
    assert authors_path([None, b16, b32], 1, L) == [0, 0, 0, 0, 1, 1, 1, 1]  # downs[3]: cell 4 is the first at 1/16
    b16[4] = [0.95, 0.05]  # the last row is outside the 1/16 rule's range: ignored
    b16[5] = [0.99, 0.01]
    assert authors_path([None, b16, b32], 1, L) == [0, 0, 0, 0, 0, 1, 1, 1]
    # 1/32: j in 0..L-5 = 0..3 and i in 1..j-2, so (1, 3) is the only pair; downs[2] and downs[5]
    assert authors_path([None, b16, b32], 2, L) == [0, 0, 0, 1, 1, 1, 2, 2]
    assert authors_path([None, b16, b32], 0, L) == [0] * L
    with pytest.raises(ValueError, match="5 or more layers"):
        authors_path([None, b16[:2], b32[:1]], 2, 4)


def test_path_rule_and_teacher_skip_reach_the_search_decoding():
    torch.manual_seed(0)
    args = dict(ARGS, layers=6)
    cfg = fs_cfg(args, path_rule="authors", teacher_ignore_skip=True)
    search = FasterSegSearch(cfg, 3, 255, fake_table(args), seed=0)
    with torch.no_grad():
        for name in ("teacher", "student"):
            search.net.arch[f"{name}_alpha0"][:, 0] = 5.0  # skip strongest everywhere at 1/8
    branches = search.branches("teacher")
    assert all(len(cells) == 6 for cells in branches.values())  # no cell removed
    assert len(search.branches("student")[0]) == 2  # the student's 1/8 branch shrinks to round(6 / 3) cells
    alphas, betas, _ = search.arch_arrays("student")
    from segnas.spaces.fasterseg.derive import authors_path
    assert [[8, 16, 32].index(c["scale"]) for c in branches[2]] == authors_path(betas, 2, 6)
    with pytest.raises(Exception, match="path_rule"):
        fs_cfg(args, path_rule="nearest")
    with pytest.raises(Exception, match="there is no teacher"):
        fs_cfg(args, teacher_ignore_skip=True, cosearch=False)
    with pytest.raises(Exception, match="5 or more layers"):
        FasterSegSearch.check_config(fs_cfg(dict(ARGS, layers=4), path_rule="authors"))


# -- latency weights solved from a table (paper footnote 1) ---------------------------------------
def test_solved_weights_reproduce_the_papers_from_its_table_2():
    from segnas.spaces.fasterseg.lut import solve_latency_weights
    w = solve_latency_weights({"operator": 10.42, "scale": 0.01, "width": 5.54})
    assert [round(v, 3) for v in w] == [0.001, 0.997, 0.002] and sum(w) == pytest.approx(1)
    assert solve_latency_weights({"operator": 2.0, "scale": 0.0, "width": 1.0}) == pytest.approx([1 / 3, 0, 2 / 3])


def _additive_table(args, op_cost, scale_cost) -> LatencyTable:
    """Every cell costs op_cost[op] + scale_cost[scale], whatever its widths and stride; stem and head 0."""
    keys = space_keys(args, HW, 3, None)
    entries = {k.id: 0.0 if k.op in ("stem", "head", "refine") else op_cost[k.op] + scale_cost[k.h] for k in keys}
    return LatencyTable(latency_environment("cpu"), entries)


def test_latency_gaps_on_a_hand_made_table():
    from segnas.spaces.fasterseg.lut import latency_sensitivities, solve_latency_weights
    L = 7
    args = dict(ARGS, layers=L)
    sizes = scale_sizes(HW)
    op_cost = {"skip": 0.5, "conv": 1.0, "conv_2x": 2.0, "zoomed_conv": 0.75, "zoomed_conv_2x": 1.5}
    c = {8: 3.0, 16: 2.0, 32: 1.5}
    table = _additive_table(args, op_cost, {sizes[s][0]: c[s] for s in (8, 16, 32)})
    gaps = latency_sensitivities(table, args, HW, args["chis"], 1, 1)
    # every final's path has L cells: all-slowest minus all-fastest operator, over 3 finals
    assert gaps["operator"] == pytest.approx(3 * L * (2.0 - 0.5))
    # from-down everywhere goes down as late as possible, from-same as early: per final, the cells that change scale
    assert gaps["scale"] == pytest.approx((L - 2) * (c[8] - c[16]) + (L - 3) * (c[8] - c[32]))
    assert gaps["width"] == pytest.approx(0)
    w = solve_latency_weights(gaps)
    assert w[2] == 0 and w[0] * gaps["operator"] == pytest.approx(w[1] * gaps["scale"])


def test_auto_latency_weights_are_solved_from_the_search_table_and_recorded(tmp_path):
    import yaml

    from segnas.spaces.fasterseg.lut import latency_sensitivities, solve_latency_weights
    from segnas.engine.session import resolve_device
    from segnas.methods.fasterseg import table_keys
    method = get_method("fasterseg")
    cfg = method.config("tiny", overrides=["fasterseg.latency_weights=auto", "search.epochs=0"])
    keys, _ = table_keys(cfg, 8, cfg.fasterseg.deploy_size)  # the synthetic dataset's 8 classes
    rng = np.random.default_rng(0)
    made_up = LatencyTable(latency_environment(resolve_device(cfg.device), cfg.threads),
                           {k.id: float(v) for k, v in zip(keys, rng.uniform(1, 9, len(keys)))})
    cfg.fasterseg.lut = str(made_up.save(tmp_path / "table.json"))
    method.search(cfg, tmp_path / "run", progress=False)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["fasterseg"]["latency_weights"]
    assert isinstance(saved, list) and len(saved) == 3 and sum(saved) == pytest.approx(1, abs=1e-5)
    table = LatencyTable.load(tmp_path / "table.json")
    args = get_space("fasterseg").resolve_args(cfg.search.space_args)
    gaps = latency_sensitivities(table, args, cfg.fasterseg.deploy_size, args["chis"], args["stem_chi"],
                                 args["head_chi"])
    assert saved == pytest.approx(solve_latency_weights(gaps), abs=1e-6)
    assert min(gaps.values()) > 0  # a real table has a gap along every aspect
