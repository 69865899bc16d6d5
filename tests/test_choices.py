"""Architecture-choice primitives: mixed operator, partial channels, input choice, Gumbel, sigmoid, pairwise."""

import math

import pytest
import torch
from torch import nn

from segnas.choices import (ArchParameters, InputChoice, MixedOp, channel_shuffle, choice_weights, gumbel_hard,
                            pairs, pairwise_input_weights)
from segnas.strategies.arch_signal import ArchSignal


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(factor))

    def forward(self, x):
        return self.factor * x


def test_mixed_op_is_the_weighted_sum_and_leaves_no_connection_out():
    ops = [Scale(2.0), None, Scale(-1.0)]
    mixed = MixedOp(ops)
    x = torch.randn(2, 4, 5, 5)
    w = torch.tensor([0.5, 0.3, 0.2], requires_grad=True)
    out = mixed(x, w)
    assert torch.allclose(out, 0.5 * 2 * x + 0.2 * -1 * x)
    out.sum().backward()
    assert w.grad[1] == 0 and w.grad[0] != 0 and w.grad[2] != 0  # 'none' contributes nothing, not even zeros
    assert mixed.index == [0, 2] and len(mixed.ops) == 2


def test_mixed_op_shares_one_relu_without_changing_the_result():
    torch.manual_seed(0)
    ops = [nn.Sequential(nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1)), nn.Sequential(nn.ReLU(), nn.Conv2d(3, 3, 1)),
           nn.Identity()]
    x, w = torch.randn(1, 3, 6, 6), torch.tensor([0.2, 0.3, 0.5])
    expected = sum(wk * op(x) for wk, op in zip(w, ops))
    mixed = MixedOp(ops)
    assert mixed.shares_relu and torch.allclose(mixed(x, w), expected, atol=1e-6)


