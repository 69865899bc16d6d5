import json
import subprocess
import sys

import numpy as np
from PIL import Image

from segnas.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("segnas: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


def test_zoo_list_and_show(capsys):
    code, out, _ = run_cli(capsys, "zoo", "list")
    assert code == 0 and "fasterseg" in out
    code, out, _ = run_cli(capsys, "zoo", "show", "fasterseg")
    assert code == 0 and "zoomed_conv_2x" in out and "f0dae1394a391a1c" in out


def test_profile_json(capsys):
    code, out, _ = run_cli(capsys, "profile", "fasterseg", "--input", "64x96", "--rounds", "2", "--json")
    result = json.loads(out)
    assert code == 0 and result["params"] == 3_421_875 and result["backends"]["eager"]["latency_ms"] > 0


def test_show_draws_a_png(capsys, tmp_path):
    png = tmp_path / "arch.png"
    code, out, _ = run_cli(capsys, "show", "fasterseg", "--png", str(png))
    assert code == 0 and "branch 1" in out
    assert Image.open(png).size[0] > 300


def test_retrain_evaluate_on_folder_data(capsys, tmp_path, folder_dataset):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "retrain", "fasterseg", "--data", "folder", "--root", str(folder_dataset),
                             "--num-classes", "3", "--preset", "tiny", "--out", str(run), "--quiet",
                             "--set", "data.crop=[32,32]")
    assert code == 0, err
    assert "best val mIoU" in out
    code, out, err = run_cli(capsys, "evaluate", str(run), "--data", "folder", "--root", str(folder_dataset),
                             "--num-classes", "3", "--save-predictions", "2")
    assert code == 0, err
    assert "mIoU" in out and len(list((run / "eval_val" / "predictions").glob("*.png"))) == 2
    code, _, err = run_cli(capsys, "evaluate", str(run), "--save-predictions", "1")  # its own folder: replaced
    assert code == 0, err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.json").write_text("{}")
    code, _, err = run_cli(capsys, "evaluate", str(run), "--out", str(mine))
    assert_one_line_error(code, err, mine, "--force")
    assert [p.name for p in mine.iterdir()] == ["metrics.json"] and (mine / "metrics.json").read_text() == "{}"
    # the same checkpoint on data with another class count
    code, _, err = run_cli(capsys, "evaluate", str(run), "--data", "synthetic")
    assert_one_line_error(code, err, "classes")


def _retrain(capsys, tmp_path, root, *extra):
    return run_cli(capsys, "retrain", "fasterseg", "--data", "folder", "--root", str(root), "--num-classes", "3",
                   "--preset", "tiny", "--out", str(tmp_path / "r"), "--quiet", "--set", "data.crop=[32,32]", *extra)


def test_missing_folder(capsys, tmp_path):
    code, _, err = _retrain(capsys, tmp_path, tmp_path / "nowhere")
    assert_one_line_error(code, err, tmp_path / "nowhere")


def test_image_mask_size_mismatch(capsys, tmp_path, folder_dataset):
    bad = folder_dataset / "train" / "masks" / "3.png"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(bad)
    code, _, err = _retrain(capsys, tmp_path, folder_dataset)
    assert_one_line_error(code, err, bad)
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_label_out_of_range(capsys, tmp_path, folder_dataset):
    bad = folder_dataset / "train" / "masks" / "2.png"
    Image.fromarray(np.full((32, 32), 7, np.uint8)).save(bad)
    code, _, err = _retrain(capsys, tmp_path, folder_dataset)
    assert_one_line_error(code, err, bad, "7")


def test_corrupt_image(capsys, tmp_path, folder_dataset):
    bad = folder_dataset / "train" / "images" / "1.png"
    bad.write_bytes(b"\x89PNG not really")
    code, _, err = _retrain(capsys, tmp_path, folder_dataset)
    assert_one_line_error(code, err, bad)


def test_wrong_class_count(capsys, tmp_path, folder_dataset):
    code, _, err = run_cli(capsys, "retrain", "fasterseg", "--data", "synthetic", "--num-classes", "19",
                           "--preset", "tiny", "--out", str(tmp_path / "r"), "--quiet")
    assert_one_line_error(code, err, "19")


