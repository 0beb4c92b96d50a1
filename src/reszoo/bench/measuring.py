"""Throughput measurement: images/s, time per batch with spread, memory, FLOPs, TFLOP/s.

Timing uses ``torch.utils.benchmark.Timer`` (it synchronises CUDA around each block of runs);
warm-up and compilation happen before the timed region. Compared variants are measured
round-robin in one process, so a busy machine slows all of them alike and ratios stay fair.

A result says when it should not be trusted: fewer than :data:`MIN_RUNS` timed runs, or a spread
(interquartile range over median) above :data:`MAX_SPREAD`, adds a line to its ``warnings``; so
does a dtype the device has no fast kernels for (fp16 or bf16 autocast on a CPU without them).
A dtype that means nothing on a device (tf32 off NVIDIA Ampere or newer) is refused.
:func:`environment` records what the machine was doing before the run (load average, threads
against cores) and :func:`environment_warnings` says when that will distort the figures.
The settings of a step are checked once, when its :class:`StepSettings` is made; the device
policy (which device, layout, precision) is :mod:`reszoo.utils.devices`'s, and tables, JSON, CSV and
plots of the results are :mod:`reszoo.bench.reporting`'s, side-by-side comparisons
:mod:`reszoo.bench.comparing`'s, the machine's state and peaks :mod:`reszoo.bench.machine`'s.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reszoo.bench.compiling import compile_model
from reszoo.bench.isolation import Row, run_isolated
from reszoo.bench.machine import dtype_warning, has_tf32, peak_tflops_for
from reszoo.errors import InvalidArgumentError
from reszoo.models.resnet import ResNet
from reszoo.models.summary import config_counts, count_flops, count_params
from reszoo.utils.accelerator import accelerator
from reszoo.utils.checks import (
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_ints,
    check_positive,
    check_str,
    is_int,
    type_error,
    value_error,
)
from reszoo.utils.choices import BENCH_MODES as MODES
from reszoo.utils.choices import DTYPES
from reszoo.utils.devices import AUTOCAST_DTYPES, compile_modes, device_name, pin_device, precision
from reszoo.utils.timing import torch_benchmark

# Below this many timed runs a median and an interquartile range say little.
MIN_RUNS = 5
# An interquartile range above this fraction of the median: the machine was not steady.
MAX_SPREAD = 0.2


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
    # How the row ran, so a reader can judge it: the device ("cuda:1") and how many the machine
    # has, driver and CUDA versions, whether fp32 math ran in TF32 (None off CUDA), the autocast
    # dtype, whether torch.compile really ran compiled (None: not asked) with its recompiles and
    # graph breaks, cuDNN's autotuner (None off CUDA), untimed and timed steps, and the spread
    # (interquartile range over median).
    device_id: str = "cpu"
    device_count: int = 1
    driver: str | None = None
    cuda: str | None = None
    tf32: bool | None = None
    autocast: str | None = None
    compiled: bool | None = None
    recompiles: int | None = None
    graph_breaks: int | None = None
    cudnn_benchmark: bool | None = None
    warmup: int = 0
    timed_steps: int = 0
    spread: float | None = None
    # Why this row should be read with care ("few runs: ...", "noisy: ...", "slow dtype: ..."): the
    # text before the colon is the table's note.
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d


@dataclass(frozen=True)
class StepSettings:
    """What one timed step runs, checked once when made; every step built from it shares the checks.

    Args:
        mode: ``"infer"`` (eval, inference_mode) or ``"train"`` (forward, loss, backward, SGD step).
        input_size: ``(C, H, W)``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, a ``torch.device``, or ``None`` / ``"auto"`` for
            the best present; held as the ``torch.device`` :func:`reszoo.utils.devices.pin_device` gives
            (a bare ``"cuda"`` becomes ``cuda:N``, the current GPU).
        batch_size: images per step; ``None`` for :func:`default_batch_size`.
        dtype: ``"fp32"``, ``"tf32"``, ``"bf16"`` or ``"fp16"`` (autocast).
        channels_last: NHWC memory format for the model and the input.
        compile: a ``torch.compile`` mode or ``None`` for eager.
        cuda_graphs: capture the step in a CUDA graph (CUDA only; eager models).
    """

    mode: str
    input_size: tuple[int, ...]
    device: torch.device | str | None = None
    batch_size: int | None = None
    dtype: str = "fp32"
    channels_last: bool = False
    compile: str | None = None
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        if self.device is not None and not isinstance(self.device, (str, torch.device)):
            raise type_error("device", self.device, "None, 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device")
        object.__setattr__(self, "device", pin_device(self.device))
        check_choice("mode", self.mode, MODES)
        input_size = check_ints("input_size", self.input_size, length=3, minimum=1)
        object.__setattr__(self, "input_size", input_size)
        if self.batch_size is None:
            object.__setattr__(self, "batch_size", default_batch_size(self.device.type, input_size))
        check_int("batch_size", self.batch_size, minimum=1)
        check_choice("dtype", self.dtype, DTYPES)
        if self.dtype == "tf32" and not has_tf32(self.device):
            raise InvalidArgumentError(
                f"dtype='tf32' is the TensorFloat-32 mode of NVIDIA GPUs from Ampere (compute capability 8.0) "
                f"on; on device={str(self.device)!r} it would be plain fp32, so it is refused; use dtype='fp32'."
            )
        check_bool("channels_last", self.channels_last)
        check_bool("cuda_graphs", self.cuda_graphs)
        if self.compile is not None:
            check_choice("torch.compile mode", self.compile, compile_modes())
        if self.cuda_graphs and self.device.type != "cuda":
            raise InvalidArgumentError(f"cuda_graphs needs a CUDA device, received device={str(self.device)!r}.")
        if self.cuda_graphs and self.compile:
            raise InvalidArgumentError(
                "Use compile='reduce-overhead' for CUDA graphs with torch.compile, not both options."
            )


def default_batch_size(device_type: str, input_size: Sequence[int]) -> int:
    """A batch size that keeps a CPU run short and fills a GPU: CPU 64 at 32x32, 16 at 224x224."""
    pixels = math.prod(input_size[1:])
    if device_type == "cpu":
        return 64 if pixels <= 64 * 64 else 16
    return 256


def forward_flops(model: nn.Module, input_size: Sequence[int]) -> int:
    """Forward FLOPs of one image (2 per MAC); exact and free for reszoo models, from their config."""
    if isinstance(model, ResNet):
        return 2 * config_counts(model.config, input_size)[1]
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

    The model is moved to ``device`` (and channels_last) in place, and compiled if asked; inputs
    are made once, on the device, so the timed step excludes data loading. Training is forward,
    cross-entropy, backward and an SGD step with momentum, as in the paper. The options are
    :class:`StepSettings`'s (``compile`` is a ``torch.compile`` mode or ``None`` for eager);
    :func:`build_step` takes them already checked.
    """
    settings = StepSettings(
        mode=mode,
        input_size=input_size,
        device=device,
        batch_size=batch_size,
        dtype=dtype,
        channels_last=channels_last,
        compile=compile,
        cuda_graphs=cuda_graphs,
    )
    return build_step(model, settings)


