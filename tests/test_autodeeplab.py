"""Auto-DeepLab: space, published networks, supernet gradients, Viterbi and cell decoding, search runs."""

import json

import numpy as np
import pytest
import torch

import segnas
from segnas.config import make_config, to_dict
from segnas.errors import ConfigError, GenotypeError
from segnas.genotype import Genotype
from segnas.genotype import load as load_genotype
from segnas.genotype import save as save_genotype
from segnas.profile import count_flops, count_params
from segnas.spaces import get_space
from segnas.spaces.autodeeplab import OPS, path_counts
from segnas.spaces.autodeeplab.derive import brute_force_path, viterbi
from segnas.spaces.cells import cell_edges, decode_cell
from segnas.methods import get_method
from segnas.spaces.autodeeplab.search import AutoDeepLabSearch
from segnas.spaces.autodeeplab.supernet import beta_mask

SPACE = get_space("autodeeplab")

# Paper Table 2 (Cityscapes, 1024x2048, 19 classes): parameters, multiply-adds
TABLE2 = {"autodeeplab-s": (10.15e6, 333.25e9), "autodeeplab-m": (21.62e6, 460.93e9),
          "autodeeplab-l": (44.42e6, 695.03e9)}
# what segnas builds from the published cell and path (see the network module's docstring): the zoo's
# `released` transitions (1x1 going down, strided cell operators) and the `conv3x3` reading (a stride-2
# 3x3 conv going down, 0.8 M more parameters in S: 8 * c_in * C per down move)
BUILT = {("autodeeplab-s", "released"): (10_147_171, 317.54e9), ("autodeeplab-s", "conv3x3"): (10_947_171, 318.39e9),
         ("autodeeplab-m", "released"): (21_622_195, 434.99e9), ("autodeeplab-m", "conv3x3"): (23_670_195, 437.17e9),
         ("autodeeplab-l", "released"): (44_424_435, 653.58e9), ("autodeeplab-l", "conv3x3"): (49_032_435, 658.49e9)}
# archids of the zoo entries before down_transition existed (they built conv3x3)
CONV3X3_ARCHIDS = {"autodeeplab-s": "3d26bceb07c50f58", "autodeeplab-m": "d0105e84795cbfcb",
                   "autodeeplab-l": "2c74fd2990ea09a0"}
# the published network (METHODS.md, the paper's Fig. 3): ops and inputs in block order, the path
PUBLISHED_OPS = ["atrous_conv_5x5", "sep_conv_3x3", "sep_conv_3x3", "atrous_conv_3x3", "sep_conv_3x3", "sep_conv_3x3",
                 "sep_conv_5x5", "sep_conv_5x5", "sep_conv_5x5", "atrous_conv_5x5"]
PUBLISHED_INPUTS = [1, 0, 1, 0, 3, 1, 4, 2, 3, 5]
PUBLISHED_PATH = [0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1]


def _size(genotype):
    net = SPACE.build(genotype, 19)
    return count_params(net), count_flops(net, (1, 3, 1024, 2048)) / 2


def _with(genotype, **args):
    return SPACE.make_genotype(genotype.structure, {**genotype.space_args, **args}, name=genotype.name)


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_zoo_networks_have_table_2_parameters(name):
    g = segnas.zoo.get(name)
    assert g.space_args["down_transition"] == "released"
    params, madds = _size(g)
    paper_params, paper_madds = TABLE2[name]
    assert params == BUILT[name, "released"][0] and madds == pytest.approx(BUILT[name, "released"][1], rel=1e-4)
    assert abs(params / paper_params - 1) < 0.001  # Table 2 within 0.1%
    # multiply-adds 4.7% (S) .. 6.0% (L) under Table 2 (torch's counter: convolutions and matmuls only)
    assert -0.060 < madds / paper_madds - 1 < -0.047


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_conv3x3_reading_builds_as_before_down_transition_existed(name):
    g = _with(segnas.zoo.get(name), down_transition="conv3x3")
    assert "down_transition" not in g.space_args and g.archid == CONV3X3_ARCHIDS[name]  # the old genotype, same id
    params, madds = _size(g)
    assert params == BUILT[name, "conv3x3"][0] and madds == pytest.approx(BUILT[name, "conv3x3"][1], rel=1e-4)
    assert 0.07 < params / TABLE2[name][0] - 1 < 0.105 and -0.055 < madds / TABLE2[name][1] - 1 < -0.04


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_published_cell_and_path(name):
    g = segnas.zoo.get(name)
    assert g.structure["path"] == PUBLISHED_PATH
    assert [op for block in g.structure["cell"] for op in block["ops"]] == PUBLISHED_OPS
    assert [i for block in g.structure["cell"] for i in block["inputs"]] == PUBLISHED_INPUTS
    assert g.space_args["filter_multiplier"] == {"autodeeplab-s": 20, "autodeeplab-m": 32, "autodeeplab-l": 48}[name]
    assert (g.space_args["layers"], g.space_args["blocks"], g.space_args["stem"]) == (12, 5, [64, 64, 128])


