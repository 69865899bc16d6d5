"""kill -9 at chosen points (benchmarks/killpoints.py), continued as a user would, ends where an unbroken run ends.

The long campaign (>= 20 points over every method, searches included) is ``benchmarks/kill_campaign.py``;
this is its fast case: a retrain killed between a checkpoint's write and its rename.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from segnas.cli import main as segnas_main
from segnas.engine import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from kill_campaign import compare  # noqa: E402


def killed_run(point: str, *argv: str) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "killpoints.py"), point, "--", *argv],
                          env=env, capture_output=True, text=True).returncode


def cli(*argv: str) -> None:
    assert segnas_main(list(argv)) == 0


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_retrain_killed_between_a_checkpoint_write_and_its_rename(tmp_path, one_thread):
    common = ["--preset", "tiny", "--quiet", "--threads", "1"]
    cli("retrain", "fasterseg", "--out", str(tmp_path / "ref"), *common)
    run = tmp_path / "run"
    # the second last.pt (step 8) is written to its temporary file, then the process dies before the rename
    assert killed_run("rename@last.pt:2", "retrain", "fasterseg", "--out", str(run), *common) == -9
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4  # the previous one, whole
    assert [p.name for p in (run / "checkpoints").glob(".last.pt.*.tmp")]  # the killed write's leftover
    cli("retrain", "--out", str(run), "--resume", "--quiet", "--threads", "1")
    assert compare(tmp_path / "ref", run, table=False) == []  # leftover removed, every tensor equal
