"""The real CamVid copy (skipped where it is not present)."""

from __future__ import annotations

import numpy as np
import pytest

from segnas.data import CamVid, TrainTransform, build_dataset, default_camvid_root

ROOT = default_camvid_root()
pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason=f"CamVid not found at {ROOT}")


@pytest.mark.parametrize("split,count", [("train", 367), ("val", 101)])
def test_real_camvid_loads(split: str, count: int) -> None:
    ds = CamVid(ROOT, split)
    assert len(ds) == count
    for i in (0, len(ds) - 1):
        image, mask = ds.load(i)
        assert image.shape == (360, 480, 3) and mask.shape == (360, 480)
        values = set(np.unique(mask).tolist())
        assert values <= set(range(11)) | {255}
        assert len(values - {255}) >= 3


def test_real_camvid_default_root_and_transform() -> None:
    ds = build_dataset("camvid", None, "train", transform=TrainTransform((128, 160)), seed=0)
    x, y = ds[0]
    assert x.shape == (3, 128, 160) and y.shape == (128, 160)
    assert set(y.unique().tolist()) <= set(range(11)) | {255}