def test_malformed_genotype_and_unknown_names(capsys, tmp_path):
    bad = tmp_path / "g.json"
    bad.write_text('{"space": "fasterseg"')
    code, _, err = run_cli(capsys, "profile", str(bad))
    assert_one_line_error(code, err, bad)
    code, _, err = run_cli(capsys, "show", "no-such-arch")
    assert_one_line_error(code, err, "no-such-arch")
    code, _, err = run_cli(capsys, "retrain", "fasterseg", "--preset", "huge", "--out", str(tmp_path / "x"))
    assert_one_line_error(code, err, "huge")


def test_existing_run_is_not_overwritten(capsys, tmp_path, folder_dataset):
    assert _retrain(capsys, tmp_path, folder_dataset)[0] == 0
    before = (tmp_path / "r" / "checkpoints" / "last.pt").read_bytes()
    code, _, err = _retrain(capsys, tmp_path, folder_dataset)
    assert_one_line_error(code, err, "--resume")
    assert (tmp_path / "r" / "checkpoints" / "last.pt").read_bytes() == before


def test_console_entry_point_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "segnas", "profile", str(tmp_path / "missing.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "missing.json" in proc.stderr


def test_demo_quick(capsys, tmp_path):
    code, out, err = run_cli(capsys, "demo", "--quick", "--out", str(tmp_path / "demo"))
    assert code == 0, err
    assert "planted-context" in out and (tmp_path / "demo" / "student" / "checkpoints" / "best.pt").is_file()
    assert "fastest of 3 interleaved rounds" in out
    table = {line[:18].strip(): line[18:].split() for line in out.splitlines()}
    for label in ("searched student", "random student 1", "zoo FasterSeg", "hand-designed"):
        miou, planted, params, gmacs, latency, est = table[label]
        assert 0 <= float(miou) <= 100 and float(params) > 0 and float(latency) > 0
        assert (est == "-") == (label == "zoo FasterSeg")
        assert planted in ("yes", "no")
    assert table["zoo FasterSeg"][1] == "yes" and table["hand-designed"][1] == "yes"  # both end a branch at 1/32
    assert "vs median of 1 random students" in out
    assert (tmp_path / "demo" / "search" / "student.json").is_file()
    report = tmp_path / "demo" / "report.html"
    assert report.is_file() and out.strip().splitlines()[-1].startswith(f"report: {report}")
    assert report.read_text().count("<img src=\"data:image/png;base64,") >= 3


def test_demo_hand_designed_network_fits_the_planted_search_and_its_table():
    """The full demo's settings (one branch): the hand-designed network must be estimable from the search's table."""
    from segnas import planted
    from segnas.demo import hand_designed
    from segnas.methods import get_method
    from segnas.methods.fasterseg import table_keys
    from segnas.objectives import LatencyTable, latency_environment
    from segnas.spaces import get_space

    method = get_method("fasterseg")
    cfg = method.config("cpu", overrides=planted.search_overrides(method))
    keys, _ = table_keys(cfg, 3, cfg.fasterseg.deploy_size)
    table = LatencyTable(latency_environment("cpu"), {k.id: float(i % 7 + 1) for i, k in enumerate(keys)})
    args = get_space("fasterseg").resolve_args(cfg.search.space_args)
    g = hand_designed(args, table, 3, 20.0, tuple(cfg.fasterseg.deploy_size))
    assert len(g.structure["branches"]) == args["branches"] == 1
    assert g.structure["branches"][0]["cells"][-1]["scale"] == 32 and method.has_planted(planted.DATASET, g)


def test_resume_refuses_config_changes_but_allows_threads(capsys, tmp_path, folder_dataset):
    assert _retrain(capsys, tmp_path, folder_dataset)[0] == 0
    code, _, err = run_cli(capsys, "retrain", "--out", str(tmp_path / "r"), "--resume", "--set", "train.lr=1")
    assert_one_line_error(code, err, "--set")
    code, out, err = run_cli(capsys, "retrain", "--out", str(tmp_path / "r"), "--resume", "--threads", "1",
                             "--quiet")
    assert code == 0 and "already complete" in out, err


def test_show_does_not_overwrite_an_existing_default_png(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    png = tmp_path / "f0dae1394a391a1c.png"  # the default name is the genotype's archid
    png.write_bytes(b"mine")
    code, _, err = run_cli(capsys, "show", "fasterseg")
    assert_one_line_error(code, err, png.name, "--force")
    assert png.read_bytes() == b"mine"


def test_latency_build_search_and_stale_table(capsys, tmp_path):
    lut = tmp_path / "lut.json"
    code, out, err = run_cli(capsys, "latency", "build", "--space", "fasterseg", "--input", "64x64",
                             "--preset", "tiny", "--repeats", "1", "--quiet", "--out", str(lut))
    assert code == 0, err
    data = json.loads(lut.read_text())
    assert data["environment"]["threads"] >= 1 and len(data["entries"]) > 100
    assert any(k.startswith("zoomed_conv_2x|8x8|") for k in data["entries"])
    # calibrated against whole networks timed here: the estimates are in measured milliseconds
    assert data["calibration"]["networks"] == 6 and data["calibration"]["factor"] > 0
    assert "calibrated on 6 whole networks" in out
    code, out, err = run_cli(capsys, "latency", "build", "--space", "fasterseg", "--input", "64x64",
                             "--preset", "tiny", "--out", str(lut))
    assert_one_line_error(code, err, str(lut), "--extend")
    code, out, err = run_cli(capsys, "search", "fasterseg", "--preset", "tiny", "--quiet", "--lut", str(lut),
                             "--deploy-size", "64x64", "--out", str(tmp_path / "s"))
    assert code == 0, err
    assert "student:" in out and "teacher:" in out and (tmp_path / "s" / "student.json").is_file()
    # a table for another deployment size misses entries: one clear line, nothing written
    code, out, err = run_cli(capsys, "search", "fasterseg", "--preset", "tiny", "--quiet", "--lut", str(lut),
                             "--deploy-size", "32x32", "--out", str(tmp_path / "s2"))
    assert_one_line_error(code, err, "lacks", "segnas latency build")
    assert not (tmp_path / "s2" / "checkpoints").exists()
    # a table from another machine (here: another thread count) is refused
    data["environment"]["threads"] = 97
    lut.write_text(json.dumps(data))
    code, out, err = run_cli(capsys, "search", "fasterseg", "--preset", "tiny", "--quiet", "--lut", str(lut),
                             "--deploy-size", "64x64", "--out", str(tmp_path / "s3"))
    assert_one_line_error(code, err, "threads=97", "segnas latency build")
    code, out, err = run_cli(capsys, "search", "fasterseg", "--out", str(tmp_path / "s"), "--resume",
                             "--set", "search.epochs=5")
    assert_one_line_error(code, err, "--resume", "--set")


def test_autodeeplab_search_cli_errors_are_one_line(capsys, tmp_path):
    code, out, err = run_cli(capsys, "search", "autodeeplab", "--preset", "tiny", "--quiet", "--deploy-size",
                             "64x64", "--out", str(tmp_path / "a"))
    assert_one_line_error(code, err, "--deploy-size", "no latency objective")
    code, out, err = run_cli(capsys, "search", "autodeeplab", "--preset", "tiny", "--quiet",
                             "--set", "search.space_args.ops=[none]", "--out", str(tmp_path / "b"))
    assert_one_line_error(code, err, "search.space_args", "ops")
    assert not (tmp_path / "b").exists()  # refused before the run folder is made
    code, out, err = run_cli(capsys, "search", "fasterseg", "--preset", "tiny", "--quiet",
                             "--set", "autodeeplab.genotype_args.filter_multiplier=4", "--out", str(tmp_path / "c"))
    # another method's section is refused, with the keys this method does take
    assert_one_line_error(code, err, "'autodeeplab.genotype_args.filter_multiplier' is unknown", "search, ", "fasterseg")
    code, out, err = run_cli(capsys, "search", "autodeeplab", "--preset", "tiny", "--quiet",
                             "--set", "search.lut=t.json", "--out", str(tmp_path / "c"))
    assert_one_line_error(code, err, "'search.lut' is unknown", "'fasterseg.lut'")
    assert not (tmp_path / "c").exists()
    code, out, err = run_cli(capsys, "zoo", "show", "autodeeplab-s")
    assert code == 0 and "atrous_conv_5x5(h(l-2))" in out
