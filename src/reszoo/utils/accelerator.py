"""The one seam between reszoo and a device's runtime: what differs between a CPU, CUDA and MPS.

Everything that only a GPU would exercise goes through an :class:`Accelerator`, one per device
type: waiting for the device, its memory counters, the device a process works on, CUDA-graph
capture, the random generator of a device, and the facts a result depends on (name, count,
driver, clocks). ``accelerator("cuda:1")`` gives the one for a device. Tests put a stand-in in
its place with :func:`use_accelerator` (``tests/test_gpu_paths.py`` drives every CUDA branch of
the benchmark and the trainer with a fake one on a CPU); a stand-in's :meth:`~Accelerator.tensor_device`
says where its tensors really live.

Process-wide settings that decide what a GPU computes are set here and put back afterwards:

- :func:`fp32_math`: the fp32 precision of matmuls and convolutions (IEEE or TF32). It uses only
  torch's per-operation ``fp32_precision`` API (torch >= 2.9); the legacy ``allow_tf32`` flags
  are never read or written, because mixing the two raises ("a mix of the legacy and new APIs").
- :func:`cudnn_benchmark`: cuDNN's autotuner, on for a CUDA run and off again after it.

:func:`failure_kind` sorts the errors a measurement can end with: out of memory (including
cuBLAS and cuDNN allocation failures and the CPU allocator's), a fatal device error (the CUDA
context is unusable), or an ordinary error; :func:`batch_fits` turns out of memory into one line
that names the batch size tried and a smaller one (training, evaluation, prediction).
"""

from __future__ import annotations

import contextlib
import functools
import platform
import re
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import torch

from reszoo.errors import OutOfMemoryError
from reszoo.utils.checks import value_error

__all__ = [
    "FP32_FLAGS",
    "Accelerator",
    "CudaAccelerator",
    "MpsAccelerator",
    "accelerator",
    "batch_fits",
    "cudnn_benchmark",
    "failure_kind",
    "fp32_flags",
    "fp32_math",
    "tf32_enabled",
    "use_accelerator",
]


