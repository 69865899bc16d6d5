import pytest
import torch
import torch.nn.functional as F

from segnas.ops import CELL_OPS, OPS, FactorizedReduce, SlimBatchNorm2d, SlimConv2d, ZoomedConv, cell_op, make_op


def test_slim_conv_full_width_is_plain_conv_and_slices_leading_channels():
    torch.manual_seed(0)
    conv = SlimConv2d(8, 16, 3, padding=1)
    x = torch.randn(2, 8, 9, 9)
    assert torch.allclose(conv(x), F.conv2d(x, conv.weight, None, 1, 1))
    conv.set_width(4, 6)
    y = conv(x[:, :4])
    assert y.shape == (2, 6, 9, 9)
    assert torch.allclose(y, F.conv2d(x[:, :4], conv.weight[:6, :4], None, 1, 1))
    with pytest.raises(ValueError):
        conv.set_width(9, 6)


def test_slim_batchnorm_keeps_separate_statistics_per_width():
    bn = SlimBatchNorm2d([4, 8])
    bn.train()
    bn(torch.randn(3, 4, 5, 5) + 10)
    assert bn.bns[0].running_mean.mean() > 0.5 and bn.bns[1].running_mean.abs().max() == 0


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(16, 20), (45, 61)])
def test_every_op_keeps_or_halves_size_like_a_strided_conv(name, stride, size):
    op = make_op(name, 8, 16, stride)
    y = op(torch.randn(2, 8, *size))
    expect = size if stride == 1 else tuple((s + 1) // 2 for s in size)
    assert y.shape == (2, 16, *expect)


@pytest.mark.parametrize("name", sorted(OPS))
def test_slimmable_op_runs_narrow_width_with_the_same_code(name):
    op = make_op(name, 16, 32, 2, widths=([8, 16], [16, 32]))
    op.set_width(8, 16)
    assert op(torch.randn(2, 8, 10, 10)).shape == (2, 16, 5, 5)
    op.set_width(16, 32)
    assert op(torch.randn(2, 16, 10, 10)).shape == (2, 32, 5, 5)


def test_factorized_reduce_uses_both_shifted_halves():
    fr = FactorizedReduce(4, 8, stride=2).eval()
    torch.nn.init.ones_(fr.conv1.weight)
    torch.nn.init.ones_(fr.conv2.weight)
    x = torch.zeros(1, 4, 6, 6)
    x[..., 1, 1] = 1.0  # off the stride-2 grid of the first conv, on the grid of the shifted one
    out = fr(x)
    assert out.shape == (1, 8, 3, 3)
    assert out[:, :4].abs().sum() == 0
    assert out[0, 4:, 0, 0].min() > 0


def test_zoomed_conv_runs_at_half_resolution():
    z = ZoomedConv(4, 4, stride=1, repeats=2)
    seen = []
    z.convs[0].conv.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-2:]))
    assert z(torch.randn(1, 4, 32, 48)).shape[-2:] == (32, 48)
    assert tuple(seen[0]) == (16, 24)


def test_unknown_op_names_the_known_ones():
    with pytest.raises(KeyError, match="zoomed_conv"):
        make_op("sep_conv_9x9", 4, 4)


@pytest.mark.parametrize("name", CELL_OPS)
def test_cell_ops_keep_the_shape(name):
    op = cell_op(name, 6)
    x = torch.randn(2, 6, 13, 10)
    assert op(x).shape == x.shape


def test_cell_op_details():
    atrous = cell_op("atrous_conv_5x5", 4)
    conv = atrous[1]
    assert conv.dilation == (2, 2) and conv.groups == 1 and conv.weight.shape == (4, 4, 5, 5)  # full, rate 2
    sep = cell_op("sep_conv_3x3", 4)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in sep) == 2  # two rounds
    avg = cell_op("avg_pool_3x3", 1)
    out = avg(torch.ones(1, 1, 4, 4))
    assert torch.allclose(out, torch.ones_like(out))  # the padding is not counted
    with pytest.raises(KeyError):
        cell_op("none", 4)


@pytest.mark.parametrize("name", CELL_OPS)
@pytest.mark.parametrize("size", [(16, 20), (13, 10)])
def test_cell_ops_at_stride_2_halve_like_a_strided_conv(name, size):
    op = cell_op(name, 6, stride=2)
    y = op(torch.randn(2, 6, *size))
    assert y.shape == (2, 6, *((s + 1) // 2 for s in size))
    params = sum(p.numel() for p in op.parameters())
    if name == "skip_connect":  # NASNet's identity at stride 2: ReLU - 1x1 conv - BN
        assert params == 6 * 6 + 2 * 6
    else:  # the same operator, strided: its parameters do not change
        assert params == sum(p.numel() for p in cell_op(name, 6).parameters())


def test_strided_atrous_conv_is_a_half_size_rate_1_conv_with_the_same_weights():
    torch.manual_seed(0)
    strided, dilated = cell_op("atrous_conv_3x3", 4, stride=2).eval(), cell_op("atrous_conv_3x3", 4)
    assert strided[2].weight.shape == dilated[1].weight.shape  # same kernel: parameters as at stride 1
    conv = strided[2]
    assert conv.dilation == (1, 1) and conv.stride == (1, 1) and conv.weight.shape == (4, 4, 3, 3)
    x = torch.randn(1, 4, 9, 12)
    half = F.interpolate(F.relu(x), size=(5, 6), mode="bilinear", align_corners=True)
    assert torch.allclose(strided(x), strided[3](conv(half)), atol=1e-6)
    sep = cell_op("sep_conv_3x3", 4, stride=2)
    assert sep[1].stride == (2, 2) and sep[5].stride == (1, 1)  # the first depthwise strides
    with pytest.raises(ValueError, match="stride"):
        cell_op("sep_conv_3x3", 4, stride=3)


def test_drop_path_zeroes_whole_samples_and_rescales_the_kept_ones():
    from segnas.ops import DropPath

    drop = DropPath(0.25).train()
    x = torch.rand(4000, 3, 2, 2) + 0.5
    torch.manual_seed(0)
    y = drop(x)
    ratio = (y / x).flatten(1)
    kept = ratio[:, 0] > 0
    assert torch.allclose(ratio[kept], torch.full_like(ratio[kept], 1 / 0.75))  # kept: scaled by 1 / keep
    assert (ratio[~kept] == 0).all()  # dropped: every value of the sample is zero
    assert abs(kept.float().mean() - 0.75) < 0.03 and abs(ratio.mean() - 1) < 0.04  # expectation preserved
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # seeded: the same masks
    drop.eval()
    assert drop(x) is x  # evaluation: identity
    drop.train()
    drop.p = 0.0
    state = torch.get_rng_state()
    assert drop(x) is x and torch.equal(torch.get_rng_state(), state)  # p = 0 draws nothing


def test_set_drop_path_reaches_every_module_and_counts_them():
    from segnas.ops import DropPath, set_drop_path

    net = torch.nn.Sequential(DropPath(), torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), DropPath()))
    assert set_drop_path(net, 0.3) == 2 and [m.p for m in net.modules() if isinstance(m, DropPath)] == [0.3, 0.3]
    assert set_drop_path(torch.nn.Conv2d(1, 1, 1), 0.3) == 0
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        set_drop_path(net, 1.0)