def build_step(model: nn.Module, settings: StepSettings) -> Callable[[], Any]:
    """:func:`make_step` for settings already checked (a :class:`StepSettings`)."""
    s, device = settings, settings.device
    acc = accelerator(device)
    where = acc.tensor_device(device)  # ``device`` itself, except under a test's stand-in accelerator
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format
    model = model.to(device=where, memory_format=fmt).train(s.mode == "train")
    x = torch.randn(s.batch_size, *s.input_size, device=where).contiguous(memory_format=fmt)
    num_classes = getattr(model, "num_classes", None) or 1000
    target = torch.randint(0, int(num_classes), (s.batch_size,), device=where)
    fn: Callable[[torch.Tensor], torch.Tensor] = model
    if s.compile:
        fn = compile_model(model, mode=s.compile, backend=acc.compile_backend)
    # A CUDA graph replays what was captured: autocast's cast-weight cache must be off, both in
    # the capture (make_graphed_callables refuses it) and in the steps that replay it.
    cache = not s.cuda_graphs

    if s.mode == "infer":

        def step() -> torch.Tensor:
            with torch.inference_mode(), precision(s.dtype, where.type, cache_enabled=cache):
                return fn(x)

        return acc.graph_inference(step, device) if s.cuda_graphs else step

    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    if s.cuda_graphs:
        # Graph forward and backward; the optimizer step stays eager (its state is outside).
        with precision(s.dtype, where.type, cache_enabled=False):
            fn = acc.graph_module(model, x)

    def train_step() -> torch.Tensor:
        with precision(s.dtype, where.type, cache_enabled=cache):
            loss = F.cross_entropy(fn(x), target)
        loss.backward()
        opt.step()
        # Always to None: a graphed backward hands back its static gradient buffers, which the
        # first step's .grad then aliases; zeroed in place, the next replay would add the
        # gradient onto itself (2x from the second step on).
        opt.zero_grad(set_to_none=True)
        return loss

    return train_step


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
    warmup: int | None = None,
    min_run_time: float = 1.0,
    peak_tflops: float | None = None,
    name: str | None = None,
) -> BenchResult:
    """Measure one model at one batch size, isolated from the rows before and after it.

    Each measurement runs under :func:`reszoo.bench.isolation.run_isolated`: on its own device (made
    current), with cuDNN's autotuner on CUDA, the fp32 precision its dtype means, a fresh
    torch.compile, and peak memory counted from the end of warm-up.

    Args:
        model: the module (moved to ``device`` in place; pass a copy to keep the original).
        input_size, batch_size, mode, dtype, channels_last, compile, cuda_graphs: as in
            :class:`StepSettings`; ``input_size`` defaults to ``model.config.input_size`` for
            reszoo models; ``compile`` happens during warm-up, outside the timing.
        device: defaults to :func:`reszoo.utils.devices.default_device`.
        warmup: untimed steps first (cuDNN autotuning, allocator, compilation); None for 10 on a
            GPU (as timm's benchmark) and 3 on a CPU; at least 1 when compiling or graphing.
        min_run_time: seconds of timed steps (``Timer.blocked_autorange``).
        peak_tflops: the device's peak for ``dtype``; defaults to :data:`PEAK_TFLOPS`.
        name: label for the result; defaults to the model's class name.

    Returns:
        A :class:`BenchResult`; ``status="oom"`` when the batch does not fit (cuBLAS and cuDNN
        allocation failures included), ``status="error"`` with the message for any other
        ``RuntimeError``. A fatal device error (illegal memory access) is raised: the CUDA
        context is unusable.

    Raises:
        InvalidArgumentError, ArgumentTypeError: an option outside its valid values, before any work.
    """
    settings = StepSettings(
        mode=mode,
        input_size=_input_size(model) if input_size is None else input_size,
        device=device,
        batch_size=batch_size,
        dtype=dtype,
        channels_last=channels_last,
        compile=compile,
        cuda_graphs=cuda_graphs,
    )
    if warmup is not None:  # None: default_warmup
        check_int("warmup", warmup, minimum=0)
    check_positive("min_run_time", min_run_time)
    check_positive("peak_tflops", peak_tflops, optional=True)
    check_str("name", name, optional=True)
    result = new_result(model, name=name or type(model).__name__, settings=settings, peak_tflops=peak_tflops)
    result.warmup = default_warmup(settings) if warmup is None else warmup
    if settings.compile or settings.cuda_graphs:
        result.warmup = max(result.warmup, 1)  # compile and capture before the timing starts
    row, times = run_isolated(
        lambda row: _run(model, settings, row, warmup=result.warmup, min_run_time=min_run_time, label=result.model),
        settings.device,
        dtype=settings.dtype,
        compiled=bool(settings.compile),
    )
    row.fill(result)
    if times is not None:
        fill_times(result, *times)
    return result


