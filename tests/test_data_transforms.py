"""Train/eval transforms: sizes, ignore padding, consistent flips, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from segnas.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    SyntheticScenes,
    TrainTransform,
    colorize,
    denormalize,
)


def sample(h: int = 20, w: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = (np.arange(w)[None, :] % 5 + np.zeros((h, 1), dtype=np.int64)).astype(np.uint8)
    return image, mask


@pytest.mark.parametrize("seed", range(6))
def test_crop_output_size(seed: int) -> None:
    image, mask = sample()
    x, y = TrainTransform((16, 24))(image, mask, np.random.default_rng(seed))
    assert x.shape == (3, 16, 24) and x.dtype == torch.float32
    assert y.shape == (16, 24) and y.dtype == torch.int64


def test_padding_uses_ignore_and_mean_colour() -> None:
    image, mask = sample(10, 12)
    t = TrainTransform((32, 40), scale_range=(1.0, 1.0), hflip=False)
    x, y = t(image, mask, np.random.default_rng(0))
    assert (y[:10, :12] < 5).all()
    assert (y[10:, :] == 255).all() and (y[:, 12:] == 255).all()
    assert (x[:, 10:, :] == 0).all() and (x[:, :, 12:] == 0).all()
    assert (denormalize(x)[20, 30] == np.round(np.array(IMAGENET_MEAN) * 255)).all()


def test_identity_settings_only_normalise() -> None:
    image, mask = sample()
    x, y = TrainTransform(None, scale_range=None, hflip=False)(image, mask, np.random.default_rng(0))
    np.testing.assert_array_equal(denormalize(x), image)
    np.testing.assert_array_equal(y.numpy(), mask)


def test_flip_flips_image_and_mask_together() -> None:
    image, mask = sample()
    t = TrainTransform(None, scale_range=None, hflip=True)
    flips = 0
    for seed in range(12):
        x, y = t(image, mask, np.random.default_rng(seed))
        flipped = np.array_equal(y.numpy(), mask[:, ::-1])
        assert flipped or np.array_equal(y.numpy(), mask)
        expected = image[:, ::-1] if flipped else image
        np.testing.assert_array_equal(denormalize(x), expected)
        flips += flipped
    assert 0 < flips < 12


def test_scaling_keeps_image_and_mask_aligned() -> None:
    # Mask = 1 where the image is white: after scale+crop the two must still coincide.
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[10:30, 20:45] = 255
    mask = (image[..., 0] > 0).astype(np.uint8)
    t = TrainTransform((32, 32), scale_range=(0.5, 2.0), hflip=True)
    for seed in range(8):
        x, y = t(image, mask, np.random.default_rng(seed))
        bright = denormalize(x)[..., 0] > 127
        labels = y.numpy()
        valid = labels != 255
        assert (bright[valid] == (labels[valid] == 1)).mean() > 0.95


def test_same_rng_seed_same_output() -> None:
    image, mask = sample()
    t = TrainTransform((16, 16))
    a = t(image, mask, np.random.default_rng(7))
    b = t(image, mask, np.random.default_rng(7))
    c = t(image, mask, np.random.default_rng(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_dataset_augmentation_independent_of_workers_and_resumable() -> None:
    ds = SyntheticScenes("train", num_images=4, size=(32, 32), transform=TrainTransform((24, 24)))

    def epoch(e: int, workers: int) -> torch.Tensor:
        ds.set_epoch(e)
        loader = DataLoader(ds, batch_size=2, num_workers=workers)
        return torch.cat([x for x, _ in loader])

    e1 = epoch(1, 0)
    assert torch.equal(e1, epoch(1, 2))
    assert not torch.equal(e1, epoch(2, 0))
    assert torch.equal(e1, epoch(1, 0))


def test_eval_transform_normalises_and_resizes() -> None:
    image, mask = sample()
    x, y = EvalTransform()(image, mask, np.random.default_rng(0))
    expected = (image[0, 0] / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[:, 0, 0].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(y, torch.from_numpy(mask.astype(np.int64)))
    x, y = EvalTransform(size=(10, 15))(image, mask, None)
    assert x.shape == (3, 10, 15) and y.shape == (10, 15)
    assert set(y.unique().tolist()) <= set(range(5))


def test_colorize_uses_palette_and_blacks_out_ignore() -> None:
    palette = np.array([[10, 20, 30], [200, 100, 50]], dtype=np.uint8)
    mask = np.array([[0, 1], [255, 7]], dtype=np.uint8)
    rgb = colorize(mask, palette)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [10, 20, 30] and rgb[0, 1].tolist() == [200, 100, 50]
    assert rgb[1, 0].tolist() == [0, 0, 0] and rgb[1, 1].tolist() == [0, 0, 0]
    assert colorize(torch.from_numpy(mask.astype(np.int64)), palette).tolist() == rgb.tolist()
