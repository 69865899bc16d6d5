import json

import pytest

from segnas.errors import SegnasError
from segnas.objectives import LatencyMiss, LatencyTable, OpKey, latency_environment


@pytest.fixture
def table():
    t = LatencyTable(latency_environment("cpu"))
    t.measure(OpKey("conv_2x", 16, 24, 8, 16, 2), repeats=2, warmup=1)
    t.measure(OpKey("zoomed_conv", 16, 24, 8, 8, 1), repeats=2, warmup=1)
    return t


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
    with pytest.raises(SegnasError, match=f"{field}=") as e:
        LatencyTable.load(path, latency_environment("cpu"))
    assert "segnas latency build" in str(e.value)


def test_corrupt_table_is_one_clear_error(tmp_path):
    bad = tmp_path / "lut.json"
    bad.write_text("[1, 2]")
    with pytest.raises(SegnasError, match="not a segnas latency table"):
        LatencyTable.load(bad)


def test_tables_timed_the_old_way_are_refused(tmp_path, table):
    path = table.save(tmp_path / "lut.json")
    data = json.loads(path.read_text())
    data["format"] = 1  # entries timed with hot caches
    path.write_text(json.dumps(data))
    with pytest.raises(SegnasError, match="format 1.*timed differently.*segnas latency build"):
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