def test_partial_channels_run_a_fraction_and_the_rest_bypass_shuffled():
    c, k = 8, 4
    mixed = MixedOp([Scale(3.0), Scale(5.0)], partial=k)
    x = torch.randn(2, c, 3, 3)
    out = mixed(x, torch.tensor([0.5, 0.5]))
    assert out.shape == x.shape
    through = 4.0 * x[:, : c // k]  # (0.5 * 3 + 0.5 * 5) x on the first quarter
    unshuffled = torch.cat([through, x[:, c // k:]], 1)
    assert torch.allclose(out, channel_shuffle(unshuffled, k))
    # every bypassed channel appears once, unchanged
    for ch in range(c // k, c):
        assert sum(torch.equal(out[:, i], x[:, ch]) for i in range(c)) == 1


def test_partial_channels_downsample_the_bypass_with_the_operator():
    conv = nn.Conv2d(2, 2, 3, stride=2, padding=1)
    mixed = MixedOp([conv], partial=2, stride=2)
    x = torch.randn(1, 4, 8, 8)
    out = mixed(x, torch.ones(1))
    assert out.shape == (1, 4, 4, 4)
    assert torch.allclose(out[:, 1::2], torch.nn.functional.max_pool2d(x[:, 2:], 2))  # the bypassed half


def test_channel_shuffle_is_a_permutation_that_interleaves_the_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert torch.equal(channel_shuffle(x, 1), x)


def test_input_choice_weighs_present_inputs():
    a, b = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3)
    w = torch.tensor([0.25, 0.7, 0.05])
    assert torch.allclose(InputChoice()([a, None, b], w), 0.25 * a + 0.05 * b)
    with pytest.raises(ValueError):
        InputChoice()([None], w)


def test_sigmoid_gates_are_independent():
    logits = torch.tensor([0.0, 2.0, -2.0], requires_grad=True)
    gates = choice_weights(logits, "sigmoid")
    assert torch.allclose(gates, torch.sigmoid(logits)) and not math.isclose(float(gates.detach().sum()), 1.0)
    gates[1].backward()
    assert logits.grad[0] == 0 and logits.grad[2] == 0 and logits.grad[1] > 0


def test_masked_softmax_gives_invalid_options_exactly_zero():
    logits = torch.randn(2, 3)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    p = choice_weights(logits, "softmax", mask)
    assert p[0, 1] == 0 and torch.isclose(p[0].sum(), torch.tensor(1.0)) and (p[1] == 0).all()


def test_pairwise_weights_hold_two_inputs_per_node():
    assert pairs(3) == [(0, 1), (0, 2), (1, 2)]
    logits = torch.tensor([[-20.0, 20.0, -20.0], [0.0, 0.0, 0.0]], requires_grad=True)
    w = pairwise_input_weights(logits, 3)
    assert torch.allclose(w.sum(-1), torch.full((2,), 2.0))
    assert torch.allclose(w[0], torch.tensor([1.0, 0.0, 1.0]), atol=1e-6)  # pair (0, 2) chosen
    assert torch.allclose(w[1], torch.full((3,), 2 / 3))
    w[1, 0].backward()
    assert logits.grad[1].abs().sum() > 0 and logits.grad[0].abs().max() < 1e-6


def test_gumbel_hard_is_one_hot_forward_with_softmax_gradients_and_seeded():
    logits = torch.zeros(4, 3, requires_grad=True)
    a = gumbel_hard(logits, torch.Generator().manual_seed(5))
    b = gumbel_hard(logits, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and ((a == 0) | (a == 1)).all() and (a.sum(-1) == 1).all()
    (a * torch.arange(3.0)).sum().backward()
    assert logits.grad.abs().sum() > 0
    meta = gumbel_hard(torch.zeros(2, 3, device="meta"), torch.Generator().manual_seed(0))
    assert meta.device.type == "meta"  # the noise follows the logits to their device


def test_declared_parameters_carry_their_kind_groups_and_options():
    arch = ArchParameters()
    arch.declare("alpha", torch.zeros(2, 3), "softmax", ["skip", "conv", "pool"],
                 {"parameter_free": (0, 2), "parametric": (1,)}, "edges")
    arch.declare("gate", torch.zeros(5), "sigmoid", ["on"])
    arch.declare("topology", torch.zeros(4, 3), "pairwise", ["x0", "x1", "x2"])
    assert [s.kind for s in arch.spec_list()] == ["softmax", "sigmoid", "pairwise"]
    assert arch.specs["alpha"].groups["parameter_free"] == (0, 2)
    assert arch.specs["topology"].options == ("x0+x1", "x0+x2", "x1+x2")
    assert torch.allclose(arch.weights("alpha").sum(-1), torch.ones(2))
    assert set(dict(arch.named_parameters())) == {"alpha", "gate", "topology"}
    with pytest.raises(ValueError, match="options"):
        arch.declare("bad", torch.zeros(2, 4), "softmax", ["a", "b"])
    with pytest.raises(ValueError, match="kind"):
        arch.declare("bad", torch.zeros(2), "hardmax", ["a", "b"])


def test_both_supernets_declare_their_choices():
    from segnas.spaces.autodeeplab.supernet import AutoDeepLabSupernet
    from segnas.spaces.fasterseg.supernet import FasterSegSupernet

    fs = FasterSegSupernet({"layers": 4, "ops": ["skip", "conv", "conv_2x"], "chis": [1, 2], "stem_chi": 1,
                            "head_chi": 1, "branches": 2}, num_classes=3, teacher_chi=2)
    specs = {s.name: s for s in fs.arch.spec_list()}
    assert set(specs) == set(fs.arch.keys()) and all(s.kind == "softmax" for s in specs.values())
    assert specs["student_alpha0"].groups == {"parameter_free": (0,), "parametric": (1, 2)}
    assert specs["student_beta1"].options == ("from_down", "from_same")
    assert specs["student_gamma0"].options == ("1", "2") and "teacher_gamma0" not in specs
    adl = AutoDeepLabSupernet({"layers": 3, "blocks": 2, "filter_multiplier": 2, "stem": [4, 4, 8],
                               "ops": ["sep_conv_3x3", "skip_connect", "none"]}, num_classes=3)
    alpha, beta = adl.arch.specs["alpha"], adl.arch.specs["beta"]
    assert alpha.groups == {"parameter_free": (1, 2), "parametric": (0,)}
    assert beta.options == ("down", "same", "up") and beta.mask is not None and not beta.mask.all()


def test_arch_signal_reads_sigmoid_gates_one_by_one():
    gate = nn.Parameter(torch.zeros(3))
    signal = ArchSignal([gate], ["sigmoid"])
    g = torch.Generator().manual_seed(0)
    for _ in range(400):  # gate 0 drifts, gate 1 is noise, gate 2 never gets a gradient
        gate.grad = torch.stack([1.0 + 0.5 * torch.randn((), generator=g), torch.randn((), generator=g),
                                 torch.zeros(())])
        signal.update([gate])
    snr = signal.row_snr([gate])
    assert len(snr) == 2  # the silent gate is no decision
    assert snr[0] > 1.5 and snr[1] < 0.2
    assert len(ArchSignal([gate]).shapes) == 1 and ArchSignal([gate]).shapes[0] == (1, 3)  # softmax row default
