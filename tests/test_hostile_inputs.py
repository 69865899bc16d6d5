"""A corpus of hostile and absurd inputs: each must end in one line naming the file or field, exit status 2,
no traceback, nothing of the user's changed and no checkpoint written.

Each case builds its inputs under ``tmp_path`` and returns the command line and the words the error line must
hold. The commands are the CLI's own (``segnas.cli.main`` in-process) and fail before any training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segnas import zoo
from segnas.cli import main

Case = Callable[[Path], tuple[list[str], list[str]]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        assert name not in CASES
        CASES[name] = fn
        return fn
    return register


# -- building blocks --------------------------------------------------------------------------------------------

def genotype_dict(name: str = "fasterseg") -> dict:
    d = zoo.get(name).to_dict()
    d.pop("archid")  # edited by the cases: no stored hash to contradict
    return d


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def profile(g: Path, *extra: str) -> list[str]:
    return ["profile", str(g), "--no-latency", "--input", "32x32", *extra]


def retrain(tmp: Path, *extra: str) -> list[str]:
    return ["retrain", "fasterseg", "--preset", "tiny", "--quiet", "--out", str(tmp / "out"), *extra]


def folder(tmp: Path, n_train: int = 4, n_val: int = 2, classes: int = 3) -> Path:
    """A tiny image/mask folder dataset of ``classes`` labels (0 .. classes-1)."""
    root = tmp / "data"
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(n):
            mask = (np.arange(32)[None, :].repeat(32, 0) * classes // 32).astype(np.uint8)
            img = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
            Image.fromarray(img).save(root / split / "images" / f"{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{i}.png")
    return root


def on_folder(tmp: Path, root: Path, classes: int = 3, *extra: str) -> list[str]:
    return retrain(tmp, "--data", "folder", "--root", str(root), "--num-classes", str(classes),
                   "--set", "data.crop=[32,32]", *extra)


def camvid(tmp: Path) -> Path:
    """A two-image CamVid in the SegNet layout (labels 0-10, 11 = void)."""
    root = tmp / "camvid"
    for split in ("train", "val"):
        for sub in (split, split + "annot"):
            (root / sub).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(root / split / f"{i}.png")
            Image.fromarray(np.full((32, 32), i * 11, np.uint8)).save(root / f"{split}annot" / f"{i}.png")
    return root


# -- genotype JSON files ----------------------------------------------------------------------------------------

@case("genotype-100000-nested-brackets")
def _(tmp):
    return profile(write(tmp / "g.json", "[" * 100_000)), ["g.json", "nested"]


@case("genotype-deep-structure-field")
def _(tmp):
    deep = "[" * 500 + "]" * 500
    text = json.dumps(genotype_dict()).replace('"structure": {', '"structure": {"x": ' + deep + ", ", 1)
    return profile(write(tmp / "g.json", text)), ["g.json", "nested"]


@case("genotype-huge-file")
def _(tmp):
    return profile(write(tmp / "g.json", "{" + " " * (5 * 2**20) + "}")), ["g.json", "MB"]


@case("genotype-truncated-json")
def _(tmp):
    return profile(write(tmp / "g.json", '{"space": "fasterseg"')), ["g.json", "not valid JSON"]


@case("genotype-not-utf8")
def _(tmp):
    return profile(write(tmp / "g.json", b"\xff\xfe{\x00}")), ["g.json", "UTF-8"]


@case("genotype-nan-format-version")
def _(tmp):
    text = json.dumps(genotype_dict()).replace('"format_version": 1', '"format_version": NaN')
    return profile(write(tmp / "g.json", text)), ["g.json", "NaN"]


@case("genotype-1e999-in-space-args")
def _(tmp):
    text = json.dumps(genotype_dict()).replace('"layers": 16', '"layers": 1e999')
    return profile(write(tmp / "g.json", text)), ["g.json", "1e999"]


@case("genotype-infinity-in-choices")
def _(tmp):
    text = json.dumps(genotype_dict()).replace('"choices": [', '"choices": [Infinity, ', 1)
    return profile(write(tmp / "g.json", text)), ["g.json", "Infinity"]


@case("genotype-5000-digit-integer")
def _(tmp):
    text = json.dumps(genotype_dict()).replace('"layers": 16', '"layers": ' + "9" * 5000)
    return profile(write(tmp / "g.json", text)), ["g.json", "digits"]


@case("genotype-26-digit-choice")
def _(tmp):
    d = genotype_dict()
    d["choices"][0] = 99999999999999999999999999
    return profile(write(tmp / "g.json", json.dumps(d))), ["g.json", "choices"]


@case("genotype-top-level-array")
def _(tmp):
    return profile(write(tmp / "g.json", "[1, 2, 3]")), ["g.json", "JSON object"]


@case("genotype-empty-object")
def _(tmp):
    return profile(write(tmp / "g.json", "{}")), ["g.json", "missing field"]


def _field_case(field: str, value, needle: str) -> None:
    @case(f"genotype-field-{field}-{type(value).__name__}")
    def _(tmp):
        d = genotype_dict()
        d[field] = value
        return profile(write(tmp / "g.json", json.dumps(d))), ["g.json", needle]


for _field, _value, _needle in (("space", 5, "'space'"), ("space_version", "1", "'space_version'"),
                                ("space_args", [16], "'space_args'"), ("choices", ["0"], "'choices'"),
                                ("structure", None, "'structure'"), ("name", 7, "'name'"),
                                ("meta", [1], "'meta'"), ("format_version", True, "'format_version'")):
    _field_case(_field, _value, _needle)


@case("genotype-unknown-space")
def _(tmp):
    d = genotype_dict()
    d["space"] = "nas-of-the-future"
    return profile(write(tmp / "g.json", json.dumps(d))), ["g.json", "unknown search space"]


@case("genotype-lone-surrogate-name")
def _(tmp):
    text = json.dumps(genotype_dict()).replace('"name": "fasterseg"', '"name": "\\ud800"')
    return profile(write(tmp / "g.json", text)), ["g.json", "surrogate"]


@case("genotype-archid-edited")
def _(tmp):
    d = zoo.get("fasterseg").to_dict()
    d["archid"] = "0" * 16
    return profile(write(tmp / "g.json", json.dumps(d))), ["g.json", "archid"]


@case("genotype-malformed-structure")
def _(tmp):
    d = genotype_dict()
    d["structure"] = {"branches": "none"}
    return profile(write(tmp / "g.json", json.dumps(d))), ["g.json", "structure"]


@case("genotype-layers-1e9")
def _(tmp):
    d = genotype_dict()
    d["space_args"]["layers"] = 10**9
    return profile(write(tmp / "g.json", json.dumps(d))), ["g.json", "space_args.layers"]


@case("genotype-layers-26-digits")
def _(tmp):
    d = genotype_dict()
    d["space_args"]["layers"] = 99999999999999999999999999
    return profile(write(tmp / "g.json", json.dumps(d))), ["g.json", "space_args.layers"]


@case("genotype-terabyte-autodeeplab")
def _(tmp):
    d = genotype_dict("autodeeplab-s")
    d["space_args"]["filter_multiplier"] = 60_000
    return profile(write(tmp / "g.json", json.dumps(d))), ["autodeeplab-s", "parameters", "space_args"]


@case("genotype-terabyte-dots")
def _(tmp):
    d = genotype_dict("dots-bisenet")
    d["space_args"]["channels"] = 9_000
    return profile(write(tmp / "g.json", json.dumps(d))), ["dots-bisenet", "parameters", "space_args"]


@case("genotype-terabyte-nekrasov")
def _(tmp):
    d = genotype_dict("nekrasov-arch0")
    d["space_args"]["agg_size"] = 65_536
    return profile(write(tmp / "g.json", json.dumps(d))), ["nekrasov-arch0", "parameters", "space_args"]


@case("profile-a-billion-classes")
def _(tmp):
    return ["profile", "fasterseg", "--no-latency", "--input", "32x32", "--num-classes", str(10**9)], ["num_classes"]


@case("paper-encoding-nested")
def _(tmp):
    return ["show", "[" * 100_000, "--png", str(tmp / "out" / "x.png")], ["paper encoding", "nested"]


@case("paper-encoding-1e999")
def _(tmp):
    return ["show", "[[[3, 3], [3, 2], [3, 0]], [8, [0, 0, 5, 2], [0, 2, 8, 8], [0, 5, 1, 1e999]]]",
            "--png", str(tmp / "out" / "x.png")], ["paper encoding", "1e999"]


# -- latency tables ---------------------------------------------------------------------------------------------

def _search_with_lut(tmp: Path, text: str) -> list[str]:
    lut = write(tmp / "lut.json", text)
    return ["search", "fasterseg", "--preset", "tiny", "--quiet", "--lut", str(lut), "--out", str(tmp / "out")]


@case("lut-nested")
def _(tmp):
    return _search_with_lut(tmp, "[" * 100_000), ["lut.json", "nested"]


@case("lut-nan-entry")
def _(tmp):
    return _search_with_lut(tmp, '{"format": 2, "environment": {}, "entries": {"a": NaN}}'), ["lut.json", "NaN"]


@case("lut-not-an-object")
def _(tmp):
    return _search_with_lut(tmp, "[1, 2]"), ["lut.json", "latency table"]


# -- YAML config files ------------------------------------------------------------------------------------------

def _with_config(tmp: Path, text: str | bytes) -> list[str]:
    return retrain(tmp, "--config", str(write(tmp / "c.yaml", text)))


@case("yaml-unclosed-bracket")
def _(tmp):
    return _with_config(tmp, "train:\n  lr: [1, 2\n"), ["c.yaml:", "not valid YAML"]


@case("yaml-tab-indent")
def _(tmp):
    return _with_config(tmp, "train:\n\tlr: 0.1\n"), ["c.yaml:2:1", "tabs"]


@case("yaml-duplicate-key")
def _(tmp):
    return _with_config(tmp, "train:\n  lr: 0.1\n  lr: 0.2\n"), ["c.yaml:3:3", "twice"]


@case("yaml-100000-nested")
def _(tmp):
    return _with_config(tmp, "train: " + "[" * 100_000), ["c.yaml", "nested"]


@case("yaml-unknown-key")
def _(tmp):
    return _with_config(tmp, "train:\n  learning_rate: 0.1\n"), ["train.learning_rate"]


@case("yaml-top-level-list")
def _(tmp):
    return _with_config(tmp, "- 1\n- 2\n"), ["c.yaml", "mapping"]


@case("yaml-huge-file")
def _(tmp):
    return _with_config(tmp, "#" * (5 * 2**20)), ["c.yaml", "MB"]


@case("yaml-not-utf8")
def _(tmp):
    return _with_config(tmp, b"train:\n  lr: \xff\xfe\n"), ["c.yaml", "UTF-8"]


@case("yaml-lr-1e999")
def _(tmp):
    return _with_config(tmp, "train:\n  lr: 1e999\n"), ["train.lr", "finite"]


@case("yaml-python-object-tag")
def _(tmp):
    return _with_config(tmp, "train: !!python/object/apply:os.system ['true']\n"), ["c.yaml:1:8"]


# -- --set values -----------------------------------------------------------------------------------------------

def _set(name: str, *values: str, needle: list[str], command: str = "retrain") -> None:
    @case(f"set-{name}")
    def _(tmp):
        sets = [a for v in values for a in ("--set", v)]
        if command == "search":
            return ["search", "fasterseg", "--preset", "tiny", "--quiet", "--out", str(tmp / "out"), *sets], needle
        return retrain(tmp, *sets), needle


_set("epochs-beyond-int64", "train.epochs=99999999999999999999999", needle=["train.epochs", "64-bit"])
_set("negative-batch", "train.batch_size=-4", needle=["train.batch_size"])
_set("crop-100000", "data.crop=[100000,100000]", needle=["data.crop", "16384"])
_set("crop-beyond-memory", "data.crop=[16000,16000]", "train.batch_size=4096", needle=["data.crop", "GiB"])
_set("lr-inf", "train.lr=.inf", needle=["train.lr", "finite"])
_set("lr-nan", "train.lr=.nan", needle=["train.lr", "finite"])
_set("negative-seed", "seed=-1", needle=["seed"])
_set("no-equals", "train.lr", needle=["KEY=VALUE"])
_set("value-then-section", "train=3", "train.lr=1", needle=["'train'"])
_set("empty-key-part", "train..lr=1", needle=["empty part"])
_set("scale-1e300", "data.scale_range=[1,1e300]", needle=["data.scale_range"])
_set("num-classes-100000", "data.num_classes=100000", needle=["data.num_classes"])
_set("deep-value", "train.lr=" + "[" * 100_000, needle=["train.lr", "nested"])
_set("crop-negative", "data.crop=[-32,32]", needle=["data.crop"])
_set("synthetic-terabyte", "data.synthetic_size=[16384,16384]", "data.synthetic_train=1000",
     needle=["data.synthetic_size", "GiB"])
_set("space-args-layers-1e9", "search.space_args.layers=1000000000", needle=["search.space_args.layers"],
     command="search")
_set("space-args-chis-huge", "search.space_args.chis=[4,100000000]", needle=["search.space_args.chis[1]"],
     command="search")


# -- data folders -----------------------------------------------------------------------------------------------

def _folder_case(name: str, spoil: Callable[[Path], Path], needle: list[str], classes: int = 3) -> None:
    @case(f"folder-{name}")
    def _(tmp):
        root = folder(tmp)
        bad = spoil(root)
        return on_folder(tmp, root, classes), [str(bad), *needle]


_folder_case("corrupt-png-image", lambda r: write(r / "train/images/1.png", b"\x89PNG not really"),
             ["cannot read image"])
_folder_case("empty-png-image", lambda r: write(r / "train/images/2.png", b""), ["cannot read image"])
_folder_case("truncated-mask", lambda r: write(r / "train/masks/1.png", (r / "train/masks/1.png").read_bytes()[:60]),
             ["cannot read"])
_folder_case("corrupt-val-mask", lambda r: write(r / "val/masks/0.png", b"GIF89a junk"), ["cannot read"])


def _save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


_folder_case("mask-size-mismatch", lambda r: _save(r / "train/masks/3.png", np.zeros((20, 20), np.uint8)),
             ["20x20", "32x32"])
_folder_case("label-out-of-range", lambda r: _save(r / "train/masks/2.png", np.full((32, 32), 7, np.uint8)),
             ["7", "num_classes"])
_folder_case("num-classes-too-small", lambda r: r / "train/masks/0.png", ["data.num_classes is 2", "2"], classes=2)
_folder_case("rgb-mask", lambda r: _save(r / "train/masks/0.png", np.zeros((32, 32, 3), np.uint8)), ["RGB"])
_folder_case("16-bit-mask", lambda r: _save(r / "train/masks/1.png", np.full((32, 32), 4000, np.uint16)),
             ["8-bit"])
_folder_case("missing-mask", lambda r: (r / "train/masks/3.png").unlink() or r / "train/images/3.png", ["no mask"])


@case("search-on-folder-with-bad-label")
def _(tmp):
    root = folder(tmp)
    bad = _save(root / "train" / "masks" / "0.png", np.full((32, 32), 3, np.uint8))
    return ["search", "fasterseg", "--preset", "tiny", "--quiet", "--out", str(tmp / "out"), "--data", "folder",
            "--root", str(root), "--num-classes", "3", "--set", "data.crop=[32,32]"], [str(bad), "num_classes"]


@case("folder-empty-images")
def _(tmp):
    root = tmp / "data"
    for sub in ("train/images", "train/masks", "val/images", "val/masks"):
        (root / sub).mkdir(parents=True)
    return on_folder(tmp, root), [str(root / "train" / "images"), "no images"]


@case("folder-missing-root")
def _(tmp):
    return on_folder(tmp, tmp / "nowhere"), [str(tmp / "nowhere")]


@case("camvid-wrong-num-classes")
def _(tmp):
    argv = retrain(tmp, "--data", "camvid", "--root", str(camvid(tmp)), "--num-classes", "5")
    return argv, ["data.num_classes", "11"]


@case("camvid-invalid-label")
def _(tmp):
    root = camvid(tmp)
    bad = _save(root / "trainannot" / "1.png", np.full((32, 32), 40, np.uint8))
    return retrain(tmp, "--data", "camvid", "--root", str(root)), [str(bad), "40"]


# -- the property every case must have --------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` but the run folder ``out``, by content hash."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).parts[0] != "out"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_is_one_clear_line(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a command that writes a default file writes it here, where the snapshot sees it
    argv, needles = CASES[name](tmp_path)
    before = snapshot(tmp_path)
    code = main(argv)
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("segnas: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert snapshot(tmp_path) == before, "the command changed the user's files"
    assert not list((tmp_path / "out").rglob("*.pt")), "a failed command left a checkpoint"


def test_the_corpus_is_large():
    assert len(CASES) >= 40


def test_the_scan_runs_once_per_dataset_and_data_check_false_skips_it(tmp_path, monkeypatch):
    from segnas.config import make_config
    from segnas.data import checks
    from segnas.engine.loaders import make_datasets
    from segnas.errors import DataError

    root = folder(tmp_path)
    cfg = make_config("tiny", overrides=["data.dataset=folder", f"data.root={root}", "data.num_classes=3",
                                         "data.crop=[32,32]"])
    reads, real = [], checks.read_mask

    def counting(path):
        reads.append(path)
        return real(path)

    monkeypatch.setattr(checks, "read_mask", counting)
    make_datasets(cfg.data, 0)
    assert len(reads) == 6  # every train and val mask, once
    make_datasets(cfg.data, 0)
    assert len(reads) == 6  # the same files: not scanned again
    bad = _save(root / "train" / "masks" / "1.png", np.full((32, 32), 9, np.uint8))
    with pytest.raises(DataError, match=str(bad)):
        make_datasets(cfg.data, 0)  # a changed file is scanned again
    cfg.data.check = False
    train, val = make_datasets(cfg.data, 0)  # no scan: the bad mask would surface at its first batch
    assert len(train) == 4 and len(val) == 2
