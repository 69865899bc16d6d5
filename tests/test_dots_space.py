"""The DOTS space: DARTS cells in BiSeNet, its genotypes, the published network, the supernet and its searches."""

import numpy as np
import pytest
import torch

import segnas
from segnas.errors import CheckpointError, ConfigError, GenotypeError
from segnas.genotype import Genotype
from segnas.genotype import load as load_genotype
from segnas.genotype import save as save_genotype
from segnas.methods import get_method
from segnas.profile import count_flops, count_params
from segnas.spaces import get_space
from segnas.spaces.dots import OPS, load_backbone_weights
from segnas.spaces.dots.search import DotsSearch

SPACE = get_space("dots")
DOTS = get_method("dots")
# widths for building quickly (a few thousand parameters)
SMALL = {"channels": 4, "layers": 5, "nodes": 3, "spatial_channels": [4, 4, 8], "context_channels": 8,
         "fusion_channels": 8, "head_channels": 8}

# the published ImageNet cells (METHODS.md, DOTS' supplement Fig. 1c), DARTS notation
PUBLISHED = {
    "normal": [["dil_conv_5x5", 0], ["skip_connect", 1], ["skip_connect", 0], ["sep_conv_3x3", 1],
               ["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_5x5", 1]],
    "reduce": [["sep_conv_5x5", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_5x5", 1],
               ["max_pool_3x3", 0], ["dil_conv_5x5", 3], ["sep_conv_3x3", 0], ["max_pool_3x3", 1]]}
# measured (torch's counter, 19 classes, inference graph): Table 2 says 8.0 M and 12.9 G; see the entry's meta.
# The backbone alone + DOTS' ImageNet classifier (768 * 1000 + 1000) is 5.348 M: the paper's 5.3 M ImageNet network.
ZOO_PARAMS, ZOO_BACKBONE, ZOO_MACS_512x1024 = 6_800_363, 4_579_032, 13_798_178_816


def _small(seed=0, **args):
    return SPACE.sample(np.random.default_rng(seed), {**SMALL, **args})


# -- the published network -------------------------------------------------------------------------

def test_zoo_entry_is_the_published_cell_at_the_measured_size():
    g = segnas.zoo.get("dots-bisenet")
    assert g.structure == PUBLISHED and g.space_args["channels"] == 48 and g.space_args["layers"] == 14
    net = SPACE.build(g, 19, aux=False)
    assert count_params(net) == ZOO_PARAMS and abs(g.meta["segnas_count"]["params_M"] * 1e6 - ZOO_PARAMS) < 500
    assert sum(p.numel() for p in net.backbone.parameters()) == ZOO_BACKBONE
    assert ZOO_BACKBONE + 768 * 1000 + 1000 == pytest.approx(5.3e6, rel=0.01)  # DOTS' ImageNet network
    macs = count_flops(net, (1, 3, 512, 1024)) // 2
    assert macs == pytest.approx(ZOO_MACS_512x1024, rel=1e-4)
    assert macs / 12.9e9 - 1 == pytest.approx(0.07, abs=0.005)  # Cityscapes at half resolution: 7% over Table 2
    assert count_params(SPACE.build(g, 19, aux=True), include_aux=True) > ZOO_PARAMS  # aux heads: training only


def test_describe_names_every_node():
    text = SPACE.describe(segnas.zoo.get("dots-bisenet"))
    assert "node 2 = max_pool_3x3(c(k-2)) + dil_conv_5x5(node 1)" in text and "reductions at 4 and 9" in text


# -- genotypes ------------------------------------------------------------------------------------------

def test_genotype_round_trip_builds_the_same_network(tmp_path):
    g = _small()
    assert SPACE.decode(g.choices, g.space_args, meta=g.meta).to_dict() == g.to_dict()
    assert len(g.choices) == len(SPACE.choice_spec(g.space_args)) == 8 * SMALL["nodes"]
    save_genotype(g, tmp_path / "g.json")
    again = load_genotype(tmp_path / "g.json")
    SPACE.validate(again)
    assert again.archid == g.archid and again.choices == g.choices
    torch.manual_seed(0)
    a = SPACE.build(g, 5).eval()
    torch.manual_seed(0)
    b = SPACE.build(again, 5).eval()
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert count_params(a) == count_params(b)
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and a(x).shape == (1, 5, 40, 56)


def _edited(edit):
    data = segnas.zoo.get("dots-bisenet").to_dict()
    del data["archid"]
    edit(data["structure"])
    return Genotype.from_dict(data)


@pytest.mark.parametrize("edit, field", [
    (lambda s: s["normal"][0].__setitem__(0, "none"), "structure.normal[0][0]"),
    (lambda s: s["normal"][3].__setitem__(0, "atrous_conv_3x3"), "structure.normal[3][0]"),
    (lambda s: s["reduce"][5].__setitem__(1, 4), "structure.reduce[5][1]"),  # node 2 reads states 0..3
    (lambda s: s["reduce"][1].__setitem__(1, 0), "structure.reduce[1][1]"),  # node 0 reads c(k-2) twice
    (lambda s: s["normal"].__setitem__(2, "skip_connect"), "structure.normal[2]"),
    (lambda s: s["normal"].pop(), "structure.normal"),
    (lambda s: s.pop("reduce"), "structure"),
])
def test_invalid_genotypes_name_the_field(edit, field):
    with pytest.raises(GenotypeError, match=f"'{field}'".replace("[", r"\[").replace("]", r"\]")):
        SPACE.validate(_edited(edit))


def test_decode_errors_name_the_position_and_decision():
    choices = list(segnas.zoo.get("dots-bisenet").choices)
    bad = list(choices)
    bad[1] = OPS.index("none")
    with pytest.raises(GenotypeError, match=r"choices\[1\] \(normal\.node0\.op0\) is 7 = 'none'"):
        SPACE.decode(bad)
    bad = list(choices)
    bad[18] = bad[16]  # reduce node 0's second input = its first
    with pytest.raises(GenotypeError, match=r"choices\[18\] \(reduce\.node0\.input1\)"):
        SPACE.decode(bad)
    with pytest.raises(GenotypeError, match=r"choices\[31\] \(reduce\.node3\.op1\) is missing"):
        SPACE.decode(choices[:-1])
    with pytest.raises(GenotypeError, match=r"choices\[8\] \(normal\.node2\.input0\) is 4; allowed 0\.\.3"):
        SPACE.decode(choices[:8] + [4] + choices[9:])
    with pytest.raises(GenotypeError, match="space_args.layers"):
        SPACE.choice_spec({"layers": 2})


# -- the network ------------------------------------------------------------------------------------

def test_network_shapes_with_aux_outputs_in_training_only():
    torch.manual_seed(0)
    net = SPACE.build(_small(1), 4)
    x = torch.randn(2, 3, 97, 129)
    logits, aux = net.train()(x, aux=True)
    assert logits.shape == (2, 4, 97, 129) and [a.shape for a in aux] == [(2, 4, 97, 129)] * 2
    f16, f32 = net.backbone(x)
    assert f16.shape[-2:] == (7, 9) and f32.shape[-2:] == (4, 5)  # ceil halving from 97x129
    assert (f16.shape[1], f32.shape[1]) == net.backbone.channels
    (logits.square().mean() + sum(a.square().mean() for a in aux)).backward()
    assert all(p.grad is not None for p in net.parameters())
    with torch.no_grad():
        logits, aux = net.eval()(x, aux=True)
    assert logits.shape == (2, 4, 97, 129) and aux == []
    assert net(x).shape == (2, 4, 97, 129)
    plain = SPACE.build(_small(1), 4, aux=False)
    assert len(plain.aux_heads) == 0 and plain.train()(x, aux=True)[1] == []
    with pytest.raises(ValueError, match="at least 2 images"):
        net.train()(x[:1])


def test_backbone_weights_load_from_a_state_dict_file(tmp_path):
    g = _small(2)
    torch.manual_seed(0)
    source = SPACE.build(g, 3)
    torch.save(source.backbone.state_dict(), tmp_path / "backbone.pt")
    torch.manual_seed(1)
    net = SPACE.build(g, 3)
    load_backbone_weights(net, tmp_path / "backbone.pt")
    assert all(torch.equal(a, b) for a, b in zip(net.backbone.state_dict().values(),
                                                 source.backbone.state_dict().values()))
    state = source.backbone.state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["stem0.0.weight"]
    state["cells.0.pre1.1.weight"] = torch.zeros(3, 3, 1, 1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt: weights do not fit the DOTS backbone: missing stem0\.0\.weight; "
                                              r"unexpected extra\.weight; other shapes cells\.0\.pre1\.1\.weight"):
        load_backbone_weights(net, tmp_path / "bad.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_backbone_weights(net, tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no such weights file"):
        load_backbone_weights(net, tmp_path / "none.pt")


# -- supernet and search -------------------------------------------------------------------------------

def _cfg(strategy="dots", overrides=None):
    return DOTS.config("tiny", overrides=overrides, extra={"data": {"dataset": "synthetic"}}, strategy=strategy)


def _problem():
    torch.manual_seed(0)
    return DotsSearch(_cfg(), num_classes=3, ignore_index=255)


def test_cell_dags_match_the_alpha_rows_and_inputs():
    problem = _problem()
    dags = problem.cell_dags()
    assert [d.alpha for d in dags] == ["alpha_normal", "alpha_reduce"]
    for dag in dags:  # tiny: 2 nodes; node 0 reads states 0, 1 (rows 0, 1), node 1 states 0..2 (rows 2..4)
        assert dag.nodes == (((0, 0), (1, 1)), ((2, 0), (3, 1), (4, 2)))
        assert dag.rows() == problem.net.arch[dag.alpha].shape[0] == len(problem.net.backbone.cells[0].edges)
        assert problem.net.arch.specs[dag.alpha].groups["parameter_free"] == tuple(
            OPS.index(op) for op in ("avg_pool_3x3", "max_pool_3x3", "skip_connect", "none"))


# per cell: edge row -> (operator, logit); 'none' gets a larger logit on every edge and must never be chosen
HAND_SET = {"alpha_normal": {0: ("max_pool_3x3", 2.0), 1: ("sep_conv_3x3", 3.0), 2: ("skip_connect", 1.5),
                             3: ("sep_conv_5x5", 1.0), 4: ("dil_conv_5x5", 2.5)},
            "alpha_reduce": {0: ("avg_pool_3x3", 3.0), 1: ("sep_conv_5x5", 2.0), 2: ("dil_conv_3x3", 1.0),
                             3: ("max_pool_3x3", 2.5), 4: ("dil_conv_3x3", 2.2)}}
DECODED = {"normal": [["sep_conv_3x3", 1], ["max_pool_3x3", 0], ["dil_conv_5x5", 2], ["skip_connect", 0]],
           "reduce": [["avg_pool_3x3", 0], ["sep_conv_5x5", 1], ["max_pool_3x3", 1], ["dil_conv_3x3", 2]]}


def test_darts_decoding_of_hand_set_alpha_never_picks_none():
    problem = _problem()
    with torch.no_grad():
        for name, rows in HAND_SET.items():
            alpha = problem.net.arch[name]
            alpha.zero_()
            alpha[:, OPS.index("none")] = 5.0
            for row, (op, logit) in rows.items():
                alpha[row, OPS.index(op)] = logit
    g = problem.derive(None)["genotypes"]["genotype"]
    assert g.structure == DECODED and g.space_args == problem.args


def test_derive_cells_builds_the_given_cells():
    problem = _problem()
    cells = {"alpha_normal": [[(1, "sep_conv_3x3"), (0, "max_pool_3x3")], [(2, "dil_conv_5x5"), (0, "skip_connect")]],
             "alpha_reduce": [[(0, "avg_pool_3x3"), (1, "sep_conv_5x5")], [(1, "max_pool_3x3"), (2, "dil_conv_3x3")]]}
    out = problem.derive_cells(cells, None)
    g = out["genotypes"]["genotype"]
    assert g.structure == DECODED and out["records"]["genotype"]["normal"] == "sep3<1 max<0 | dil5<2 skip<0"
    assert SPACE.build(g, 3)(torch.randn(2, 3, 32, 32)).shape == (2, 3, 32, 32)


def test_each_step_reaches_only_its_own_parameters():
    problem = _problem()
    images, masks = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    logs = problem.weight_backward(images, masks, pretrain=True)
    assert all(p.grad is None for p in problem.arch_parameters()) and logs["loss_weights"] > 0
    assert problem.net.aux_heads["context8"][1].weight.grad is not None  # the aux losses train their heads
    problem.net.zero_grad(set_to_none=True)
    problem.arch_backward(images, masks)
    assert all(p.grad is not None for p in problem.arch_parameters())
    assert all(p.grad is None for p in problem.weight_parameters())


def test_a_fixed_architecture_runs_only_its_operators_and_computes_its_one_hot_mixture():
    problem = _problem()
    g = SPACE.make_genotype(DECODED, problem.args)
    net, x = problem.net.eval(), torch.randn(2, 3, 32, 32)
    onehot = problem.fixed_weights(g)
    with torch.no_grad(), problem.fixed(g) as notes:
        fixed = net(x)
        assert "BatchNorm without affine" in notes[0] and len(notes) == 1
    for name, (weights, _) in onehot.items():  # every operator of every edge, one-hot weighted: the same sum
        problem.net.arch.relax(name, lambda w=weights: w, active=None)
    with torch.no_grad():
        assert torch.allclose(net(x), fixed, atol=1e-6)
    other = SPACE.make_genotype(_small().structure, {**problem.args, "nodes": 3, "layers": 4})
    with pytest.raises(GenotypeError, match="space_args.layers is 4"):
        with problem.fixed(other):
            pass


@pytest.mark.parametrize("override, key", [("search.space_args.layers=2", "search.space_args.layers"),
                                           ("search.space_args.ops=[none]", "search.space_args.ops"),
                                           ("search.arch_loss=ohem", "search.arch_loss"),
                                           ("search.batch_size=1", "search.batch_size")])
def test_config_errors_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _cfg(overrides=[override])


def test_the_method_has_no_section_of_its_own():
    assert DOTS.section is None and "dots" not in {k for k in DOTS.presets["tiny"]}
    assert hasattr(_cfg("dots"), "dots") and not hasattr(_cfg("differentiable"), "dots")


@pytest.mark.parametrize("strategy", ["dots", "differentiable"])
def test_tiny_search_writes_a_genotype_that_builds(strategy, tmp_path):
    out = tmp_path / strategy
    result = DOTS.search(_cfg(strategy), out, progress=False)
    g = load_genotype(out / "genotype.json")
    assert g.space == "dots" and result["final"]["architectures"]["genotype"]["archid"] == g.archid
    assert (out / "genotype.png").stat().st_size > 0
    assert result["final"]["phase"] == ("topology_search" if strategy == "dots" else "search")
    net = SPACE.build(g, 3).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 33, 47)).shape == (1, 3, 33, 47)


