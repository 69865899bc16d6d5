"""segnas correlate: statistics, architectures fixed in the three supernets, neighbours, the command end to end."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from segnas.cli import main
from segnas.correlate import (
    kendall_rows,
    neighbours,
    pearson_rows,
    rank_correlation,
    representable,
    retrain_config,
)
from segnas.errors import ConfigError, GenotypeError
from segnas.genotype import save as save_genotype
from segnas.methods import get_method
from segnas.methods.fasterseg import table_keys
from segnas.objectives.latency import LatencyTable, latency_environment
from segnas.spaces import get_space
from segnas.spaces.autodeeplab.search import AutoDeepLabSearch
from segnas.spaces.dcnas.graph import SCALES, sources
from segnas.spaces.dcnas.search import DCNASSearch
from segnas.spaces.fasterseg.search import FasterSegSearch

SYNTHETIC = {"data": {"dataset": "synthetic"}}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("segnas: error:") and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


# -- statistics ------------------------------------------------------------------------------------

def test_a_monotone_set_has_tau_one_and_a_degenerate_interval():
    r = rank_correlation([1, 2, 3, 4, 5], [10, 20, 25, 40, 41], resamples=500, seed=3)
    assert r["n"] == 5 and r["kendall"]["value"] == pytest.approx(1.0)
    # every resample with two distinct points is still perfectly concordant
    assert r["kendall"]["interval"] == pytest.approx([1.0, 1.0])
    assert r["pearson"]["value"] == pytest.approx(stats.pearsonr([1, 2, 3, 4, 5], [10, 20, 25, 40, 41])[0])


def test_hand_computed_pearson_and_kendall():
    # x = 1 2 3 4, y = 1 3 2 4: of the 6 pairs only (2, 3) is discordant -> tau = (5 - 1) / 6 = 2/3;
    # deviations -1.5 -.5 .5 1.5 and -1.5 .5 -.5 1.5: sum of products 4, sums of squares 5 and 5 -> r = 0.8
    r = rank_correlation([1, 2, 3, 4], [1, 3, 2, 4], resamples=2000, seed=0)
    assert r["kendall"]["value"] == pytest.approx(2 / 3)
    assert r["pearson"]["value"] == pytest.approx(0.8)
    # tau-b with ties: x = 1 2 2 3, y = 1 2 3 3: 4 concordant, 0 discordant, one pair tied in x, one in y
    # -> tau_b = 4 / sqrt((6 - 1) (6 - 1)) = 0.8
    assert rank_correlation([1, 2, 2, 3], [1, 2, 3, 3], resamples=10)["kendall"]["value"] == pytest.approx(0.8)


def test_intervals_hold_the_estimate_and_are_seeded():
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = x + 0.7 * rng.normal(size=12)
    a, b = rank_correlation(x, y, seed=5), rank_correlation(x, y, seed=5)
    assert a == b  # the same seed, the same intervals
    assert rank_correlation(x, y, seed=6)["pearson"]["interval"] != a["pearson"]["interval"]
    for name in ("pearson", "kendall"):
        lo, hi = a[name]["interval"]
        assert -1 <= lo <= a[name]["value"] <= hi <= 1
        assert a[name]["valid_resamples"] == 2000
    assert a["confidence"] == 0.9 and a["resamples"] == 2000


def test_the_batched_bootstrap_statistics_are_scipys():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, size=(50, 7)).astype(float)  # ties and repeated points, as resamples have
    y = x + rng.integers(-2, 3, size=(50, 7))
    for i in range(50):
        if np.ptp(x[i]) and np.ptp(y[i]):
            assert kendall_rows(x, y)[i] == pytest.approx(stats.kendalltau(x[i], y[i])[0])
            assert pearson_rows(x, y)[i] == pytest.approx(stats.pearsonr(x[i], y[i])[0])
    assert np.isnan(kendall_rows(np.ones((1, 4)), y[:1, :4])).all()
    assert np.isnan(pearson_rows(np.ones((1, 4)), y[:1, :4])).all()


def test_too_few_or_constant_numbers():
    with pytest.raises(ConfigError, match="at least 3"):
        rank_correlation([0.1, 0.2], [0.3, 0.4])
    r = rank_correlation([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    assert r["pearson"]["value"] is None and r["kendall"]["value"] is None
    assert r["kendall"]["valid_resamples"] == 0 and r["kendall"]["interval"] == [None, None]


# -- architectures fixed in the supernets ------------------------------------------------------------

def _perturb(module):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p))


def _arch_state(problem):
    return [p.detach().clone() for p in problem.arch_parameters()]


def _dcnas(*overrides):
    method = get_method("dcnas")
    cfg = method.config("tiny", overrides=list(overrides), extra=SYNTHETIC)
    torch.manual_seed(0)
    problem = DCNASSearch(cfg, num_classes=3, ignore_index=255)
    problem.net.eval()
    return problem, method.sample(np.random.default_rng(4), cfg)


def test_dcnas_fixed_supernet_is_the_child_network_without_partial_channels():
    """With every gate 0 or 1 the supernet's gated sums are the child's sums of its kept inputs; with
    partial channels off each node's mixture is its one operator: the same function, given the same weights."""
    problem, g = _dcnas("dcnas.partial_ratio=1")
    sup = problem.net
    child = get_space("dcnas").build(g, 3).eval()
    child.stem.load_state_dict(sup.stem.state_dict())
    child.head.load_state_dict(sup.head.state_dict())
    index = {s: j for j, s in enumerate(SCALES)}
    for node in g.structure["nodes"]:
        key = f"{node['layer']}_{index[node['scale']]}"
        cand = sources(node["layer"])
        for i, (layer, scale) in enumerate(node["inputs"]):
            child.fusions[key].aligns[i].load_state_dict(
                sup.fusions[key].aligns[cand.index((layer, index[scale]))].state_dict())
        mixed = sup.mixed[key]
        child.ops[key].load_state_dict(mixed.ops[mixed.index.index(sup.ops.index(node["op"]))].state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), problem.fixed(g) as notes:
        fixed = sup(x)
    assert notes == []  # nothing left that differs
    assert torch.allclose(fixed, child(x), atol=1e-5)


