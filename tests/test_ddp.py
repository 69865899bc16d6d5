"""Data-parallel runs: two CPU processes (gloo) against one process with the same global batch.

Tolerance: with ``sync_bn`` on, cross-entropy over images without ignored pixels and no random draws
per image, two processes compute the single process's arithmetic up to the order of float additions
(the averaged gradients, BatchNorm's sums). Over the few steps here that leaves differences near
1e-6, so the weights must agree within 1e-4 (max abs) and the decoded genotype exactly; between the
two processes the state must be bitwise the same.
"""

import json
from datetime import timedelta
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import segnas
from segnas.config import make_config
from segnas.engine import load_checkpoint, retrain
from segnas.engine.loaders import eval_loader, train_loader
from segnas.errors import ConfigError
from segnas.methods import get_method
from segnas.ops.syncbn import convert_sync_batchnorm

dist = pytest.importorskip("torch.distributed")
if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

TOL = 1e-4  # the search's state (weights and architecture) against one process
RETRAIN_TOL = 1e-3  # the retrain's weights after one step: 2.5e-4 measured, as far as a single process moves
# when its initial weights change by 1e-7 relative (one float32 rounding), so rounding, not the split
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(fn, *args) -> None:
    """Run ``fn(rank, *args)`` in two processes that are what torchrun starts (its environment variables)."""
    port = _free_port()
    torch.multiprocessing.spawn(_entry, args=(port, fn, args), nprocs=2, join=True)


def _entry(rank, port, fn, args):
    os.environ.update({"WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"})
    torch.set_num_threads(1)
    fn(rank, *args)