def test_retrain_starts_from_a_pretrained_backbone_file_and_says_so(tmp_path):
    from segnas.config import make_config
    from segnas.engine import retrain
    from segnas.errors import ConfigError
    from segnas.zoo import get as zoo_get

    g = _small(2)
    torch.manual_seed(5)
    source = SPACE.build(g, 3).backbone.state_dict()
    torch.save(source, tmp_path / "backbone.pt")
    # a vanishing learning rate: the weights a step leaves are the ones it started from
    cfg = make_config("tiny", overrides=["train.epochs=1", "train.lr=1e-12", "train.weight_decay=0",
                                         f"train.pretrained={tmp_path / 'backbone.pt'}"],
                      extra={"data": {"dataset": "synthetic"}})
    result = retrain(g, cfg, tmp_path / "run", progress=False)
    assert result["start"].startswith("pretrained: backbone (stems and cells) from")
    trained = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key in ("stem0.0.weight", "cells.0.pre1.1.weight"):
        assert torch.allclose(trained[f"backbone.{key}"], source[key], atol=1e-6), key
    plain = retrain(g, make_config("tiny", overrides=["train.epochs=1"], extra={"data": {"dataset": "synthetic"}}),
                    tmp_path / "plain", progress=False)
    assert plain["start"].startswith("from scratch")
    with pytest.raises(ConfigError, match="train.pretrained: networks of space 'fasterseg' have no pretrained part"):
        retrain(zoo_get("fasterseg"), cfg, tmp_path / "fs", progress=False)
    assert not (tmp_path / "fs").exists()
    from segnas.methods import get_method  # a search's trials would load it too: refused with the config
    with pytest.raises(ConfigError, match="train.pretrained: networks of space 'fasterseg'"):
        get_method("fasterseg").config("tiny", overrides=[f"train.pretrained={tmp_path / 'backbone.pt'}"],
                                       strategy="random")