def default_warmup(settings: StepSettings) -> int:
    """Untimed steps before timing: 10 on a GPU (clocks ramp up, cuDNN autotunes), 3 on a CPU."""
    return 3 if settings.device.type == "cpu" else 10


def _run(
    model: nn.Module, settings: StepSettings, row: Row, *, warmup: int, min_run_time: float, label: str
) -> tuple[list[float], int]:
    # The step lives only in this frame: once it returns (or its error is handled), the step's
    # tensors, optimizer state and graphs can be freed before the next row.
    step = build_step(model, settings)
    return _timed(step, warmup=warmup, min_run_time=min_run_time, label=label, row=row)


def _input_size(model: nn.Module) -> tuple[int, ...]:
    config = getattr(model, "config", None)
    if config is None:
        raise InvalidArgumentError("input_size is required for models without a reszoo config, received None.")
    return config.input_size


def _timed(
    step: Callable[[], Any], *, warmup: int, min_run_time: float, label: str, row: Row | None = None
) -> tuple[list[float], int]:
    """Per-step times in seconds of ``step`` after ``warmup`` untimed calls (``Timer.blocked_autorange``),
    and the steps per timed block; ``row`` hears after the first step, the warm-up and the timing."""
    for i in range(warmup):
        step()
        if i == 0 and row is not None:
            row.after_first_step()
    if row is not None:
        row.after_warmup()
    # Timer defaults to one thread; benchmark with what the user's process would use.
    timer = torch_benchmark().Timer(
        stmt="step()", globals={"step": step}, label=label, num_threads=torch.get_num_threads()
    )
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    if row is not None:
        row.after_timing()
    return list(measurement.times), measurement.number_per_run


