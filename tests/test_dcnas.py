"""DCNAS: space, genotype contract, decoding, regularizers, partial channels, supernet gradients, search runs."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from segnas.config import make_config
from segnas.errors import ConfigError, GenotypeError
from segnas.genotype import Genotype
from segnas.genotype import load as load_genotype
from segnas.genotype import save as save_genotype
from segnas.methods import get_method
from segnas.objectives.regularizers import entropy, gate_entropy, indegree_penalty
from segnas.ops import MOBILE_OPS
from segnas.profile import count_flops, count_params
from segnas.spaces import get_space
from segnas.spaces.dcnas.derive import decode
from segnas.spaces.dcnas.graph import connections, n_connections, offset, sources
from segnas.spaces.dcnas.search import DCNASSearch
from segnas.spaces.dcnas.supernet import mixture

SPACE = get_space("dcnas")
DCNAS = get_method("dcnas")
SMALL = {"layers": 3, "filter_multiplier": 4, "stem_channels": 8, "head_channels": 8}


def _cfg(*overrides):
    return DCNAS.config("tiny", overrides=list(overrides), extra={"data": {"dataset": "synthetic"}})


def _problem(*overrides):
    torch.manual_seed(0)
    return DCNASSearch(_cfg(*overrides), num_classes=4, ignore_index=255)


# -- the grid -----------------------------------------------------------------------------------

def test_every_node_may_take_every_node_of_the_earlier_layers():
    conns = connections(3)
    assert len(conns) == n_connections(3) == 96  # 4 nodes x (4 + 8 + 12) candidates
    assert sources(2) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    for (layer, j), _ in conns:  # each node's candidates form one slice, in node order
        start = offset(layer, j)
        assert [s for (t, s) in conns[start: start + 4 * layer]] == sources(layer)
        assert all(t == (layer, j) for t, _ in conns[start: start + 4 * layer])


def test_stem_gives_the_four_scales_and_the_head_reads_the_last_layer():
    g = SPACE.sample(np.random.default_rng(1), SMALL)
    net = SPACE.build(g, 5)
    x = torch.randn(2, 3, 64, 96)
    stem = net.stem(x)
    assert [tuple(t.shape[1:]) for t in stem] == [(4, 16, 24), (8, 8, 12), (16, 4, 6), (32, 2, 3)]
    assert net.stem.conv7.conv.kernel_size == (7, 7) and net.stem.conv7.conv.out_channels == 8
    assert [tuple(t.shape[1:]) for t in net.features(x)] == [(4, 16, 24), (8, 8, 12), (16, 4, 6), (32, 2, 3)]
    assert net.head.fuse.conv.in_channels == 4 + 8 + 16 + 32


@pytest.mark.parametrize("down_align", ["chain", "single"])
@pytest.mark.parametrize("fusion", ["sum", "mean"])
def test_network_shapes_and_gradients_on_odd_sizes(down_align, fusion):
    g = SPACE.sample(np.random.default_rng(7), {**SMALL, "down_align": down_align, "fusion": fusion})
    net = SPACE.build(g, 6)
    logits, aux = net(torch.randn(2, 3, 67, 93), aux=True)
    assert logits.shape == (2, 6, 67, 93) and aux == []
    logits.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_down_alignment_chains_stride_2_convs_or_takes_one_larger_stride():
    nodes = [{"layer": 1, "scale": s, "op": "mbconv_k3_e3", "inputs": [[0, 4]]} for s in (4, 8, 16, 32)]
    chain = SPACE.build(SPACE.make_genotype({"nodes": nodes}, {**SMALL, "layers": 1}), 3)
    single = SPACE.build(SPACE.make_genotype({"nodes": nodes}, {**SMALL, "layers": 1, "down_align": "single"}), 3)

    def strides(net, key):
        return [m.stride[0] for m in net.fusions[key].modules() if isinstance(m, nn.Conv2d)]

    assert strides(chain, "1_3") == [2, 2, 2, 1] and strides(single, "1_3") == [8, 1]  # 1/4 -> 1/32, then the 1x1
    assert strides(chain, "1_0") == [1]  # same scale: the 1x1 alone


@pytest.mark.parametrize("name", MOBILE_OPS)
def test_mobile_operators_keep_the_shape(name):
    from segnas.ops import MBConv, SqueezeExcite
    from segnas.spaces.dcnas.network import node_op

    op = node_op(name, 6)
    x = torch.randn(2, 6, 9, 7)
    assert op(x).shape == x.shape
    if name.startswith("mbconv"):
        kernel, expansion = int(name[8]), int(name[11])
        depthwise = [m for m in op.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
        assert [(m.kernel_size[0], m.out_channels) for m in depthwise] == [(kernel, 6 * expansion)]
        assert any(isinstance(m, SqueezeExcite) for m in op.modules()) == name.endswith("_se")
        assert isinstance(op, MBConv) and op.residual


def test_strided_mbconv_halves_like_a_strided_conv_without_the_residual():
    from segnas.ops import MBConv, mobile_op

    op = MBConv(4, 8, 5, 6, se=True, stride=2, act="relu")
    assert op(torch.randn(2, 4, 9, 7)).shape == (2, 8, 5, 4) and not op.residual
    with pytest.raises(KeyError, match="known: mbconv_k3_e3"):
        mobile_op("mbconv_k4", 4)


# -- genotype contract ----------------------------------------------------------------------------

HAND = {"nodes": [
    {"layer": 1, "scale": 8, "op": "mbconv_k5_e6_se", "inputs": [[0, 4], [0, 8]]},
    {"layer": 1, "scale": 32, "op": "skip_connect", "inputs": [[0, 16]]},
    {"layer": 2, "scale": 4, "op": "mbconv_k3_e3", "inputs": [[0, 4], [1, 8]]},
    {"layer": 2, "scale": 8, "op": "mbconv_k7_e3", "inputs": [[1, 32]]},
    {"layer": 2, "scale": 16, "op": "mbconv_k3_e6_se", "inputs": [[0, 16]]},
    {"layer": 2, "scale": 32, "op": "mbconv_k5_e3", "inputs": [[0, 32], [1, 8]]},
]}
HAND_ARGS = {**SMALL, "layers": 2}


def test_genotype_round_trip_builds_the_same_network(tmp_path):
    for g in (SPACE.make_genotype(HAND, HAND_ARGS, name="hand"), SPACE.sample(np.random.default_rng(0), SMALL)):
        save_genotype(g, tmp_path / "g.json")
        again = load_genotype(tmp_path / "g.json")
        assert again.archid == g.archid and again.choices == g.choices and again.structure == g.structure
        torch.manual_seed(0)
        a = SPACE.build(g, 5).eval()
        torch.manual_seed(0)
        b = SPACE.build(again, 5).eval()
        assert count_params(a) == count_params(b)
        x = torch.randn(1, 3, 64, 64)
        assert torch.equal(a(x), b(x))
        spec = SPACE.choice_spec(g.space_args)
        assert len(spec) == len(g.choices) == 4 * g.space_args["layers"] + n_connections(g.space_args["layers"])
        assert all(0 <= c < d.size for c, d in zip(g.choices, spec))
        d = SPACE.decode(g.choices, g.space_args, name=g.name, meta=g.meta)
        assert d.to_dict() == g.to_dict()


def test_hand_genotype_encodes_one_op_and_one_keep_bit_per_candidate():
    g = SPACE.make_genotype(HAND, HAND_ARGS)
    spec = SPACE.choice_spec(HAND_ARGS)
    named = dict(zip([d.name for d in spec], g.choices))
    assert named["layer1@1/8.op"] == MOBILE_OPS.index("mbconv_k5_e6_se")
    assert named["layer1@1/4.op"] == 0 and not any(v for k, v in named.items() if k.startswith("layer1@1/4<-"))
    assert named["layer2@1/8<-layer1@1/32"] == 1 and named["layer2@1/8<-stem@1/32"] == 0
    assert sum(v for k, v in named.items() if "<-" in k) == 9  # the kept connections


def test_sampled_genotypes_are_valid_reachable_and_sparse():
    seen = set()
    for seed in range(40):
        g = SPACE.sample(np.random.default_rng(seed), SMALL)
        SPACE.validate(g)
        assert SPACE.decode(g.choices, g.space_args).archid == g.archid
        present = {(n["layer"], n["scale"]) for n in g.structure["nodes"]}
        assert {(3, s) for s in (4, 8, 16, 32)} <= present
        for n in g.structure["nodes"]:
            assert 1 <= len(n["inputs"]) <= 3 and n["op"] in MOBILE_OPS
            assert all(layer == 0 or (layer, s) in present for layer, s in n["inputs"])  # reached from the stem
        used = {tuple(i) for n in g.structure["nodes"] for i in n["inputs"]}
        assert all(key in used for key in present if key[0] < 3)  # reaches the head
        seen.add(g.archid)
    assert len(seen) == 40


def _edited(edit):
    data = SPACE.make_genotype(json.loads(json.dumps(HAND)), HAND_ARGS).to_dict()
    del data["archid"]
    edit(data["structure"]["nodes"])
    return Genotype.from_dict(data)


@pytest.mark.parametrize("edit, field", [
    (lambda n: n.pop(3), "structure.nodes' lacks the last layer's node(s) layer2@1/8"),
    (lambda n: n[0].__setitem__("layer", 3), "structure.nodes[0].layer"),
    (lambda n: n[0].__setitem__("scale", 2), "structure.nodes[0].scale"),
    (lambda n: n[2].__setitem__("op", "none"), "structure.nodes[2].op"),
    (lambda n: n[2].__setitem__("inputs", [[2, 4]]), "structure.nodes[2].inputs"),
    (lambda n: n[2].__setitem__("inputs", []), "structure.nodes[2].inputs"),
    (lambda n: n[2].__setitem__("inputs", [[1, 8], [0, 4]]), "structure.nodes[2].inputs' must list distinct"),
    (lambda n: n[3].__setitem__("inputs", [[1, 16]]), "structure.nodes[3].inputs' takes [1, 16], a node not"),
    (lambda n: n.insert(1, {"layer": 1, "scale": 16, "op": "skip_connect", "inputs": [[0, 4]]}),
     "structure.nodes[1]' (layer1@1/16) is no node's input"),
    (lambda n: n.reverse(), "structure.nodes[1]' (layer 2, scale 16) is out of order"),
])
def test_invalid_genotypes_name_the_field(edit, field):
    with pytest.raises(GenotypeError, match=field.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")
                       .replace("(", r"\(").replace(")", r"\)")):
        SPACE.validate(_edited(edit))


def test_decode_names_the_decision_that_breaks_a_rule():
    g = SPACE.make_genotype(HAND, HAND_ARGS)
    names = [d.name for d in SPACE.choice_spec(HAND_ARGS)]

    def fails(pos, value, needle):
        choices = list(g.choices)
        choices[pos] = value
        with pytest.raises(GenotypeError, match=needle) as e:
            SPACE.decode(choices, HAND_ARGS)
        assert "\n" not in str(e.value)

    fails(names.index("layer1@1/4.op"), 2, r"choices\[0\] \(layer1@1/4\.op\) is 2, but the node keeps no input")
    fails(names.index("layer2@1/8<-layer1@1/32"), 0, r"layer2@1/8's keep-bits\) are all 0")
    fails(names.index("layer2@1/8<-layer1@1/16"), 1, r"keeps a connection from layer1@1/16, which keeps no input")
    fails(names.index("layer1@1/16<-stem@1/4"), 1, r"layer1@1/16 keeps inputs but is no later node's input")
    with pytest.raises(GenotypeError, match=r"choices\[55\] \(layer2@1/32<-layer1@1/32\) is missing"):
        SPACE.decode(g.choices[:-1], HAND_ARGS)
    ops = ["mbconv_k3_e3", "none"]
    g2 = SPACE.make_genotype(HAND | {"nodes": [dict(n, op="mbconv_k3_e3") for n in HAND["nodes"]]},
                             {**HAND_ARGS, "ops": ops})
    choices = list(g2.choices)
    choices[names.index("layer2@1/4.op")] = 1
    with pytest.raises(GenotypeError, match=r"'none', which a genotype never contains"):
        SPACE.decode(choices, {**HAND_ARGS, "ops": ops})


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_decode_of_edited_choices_is_exact_or_refused(seed, data):
    g = SPACE.sample(np.random.default_rng(seed), SMALL)
    spec = SPACE.choice_spec(SMALL)
    c = list(g.choices)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(c) - 1))
        c[pos] = data.draw(st.integers(0, spec[pos].size - 1))
    try:
        d = SPACE.decode(c, SMALL)
    except GenotypeError as e:
        assert str(e).startswith("choices[") and "\n" not in str(e)
    else:
        assert d.choices == c
        SPACE.validate(d)


# -- decoding --------------------------------------------------------------------------------------

def _hand_beta() -> np.ndarray:
    """L = 2: every beta -1, but for the connections the decoding must see (listed with the expected result)."""
    beta = np.full(n_connections(2), -1.0)

    def put(target, source, value):
        beta[offset(*target) + sources(target[0]).index(source)] = value

    put((2, 0), (1, 1), 0.5)
    put((2, 0), (0, 0), 0.0)  # exactly 0 is kept
    put((2, 1), (1, 3), -0.2)  # (2, 1): all below zero, the strongest is kept
    put((2, 2), (0, 2), 2.0)
    put((2, 3), (1, 1), 1.0)
    put((2, 3), (0, 3), 0.3)
    put((1, 1), (0, 0), 1.0)
    put((1, 1), (0, 1), 0.1)
    put((1, 3), (0, 2), -0.5)  # (1, 3): all below zero, keeps its strongest
    put((1, 0), (0, 0), 3.0)  # (1, 0): a strong input, but no visited node takes it: dropped
    return beta


EXPECTED = [((1, 8), [[0, 4], [0, 8]]), ((1, 32), [[0, 16]]), ((2, 4), [[0, 4], [1, 8]]), ((2, 8), [[1, 32]]),
            ((2, 16), [[0, 16]]), ((2, 32), [[0, 32], [1, 8]])]


def test_bfs_keeps_nonnegative_connections_the_strongest_of_a_cut_off_node_and_drops_unreached_ones():
    ops = ["mbconv_k3_e3", "skip_connect", "none"]
    alpha = np.tile([0.5, 0.3, 0.2], (8, 1))
    alpha[6] = [0.2, 0.3, 0.5]  # node (2, 2): 'none' leads, the best other operator is taken
    nodes = decode(alpha, _hand_beta(), ops, 2)
    assert [((n["layer"], n["scale"]), n["inputs"]) for n in nodes] == EXPECTED
    assert [n["op"] for n in nodes] == ["mbconv_k3_e3"] * 4 + ["skip_connect", "mbconv_k3_e3"]


def test_derived_genotype_carries_the_kept_connection_weights():
    problem = _problem()
    beta = _hand_beta()
    with torch.no_grad():
        problem.net.arch["beta"].copy_(torch.tensor(beta))
        alpha = torch.zeros(8, len(MOBILE_OPS))
        alpha[torch.arange(8), torch.arange(8)] = 5.0  # node n takes operator n
        problem.net.arch["alpha"].copy_(alpha)
    out = problem.derive(None)
    g, record = out["genotypes"]["genotype"], out["records"]["genotype"]
    assert [((n["layer"], n["scale"]), n["inputs"]) for n in g.structure["nodes"]] == EXPECTED
    assert [n["op"] for n in g.structure["nodes"]] == [MOBILE_OPS[i] for i in (1, 3, 4, 5, 6, 7)]
    sig = lambda b: round(1 / (1 + math.exp(-b)), 4)  # noqa: E731
    assert g.meta["connection_weights"] == [[sig(1.0), sig(0.1)], [sig(-0.5)], [sig(0.0), sig(0.5)], [sig(-0.2)],
                                            [sig(2.0)], [sig(0.3), sig(1.0)]]
    assert (record["nodes"], record["connections"]) == (6, 9)


# -- regularizers ----------------------------------------------------------------------------------

def test_regularizers_against_hand_computed_values():
    w = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]])
    assert float(entropy(w)) == pytest.approx(0.693147 + 1.386294, abs=1e-5)  # ln 2 + ln 4 + 0
    b = torch.tensor([0.0, math.log(3), -math.log(3), 20.0, -20.0])
    # ln(1 + e^-b) / (1 + e^-b): ln2 / 2, ln(4/3) * 3/4, ln4 / 4, ~0, ~0
    assert float(gate_entropy(b)) == pytest.approx(0.346574 + 0.215762 + 0.346574, abs=1e-5)
    gates = torch.tensor([0.5, 0.25, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 1.0])
    target = torch.tensor([0, 0, 1, 1, 1, 1, 2, 2, 2])
    # in-degrees 0.75 (0.25 short of 1), 3.6 (0.6 over k = 3), 2.0 (inside [1, 3])
    assert float(indegree_penalty(gates, target, 3, 3)) == pytest.approx(0.85, abs=1e-6)
    assert float(indegree_penalty(gates, target, 3, 4)) == pytest.approx(0.25, abs=1e-6)


def _set_hand_arch(problem):
    """L = 1 (4 nodes x 4 stem inputs): node 0's gates at b = 2, node 1's at b = -3, nodes 2, 3 at b = 0."""
    with torch.no_grad():
        problem.net.arch["alpha"].zero_()
        problem.net.arch["beta"].copy_(torch.tensor([2.0] * 4 + [-3.0] * 4 + [0.0] * 8))


def test_the_problem_logs_its_regularizers_at_hand_set_parameters():
    problem = _problem("search.space_args.layers=1")
    _set_hand_arch(problem)
    images, masks = torch.randn(2, 3, 32, 32), torch.randint(0, 4, (2, 32, 32))
    logs = problem.arch_backward(images, masks)
    # L_alpha: 4 uniform rows over 13 operators, 4 ln 13
    assert float(logs["arch_reg_alpha"]) == pytest.approx(4 * 2.564949, abs=1e-5)
    # L_beta: 4 f(2) + 4 f(-3) + 8 f(0), f(b) = ln(1 + e^-b) / (1 + e^-b) = 0.111798, 0.144582, 0.346574
    assert float(logs["arch_reg_beta"]) == pytest.approx(4 * 0.111798 + 4 * 0.144582 + 8 * 0.346574, abs=1e-5)
    # L_con: in-degrees 4 * 0.880797 = 3.523188 (0.523188 over 3), 4 * 0.047426 = 0.189703 (0.810297 short of 1),
    # 2 and 2 (no penalty)
    assert float(logs["arch_reg_con"]) == pytest.approx(0.523188 + 0.810297, abs=1e-5)
    total = logs["arch_loss"] + 0.01 * (logs["arch_reg_alpha"] + logs["arch_reg_beta"] + logs["arch_reg_con"])
    assert float(logs["arch_total"]) == pytest.approx(float(total), rel=1e-6)


def test_a_regularizer_at_weight_zero_leaves_the_architecture_gradient_to_the_others():
    images, masks = torch.randn(2, 3, 32, 32), torch.randint(0, 4, (2, 32, 32))

    def grads(*weights):
        problem = _problem("search.space_args.layers=1", *weights)
        _set_hand_arch(problem)
        problem.net.eval()  # the same BN statistics in every call
        problem.arch_backward(images, masks)
        return [p.grad.clone() for p in problem.arch_parameters()]

    off = ("dcnas.alpha_weight=0", "dcnas.beta_weight=0", "dcnas.con_weight=0")
    ce_alpha, ce_beta = grads(*off)
    con_alpha, con_beta = grads("dcnas.alpha_weight=0", "dcnas.beta_weight=0", "dcnas.con_weight=1")
    assert torch.allclose(con_alpha, ce_alpha, rtol=1e-6, atol=1e-12)  # L_con does not involve alpha
    # d L_con / d b = s(1 - s) per gate, + over k (node 0), - under 1 (node 1), 0 inside (nodes 2, 3)
    s2, s3 = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(3))
    expected = torch.tensor([s2 * (1 - s2)] * 4 + [-s3 * (1 - s3)] * 4 + [0.0] * 8)
    assert torch.allclose(con_beta - ce_beta, expected, atol=1e-6)


# -- supernet ---------------------------------------------------------------------------------------

def test_gradients_reach_alpha_beta_only_in_the_architecture_step():
    problem = _problem()
    images, masks = torch.randn(2, 3, 48, 48), torch.randint(0, 4, (2, 48, 48))
    problem.weight_backward(images, masks, pretrain=False)
    assert all(p.grad is None for p in problem.arch_parameters())
    assert all(p.grad is not None for p in problem.weight_parameters())
    problem.net.zero_grad(set_to_none=True)
    problem.arch_backward(images, masks)
    assert all(p.grad is None for p in problem.weight_parameters())
    alpha, beta = problem.net.arch["alpha"], problem.net.arch["beta"]
    assert (alpha.grad.abs().sum(1) > 0).all() and (beta.grad != 0).all()  # every node, every connection
    assert [s.kind for s in problem.arch_specs()] == ["softmax", "sigmoid"]
    assert len(problem.arch_specs()[1].options) == beta.numel() == n_connections(2)


def _macs(mixed: nn.Module, n_ops: int, c: int, hw: int = 8) -> int:
    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.mixed = mixed
            self.register_buffer("w", torch.full((n_ops,), 1.0 / n_ops))

        def forward(self, x):
            return self.mixed(x, self.w)

    return count_flops(Wrapped(), (1, c, hw, hw)) // 2


def test_partial_channels_cut_the_mixture_multiply_adds():
    one = ["mbconv_k3_e3"]
    # on C channels of 8x8: expand C * 3C * 64, depthwise 3C * 9 * 64, project 3C * C * 64
    assert _macs(mixture(one, 8, 1), 1, 8) == 8 * 24 * 64 + 24 * 9 * 64 + 24 * 8 * 64 == 38_400
    assert _macs(mixture(one, 8, 2), 1, 8) == 4 * 12 * 64 + 12 * 9 * 64 + 12 * 4 * 64 == 13_056  # on 4 channels
    full = _macs(mixture(list(MOBILE_OPS), 32, 1), 13, 32)
    for k in (2, 4):
        part = _macs(mixture(list(MOBILE_OPS), 32, k), 13, 32)
        assert part == _macs(mixture(list(MOBILE_OPS), 32 // k, 1), 13, 32 // k)  # the bypass costs nothing
        assert full / k ** 2 <= part <= full / k  # depthwise parts fall as r, pointwise ones as r^2


def test_partial_mixture_keeps_the_shape_and_shuffles_the_bypass_in():
    torch.manual_seed(0)
    mixed = mixture(["skip_connect"], 8, 4)
    x = torch.arange(8.0).view(1, 8, 1, 1).expand(1, 8, 2, 2)
    out = mixed(x, torch.ones(1))
    assert out.shape == x.shape and out[0, :, 0, 0].tolist() == [0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]


def test_autodeeplab_operators_build_a_supernet_and_networks():
    problem = _problem("search.space_args.ops=autodeeplab", "dcnas.partial_ratio=0.5")
    assert problem.net.ops[-1] == "none" and len(problem.net.ops) == 8
    logits = problem.net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 4, 32, 32)
    g = problem.derive(None)["genotypes"]["genotype"]
    assert g.space_args["ops"] == "autodeeplab" and all(n["op"] != "none" for n in g.structure["nodes"])
    assert SPACE.build(g, 4)(torch.randn(2, 3, 32, 32)).shape == (2, 4, 32, 32)


@pytest.mark.parametrize("override, message", [
    ("dcnas.partial_ratio=0.3", r"'dcnas\.partial_ratio' is 0\.3; it must be 1/k"),
    ("dcnas.partial_ratio=0.125", r"divisible by 8"),
    ("dcnas.partial_ratio=0", r"'dcnas\.partial_ratio' is 0\.0; it must be > 0"),
    ("dcnas.max_indegree=0", r"'dcnas\.max_indegree' is 0"),
    ("dcnas.genotype_args.layers=3", r"dcnas\.genotype_args\.layers: the derived network must keep"),
    ("search.space_args.ops=[mbconv_k9_e3]", r"search\.space_args.*field 'ops'"),
    ("search.space_args.fusion=max", r"field 'fusion' is 'max'; choose one of sum, mean"),
    ("search.arch_loss=ohem", r"search\.arch_loss"),
    ("dcnas.genotype_args={foo: 1}", r"^dcnas\.genotype_args: unknown argument 'foo'"),
    ("search.space_args.foo=1", r"^search\.space_args: unknown argument 'foo'"),
])
def test_bad_settings_are_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message) as e:
        _cfg(override)
    assert "\n" not in str(e.value)


def test_presets_follow_the_supplement_where_the_search_config_can():
    for preset in ("tiny", "cpu", "paper"):
        sc = DCNAS.config(preset, extra={"data": {"dataset": "synthetic"}}).search
        assert (sc.lr, sc.weight_decay, sc.arch_lr, sc.arch_weight_decay) == (0.01, 1e-4, 5e-4, 0.0)
        assert (sc.lr_schedule, sc.poly_power, sc.lr_min) == ("poly", 0.9, 0.0)
    paper = DCNAS.config("paper", extra={"data": {"dataset": "synthetic"}})
    assert paper.search.epochs + paper.search.pretrain_epochs == 120 and paper.dcnas.partial_ratio == 0.25
    assert paper.dcnas.max_indegree == 3 and SPACE.resolve_args(paper.search.space_args)["layers"] == 14


def test_receptive_fields_of_a_hand_made_network():
    from segnas.spaces.dcnas.receptive import head_field, node_fields

    fields = node_fields(HAND, HAND_ARGS)
    # stem 11/19/35/67; (1,8): 1/4 input 11 + 8 (stride-2 3x3 at 1/4), k5 at 1/8 + 32 = 51
    assert fields[(1, 8)] == 51 and fields[(1, 32)] == 67  # 35 + 32 (3x3 at 1/16), skip
    assert fields[(2, 4)] == 67  # (1,8) 51 + 8 (bilinear from 1/8), k3 at 1/4 + 8
    assert fields[(2, 8)] == 147  # (1,32) 67 + 32 (bilinear from 1/32), k7 at 1/8 + 48
    assert fields[(2, 32)] == 227  # (1,8) 51 + 16 + 32 (two stride-2 3x3s), k5 at 1/32 + 128
    assert head_field(HAND, HAND_ARGS) == 267  # (2,32) 227 + 32 (to 1/4), 3x3 at 1/4 + 8
    single = {**HAND_ARGS, "down_align": "single"}  # one 3x3 of stride 4 from 1/8: + 16
    assert node_fields(HAND, single)[(2, 32)] == 195 and head_field(HAND, single) == 235


def test_planted_property_is_a_head_reaching_far():
    g = SPACE.make_genotype(HAND, HAND_ARGS)
    assert not DCNAS.has_planted("planted-context", g)  # radius (267 - 1) / 2 = 133 px
    nodes = json.loads(json.dumps(HAND["nodes"]))
    nodes[1].update(op="mbconv_k7_e3", inputs=[[0, 32]])  # 67 + 192 = 259
    nodes[5].update(op="mbconv_k7_e3", inputs=[[1, 32]])  # 259 + 192 = 451
    g2 = SPACE.make_genotype({"nodes": nodes}, HAND_ARGS)
    assert DCNAS.has_planted("planted-context", g2)  # head 451 + 32 + 8 = 491: radius 245 px


def test_drawings_with_and_without_connection_weights(tmp_path):
    from segnas.methods import draw_genotype

    g = SPACE.make_genotype(HAND, HAND_ARGS, meta={"connection_weights": [[0.9, 0.6], [0.4], [0.5, 0.7], [0.45],
                                                                          [0.88], [0.55, 0.73]]})
    assert draw_genotype(g, tmp_path / "w.png").stat().st_size > 0
    assert draw_genotype(SPACE.sample(np.random.default_rng(0), SMALL), tmp_path / "s.png").stat().st_size > 0

    def edge_ink(weight: float) -> int:
        """Pixels drawn in the edges' blue when every kept connection has ``weight``."""
        from PIL import Image

        shape = [[weight] * len(n["inputs"]) for n in HAND["nodes"]]
        path = draw_genotype(SPACE.make_genotype(HAND, HAND_ARGS, meta={"connection_weights": shape}),
                             tmp_path / f"ink{weight}.png")
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
        blue = (rgb[..., 2] > rgb[..., 0] + 40) & (rgb[..., 2] > 120)
        return int(blue.sum())

    assert edge_ink(0.95) > 1.5 * edge_ink(0.05)  # edge width follows sigmoid(beta)


