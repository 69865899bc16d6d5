"""Pretrained weights from a file the user gives: one loader, one clear line when the file does not fit.

Nothing is ever downloaded. The file is a plain state dict (``torch.save(module.state_dict(), path)``),
read with ``weights_only=True`` onto the module's device; missing, unexpected and differently shaped
keys are named (the first three of each) before anything is loaded, so a bad file changes nothing.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping

import torch
from torch import nn

from ..errors import CheckpointError


def _listing(keys: list[str], n: int = 3) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_weights(module: nn.Module, path: str | os.PathLike, what: str, hint: str,
                 rename: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None) -> None:
    """Load the state dict file ``path`` into ``module`` (``what`` names it in errors, ``hint`` says what
    fits); ``rename`` maps another naming of the same weights (e.g. torchvision's) first."""
    path = os.fspath(path)
    device = next(module.parameters()).device
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such weights file") from None
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a weights file torch can load ({why}); "
                              "save one with torch.save(module.state_dict(), path)") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict (a mapping of names to tensors); "
                              "save one with torch.save(module.state_dict(), path)")
    if rename is not None:
        state = rename(dict(state))
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shaped = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shaped:
        parts = ([f"missing {_listing(missing)}"] if missing else []) + \
                ([f"unexpected {_listing(unexpected)}"] if unexpected else []) + \
                ([f"other shapes {_listing(shaped)}"] if shaped else [])
        raise CheckpointError(f"{path}: weights do not fit {what}: {'; '.join(parts)}; {hint}")
    module.load_state_dict(state)
