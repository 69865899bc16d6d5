"""Every tensor of a search step and a retrain step lives on the parameters' device.

No GPU is needed to check it: on the ``meta`` device an operation that meets a
tensor created on the CPU (Gumbel noise, a one-hot width, a latency table)
fails, exactly as it would on a GPU.
"""

import numpy as np
import pytest
import torch
from torch.fx.experimental import _config as fx_config
from torch.overrides import TorchFunctionMode

from segnas import zoo
from segnas.engine.loaders import make_datasets
from segnas.engine.trainer import Trainer
from segnas.methods import get_method
from segnas.spaces import get_space
from segnas.spaces.autodeeplab.search import AutoDeepLabSearch
from segnas.spaces.fasterseg.search import FasterSegSearch
from segnas.strategies.arch_signal import ArchSignal
from segnas.strategies.differentiable import search_step

from test_fasterseg_search import fake_table, fs_cfg

META = torch.device("meta")


_READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__int__, torch.Tensor.__float__,
          torch.Tensor.__index__}


class MetaReadsZero(TorchFunctionMode):
    """Meta tensors have no values: a value read (a width index, a logged loss) gets zeros instead.
    Every other operation still has to find its inputs on the meta device."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _READS and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return getattr(torch.zeros(args[0].shape, dtype=args[0].dtype), func.__name__)()
        return func(*args, **(kwargs or {}))


@pytest.fixture(autouse=True)
def meta_values(monkeypatch):
    # OHEM selects pixels by value; on meta there are no values, so every pixel counts as selected
    monkeypatch.setattr(fx_config, "meta_nonzero_assume_all_nonzero", True)
    with MetaReadsZero():
        yield


def test_meta_catches_a_tensor_made_on_the_cpu():
    with pytest.raises(RuntimeError):
        torch.zeros(3, device=META) + torch.ones(3)


SMALL_FS = {"layers": 3, "ops": ["skip", "conv"], "chis": [1, 2], "stem_chi": 1, "head_chi": 1, "branches": 2}


def _problem(name):
    """Small supernets: on meta every operation goes through Python, whatever the image size."""
    if name == "fasterseg":
        return FasterSegSearch(fs_cfg(SMALL_FS, ohem_min_kept=16), 3, 255, fake_table(SMALL_FS), seed=0, device=META)
    cfg = get_method("autodeeplab").config("tiny", overrides=[
        "search.space_args.layers=3", "search.space_args.blocks=1",
        "search.space_args.ops=[sep_conv_3x3,atrous_conv_3x3,skip_connect,none]"])
    return AutoDeepLabSearch(cfg, 3, 255, device=META)


@pytest.mark.parametrize("name", ["fasterseg", "autodeeplab"])
def test_search_steps_run_on_another_device(name):
    problem = _problem(name)
    opt_w = torch.optim.SGD(problem.weight_parameters(), lr=0.01, momentum=0.9)
    opt_a = torch.optim.Adam(problem.arch_parameters(), lr=3e-4)
    signal = ArchSignal(problem.arch_parameters(), [s.kind for s in problem.arch_specs()])
    batch = (torch.randn(2, 3, 64, 96), torch.randint(0, 3, (2, 64, 96)))  # on the CPU, as loaders give them
    logs = search_step(problem, opt_w, opt_a, batch, [], META, 5.0)  # pretraining
    logs.update(search_step(problem, opt_w, opt_a, batch, [batch, batch], META, 5.0, signal))  # searching
    assert logs and all(v.device == META for v in logs.values())
    assert signal.steps == 1 and all(p.device == META for p in problem.arch_parameters())


@pytest.mark.parametrize("genotype", ["fasterseg", "autodeeplab"])
def test_retrain_step_runs_on_another_device(genotype):
    cfg = get_method(genotype).config("tiny", extra={"data": {"dataset": "synthetic"}})
    train, val = make_datasets(cfg.data, cfg.seed)
    g = zoo.get("fasterseg") if genotype == "fasterseg" else get_method(genotype).sample(np.random.default_rng(0), cfg)
    model = get_space(g.space).build(g, train.num_classes)
    tc = cfg.train
    tc.ema_decay = 0.99
    trainer = Trainer(model, tc, train, val, META, seed=0)
    images, masks = next(iter(torch.utils.data.DataLoader(train, batch_size=2)))
    logs = trainer.train_step(images, masks)
    assert logs["loss"].device == META and trainer.step == 1
    assert all(p.device == META for p in trainer.ema.shadow.parameters())