# -- sharding and SyncBatchNorm: units inside one process group ----------------------------------
class _Items(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def set_epoch(self, epoch):
        pass

    def __getitem__(self, i):
        return torch.tensor(i), torch.tensor(i)


def _bn_case(affine):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, 5, 5, generator=g) * 2 + 1
    w = torch.randn(4, 3, 5, 5, generator=g)  # a loss weighting every output differently
    bn = nn.BatchNorm2d(3, affine=affine, momentum=0.3)
    if affine:
        with torch.no_grad():
            bn.weight.copy_(torch.rand(3, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(3, generator=g))
    return x, w, bn


def _units(rank, out):
    got = {"train": [b[0].tolist() for b in train_loader(_Items(24), 6, 7, 2, start_batch=1)],
           "eval": [b[0].tolist() for b in eval_loader(_Items(7))]}
    try:
        train_loader(_Items(24), 5, 7, 0)
    except ConfigError as e:
        got["error"] = str(e)
    for affine in (True, False):
        x, w, bn = _bn_case(affine)
        convert_sync_batchnorm(bn)
        mine = x[2 * rank:2 * rank + 2].clone().requires_grad_(True)
        y = bn(mine)
        (y * w[2 * rank:2 * rank + 2]).sum().backward()
        got[f"bn{affine}"] = {"y": y.detach(), "dx": mine.grad, "mean": bn.running_mean.clone(),
                              "var": bn.running_var.clone(),
                              **({"dw": bn.weight.grad, "db": bn.bias.grad} if affine else {})}
    torch.save(got, out / f"units{rank}.pt")


def _worker(rank, out):
    """Everything the tests below check, in one pair of processes (starting them costs seconds)."""
    from segnas.strategies import run_differentiable

    dist.init_process_group("gloo", timeout=timedelta(seconds=120))  # the runs below use it (under torchrun, RunSession starts its own)
    try:
        _units(rank, out)
        _dump_saves(rank, out)
        retrain(segnas.zoo.get("fasterseg"), _retrain_cfg(), out / "retrain", progress=False)
        run_differentiable(get_method("autodeeplab"), _search_cfg(), out / "search", progress=False)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    _spawn(_worker, out)
    return out


def test_shards_make_up_the_single_process_batches_and_sync_bn_is_bn_of_the_whole_batch(ddp):
    tmp_path = ddp
    r0, r1 = (torch.load(tmp_path / f"units{r}.pt") for r in (0, 1))
    single = [b[0].tolist() for b in train_loader(_Items(24), 6, 7, 2, start_batch=1)]
    assert len(r0["train"]) == len(r1["train"]) == len(single) == 3
    for a, b, whole in zip(r0["train"], r1["train"], single):
        assert len(a) == len(b) == 3 and not set(a) & set(b) and a + b == whole  # contiguous halves, in order
    assert sorted(sum(r0["eval"], []) + sum(r1["eval"], [])) == list(range(7))  # every val image once
    assert "the batch size 5" in r0["error"] and "multiple of 2" in r0["error"]
    for affine in (True, False):
        x, w, bn = _bn_case(affine)
        x.requires_grad_(True)
        y = bn(x)
        (y * w).sum().backward()
        a, b = r0[f"bn{affine}"], r1[f"bn{affine}"]
        assert torch.allclose(torch.cat([a["y"], b["y"]]), y, atol=1e-5)
        assert torch.allclose(torch.cat([a["dx"], b["dx"]]), x.grad, atol=1e-5)
        for stat, ref in (("mean", bn.running_mean), ("var", bn.running_var)):
            assert torch.allclose(a[stat], ref, atol=1e-6) and torch.equal(a[stat], b[stat])
        if affine:  # each process holds the gradient of its share; their sum is the whole batch's
            assert torch.allclose(a["dw"] + b["dw"], bn.weight.grad, atol=1e-5)
            assert torch.allclose(a["db"] + b["db"], bn.bias.grad, atol=1e-5)


# -- whole runs: two processes against one ---------------------------------------------------------
def _dump_saves(rank, out):
    """Keep every rank's checkpoint payloads (rank 1 writes none into the run folder)."""
    from segnas.engine.session import RunSession

    original = RunSession.save

    def save(self, payload, name="last.pt"):
        folder = out / "saves" / self.run.name
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(payload, folder / f"rank{rank}_{len(list(folder.glob(f'rank{rank}_*'))):02d}_{name}")
        return original(self, payload, name)

    RunSession.save = save


def _retrain_cfg():
    # one step of 128x128 images: this network amplifies float rounding (BatchNorm over its last, tiny maps),
    # so over more steps, or at 64x64, a single process nudged by one rounding (1e-7 relative) moves as far
    cfg = make_config("tiny", overrides=["train.loss=ce", "train.sync_bn=true", "data.scale_range=[1,1]",
                                         "data.synthetic_size=[128,128]", "data.crop=[128,128]",
                                         "data.synthetic_train=4", "data.synthetic_val=4", "data.max_val_images=4",
                                         "train.epochs=1", "train.eval_every=1"])
    cfg.data.dataset = "synthetic"
    return cfg


SEARCH = ["search.space_args.layers=3", "search.space_args.blocks=1",
          "search.space_args.ops=[sep_conv_3x3,skip_connect,none]", "search.sync_bn=true", "data.scale_range=[1,1]",
          "search.select_images=2", "search.pretrain_epochs=0"]  # two architecture steps


def _search_cfg():
    return get_method("autodeeplab").config("tiny", overrides=SEARCH, extra={"data": {"dataset": "synthetic"}})


def _tensors(obj):
    from segnas.engine.distributed import named_tensors
    return dict(named_tensors(obj))


def _ranks_agree_bitwise(folder):
    names = sorted(p.name[len("rank0_"):] for p in folder.glob("rank0_*"))
    assert names and names == sorted(p.name[len("rank1_"):] for p in folder.glob("rank1_*"))
    for name in names:
        a, b = (_tensors({k: v for k, v in torch.load(folder / f"rank{r}_{name}").items() if k != "torch_rng"})
                for r in (0, 1))
        assert a.keys() == b.keys()
        for key, t in a.items():
            assert torch.equal(t, b[key]), (name, key)


def _max_diff(a, b):
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    return max(float((x.double() - tb[k].double()).abs().max()) for k, x in ta.items() if x.is_floating_point())


def test_retrain_on_two_processes_matches_one_process(ddp, tmp_path):
    _ranks_agree_bitwise(ddp / "saves" / "retrain")
    one = retrain(segnas.zoo.get("fasterseg"), _retrain_cfg(), tmp_path / "one", progress=False)
    two = json.loads((ddp / "retrain" / "result.json").read_text())
    env = json.loads((ddp / "retrain" / "env.json").read_text())
    assert (two["world_size"], two["backend"], env["world_size"], env["backend"]) == (2, "gloo", 2, "gloo")
    assert (one["world_size"], one["backend"]) == (1, None)
    a, b = load_checkpoint(ddp / "retrain/checkpoints/last.pt"), load_checkpoint(tmp_path / "one/checkpoints/last.pt")
    assert a["step"] == b["step"] == one["steps"] == 1
    assert _max_diff(a["model"], b["model"]) < RETRAIN_TOL
    assert two["final"]["miou"] == pytest.approx(one["final"]["miou"], abs=1e-3)


def test_search_on_two_processes_matches_one_process(ddp, tmp_path):
    from segnas.strategies import run_differentiable

    _ranks_agree_bitwise(ddp / "saves" / "search")
    run_differentiable(get_method("autodeeplab"), _search_cfg(), tmp_path / "one", progress=False)
    a = load_checkpoint(ddp / "search/checkpoints/last.pt", ("search",))
    b = load_checkpoint(tmp_path / "one/checkpoints/last.pt", ("search",))
    assert a["step"] == b["step"] > 0
    assert _max_diff(a["search"], b["search"]) < TOL
    assert segnas.load(ddp / "search/genotype.json").archid == segnas.load(tmp_path / "one/genotype.json").archid
    assert json.loads((ddp / "search/result.json").read_text())["world_size"] == 2
    files = [{str(f.relative_to(d)) for f in d.rglob("*") if f.is_file() and "tb" not in f.parts}
             for d in (ddp / "search", tmp_path / "one")]
    assert files[0] == files[1]  # the run folder of one process: nothing more, nothing less


def test_torchrun_resumes_a_single_process_run_on_two_processes(tmp_path):
    out = tmp_path / "run"
    cfg = make_config("tiny", overrides=["train.sync_bn=true", "train.epochs=1", "train.eval_every=2"])
    cfg.data.dataset = "synthetic"
    part = retrain(segnas.zoo.get("fasterseg"), cfg, out, stop_after=3, progress=False)
    assert part["interrupted"] and load_checkpoint(out / "checkpoints/last.pt")["step"] == 2
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1", "--rdzv-backend=c10d",
           f"--rdzv-endpoint=127.0.0.1:{_free_port()}", "-m", "segnas", "retrain", "--out", str(out), "--resume",
           "--preset", "tiny", "--quiet"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert (result["world_size"], result["steps"]) == (2, 4)  # the global batch, and so the steps, unchanged
    assert load_checkpoint(out / "checkpoints/last.pt")["step"] == 4


def test_a_device_that_is_not_here_is_one_line_naming_what_to_use(monkeypatch):
    from segnas.engine.session import resolve_device

    for name, why in (("mps", "no MPS device here"), ("xpu", "no XPU device here"),
                      ("meta", "does not run on meta devices"), ("gpu0", "is not a torch device")):
        with pytest.raises(ConfigError, match=why) as err:
            resolve_device(name)
        assert "\n" not in str(err.value) and "--device cpu" in str(err.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match=r"'cuda:7': there are only 2 cuda devices here \(cuda:0..cuda:1\); "
                                          r"use --device cpu or --device cuda \(or cuda:0..cuda:1\)"):
        resolve_device("cuda:7")