# -- search runs -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_search(tmp_path_factory):
    out = tmp_path_factory.mktemp("dcnas") / "run"
    return out, DCNAS.search(_cfg(), out, progress=False)


def test_tiny_search_writes_genotypes_drawing_and_regularizer_logs(tiny_search):
    out, result = tiny_search
    assert sorted(p.name for p in (out / "genotypes").iterdir()) == ["epoch001_genotype.json",
                                                                    "epoch002_genotype.json"]
    assert (out / "genotype.png").stat().st_size > 0
    g = load_genotype(out / "genotype.json")
    assert g.space == "dcnas" and g.meta["search_space_args"]["layers"] == 2
    assert [len(w) for w in g.meta["connection_weights"]] == [len(n["inputs"]) for n in g.structure["nodes"]]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "lr" in r]
    assert not any("arch_reg_beta" in r for r in steps if not r["searching"])
    assert all({"arch_loss", "arch_reg_alpha", "arch_reg_beta", "arch_reg_con"} <= set(r)
               for r in steps if r["searching"])
    epochs = [r["architectures"]["genotype"] for r in records if "architectures" in r]
    assert all({"reg_alpha", "reg_beta", "reg_con", "nodes", "connections"} <= set(r) for r in epochs)
    assert result["final"]["architectures"]["genotype"]["archid"] == g.archid


