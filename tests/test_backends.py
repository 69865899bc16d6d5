"""Inference backends: the deployed module, parity of every backend, the profile's backend table, latency
tables per backend and their refusal by a search optimising for another backend."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from segnas import zoo
from segnas.backends import (MEMORY_FORMATS, compare_outputs, deploy_module, parse_backends, peak_gflops, prepare, reference_output,
                             table_backend, time_backends, time_networks, unavailable)
from segnas.cli import main
from segnas.errors import ConfigError, SegnasError
from segnas.objectives.latency import LatencyTable, OpKey, latency_environment
from segnas.ops.fold import count_batchnorms
from segnas.spaces import get_space

ort = pytest.importorskip("onnxruntime")


def _trained_looking(net: nn.Module) -> nn.Module:
    """Random BatchNorm statistics and affine parameters: folding must carry them, not the defaults."""
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return net.eval()


@pytest.fixture(scope="module")
def fasterseg_net() -> nn.Module:
    g = zoo.get("fasterseg")
    torch.manual_seed(0)
    return _trained_looking(get_space(g.space).build(g, 5, aux=True))


def test_deployed_module_is_folded_channels_last_and_computes_the_same(fasterseg_net):
    deployed = deploy_module(fasterseg_net)
    assert count_batchnorms(fasterseg_net) > 40 and count_batchnorms(deployed) == 0
    assert not hasattr(deployed, "aux_heads") or len(list(deployed.aux_heads.parameters())) == 0
    conv = next(m for m in deployed.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
                and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = fasterseg_net(x)
        out = deployed(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == ref.shape == (2, 5, 64, 96)
    assert (out - ref).abs().max() < 1e-4 * ref.abs().max()
    assert fasterseg_net.training is False and count_batchnorms(fasterseg_net) > 40  # the original is untouched


def test_eager_and_onnxruntime_reproduce_the_network_and_are_timed(fasterseg_net):
    shape = (1, 3, 64, 96)
    res = time_backends(fasterseg_net, shape, ["eager", "onnxruntime"], rounds=2, threads=1)
    for name in ("eager", "onnxruntime"):
        r = res[name]
        assert r["error"] is None and r["latency_ms"] > 0 and len(r["times_ms"]) == 2
        assert r["max_abs_diff"] < 1e-4 and r["argmax_agreement"] >= 0.999
    assert res["onnxruntime"]["session_threads"] == 1 and res["eager"]["memory_format"] in MEMORY_FORMATS
    # a backend that gives another function is caught by the parity columns, not hidden by them
    wrong = prepare(nn.Sequential(nn.Conv2d(3, 5, 1)), [shape], "eager")
    bad = compare_outputs(wrong.output(), reference_output(fasterseg_net, [shape]))
    assert bad["max_abs_diff"] > 1e-3


class _Clock:
    """A fake clock that only the timed modules move: each call of a module advances it by that module's next
    scripted duration, so the timings a timer reports are known exactly."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def __deepcopy__(self, memo: dict) -> "_Clock":
        return self


class _Scripted(nn.Module):
    def __init__(self, clock: _Clock, seconds: list[float], calls: list[str], name: str) -> None:
        super().__init__()
        self.clock, self.seconds, self.calls, self.name = clock, seconds, calls, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.now += self.seconds[len([c for c in self.calls if c == self.name])]
        self.calls.append(self.name)
        return x

    def __deepcopy__(self, memo: dict) -> "_Scripted":
        return self  # the deployed copy must move the same clock and log


def test_networks_are_timed_in_interleaved_rounds_keeping_each_ones_fastest(monkeypatch):
    clock, calls = _Clock(), []
    monkeypatch.setattr("segnas.backends.time", clock)
    fmt = [1.0, 0.001, 1.0, 0.002]  # when prepared: a warm-up and a timed call in each memory format
    a = _Scripted(clock, fmt + [7.0, 0.005, 0.003, 0.004], calls, "a")  # then its warm-up, then rounds 1-3
    b = _Scripted(clock, fmt + [7.0, 0.002, 0.006, 0.001], calls, "b")
    ra, rb = time_networks([a, b], (1, 1, 2, 2), ["eager"], rounds=3, parity=False, flops=[6 * 10**9, None])
    assert calls == ["a"] * 5 + ["b"] * 5 + ["a", "b"] * 3  # prepared one after the other, then interleaved
    assert ra["eager"]["times_ms"] == pytest.approx([5.0, 3.0, 4.0]) and ra["eager"]["latency_ms"] == pytest.approx(3.0)
    assert rb["eager"]["times_ms"] == pytest.approx([2.0, 6.0, 1.0]) and rb["eager"]["latency_ms"] == pytest.approx(1.0)
    assert ra["eager"]["setup_s"] == pytest.approx(9.003) and ra["eager"]["memory_format"] == "channels_last"
    assert ra["eager"]["gflops_per_s"] == pytest.approx(2000.0) and "gflops_per_s" not in rb["eager"]


