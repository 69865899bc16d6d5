import pytest

import segnas.config_io
from segnas.config import anchored, from_dict, make_config, to_dict
from segnas.engine.session import resumed_config
from segnas.errors import ConfigError
from segnas.methods import get_method


def test_layers_merge_in_order(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 1e-3\n  epochs: 3\n")
    cfg = make_config("tiny", f, ["train.epochs=5"], {"data": {"dataset": "camvid"}})
    assert cfg.train.lr == pytest.approx(1e-3) and cfg.train.epochs == 5 and cfg.data.dataset == "camvid"
    assert cfg.train.batch_size == 4  # from the tiny preset
    assert from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize("override, key", [
    ("train.lrr=1", "train.lrr"), ("train.epochs=abc", "train.epochs"), ("train.batch_size=0", "train.batch_size"),
    ("train.loss=foo", "train.loss"), ("train.ema_decay=1.5", "train.ema_decay"), ("train.lr=-1", "train.lr"),
    ("data.crop=[0,5]", "data.crop"), ("data.scale_range=[2,1]", "data.scale_range"), ("threads=0", "threads"),
    ("train.hflip=yes", "train.hflip"), ("data.hflip=3", "data.hflip"), ("train", "KEY=VALUE"),
    ("train.drop_path=1", "train.drop_path"), ("train.drop_path=-0.1", "train.drop_path"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("[", r"\[")):
        make_config("tiny", overrides=[override])


def test_unknown_preset_and_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="huge"):
        make_config("huge")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2")
    with pytest.raises(ConfigError, match="bad.yaml"):
        make_config("tiny", bad)


def test_anchored_makes_file_paths_absolute_against_the_starting_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fasterseg = get_method("fasterseg")
    cfg = fasterseg.config("tiny", overrides=["data.root=data/camvid", "train.distill_teacher=runs/t",
                                              "fasterseg.lut=~/lut.json"])
    out = anchored(cfg)
    assert out.data.root == str(tmp_path / "data/camvid")
    assert out.train.distill_teacher == str(tmp_path / "runs/t")
    lut = out.fasterseg.lut  # a section's path field (its PATHS)
    assert lut.startswith("/") and lut.endswith("/lut.json") and "~" not in lut
    assert cfg.data.root == "data/camvid" and cfg.fasterseg.lut == "~/lut.json"  # the caller's config is left as it was
    assert anchored(make_config("tiny")).train.distill_teacher is None
    assert anchored(fasterseg.config("tiny", overrides=["fasterseg.lut=''"])).fasterseg.lut is None


def test_anchored_pins_the_default_camvid_root(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGNAS_CAMVID", str(tmp_path / "mine"))
    out = anchored(make_config("tiny", overrides=["data.dataset=camvid"]))
    assert out.data.root == str(tmp_path / "mine")
    monkeypatch.delenv("SEGNAS_CAMVID")
    assert anchored(make_config("tiny", overrides=["data.dataset=camvid"])).data.root.endswith("shared/data/camvid")
    assert anchored(make_config("tiny")).data.root is None  # synthetic scenes have no folder


def test_resuming_a_config_saved_before_an_option_existed_keeps_its_behaviour(monkeypatch):
    import segnas.config_io

    # an option whose default changed after older runs were saved: those runs resume as they ran
    monkeypatch.setattr(segnas.config_io, "LATER_OPTIONS", {("search", "arch_batches"): 3})
    saved = to_dict(make_config("tiny"))
    saved["search"]["arch_batches"] = 2
    assert resumed_config({"config": saved}, None).search.arch_batches == 2  # what the run was saved with
    del saved["search"]["arch_batches"]
    assert resumed_config({"config": saved}, None).search.arch_batches == 3
    assert from_dict(to_dict(make_config("tiny"))).search.arch_batches == 1  # configs are not rewritten otherwise
    assert segnas.config_io.as_saved({"seed": 3}) == {"seed": 3}  # no section, nothing to fill


def test_configs_saved_before_drop_path_and_down_transition_resume_as_they_ran():
    adl = get_method("autodeeplab")
    sections = adl.sections("differentiable")
    cfg = adl.config("cpu", overrides=["train.drop_path=0.2"])
    assert cfg.autodeeplab.down_transition == "released" and cfg.train.drop_path == 0.2
    saved = to_dict(cfg)
    again = resumed_config({"config": saved}, None, sections=sections)
    assert again.autodeeplab.down_transition == "released" and again.train.drop_path == 0.2
    del saved["autodeeplab"]["down_transition"], saved["train"]["drop_path"]  # written before the options existed
    old = resumed_config({"config": saved}, None, sections=sections)
    assert old.autodeeplab.down_transition == "conv3x3" and old.train.drop_path == 0.0
    filled = segnas.config_io.as_saved(saved, ["autodeeplab"])  # written out, should a default change later
    assert filled["autodeeplab"]["down_transition"] == "conv3x3" and filled["train"]["drop_path"] == 0.0
