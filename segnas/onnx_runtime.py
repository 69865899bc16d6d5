"""ONNX serialisation and onnxruntime sessions: the one place segnas calls either.

Used by ``segnas export`` (a file users deploy) and by the ``onnxruntime``
latency backend (profiles and latency tables time what users will run).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .errors import ConfigError


def require_onnxruntime(what: str = "onnxruntime") -> tuple[Any, Any]:
    """The ``onnx`` and ``onnxruntime`` modules, or one line saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:  # an optional dependency: say which and how to get it
        raise ConfigError(f"{what} needs the packages onnx and onnxruntime ({e.name} is missing); "
                          "install them with: pip install onnx onnxruntime (or pip install 'segnas[export]')") from None
    return onnx, onnxruntime


def onnx_bytes(net: nn.Module, inputs: Sequence[torch.Tensor], input_names: Sequence[str],
               output_names: Sequence[str], dynamic_axes: dict[str, dict[int, str]] | None = None,
               opset: int = 17) -> bytes:
    """``net`` (in eval mode) traced on ``inputs`` and serialised as an ONNX model, in memory."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shapes: callers check the sizes they need
        torch.onnx.export(net, tuple(inputs), buf, input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic_axes or {}, opset_version=opset, do_constant_folding=True,
                          dynamo=False)
    return buf.getvalue()


def ort_session(model: bytes, threads: int | None = None, quiet: bool = False) -> Any:
    """A CPU onnxruntime session with ``threads`` intra-op threads (default: torch's), all graph optimisations."""
    _, ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads or torch.get_num_threads()))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if quiet:
        options.log_severity_level = 4  # fatal only: a probe that fails is expected, not an error to print
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
