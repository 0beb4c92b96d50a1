"""Export with proof: ONNX, torch.export (``.pt2``) or TorchScript, checked against eager before it lands.

:func:`export_model` writes the artefact into a hidden folder beside ``out``, loads it back the way
a deployment would (ONNX Runtime, ``torch.export.load``, ``torch.jit.load``), runs it on a seeded
random batch and compares it with the eager model. Only a file that passes is moved to ``out``
(one rename: readers never see half a file), so a failed export leaves ``out`` as it was.

- ``onnx``: ``torch.onnx.export(..., dynamo=True)`` (torch.export underneath, the exporter torch
  recommends), saved with its weights inside; needs ``pip install 'reszoo[onnx]'``.
- ``pt2``: ``torch.export.export`` and ``torch.export.save``.
- ``torchscript``: ``torch.jit.script`` (deprecated by torch, still what many deployments load),
  or ``torch.jit.trace`` for a module the TorchScript compiler cannot read.

The tolerance is ``max(ATOL, RTOL * max|eager output|)`` (1e-4, 1e-5): fp32 differences grow
with the outputs' scale (fused kernels sum in another order).

Example::

    from reszoo.infer.export import export_model
    result = export_model("resnet56", "resnet56.onnx", weights="resnet56-cifar10")  # any batch size
    print(result.max_abs_diff)
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reszoo.errors import ExportCheckError, InvalidArgumentError
from reszoo.models._factory import create_model
from reszoo.utils.checks import check_bool, check_choice, check_int, check_ints, check_path, type_error
from reszoo.utils.choices import EXPORT_FORMATS as FORMATS
from reszoo.utils.choices import EXPORT_SUFFIXES as SUFFIXES

__all__ = ["ATOL", "RTOL", "ExportResult", "export_model", "format_for", "onnx_modules"]

ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")
# torch's dynamo exporter implements opset 18 and later; it keeps 18 when asked for less.
MIN_OPSET = 18
# fp32 tolerance: max(ATOL, RTOL * max|eager output|). Fused kernels sum in another order, so the
# differences grow with the outputs' scale: measured (ONNX Runtime) 1e-6 on resnet20 (outputs ~2),
# 6e-5 on a freshly initialised resnet50 (outputs ~110). pt2 and TorchScript run torch's own kernels: 0.
ATOL = 1e-4
RTOL = 1e-5
_FILE_NAMES = {"onnx": "model.onnx", "pt2": "model.pt2", "torchscript": "model.pt"}
_Made = tuple[str, int | None]


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote and how it was checked."""

    path: Path
    format: str
    method: str  # the call that made it, e.g. "torch.jit.script"
    input_shape: tuple[int, ...]  # the example batch the model was exported with
    dynamic_batch: bool  # the file takes any batch size (else only input_shape[0]; TorchScript: any)
    checked_batches: tuple[int, ...]  # batch sizes run through the loaded artefact
    max_abs_diff: float  # largest |artefact - eager| over every output of every checked batch
    tolerance: float
    checker: str  # what loaded the artefact, e.g. "onnxruntime 1.32.0"
    opset: int | None  # ONNX only
    size_bytes: int

    def summary(self) -> str:
        """One line for a log: what was written and the measured difference."""
        opset = f", opset {self.opset}" if self.opset is not None else ""
        batch = "any batch" if self.dynamic_batch else f"batch fixed at {self.input_shape[0]}"
        return (
            f"wrote {self.path} ({self.method}{opset}, {batch}, {self.size_bytes / 1e6:.1f} MB); "
            f"{self.checker} vs eager on batches {list(self.checked_batches)} of {tuple(self.input_shape[1:])}: "
            f"max |diff| = {self.max_abs_diff:.2e} (tolerance {self.tolerance:.1e})"
        )


def format_for(out: str | os.PathLike[str], format: str | None = None) -> str:
    """``format`` checked, or the one ``out``'s suffix names (``.onnx``, ``.pt2``, ``.pt``), else ``"onnx"``."""
    if format is not None:
        return check_choice("format", format, FORMATS)
    return SUFFIXES.get(Path(os.fspath(out)).suffix.lower(), "onnx")


