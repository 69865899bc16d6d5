"""Executors: results keyed by task, failures as ok=False with one line, never a crash or a 0."""

import os
import subprocess
import sys
import time

import pytest

from segnas.errors import ConfigError
from segnas.executors import KINDS, LocalExecutor, make_executor


# task functions: top level, so spawned workers and Ray import them by name
def square(payload):
    if payload["x"] < 0:
        raise ValueError(f"negative input {payload['x']}\nsecond line")
    import torch

    time.sleep(payload.get("sleep", 0.0))
    return {"y": payload["x"] ** 2, "threads": torch.get_num_threads(), "pid": os.getpid()}


def die(payload):
    if payload.get("die"):
        os._exit(3)  # the worker vanishes, as under the system's out-of-memory killer
    time.sleep(payload.get("sleep", 0.0))
    return {"alive": True}


def not_a_dict(payload):
    return 0.5


def by_key(results):
    out = {r.key: r for r in results}
    assert len(out) == len(results)
    return out


@pytest.fixture(scope="module")
def local():
    with LocalExecutor(2, threads_per_worker=2) as ex:
        yield ex


def test_inline_catches_errors_and_checks_the_value():
    with make_executor("inline") as ex:
        r = by_key(list(ex.map(square, {"a": {"x": 3}, "b": {"x": -1}})))
        bad = next(iter(ex.map(not_a_dict, {0: {}})))
    assert r["a"].ok and r["a"].value["y"] == 9 and r["a"].error == ""
    assert not r["b"].ok and r["b"].value is None and r["b"].error == "ValueError: negative input -1"
    assert "Traceback" in r["b"].traceback
    assert not bad.ok and "expected a dict" in bad.error


def test_local_three_tasks_two_workers(local):
    tasks = {"a": {"x": 2}, "b": {"x": -3}, "c": {"x": 5}}
    r = by_key(list(local.map(square, tasks)))
    assert set(r) == {"a", "b", "c"}
    assert r["a"].ok and r["a"].value["y"] == 4 and r["c"].value["y"] == 25
    assert r["a"].value["threads"] == 2 and r["a"].value["pid"] != os.getpid()
    assert not r["b"].ok and r["b"].value is None and r["b"].error == "ValueError: negative input -3"
    assert all(x.wall_s >= 0 for x in r.values())


def test_local_worker_death_fails_only_its_task(local):
    # both first tasks are lost with the dying worker; each is rerun alone, and the queued one runs after
    r = by_key(list(local.map(die, {"dies": {"die": True}, "slow": {"sleep": 0.3}, "after": {}})))
    assert r["slow"].ok and r["after"].ok and r["slow"].value == {"alive": True}
    assert not r["dies"].ok and r["dies"].value is None and "worker process died" in r["dies"].error


def test_unknown_kind_and_bad_workers():
    with pytest.raises(ConfigError, match="known: inline, local, ray"):
        make_executor("slurm", 2)
    with pytest.raises(ConfigError, match="workers"):
        make_executor("local", 0)
    assert KINDS == ("inline", "local", "ray")


def test_missing_ray_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ConfigError) as e:
        make_executor("ray", 1)
    assert str(e.value) == "--executor ray needs Ray: pip install -e '.[ray]'"


def test_importing_segnas_does_not_import_ray():
    import segnas.strategies.controller
    import segnas.strategies.ppo
    import segnas.strategies.stages  # noqa: F401

    if "ray" not in sys.modules:  # this process imported segnas and the executors already
        return
    code = ("import sys, segnas, segnas.executors, segnas.strategies.controller, segnas.strategies.ppo, "
            "segnas.strategies.stages; assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_ray_runs_trials_on_a_local_ray():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray is already running in this process")
    with make_executor("ray", 2, num_cpus=1) as ex:
        r = by_key(list(ex.map(square, {"a": {"x": 3}, "b": {"x": -2}})))
        assert ray.is_initialized()
    assert not ray.is_initialized()  # it shut down the Ray it started
    assert r["a"].ok and r["a"].value["y"] == 9 and r["a"].value["threads"] == 1
    assert not r["b"].ok and r["b"].error == "ValueError: negative input -2"