def test_dcnas_fixed_runs_only_the_chosen_parts_yet_equals_the_one_hot_supernet():
    """The fixed supernet skips every zero-weighted node, connection and operator; what it computes is
    still the full supernet at the one-hot operator rows and 0/1 gates (partial channels on)."""
    problem, g = _dcnas()
    sup = problem.net.eval()
    alpha, gates = problem.fixed_weights(g)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        sup.fixed = {"alpha": alpha, "gates": gates}  # the dense path: every term, most times 0
        dense = sup(x)
        sup.fixed = None
        with problem.fixed(g):
            fast = sup(x)
    assert torch.allclose(fast, dense, atol=1e-5)


def _fixed_and_undone(problem, g, x):
    """The fixed output; leaving the context gives the soft supernet and its parameters back."""
    sup, arch = problem.net, _arch_state(problem)
    soft = sup(x)
    with problem.fixed(g) as notes:
        fixed = sup(x)
    assert not sup.fixed and all(torch.equal(a, b) for a, b in zip(arch, _arch_state(problem)))
    assert torch.equal(sup(x), soft) and not torch.allclose(fixed, soft)
    return fixed, notes


def test_dcnas_fixed_prediction_depends_only_on_the_chosen_parts_and_is_undone():
    problem, g = _dcnas()
    sup = problem.net
    x = torch.randn(1, 3, 64, 64)
    index = {s: j for j, s in enumerate(SCALES)}
    with torch.no_grad():
        fixed, notes = _fixed_and_undone(problem, g, x)
        assert "partial channels" in notes[0]
        with problem.fixed(g):
            present = {(n["layer"], index[n["scale"]]) for n in g.structure["nodes"]}
            for key in sup.mixed:
                if tuple(map(int, key.split("_"))) not in present:
                    _perturb(sup.mixed[key])  # nodes outside the genotype
                    _perturb(sup.fusions[key])
            for node in g.structure["nodes"]:
                layer, j = node["layer"], index[node["scale"]]
                key = f"{layer}_{j}"
                mixed = sup.mixed[key]
                chosen = mixed.index.index(sup.ops.index(node["op"]))
                for k, op in enumerate(mixed.ops):
                    if k != chosen:
                        _perturb(op)  # operators the node does not run
                kept = {sources(layer).index((src, index[s])) for src, s in node["inputs"]}
                for i, align in enumerate(sup.fusions[key].aligns):
                    if i not in kept:
                        _perturb(align)  # connections the node does not keep
            assert torch.allclose(sup(x), fixed, atol=1e-5)
            node = g.structure["nodes"][-1]
            mixed = sup.mixed[f"{node['layer']}_{index[node['scale']]}"]
            _perturb(mixed.ops[mixed.index.index(sup.ops.index(node["op"]))])
            assert not torch.allclose(sup(x), fixed, atol=1e-3)