def export_model(
    model: str | nn.Module,
    out: str | os.PathLike[str],
    *,
    format: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    dynamic_batch: bool = True,
    opset: int | None = None,
    input_size: tuple[int, int, int] | None = None,
    batch_size: int = 2,
) -> ExportResult:
    """Export ``model`` to ``out`` and prove the file computes what the eager model computes.

    Args:
        model: a registered name (``"resnet56"``) or a module (then ``weights`` must be ``None``).
        out: the file to write (its folder is created); replaced only by a file that passed.
        format: ``"onnx"``, ``"pt2"`` or ``"torchscript"``; default: from ``out``'s suffix, else onnx.
        weights: with a name: what ``create_model(name, pretrained=weights)`` takes (a weight
            name or alias, ``"hf-hub:owner/repo"``, or a folder written by ``save_pretrained``).
        dynamic_batch: the batch dimension takes any size (checked at ``batch_size``, 1 and
            ``2 * batch_size + 1``), as a deployment expects (reszoo 0.1 fixed it unless asked).
            False fixes it at ``batch_size`` (ONNX and pt2; TorchScript takes any batch either way).
        opset: ONNX opset (>= 18); default: torch's choice.
        input_size: ``(C, H, W)`` of the example input; default: the model config's ``input_size``.
        batch_size: the example batch's size, and the fixed one with ``dynamic_batch=False``; at
            least 2 with ``dynamic_batch`` (torch.export specialises a dimension of size 1).

    Returns:
        An :class:`ExportResult` with the measured ``max_abs_diff``.

    Raises:
        InvalidArgumentError, ArgumentTypeError: a bad argument, an unknown model or weights, an
            ``out`` that cannot be written, or a missing optional dependency (``reszoo[onnx]``).
        ExportCheckError: the artefact did not load, or differs from eager by more than the tolerance.
    """
    fmt = format_for(check_path("out", out), format)
    check_bool("dynamic_batch", dynamic_batch)
    check_int("batch_size", batch_size, minimum=1)
    if dynamic_batch and batch_size < 2:
        raise InvalidArgumentError(
            f"batch_size must be >= 2 with dynamic_batch=True, the default (torch.export specialises a batch of 1, "
            f"and the file still takes a batch of 1); received batch_size={batch_size}. For a file fixed at "
            f"batch {batch_size}: dynamic_batch=False (reszoo export --batch-size {batch_size} --static)."
        )
    if opset is not None and fmt != "onnx":
        raise InvalidArgumentError(f"opset applies to format='onnx' only; received opset={opset} with {fmt!r}.")
    path = _writable(out)
    if fmt == "onnx":  # the optional dependencies before any work
        max_opset = int(onnx_modules()["onnx"].defs.onnx_opset_version())
        check_int("opset", opset, minimum=MIN_OPSET, maximum=max_opset, optional=True)
    net = _eval_model(model, weights)
    shape = (batch_size, *_input_size(net, input_size))
    batches = (batch_size, 1, 2 * batch_size + 1) if dynamic_batch else (batch_size,)
    inputs = [torch.randn(b, *shape[1:], generator=torch.Generator().manual_seed(i)) for i, b in enumerate(batches)]
    with torch.no_grad():
        expected = [net(x) for x in inputs]  # eager first: its input checks give the clear errors
    return _write_checked(net, path, fmt, inputs, expected, dynamic=dynamic_batch, opset=opset, label=_label(model))


