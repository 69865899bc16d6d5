"""ONNX export: BatchNorm folding, onnxruntime parity for every space, metadata, sizes, the CLI function."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from torch import nn

from segnas import zoo
from segnas.errors import ConfigError, SegnasError
from segnas.genotype import Genotype
from segnas.ops import FactorizedReduce, SlimBatchNorm2d, SlimConv2d
from segnas.ops.fold import count_batchnorms, fold_batchnorm, inference_copy
from segnas.spaces import get_space

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from segnas.export import MEAN, STD, export_onnx, random_images, read_metadata  # noqa: E402
from segnas.export_cli import add_export_parser, cmd_export  # noqa: E402

# widths and depths that build in well under a second (as the spaces' own tests use)
SMALL = {
    "fasterseg": {"layers": 4, "stem_chi": 2, "head_chi": 2, "chis": [2, 4]},
    "autodeeplab": {"layers": 5, "blocks": 3, "filter_multiplier": 4, "stem": [8, 8, 16], "aspp_channels": 8,
                    "decoder_channels": 8, "low_level_channels": 4},
    "dcnas": {"layers": 3, "filter_multiplier": 4, "stem_channels": 8, "head_channels": 8},
    "nekrasov": {"agg_size": 8, "sep_repeats": 1},
    "dots": {"channels": 4, "layers": 5, "nodes": 3, "spatial_channels": [4, 4, 8], "context_channels": 8,
             "fusion_channels": 8, "head_channels": 8},
}
SIZE = (64, 96)


def _trained_looking(net: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorm statistics and affine parameters away from their initial values, so folding changes weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                    m.bias.copy_(torch.rand(m.num_features, generator=gen) * 0.4 - 0.2)
    return net


def _small_net(space: str, classes: int = 5) -> tuple[nn.Module, Genotype]:
    sp = get_space(space)
    g = sp.sample(np.random.default_rng(0), SMALL[space])
    torch.manual_seed(0)
    return _trained_looking(sp.build(g, classes, aux=True)), g


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def _eager(net: nn.Module, x: torch.Tensor) -> np.ndarray:
    was = net.training
    out = net.eval()(x).numpy()
    net.train(was)
    return out


# -- BatchNorm folding ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fasterseg", "autodeeplab-s", "dots-bisenet", "nekrasov-arch0", "dcnas"])
def test_folding_keeps_outputs_and_removes_batchnorms(name):
    if name == "dcnas":  # no zoo entry for DCNAS: a sampled network of its default widths, fewer layers
        sp = get_space("dcnas")
        g = sp.sample(np.random.default_rng(0), {"layers": 4})
    else:
        g = zoo.get(name)
        sp = get_space(g.space)
    torch.manual_seed(0)
    net = _trained_looking(sp.build(g, 19, aux=True)).eval()
    before = count_batchnorms(net)
    folded = fold_batchnorm(net)
    assert count_batchnorms(net) == before  # the original is left alone
    assert count_batchnorms(folded) < before
    assert count_batchnorms(folded) == 0  # every BatchNorm of a derived network follows a conv
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref, out = net(x), folded(x)
    assert out.shape == ref.shape == (1, 19, 64, 64)
    assert float((out - ref).abs().max()) < 1e-4
    infer = inference_copy(net)
    assert len(infer.aux_heads) == 0 and not infer.training and hasattr(net, "aux_heads")
    with torch.no_grad():
        assert float((infer(x) - ref).abs().max()) < 1e-4


def test_folding_patterns():
    """affine=False BNs and a split FactorizedReduce fold; slimmable and shared convolutions stay."""
    torch.manual_seed(0)
    shared = nn.Conv2d(4, 4, 3, padding=1)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4, affine=False), nn.ReLU(),
        FactorizedReduce(4, 4, stride=2),
        SlimConv2d(4, 4, 3, padding=1), SlimBatchNorm2d([4]),
        nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4, track_running_stats=False),  # batch statistics in eval too
        shared, nn.BatchNorm2d(4), nn.ReLU(), shared, nn.BatchNorm2d(4),
    )
    _trained_looking(net)
    folded = fold_batchnorm(net)
    kinds = [type(m).__name__ for m in folded]
    assert kinds[1] == "Identity" and isinstance(folded[3].bn, nn.Identity)
    assert isinstance(folded[5], SlimBatchNorm2d)  # slimmable: left alone
    assert isinstance(folded[7], nn.BatchNorm2d)  # no running statistics: left alone
    assert isinstance(folded[9], nn.BatchNorm2d) and isinstance(folded[12], nn.BatchNorm2d)  # shared conv
    x = torch.randn(2, 3, 17, 15)
    with torch.no_grad():
        assert float((folded(x) - net.eval()(x)).abs().max()) < 1e-5


# -- export of every space ------------------------------------------------------------------------------------


@pytest.mark.parametrize("space", sorted(SMALL))
def test_export_matches_onnxruntime(space, tmp_path):
    net, g = _small_net(space)
    net.train()
    aux_params = sum(1 for _ in net.aux_heads.parameters())
    out = tmp_path / f"{space}.onnx"
    result = export_onnx(net, out, input_size=SIZE, class_names=[f"c{i}" for i in range(5)], genotype=g)
    assert net.training and sum(1 for _ in net.aux_heads.parameters()) == aux_params  # the caller's network is left as it was
    assert result["max_abs_diff"] < 1e-4 and result["max_abs_diff_original"] < 1e-4
    assert result["argmax_agreement"] >= 0.999 and result["argmax_agreement_folded"] >= 0.999
    assert result["batchnorms_left"] == 0 < result["batchnorms"]

    meta = read_metadata(out)
    assert Genotype.from_dict(json.loads(meta["genotype"])).archid == g.archid == meta["archid"]
    assert json.loads(meta["class_names"]) == [f"c{i}" for i in range(5)]
    assert meta["input_size"] == "64x96" and meta["opset"] == "17" and meta["accepted_sizes"] == result["accepted_sizes"]
    assert json.loads(meta["mean"]) == list(MEAN) and json.loads(meta["std"]) == list(STD)
    assert meta["segnas_version"]

    # an independent check: the file on disk, a batch of 2, no auxiliary outputs
    sess = _session(out)
    assert [o.name for o in sess.get_outputs()] == ["logits"] and [i.name for i in sess.get_inputs()] == ["image"]
    x = random_images(2, SIZE, seed=5)
    got = sess.run(None, {"image": x.numpy()})
    assert len(got) == 1 and got[0].shape == (2, 5, *SIZE)
    ref = _eager(net, x)
    assert np.abs(got[0] - ref).max() < 1e-4
    assert (got[0].argmax(1) == ref.argmax(1)).mean() >= 0.999
    if result["accepted_sizes"].startswith("any"):  # another size, as the metadata promises
        d = result["size_divisor"]
        other = (SIZE[0] + 2 * d, SIZE[1] - d)
        x = random_images(1, other, seed=6)
        got = sess.run(None, {"image": x.numpy()})[0]
        assert got.shape == (1, 5, *other) and np.abs(got - _eager(net, x)).max() < 1e-4
    else:
        assert result["accepted_sizes"] == "only 64x96"


def test_export_zoo_genotype_untrained(tmp_path):
    g = zoo.get("fasterseg")
    result = export_onnx(g, tmp_path / "f.onnx", input_size=(64, 128))
    meta = result["metadata"]
    assert meta["weights"].startswith("untrained") and meta["archid"] == g.archid and result["num_classes"] == 19
    assert result["accepted_sizes"] == "any HxW" and result["argmax_agreement"] >= 0.999
    assert result["max_abs_diff_original"] < 1e-4


class TinyUNet(nn.Module):
    """Two stride-2 levels with skip concatenations: it takes only sizes divisible by 4."""

    def __init__(self) -> None:
        super().__init__()
        self.d1, self.d2 = nn.Conv2d(3, 4, 3, 2, 1), nn.Conv2d(4, 4, 3, 2, 1)
        self.u2, self.u1 = nn.ConvTranspose2d(4, 4, 2, 2), nn.ConvTranspose2d(8, 4, 2, 2)
        self.cls = nn.Conv2d(7, 3, 1)

    def forward(self, x):
        f1 = self.d1(x)
        f2 = self.d2(f1)
        up = self.u1(torch.cat([self.u2(f2), f1], 1))
        return self.cls(torch.cat([up, x], 1))


def test_refused_size_is_one_clear_line(tmp_path):
    out = tmp_path / "u.onnx"
    with pytest.raises(ConfigError, match=r"^input size 66x64: the network cannot take it .*divisible by 4, "
                                          r"e\.g\. 68x64") as e:
        export_onnx(TinyUNet(), out, input_size=(66, 64))
    assert "\n" not in str(e.value) and not out.exists()
    result = export_onnx(TinyUNet(), out, input_size=(64, 64))
    assert result["accepted_sizes"] == "any HxW divisible by 4" and result["max_abs_diff"] < 1e-5


def test_output_file_claims(tmp_path):
    net, g = _small_net("fasterseg")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"not mine")
    with pytest.raises(SegnasError, match="not written by this segnas command"):
        export_onnx(net, out, input_size=(32, 32), genotype=g)
    assert out.read_bytes() == b"not mine"
    export_onnx(net, out, input_size=(32, 32), genotype=g, force=True)
    export_onnx(net, out, input_size=(32, 64), genotype=g)  # its own file: replaced without --force
    assert read_metadata(out)["input_size"] == "32x64"
    assert not [p for p in tmp_path.iterdir() if p.name != "m.onnx"]  # no temporary file left behind
    with pytest.raises(ConfigError, match="class_names has 2 names for a network of 5 classes"):
        export_onnx(net, out, input_size=(32, 32), class_names=["a", "b"])


def test_fixed_size_and_given_images(tmp_path):
    net, g = _small_net("fasterseg")
    out = tmp_path / "fixed.onnx"
    images = random_images(3, (32, 48), seed=9)
    result = export_onnx(net, out, input_size=(32, 48), genotype=g, dynamic=False, check_images=images)
    assert result["accepted_sizes"] == "only 32x48" and result["images"] == 3 and not result["dynamic_hw"]
    assert result["max_abs_diff_original"] < 1e-4 and result["argmax_agreement"] >= 0.999
    sess = _session(out)
    assert sess.run(None, {"image": random_images(2, (32, 48)).numpy()})[0].shape == (2, 5, 32, 48)
    with pytest.raises(Exception):
        sess.run(None, {"image": random_images(1, (64, 48)).numpy()})
    with pytest.raises(ConfigError, match="exported for 32x48 only"):
        export_onnx(net, out, input_size=(32, 48), dynamic=False, check_images=[images[0], random_images(1, (40, 48))])


# -- the CLI function ----------------------------------------------------------------------------------------


def _parse(argv):
    parser = argparse.ArgumentParser(prog="segnas")
    add_export_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cmd_export_checkpoint_and_genotype(tmp_path, capsys):
    net, g = _small_net("dots")
    net.aux_heads = nn.ModuleDict()
    sp = get_space("dots")
    full = sp.build(g, 5, aux=True)
    full.load_state_dict(net.state_dict(), strict=False)
    _trained_looking(full)
    ckpt = tmp_path / "best.pt"
    torch.save({"model": full.state_dict(), "genotype": g.to_dict(), "num_classes": 5,
                "class_names": ["a", "b", "c", "d", "e"]}, ckpt)
    out = tmp_path / "trained.onnx"
    args = _parse(["export", str(ckpt), "--out", str(out), "--input", "64x64"])
    assert args.func is cmd_export and args.format == "onnx"
    assert cmd_export(args) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "opset 17" in text and "any HxW" in text and "argmax agreement 100.000%" in text
    assert "untrained" not in text
    meta = read_metadata(out)
    assert meta["weights"] == "trained" and json.loads(meta["class_names"]) == ["a", "b", "c", "d", "e"]

    gfile = tmp_path / "g.json"
    gfile.write_text(g.to_json())
    assert cmd_export(_parse(["export", str(gfile), "--out", str(tmp_path / "g.onnx"), "--input", "32x32",
                              "--num-classes", "3"])) == 0
    assert "untrained (seeded)" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="trained for 5 classes"):
        cmd_export(_parse(["export", str(ckpt), "--out", str(out), "--num-classes", "3"]))