def test_the_faster_memory_format_is_kept(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr("segnas.backends.time", clock)
    # a warm-up and a timed call in channels_last, the same in contiguous, then the runner's own warm-up
    for seconds, expected in (([1.0, 0.5, 1.0, 0.2, 0.1], "contiguous"), ([1.0, 0.2, 1.0, 0.5, 0.1], "channels_last")):
        calls: list[str] = []
        runner = prepare(_Scripted(clock, seconds, calls, "n"), [(1, 1, 2, 2)], "eager")
        assert runner.detail["memory_format"] == expected and len(calls) == 5


def test_unavailable_backends_are_reported_not_timed(fasterseg_net, monkeypatch):
    monkeypatch.setattr("segnas.backends._cpu_bf16", lambda: False)
    res = time_backends(fasterseg_net, (1, 3, 32, 32), ["eager", "bf16"], rounds=1)
    assert res["bf16"]["latency_ms"] is None and "no native bf16" in res["bf16"]["error"]
    assert res["eager"]["latency_ms"] > 0
    with pytest.raises(ConfigError, match="backend bf16: this CPU has no native bf16"):
        prepare(fasterseg_net, [(1, 3, 32, 32)], "bf16")
    with pytest.raises(ConfigError, match=r"--backend tensorrt: choose from eager, compile, onnxruntime, bf16"):
        parse_backends("eager,tensorrt")


def test_profile_prints_the_backend_table(capsys, monkeypatch):
    monkeypatch.setattr("segnas.backends.PEAK_CONVS", ((64, 32, 32),))  # the peak's own test is below
    code = main(["profile", "fasterseg", "--input", "64x96", "--rounds", "2", "--threads", "1",
                 "--backend", "eager,onnxruntime", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["params"] == 3_421_875 and result["macs"] > 0
    assert set(result["backends"]) == {"eager", "onnxruntime"} and result["threads"] == 1
    for entry in result["backends"].values():
        assert entry["latency_ms"] > 0 and entry["max_abs_diff"] < 1e-4
        assert 0 < entry["peak_fraction"] and entry["gflops_per_s"] > 0
    assert result["peak"]["gflops_per_s"] > 0.5
    code = main(["profile", "fasterseg", "--input", "32x32", "--rounds", "1", "--threads", "1",
                 "--backend", "eager,onnxruntime"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("eager", "onnxruntime"))]
    assert [r[0] for r in rows] == ["eager", "onnxruntime"] and rows[0][2] == "1.00x"
    assert "peak" in out and "GFLOP/s" in out


def test_profile_refuses_an_unknown_backend_in_one_line(capsys):
    code = main(["profile", "fasterseg", "--input", "32x32", "--backend", "tensorrt"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--backend tensorrt" in err


def test_peak_is_a_large_convolution(monkeypatch):
    monkeypatch.setattr("segnas.backends.PEAK_CONVS", ((32, 16, 16),))
    peak = peak_gflops(threads=1, rounds=1)
    assert peak["conv"] == "3x3 conv 32->32 at 1x32x16x16"
    assert peak["gflops_per_s"] * 1e9 * peak["latency_ms"] / 1000 == pytest.approx(4_718_592)  # 2*32*32*9*16*16


def test_latency_table_per_backend_records_it_and_is_refused_elsewhere(tmp_path):
    env = latency_environment("cpu", threads=1, backend="onnxruntime")
    assert env["backend"] == f"onnxruntime-{ort.__version__}" == table_backend("onnxruntime")
    table = LatencyTable(env)
    keys = [OpKey("conv", 16, 16, 8, 8), OpKey("conv", 16, 16, 8, 16, 2)]
    assert table.build(keys, repeats=2) == 2 and all(table.lookup(k) > 0 for k in keys)
    path = table.save(tmp_path / "ort.json")
    assert LatencyTable.load(path, env).entries == table.entries
    with pytest.raises(SegnasError, match=r"built for backend 'onnxruntime-.*' but this run optimises for "
                                          r"'pytorch-eager'; set fasterseg.backend"):
        LatencyTable.load(path, latency_environment("cpu", threads=1))


SMALL_SPACE = ["--set", "search.space_args.layers=2", "--set", "search.space_args.chis=[4]", "--set",
               "search.space_args.head_chi=4", "--set", "search.space_args.stem_chi=4", "--set",
               "search.space_args.branches=1"]


def test_search_refuses_a_table_of_another_backend(tmp_path, capsys):
    table = tmp_path / "lut.json"
    torch.set_num_threads(2)
    code = main(["latency", "build", "--space", "fasterseg", "--input", "32x32", "--preset", "tiny", "--threads", "1",
                 "--backend", "onnxruntime", "--repeats", "1", "--quiet", "--out", str(table), *SMALL_SPACE])
    out = capsys.readouterr().out
    assert code == 0 and "(onnxruntime-" in out and "with 1 threads" in out
    assert torch.get_num_threads() == 2  # the command's --threads 1 ended with it
    code = main(["search", "fasterseg", "--preset", "tiny", "--threads", "1", "--quiet", "--out", str(tmp_path / "s"),
                 "--lut", str(table), "--set", "fasterseg.deploy_size=[32,32]", *SMALL_SPACE])
    err = capsys.readouterr().err
    assert code == 2 and "built for backend 'onnxruntime-" in err and err.count("\n") == 1
    assert not (tmp_path / "s" / "checkpoints").exists()


def test_unavailable_onnxruntime_is_one_line(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_ort(name, *a, **k):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'", name="onnxruntime")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    assert unavailable("onnxruntime") == "needs the package onnxruntime: pip install onnx onnxruntime"


@pytest.mark.slow
def test_compile_backend_reproduces_the_network(fasterseg_net):
    torch._dynamo.utils.counters.clear()
    res = time_backends(fasterseg_net, (1, 3, 64, 96), ["eager", "compile"], rounds=2, threads=1)
    assert res["compile"]["error"] is None and res["compile"]["max_abs_diff"] < 1e-4
    # compiled as one graph (fullgraph: a break would be an error row), not run eagerly
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
