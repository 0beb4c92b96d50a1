"""Throughput measurement: images/s, time per batch with spread, memory, FLOPs, TFLOP/s.

Timing uses ``torch.utils.benchmark.Timer`` (it synchronises CUDA around each block of runs);
warm-up and compilation happen before the timed region. Compared variants are measured
round-robin in one process, so a busy machine slows all of them alike and ratios stay fair.

Example:
    >>> import reszoo
    >>> from reszoo import bench
    >>> model = reszoo.ResNet(reszoo.ResNetConfig(depths=(1, 1, 1), widths=(4, 8, 16), stem_width=4))
    >>> r = bench.measure(model, input_size=(3, 32, 32), batch_size=2, min_run_time=0.01, warmup=1)
    >>> r.status, r.images_per_s > 0
    ('ok', True)
"""

from __future__ import annotations

import contextlib
import copy
import csv
import datetime
import json
import math
import platform
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reszoo.summary import count_flops, count_params, format_table, human

MODES = ("infer", "train")
DTYPES = ("fp32", "tf32", "bf16", "fp16")
DEVICE_TYPES = ("cpu", "cuda", "mps")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _check_choice(what: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {what} {value!r}; valid choices: {', '.join(choices)}.")


def _check_int(what: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, received {value!r}.")


def _check_positive(what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{what} must be a finite number > 0, received {value!r}.")


def _check_input_size(input_size: Any) -> tuple[int, ...]:
    size = tuple(input_size) if isinstance(input_size, Sequence) and not isinstance(input_size, str) else None
    if size is None or len(size) != 3 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in size):
        raise ValueError(f"input_size must be (C, H, W), three integers >= 1, received {input_size!r}.")
    return size


def _resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a ``torch.device`` (:func:`default_device` for ``None``); a ValueError if unparsable."""
    if device is None:
        return torch.device(default_device())
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"Unknown device {device!r}; valid choices: {', '.join(DEVICE_TYPES)}, optionally with an index (cuda:1)."
        ) from err


def compile_modes() -> tuple[str, ...]:
    """The ``torch.compile`` modes this torch accepts (imports inductor, so call it only when compiling)."""
    from torch._inductor import list_mode_options

    return tuple(list_mode_options())


# Dense (no sparsity) tensor-core peaks in TFLOP/s from NVIDIA's data sheets; "fp32" is the
# non-tensor-core rate. Matched by substring of the device name, first match wins, so the
# more specific names come first. Update or pass ``peak_tflops=`` for other devices.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989.0, "fp16": 989.0, "tf32": 495.0, "fp32": 67.0},
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.0},
    "H100": {"bf16": 989.0, "fp16": 989.0, "tf32": 495.0, "fp32": 67.0},
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L40S": {"bf16": 362.0, "fp16": 362.0, "tf32": 183.0, "fp32": 91.6},
    "RTX 4090": {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6},
    "V100": {"bf16": 0.0, "fp16": 125.0, "tf32": 0.0, "fp32": 15.7},
}


def peak_tflops_for(device_name: str, dtype: str) -> float | None:
    """Peak TFLOP/s of a device for a dtype from :data:`PEAK_TFLOPS`, or ``None`` if unknown."""
    for key, table in PEAK_TFLOPS.items():
        if key in device_name:
            return table.get(dtype) or None
    return None


@dataclass
class BenchResult:
    """One measurement; ``status`` is ``"ok"``, ``"oom"`` (out of memory) or ``"error"``."""

    model: str
    mode: str
    device: str
    batch_size: int
    input_size: tuple[int, ...]
    dtype: str
    channels_last: bool
    compile: str | None
    cuda_graphs: bool
    status: str = "ok"
    images_per_s: float = 0.0
    time_median_ms: float = 0.0
    time_iqr_ms: float = 0.0
    runs: int = 0
    peak_memory_mb: float | None = None
    params: int = 0
    flops_per_image: int = 0
    tflops: float = 0.0
    peak_tflops: float | None = None
    peak_fraction: float | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d


def environment(device: str | torch.device = "cpu") -> dict[str, Any]:
    """What a result depends on: device name, library versions, threads, date."""
    device = torch.device(device)
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device_type": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(ImportError):
        import torchvision

        env["torchvision"] = torchvision.__version__
    return env


def device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or device.type


def default_device() -> str:
    """The best device present: ``"cuda"``, then ``"mps"``, then ``"cpu"``."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def preferred_memory_format(device_type: str) -> torch.memory_format:
    """The memory format that trains reszoo models faster on a device type.

    Measured with ``benchmarks/compare.py`` (docs/benchmarks.md): on a 2-core AMD EPYC CPU a
    CIFAR ResNet-56 training step at batch 128 ran 1.14-1.17x faster in channels_last than in
    NCHW (torch 2.14.1). On NVIDIA tensor cores channels_last avoids layout transposes (timm's
    published RTX 3090 AMP training figures: 1,218 img/s channels_last against 826 NCHW).

    Args:
        device_type: ``"cpu"``, ``"cuda"`` or ``"mps"``.

    Returns:
        ``torch.channels_last`` or ``torch.contiguous_format``.
    """
    _check_choice("device type", device_type, DEVICE_TYPES)
    # MPS has not been measured here; keep the layout every kernel supports.
    return torch.channels_last if device_type in ("cpu", "cuda") else torch.contiguous_format


def default_batch_size(device_type: str, input_size: Sequence[int]) -> int:
    """A batch size that keeps a CPU run short and fills a GPU: CPU 64 at 32x32, 16 at 224x224."""
    pixels = math.prod(input_size[1:])
    if device_type == "cpu":
        return 64 if pixels <= 64 * 64 else 16
    return 256


@contextlib.contextmanager
def precision(dtype: str, device_type: str) -> Iterator[None]:
    """Autocast for bf16/fp16, TF32 matmuls and convolutions for tf32, nothing for fp32."""
    _check_choice("dtype", dtype, DTYPES)
    if dtype in _AUTOCAST:
        with torch.autocast(device_type=device_type, dtype=_AUTOCAST[dtype]):
            yield
    elif dtype == "tf32":
        old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
    else:
        yield


def forward_flops(model: nn.Module, input_size: Sequence[int]) -> int:
    """Forward FLOPs of one image; free for reszoo models (counted on the meta device)."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "replace"):
        from reszoo.resnet import ResNet

        with torch.device("meta"):
            return count_flops(ResNet(config), tuple(input_size))
    return count_flops(copy.deepcopy(model).float().cpu(), tuple(input_size))


def make_step(
    model: nn.Module,
    *,
    mode: str,
    input_size: Sequence[int],
    batch_size: int,
    device: str | torch.device,
    dtype: str = "fp32",
    channels_last: bool = False,
    compile: str | None = None,  # noqa: A002 - the CLI flag's name
    cuda_graphs: bool = False,
) -> Callable[[], Any]:
    """A zero-argument callable that runs one inference batch or one training step.

    The model is moved to ``device`` (and channels_last); inputs are made once, on the device,
    so the timed step excludes data loading. Training is forward, cross-entropy, backward and
    an SGD step with momentum, as in the paper.

    Args:
        model: the module to run (modified in place: moved, possibly compiled).
        mode: ``"infer"`` (eval, inference_mode) or ``"train"``.
        input_size: ``(C, H, W)``.
        batch_size: images per step.
        device: e.g. ``"cpu"``, ``"cuda"``.
        dtype: ``"fp32"``, ``"tf32"``, ``"bf16"`` or ``"fp16"`` (autocast).
        channels_last: NHWC memory format for the model and the input.
        compile: a ``torch.compile`` mode (``"default"``, ``"reduce-overhead"``, ``"max-autotune"``)
            or ``None`` for eager.
        cuda_graphs: capture the step in a CUDA graph (CUDA only; eager models).

    Returns:
        The step callable.
    """
    device = _resolve_device(device)
    _check_step_options(
        mode=mode,
        dtype=dtype,
        batch_size=batch_size,
        input_size=input_size,
        device=device,
        compile=compile,
        cuda_graphs=cuda_graphs,
    )
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=fmt).train(mode == "train")
    x = torch.randn(batch_size, *input_size, device=device).contiguous(memory_format=fmt)
    num_classes = getattr(model, "num_classes", None) or 1000
    target = torch.randint(0, int(num_classes), (batch_size,), device=device)
    fn: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model, mode=compile) if compile else model

    if mode == "infer":

        def step() -> torch.Tensor:
            with torch.inference_mode(), precision(dtype, device.type):
                return fn(x)

        return _graphed(step) if cuda_graphs else step

    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    if cuda_graphs:
        # Graph forward and backward; the optimizer step stays eager (its state is outside).
        with precision(dtype, device.type):
            fn = torch.cuda.make_graphed_callables(model, (x,))

    def train_step() -> torch.Tensor:
        with precision(dtype, device.type):
            loss = F.cross_entropy(fn(x), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=not cuda_graphs)
        return loss

    return train_step


def _check_step_options(
    *,
    mode: str,
    dtype: str,
    batch_size: int,
    input_size: Sequence[int],
    device: torch.device,
    compile: str | None,  # noqa: A002 - the CLI flag's name
    cuda_graphs: bool,
) -> None:
    """The checks of :func:`make_step`'s options, also run by :func:`measure` before any work."""
    _check_choice("mode", mode, MODES)
    _check_choice("dtype", dtype, DTYPES)
    _check_int("batch_size", batch_size, 1)
    _check_input_size(input_size)
    if compile is not None:
        _check_choice("torch.compile mode", compile, compile_modes())
    if cuda_graphs and device.type != "cuda":
        raise ValueError(f"cuda_graphs needs a CUDA device, received device={str(device)!r}.")
    if cuda_graphs and compile:
        raise ValueError("Use compile='reduce-overhead' for CUDA graphs with torch.compile, not both options.")


def _graphed(step: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """Capture an inference step (static input) in a CUDA graph and return its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up on a side stream, as capture requires
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()

    def replay() -> torch.Tensor:
        graph.replay()
        return out

    return replay


def _torch_benchmark() -> Any:
    """``torch.utils.benchmark``, imported on first use.

    It pulls in ``torch.utils.cpp_extension``, which is slow to import and logs a "No CUDA
    runtime is found" warning on CUDA builds of torch running without a GPU; that warning says
    nothing about timing, so it is silenced for the import (and only for it).
    """
    import logging

    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        log.setLevel(level)
    return benchmark


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def measure(
    model: nn.Module,
    *,
    input_size: Sequence[int] | None = None,
    batch_size: int | None = None,
    mode: str = "infer",
    device: str | torch.device | None = None,
    dtype: str = "fp32",
    channels_last: bool = False,
    compile: str | None = None,  # noqa: A002 - the CLI flag's name
    cuda_graphs: bool = False,
    warmup: int = 3,
    min_run_time: float = 1.0,
    peak_tflops: float | None = None,
    name: str | None = None,
) -> BenchResult:
    """Measure one model at one batch size.

    Args:
        model: the module (moved to ``device`` in place; pass a copy to keep the original).
        input_size: ``(C, H, W)``; defaults to ``model.config.input_size`` for reszoo models.
        batch_size: images per step; defaults to :func:`default_batch_size`.
        mode: ``"infer"`` or ``"train"``.
        device: defaults to :func:`default_device`.
        dtype: ``"fp32"``, ``"tf32"``, ``"bf16"`` or ``"fp16"``.
        channels_last: NHWC memory format.
        compile: ``torch.compile`` mode or ``None``; compiled during warm-up, outside the timing.
        cuda_graphs: capture the step in a CUDA graph.
        warmup: untimed steps first (cuDNN autotuning, allocator, compilation).
        min_run_time: seconds of timed steps (``Timer.blocked_autorange``).
        peak_tflops: the device's peak for ``dtype``; defaults to :data:`PEAK_TFLOPS`.
        name: label for the result; defaults to the model's class name.

    Returns:
        A :class:`BenchResult`; ``status="oom"`` when the batch does not fit.

    Raises:
        ValueError: an option outside its valid values (named with them), before any work.
    """
    device = _resolve_device(device)
    if input_size is None:
        config = getattr(model, "config", None)
        if config is None:
            raise ValueError("input_size is required for models without a reszoo config, received None.")
        input_size = config.input_size
    input_size = _check_input_size(input_size)
    if batch_size is None:
        batch_size = default_batch_size(device.type, input_size)
    _check_step_options(
        mode=mode,
        dtype=dtype,
        batch_size=batch_size,
        input_size=input_size,
        device=device,
        compile=compile,
        cuda_graphs=cuda_graphs,
    )
    _check_int("warmup", warmup, 0)
    _check_positive("min_run_time", min_run_time)
    if peak_tflops is not None:
        _check_positive("peak_tflops", peak_tflops)
    result = _new_result(
        model,
        name=name or type(model).__name__,
        mode=mode,
        device=device_name(device),
        batch_size=batch_size,
        input_size=input_size,
        dtype=dtype,
        channels_last=channels_last,
        compile=compile,
        cuda_graphs=cuda_graphs,
        peak_tflops=peak_tflops,
    )
    if device.type == "cuda":
        # Fixed input shapes: let cuDNN try its algorithms once and keep the fastest.
        torch.backends.cudnn.benchmark = True
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        step = _make_step_for(model, result, device)
        for _ in range(warmup):
            step()
        # Timer defaults to one thread; benchmark with what the user's process would use.
        timer = _torch_benchmark().Timer(
            stmt="step()", globals={"step": step}, label=result.model, num_threads=torch.get_num_threads()
        )
        m = timer.blocked_autorange(min_run_time=min_run_time)
    except RuntimeError as err:  # torch.OutOfMemoryError is a RuntimeError
        if not _is_oom(err):
            raise
        result.status, result.error = "oom", str(err).splitlines()[0]
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return result
    _fill(result, m.times)
    if device.type == "cuda":
        result.peak_memory_mb = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def _new_result(
    model: nn.Module,
    *,
    name: str,
    mode: str,
    device: str,
    batch_size: int,
    input_size: tuple[int, ...],
    dtype: str,
    channels_last: bool,
    compile: str | None = None,  # noqa: A002 - the CLI flag's name
    cuda_graphs: bool = False,
    peak_tflops: float | None = None,
) -> BenchResult:
    """A result not yet timed: the settings, parameters, FLOPs and peak of ``model``.

    ``device`` is the device's name (:func:`device_name`); ``peak_tflops`` defaults to
    :func:`peak_tflops_for` it. A training step counts 3x the forward FLOPs.
    """
    return BenchResult(
        model=name,
        mode=mode,
        device=device,
        batch_size=batch_size,
        input_size=input_size,
        dtype=dtype,
        channels_last=channels_last,
        compile=compile,
        cuda_graphs=cuda_graphs,
        params=count_params(model),
        flops_per_image=forward_flops(model, input_size) * (3 if mode == "train" else 1),
        peak_tflops=peak_tflops if peak_tflops is not None else peak_tflops_for(device, dtype),
    )


def _make_step_for(model: nn.Module, result: BenchResult, device: torch.device) -> Callable[[], Any]:
    """:func:`make_step` with the settings recorded in ``result``."""
    return make_step(
        model,
        mode=result.mode,
        input_size=result.input_size,
        batch_size=result.batch_size,
        device=device,
        dtype=result.dtype,
        channels_last=result.channels_last,
        compile=result.compile,
        cuda_graphs=result.cuda_graphs,
    )


def median_iqr(times: Sequence[float]) -> tuple[float, float]:
    """Median and interquartile range of per-step times, as ``torch.utils.benchmark`` computes them."""
    tbench = _torch_benchmark()
    m = tbench.Measurement(number_per_run=1, raw_times=list(times), task_spec=tbench.TaskSpec("step()", "pass"))
    return m.median, m.iqr


def _fill(result: BenchResult, times: Sequence[float]) -> None:
    """Median, interquartile range and the derived rates from per-step times in seconds."""
    median, iqr = median_iqr(times)
    result.runs = len(times)
    result.time_median_ms = median * 1e3
    result.time_iqr_ms = iqr * 1e3
    result.images_per_s = result.batch_size / median
    result.tflops = result.flops_per_image * result.images_per_s / 1e12
    if result.peak_tflops:
        result.peak_fraction = result.tflops / result.peak_tflops


def sweep(
    model_fn: Callable[[], nn.Module],
    *,
    batch_sizes: Sequence[int],
    name: str,
    **kwargs: Any,
) -> list[BenchResult]:
    """:func:`measure` a fresh model at each batch size; an out-of-memory size is recorded, not fatal."""
    if not batch_sizes:
        raise ValueError(f"batch_sizes must name at least one batch size, received {batch_sizes!r}.")
    return [measure(model_fn(), batch_size=bs, name=name, **kwargs) for bs in batch_sizes]


def interleaved(
    steps: dict[str, Callable[[], Any]], *, rounds: int = 10, number: int = 2, warmup: int = 2
) -> dict[str, list[float]]:
    """Time several step callables round-robin; returns per-step times in seconds for each.

    Each round times every variant for ``number`` steps in turn (with ``torch.utils.benchmark``'s
    synchronising timer), forwards on even rounds and backwards on odd ones, so a disturbance on
    a shared machine falls on all variants, not on one.
    """
    _check_int("rounds", rounds, 1)
    _check_int("number", number, 1)
    _check_int("warmup", warmup, 0)
    # The timer function of torch.utils.benchmark synchronises CUDA before reading the clock;
    # Timer.timeit would add two untimed warm-up steps per call, doubling a round's cost.
    timer = _torch_benchmark().utils.timer.timer

    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {key: [] for key in steps}
    order = list(steps)
    for i in range(rounds):
        # Alternate the order each round so that neither variant always runs first (right after
        # the other's caches and allocations).
        for key in order if i % 2 == 0 else order[::-1]:
            step = steps[key]
            start = timer()
            for _ in range(number):
                step()
            times[key].append((timer() - start) / number)
    return times


def reference_cifar_resnet(depth: int, num_classes: int = 10) -> nn.Module:
    """A straightforward CIFAR ResNet (option A) written without reszoo's parts, for --compare.

    Same architecture as ``reszoo.cifar_resnet(depth)``: 3x3 stem of 16, three stages of
    (depth - 2) / 6 basic blocks at 16/32/64 channels, zero-padded identity shortcuts.
    """
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 >= 8, received {depth}.")
    n = (depth - 2) // 6

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.stride, self.pad = stride, cout - cin

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
            short = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
            if self.pad:
                short = F.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
            return F.relu(out + short)

    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for i, cout in enumerate((16, 32, 64)):
        for j in range(n):
            layers.append(Block(cin, cout, 2 if i > 0 and j == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    net = nn.Sequential(*layers)
    net.num_classes = num_classes
    return net


def comparison_models(name: str) -> dict[str, Callable[[], nn.Module]]:
    """Factories of ``name`` and its equivalents: torchvision (and timm if installed) for ImageNet
    models, :func:`reference_cifar_resnet` for CIFAR option-A models.

    Args:
        name: a registered reszoo model name.

    Returns:
        ``{label: factory}``, reszoo first; timm's only when timm is installed.
    """
    from reszoo.registry import create_model, get_model_fn

    with torch.device("meta"):
        cfg = get_model_fn(name)().config
    out: dict[str, Callable[[], nn.Module]] = {f"reszoo:{name}": lambda: create_model(name)}
    if cfg.stem == "cifar":
        if cfg.shortcut != "A":
            raise ValueError(f"--compare supports CIFAR models with shortcut 'A', received {name!r} ({cfg.shortcut}).")
        out[f"reference:{name}"] = lambda: reference_cifar_resnet(cfg.depth, cfg.num_classes)
        return out
    import torchvision.models as tvm

    if not hasattr(tvm, name) or cfg.shortcut != "B":
        raise ValueError(f"torchvision has no equivalent of {name!r}; compare resnet18/34/50/101/152.")
    out[f"torchvision:{name}"] = lambda: getattr(tvm, name)(weights=None)
    try:
        import timm

        out[f"timm:{name}"] = lambda: timm.create_model(name, pretrained=False)
    except ImportError:
        pass
    return out


def compare(
    name: str,
    *,
    mode: str = "infer",
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    dtype: str = "fp32",
    channels_last: bool = False,
    rounds: int = 10,
    number: int = 2,
) -> list[BenchResult]:
    """Benchmark reszoo's ``name`` against its equivalents, interleaved in one process.

    Returns:
        One result per implementation, reszoo first; ``extra["ratio_vs_reszoo"]`` holds
        images/s of reszoo divided by that implementation's.
    """
    device = _resolve_device(device)
    _check_choice("mode", mode, MODES)
    _check_choice("dtype", dtype, DTYPES)
    if batch_size is not None:
        _check_int("batch_size", batch_size, 1)
    _check_int("rounds", rounds, 1)
    _check_int("number", number, 1)
    factories = comparison_models(name)
    ours = f"reszoo:{name}"
    torch.manual_seed(0)
    models = {label: make() for label, make in factories.items()}
    input_size = models[ours].config.input_size
    if batch_size is None:
        batch_size = default_batch_size(device.type, input_size)
    dev_name = device_name(device)
    results = {
        label: _new_result(
            m,
            name=label,
            mode=mode,
            device=dev_name,
            batch_size=batch_size,
            input_size=input_size,
            dtype=dtype,
            channels_last=channels_last,
        )
        for label, m in models.items()
    }
    steps = {label: _make_step_for(models[label], r, device) for label, r in results.items()}
    times = interleaved(steps, rounds=rounds, number=number)
    for label, r in results.items():
        _fill(r, times[label])
    for r in results.values():
        r.extra["ratio_vs_reszoo"] = results[ours].images_per_s / r.images_per_s
    return list(results.values())


def to_table(results: Sequence[BenchResult], *, markdown: bool = False) -> str:
    """A readable table of results (one row each)."""
    headers = ["model", "mode", "batch", "dtype", "layout", "compile", "img/s", "ms/batch (IQR)", "GFLOP/img"]
    headers += ["TFLOP/s", "% peak", "peak MB"]
    rows = []
    for r in results:
        ok = r.status == "ok"
        rows.append(
            [
                r.model,
                r.mode,
                str(r.batch_size),
                r.dtype,
                "NHWC" if r.channels_last else "NCHW",
                r.compile or "eager",
                f"{r.images_per_s:,.1f}" if ok else r.status.upper(),
                f"{r.time_median_ms:.2f} ({r.time_iqr_ms:.2f})" if ok else "-",
                f"{r.flops_per_image / 1e9:.3f}",
                f"{r.tflops:.3f}" if ok else "-",
                f"{100 * r.peak_fraction:.1f}" if r.peak_fraction is not None and ok else "-",
                f"{r.peak_memory_mb:,.0f}" if r.peak_memory_mb is not None else "-",
            ]
        )
    return format_table(headers, rows, markdown=markdown)


def to_json(results: Sequence[BenchResult], path: str | None = None, *, env: dict[str, Any] | None = None) -> str:
    """``{"environment": {...}, "results": [...]}`` as JSON text, also written to ``path`` if given."""
    text = json.dumps({"environment": env or environment("cpu"), "results": [r.as_dict() for r in results]}, indent=2)
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")
    return text


def to_csv(results: Sequence[BenchResult], path: str) -> None:
    """One CSV row per result with every :class:`BenchResult` field except ``extra``."""
    names = [f.name for f in fields(BenchResult) if f.name != "extra"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            row = r.as_dict()
            row["input_size"] = "x".join(map(str, r.input_size))
            writer.writerow(row)


def plot(results: Sequence[BenchResult], path: str) -> None:
    """Images/s against batch size (one line per model and mode), or against depth when each
    model has one batch size. Needs matplotlib (``pip install reszoo[plot]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise RuntimeError("Plotting needs matplotlib: pip install matplotlib") from err
    ok = [r for r in results if r.status == "ok"]
    series: dict[str, list[BenchResult]] = {}
    for r in ok:
        series.setdefault(f"{r.model} {r.mode}", []).append(r)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if any(len(v) > 1 for v in series.values()):
        for label, rs in series.items():
            rs.sort(key=lambda r: r.batch_size)
            ax.plot([r.batch_size for r in rs], [r.images_per_s for r in rs], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
    else:
        by_mode: dict[str, list[BenchResult]] = {}
        for r in ok:
            by_mode.setdefault(r.mode, []).append(r)
        for mode_, rs in by_mode.items():
            xs = [_depth(r.model) for r in rs]
            ax.scatter(xs, [r.images_per_s for r in rs], label=mode_)
            for x, r in zip(xs, rs, strict=True):
                ax.annotate(r.model, (x, r.images_per_s), fontsize=7)
        ax.set_xlabel("depth (layers)")
    ax.set_yscale("log")
    ax.set_ylabel("images/s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _depth(label: str) -> int:
    digits = "".join(ch for ch in label.split(":")[-1] if ch.isdigit())
    return int(digits) if digits else 0


def summary_line(r: BenchResult) -> str:
    """One line: name, images/s, time per batch, GFLOP/image."""
    return (
        f"{r.model} {r.mode} bs={r.batch_size}: {r.images_per_s:,.1f} img/s, "
        f"{r.time_median_ms:.2f} ms/batch, {human(r.flops_per_image)}FLOP/img"
    )
