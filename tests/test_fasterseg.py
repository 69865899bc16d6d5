import pytest
import torch

import segnas
from segnas.profile import count_flops, count_params
from segnas.spaces import get_space

PAPER_PARAMS = 4.4e6  # counts the training-only auxiliary heads
PAPER_MULTIPLY_ADDS = 28.2e9  # the paper's "FLOPs" at 1024x2048 are multiply-adds


@pytest.fixture(scope="module")
def net():
    return segnas.build(segnas.zoo.get("fasterseg"), num_classes=19)


def test_published_student_parameter_count(net):
    with_aux = count_params(net, include_aux=True)
    inference = count_params(net)
    assert abs(with_aux - PAPER_PARAMS) / PAPER_PARAMS < 0.03
    assert 3.3e6 < inference < 3.5e6  # faithful build without the auxiliary heads
    assert with_aux == 4_352_921 and inference == 3_421_875  # exact, to catch silent drift


def test_fusion_block_is_the_papers_plain_one_by_default_and_attention_an_option():
    zoo = segnas.zoo.get("fasterseg")
    assert zoo.space_args["fusion"] == "plain"
    plain = segnas.build(zoo, num_classes=19)
    args = dict(zoo.space_args, fusion="attention")
    space = get_space("fasterseg")
    att = segnas.build(space.make_genotype(zoo.structure, args), num_classes=19)
    fused = 2 * 8 * 8  # two branches refined to 1/8 at 8 * head_chi channels each
    assert count_params(att) - count_params(plain) == 2 * fused * fused  # the two 1x1 attention convs
    assert not hasattr(plain.fusion.ffm, "att1") and att.fusion.ffm.att1.weight.shape == (fused, fused, 1, 1)
    # a genotype file from before the field existed was built with attention: its checkpoints still load
    legacy = dict(zoo.to_dict())
    legacy["space_args"] = {k: v for k, v in zoo.space_args.items() if k != "fusion"}
    legacy.pop("archid")
    old = segnas.build(segnas.Genotype.from_dict(legacy), num_classes=19)
    old.load_state_dict(att.state_dict())


def test_published_student_multiply_adds_at_cityscapes_resolution(net):
    macs = count_flops(net, (1, 3, 1024, 2048)) / 2
    assert abs(macs - PAPER_MULTIPLY_ADDS) / PAPER_MULTIPLY_ADDS < 0.03


def test_branches_share_their_first_three_cells(net):
    k32, k16 = net.keys
    assert k32[:3] == k16[:3] and k32[3] != k16[3]
    assert len(net.cells) == len(k32) + len(k16) - 3


def test_forward_shapes_train_and_eval(net):
    net.train()
    x = torch.randn(2, 3, 90, 120)  # sizes not divisible by 32
    logits, aux = net(x, aux=True)
    assert logits.shape == (2, 19, 90, 120) and [a.shape for a in aux] == [(2, 19, 90, 120)] * 2
    net.eval()
    assert net(x).shape == (2, 19, 90, 120)


def test_gradients_reach_every_parameter_and_aux_only_through_aux_loss(net):
    net.train()
    net.zero_grad()
    logits = net(torch.randn(2, 3, 64, 64))
    logits.mean().backward()
    aux_params = {id(p) for p in net.aux_heads.parameters()}
    for name, p in net.named_parameters():
        if id(p) in aux_params:
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    net.zero_grad()
    _, aux = net(torch.randn(2, 3, 64, 64), aux=True)
    sum(a.mean() for a in aux).backward()
    assert all(p.grad is not None for p in net.aux_heads.parameters())


def test_profile_reports_both_parameter_counts_and_latency(net):
    result = segnas.profile(net, input_size=(1, 3, 64, 128), rounds=2)
    assert result["params"] < result["params_with_aux"]
    assert result["macs"] * 2 == result["flops"] > 0
    assert result["latency_ms"] == min(result["times_ms"]) > 0 and len(result["times_ms"]) == 2
    assert result["threads"] >= 1 and result["backend"] == "eager" and result["max_abs_diff"] < 1e-4
