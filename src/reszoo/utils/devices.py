"""Device policy, in one place: which device, which memory format, which precision, which rank.

The trainer, the benchmark, the inference fast path and the CLI all ask here, so ``reszoo train``
and ``reszoo bench`` pick the same device on the same machine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from reszoo.utils.accelerator import accelerator, fp32_math
from reszoo.utils.checks import check_choice, type_error, unknown_name_error, value_error
from reszoo.utils.choices import DEVICE_TYPES, DEVICES, DTYPES

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> str:
    """The best device present: ``"cuda"``, then ``"mps"``, then ``"cpu"``."""
    for kind in ("cuda", "mps"):
        if accelerator(kind).is_available():
            return kind
    return "cpu"


# Where launchers put a process's rank on its node: torchrun, Slurm's srun, Open MPI, Intel MPI.
LOCAL_RANK_VARIABLES = ("LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")


def distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) of this process.

    Rank and world size come from the process group when one is initialised (torchrun,
    ``mp.spawn``, a caller's own ``init_process_group``), else from the launcher's environment
    (``RANK``/``WORLD_SIZE`` as torchrun sets them); ``(0, 1, 0)`` for a single process. The
    local rank (which GPU of the node) is the first of :data:`LOCAL_RANK_VARIABLES` that is set;
    without any (``mp.spawn``, a process group made by hand) it is the rank itself, which
    :func:`resolve_device` takes modulo the GPUs present: right when each node runs one process
    per GPU with consecutive ranks.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return 0, 1, 0
        rank = int(os.environ.get("RANK", "0"))
    if world <= 1:
        return rank, world, 0
    local = next((os.environ[v] for v in LOCAL_RANK_VARIABLES if os.environ.get(v, "").strip()), None)
    return rank, world, int(local) if local is not None else rank


def resolve_device(device: str | torch.device | None = None, *, check: bool = True) -> torch.device:
    """``device`` as a ``torch.device``, with one meaning everywhere.

    ``None`` or ``"auto"`` is :func:`default_device`. A bare ``"cuda"`` under a multi-process
    launch is this process's GPU (``LOCAL_RANK`` modulo the GPUs present), so each rank takes its
    own. With ``check``, a device that cannot be used here (no CUDA, index out of range, no MPS)
    is refused now rather than at the first tensor.

    Raises:
        InvalidArgumentError: an unparsable or unavailable device, naming the valid choices.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        device = default_device()
    if not isinstance(device, (str, torch.device)):
        raise type_error("device", device, f"None, 'auto', one of {', '.join(DEVICE_TYPES)} or a torch.device")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise unknown_name_error("device", str(device), [*DEVICES, "cuda:N"]) from None
    cuda = accelerator("cuda")
    if parsed.type == "cuda" and parsed.index is None and cuda.is_available():
        _, world, local_rank = distributed()
        if world > 1:
            parsed = torch.device("cuda", local_rank % cuda.device_count())
    if check:
        _check_available(parsed)
    return parsed


def pin_device(device: str | torch.device | None = None, *, make_current: bool = False) -> torch.device:
    """:func:`resolve_device`, with a bare ``"cuda"`` named: ``cuda:N``, this process's current GPU.

    The trainer, the benchmark and its self-check use it, so a result, a log line or a process
    group names the GPU that ran, and all three agree on which one that is.

    Args:
        device: as for :func:`resolve_device`.
        make_current: also make it the current device (NCCL, the default stream and new tensors
            follow the current device); the trainer does, a benchmark row scopes its own.

    Raises:
        InvalidArgumentError: as :func:`resolve_device`.
    """
    device = resolve_device(device)
    if device.type == "cuda":
        cuda = accelerator(device)
        if device.index is None:
            device = torch.device("cuda", cuda.current_index())
        if make_current:
            cuda.set_current(device)
    return device


def _check_available(device: torch.device) -> None:
    if device.type == "cuda":
        cuda = accelerator("cuda")
        if not cuda.is_available():
            raise value_error("device", str(device), "an available device (torch.cuda.is_available() is False)")
        if device.index is not None and device.index >= cuda.device_count():
            raise value_error("device", str(device), f"cuda:0 ... cuda:{cuda.device_count() - 1}")
    elif device.type == "mps" and not accelerator("mps").is_available():
        raise value_error("device", str(device), "an available device (torch.backends.mps.is_available() is False)")
    elif device.type not in DEVICE_TYPES:
        raise value_error("device", str(device), f"one of {', '.join(DEVICE_TYPES)}")


def device_name(device: str | torch.device) -> str:
    """A readable name: the GPU's model, else the CPU's."""
    device = torch.device(device)
    return accelerator(device).name(device)


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
def precision(dtype: str, device_type: str, *, cache_enabled: bool = True) -> Iterator[None]:
    """The arithmetic of ``dtype`` inside the block; every flag it touches is put back after.

    - ``"fp32"``: IEEE fp32 everywhere. cuDNN's default (TF32 convolutions) is switched off, so
      an fp32 row on an Ampere-or-newer GPU times fp32, not TF32.
    - ``"tf32"``: TF32 for CUDA matmuls and cuDNN convolutions (NVIDIA Ampere or newer).
    - ``"bf16"``/``"fp16"``: autocast to that dtype; what autocast leaves in fp32 is IEEE fp32.

    Flags are set with torch's ``fp32_precision`` API only (:func:`reszoo.utils.accelerator.fp32_math`).

    Args:
        dtype: one of :data:`reszoo.utils.choices.DTYPES`.
        device_type: the autocast device type (``"cpu"``, ``"cuda"``, ``"mps"``).
        cache_enabled: autocast's cast-weight cache; ``False`` when the block captures a CUDA
            graph (``make_graphed_callables`` refuses the cache, and a graph must not replay
            casts cached from a capture).
    """
    check_choice("dtype", dtype, DTYPES)
    with fp32_math("tf32" if dtype == "tf32" else "ieee"):
        if dtype in AUTOCAST_DTYPES:
            with torch.autocast(device_type=device_type, dtype=AUTOCAST_DTYPES[dtype], cache_enabled=cache_enabled):
                yield
        else:
            yield


def compile_modes() -> tuple[str, ...]:
    """The ``torch.compile`` modes this torch accepts (imports inductor, so call it only when compiling)."""
    from torch._inductor import list_mode_options

    return tuple(list_mode_options())
