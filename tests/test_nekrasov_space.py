"""Nekrasov et al.'s decoder space: encodings, the published arch0/1/2, wiring, auxiliary cells, the encoder."""

import numpy as np
import pytest
import torch
from torch import nn

import segnas.zoo
from segnas.cli import main
from segnas.errors import CheckpointError, GenotypeError
from segnas.genotype import load as load_genotype
from segnas.genotype import save as save_genotype
from segnas.losses import CrossEntropy, seg_loss_with_aux
from segnas.ops import GlobalPoolConv, MobileNetV2Encoder, SepConv, load_encoder_weights, torchvision_key_map
from segnas.ops.aspp import upsample_to
from segnas.ops.mobilenetv2 import SETTINGS
from segnas.profile import count_flops, count_params
from segnas.spaces import get_space
from segnas.spaces.nekrasov import OPS, Cell, cell_outputs, from_paper, head_inputs, make_op, to_paper

SPACE = get_space("nekrasov")
SMALL = {"agg_size": 8, "sep_repeats": 1}

# the paper's Figures 10-12 and Table 1 (PASCAL VOC, 21 classes): parameters (M), multiply-adds (G) at 512x512
PAPER = {
    "nekrasov-arch0": ([[[3, 3], [3, 2], [3, 0]], [8, [0, 0, 5, 2], [0, 2, 8, 8], [0, 5, 1, 4]]], 2.6, 4.47),
    "nekrasov-arch1": ([[[2, 3], [3, 1], [4, 4]], [2, [1, 0, 3, 6], [0, 1, 2, 8], [2, 0, 6, 1]]], 2.8, 2.95),
    "nekrasov-arch2": ([[[1, 3], [4, 3], [2, 2]], [5, [0, 0, 4, 1], [3, 2, 0, 1], [5, 6, 5, 0]]], 2.9, 3.47),
}
# what segnas builds (see segnas.spaces.nekrasov.network): parameters, multiply-adds at 512x512 (torch's counter)
BUILT = {"nekrasov-arch0": (2_626_261, 4.1327e9), "nekrasov-arch1": (2_807_381, 2.7622e9),
         "nekrasov-arch2": (2_850_005, 3.2805e9)}
TABLE4 = ["conv1x1", "conv3x3", "sep3x3", "sep5x5", "gap", "conv3x3_rate3", "conv3x3_rate12", "sep3x3_rate3",
          "sep5x5_rate6", "skip", "zero"]


# -- encodings ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_encoding_round_trips(name):
    paper = PAPER[name][0]
    g = from_paper(paper)
    assert to_paper(g) == paper
    flat = [i for pair in paper[0] for i in pair] + [paper[1][0]] + [i for b in paper[1][1:] for i in b]
    assert g.choices == flat  # the flat choices are the paper's integers in order
    assert g.structure["cell"]["op"] == TABLE4[paper[1][0]]


