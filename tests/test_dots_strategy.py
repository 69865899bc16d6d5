"""DOTS: grouped operation search, topology search over edge pairs, its stages, derivation and resume."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from segnas.choices import ArchParameters, CellDag, best_in_groups, group_softmax
from segnas.errors import ConfigError
from segnas.genotype import load as load_genotype
from segnas.methods import get_method
from segnas.spaces.autodeeplab.supernet import AutoDeepLabSupernet, path_moves
from segnas.strategies.dots import DotsProblem, dots_phases, op_groups, temperature

ADL = get_method("autodeeplab")
# blocks 2: block 0 chooses a pair of 2 inputs, block 1 of 3; operators listed with the groups interleaved
SMALL = ["search.space_args.layers=3", "search.space_args.blocks=2",
         "search.space_args.ops=[sep_conv_3x3,max_pool_3x3,skip_connect,none]"]


def _cfg(*overrides, **dots):
    sets = [f"dots.{k}={v}" for k, v in dots.items()]
    return ADL.config("tiny", overrides=[*SMALL, *sets, *overrides], extra={"data": {"dataset": "synthetic"}},
                      strategy="dots")


class _Inner:
    """The least a space's problem offers DOTS: a supernet's architecture parameters and its cell DAG."""

    def __init__(self, ops, dag):
        self.net = SimpleNamespace(arch=ArchParameters())
        self.net.arch.declare("alpha", torch.zeros(dag.rows(), len(ops)), "softmax", ops)
        self.dag = dag

    def cell_dags(self):
        return [self.dag]

    def derive_cells(self, cells, loader):
        return {"genotypes": {}, "records": {"genotype": {"cells": cells}}}


def _problem(ops, dag, **dots):
    cfg = SimpleNamespace(method="test", dots=SimpleNamespace(group="v2", t0=10.0, decay=0.72, balance_scale=1e-3,
                                                             op_pretrain_epochs=1, op_epochs=1,
                                                             topology_pretrain_epochs=1, topology_epochs=2, **dots))
    return DotsProblem(_Inner(ops, dag), cfg)


# node 0 reads rows 3, 0 (inputs 0, 1); node 1 reads rows 1, 4, 2 (inputs 0, 1, 2): rows out of node order
DAG = CellDag("alpha", (((3, 0), (0, 1)), ((1, 0), (4, 1), (2, 2))))
OPS = ("sep_conv_3x3", "skip_connect", "dil_conv_3x3", "none", "max_pool_3x3")


def test_groups_follow_the_operators_kind_not_their_place_in_the_list():
    assert op_groups(OPS, "v2") == {"parameter_free": (1, 3, 4), "parametric": (0, 2)}
    # Group-V1 as the paper lists it: skip / pooling / separable / dilated, `none` in no group
    assert op_groups(OPS, "v1") == {"skip": (1,), "pooling": (4,), "separable": (0,), "dilated": (2,)}
    with pytest.raises(ConfigError, match="v1"):
        op_groups(("sep_conv_3x3", "conv_3x3"), "v1")


def test_groups_that_could_keep_only_none_and_stages_without_epochs_are_refused():
    with pytest.raises(ConfigError, match="every group holding 'none'"):
        op_groups(("max_pool_3x3", "skip_connect", "none"), "v2")
    with pytest.raises(ConfigError, match="dots.topology_epochs is 0"):
        ADL.search(_cfg(topology_epochs=0), "unused-run-folder")
    with pytest.raises(ConfigError, match="dots.op_epochs is 0"):
        ADL.search(_cfg(op_epochs=0), "unused-run-folder")


def test_group_softmax_and_pruning_on_hand_set_alpha():
    groups = list(op_groups(OPS, "v2").values())
    alpha = torch.tensor([[0.0, math.log(2), math.log(3), 0.0, math.log(5)],  # free: skip 2, none 1, pool 5
                          [math.log(4), 0.0, 0.0, math.log(7), 0.0]])  # free: none 7 (strongest); sep 4 vs dil 1
    w = group_softmax(alpha, groups)
    assert w[0].tolist() == pytest.approx([1 / 4, 2 / 8, 3 / 4, 1 / 8, 5 / 8])
    assert w[1].tolist() == pytest.approx([4 / 5, 1 / 9, 1 / 5, 7 / 9, 1 / 9])
    assert w[:, [1, 3, 4]].sum(1).tolist() == pytest.approx([1, 1])  # each group sums to 1 on its own
    # the list order puts sep first and pool last; by group: pool and dil on row 0, none and sep on row 1
    assert best_in_groups(w, groups) == [[4, 2], [3, 0]]


def test_temperature_is_t0_until_the_topology_search_then_decays_by_0_72_per_epoch():
    cfg = SimpleNamespace(dots=SimpleNamespace(t0=10.0, decay=0.72, op_pretrain_epochs=1, op_epochs=2,
                                               topology_pretrain_epochs=1, topology_epochs=3))
    assert [temperature(cfg, e) for e in range(7)] == pytest.approx([10, 10, 10, 10, 10, 7.2, 5.184])


def test_pair_weights_sum_onto_the_edges_that_hold_them():
    problem = _problem(OPS, DAG)
    arch = problem.arch
    assert set(arch.keys()) == {"alpha", "alpha_balance", "alpha_pairs0", "alpha_pairs1"}
    assert arch.specs["alpha_pairs1"].options == ("in0+in1", "in0+in2", "in1+in2")
    problem.temp = 2.0
    with torch.no_grad():  # softmax(beta / T) over node 1's pairs (0,1), (0,2), (1,2) = 0.5, 0.3, 0.2
        arch["alpha_pairs1"].copy_(2.0 * torch.log(torch.tensor([0.5, 0.3, 0.2])))
        arch["alpha_pairs0"].zero_()
    w = problem.edge_weights(DAG)
    # node 1: input 0 (row 1) in pairs 1, 2: 0.8; input 1 (row 4): 0.7; input 2 (row 2): 0.5. node 0: 1 each
    assert w.tolist() == pytest.approx([1.0, 0.8, 0.5, 1.0, 0.7])


def test_topology_weights_keep_one_operator_per_group_mixed_by_the_near_hard_balance():
    problem = _problem(OPS, DAG)
    arch = problem.arch
    with torch.no_grad():
        arch["alpha"].copy_(torch.tensor([[0.0, 1.0, 2.0, 0.0, 0.0]] * 5))  # keeps skip (free) and dil (param.)
        arch["alpha_balance"].copy_(torch.tensor([[0.02, 0.0]] * 5))  # parameter-free ahead by 0.02
        arch["alpha_pairs1"].zero_()  # node 1: three equal pairs, each input in two of them
    problem.set_stage("topology_pretrain", 2)  # T = 10: balance softmax(0.02 / 0.01) = e^2 / (e^2 + 1)
    assert arch.active("alpha") == [(1, 2)] * 5
    w = arch.weights("alpha")
    edge = torch.tensor([1.0, 2 / 3, 2 / 3, 1.0, 2 / 3])  # rows 0, 3: node 0's only pair; rows 1, 4, 2: node 1
    p = math.exp(2) / (math.exp(2) + 1)
    assert w[:, 1].tolist() == pytest.approx((edge * p).tolist(), rel=1e-5)
    assert w[:, 2].tolist() == pytest.approx((edge * (1 - p)).tolist(), rel=1e-5)
    assert w[:, [0, 3, 4]].abs().sum() == 0
    # alpha gets no gradient in the topology stages: the kept operators stay what entering them fixed
    w.sum().backward()
    assert arch["alpha"].grad is None and arch["alpha_balance"].grad is not None


def test_derivation_takes_the_best_pair_and_never_none():
    problem = _problem(OPS, DAG)
    arch = problem.arch
    with torch.no_grad():
        none_first, pool_and_sep = [0.0, 0.0, 0.0, 5.0, 0.0], [3.0, 0.0, 0.0, 0.0, 1.0]
        arch["alpha"].copy_(torch.tensor([none_first, pool_and_sep, none_first, pool_and_sep, pool_and_sep]))
        arch["alpha_balance"].copy_(torch.tensor([[1.0, 0.0]] * 5))  # and its group ahead on every edge
        arch["alpha_pairs1"].copy_(torch.tensor([0.0, 0.0, 1.0]))  # node 1: inputs 1 and 2
    problem.set_stage("topology_search", 3)
    cells, probs = problem.topology_cells()
    nodes = cells["alpha"]
    assert all(len(node) == 2 and node[0][0] != node[1][0] for node in nodes)
    assert [i for i, _ in nodes[1]] == [1, 2]
    # rows 4 and 2: row 4 keeps max pool and sep, its balance picks the pool; row 2 keeps `none` (leading its
    # balance) and sep (sep and dil tie: the group's first), so sep
    assert nodes[1] == [(1, "max_pool_3x3"), (2, "sep_conv_3x3")]
    assert all(op != "none" for node in nodes for _, op in node)
    assert probs["alpha"][1] == pytest.approx(math.exp(0.1) / (2 + math.exp(0.1)))


def test_stages_phases_and_the_weight_reset_fall_where_the_config_says():
    cfg = _cfg(op_pretrain_epochs=0, op_epochs=2, topology_pretrain_epochs=0, topology_epochs=1)
    phases = dots_phases(cfg)
    assert [(p.name, p.epochs, p.arch, p.reset_weights) for p in phases] == [
        ("op_pretrain", 0, False, False), ("op_search", 2, True, False),
        ("topology_pretrain", 0, False, False), ("topology_search", 1, True, True)]
    assert not any(p.reset_weights for p in dots_phases(_cfg(reset_weights=False)))


def test_a_space_without_cell_dags_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="needs a supernet whose cells are DAGs.*fasterseg"):
        get_method("fasterseg").config("tiny", strategy="dots")
    with pytest.raises(ConfigError, match="dots.topology_epochs"):
        ADL.search(_cfg(topology_epochs=-1), "unused-run-folder")


class _Recorder:
    def __init__(self):
        self.weights = {}

    def on_phase_start(self, phase, problem):
        self.weights[phase.name] = problem.weight_parameters()[0].detach().clone()

    def on_epoch_end(self, epoch, searching, record, problem):
        self.weights[f"end {epoch}"] = problem.weight_parameters()[0].detach().clone()


def _records(run):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "architectures" in r]


@pytest.mark.parametrize("reset, group", [(True, "v2"), pytest.param(False, "v1", marks=pytest.mark.slow)])
def test_dots_search_on_autodeeplab_runs_the_four_stages(tmp_path, reset, group):
    from segnas.strategies.differentiable import run_differentiable
    from segnas.strategies.dots import DotsProblem as Wrap, StageHook

    cfg = _cfg(reset_weights=reset, topology_epochs=2, group=group)
    rec = _Recorder()
    result = run_differentiable(ADL, cfg, tmp_path, progress=False, phases=dots_phases, hooks=[StageHook(), rec],
                                strategy="dots", wrap=Wrap)
    records = _records(tmp_path)
    assert [r["phase"] for r in records] == ["op_pretrain", "op_search", "topology_pretrain", "topology_search",
                                             "topology_search"]
    arch = [r["architectures"]["genotype"] for r in records]
    assert [a["dots_stage"] for a in arch] == ["op", "op", "topology", "topology", "topology"]
    assert [a["temperature"] for a in arch] == pytest.approx([10, 10, 10, 10, 7.2])
    # the balance has one column per group: 2 (v2) or, with these operators, 3 (v1: skip, pooling, separable)
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["search"]["net"]
    assert state["arch.alpha_balance"].shape[1] == (2 if group == "v2" else 3)
    assert all(len(a["pair_probs"]["alpha"]) == 2 for a in arch[2:])
    assert torch.equal(rec.weights["topology_pretrain"], rec.weights["end 1"]) is not reset
    g = load_genotype(tmp_path / "genotype.json")
    assert all(op != "none" for block in g.structure["cell"] for op in block["ops"])
    assert result["strategy"] == "dots"


@pytest.mark.slow  # 25 s; resuming the shared one-shot loop is tested in CI by the other spaces and the kill test
def test_a_run_killed_inside_every_stage_resumes_to_the_same_genotype(tmp_path):
    cfg = _cfg("search.steps_per_epoch=1", op_pretrain_epochs=2, op_epochs=2, topology_pretrain_epochs=2,
               topology_epochs=2)
    full = tmp_path / "full"
    ADL.search(cfg, full, progress=False)
    killed = tmp_path / "killed"
    phases = []
    for step in (2, 4, 6, 8):  # each stage's second epoch lost: killed, resumed, killed in the next stage
        assert ADL.search(cfg, killed, resume=step > 2, stop_after=step, progress=False)["interrupted"]
        phases.append(_records(killed)[-1]["phase"])  # the last epoch saved before the kill
    assert phases == ["op_pretrain", "op_search", "topology_pretrain", "topology_search"]
    ADL.search(cfg, killed, resume=True, progress=False)
    assert (killed / "genotype.json").read_text() == (full / "genotype.json").read_text()
    a = torch.load(full / "checkpoints" / "last.pt", weights_only=True)["search"]["net"]
    b = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)["search"]["net"]
    for key in ("arch.alpha", "arch.alpha_balance", "arch.alpha_pairs1"):
        assert torch.equal(a[key], b[key]), key


class _Zeros(torch.nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.classes = classes

    def forward(self, x):
        return x.new_zeros(x.shape[0], self.classes, *x.shape[-2:])


def test_a_fixed_network_level_computes_only_its_path_and_gives_what_the_trellis_gives():
    from segnas.spaces.autodeeplab.search import AutoDeepLabSearch

    cfg = ADL.config("tiny", overrides=SMALL, extra={"data": {"dataset": "synthetic"}})
    args = AutoDeepLabSearch.check_config(cfg)[0]
    torch.manual_seed(0)
    trellis = AutoDeepLabSupernet(args, 3)
    torch.manual_seed(0)
    path_only = AutoDeepLabSupernet(args, 3, path=[1, 1, 0])
    x = torch.randn(2, 3, 64, 64)
    trellis.beta_weights = lambda: path_moves([1, 1, 0], 3)  # the full trellis with the path's moves
    for j in ("1", "2", "3"):  # and only the path's last scale predicting
        trellis.heads[j] = _Zeros(3)
    assert torch.allclose(trellis(x), path_only(x), atol=1e-6)
    cfg = ADL.config("tiny", overrides=[*SMALL, "autodeeplab.fixed_path=[1,2,1]"],
                     extra={"data": {"dataset": "synthetic"}}, strategy="dots")
    assert AutoDeepLabSearch(cfg, 3, 255).decode()[0] == [1, 2, 1]
    import numpy as np  # the random baseline draws cells on the same fixed path
    assert ADL.sample(np.random.default_rng(0), cfg).structure["path"] == [1, 2, 1]
    with pytest.raises(ConfigError, match=r"autodeeplab.fixed_path\[1\]"):
        ADL.config("tiny", overrides=[*SMALL, "autodeeplab.fixed_path=[1,3,2]"])


@pytest.mark.parametrize("space", ["autodeeplab", "dots"])
def test_skipping_inactive_operators_changes_nothing(space):
    if space == "autodeeplab":
        from segnas.spaces.autodeeplab.search import AutoDeepLabSearch as Search

        cfg, alphas = _cfg(), ["alpha"]
    else:
        from segnas.spaces.dots.search import DotsSearch as Search

        cfg = get_method("dots").config("tiny", extra={"data": {"dataset": "synthetic"}}, strategy="dots")
        alphas = ["alpha_normal", "alpha_reduce"]
    problem = DotsProblem(Search(cfg, 3, 255), cfg)
    problem.set_stage("topology_search", 3)
    net, arch = problem.inner.net, problem.arch
    net.eval()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        skipped = net(x)
        for name in alphas:
            assert all(1 <= len(row) <= 2 for row in arch.active(name))  # the kept operators but `none`
            weights = arch.weights(name)
            arch.relax(name, lambda w=weights: w)  # the same weights, every operator computed
            assert arch.active(name) is None
        assert torch.allclose(net(x), skipped, atol=1e-6)