def test_an_old_genotype_file_without_down_transition_loads_and_builds_conv3x3(tmp_path):
    data = segnas.zoo.get("autodeeplab-s").to_dict()
    del data["space_args"]["down_transition"]
    data["archid"] = CONV3X3_ARCHIDS["autodeeplab-s"]  # as the file was written before the argument existed
    (tmp_path / "old.json").write_text(json.dumps(data))
    g = load_genotype(tmp_path / "old.json")
    net = SPACE.build(g, 19)
    downs = [t for t in net.transitions if type(t).__name__ == "Down"]
    assert len(downs) == 4 and all(t.conv[1].kernel_size == (3, 3) and t.conv[1].stride == (2, 2) for t in downs)
    assert isinstance(net.pre_aspp, torch.nn.Identity)
    data["space_args"]["down_transition"] = "strided"
    del data["archid"]
    with pytest.raises(GenotypeError, match=r"space_args\.down_transition.*conv3x3, released"):
        SPACE.validate(Genotype.from_dict(data))


def _released_args(**more):
    return {"layers": 6, "blocks": 4, "filter_multiplier": 4, "stem": [8, 8, 16], "aspp_channels": 16,
            "decoder_channels": 16, "low_level_channels": 8, "down_transition": "released", **more}


# every operator, on h(l-1) and h(l-2) (strided in a down cell) and on blocks (never strided)
ALL_OPS_CELL = [{"inputs": [0, 1], "ops": ["atrous_conv_3x3", "skip_connect"]},
                {"inputs": [1, 0], "ops": ["avg_pool_3x3", "max_pool_3x3"]},
                {"inputs": [0, 3], "ops": ["sep_conv_5x5", "atrous_conv_5x5"]},
                {"inputs": [1, 4], "ops": ["sep_conv_3x3", "skip_connect"]}]


def test_released_network_goes_down_with_a_1x1_at_its_own_size_and_strided_operators():
    g = SPACE.make_genotype({"path": [1, 1, 2, 3, 2, 1], "cell": ALL_OPS_CELL}, _released_args())
    net = SPACE.build(g, 5).eval()
    assert net.in_scales == [0, 1, 1, 2, 2, 1]  # a down cell's inputs stay at h(l-1)'s scale
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen[name] = (tuple(inputs[0].shape[-2:]), tuple(output.shape[-2:]))
        return hook

    net.transitions[3].register_forward_hook(record("h1"))  # layer 3 goes down 1/16 -> 1/32
    net.reduce[3].conv.register_forward_hook(record("h2"))  # its h(l-2) is layer 1, at 1/8
    cell = net.cells[3]
    cell.ops[0][0][2].register_forward_hook(record("atrous on h1"))  # ReLU, bilinear x0.5, conv, BN
    cell.ops[2][1][1].register_forward_hook(record("atrous on block"))  # ReLU, rate-2 conv, BN
    net(torch.randn(1, 3, 64, 96))  # 1/4 .. 1/32: 16x24, 8x12, 4x6, 2x3
    assert seen["h1"] == ((4, 6), (4, 6))  # the 1x1 at h(l-1)'s own 1/16
    assert seen["h2"] == ((4, 6), (4, 6))  # h(l-2) resized from 1/8 to h(l-1)'s 1/16, not to the cell's 1/32
    assert seen["atrous on h1"] == ((2, 3), (2, 3)) and cell.ops[0][0][2].dilation == (1, 1)
    assert seen["atrous on block"] == ((2, 3), (2, 3)) and cell.ops[2][1][1].dilation == (2, 2)
    assert net.transitions[3].conv[1].kernel_size == (1, 1) and isinstance(net.pre_aspp, torch.nn.ReLU)
    assert not isinstance(cell.ops[0][1], torch.nn.Identity)  # a strided skip is a 1x1 conv
    assert isinstance(net.cells[1].ops[0][1], torch.nn.Identity)  # a stride-1 skip stays the identity