def _write_checked(
    net: nn.Module,
    path: Path,
    fmt: str,
    inputs: list[torch.Tensor],
    expected: list[Any],
    *,
    dynamic: bool,
    opset: int | None,
    label: str,
) -> ExportResult:
    """Export into a hidden folder beside ``path``, load back, compare; move to ``path`` only if it passed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    batches = tuple(x.shape[0] for x in inputs)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        staged = Path(tmp) / _FILE_NAMES[fmt]
        method, opset_used = _EXPORTERS[fmt](net, inputs[0], staged, dynamic=dynamic, opset=opset)
        run, checker = _load_back(fmt, staged)
        with torch.no_grad():
            diff = max(_max_diff(run(x), want) for x, want in zip(inputs, expected, strict=True))
        tolerance = max(ATOL, RTOL * max(float(e.abs().max()) for e in expected))
        if not diff <= tolerance:  # NaN fails too
            raise ExportCheckError(
                f"{fmt} export of {label}: {checker} differs from eager by {diff:.3g} (tolerance "
                f"{tolerance:.3g}) on batches {list(batches)} of {tuple(inputs[0].shape[1:])}; {path} was not written."
            )
        size = staged.stat().st_size
        os.replace(staged, path)
    shape = tuple(inputs[0].shape)
    return ExportResult(path, fmt, method, shape, dynamic, batches, diff, tolerance, checker, opset_used, size)


# -- arguments ------------------------------------------------------------------------------------


def _label(model: str | nn.Module) -> str:
    return model if isinstance(model, str) else type(model).__name__


def _writable(out: str | os.PathLike[str]) -> Path:
    """``out`` as a path whose folder exists or can be made, and can be written in."""
    path = Path(os.fspath(out)).expanduser().absolute()
    if path.is_dir():
        raise InvalidArgumentError(f"out={os.fspath(out)!r} is a folder; give a file, e.g. {path / 'model.onnx'}.")
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidArgumentError(f"out={os.fspath(out)!r} cannot be written: {existing} is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidArgumentError(f"out={os.fspath(out)!r} cannot be written: no permission to write in {existing}.")
    return path


def onnx_modules() -> dict[str, Any]:
    """onnx, onnxscript and onnxruntime, imported; a missing one is one clear error naming the extra."""
    found, missing = {}, []
    for name in ONNX_MODULES:
        try:
            found[name] = importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise InvalidArgumentError(
            f"format='onnx' needs {', '.join(ONNX_MODULES)}; not installed: {', '.join(missing)}. "
            "Install them with: pip install 'reszoo[onnx]'."
        )
    return found


def _eval_model(model: str | nn.Module, weights: str | os.PathLike[str] | None) -> nn.Module:
    """The model to export, in eval mode on the CPU."""
    if isinstance(model, str):
        net = create_model(model, pretrained=weights)
    elif isinstance(model, nn.Module):
        if weights is not None:
            raise InvalidArgumentError(
                f"weights={os.fspath(weights)!r} applies to a model name; load them into the module yourself."
            )
        net = model
    else:
        raise type_error("model", model, "a registered model name or an nn.Module")
    return net.cpu().eval()


def _input_size(net: nn.Module, input_size: Any) -> tuple[int, int, int]:
    """``input_size`` checked against the model's channels, or the model config's default."""
    config = getattr(net, "config", None)
    if input_size is None:
        if config is None:
            raise InvalidArgumentError(f"{type(net).__name__} has no .config; pass input_size=(C, H, W).")
        return tuple(config.input_size)
    size = check_ints("input_size", input_size, length=3, minimum=1)
    if config is not None and size[0] != config.in_chans:
        raise InvalidArgumentError(
            f"input_size={size} has {size[0]} channels but the model takes in_chans={config.in_chans}."
        )
    return size


# -- the formats ----------------------------------------------------------------------------------


def _batch_dims(dynamic: bool) -> tuple[dict[int, Any]] | None:
    # min=1: the exported graph must serve single images too (torch.export would otherwise start at 2).
    return ({0: torch.export.Dim("batch", min=1, max=65536)},) if dynamic else None


# Each exporter writes `path` and returns (the call that made it, the ONNX opset or None).
def _export_onnx(net: nn.Module, x: torch.Tensor, path: Path, *, dynamic: bool, opset: int | None) -> _Made:
    program = torch.onnx.export(
        net,
        (x,),
        dynamo=True,
        dynamic_shapes=_batch_dims(dynamic),
        opset_version=opset,
        input_names=["input"],
        output_names=["output"],
        verbose=False,
    )
    used = next(o.version for o in program.model_proto.opset_import if o.domain in ("", "ai.onnx"))
    if opset is not None and used != opset:
        raise ExportCheckError(f"opset={opset} was asked for, but torch's exporter produced opset {used}.")
    program.save(os.fspath(path), external_data=False)  # one file: the weights inside (< 2 GB here)
    return "torch.onnx.export(dynamo=True)", used


def _export_pt2(net: nn.Module, x: torch.Tensor, path: Path, *, dynamic: bool, opset: int | None) -> _Made:
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=_batch_dims(dynamic)), os.fspath(path))
    return "torch.export.export", None


def _export_torchscript(net: nn.Module, x: torch.Tensor, path: Path, *, dynamic: bool, opset: int | None) -> _Made:
    """Scripted (the module's own code, any input size); traced where the compiler cannot read the module."""
    with _torchscript_quiet():
        try:
            module, method = torch.jit.script(net), "torch.jit.script"
        except Exception:  # TorchScript's compiler raises many types for Python it does not support
            # check_trace=False: the loaded file is checked against eager, on more than one batch.
            module, method = torch.jit.trace(net, x, check_trace=False), "torch.jit.trace"
        module.save(os.fspath(path))
    return method, None


_EXPORTERS: dict[str, Callable[..., _Made]] = {
    "onnx": _export_onnx,
    "pt2": _export_pt2,
    "torchscript": _export_torchscript,
}


@contextlib.contextmanager
def _torchscript_quiet() -> Iterator[None]:
    """Without TorchScript's deprecation notices and the tracer's notes on the input checks (not in a trace)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _load_back(fmt: str, path: Path) -> tuple[Callable[[torch.Tensor], Any], str]:
    """The staged file loaded as a deployment would, as ``run(x) -> outputs``, and what loaded it."""
    try:
        if fmt == "onnx":
            ort = onnx_modules()["onnxruntime"]
            session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            return (lambda x: [torch.from_numpy(o) for o in session.run(None, {name: x.numpy()})]), (
                f"onnxruntime {ort.__version__}"
            )
        if fmt == "pt2":
            module = torch.export.load(os.fspath(path)).module()
            return module, "torch.export.load"
        with _torchscript_quiet():
            module = torch.jit.load(os.fspath(path))
        return module, "torch.jit.load"
    except Exception as err:  # each runtime raises its own types for a file it cannot take
        raise ExportCheckError(f"the {fmt} file could not be loaded back ({type(err).__name__}: {err}).") from err


def _max_diff(got: Any, want: Any) -> float:
    """Largest absolute difference over matching outputs (a tensor, or a list of them)."""
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    want = list(want) if isinstance(want, (list, tuple)) else [want]
    if len(got) != len(want) or any(tuple(g.shape) != tuple(w.shape) for g, w in zip(got, want, strict=False)):
        shapes = [tuple(g.shape) for g in got], [tuple(w.shape) for w in want]
        raise ExportCheckError(f"the exported file returns shapes {shapes[0]}, eager returns {shapes[1]}.")
    with torch.no_grad():
        return max((float((g.float() - w.float()).abs().max()) for g, w in zip(got, want, strict=True)), default=0.0)