def test_operations_are_table_4_in_index_order():
    assert list(OPS) == TABLE4
    x = torch.randn(2, 6, 9, 7)
    for name in OPS:
        assert make_op(name, 6).eval()(x).shape == x.shape
    assert count_params(make_op("conv3x3_rate12", 64)) == 64 * 64 * 9 + 2 * 64
    dilated = make_op("sep5x5_rate6", 4, sep_repeats=2)
    depthwise = [m for m in dilated.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert [(m.kernel_size, m.dilation) for m in depthwise] == [((5, 5), (6, 6))] * 2
    assert len([m for m in make_op("sep3x3", 4, 1).modules() if isinstance(m, nn.Conv2d) and m.groups > 1]) == 1
    assert torch.equal(make_op("zero", 6)(x), torch.zeros_like(x)) and make_op("skip", 6)(x) is x


def test_sep_conv_defaults_keep_two_rounds():
    old = SepConv(4, 3)
    assert len([m for m in old.modules() if isinstance(m, nn.Conv2d)]) == 4  # 2 x (depthwise, pointwise)
    assert SepConv(4, 3, stride=2)(torch.randn(1, 4, 9, 9)).shape == (1, 4, 5, 5)


def test_global_pool_conv_spreads_one_vector():
    op = GlobalPoolConv(3, 5)
    x = torch.randn(2, 3, 6, 4)
    out = op(x)
    assert out.shape == (2, 5, 6, 4)
    assert torch.allclose(out[:, :, 0, 0], torch.relu(op.conv(x.mean((2, 3), keepdim=True)))[:, :, 0, 0])
    assert torch.equal(out, out[:, :, :1, :1].expand_as(out))


def test_choice_spec_sizes_groups_and_decode_round_trip():
    spec = SPACE.choice_spec()
    assert len(spec) == 19
    assert [d.size for d in spec[:6]] == [4, 4, 5, 5, 6, 6] and all(d.group == "" for d in spec[:6])
    ops = [d for d in spec if d.group == "op"]
    names = ["cell.o1"] + [f"cell.branch{b}.o{i}" for b in (1, 2, 3) for i in (2 * b, 2 * b + 1)]
    assert [d.name for d in ops] == names
    assert all(d.size == 11 for d in ops)
    positions = [d for d in spec[6:] if d.group != "op"]
    assert [d.size for d in positions] == [2, 2, 5, 5, 8, 8] and all(d.group == "" for d in positions)
    for seed in range(30):
        g = SPACE.sample(np.random.default_rng(seed), SMALL)
        d = SPACE.decode(np.array(g.choices), SMALL)  # numpy integers are integers too
        assert d.to_dict()["structure"] == g.structure and d.archid == g.archid
        assert SPACE.encode(d.structure, SPACE.resolve_args(SMALL)) == g.choices
        assert to_paper(from_paper(to_paper(g), SMALL)) == to_paper(g)


def test_samples_cover_every_value_of_every_decision():
    spec = SPACE.choice_spec()
    rng = np.random.default_rng(0)
    seen = np.array([SPACE.sample(rng).choices for _ in range(400)])
    for pos, d in enumerate(spec):
        assert sorted(set(seen[:, pos])) == list(range(d.size)), d.name


def test_decode_out_of_range_names_the_position():
    good = PAPER["nekrasov-arch1"][0]
    choices = from_paper(good).choices
    bad = list(choices)
    bad[8] = 2  # i3: branch 1 reads the input or o1 only
    with pytest.raises(GenotypeError, match=r"choices\[8\] \(cell\.branch1\.i3\) is 2; allowed 0\.\.1"):
        SPACE.decode(bad)
    bad = list(choices)
    bad[4] = 6
    with pytest.raises(GenotypeError, match=r"choices\[4\] \(block2\.c5\) is 6; allowed 0\.\.5"):
        SPACE.decode(bad)
    with pytest.raises(GenotypeError, match=r"choices\[18\] \(cell\.branch3\.o7\) is missing"):
        SPACE.decode(choices[:-1])
    with pytest.raises(GenotypeError, match=r"cell\.branch2\.o4.*allowed 0\.\.10"):
        SPACE.decode(choices[:13] + [11] + choices[14:])


def test_from_paper_errors_name_the_paper_position():
    paper = [[[2, 3], [3, 1], [4, 4]], [2, [1, 0, 3, 6], [0, 7, 2, 8], [2, 0, 6, 1]]]
    with pytest.raises(GenotypeError, match=r"paper encoding\[1\]\[2\]\[1\] \(i5\) is 7; allowed 0\.\.4"):
        from_paper(paper)
    with pytest.raises(GenotypeError, match=r"paper encoding\[0\]\[2\]\[1\] \(c6\) is 6; allowed 0\.\.5"):
        from_paper([[[2, 3], [3, 1], [4, 6]], paper[1]])
    with pytest.raises(GenotypeError, match=r"paper encoding\[1\]\[3\]: expected \[i6, i7, o6, o7\]"):
        from_paper([paper[0], [2, [1, 0, 3, 6], [0, 1, 2, 8], [2, 0, 6]]])
    with pytest.raises(GenotypeError, match=r"paper encoding\[1\]\[0\] \(o1\) is 11"):
        from_paper([paper[0], [11] + paper[1][1:]])


def test_structure_errors_name_the_field():
    g = from_paper(PAPER["nekrasov-arch0"][0])
    s = {"connections": [[3, 3], [3, 2], [3, 7]], "cell": g.structure["cell"]}
    with pytest.raises(GenotypeError, match=r"structure\.connections\[2\]"):
        SPACE.make_genotype(s)
    cell = {**g.structure["cell"], "op": "conv7x7"}
    with pytest.raises(GenotypeError, match=r"structure\.cell\.op"):
        SPACE.make_genotype({"connections": g.structure["connections"], "cell": cell})
    with pytest.raises(GenotypeError, match=r"space_args\.agg_size"):
        SPACE.make_genotype(g.structure, {"agg_size": 0})


# -- the published networks -------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PAPER))
def test_zoo_entries_are_the_published_encodings_and_run(name):
    paper, paper_params, _ = PAPER[name]
    g = segnas.zoo.get(name)
    assert to_paper(g) == paper and g.meta["paper_encoding"] == paper
    assert g.space_args == {"agg_size": 64, "sep_repeats": 2}  # the final networks'
    assert g.meta["paper"]["params_M"] == paper_params and g.meta["paper"]["input_size"] == [512, 512]
    net = SPACE.build(g, 21, aux=False).eval()
    params = count_params(net)
    assert params == BUILT[name][0]
    assert round(params / 1e6, 1) == paper_params  # Table 1's one decimal
    assert abs(params / (paper_params * 1e6) - 1) < 0.02  # within 2% (+1.0, +0.3, -1.7%)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = net(x)
        head, _ = net.decoder(net.encoder(x))
    assert out.shape == (1, 21, 64, 64) and torch.isfinite(out).all()
    # Table 1's "Output Res" at 512x512: 128x128 for arch0 (its head at 1/4), 64x64 for arch1, arch2 (1/8)
    assert [8 * s for s in head.shape[-2:]] == g.meta["paper"]["output_res"]


def test_published_multiply_adds_at_512():
    """torch's counter (convolutions only) at Table 1's 512x512: 5.5-7.5% under the table (network docstring)."""
    for name, (paper, _, paper_madds) in PAPER.items():
        net = SPACE.build(from_paper(paper), 21, aux=False)
        madds = count_flops(net, (1, 3, 512, 512)) / 2
        assert madds == pytest.approx(BUILT[name][1], rel=1e-4)
        assert -0.076 < madds / (paper_madds * 1e9) - 1 < -0.054


# -- wiring by hand ---------------------------------------------------------------------------------
# o1 = skip; branch 1 = skip(o1) + zero(input) = x; branch 2 = skip(b1) + skip(b1) = 2x;
# branch 3 = skip(input) + zero(branch 1 op 2) = x. Read: 0, 1, 3, 4; so the output is [7] + [10] = 3x.
HAND_CELL = {"op": "skip", "branches": [{"inputs": [1, 0], "ops": ["skip", "zero"]},
                                        {"inputs": [4, 4], "ops": ["skip", "skip"]},
                                        {"inputs": [0, 3], "ops": ["skip", "zero"]}]}
# block 0 = 1/16 + 1/32 (at 1/16), block 1 = 1/8 + block 0 (at 1/8), block 2 = 1/32 + 1/32; 1/4 is unread
HAND = {"connections": [[2, 3], [1, 4], [3, 3]], "cell": HAND_CELL}


def test_hand_built_cell_sums_its_unread_outputs():
    assert cell_outputs(HAND_CELL) == [7, 10]
    x = torch.randn(2, 5, 4, 3)
    assert torch.allclose(Cell(HAND_CELL, 5)(x), 3 * x)
    first_unread = {"op": "skip",
                    "branches": [{"inputs": [0, 0], "ops": ["skip", "skip"]}] + HAND_CELL["branches"][1:]}
    assert cell_outputs(first_unread) == [1, 7, 10]  # o1's output is summed in when no branch reads it
    assert torch.allclose(Cell(first_unread, 5)(x), 6 * x)  # [1] = x, [4] = 2x (read), [7] = 4x, [10] = x


def test_hand_built_decoder_wiring():
    g = SPACE.make_genotype(HAND, SMALL)
    assert head_inputs(HAND["connections"]) == [5, 6]  # block 0 is read by block 1; blocks 1, 2 are not
    net = SPACE.build(g, 3, aux=False).eval()
    dec = net.decoder
    assert sorted(dec.adapt) == ["1", "2", "3"]  # no 1x1 for the unread 1/4 output
    with torch.no_grad():
        feats = net.encoder(torch.randn(1, 3, 64, 64))
        logits, blocks = dec(feats)
        assert [tuple(b.shape) for b in blocks] == [(1, 8, 4, 4), (1, 8, 8, 8), (1, 8, 2, 2)]
        by_hand = dec.classifier(dec.fuse(torch.cat([blocks[1], upsample_to(blocks[2], (8, 8))], 1)))
        assert logits.shape == (1, 3, 8, 8) and torch.allclose(logits, by_hand)
    text = SPACE.describe(g)
    assert "head: concat(block 1, block 2)" in text and "at 1/8" in text and "output = [7] + [10]" in text


# -- auxiliary cells ----------------------------------------------------------------------------------
def test_aux_outputs_only_in_training_with_aux():
    g = SPACE.make_genotype(HAND, SMALL)
    net = SPACE.build(g, 3, aux=True)
    assert list(net.aux_heads) == ["block0", "block1", "block2"]
    assert count_params(net) == count_params(SPACE.build(g, 3, aux=False)) < count_params(net, include_aux=True)
    x, target = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    net.train()
    logits, aux = net(x, aux=True)
    assert len(aux) == 3 and all(a.shape == (2, 3, 64, 64) for a in aux)
    assert torch.allclose(net(x), logits)  # the auxiliary cells never change the main logits
    loss = seg_loss_with_aux(CrossEntropy(), logits, aux, target, 0.15)  # the shared trainer's loss
    loss.backward()
    assert all(p.grad is not None for p in net.aux_heads.parameters())
    net.eval()
    out = net(x, aux=True)
    assert out[1] == [] and isinstance(net(x), torch.Tensor)
    no_aux = SPACE.build(g, 3, aux=False).train()
    assert no_aux(x, aux=True)[1] == []
    net.aux_heads = nn.ModuleDict()  # as a checkpoint loaded for inference drops them
    assert net.train()(x, aux=True)[1] == []


# -- sampled architectures ----------------------------------------------------------------------------
def test_sampled_genotypes_are_valid_and_build(tmp_path):
    for seed in range(3):
        g = SPACE.sample(np.random.default_rng(seed), SMALL)
        SPACE.validate(g)
        path = save_genotype(g, tmp_path / f"{seed}.json")
        g2 = load_genotype(path)
        assert g2.archid == g.archid
        net = SPACE.build(g2, 4, aux=True).eval()
        with torch.no_grad():
            out = net(torch.randn(1, 3, 64, 48))
        assert out.shape == (1, 4, 64, 48) and torch.isfinite(out).all()


# -- the encoder --------------------------------------------------------------------------------------
def test_encoder_outputs_at_quarter_to_thirty_second():
    enc = MobileNetV2Encoder().eval()
    with torch.no_grad():
        feats = enc(torch.randn(1, 3, 64, 64))
        odd = enc(torch.randn(1, 3, 65, 33))
    assert [tuple(f.shape[1:]) for f in feats] == [(24, 16, 16), (32, 8, 8), (96, 4, 4), (320, 2, 2)]
    assert [tuple(f.shape[-2:]) for f in odd] == [(17, 9), (9, 5), (5, 3), (3, 2)]  # ceil, as stride-2 convs
    assert enc.channels == (24, 32, 96, 320) and enc.strides == (4, 8, 16, 32)
    assert count_params(enc) == 1_811_712  # torchvision's mobilenet_v2 features without the 1280 conv
    assert all(isinstance(m, nn.ReLU6) for m in enc.modules() if isinstance(m, (nn.ReLU, nn.ReLU6, nn.Hardswish)))


def torchvision_state() -> dict:
    """A torchvision-style ``mobilenet_v2`` state dict written from its known layout and the t, c, n, s table."""
    state = {}

    def conv(key, c_out, c_in, k):
        state[f"{key}.weight"] = torch.randn(c_out, c_in, k, k)

    def bn(key, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            state[f"{key}.{name}"] = torch.randn(c)
        state[f"{key}.num_batches_tracked"] = torch.tensor(3)

    conv("features.0.0", 32, 3, 3)
    bn("features.0.1", 32)
    n_feat, c = 1, 32
    for t, c_out, n, _ in SETTINGS:
        for _ in range(n):
            p, mid = f"features.{n_feat}.conv", c * t
            units = []  # torchvision: conv - BN - ReLU6 units as conv.U.0 / conv.U.1, then the projection
            if t != 1:
                units.append((mid, c, 1))  # the expansion conv
            units.append((mid, 1, 3))  # the depthwise conv
            for u, (c_o, c_i, k) in enumerate(units):
                conv(f"{p}.{u}.0", c_o, c_i, k)
                bn(f"{p}.{u}.1", c_o)
            conv(f"{p}.{len(units)}", c_out, mid, 1)
            bn(f"{p}.{len(units) + 1}", c_out)
            n_feat, c = n_feat + 1, c_out
    conv("features.18.0", 1280, 320, 1)
    bn("features.18.1", 1280)
    state["classifier.1.weight"], state["classifier.1.bias"] = torch.randn(1000, 1280), torch.randn(1000)
    return state


def test_torchvision_key_map_renames_to_the_encoder_layout(tmp_path):
    tv = torchvision_state()
    mapped = torchvision_key_map(tv)
    own = MobileNetV2Encoder().state_dict()
    assert list(mapped) == list(own)  # features.18 and the classifier are dropped
    assert all(mapped[k].shape == v.shape for k, v in own.items())
    assert torch.equal(mapped["blocks.0.body.3.weight"], tv["features.1.conv.1.weight"])
    assert torch.equal(mapped["blocks.16.body.7.running_var"], tv["features.17.conv.3.running_var"])
    torch.save(tv, tmp_path / "tv.pth")
    enc = MobileNetV2Encoder()
    load_encoder_weights(enc, tmp_path / "tv.pth")  # torchvision's keys are read as they are
    assert torch.equal(enc.blocks[5].body[3].weight, tv["features.6.conv.1.0.weight"])


def test_the_space_loads_a_pretrained_encoder_into_a_built_network(tmp_path):
    g = segnas.zoo.get("nekrasov-arch1")
    torch.manual_seed(0)
    state = MobileNetV2Encoder().state_dict()
    torch.save(state, tmp_path / "enc.pth")
    net = get_space("nekrasov").build(g, 21)
    assert get_space("nekrasov").load_pretrained(net, str(tmp_path / "enc.pth")).startswith("MobileNet-v2 encoder")
    assert all(torch.equal(v, net.encoder.state_dict()[k]) for k, v in state.items())


def test_load_encoder_weights_round_trip_and_errors(tmp_path):
    src, dst = MobileNetV2Encoder(), MobileNetV2Encoder()
    state = src.state_dict()
    torch.save(state, tmp_path / "enc.pth")
    load_encoder_weights(dst, tmp_path / "enc.pth")
    assert all(torch.equal(v, dst.state_dict()[k]) for k, v in state.items())

    bad = dict(state)
    del bad["blocks.3.body.0.weight"]
    bad["head.weight"] = torch.zeros(1)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as e:
        load_encoder_weights(dst, tmp_path / "bad.pth")
    msg = str(e.value)
    assert "\n" not in msg and "bad.pth" in msg
    assert "missing blocks.3.body.0.weight" in msg and "unexpected head.weight" in msg

    shaped = dict(state)
    shaped["stem.0.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(shaped, tmp_path / "shaped.pth")
    with pytest.raises(CheckpointError, match=r"other shapes stem\.0\.weight \(16, 3, 3, 3\) vs \(32, 3, 3, 3\)"):
        load_encoder_weights(dst, tmp_path / "shaped.pth")
    with pytest.raises(CheckpointError, match="no such weights file"):
        load_encoder_weights(dst, tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_text("not torch")
    with pytest.raises(CheckpointError, match="junk.pth: not a weights file"):
        load_encoder_weights(dst, tmp_path / "junk.pth")


# -- the command line ---------------------------------------------------------------------------------
def test_show_reads_the_paper_encoding(capsys, tmp_path):
    text = "[[[3, 3], [3, 2], [3, 0]], [8, [0, 0, 5, 2], [0, 2, 8, 8], [0, 5, 1, 4]]]"
    code = main(["show", text, "--png", str(tmp_path / "a.png")])
    out = capsys.readouterr().out
    assert code == 0 and "space=nekrasov" in out and f"paper encoding: {text}" in out
    assert segnas.zoo.get("nekrasov-arch0").archid in out
    code = main(["show", "[[[3, 3], [3, 2], [3, 0]], [8, [0, 0, 5, 2], [0, 2, 8, 8], [0, 9, 1, 4]]]"])
    err = capsys.readouterr().err
    assert code == 2 and "paper encoding[1][3][1] (i7) is 9; allowed 0..7" in err and err.count("\n") == 1
    code = main(["show", "[[[3, 3], [3, 2]"])
    assert code == 2 and "not a JSON list" in capsys.readouterr().err