@pytest.mark.parametrize("path", [[1, 2, 3, 3, 2, 1], [0, 0, 1, 1, 0, 1]])
def test_released_network_shapes_and_gradients(path):
    g = SPACE.make_genotype({"path": path, "cell": ALL_OPS_CELL}, _released_args())
    net = SPACE.build(g, 6)
    for size in ((67, 93), (64, 64)):
        logits, aux = net(torch.randn(2, 3, *size), aux=True)
        assert logits.shape == (2, 6, *size) and aux == []
    net.zero_grad()
    logits.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_cell_paths_drop_in_training_only():
    from segnas.ops import DropPath, set_drop_path

    g = SPACE.make_genotype({"path": [0, 1, 1, 0, 0, 1], "cell": ALL_OPS_CELL}, _released_args())
    torch.manual_seed(0)
    net = SPACE.build(g, 5)
    assert set_drop_path(net, 0.5) == len(net.cells) and all(isinstance(c.drop, DropPath) for c in net.cells)
    assert not any(k.endswith(".drop") or ".drop." in k for k in net.state_dict())  # checkpoints unchanged
    x = torch.randn(2, 3, 32, 32)
    net.eval()
    ref = net(x)
    set_drop_path(net, 0.0)
    assert torch.equal(net(x), ref)  # eval: identity whatever p
    net.train()
    torch.manual_seed(1)
    plain = net(x)
    set_drop_path(net, 0.5)
    torch.manual_seed(1)
    assert not torch.allclose(net(x), plain)