def _autodeeplab():
    method = get_method("autodeeplab")
    cfg = method.config("tiny", extra=SYNTHETIC)
    torch.manual_seed(0)
    problem = AutoDeepLabSearch(cfg, num_classes=3, ignore_index=255)
    g = get_space("autodeeplab").make_genotype(
        {"path": [0, 1, 1, 0], "cell": [{"inputs": [1, 0], "ops": ["sep_conv_3x3", "skip_connect"]},
                                        {"inputs": [2, 0], "ops": ["max_pool_3x3", "atrous_conv_5x5"]}]},
        cfg.search.space_args)
    return problem, g


def test_autodeeplab_fixed_prediction_depends_only_on_the_path_and_cell_and_is_undone():
    problem, g = _autodeeplab()
    sup = problem.net.eval()
    path, cell = g.structure["path"], g.structure["cell"]
    chosen = {}  # edge -> operator, edges block by block: (0, 0) (0, 1) (1, 0) (1, 1) (1, 2)
    edges = [(k, i) for k in range(len(cell)) for i in range(k + 2)]
    for e, (k, i) in enumerate(edges):
        if i in cell[k]["inputs"]:
            chosen[e] = cell[k]["ops"][cell[k]["inputs"].index(i)]
    moves = {f"{layer}_{j}": ("down", "same", "up")[1 - (j - p)] for layer, (j, p) in
             enumerate(zip(path, [0] + path[:-1]))}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fixed, notes = _fixed_and_undone(problem, g, x)
        assert any("ASPP" in n for n in notes)
        with problem.fixed(g):
            for key, node in sup.nodes.items():
                if key not in moves:
                    _perturb(node)  # nodes off the path
                    continue
                for name, c in node.cells.items():
                    if name != moves[key]:
                        _perturb(c)  # the cells of moves the path does not make
                        _perturb(node.transitions[name])
                        continue
                    for e, edge in enumerate(c.edges):
                        for op_index, op in zip(edge.index, edge.ops):
                            if chosen.get(e) != sup.ops[op_index]:
                                _perturb(op)  # operators the cell does not run on its edges
            for j, head in sup.heads.items():
                if int(j) != path[-1]:
                    _perturb(head)  # heads of other scales
            assert torch.allclose(sup(x), fixed, atol=1e-5)
            edge = sup.nodes[f"0_{path[0]}"].cells[moves[f"0_{path[0]}"]].edges[1]  # block 0, h(l-2): sep_conv_3x3
            _perturb(edge.ops[edge.index.index(sup.ops.index("sep_conv_3x3"))])
            assert not torch.allclose(sup(x), fixed, atol=1e-3)


def test_autodeeplab_fixed_weights_are_the_cell_and_the_path():
    problem, g = _autodeeplab()
    w = problem.fixed_weights(g)
    ops = problem.net.ops
    # edges block by block: (0, 0) (0, 1) (1, 0) (1, 1) (1, 2)
    assert w["alpha"].sum(1).tolist() == [1, 1, 1, 0, 1]
    assert w["alpha"][1, ops.index("sep_conv_3x3")] == 1 and w["alpha"][4, ops.index("max_pool_3x3")] == 1
    moves = [tuple(i.tolist()) for i in torch.nonzero(w["beta"])]
    # into layer 0 from the stem (1/4) staying; then down 1/4 -> 1/8, stay at 1/8, up 1/8 -> 1/4
    assert moves == [(0, 0, 1), (1, 0, 0), (2, 1, 1), (3, 1, 2)] and w["path"] == [0, 1, 1, 0]
    notes = problem.fixed_notes(g)
    # h(l-2) at layer 2 is the 1/4 node of layer 0 in the child, (0, 1/8) in the supernet; at layer 3 (1, 1/8), (1, 1/4)
    assert any("layer(s) 2, 3:" in n for n in notes)


def _fasterseg_problem(cfg):
    keys, _ = table_keys(cfg, 3, cfg.fasterseg.deploy_size)
    table = LatencyTable(latency_environment("cpu"), {k.id: 1.0 for k in keys})
    torch.manual_seed(0)
    problem = FasterSegSearch(cfg, 3, 255, table, 0, "cpu")
    problem.net.eval()
    return problem


