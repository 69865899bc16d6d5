import json
import time

import pytest
import torch
from torch import nn

from segnas.errors import SegnasError
from segnas.objectives import LatencyMiss, LatencyTable, OpKey, interleaved_fastest, latency_environment


@pytest.fixture
def table():
    t = LatencyTable(latency_environment("cpu"))
    assert t.build([OpKey("conv_2x", 16, 24, 8, 16, 2), OpKey("zoomed_conv", 16, 24, 8, 8, 1)], repeats=2) == 2
    return t


class _Calls(list):
    """The call log the timed modules share: the deployed copy a backend times must append to it too."""

    def __deepcopy__(self, memo: dict) -> "_Calls":
        return self


class _Spell(nn.Module):
    """Sleeps 40 ms while the shared call count is below ``slow_calls``, then 1 ms: a slow spell of the machine."""

    def __init__(self, calls: list[str], name: str, slow_calls: int) -> None:
        super().__init__()
        self.calls, self.name, self.slow_calls = calls, name, slow_calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.04 if len(self.calls) < self.slow_calls else 0.001)
        self.calls.append(self.name)
        return x


def test_entries_are_the_fastest_of_interleaved_rounds():
    # 2 keys x 2 rounds x (1 warm-up + 1 timed call): the spell covers the first round of *both*
    # keys, so each keeps a fast entry; timed in one burst per key, the first would be all slow
    calls = _Calls()
    keys = [OpKey("a", 4, 4, 1, 1), OpKey("b", 4, 4, 1, 1)]
    t = LatencyTable(latency_environment("cpu"))
    t.build(keys, probe=lambda k: (_Spell(calls, k.op, slow_calls=4), [(1, 1, 4, 4)]), warmup=1, repeats=2)
    assert calls == ["a", "a", "b", "b"] * 2
    assert all(v < 20.0 for v in t.entries.values()), t.entries
    assert t.build(keys, probe=lambda k: (_Spell(calls, k.op, 0), [(1, 1, 4, 4)])) == 0  # nothing left to measure


def test_building_a_table_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    LatencyTable(latency_environment("cpu")).build([OpKey("conv", 8, 8, 4, 4)], repeats=1)
    assert torch.equal(torch.rand(3), expected)


def test_interleaved_fastest_times_every_network_once_per_round():
    calls = _Calls()
    nets = [_Spell(calls, "a", 0), _Spell(calls, "b", 0)]
    times = interleaved_fastest(nets, (1, 1, 2, 2), rounds=3)
    # when prepared: a warm-up and a timed call in each memory format, then the warm-up call; then one call
    # of each per round
    assert calls == ["a"] * 5 + ["b"] * 5 + ["a", "b"] * 3 and [len(t) for t in times] == [3, 3]


def test_measured_entries_round_trip(tmp_path, table):
    assert len(table) == 2 and all(v > 0 for v in table.entries.values())
    path = table.save(tmp_path / "lut.json")
    back = LatencyTable.load(path, latency_environment("cpu"))
    key = OpKey("conv_2x", 16, 24, 8, 16, 2)
    assert key in back and back.lookup(key) == table.lookup(key)


def test_a_miss_is_explicit(table):
    with pytest.raises(LatencyMiss, match=r"conv\|16x24\|8->8\|s1"):
        table.lookup(OpKey("conv", 16, 24, 8, 8, 1))


@pytest.mark.parametrize("field, value", [("torch", "1.0.0"), ("threads", 64), ("device", "cuda:H100"),
                                          ("backend", "tensorrt")])
def test_stale_or_foreign_tables_are_refused(tmp_path, table, field, value):
    path = table.save(tmp_path / "lut.json")
    data = json.loads(path.read_text())
    data["environment"][field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(SegnasError, match=f"{field}=" if field != "backend" else "built for backend 'tensorrt'") as e:
        LatencyTable.load(path, latency_environment("cpu"))
    assert "segnas latency build" in str(e.value)


def test_corrupt_table_is_one_clear_error(tmp_path):
    bad = tmp_path / "lut.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SegnasError, match="not a segnas latency table"):
        LatencyTable.load(bad)


@pytest.mark.parametrize("old", [1, 2])  # 1: hot caches; 2: the median of one burst per entry
def test_tables_timed_the_old_way_are_refused(tmp_path, table, old):
    path = table.save(tmp_path / "lut.json")
    data = json.loads(path.read_text())
    data["format"] = old
    path.write_text(json.dumps(data))
    with pytest.raises(SegnasError, match=f"format {old}.*timed differently.*segnas latency build"):
        LatencyTable.load(path, latency_environment("cpu"))


def test_calibration_scales_every_lookup_by_the_median_ratio(tmp_path):
    a, b, c = OpKey("conv", 8, 8, 4, 4), OpKey("conv", 8, 8, 4, 8), OpKey("conv_2x", 8, 8, 4, 4)
    t = LatencyTable(latency_environment("cpu"), {a.id: 1.0, b.id: 3.0, c.id: 2.0})
    # whole networks ran at 2.0 / 4.0 = 0.5, 6.0 / 5.0 = 1.2 and 2.4 / 4.0 = 0.6 of their entry sums
    cal = t.calibrate([(2.0, [a, b]), (6.0, [b, c]), (2.4, [a, b])])
    assert cal["factor"] == pytest.approx(0.6) and cal["networks"] == 3
    assert t.lookup(b) == pytest.approx(1.8) and t.raw(b) == 3.0
    assert t.total([a, c]) == pytest.approx(1.8) and t.total([a, c], raw=True) == 3.0
    back = LatencyTable.load(t.save(tmp_path / "lut.json"), latency_environment("cpu"))
    assert back.scale == pytest.approx(0.6) and back.lookup(c) == pytest.approx(1.2)


def test_an_uncalibrated_table_reads_its_entries_as_timed(tmp_path, table):
    key = OpKey("conv_2x", 16, 24, 8, 16, 2)
    assert table.calibration is None and table.lookup(key) == table.entries[key.id]
    path = table.save(tmp_path / "lut.json")
    data = json.loads(path.read_text())
    data["calibration"] = {"factor": -1.0}
    path.write_text(json.dumps(data))
    with pytest.raises(SegnasError, match="calibration factor"):
        LatencyTable.load(path)