def test_resumed_search_ends_with_the_identical_genotype(tiny_search, tmp_path):
    out, _ = tiny_search
    cfg = _cfg()
    assert DCNAS.search(cfg, tmp_path / "killed", stop_after=3, progress=False)["interrupted"]
    DCNAS.search(cfg, tmp_path / "killed", resume=True, progress=False)
    assert (tmp_path / "killed" / "genotype.json").read_text() == (out / "genotype.json").read_text()


def test_searched_genotype_retrains(tiny_search, tmp_path):
    from segnas.engine import retrain

    out, _ = tiny_search
    g = load_genotype(out / "genotype.json")
    cfg = make_config("tiny", overrides=["train.epochs=1"], extra={"data": {"dataset": "synthetic"}})
    result = retrain(g, cfg, tmp_path / "retrain", progress=False)
    assert result["archid"] == g.archid and 0 <= result["best_miou"] <= 1


def test_random_strategy_draws_networks_of_the_derived_arguments():
    cfg = DCNAS.config("tiny", overrides=["dcnas.genotype_args.filter_multiplier=8"], strategy="random",
                       extra={"data": {"dataset": "synthetic"}})
    g = DCNAS.sample(np.random.default_rng(0), cfg)
    assert g.space_args["filter_multiplier"] == 8 and g.space_args["layers"] == 2