def test_final_network_shapes_and_gradients():
    g = SPACE.sample(np.random.default_rng(3), {"layers": 5, "blocks": 3, "filter_multiplier": 4,
                                                "stem": [8, 8, 16], "aspp_channels": 16, "decoder_channels": 16,
                                                "low_level_channels": 8})
    assert "down_transition" not in g.space_args  # conv3x3, the default
    net = SPACE.build(g, 6)
    x = torch.randn(2, 3, 67, 93)
    logits, aux = net(x, aux=True)
    assert logits.shape == (2, 6, 67, 93) and aux == []
    logits.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_genotype_round_trip_builds_the_same_network(tmp_path):
    g = SPACE.sample(np.random.default_rng(0), {"layers": 6, "blocks": 4, "filter_multiplier": 4})
    save_genotype(g, tmp_path / "g.json")
    again = load_genotype(tmp_path / "g.json")
    assert again.archid == g.archid and again.choices == g.choices
    torch.manual_seed(0)
    a = SPACE.build(g, 5)
    torch.manual_seed(0)
    b = SPACE.build(again, 5)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("edit, field", [
    (lambda s: s["path"].__setitem__(3, s["path"][2] + 2), "structure.path[3]"),
    (lambda s: s["path"].__setitem__(0, 2), "structure.path[0]"),
    (lambda s: s["cell"][1].__setitem__("inputs", [0, 3]), "structure.cell[1].inputs"),
    (lambda s: s["cell"][2].__setitem__("inputs", [1, 1]), "structure.cell[2].inputs"),
    (lambda s: s["cell"][0].__setitem__("ops", ["none", "sep_conv_3x3"]), "structure.cell[0].ops"),
    (lambda s: s.__setitem__("path", s["path"][:-1]), "structure.path"),
])
def test_invalid_genotypes_name_the_field(edit, field):
    g = segnas.zoo.get("autodeeplab-s")
    data = g.to_dict()
    del data["archid"]
    edit(data["structure"])
    with pytest.raises(GenotypeError, match=field.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        SPACE.validate(Genotype.from_dict(data))


def test_sampled_paths_are_uniform_over_valid_paths():
    counts = path_counts(3)
    total = counts[0, 0] + counts[0, 1]
    assert total == 13  # brute force: paths of 3 moves from 1/4 with steps in {-1, 0, +1}
    # L = 12: 75,025 paths; with the first layer held at 1/4, 28,657: the paper's "2.9e4"
    assert path_counts(12)[0, 0] + path_counts(12)[0, 1] == 75_025 and path_counts(12)[0, 0] == 28_657
    rng = np.random.default_rng(0)
    seen = {}
    for _ in range(2600):
        p = tuple(SPACE.sample(rng, {"layers": 3, "blocks": 1}).structure["path"])
        seen[p] = seen.get(p, 0) + 1
    assert len(seen) == 13 and min(seen.values()) > 140 and max(seen.values()) < 260


# -- decoding -----------------------------------------------------------------------------------

def _probs_from_logits(logits: np.ndarray) -> np.ndarray:
    mask = beta_mask(logits.shape[0]).numpy()
    z = np.where(mask, logits, -np.inf)
    with np.errstate(invalid="ignore"):
        p = np.exp(z - z.max(-1, keepdims=True))
        p = p / p.sum(-1, keepdims=True)
    return np.nan_to_num(p)


def test_viterbi_beats_greedy_on_a_hand_set_beta():
    probs = np.zeros((2, 4, 3))
    probs[0, 0] = [0.4, 0.6, 0.0]  # stem: down to 1/8 or stay at 1/4
    probs[1, 0] = [0.5, 0.5, 0.0]  # from (0, 1/4)
    probs[1, 1] = [0.9, 0.05, 0.05]  # from (0, 1/8)
    path, logp = viterbi(probs)
    assert path == [1, 2]  # greedy would stay at 1/4 first and end with 0.3
    assert logp == pytest.approx(np.log(0.36))


def test_viterbi_follows_a_planted_path():
    target = [1, 2, 2, 3, 2, 1, 1, 0]
    logits = np.random.default_rng(1).normal(size=(len(target), 4, 3))
    prev = 0
    for layer, j in enumerate(target):
        logits[layer, prev] = 0.0
        logits[layer, prev, {1: 0, 0: 1, -1: 2}[j - prev]] = 8.0
        prev = j
    assert viterbi(_probs_from_logits(logits))[0] == target


@pytest.mark.parametrize("layers", [1, 2, 3, 5, 7])
def test_viterbi_agrees_with_brute_force(layers):
    rng = np.random.default_rng(layers)
    for _ in range(10):
        probs = _probs_from_logits(rng.normal(scale=2.0, size=(layers, 4, 3)))
        path, logp = viterbi(probs)
        best, best_logp = brute_force_path(probs)
        assert path == best and logp == pytest.approx(best_logp)


def test_cell_decoding_keeps_the_two_strongest_predecessors_and_never_none():
    blocks, k_none = 3, OPS.index("none")
    weights = np.full((len(cell_edges(blocks)), len(OPS)), 0.01)
    weights[:, k_none] = 0.9  # 'none' dominates every edge and must still never be chosen
    second = {  # edge (block, input) -> (operator, weight)
        (0, 0): ("sep_conv_3x3", 0.05), (0, 1): ("max_pool_3x3", 0.06),
        (1, 0): ("skip_connect", 0.02), (1, 1): ("sep_conv_5x5", 0.08), (1, 2): ("atrous_conv_3x3", 0.07),
        (2, 0): ("atrous_conv_5x5", 0.09), (2, 1): ("avg_pool_3x3", 0.03), (2, 2): ("sep_conv_3x3", 0.04),
        (2, 3): ("sep_conv_5x5", 0.05)}
    for e, edge in enumerate(cell_edges(blocks)):
        op, w = second[edge]
        weights[e, OPS.index(op)] = w
    cell = decode_cell(weights, OPS, blocks)
    assert cell == [{"inputs": [1, 0], "ops": ["max_pool_3x3", "sep_conv_3x3"]},
                    {"inputs": [1, 2], "ops": ["sep_conv_5x5", "atrous_conv_3x3"]},
                    {"inputs": [0, 3], "ops": ["atrous_conv_5x5", "sep_conv_5x5"]}]


# -- supernet and search ----------------------------------------------------------------------

ADL = get_method("autodeeplab")


def _tiny_cfg(**autodeeplab):
    return ADL.config("tiny", extra={"data": {"dataset": "synthetic"},
                                     **({"autodeeplab": autodeeplab} if autodeeplab else {})})


def test_gradients_reach_alpha_beta_only_in_the_architecture_step():
    torch.manual_seed(0)
    problem = AutoDeepLabSearch(_tiny_cfg(), num_classes=4, ignore_index=255)
    images, masks = torch.randn(2, 3, 48, 48), torch.randint(0, 4, (2, 48, 48))
    problem.weight_backward(images, masks, pretrain=False)
    assert all(p.grad is None for p in problem.arch_parameters())
    assert sum(p.grad is not None for p in problem.weight_parameters()) > 0.9 * len(problem.weight_parameters())
    problem.net.zero_grad(set_to_none=True)
    problem.arch_backward(images, masks)
    assert all(p.grad is None for p in problem.weight_parameters())
    alpha, beta = problem.net.arch["alpha"], problem.net.arch["beta"]
    assert alpha.grad.abs().sum() > 0
    valid = beta_mask(beta.shape[0])
    # moves into the trellis get gradients, rows of non-existing nodes none (the last layer's
    # heads receive all scales, so every valid beta affects the loss)
    assert (beta.grad[valid] != 0).all() and (beta.grad[~valid] == 0).all()


def test_beta_is_a_distribution_over_the_valid_moves():
    torch.manual_seed(0)
    problem = AutoDeepLabSearch(_tiny_cfg(), num_classes=4, ignore_index=255)
    with torch.no_grad():
        problem.net.arch["beta"].normal_()
    p = problem.net.beta_weights()
    valid = beta_mask(p.shape[0])
    rows = valid.any(-1)
    assert torch.allclose(p.sum(-1)[rows], torch.ones(int(rows.sum()))) and (p[~valid] == 0).all()


def test_genotype_args_must_keep_the_searched_structure():
    with pytest.raises(ConfigError, match="genotype_args.layers"):
        _tiny_cfg(genotype_args={"layers": 9})


def test_derived_networks_carry_autodeeplab_down_transition():
    torch.manual_seed(0)
    problem = AutoDeepLabSearch(_tiny_cfg(down_transition="released"), num_classes=4, ignore_index=255)
    g = problem.derive(None)["genotypes"]["genotype"]
    assert g.space_args["down_transition"] == "released" and problem.args["down_transition"] == "conv3x3"
    assert isinstance(SPACE.build(g, 4).pre_aspp, torch.nn.ReLU)
    assert ADL.sample(np.random.default_rng(0), _tiny_cfg(down_transition="released")).space_args[
        "down_transition"] == "released"  # random search draws the same kind of network
    assert "down_transition" not in ADL.sample(np.random.default_rng(0), _tiny_cfg()).space_args  # tiny: conv3x3
    for preset in ("cpu", "paper"):  # retrain like the zoo's S/M/L
        assert ADL.config(preset, extra={"data": {"dataset": "synthetic"}}).autodeeplab.down_transition == "released"


@pytest.mark.parametrize("override, message", [
    ("autodeeplab.down_transition=strided", "'autodeeplab.down_transition' is 'strided'; choose one of conv3x3"),
    ("search.space_args.down_transition=released", "supernet goes down with the paper's stride-2 conv"),
    ("autodeeplab.genotype_args.down_transition=released", "set autodeeplab.down_transition instead"),
])
def test_down_transition_has_one_place(override, message):
    with pytest.raises(ConfigError, match=message):
        ADL.config("tiny", overrides=[override], extra={"data": {"dataset": "synthetic"}})


@pytest.fixture(scope="module")
def tiny_search(tmp_path_factory):
    out = tmp_path_factory.mktemp("adl") / "run"
    return out, ADL.search(_tiny_cfg(), out, progress=False)


def test_tiny_search_writes_genotypes_and_drawings(tiny_search):
    out, result = tiny_search
    assert sorted(p.name for p in (out / "genotypes").iterdir()) == ["epoch001_genotype.json",
                                                                    "epoch002_genotype.json"]
    assert (out / "genotype.png").stat().st_size > 0
    g = load_genotype(out / "genotype.json")
    # the genotype this seeded search gave before the supernet was rebuilt on segnas.choices (d86c21f)
    assert g.archid == "3718e3895fba0c2f"
    assert g.space == "autodeeplab" and g.space_args["filter_multiplier"] == 4  # genotype_args applied
    assert "down_transition" not in g.space_args  # tiny: conv3x3, left out (the archid above predates it)
    assert g.meta["search_space_args"]["filter_multiplier"] == 2
    moves = g.meta["strongest_moves"]  # per node of layers 0..L-2: where its strongest beta leads
    assert len(moves) == 4 and moves[0][2:] == [-1, -1] and all(abs(k - j) <= 1 for row in moves[:-1]
                                                                 for j, k in enumerate(row) if k >= 0)
    assert moves[-1] == [-1] * 4
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "lr" in r]
    assert steps[0]["lr"] == pytest.approx(0.025) and steps[-1]["lr"] < steps[0]["lr"]  # cosine
    assert not any("arch_loss" in r for r in steps if not r["searching"])  # architecture frozen in warm-up
    assert any("arch_loss" in r for r in steps if r["searching"])
    assert result["final"]["architectures"]["genotype"]["archid"] == g.archid
    epochs = [r for r in records if "architectures" in r]
    signals = [r.get("arch_signal") for r in epochs]
    assert signals[0] is None and signals[-1]["steps"] > 0 and signals[-1]["rows"] > 0


