"""Each dataset class reads a tiny fabricated tree in its real on-disk layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segnas.data import (
    ADE20K,
    DATASETS,
    VOC,
    CamVid,
    Cityscapes,
    ImageMaskFolder,
    SegmentationDataset,
    SyntheticScenes,
    build_dataset,
)
from segnas.data.labels import bit_palette
from segnas.errors import DataError, SegnasError

H, W = 8, 12


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def write_mask(path: Path, values: list[int], palette: bool = False, size: tuple[int, int] = (H, W)) -> None:
    """Mask whose rows cycle through ``values`` so every value is present."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.resize(np.asarray(values, dtype=np.uint8), size[0] * size[1]).reshape(size)
    if palette:  # VOC style: indices stored with a colour palette
        img = Image.frombytes("P", (size[1], size[0]), arr.tobytes())
        img.putpalette(bit_palette(256).ravel().tolist())
    else:
        img = Image.fromarray(arr)
    img.save(path)


def check_sample(ds: SegmentationDataset, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    image, mask = ds.load(index)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert mask.shape == (H, W) and mask.dtype == np.uint8
    x, y = ds[index]
    assert x.shape == (3, H, W) and x.dtype == torch.float32
    assert y.shape == (H, W) and y.dtype == torch.int64
    assert ds.palette.shape == (ds.num_classes, 3) and ds.palette.dtype == np.uint8
    assert len(ds.class_names) == ds.num_classes
    return image, mask


# ---- CamVid -------------------------------------------------------------------------------


def make_camvid(root: Path, split: str = "train", n: int = 3, values: list[int] | None = None) -> None:
    for i in range(n):
        write_image(root / split / f"f{i}.png", seed=i)
        write_mask(root / f"{split}annot" / f"f{i}.png", values or [0, 5, 10, 11])


def test_camvid_folder_layout_maps_void(tmp_path: Path) -> None:
    make_camvid(tmp_path)
    ds = CamVid(tmp_path, "train")
    assert len(ds) == 3 and ds.num_classes == 11 and ds.class_names[0] == "Sky"
    _, mask = check_sample(ds)
    assert set(np.unique(mask).tolist()) == {0, 5, 10, 255}


def test_camvid_prefers_list_file(tmp_path: Path) -> None:
    make_camvid(tmp_path)
    (tmp_path / "train.txt").write_text("train/f2.png trainannot/f2.png\n\ntrain/f0.png trainannot/f0.png\n")
    ds = CamVid(tmp_path, "train")
    assert [p[0].name for p in ds.items] == ["f2.png", "f0.png"]


def test_camvid_missing_root_and_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        CamVid(tmp_path / "nope", "train")
    make_camvid(tmp_path)
    with pytest.raises(DataError, match=str(tmp_path / "val.txt")):
        CamVid(tmp_path, "val")


def test_list_file_pointing_to_missing_file(tmp_path: Path) -> None:
    make_camvid(tmp_path)
    (tmp_path / "train.txt").write_text("train/f0.png trainannot/f0.png\ntrain/gone.png trainannot/f1.png\n")
    with pytest.raises(DataError) as err:
        CamVid(tmp_path, "train")
    msg = str(err.value)
    assert str(tmp_path / "train.txt") in msg and str(tmp_path / "train" / "gone.png") in msg
    assert "\n" not in msg


def test_mismatched_names_in_folder(tmp_path: Path) -> None:
    make_camvid(tmp_path)
    (tmp_path / "trainannot" / "f1.png").rename(tmp_path / "trainannot" / "other.png")
    with pytest.raises(DataError) as err:
        CamVid(tmp_path, "train")
    assert str(tmp_path / "train" / "f1.png") in str(err.value)
    assert "other.png" in str(err.value)


def test_zero_images(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "trainannot").mkdir()
    with pytest.raises(DataError, match=str(tmp_path / "train")):
        CamVid(tmp_path, "train")


def test_label_out_of_range_names_values(tmp_path: Path) -> None:
    make_camvid(tmp_path, values=[0, 3, 12, 40])
    ds = CamVid(tmp_path, "train")
    with pytest.raises(DataError) as err:
        ds.load(1)
    msg = str(err.value)
    assert str(tmp_path / "trainannot" / "f1.png") in msg
    assert "12, 40" in msg and "0-11, 255" in msg


def test_size_mismatch(tmp_path: Path) -> None:
    make_camvid(tmp_path)
    write_mask(tmp_path / "trainannot" / "f0.png", [0], size=(H + 2, W))
    with pytest.raises(DataError) as err:
        CamVid(tmp_path, "train").load(0)
    msg = str(err.value)
    assert str(tmp_path / "trainannot" / "f0.png") in msg and str(tmp_path / "train" / "f0.png") in msg
    assert f"{H + 2}x{W}" in msg


@pytest.mark.parametrize("content", [b"", b"not an image at all", None])
def test_corrupt_image(tmp_path: Path, content: bytes | None) -> None:
    make_camvid(tmp_path)
    bad = tmp_path / "train" / "f1.png"
    if content is None:  # truncated PNG: header fine, pixel data cut
        content = bad.read_bytes()[:60]
    bad.write_bytes(content)
    ds = CamVid(tmp_path, "train")
    ds.load(0)
    with pytest.raises(DataError, match=str(bad)):
        ds.load(1)


def test_colour_mask_rejected(tmp_path: Path) -> None:
    make_camvid(tmp_path)
    write_image(tmp_path / "trainannot" / "f0.png")
    with pytest.raises(DataError, match="single-channel"):
        CamVid(tmp_path, "train").load(0)


def test_cache_returns_same_arrays(tmp_path: Path) -> None:
    make_camvid(tmp_path)
    ds = CamVid(tmp_path, "train", cache=True)
    first = ds.load(0)
    (tmp_path / "train" / "f0.png").unlink()  # a cached sample no longer needs its file
    assert ds.load(0) is first
    view = ds.subset([0])
    assert view.load(0) is first


# ---- Cityscapes ---------------------------------------------------------------------------


def make_cityscapes(root: Path, split: str = "train") -> None:
    for city, frames in (("aachen", ["000000_000019", "000001_000019"]), ("bonn", ["000002_000019"])):
        for frame in frames:
            write_image(root / "leftImg8bit" / split / city / f"{city}_{frame}_leftImg8bit.png")
            write_mask(root / "gtFine" / split / city / f"{city}_{frame}_gtFine_labelIds.png", [7, 0, 26, 33, 9])
            write_mask(root / "gtFine" / split / city / f"{city}_{frame}_gtFine_color.png", [1])


def test_cityscapes_maps_label_ids(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    ds = Cityscapes(tmp_path, "train")
    assert len(ds) == 3 and ds.num_classes == 19 and ds.class_names[13] == "car"
    assert tuple(ds.palette[0]) == (128, 64, 128)
    _, mask = check_sample(ds)
    raw = np.resize(np.array([7, 0, 26, 33, 9]), H * W).reshape(H, W)
    assert (mask[raw == 7] == 0).all() and (mask[raw == 0] == 255).all()
    assert (mask[raw == 26] == 13).all() and (mask[raw == 33] == 18).all() and (mask[raw == 9] == 255).all()


def test_cityscapes_missing_annotation(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    gone = tmp_path / "gtFine" / "train" / "bonn" / "bonn_000002_000019_gtFine_labelIds.png"
    gone.unlink()
    with pytest.raises(DataError, match=str(gone)):
        Cityscapes(tmp_path, "train")
    with pytest.raises(DataError, match=str(tmp_path / "leftImg8bit" / "val")):
        Cityscapes(tmp_path, "val")


def test_cityscapes_rejects_unknown_label_id(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    path = tmp_path / "gtFine" / "train" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png"
    write_mask(path, [7, 34])
    with pytest.raises(DataError, match="34"):
        Cityscapes(tmp_path, "train").load(0)


# ---- VOC ----------------------------------------------------------------------------------


def make_voc(root: Path) -> Path:
    base = root / "VOCdevkit" / "VOC2012"
    ids = ["2007_000032", "2007_000039", "2007_000063"]
    for i, sid in enumerate(ids):
        write_image(base / "JPEGImages" / f"{sid}.jpg", seed=i)
        write_mask(base / "SegmentationClass" / f"{sid}.png", [0, 15, 20, 255], palette=True)
        write_mask(base / "SegmentationClassAug" / f"{sid}.png", [0, 1, 2])
    sets = base / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("\n".join(ids[:2]) + "\n")
    (sets / "val.txt").write_text(ids[2] + "\n")
    (sets / "train_aug.txt").write_text(
        "".join(f"/JPEGImages/{s}.jpg /SegmentationClassAug/{s}.png\n" for s in ids)
    )
    return base


def test_voc_reads_palette_indices(tmp_path: Path) -> None:
    base = make_voc(tmp_path)
    with Image.open(base / "SegmentationClass" / "2007_000032.png") as img:
        assert img.mode == "P"
    ds = VOC(tmp_path, "train")  # the VOCdevkit parent is accepted too
    assert len(ds) == 2 and ds.num_classes == 21 and ds.class_names[15] == "person"
    _, mask = check_sample(ds)
    assert set(np.unique(mask).tolist()) == {0, 15, 20, 255}
    assert len(VOC(base, "val")) == 1


def test_voc_train_aug_uses_sbd_masks(tmp_path: Path) -> None:
    make_voc(tmp_path)
    ds = VOC(tmp_path, "train_aug")
    assert len(ds) == 3 and ds.items[0][1].parent.name == "SegmentationClassAug"
    assert set(np.unique(ds.load(0)[1]).tolist()) == {0, 1, 2}


def test_voc_missing_id_and_split(tmp_path: Path) -> None:
    base = make_voc(tmp_path)
    (base / "JPEGImages" / "2007_000039.jpg").unlink()
    with pytest.raises(DataError, match=str(base / "JPEGImages" / "2007_000039.jpg")):
        VOC(base, "train")
    with pytest.raises(DataError, match=str(base / "ImageSets" / "Segmentation" / "trainval.txt")):
        VOC(base, "trainval")


# ---- ADE20K -------------------------------------------------------------------------------


def make_ade(root: Path) -> None:
    for sub in ("training", "validation"):
        for i in range(2):
            name = f"ADE_{sub[:5]}_{i:08d}"
            write_image(root / "images" / sub / f"{name}.jpg", seed=i)
            write_mask(root / "annotations" / sub / f"{name}.png", [0, 1, 150, 77])


def test_ade20k_shifts_labels(tmp_path: Path) -> None:
    make_ade(tmp_path)
    ds = ADE20K(tmp_path, "val")
    assert len(ds) == 2 and ds.num_classes == 150 and ds.class_names[0] == "wall"
    assert ds.items[0][0].parent.name == "validation"
    _, mask = check_sample(ds)
    raw = np.resize(np.array([0, 1, 150, 77]), H * W).reshape(H, W)
    assert (mask[raw == 1] == 0).all() and (mask[raw == 0] == 255).all()
    assert (mask[raw == 150] == 149).all() and (mask[raw == 77] == 76).all()
    assert len(np.unique(ds.palette, axis=0)) == 150


def test_ade20k_bad_split_and_value(tmp_path: Path) -> None:
    make_ade(tmp_path)
    with pytest.raises(DataError, match="test"):
        ADE20K(tmp_path, "test")
    write_mask(tmp_path / "annotations" / "training" / "ADE_train_00000000.png", [151])
    with pytest.raises(DataError, match="151"):
        ADE20K(tmp_path, "train").load(0)


# ---- generic folders ----------------------------------------------------------------------


@pytest.mark.parametrize("split_first", [True, False])
def test_image_mask_folder_layouts(tmp_path: Path, split_first: bool) -> None:
    for i in range(2):
        img = tmp_path / ("val/images" if split_first else "images/val") / f"s{i}.jpg"
        msk = tmp_path / ("val/masks" if split_first else "masks/val") / f"s{i}.png"
        write_image(img, seed=i)
        write_mask(msk, [0, 1, 2, 255])
    ds = ImageMaskFolder(tmp_path, "val", num_classes=3, class_names=["a", "b", "c"])
    assert len(ds) == 2 and ds.class_names == ["a", "b", "c"]
    _, mask = check_sample(ds)
    assert set(np.unique(mask).tolist()) == {0, 1, 2, 255}
    with pytest.raises(DataError, match=r"\[2\]"):
        ImageMaskFolder(tmp_path, "val", num_classes=2).load(0)


def test_image_mask_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "train" / "images")):
        ImageMaskFolder(tmp_path, "train", num_classes=2)
    write_image(tmp_path / "train" / "images" / "a.png")
    write_mask(tmp_path / "train" / "masks" / "b.png", [0])
    with pytest.raises(DataError, match=str(tmp_path / "train" / "images" / "a.png")):
        ImageMaskFolder(tmp_path, "train", num_classes=2)
    with pytest.raises(DataError, match="class_names"):
        ImageMaskFolder(tmp_path, "train", num_classes=2, class_names=["x"])


# ---- registry -----------------------------------------------------------------------------


def test_build_dataset_registry(tmp_path: Path) -> None:
    assert set(DATASETS) == {"camvid", "cityscapes", "voc", "ade20k", "folder", "synthetic", "planted-context"}
    make_camvid(tmp_path)
    ds = build_dataset("CamVid", str(tmp_path), "train", seed=3)
    assert isinstance(ds, CamVid) and ds.seed == 3
    syn = build_dataset("synthetic", None, "val", num_images=4, size=(32, 48))
    assert isinstance(syn, SyntheticScenes) and len(syn) == 4 and syn.load(0)[1].shape == (32, 48)
    with pytest.raises(SegnasError) as err:
        build_dataset("kitti", str(tmp_path), "train")
    assert "camvid" in str(err.value) and "synthetic" in str(err.value)
    with pytest.raises(DataError, match="root"):
        build_dataset("voc", None, "train")
    with pytest.raises(TypeError):
        DATASETS["x"] = CamVid  # type: ignore[index]


def test_default_camvid_root_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from segnas.data import default_camvid_root

    monkeypatch.delenv("SEGNAS_CAMVID", raising=False)
    assert default_camvid_root().parts[-3:] == ("shared", "data", "camvid")
    monkeypatch.setenv("SEGNAS_CAMVID", str(tmp_path))
    assert default_camvid_root() == tmp_path


def test_base_dataset_from_string_pairs_and_subset(tmp_path: Path) -> None:
    make_camvid(tmp_path)
    pairs = [(str(tmp_path / "train" / f"f{i}.png"), str(tmp_path / "trainannot" / f"f{i}.png")) for i in range(3)]
    names = [f"c{k}" for k in range(12)]
    ds = SegmentationDataset(pairs, name="mine", class_names=names, palette=bit_palette(12))
    assert set(np.unique(ds.load(0)[1]).tolist()) == {0, 5, 10, 11}
    view = ds.subset([2, 0])
    assert len(view) == 2 and view.items == [pairs[2], pairs[0]] and view.class_names is ds.class_names
    with pytest.raises(DataError, match="out of range"):
        ds.subset([3])
    with pytest.raises(DataError, match="0 images"):
        SegmentationDataset([], name="empty", class_names=["a"], palette=bit_palette(1))
