"""Search splits: disjoint, covering, reproducible, saved atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segnas.data import SyntheticScenes, load_splits, make_splits, save_splits
from segnas.errors import ConfigError, DataError


def test_splits_disjoint_and_covering() -> None:
    s = make_splits(101, seed=3, val_fraction=0.2)
    train, a, b, val = (set(s[k]) for k in ("train", "trainA", "trainB", "val"))
    assert len(val) == 20 and len(train) == 81
    assert train | val == set(range(101)) and not train & val
    assert a | b == train and not a & b
    assert abs(len(a) - len(b)) <= 1
    assert all(s[k] == sorted(s[k]) for k in s)


def test_splits_reproducible_per_seed() -> None:
    assert make_splits(50, seed=1) == make_splits(50, seed=1)
    assert make_splits(50, seed=1)["trainA"] != make_splits(50, seed=2)["trainA"]
    s = make_splits(50, seed=1)
    assert s["val"] == [] and s["train"] == list(range(50))


def test_search_fraction_and_bad_arguments() -> None:
    s = make_splits(40, seed=0, search_fraction=0.25)
    assert len(s["trainA"]) == 10 and len(s["trainB"]) == 30
    with pytest.raises(ConfigError, match="val_fraction"):
        make_splits(10, 0, val_fraction=1.0)
    with pytest.raises(ConfigError, match="search_fraction"):
        make_splits(10, 0, search_fraction=0.0)
    with pytest.raises(DataError):
        make_splits(1, 0)


def test_save_load_roundtrip(tmp_path: Path) -> None:
    s = make_splits(30, seed=5, val_fraction=0.1)
    path = tmp_path / "run" / "splits.json"
    save_splits(path, s, {"dataset": "camvid", "seed": 5})
    splits, meta = load_splits(path)
    assert splits == s and meta == {"dataset": "camvid", "seed": 5}
    assert [p.name for p in path.parent.iterdir()] == ["splits.json"]  # no temp file left
    ds = SyntheticScenes("train", num_images=30, size=(16, 16))
    assert len(ds.subset(splits["trainA"])) == len(s["trainA"])


def test_load_errors_name_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "none.json")):
        load_splits(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=str(bad)):
        load_splits(bad)
    bad.write_text(json.dumps({"splits": {"train": [1, "x"]}}))
    with pytest.raises(DataError, match=str(bad)):
        load_splits(bad)