@pytest.mark.slow  # 22 s; the same one-shot loop's resume runs in CI for FasterSeg, DCNAS and under a kill
def test_resumed_search_ends_with_the_identical_genotype(tiny_search, tmp_path):
    out, _ = tiny_search
    cfg = _tiny_cfg()
    assert ADL.search(cfg, tmp_path / "killed", stop_after=3, progress=False)["interrupted"]
    ADL.search(cfg, tmp_path / "killed", resume=True, progress=False)
    assert (tmp_path / "killed" / "genotype.json").read_text() == (out / "genotype.json").read_text()
    a = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)["search"]["net"]
    b = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["search"]["net"]
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_resuming_a_finished_search_returns_its_result(tiny_search, monkeypatch):
    out, result = tiny_search
    before = (out / "genotype.json").read_text()
    # a finished search builds nothing: no supernet, no data
    monkeypatch.setattr(AutoDeepLabSearch, "__init__", lambda *a, **k: pytest.fail("supernet built"))
    again = ADL.search(_tiny_cfg(), out, resume=True, progress=False)
    assert again["already_complete"] and again["final"] == result["final"]
    assert (out / "genotype.json").read_text() == before


def test_resuming_a_checkpoint_of_another_supernet_layout_is_one_clear_error(tmp_path):
    from segnas.engine.checkpoint import atomic_save

    cfg = _tiny_cfg()
    run = tmp_path / "old"
    assert ADL.search(cfg, run, stop_after=1, progress=False)["interrupted"] is True
    # the run was stopped before its first checkpoint; write one whose supernet has an extra stem layer
    ckpt_path = run / "checkpoints" / "last.pt"
    problem = AutoDeepLabSearch(cfg, num_classes=4, ignore_index=255)
    state = problem.state_dict()
    state["net"]["stem.2.conv.weight"] = torch.zeros(1)
    atomic_save({"search": state, "method": "autodeeplab", "config": to_dict(cfg), "step": 1, "epochs_done": 0,
                 "history": [], "opt_w": {}, "opt_a": {}, "torch_rng": torch.get_rng_state(), "num_classes": 4},
                ckpt_path)
    before = ckpt_path.read_bytes()
    with pytest.raises(ConfigError, match="does not fit this autodeeplab supernet.*another --out"):
        ADL.search(cfg, run, resume=True, progress=False)
    assert ckpt_path.read_bytes() == before


def test_searched_genotype_retrains(tiny_search, tmp_path):
    from segnas.engine import retrain

    out, _ = tiny_search
    g = load_genotype(out / "genotype.json")
    cfg = make_config("tiny", overrides=["train.epochs=1"], extra={"data": {"dataset": "synthetic"}})
    result = retrain(g, cfg, tmp_path / "retrain", progress=False)
    assert result["archid"] == g.archid and 0 <= result["best_miou"] <= 1


def test_mixed_edge_shares_the_relu_and_equals_the_weighted_sum():
    from segnas.spaces.autodeeplab.supernet import mixed_edge

    torch.manual_seed(0)
    edge = mixed_edge(OPS, 4).eval()
    x, w = torch.randn(2, 4, 9, 7), torch.softmax(torch.randn(len(OPS)), 0)
    expected = sum(w[OPS.index(name)] * op(x) for name, op in zip([o for o in OPS if o != "none"], edge.ops))
    assert sum(edge.pre_relu) == 4  # the four convolutions
    assert torch.allclose(edge(x, w), expected, atol=1e-6)
