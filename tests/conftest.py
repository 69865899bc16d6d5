import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(autouse=True)
def _torch_threads():
    """Commands run in-process with --threads set torch's thread count for the process; later tests must
    not inherit it (seeded results depend on the reduction order threads give)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def folder_dataset(tmp_path):
    """A tiny 3-class image/mask folder dataset in the generic layout; returns a function to corrupt it."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 2)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(n):
            mask = np.zeros((32, 32), np.uint8)
            mask[:, 16:] = 1
            mask[8:12] = 2
            img = (rng.random((32, 32, 3)) * 60 + mask[..., None] * 60).astype(np.uint8)
            Image.fromarray(img).save(root / split / "images" / f"{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{i}.png")
    return root