def test_fasterseg_fixed_sets_operators_inputs_and_widths_of_the_branches():
    method = get_method("fasterseg")
    cfg = method.config("tiny", extra=SYNTHETIC)
    problem = _fasterseg_problem(cfg)
    args = problem.args
    full = [{"op": "conv", "scale": 8, "chi": 1}, {"op": "zoomed_conv", "scale": 8, "chi": 2},
            {"op": "conv_2x", "scale": 16, "chi": 2}, {"op": "conv", "scale": 32, "chi": 1}]
    short = [{"op": "conv", "scale": 8, "chi": 1}, {"op": "conv_2x", "scale": 8, "chi": 1},
             {"op": "zoomed_conv", "scale": 16, "chi": 1}]  # one cell removed by the derivation
    g = get_space("fasterseg").make_genotype({"branches": [{"cells": full}, {"cells": short}]}, args,
                                             meta={"architecture": "student"})
    arch = _arch_state(problem)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad(), problem.fixed(g) as notes:
        net = problem.net
        widths = net.sample_widths("student", "gumbel")  # any mode: the fixed widths
        assert widths[1, 0] == (0, None) and widths[2, 1] == (1, None) and widths[3, 2] == (1, None)
        alphas, betas = net.alphas("student"), net.betas("student")
        assert alphas[0][0].tolist() == [0, 1, 0, 0, 0] and alphas[0][1].tolist() == [0, 0, 0, 1, 0]
        assert alphas[1][1].tolist() == [0, 0, 1, 0, 0] and alphas[2][1].tolist() == [0, 1, 0, 0, 0]
        assert betas[1][0].tolist() == [1, 0]  # node (2, 1/16) comes from 1/8
        assert any("'skip' cell(s)" in n for n in notes)
        logits = net(x, "student", widths)
        assert set(logits) == set(net.heads_subsets) and problem._fixed == ("student", (1, 2))
    assert net.fixed == {} and all(torch.equal(a, b) for a, b in zip(arch, _arch_state(problem)))
    bad = get_space("fasterseg").make_genotype({"branches": [{"cells": full[:3] + [dict(full[3], chi=2)]}]}, args)
    with pytest.raises(GenotypeError, match="head_chi"):
        problem.fixed_layout(bad)


def test_a_genotype_of_another_shape_is_refused_naming_the_mismatch():
    problem, g = _dcnas()
    other = get_space("dcnas").sample(np.random.default_rng(0), dict(g.space_args, layers=3))
    with pytest.raises(GenotypeError, match="space_args.layers is 3 but the supernet's is 2"), problem.fixed(other):
        pass
    assert problem.net.fixed is None and not representable(problem, other) and representable(problem, g)
    with pytest.raises(GenotypeError, match="field 'space' is 'autodeeplab', expected 'dcnas'"):
        problem.fixed_weights(get_space("autodeeplab").sample(np.random.default_rng(0)))


# -- neighbours ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["dcnas", "autodeeplab", "fasterseg"])
def test_neighbours_are_valid_distinct_and_one_or_two_choices_away(method):
    m = get_method(method)
    cfg = m.config("tiny", extra=SYNTHETIC)
    g = m.sample(np.random.default_rng(1), cfg)
    space = get_space(g.space)
    found = neighbours(g, 6, np.random.default_rng(0))
    assert len(found) == 6
    ids = [n.archid for n, _ in found]
    assert len(set(ids)) == 6 and g.archid not in ids
    for n, changed in found:
        space.validate(n)
        assert n.space_args == g.space_args and n.meta["of"] == g.archid
        if len(n.choices) == len(g.choices):
            assert 1 <= sum(a != b for a, b in zip(n.choices, g.choices)) <= 2, changed
    again = neighbours(g, 6, np.random.default_rng(0))
    assert [n.archid for n, _ in again] == ids  # seeded
    assert neighbours(g, 3, np.random.default_rng(0), usable=lambda n: False) == []


# -- the command -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dcnas_run(tmp_path_factory):
    method = get_method("dcnas")
    out = tmp_path_factory.mktemp("correlate") / "search"
    method.search(method.config("tiny", extra=SYNTHETIC), out, progress=False)
    return out