def test_context_receptive_field_of_a_hand_made_network():
    from segnas.methods import get_method
    from segnas.spaces.dots.receptive import backbone_field, context_radius

    structure = {"normal": [["sep_conv_3x3", 1], ["skip_connect", 0]],
                 "reduce": [["dil_conv_5x5", 1], ["max_pool_3x3", 0]]}
    args = {"channels": 4, "layers": 3}  # cells: normal, reduce, reduce
    # stems 3, 7 (1/4), 15 (1/8); normal: sep3 on c(k-1) 15 + 2*8 + 2*8 = 47; reduce: dil5 on 47: + 4*2*8 = 111
    # (the pool on c(k-2): 15 + 2*8 = 31); reduce again: dil5 + 4*2*16 = 239, the pool 47 + 2*16 = 79
    assert backbone_field(structure, args) == 239 and context_radius(structure, args) == 119
    g = SPACE.make_genotype(structure, {**SMALL, "channels": 4, "layers": 3, "nodes": 1})
    assert not get_method("dots").has_planted("planted-context", g)
    far = SPACE.make_genotype({"normal": structure["normal"], "reduce": [["sep_conv_5x5", 1], ["skip_connect", 0]]},
                              {**SMALL, "channels": 4, "layers": 3, "nodes": 1})
    # reduce: sep5 on c(k-1), two rounds, the second at the halved size: 47 + 4*8 + 4*16 = 143, then 143 + 4*16
    # + 4*32 = 335, radius 167; with layers 5 (normal, reduce, normal, reduce, normal): far beyond 220
    assert backbone_field(far.structure, {"channels": 4, "layers": 3}) == 335
    assert get_method("dots").has_planted("planted-context", SPACE.make_genotype(
        far.structure, {**SMALL, "channels": 4, "layers": 6, "nodes": 1}))