def new_result(model: nn.Module, *, name: str, settings: StepSettings, peak_tflops: float | None = None) -> BenchResult:
    """A result not yet timed: the settings, parameters, FLOPs and peak of ``model``.

    ``peak_tflops`` defaults to :func:`peak_tflops_for` the device. A training step counts 3x the
    forward FLOPs.
    """
    s = settings
    dev_name = device_name(s.device)
    slow = dtype_warning(s.dtype, s.device)
    facts = accelerator(s.device).describe(s.device)
    return BenchResult(
        model=name,
        mode=s.mode,
        device=dev_name,
        batch_size=s.batch_size,
        input_size=s.input_size,
        dtype=s.dtype,
        channels_last=s.channels_last,
        compile=s.compile,
        cuda_graphs=s.cuda_graphs,
        params=count_params(model),
        flops_per_image=forward_flops(model, s.input_size) * (3 if s.mode == "train" else 1),
        peak_tflops=peak_tflops if peak_tflops is not None else peak_tflops_for(dev_name, s.dtype),
        device_id=str(s.device),
        device_count=facts.get("device_count") or 1,
        driver=facts.get("driver"),
        cuda=facts.get("cuda"),
        autocast=s.dtype if s.dtype in AUTOCAST_DTYPES else None,
        warnings=[slow] if slow else [],
    )


def median_iqr(times: Sequence[float]) -> tuple[float, float]:
    """Median and interquartile range of per-step times, as ``torch.utils.benchmark`` computes them."""
    tbench = torch_benchmark()
    m = tbench.Measurement(number_per_run=1, raw_times=list(times), task_spec=tbench.TaskSpec("step()", "pass"))
    return m.median, m.iqr


def fill_times(result: BenchResult, times: Sequence[float], number_per_run: int = 1) -> None:
    """Median, interquartile range and the derived rates from per-step times in seconds.

    ``number_per_run`` is the steps behind each time (a timed block's length): with the number of
    times it gives ``timed_steps``. Adds a warning to ``result.warnings`` for fewer than
    :data:`MIN_RUNS` runs or a spread above :data:`MAX_SPREAD`.
    """
    median, iqr = median_iqr(times)
    result.runs = len(times)
    if len(times) < MIN_RUNS:
        result.warnings.append(
            f"few runs: only {len(times)} timed run{'s' * (len(times) != 1)} (< {MIN_RUNS}), so the median and "
            "spread say little; give it a longer min_run_time (--min-run-time)"
        )
    elif iqr / median > MAX_SPREAD:
        result.warnings.append(
            f"noisy: the spread (IQR / median) is {iqr / median:.0%} (> {MAX_SPREAD:.0%}); the machine was not "
            "steady (other work, frequency changes): measure again"
        )
    result.time_median_ms = median * 1e3
    result.time_iqr_ms = iqr * 1e3
    result.timed_steps = len(times) * number_per_run
    result.spread = iqr / median if median > 0 else None
    result.images_per_s = result.batch_size / median
    result.tflops = result.flops_per_image * result.images_per_s / 1e12
    if result.peak_tflops:
        result.peak_fraction = result.tflops / result.peak_tflops


def sweep(
    model_fn: Callable[[], nn.Module],
    *,
    batch_sizes: Sequence[int | None],
    name: str,
    on_result: Callable[[BenchResult], Any] | None = None,
    **kwargs: Any,
) -> list[BenchResult]:
    """:func:`measure` a fresh model at each batch size; an out-of-memory size is recorded, not fatal.

    ``None`` in ``batch_sizes`` is :func:`default_batch_size`; ``on_result`` is called with each
    result as soon as it is measured (to show progress or save it); ``kwargs`` go to :func:`measure`.
    """
    expected = "a non-empty sequence of batch sizes (integers, or None for the default)"
    if isinstance(batch_sizes, (str, bytes, bytearray)) or not isinstance(batch_sizes, Sequence):
        raise type_error("batch_sizes", batch_sizes, expected)
    if not batch_sizes or not all(bs is None or is_int(bs) for bs in batch_sizes):
        raise value_error("batch_sizes", batch_sizes, expected)
    check_callable("model_fn", model_fn)
    check_str("name", name)
    check_callable("on_result", on_result, optional=True)
    results = []
    for bs in batch_sizes:
        results.append(measure(model_fn(), batch_size=bs, name=name, **kwargs))
        if on_result is not None:
            on_result(results[-1])
    return results
