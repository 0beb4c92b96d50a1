"""Inference fast paths: BatchNorm folded, channels_last, bf16, int8, compiled, or ONNX Runtime.

``optimize_for_inference`` is the one entry; each path is a few lines here over the module that
owns it: :mod:`reszoo.infer.freezing` (inductor with freezing), :mod:`reszoo.infer.quantize` (int8 through
PT2E), :mod:`reszoo.infer.ort` (ONNX Runtime), :mod:`reszoo.utils.cpuinfo` (which dtypes this CPU runs natively).
Measured side by side in docs/benchmarks.md (``benchmarks/cpu_inference.py``).

Example:
    >>> import torch, reszoo
    >>> model = reszoo.create_model("resnet20").eval()
    >>> fast = reszoo.optimize_for_inference(model, compile=False)  # on a CPU the default compiles
    >>> x = torch.randn(2, 3, 32, 32)
    >>> torch.allclose(fast(x), model(x), atol=1e-4)
    True
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from reszoo.errors import InvalidArgumentError
from reszoo.infer.freezing import FrozenCompiled
from reszoo.utils.checks import check_bool, check_choice, check_instance, check_ints, check_number, type_error
from reszoo.utils.cpuinfo import check_cpu_dtype
from reszoo.utils.devices import AUTOCAST_DTYPES, compile_modes

# The dtypes a model's weights can be cast to for inference (tf32 is a matmul mode, not a dtype),
# and int8, which is quantized (reszoo.infer.quantize) rather than cast.
DTYPES = {"fp32": torch.float32, **AUTOCAST_DTYPES}
DTYPE_NAMES = (*DTYPES, "int8")
BACKENDS = ("torch", "onnxruntime", "auto")


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm2d into the Conv2d registered just before it, in place (eval only).

    reszoo registers each norm right after the convolution that feeds it (``conv1``/``bn1``,
    the ``Sequential(conv, bn)`` projection shortcut, the stem), so adjacency among a module's
    children identifies the pairs without tracing the graph; tracing would fail on the shape
    checks in ``ResNet.check_input``. A ``Sequential`` ending in a convolution counts as that
    convolution (the deep stem's ``conv1`` before ``bn1``). The equivalence test over every
    registered model guards this convention. The folded norm is replaced by ``nn.Identity``. Norms
    no convolution feeds stay: a pre-activation network's ``bn1`` of each block and ``final_norm``
    normalise a sum.

    Args:
        model: a module in eval mode.

    Returns:
        The number of norms folded.
    """
    check_instance("model", model, nn.Module)
    if model.training:
        raise InvalidArgumentError(
            "fold_batchnorm needs a model in eval mode (running statistics), received training=True."
        )
    folded = 0
    for parent in model.modules():
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            owner = parent
            if type(conv) is nn.Sequential and len(conv) and type(conv[-1]) is nn.Conv2d:
                owner, conv_name, conv = conv, str(len(conv) - 1), conv[-1]
            if (
                type(conv) is nn.Conv2d
                and type(bn) is nn.BatchNorm2d
                and bn.track_running_stats
                and conv.out_channels == bn.num_features
            ):
                setattr(owner, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded


def optimize_for_inference(
    model: nn.Module,
    *,
    channels_last: bool = True,
    fold_bn: bool = True,
    compile: bool | None = None,  # noqa: A002 - mirrors torch.compile, the name users look for
    compile_mode: str | None = None,
    dtype: str | torch.dtype | None = None,
    backend: str = "torch",
    calibration: Any = None,
    input_size: tuple[int, int, int] | None = None,
    example_inputs: torch.Tensor | None = None,
    check: Any = None,
    min_agreement: float | None = None,
) -> nn.Module:
    """A copy of ``model`` prepared for fast inference; the original is left untouched.

    The copy is in eval mode, each BatchNorm folded into the convolution before it, weights in
    ``channels_last``; on a CPU it is then compiled by inductor with freezing (compiles on the first
    call). Which path is the default and why, each path's cost and speed, and the tolerances the
    tests hold each path to: docs/benchmarks.md, "The paths of optimize_for_inference".

    Args:
        model: any module; BatchNorm2d that directly follows a Conv2d is folded.
        channels_last: convert weights to ``torch.channels_last`` (feed inputs the same way).
        fold_bn: fold BatchNorm into the convolutions.
        compile: compile with inductor and freezing; ``None``: on a CPU, yes, elsewhere no.
        compile_mode: ``torch.compile`` mode (e.g. ``"max-autotune"``), ``None`` for the default;
            needs ``compile`` True or None. On CUDA ``"reduce-overhead"`` reuses output buffers:
            ``.clone()`` an output to keep it past the next call.
        dtype: ``"fp32"``, ``"bf16"``, ``"fp16"``, ``"int8"`` or a float ``torch.dtype``; ``None``
            keeps the model's. bf16/fp16 cast the weights and floating inputs (on a CPU only where it
            has native kernels); int8 is static PT2E quantization, always compiled
            (``pip install 'reszoo[int8]'``).
        backend: ``"torch"``, ``"onnxruntime"`` (fp32, not compiled; ``pip install 'reszoo[onnx]'``),
            or ``"auto"``: on a CPU, fp32, the faster of the two on ``example_inputs``, timed side by
            side now (``torch`` alone where ONNX Runtime is not installed); the choice and the
            timings are in the returned module's ``selection``.
        calibration: with ``dtype="int8"`` only, and required: a few hundred real, pre-processed images
            (a ``DataLoader``, a list of batches or ``(inputs, targets)`` pairs, or one ``(N, C, H, W)``
            tensor; :mod:`reszoo.infer.calibration`); fewer than 64 images are warned about.
        check: with ``dtype="int8"`` only: held-out images in the same forms; int8's top-1 agreement
            with ``model`` on them (and top-1, with targets) goes in the result's ``.quantization.check``
            and warns below ``min_agreement`` (a fraction; default 0.98).
        min_agreement: with ``check`` only (see ``check``).
        input_size: with ``backend="onnxruntime"`` only: the ``(C, H, W)`` exported; default the
            model config's ``input_size``.
        example_inputs: with ``backend="auto"`` only, and then required: a batch ``(N, C, H, W)``
            as the model will be called (the faster path depends on the batch size).

    Returns:
        The eager copy, a :class:`reszoo.infer.freezing.FrozenCompiled` (compiled, int8) or a
        :class:`reszoo.infer.ort.OrtModule` (ONNX Runtime).

    Raises:
        InvalidArgumentError, ArgumentTypeError: a bad value or combination (``int8`` without calibration
            data), a dtype this CPU has no fast kernels for, or a missing optional dependency.

    Example::

        fast = reszoo.optimize_for_inference(model)  # on a CPU: compiled on the first call
        int8 = reszoo.optimize_for_inference(model, dtype="int8", calibration=train_images, check=(test_images, labels))
        print(int8.quantization.check.summary())  # int8 agrees with fp32 on 99.40% of 1000 images (6 changed; ...)
    """
    args = (channels_last, fold_bn, compile, compile_mode, dtype, backend, calibration, input_size, example_inputs)
    name = _check_arguments(model, *args)
    _check_int8_check(name, check, min_agreement)
    if name == "int8":
        from reszoo.infer.quantize import quantize_int8

        options = {} if min_agreement is None else {"min_agreement": min_agreement}
        return quantize_int8(model, calibration, compile_mode=compile_mode, check=check, **options)
    fast = _eval_copy(model, fold_bn=fold_bn)
    if backend == "onnxruntime":
        from reszoo.infer.ort import ort_module

        return ort_module(fast.float().cpu(), input_size=_input_size(model, input_size))
    if backend == "auto":
        return _fastest(fast, example_inputs, channels_last=channels_last)
    return _torch_path(fast, name, channels_last=channels_last, compile=compile, compile_mode=compile_mode)


def _eval_copy(model: nn.Module, *, fold_bn: bool) -> nn.Module:
    """A frozen eval-mode copy of ``model``, each BatchNorm folded into its convolution if asked."""
    fast = copy.deepcopy(model).eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    if fold_bn:
        fold_batchnorm(fast)
    return fast


def _check_arguments(
    model: Any,
    channels_last: Any,
    fold_bn: Any,
    compile: Any,  # noqa: A002
    compile_mode: Any,
    dtype: Any,
    backend: Any,
    calibration: Any,
    input_size: Any,
    example_inputs: Any,
) -> str | None:
    """Every argument of :func:`optimize_for_inference` checked, alone and together; the dtype's name."""
    check_instance("model", model, nn.Module)
    for flag, value in (("channels_last", channels_last), ("fold_bn", fold_bn)):
        check_bool(flag, value)
    if compile is not None:
        check_bool("compile", compile)
    name = _dtype_name(dtype)
    check_choice("backend", backend, BACKENDS)
    _check_combination(
        name,
        backend=backend,
        compile=compile,
        compile_mode=compile_mode,
        calibration=calibration,
        input_size=input_size,
        example_inputs=example_inputs,
    )
    if name in ("bf16", "fp16") and _device(model).type == "cpu":
        check_cpu_dtype(name)
    return name


def _torch_path(
    fast: nn.Module, name: str | None, *, channels_last: bool, compile: bool | None, compile_mode: str | None
) -> nn.Module:
    """The folded copy cast to ``name``, in channels_last, compiled or not."""
    if name is not None and name != "fp32":
        fast = fast.to(DTYPES[name])
        fast.register_forward_pre_hook(functools.partial(_cast_inputs, DTYPES[name]))
    elif name == "fp32":
        fast = fast.float()
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    if compile is None:  # why a CPU compiles by default: docs/benchmarks.md, "The paths of optimize_for_inference"
        compile = compile_mode is not None or _device(fast).type == "cpu"  # noqa: A001
    return FrozenCompiled(fast, mode=compile_mode) if compile else fast


def _check_combination(
    name: str | None,
    *,
    backend: str,
    compile: bool | None,
    compile_mode: str | None,
    calibration: Any,
    input_size: Any,
    example_inputs: Any = None,
) -> None:
    """Refuse options that do not go together, naming both."""
    _check_auto(name, backend=backend, compile=compile, compile_mode=compile_mode, example_inputs=example_inputs)
    if input_size is not None and backend != "onnxruntime":
        raise InvalidArgumentError(
            f"input_size={input_size!r} applies to backend='onnxruntime' (the size exported); "
            f"received backend={backend!r}."
        )
    if calibration is not None and name != "int8":
        raise InvalidArgumentError(f"calibration applies to dtype='int8' only; received dtype={name!r}.")
    if compile_mode is not None:
        if compile is False:
            raise InvalidArgumentError(
                f"compile_mode={compile_mode!r} needs compile=True or None, received compile={compile!r}."
            )
        check_choice("torch.compile mode", compile_mode, compile_modes())
    if name == "int8" and compile is False:
        raise InvalidArgumentError(
            "dtype='int8' is always compiled (uncompiled, its reference quantize/dequantize ops run slower "
            "than fp32); received compile=False."
        )
    if backend == "onnxruntime":
        if name not in (None, "fp32"):
            raise InvalidArgumentError(
                f"backend='onnxruntime' runs the fp32 model; received dtype={name!r} (use backend='torch' for it)."
            )
        if compile or compile_mode is not None:
            raise InvalidArgumentError(
                "backend='onnxruntime' is not compiled by torch; received "
                f"compile={compile!r}, compile_mode={compile_mode!r}."
            )


def _check_int8_check(name: str | None, check: Any, min_agreement: Any) -> None:
    if check is not None and name != "int8":
        raise InvalidArgumentError(
            f"check measures int8's agreement with fp32 and applies to dtype='int8' only; received dtype={name!r}."
        )
    if min_agreement is not None:
        if check is None:
            raise InvalidArgumentError(
                f"min_agreement={min_agreement!r} is the threshold of check=<held-out images>; received check=None."
            )
        check_number("min_agreement", min_agreement, minimum=0, maximum=1)


def _check_auto(
    name: str | None, *, backend: str, compile: bool | None, compile_mode: str | None, example_inputs: Any
) -> None:
    if backend != "auto":
        if example_inputs is not None:
            raise InvalidArgumentError(
                f"example_inputs applies to backend='auto' (timed to choose a path); received backend={backend!r}."
            )
        return
    if not isinstance(example_inputs, torch.Tensor) or example_inputs.dim() != 4:
        raise InvalidArgumentError(
            "backend='auto' times the paths on example_inputs, a batch (N, C, H, W) as the model will be called; "
            f"received example_inputs={_describe(example_inputs)}."
        )
    if not example_inputs.is_floating_point():
        raise InvalidArgumentError(
            "example_inputs must be a float batch (N, C, H, W) of pre-processed images, as the model will be "
            f"called; received a {example_inputs.dtype} tensor of shape {tuple(example_inputs.shape)}."
        )
    if example_inputs.device.type != "cpu":
        raise InvalidArgumentError(
            f"backend='auto' chooses among CPU paths; received example_inputs on {example_inputs.device}."
        )
    if name not in (None, "fp32") or compile is False or compile_mode is not None:
        raise InvalidArgumentError(
            "backend='auto' chooses between fp32 paths with their own settings; received "
            f"dtype={name!r}, compile={compile!r}, compile_mode={compile_mode!r}."
        )


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return repr(value) if value is None else type(value).__name__


def _fastest(fast: nn.Module, example: torch.Tensor, *, channels_last: bool) -> nn.Module:
    """The faster of inductor+freezing and ONNX Runtime on ``example``, timed side by side now."""
    from reszoo.infer.ort import missing_dependencies, ort_module

    if _device(fast).type != "cpu":
        raise InvalidArgumentError(f"backend='auto' chooses among CPU paths; received a model on {_device(fast)}.")
    candidates: dict[str, nn.Module] = {
        "torch": _torch_path(copy.deepcopy(fast), None, channels_last=channels_last, compile=True, compile_mode=None)
    }
    missing = missing_dependencies()
    if not missing:
        candidates["onnxruntime"] = ort_module(fast.float(), input_size=tuple(example.shape[1:]))
    seconds = _time_side_by_side(candidates, example)
    best = min(seconds, key=seconds.__getitem__)
    chosen = candidates[best]
    chosen.selection = {
        "chosen": best,
        "seconds_per_call": seconds,
        "example_shape": tuple(example.shape),
        "not_tried": {"onnxruntime": f"not installed ({', '.join(missing)})"} if missing else {},
    }
    return chosen


def _time_side_by_side(candidates: dict[str, nn.Module], example: torch.Tensor) -> dict[str, float]:
    """Median seconds per call of each candidate, round-robin (the first calls compile, untimed)."""
    import statistics

    from reszoo.utils.timing import interleaved

    with torch.no_grad():
        steps = {key: functools.partial(module, example) for key, module in candidates.items()}
        for step in steps.values():  # compile, export caches, first-touch allocations
            step()
        times = interleaved(steps, rounds=1, number=1, warmup=1)
        slowest = max(t[0] for t in times.values())
        number = max(1, min(100, int(0.1 / max(slowest, 1e-6))))  # blocks of about 0.1 s
        # The pause lets ONNX Runtime's spinning threads go idle before the other path's block.
        times = interleaved(steps, rounds=6, number=number, warmup=0, pause=0.02)
    return {key: statistics.median(t) for key, t in times.items()}


def _dtype_name(dtype: str | torch.dtype | None) -> str | None:
    """A name of :data:`DTYPE_NAMES` for a name or a float ``torch.dtype`` (``None`` passes)."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        names = {d: n for n, d in DTYPES.items()}
        if dtype not in names:
            raise InvalidArgumentError(
                f"dtype must be one of {', '.join(DTYPE_NAMES)} or torch.float32/bfloat16/float16; "
                f"received dtype={dtype}."
            )
        return names[dtype]
    if not isinstance(dtype, str):
        raise type_error("dtype", dtype, f"one of {', '.join(DTYPE_NAMES)}, a torch.dtype or None")
    return check_choice("dtype", dtype, DTYPE_NAMES)


def _device(model: nn.Module) -> torch.device:
    """Where the model's weights are (the CPU for a model without any)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _input_size(model: nn.Module, input_size: Any) -> tuple[int, int, int]:
    if input_size is not None:
        return check_ints("input_size", input_size, length=3, minimum=1)
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "input_size"):
        raise InvalidArgumentError(
            f"backend='onnxruntime' exports for one input size; {type(model).__name__} has no config.input_size, "
            "so pass input_size=(C, H, W)."
        )
    return tuple(config.input_size)


def _cast_inputs(dtype: torch.dtype, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook: floating tensors in the model's dtype, so fp32 images can be fed as they are."""
    return tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
