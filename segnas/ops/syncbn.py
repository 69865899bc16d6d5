"""BatchNorm with statistics over the global batch of a data-parallel run, on the CPU as on CUDA.

``torch.nn.SyncBatchNorm`` refuses CPU tensors; :class:`SyncBatchNorm2d` works on any device
a process group does. In training, with a process group of several processes, it all-reduces
each channel's sum and count, then its sum of squared deviations (differentiable all-reduces, so
the gradients flow through the global statistics too) and normalises with the global mean and
biased variance, updating the running statistics with the unbiased one as
``nn.BatchNorm2d`` does. Anywhere else (evaluation, a single process) it is ``nn.BatchNorm2d``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def _grouped() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes whose gradient is the sum of the processes' gradients (every rank's loss
    depends on every rank's statistics)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(grad)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training statistics are those of every process's batch together.

    Two passes, as BatchNorm's own kernels: the global mean first, then the global sum of squared
    deviations from it (the one-pass ``E[x^2] - E[x]^2`` loses most digits where a channel's mean is large
    against its spread, as in small late feature maps)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _grouped()):
            return super().forward(x)
        c, xf = x.shape[1], x.float()  # statistics in float32 also for half-precision inputs
        count = torch.full((1,), x.numel() // c, dtype=xf.dtype, device=x.device)
        sums = _AllReduceSum.apply(torch.cat([xf.sum((0, 2, 3)), count]))
        n = float(sums[-1].detach())
        shape = (1, c, 1, 1)
        centred = xf - (sums[:c] / n).view(shape)
        var = _AllReduceSum.apply((centred * centred).sum((0, 2, 3))) / n
        if self.track_running_stats and self.running_mean is not None:
            self._update_running((sums[:c] / n).detach(), var.detach(), n)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        unbiased = var * (n / max(n - 1.0, 1.0))
        self.running_mean.mul_(1.0 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1.0 - factor).add_(unbiased, alpha=factor)


def convert_sync_batchnorm(module: nn.Module) -> int:
    """Make every ``nn.BatchNorm2d`` in ``module`` (affine or not) a :class:`SyncBatchNorm2d`, in place:
    the same parameter and buffer objects, so optimisers built before still hold them. Returns how many."""
    n = 0
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = SyncBatchNorm2d
            n += 1
    return n
