"""ONNX Runtime as an inference backend: a module that runs an ONNX Runtime session on torch tensors.

Where ONNX Runtime is faster than anything in PyTorch on a CPU (small batches, where its NCHWc
convolutions with fused add and ReLU and its planned memory arena have less per-operator cost than
oneDNN called through ATen: see docs/benchmarks.md), ``optimize_for_inference(model,
backend="onnxruntime")`` returns an :class:`OrtModule`. The model is exported once with
:func:`reszoo.infer.export.export_model` (``torch.onnx.export(dynamo=True)``, a dynamic batch, checked
against eager before it is kept) and cached under ``<reszoo cache>/onnx/``, keyed by a digest of
the weights, the module's structure, the input size and the torch version, so a second process
skips the export (seconds to tens of seconds) and only opens a session (a fraction of a second).

Needs ``pip install 'reszoo[onnx]'`` (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reszoo.errors import InvalidArgumentError
from reszoo.infer.export import export_model
from reszoo.utils.checks import check_int, check_ints, type_error
from reszoo.utils.fileio import cache_dir, tensors_digest

# Bump when what is exported for the same key changes (an exporter option, the folding before it).
FORMAT_VERSION = 1


def missing_dependencies() -> list[str]:
    """The packages of the ``onnx`` extra that are not installed (empty when all are)."""
    return [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]


def onnxruntime() -> Any:
    """The ``onnxruntime`` module, or one clear error naming the extra to install."""
    missing = missing_dependencies()
    if missing:
        raise InvalidArgumentError(
            f"backend='onnxruntime' needs onnx, onnxscript and onnxruntime; not installed: {', '.join(missing)}. "
            "Install them with: pip install 'reszoo[onnx]'."
        )
    return importlib.import_module("onnxruntime")


def cache_key(model: nn.Module, input_size: tuple[int, int, int]) -> str:
    """A digest of what the exported graph depends on: weights, structure, input size, torch version.

    ``repr(model)`` carries each layer's settings (strides, paddings, which block), the config's
    fields carry the rest of a reszoo model's architecture, and the state digest the weights.
    """
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    parts = {
        "format": FORMAT_VERSION,
        "torch": torch.__version__,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "repr": repr(model),
        "config": config.to_dict() if hasattr(config, "to_dict") else None,
        "input_size": list(input_size),
        "state": tensors_digest(model.state_dict()),
    }
    h.update(json.dumps(parts, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


class OrtModule(nn.Module):
    """Runs an ONNX Runtime session like a module: torch tensors in, torch tensors out.

    Inputs are ``(N, C, H, W)`` float tensors on the CPU with the exported ``(C, H, W)`` and any
    batch size; another float dtype is cast to fp32 (what the graph takes), any layout is made
    contiguous. Autograd does not pass through it.

    Attributes:
        session: the ``onnxruntime.InferenceSession``.
        input_size: the ``(C, H, W)`` it takes.
        path: the cached ONNX file, or ``None`` when made with ``cache=False``.
        export_seconds: time spent exporting and checking (0.0 when the cached file was used).
        from_cache: whether the cached file was used.
    """

    def __init__(
        self, session: Any, *, input_size: tuple[int, int, int], path: Path | None, export_seconds: float
    ) -> None:
        super().__init__()
        self.session = session
        self.input_size = tuple(input_size)
        self.path = path
        self.export_seconds = export_seconds
        self.from_cache = export_seconds == 0.0
        self._input_name = session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> Any:
        if not isinstance(x, torch.Tensor):
            raise type_error("input", x, "a torch.Tensor (N, C, H, W)")
        if x.device.type != "cpu":
            raise InvalidArgumentError(
                f"the onnxruntime backend runs on the CPU; received an input on {x.device}. Move it with .cpu()."
            )
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_size or x.shape[0] < 1:
            c, h, w = self.input_size
            raise InvalidArgumentError(
                f"input must have shape (N, {c}, {h}, {w}) with N >= 1 (the size the model was exported for); "
                f"received shape {tuple(x.shape)}. Pass input_size=(C, H, W) to optimize_for_inference for "
                "another size."
            )
        if not x.is_floating_point():
            raise InvalidArgumentError(f"input must be a float tensor; received dtype {x.dtype}.")
        array = x.detach().to(torch.float32).contiguous().numpy()
        outputs = [torch.from_numpy(o) for o in self.session.run(None, {self._input_name: array})]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, path={self.path}"


def make_session(path: str | os.PathLike[str], *, threads: int) -> Any:
    """An ONNX Runtime CPU session with every graph optimisation and ``threads`` intra-op threads."""
    ort = onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # a ResNet is a chain: nothing to run side by side
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def ort_module(
    model: nn.Module, *, input_size: tuple[int, int, int], threads: int | None = None, cache: bool = True
) -> OrtModule:
    """``model`` (fp32, eval, on the CPU) exported to ONNX and opened in ONNX Runtime.

    Args:
        model: the module to export, already prepared (eval mode, BatchNorm folded or not).
        input_size: ``(C, H, W)`` of its inputs.
        threads: ONNX Runtime's intra-op threads; default ``torch.get_num_threads()``, so both
            runtimes use the same share of the machine.
        cache: keep the exported file under ``<reszoo cache>/onnx/`` and reuse it.

    Raises:
        InvalidArgumentError: onnx/onnxruntime missing, or a bad argument.
        ExportCheckError: the exported file does not compute what the model computes.
    """
    onnxruntime()  # the optional dependencies before any work
    size = check_ints("input_size", input_size, length=3, minimum=1)
    threads = check_int("threads", threads, minimum=1, optional=True) or torch.get_num_threads()
    if not cache:
        with tempfile.TemporaryDirectory(prefix="reszoo-onnx-") as tmp:
            start = time.perf_counter()
            path = _export(model, Path(tmp) / "model.onnx", size)
            seconds = time.perf_counter() - start
            session = make_session(path, threads=threads)  # reads the whole file: it may go
        return OrtModule(session, input_size=size, path=None, export_seconds=seconds)
    path = cache_dir() / "onnx" / f"{cache_key(model, size)}.onnx"
    seconds = 0.0
    if not path.is_file():
        start = time.perf_counter()
        _export(model, path, size)
        seconds = time.perf_counter() - start
    return OrtModule(make_session(path, threads=threads), input_size=size, path=path, export_seconds=seconds)


def _export(model: nn.Module, path: Path, input_size: tuple[int, int, int]) -> Path:
    export_model(model, path, format="onnx", dynamic_batch=True, input_size=input_size, batch_size=2)
    return path