def test_correlate_end_to_end_and_resumed(capsys, tmp_path, dcnas_run):
    out = tmp_path / "corr"
    argv = ["correlate", dcnas_run, "--out", out, "--around", 2, "--score-images", 3, "--set", "train.epochs=1",
            "--quiet"]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    result = json.loads((out / "correlation.json").read_text())
    assert result["segnas_correlate"] and result["complete"]
    archs = result["architectures"]
    assert result["statistics"]["n"] == len(archs) >= 3
    assert {a["source"] for a in archs} == {"along", "around"} and sum(a["final"] for a in archs) == 1
    assert sum(a["source"] == "around" for a in archs) == 2
    for a in archs:
        assert 0 <= a["search_score"] <= 1 and 0 <= a["retrained_miou"] <= 1
        assert (out / "retrain" / a["archid"] / "result.json").is_file()
    settings = result["settings"]
    assert settings["method"] == "dcnas" and settings["score_images"] == 3 and settings["recipe"]["epochs"] == 1
    assert set(result["versions"]) >= {"segnas", "torch", "scipy"}
    assert Image.open(out / "correlation.png").size[0] > 300
    assert "Pearson rho" in stdout and "Kendall tau" in stdout and f"{len(archs)} of {len(archs)}" in stdout
    stamps = {a["archid"]: (out / "retrain" / a["archid"] / "checkpoints" / "last.pt").stat().st_mtime_ns
              for a in archs}
    code, stdout, err = run_cli(capsys, *argv)  # rerun: nothing is retrained
    assert code == 0, err
    assert f"0 of {len(archs)} architectures retrained now" in stdout
    assert stamps == {a: (out / "retrain" / a / "checkpoints" / "last.pt").stat().st_mtime_ns for a in stamps}
    again = json.loads((out / "correlation.json").read_text())
    assert again["statistics"] == result["statistics"]
    # another recipe into the same folder is refused, naming the key
    code, _, err = run_cli(capsys, *argv[:-2], "train.epochs=2", "--quiet")
    assert_one_line_error(code, err, "another recipe", "train.epochs")


def test_bad_inputs_are_one_line(capsys, tmp_path, dcnas_run):
    code, _, err = run_cli(capsys, "correlate", tmp_path, "--out", tmp_path / "o")
    assert_one_line_error(code, err, tmp_path, "not a search run folder")
    code, _, err = run_cli(capsys, "correlate", dcnas_run / "genotype.json", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "one search run folder")
    code, _, err = run_cli(capsys, "correlate", dcnas_run, "--out", tmp_path / "o", "--set", "data.crop=[32,32]")
    assert_one_line_error(code, err, "only train.* keys")
    code, _, err = run_cli(capsys, "correlate", dcnas_run, "--out", tmp_path / "o", "--around", 0, "--quiet")
    assert_one_line_error(code, err, "at least 3")
    assert not (tmp_path / "o" / "retrain").exists()  # refused before any retraining
    foreign = get_space("dcnas").sample(np.random.default_rng(0), {"layers": 3, "filter_multiplier": 4})
    save_genotype(foreign, tmp_path / "other.json")
    code, _, err = run_cli(capsys, "correlate", dcnas_run, tmp_path / "other.json", "--out", tmp_path / "o")
    assert_one_line_error(code, err, tmp_path / "other.json", "space_args.layers")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "correlation.json").write_text("{}")
    code, _, err = run_cli(capsys, "correlate", dcnas_run, "--out", tmp_path / "mine")
    assert_one_line_error(code, err, "not written by 'segnas correlate'")
    (tmp_path / "mine" / "correlation.json").unlink()
    (tmp_path / "mine" / "correlation.png").write_bytes(b"a user's picture")
    code, _, err = run_cli(capsys, "correlate", dcnas_run, "--out", tmp_path / "mine")
    assert_one_line_error(code, err, "correlation.png")
    assert (tmp_path / "mine" / "correlation.png").read_bytes() == b"a user's picture"
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "correlation.json").write_text(json.dumps(
        {"segnas_correlate": 1, "settings": {"run": str(tmp_path / "another-run")}}))
    code, _, err = run_cli(capsys, "correlate", dcnas_run, "--out", tmp_path / "theirs")
    assert_one_line_error(code, err, "another search run")
    for flag, value in (("--threads", -1), ("--resamples", 0)):
        code, _, err = run_cli(capsys, "correlate", dcnas_run, "--out", tmp_path / "o2", flag, value)
        assert_one_line_error(code, err, flag)


def test_the_recipe_is_the_runs_data_at_a_quarter_of_its_epochs():
    cfg = get_method("dcnas").config("cpu", extra=SYNTHETIC)
    recipe = retrain_config(cfg, ["train.lr=0.1"], None, 2)
    assert recipe.train.epochs == cfg.train.epochs // 4 and recipe.train.lr == 0.1 and recipe.threads == 2
    assert recipe.data == cfg.data and recipe.seed == cfg.seed and recipe.sections == {}
    assert retrain_config(cfg, ["train.epochs=3"], None, None).train.epochs == 3
    with pytest.raises(ConfigError, match="only train"):
        retrain_config(cfg, ["seed=3"], None, None)
