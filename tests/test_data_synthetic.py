"""The built-in synthetic scenes: deterministic, disjoint per split, every class, thin structures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segnas.data import SyntheticScenes, TrainTransform
from segnas.data.synthetic import POLE, SYNTHETIC_CLASSES
from segnas.errors import DataError


def test_shapes_and_metadata() -> None:
    ds = SyntheticScenes("train", num_images=5, size=(40, 56))
    assert len(ds) == 5 and ds.num_classes == len(SYNTHETIC_CLASSES) == 8
    image, mask = ds.load(4)
    assert image.shape == (40, 56, 3) and image.dtype == np.uint8
    assert mask.shape == (40, 56) and mask.dtype == np.uint8 and mask.max() < 8
    x, y = ds[4]
    assert x.shape == (3, 40, 56) and y.dtype == torch.int64


def test_deterministic_per_seed_and_index() -> None:
    a = SyntheticScenes("train", scene_seed=1, num_images=4)
    b = SyntheticScenes("train", scene_seed=1, num_images=4)
    for i in (3, 0):  # order of access must not matter
        np.testing.assert_array_equal(a.load(i)[0], b.load(i)[0])
        np.testing.assert_array_equal(a.load(i)[1], b.load(i)[1])
    c = SyntheticScenes("train", scene_seed=2, num_images=4)
    assert not np.array_equal(a.load(0)[0], c.load(0)[0])
    assert not np.array_equal(a.load(0)[0], a.load(1)[0])
    # the run seed drives augmentation only, never the scenes
    d = SyntheticScenes("train", seed=7, scene_seed=1, num_images=4)
    np.testing.assert_array_equal(a.load(2)[0], d.load(2)[0])


def test_train_and_val_differ() -> None:
    train = SyntheticScenes("train", num_images=3)
    val = SyntheticScenes("val", num_images=3)
    for i in range(3):
        for j in range(3):
            assert not np.array_equal(train.load(i)[1], val.load(j)[1])


def test_every_class_appears_in_a_few_images() -> None:
    ds = SyntheticScenes("train", seed=0, num_images=6)
    counts = sum(np.bincount(ds.load(i)[1].ravel(), minlength=8) for i in range(6))
    assert (counts > 0).all(), dict(zip(SYNTHETIC_CLASSES, counts.tolist()))


def _run_lengths(line: np.ndarray) -> np.ndarray:
    """Length of the run of True each True element belongs to, along the last axis."""
    out = np.zeros(line.shape, dtype=np.int64)
    for r, row in enumerate(line):
        padded = np.concatenate(([0], row.astype(np.int8), [0]))
        edges = np.flatnonzero(np.diff(padded))
        for s, e in zip(edges[::2], edges[1::2]):
            out[r, s:e] = e - s
    return out


def test_thin_structures_are_at_most_3px_wide() -> None:
    ds = SyntheticScenes("train", seed=0, num_images=5, size=(96, 128))
    for i in range(5):
        pole = ds.load(i)[1] == POLE
        assert pole.sum() >= 20
        thickness = np.minimum(_run_lengths(pole), _run_lengths(pole.T).T)[pole]
        # Crossings can be thicker; nearly all pole pixels are in a 1-3 px wide structure.
        assert (thickness <= 3).mean() > 0.9
        assert (_run_lengths(pole)[pole] <= 3).any()


def test_subset_and_transform_work() -> None:
    ds = SyntheticScenes("train", num_images=6, transform=TrainTransform((32, 32)))
    view = ds.subset([5, 1])
    np.testing.assert_array_equal(view.load(0)[1], ds.load(5)[1])
    x, y = view[1]
    assert x.shape == (3, 32, 32) and y.shape == (32, 32)


def test_bad_arguments() -> None:
    with pytest.raises(DataError, match="split"):
        SyntheticScenes("training")
    with pytest.raises(DataError, match="size"):
        SyntheticScenes("train", size=(8, 8))
    with pytest.raises(DataError, match="num_images"):
        SyntheticScenes("train", num_images=0)
