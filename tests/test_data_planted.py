"""Planted-architecture datasets: seeded, and their labels follow the stated rule on the pixels themselves."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from segnas.config import make_config
from segnas.data import PlantedContext, build_dataset
from segnas.data.planted import (BEACON_GREEN, BEACON_RED, CONTEXT_CLASSES, GROUND, TARGET_GREEN, TARGET_RED,
                                 geometry)
from segnas.engine.loaders import make_datasets
from segnas.errors import DataError

SIZE = (64, 96)


def test_scenes_are_seeded_per_scene_seed_split_and_index():
    a = PlantedContext("train", num_images=4, scene_seed=3)
    b = PlantedContext("train", num_images=4, scene_seed=3, seed=9)  # the run seed drives augmentation only
    for i in (2, 0):
        np.testing.assert_array_equal(a.load(i)[0], b.load(i)[0])
        np.testing.assert_array_equal(a.load(i)[1], b.load(i)[1])
    assert not np.array_equal(a.load(0)[1], PlantedContext("train", num_images=4, scene_seed=4).load(0)[1])
    assert not np.array_equal(a.load(0)[1], PlantedContext("val", num_images=4, scene_seed=3).load(0)[1])
    assert a.num_classes == len(CONTEXT_CLASSES) == 3 and a.size == SIZE


@pytest.mark.parametrize("size, zone, reach", [((64, 96), 32, 32), ((32, 448), 48, 448 / 3)])
def test_a_targets_class_is_the_colour_of_the_nearest_beacon_read_from_the_pixels(size, zone, reach):
    """Beacons are found by their colour in the image, targets as grey squares; the label must agree.

    At 64x96 beacons lie in the outer thirds and targets a third of the width (32 px) from them; wide
    scenes keep beacons within 1.5 heights of the edge and targets a third of the width (149 px) away."""
    assert geometry(*size) == pytest.approx((zone, reach))
    ds = PlantedContext("val", num_images=24, size=size)
    seen = {TARGET_RED: 0, TARGET_GREEN: 0}
    for i in range(len(ds)):
        image, label = ds.load(i)
        rgb = image.astype(np.int32)
        red = (rgb[..., 0] > rgb[..., 1] + 60) & (rgb[..., 0] > rgb[..., 2] + 60)
        green = (rgb[..., 1] > rgb[..., 0] + 60) & (rgb[..., 1] > rgb[..., 2] + 40)
        centres = {cls: np.argwhere(mask).mean(0) for cls, mask in ((BEACON_RED, red), (BEACON_GREEN, green))}
        for mask in (red, green):
            assert 100 < mask.sum() < 300 and np.all(label[mask] == GROUND)  # a beacon disc, labelled ground
        # one beacon near the left edge, the other near the right edge
        xs = sorted(c[1] for c in centres.values())
        assert xs[0] <= zone + 1 and xs[1] >= size[1] - zone - 1
        targets, n = ndimage.label(np.isin(label, (TARGET_RED, TARGET_GREEN)))
        for k in range(1, n + 1):
            pix = targets == k
            cls = int(np.bincount(label[pix]).argmax())
            assert np.all(label[pix] == cls)  # a target is one class throughout
            centre = np.argwhere(pix).mean(0)
            dist = {c: float(np.hypot(*(centre - p))) for c, p in centres.items()}
            nearest = min(dist, key=dist.get)
            assert cls == (TARGET_RED if nearest == BEACON_RED else TARGET_GREEN)
            assert min(dist.values()) >= reach - 2  # no beacon within a small receptive field
            seen[cls] += 1
    assert min(seen.values()) >= 20  # both target classes are common, wide scenes included


def test_targets_look_the_same_whatever_their_class():
    """Nothing local tells a target's class: grey level and size have the same distribution for both."""
    ds = PlantedContext("train", num_images=120)
    grey, size = {TARGET_RED: [], TARGET_GREEN: []}, {TARGET_RED: [], TARGET_GREEN: []}
    for i in range(len(ds)):
        image, label = ds.load(i)
        targets, n = ndimage.label(np.isin(label, (TARGET_RED, TARGET_GREEN)))
        for k in range(1, n + 1):
            pix = targets == k
            cls = int(label[pix][0])
            grey[cls].append(float(image[pix].mean()))
            size[cls].append(int(pix.sum()))
    from scipy.stats import ks_2samp
    assert ks_2samp(grey[TARGET_RED], grey[TARGET_GREEN]).pvalue > 0.01
    assert ks_2samp(size[TARGET_RED], size[TARGET_GREEN]).pvalue > 0.01


def test_built_from_the_data_config_and_bad_sizes_refused():
    cfg = make_config("tiny", overrides=["data.dataset=planted-context", "data.synthetic_size=[48,96]",
                                         "data.crop=[48,96]"])
    train, val = make_datasets(cfg.data, cfg.seed)
    assert isinstance(train, PlantedContext) and train.size == (48, 96) and len(train) == cfg.data.synthetic_train
    assert set(np.unique(val.load(0)[1])) <= {GROUND, TARGET_RED, TARGET_GREEN}
    with pytest.raises(DataError, match="at least"):
        build_dataset("planted-context", None, "train", size=(64, 64))