class Accelerator:
    """What reszoo asks of a device type. This base is the CPU: always present, nothing to wait for,
    no memory counters, no graphs. Subclasses override what their runtime does differently."""

    type = "cpu"
    # The torch.compile backend a measurement on this device uses ("inductor"; a stand-in may
    # use "eager" to keep tests fast while the compile bookkeeping stays real).
    compile_backend = "inductor"

    def is_available(self) -> bool:
        return True

    def device_count(self) -> int:
        return 1

    def current_index(self) -> int:
        """The index of this process's current device of this type."""
        return 0

    def set_current(self, device: torch.device) -> None:
        """Make ``device`` the current one (NCCL, the default stream and new tensors follow it)."""

    def scope(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """A context in which ``device`` is current: streams, graphs and synchronisation go to it."""
        return contextlib.nullcontext()

    def synchronize(self, device: torch.device) -> None:
        """Wait until ``device`` has finished the work queued on it."""

    def tensor_device(self, device: torch.device) -> torch.device:
        """Where tensors for ``device`` are placed: ``device`` itself, except for a stand-in."""
        return device

    def name(self, device: torch.device) -> str:
        return platform.processor() or platform.machine() or device.type

    def capability(self, device: torch.device) -> tuple[int, int] | None:
        """The CUDA compute capability, or None off NVIDIA GPUs."""
        return None

    def empty_cache(self, device: torch.device) -> None:
        """Give cached, unused memory back to the device."""

    def reset_peak_memory(self, device: torch.device) -> None:
        """Start the peak-memory counter of ``device`` again from what is allocated now."""

    def peak_memory_bytes(self, device: torch.device) -> int | None:
        """The most memory allocated on ``device`` since the last reset; None where not counted."""
        return None

    def generator(self, device: torch.device, seed: int) -> torch.Generator:
        """A random generator on ``device`` seeded with ``seed``."""
        return torch.Generator(device=self.tensor_device(device)).manual_seed(seed)

    def graph_inference(self, step: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
        """``step`` (static inputs) captured in a device graph; returns its replay."""
        raise value_error("device", str(device), "a CUDA device for graph capture")

    def graph_module(self, module: torch.nn.Module, sample: torch.Tensor) -> Callable[..., Any]:
        """``module``'s forward and backward captured in device graphs (``make_graphed_callables``)."""
        raise value_error("device", str(sample.device), "a CUDA device for graph capture")

    def describe(self, device: torch.device) -> dict[str, Any]:
        """What a result on ``device`` depends on: name, count, versions; clocks and power where known."""
        return {"device_name": self.name(device), "device_count": self.device_count(), "driver": None, "cuda": None}


class CudaAccelerator(Accelerator):
    """NVIDIA GPUs through ``torch.cuda``; every call names its device, so ``cuda:1`` means GPU 1."""

    type = "cuda"

    def is_available(self) -> bool:
        return torch.cuda.is_available()

    def device_count(self) -> int:
        return torch.cuda.device_count()

    def current_index(self) -> int:
        return torch.cuda.current_device()

    def set_current(self, device: torch.device) -> None:
        torch.cuda.set_device(device)

    def scope(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        return torch.cuda.device(device)

    def synchronize(self, device: torch.device) -> None:
        torch.cuda.synchronize(device)

    def name(self, device: torch.device) -> str:
        return torch.cuda.get_device_name(device)

    def capability(self, device: torch.device) -> tuple[int, int] | None:
        return torch.cuda.get_device_capability(device)

    def empty_cache(self, device: torch.device) -> None:
        with torch.cuda.device(device):
            torch.cuda.empty_cache()

    def reset_peak_memory(self, device: torch.device) -> None:
        torch.cuda.reset_peak_memory_stats(device)

    def peak_memory_bytes(self, device: torch.device) -> int | None:
        return torch.cuda.max_memory_allocated(device)

    def graph_inference(self, step: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
        # PyTorch's whole-network capture recipe: warm up on a side stream, capture, replay. Every
        # stream is made on ``device``: made on the current device instead, a capture for cuda:1
        # would record nothing while GPU 1 runs the kernels.
        with torch.cuda.device(device):
            side = torch.cuda.Stream(device=device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(3):
                    step()
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = step()

        def replay() -> Any:
            graph.replay()
            return out

        return replay

    def graph_module(self, module: torch.nn.Module, sample: torch.Tensor) -> Callable[..., Any]:
        # make_graphed_callables refuses autocast with its weight cache on: the caller enters
        # autocast with cache_enabled=False (reszoo.utils.devices.precision(..., cache_enabled=False)).
        with torch.cuda.device(sample.device):
            return torch.cuda.make_graphed_callables(module, (sample,))

    def describe(self, device: torch.device) -> dict[str, Any]:
        index = device.index if device.index is not None else torch.cuda.current_device()
        return dict(_cuda_facts(index))


@functools.cache
def _cuda_facts(index: int) -> tuple[tuple[str, Any], ...]:
    props = torch.cuda.get_device_properties(index)
    facts: dict[str, Any] = {
        "device_name": props.name,
        "device_count": torch.cuda.device_count(),
        "capability": f"{props.major}.{props.minor}",
        "memory_gb": round(props.total_memory / 2**30, 1),
        "multiprocessors": props.multi_processor_count,
        "max_sm_clock_mhz": round(props.clock_rate / 1000),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "driver": None,
    }
    bus = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
    facts.update(_nvidia_smi(bus))
    return tuple(facts.items())


_SMI_FIELDS = ("driver", "power_limit_w", "sm_clock_mhz", "mig_mode", "persistence_mode")


def _nvidia_smi(bus_id: str) -> dict[str, Any]:
    """Driver version, power limit, current SM clock and MIG mode from ``nvidia-smi`` (empty if absent).

    torch reports none of them, and each changes what a GPU measures: a lowered power limit or
    a MIG slice is a different machine.
    """
    query = "driver_version,power.limit,clocks.sm,mig.mode.current,persistence_mode"
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits", "-i", bus_id],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    values = [v.strip() for v in done.stdout.strip().splitlines()[0].split(",")] if done.stdout.strip() else []
    return dict(zip(_SMI_FIELDS, values, strict=False))


class MpsAccelerator(Accelerator):
    """Apple GPUs through ``torch.mps``: one device, no peak counter, no graphs."""

    type = "mps"

    def is_available(self) -> bool:
        return torch.backends.mps.is_available()

    def synchronize(self, device: torch.device) -> None:
        torch.mps.synchronize()

    def empty_cache(self, device: torch.device) -> None:
        torch.mps.empty_cache()

    def name(self, device: torch.device) -> str:
        return f"Apple GPU ({platform.machine()})"


_ACCELERATORS: dict[str, Accelerator] = {"cpu": Accelerator(), "cuda": CudaAccelerator(), "mps": MpsAccelerator()}


def accelerator(device: str | torch.device) -> Accelerator:
    """The :class:`Accelerator` of ``device`` (a ``torch.device``, ``"cuda:1"`` or a type such as ``"cuda"``)."""
    kind = torch.device(device).type
    return _ACCELERATORS.get(kind, _ACCELERATORS["cpu"])


@contextlib.contextmanager
def use_accelerator(device_type: str, stand_in: Accelerator) -> Iterator[Accelerator]:
    """Let ``stand_in`` answer for ``device_type`` inside the block (how tests drive CUDA on a CPU)."""
    old = _ACCELERATORS.get(device_type)
    _ACCELERATORS[device_type] = stand_in
    try:
        yield stand_in
    finally:
        if old is None:
            del _ACCELERATORS[device_type]
        else:
            _ACCELERATORS[device_type] = old


# -- process-wide flags ------------------------------------------------------------------------

# torch's per-operation fp32 precision flags: "ieee" (full fp32), "tf32" (TensorFloat-32 tensor
# cores) or "none" (the operation's default: TF32 for cuDNN convolutions, IEEE for cuBLAS). The
# oneDNN ones decide the CPU's fp32 (a "bf16" there would make CPU fp32 rows bf16).
FP32_FLAGS = ("cuda.matmul", "cudnn.conv", "cudnn.rnn", "mkldnn.matmul", "mkldnn.conv", "mkldnn.rnn")
_GPU_FLAGS = FP32_FLAGS[:3]


def _flag(name: str) -> Any:
    backend, op = name.split(".")
    return getattr(getattr(torch.backends, backend), op)


def fp32_flags() -> dict[str, str]:
    """The fp32 precision of each operation in :data:`FP32_FLAGS` now (read with the new API only)."""
    return {name: _flag(name).fp32_precision for name in FP32_FLAGS}


def tf32_enabled(flags: dict[str, str]) -> bool:
    """Whether fp32 GPU matmuls or convolutions run in TF32 under ``flags`` (from :func:`fp32_flags`)."""
    return any(flags.get(name) == "tf32" for name in ("cuda.matmul", "cudnn.conv"))


@contextlib.contextmanager
def fp32_math(mode: str) -> Iterator[dict[str, str]]:
    """fp32 matmuls and convolutions computed as ``mode`` says inside the block, as before after it.

    ``"ieee"``: full fp32 on every backend (cuDNN's default TF32 convolutions off). ``"tf32"``:
    TF32 for CUDA matmuls, cuDNN convolutions and RNNs (the CPU's flags are left alone). Yields
    the flags in force. When they already hold, nothing is written, so a step that enters this
    once per call costs a few reads.
    """
    if mode not in ("ieee", "tf32"):
        raise value_error("fp32 math mode", mode, "'ieee' or 'tf32'")
    names = FP32_FLAGS if mode == "ieee" else _GPU_FLAGS
    old = fp32_flags()
    if all(old[name] == mode for name in names):
        yield old
        return
    try:
        for name in names:
            _flag(name).fp32_precision = mode
        yield fp32_flags()
    finally:
        for name in names:
            _flag(name).fp32_precision = old[name]


@contextlib.contextmanager
def cudnn_benchmark(device: str | torch.device) -> Iterator[bool | None]:
    """cuDNN's autotuner on for a CUDA ``device`` inside the block, back to what it was after.

    With fixed input shapes (every benchmark row, every training step with ``drop_last``) cuDNN
    tries its algorithms on the first call and keeps the fastest. Yields the setting in force:
    True on CUDA, None elsewhere (cuDNN is not used).
    """
    if torch.device(device).type != "cuda":
        yield None
        return
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield True
    finally:
        torch.backends.cudnn.benchmark = old


# -- failures ----------------------------------------------------------------------------------

# At the edge of memory, cuBLAS and cuDNN report their own allocation failures instead of the
# caching allocator's "CUDA out of memory".
_OOM_MARKERS = (
    "out of memory",
    "can't allocate memory",  # the CPU allocator: "DefaultCPUAllocator: can't allocate memory: you tried to ..."
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
    "hipblas_status_alloc_failed",
    "cudaerrormemoryallocation",
)
# After these the CUDA context is unusable: every later row would fail too, so they stop the run.
_FATAL_MARKERS = (
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "illegal instruction",
    "misaligned address",
    "uncorrectable ecc",
)


def failure_kind(err: BaseException) -> str:
    """``"oom"``, ``"fatal"`` (the device is unusable; stop) or ``"error"`` (record it and go on)."""
    text = str(err).lower()
    if isinstance(err, torch.OutOfMemoryError) or any(m in text for m in _OOM_MARKERS):
        return "oom"
    if any(m in text for m in _FATAL_MARKERS):
        return "fatal"
    return "error"


# Which device an out-of-memory message comes from, where the caller did not say.
_ALLOCATORS = (("DefaultCPUAllocator", "cpu"), ("CUDA out of memory", "cuda"), ("MPS backend out of memory", "mps"))
# "Tried to allocate 2.00 GiB" (CUDA, MPS) or "you tried to allocate 1125899906842624 bytes" (CPU).
_TRIED = re.compile(r"tried to allocate ([0-9]+ bytes|[0-9.]+ ?[KMGT]?i?B)", re.IGNORECASE)


@contextlib.contextmanager
def batch_fits(*, doing: str, field: str, batch_size: int, device: Any = None, note: str = "") -> Iterator[None]:
    """Turn an out-of-memory error of the block into :class:`~reszoo.errors.OutOfMemoryError`, one line.

    The line names what ran, the batch size tried (as the argument ``field`` and its command-line
    option), the device and the allocation that failed, and a batch half as large to try; the
    error of torch is its ``__cause__``. Any other error passes unchanged.

    Args:
        doing: what the block does, e.g. ``"in a training step"``.
        field: the argument that sets the batch size, e.g. ``"eval_batch_size"`` (``--eval-batch-size``).
        batch_size: its value.
        device: where it ran, named in the message (None or ``"auto"``: as torch's message names it).
        note: text after the batch size, e.g. ``" (64 per process)"``.
    """
    try:
        yield
    except RuntimeError as err:
        if failure_kind(err) != "oom":
            raise
        tried = _TRIED.search(str(err))
        what = f"tried to allocate {tried.group(1)}" if tried else str(err).strip().splitlines()[0][:120]
        if device is None or device == "auto":
            device = next((name for marker, name in _ALLOCATORS if marker in str(err)), None)
        where = f" on {device}" if device is not None else ""
        option = "--" + field.replace("_", "-")
        smaller = f", e.g. {batch_size // 2}" if batch_size > 1 else ""
        raise OutOfMemoryError(
            f"Out of memory {doing} at {field}={batch_size}{note}{where} ({what}); try a smaller {field} "
            f"({option}{smaller})."
        ) from err
