"""Device policy, in one place: which device, which memory format, which precision, which rank.

The trainer, the benchmark, the inference fast path and the CLI all ask here, so ``reszoo train``
and ``reszoo bench`` pick the same device on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator

import torch

from reszoo.checks import check_choice, type_error, unknown_name_error, value_error

DEVICE_TYPES = ("cpu", "cuda", "mps")
DTYPES = ("fp32", "tf32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> str:
    """The best device present: ``"cuda"``, then ``"mps"``, then ``"cpu"``."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) of this process.

    Taken from the process group when one is initialised, else from the launcher's environment
    (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as torchrun sets them); ``(0, 1, 0)`` for a single process.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size(), local_rank
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    return int(os.environ.get("RANK", "0")), world, local_rank


def resolve_device(device: str | torch.device | None = None, *, check: bool = True) -> torch.device:
    """``device`` as a ``torch.device``, with one meaning everywhere.

    ``None`` or ``"auto"`` is :func:`default_device`. A bare ``"cuda"`` under a multi-process
    launch is this process's GPU (``LOCAL_RANK`` modulo the GPUs present), so each rank takes its
    own. With ``check``, a device that cannot be used here (no CUDA, index out of range, no MPS)
    is refused now rather than at the first tensor.

    Raises:
        InvalidArgumentError: an unparsable or unavailable device, naming the valid choices.
    """
    if device is None or device == "auto":
        device = default_device()
    if not isinstance(device, (str, torch.device)):
        raise type_error("device", device, f"None, 'auto', one of {', '.join(DEVICE_TYPES)} or a torch.device")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise unknown_name_error("device", str(device), ["auto", *DEVICE_TYPES, "cuda:N"]) from None
    if parsed.type == "cuda" and parsed.index is None and torch.cuda.is_available():
        _, world, local_rank = distributed()
        if world > 1:
            parsed = torch.device("cuda", local_rank % torch.cuda.device_count())
    if check:
        _check_available(parsed)
    return parsed


def _check_available(device: torch.device) -> None:
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise value_error("device", str(device), "an available device (torch.cuda.is_available() is False)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise value_error("device", str(device), f"cuda:0 ... cuda:{torch.cuda.device_count() - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise value_error("device", str(device), "an available device (torch.backends.mps.is_available() is False)")
    elif device.type not in DEVICE_TYPES:
        raise value_error("device", str(device), f"one of {', '.join(DEVICE_TYPES)}")


def device_name(device: str | torch.device) -> str:
    """A readable name: the GPU's model, else the CPU's."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or device.type


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
    check_choice("device type", device_type, DEVICE_TYPES)
    # MPS has not been measured here; keep the layout every kernel supports.
    return torch.channels_last if device_type in ("cpu", "cuda") else torch.contiguous_format


@contextlib.contextmanager
def precision(dtype: str, device_type: str) -> Iterator[None]:
    """Autocast for bf16/fp16, TF32 matmuls and convolutions for tf32, nothing for fp32."""
    check_choice("dtype", dtype, DTYPES)
    if dtype in AUTOCAST_DTYPES:
        with torch.autocast(device_type=device_type, dtype=AUTOCAST_DTYPES[dtype]):
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


def compile_modes() -> tuple[str, ...]:
    """The ``torch.compile`` modes this torch accepts (imports inductor, so call it only when compiling)."""
    from torch._inductor import list_mode_options

    return tuple(list_mode_options())
