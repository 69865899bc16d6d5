"""Nothing of the user's is overwritten, and a failed write (full disk, short write) loses nothing."""

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import torch

import segnas
from segnas.config import make_config
from segnas.engine import load_checkpoint, retrain
from segnas.errors import OutputError
from segnas.fileio import atomic_write_text
from segnas.genotype import save as save_genotype
from segnas.outputs import claim_file, claim_folder, mark_of

from test_cli import assert_one_line_error, run_cli


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_show_refuses_a_users_png_replaces_its_own_and_force_replaces_any(capsys, tmp_path):
    png = tmp_path / "arch.png"
    png.write_bytes(b"my holiday photo")
    code, _, err = run_cli(capsys, "show", "fasterseg", "--png", str(png))
    assert_one_line_error(code, err, png, "--force")
    assert png.read_bytes() == b"my holiday photo"
    assert run_cli(capsys, "show", "fasterseg", "--png", str(png), "--force")[0] == 0
    assert mark_of(png) == "draw"
    first = png.read_bytes()
    assert run_cli(capsys, "show", "fasterseg", "--png", str(png))[0] == 0  # its own drawing: replaced
    assert png.read_bytes() == first
    code, _, err = run_cli(capsys, "show", "fasterseg", "--png", str(tmp_path))
    assert_one_line_error(code, err, tmp_path, "folder")


def test_a_genotype_name_never_chooses_where_a_file_lands(capsys, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    g = segnas.zoo.get("fasterseg")
    g.name = "../escaped"
    save_genotype(g, tmp_path / "evil.json")
    code, out, err = run_cli(capsys, "show", str(tmp_path / "evil.json"))
    assert code == 0, err
    assert (work / f"{g.archid}.png").is_file() and not (tmp_path / "escaped.png").exists()
    assert sorted(p.name for p in work.iterdir()) == [f"{g.archid}.png"]


def test_latency_build_refuses_folders_and_mixed_flags(capsys, tmp_path):
    base = ("latency", "build", "--space", "fasterseg", "--input", "32x32", "--preset", "tiny", "--quiet")
    code, _, err = run_cli(capsys, *base, "--out", str(tmp_path))
    assert_one_line_error(code, err, tmp_path, "folder")
    mine = tmp_path / "lut.json"
    mine.write_text("my notes\n")
    code, _, err = run_cli(capsys, *base, "--out", str(mine))
    assert_one_line_error(code, err, mine, "--force")
    code, _, err = run_cli(capsys, *base, "--out", str(mine), "--extend", "--force")
    assert_one_line_error(code, err, "--extend", "--force")
    assert mine.read_text() == "my notes\n"


def test_demo_refuses_a_folder_it_did_not_write(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "demo", "--quick", "--out", str(tmp_path))
    assert_one_line_error(code, err, tmp_path, "--force")
    assert snapshot(tmp_path) == {"notes.txt": hashlib.sha256(b"mine").hexdigest()}


def test_claim_folder_marks_first_and_knows_other_commands(tmp_path):
    out = claim_folder(tmp_path / "ev", "evaluate")
    (out / "partial.png").write_bytes(b"x")  # a run stopped half way
    assert claim_folder(out, "evaluate") == out  # still its own
    with pytest.raises(segnas.errors.ConfigError, match="segnas evaluate"):
        claim_folder(out, "report")
    user = tmp_path / "user"
    user.mkdir()
    (user / "a.txt").write_text("a")
    with pytest.raises(segnas.errors.ConfigError, match="--force"):
        claim_folder(user, "evaluate")
    assert claim_folder(user, "evaluate", force=True) == user and (user / "a.txt").read_text() == "a"
    with pytest.raises(segnas.errors.ConfigError, match="not written by this segnas command"):
        claim_file(user / "a.txt", "draw")


# -- full disk and short writes ------------------------------------------------------------------------------

def tiny_cfg():
    cfg = make_config("tiny")
    cfg.train.eval_every = 2
    return cfg


def test_a_short_checkpoint_write_is_one_line_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    """torch.save fails part way with the RuntimeError its zip writer raises (not an OSError): the run stops
    with one line naming the file, the previous checkpoint is intact and --resume ends where an unbroken run does."""
    g = segnas.zoo.get("fasterseg")
    full = retrain(g, tiny_cfg(), tmp_path / "full", progress=False)
    real_save, calls = torch.save, {"n": 0}

    def failing_save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the second evaluation: best.pt then last.pt are written at each
            f.write(b"PK\x03\x04 half a zip")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    run = tmp_path / "part"
    with pytest.raises(OutputError, match="cannot write.*nothing was replaced"):
        retrain(g, tiny_cfg(), run, progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    kept = load_checkpoint(run / "checkpoints" / "last.pt")
    assert kept["step"] == 2 and not [p for p in (run / "checkpoints").iterdir() if p.suffix == ".tmp"]
    resumed = retrain(g, tiny_cfg(), run, resume=True, progress=False)
    a, b = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt"), load_checkpoint(run / "checkpoints" / "last.pt")
    assert resumed["final"]["miou"] == full["final"]["miou"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_failed_json_write_keeps_the_old_file_and_a_failed_log_append_is_one_line(tmp_path, monkeypatch):
    import segnas.fileio as fileio

    target = tmp_path / "out.json"
    target.write_text('{"old": 1}\n')

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", no_space)
    with pytest.raises(OutputError, match="out.json: cannot write .No space left on device"):
        atomic_write_text(target, '{"new": 2}\n')
    assert target.read_text() == '{"old": 1}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    log = tmp_path / "metrics.jsonl"
    log.mkdir()  # an append the file system refuses (here: the name is a folder)
    with pytest.raises(OutputError, match="metrics.jsonl: cannot write"):
        fileio.append_text(log, '{"step": 2}\n')


def test_show_does_not_replace_another_commands_output(capsys, tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"segnas_output": "evaluate", "miou": 0.5}\n')
    code, _, err = run_cli(capsys, "show", "fasterseg", "--png", str(metrics))
    assert_one_line_error(code, err, metrics, "--force")
    assert "evaluate" in metrics.read_text()


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_stops_the_run_and_the_last_checkpoint_stays(tmp_path, capsys):
    """A real full file system (a small tmpfs, where this machine lets the tests mount one)."""
    disk = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    if not _mount_tmpfs(disk, "160m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount); the short-write test covers the writer")
    try:
        g = segnas.zoo.get("fasterseg")
        run = disk / "run"
        retrain(g, tiny_cfg(), run, stop_after=3, progress=False)  # a checkpoint at step 2, then "killed"
        before = (run / "checkpoints" / "last.pt").read_bytes()
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * max(free - 64 * 1024, 0))  # leave less than a checkpoint
        code, _, err = run_cli(capsys, "retrain", "--out", str(run), "--resume", "--quiet")
        assert_one_line_error(code, err, run, "No space left on device" if "No space" in err else "short write")
        assert (run / "checkpoints" / "last.pt").read_bytes() == before
        (disk / "filler").unlink()
        code, out, err = run_cli(capsys, "retrain", "--out", str(run), "--resume", "--quiet")
        assert code == 0, err
        assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 8
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
