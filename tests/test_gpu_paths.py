"""Every GPU-only branch of the benchmark and the trainer, run on a CPU (issue 15).

A fake CUDA accelerator (:class:`FakeCuda`) answers for ``"cuda"`` through the seam in
``reszoo.utils.accelerator``: it has two devices, logs each call (device scope, synchronisation,
memory counters, graph capture, generators) and places tensors on the CPU, so the logic of each
branch is asserted here. Where torch's own behaviour reproduces on a CPU it is tested for real:
autocast's cache with ``make_graphed_callables``, dynamo's recompile limit and dynamic shapes,
the fp32-precision flags and their legacy/new API mix, and gradients aliasing a graph's static
buffers. What stays unverified without a GPU is listed in docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import pathlib
import subprocess
import sys
import weakref
from collections.abc import Iterator

import pytest
import torch

import reszoo
from reszoo import bench, train
from reszoo.bench import comparing, compiling, isolation, selfcheck
from reszoo.data.datasets import DeviceCifarLoader
from reszoo.train import trainer
from reszoo.train.recipes import Recipe
from reszoo.utils import devices
from reszoo.utils.accelerator import Accelerator, failure_kind, fp32_flags, fp32_math, use_accelerator

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAST = {"warmup": 1, "min_run_time": 0.01}
MIB = 2**20


class FakeCuda(Accelerator):
    """Two "GPUs" whose tensors live on the CPU; every call is logged as (event, device index, ...)."""

    type = "cuda"
    compile_backend = "eager"  # dynamo's bookkeeping stays real; no inductor compile in tests

    def __init__(self, count: int = 2, name: str = "NVIDIA H100 80GB HBM3") -> None:
        self.count, self._name, self.current = count, name, 0
        self.log: list[tuple] = []
        self.graph = graphed_like_cuda
        self.on_empty_cache = lambda: None  # a test's probe: what is still alive when memory is handed back

    def _index(self, device: torch.device) -> int:
        return device.index if device.index is not None else self.current

    def device_count(self) -> int:
        return self.count

    def current_index(self) -> int:
        return self.current

    def set_current(self, device: torch.device) -> None:
        self.current = self._index(device)
        self.log.append(("set_current", self.current))

    @contextlib.contextmanager
    def scope(self, device: torch.device) -> Iterator[None]:
        old, self.current = self.current, self._index(device)
        self.log.append(("enter", self.current))
        try:
            yield
        finally:
            self.current = old

    def synchronize(self, device: torch.device) -> None:
        self.log.append(("sync", self._index(device)))

    def tensor_device(self, device: torch.device) -> torch.device:
        return torch.device("cpu")

    def name(self, device: torch.device) -> str:
        return self._name

    def capability(self, device: torch.device) -> tuple[int, int]:
        return (9, 0)

    def empty_cache(self, device: torch.device) -> None:
        self.log.append(("empty_cache", self._index(device), self.on_empty_cache()))

    def reset_peak_memory(self, device: torch.device) -> None:
        self.log.append(("reset_peak", self._index(device)))

    def peak_memory_bytes(self, device: torch.device) -> int:
        self.log.append(("peak", self._index(device)))
        return 64 * MIB

    def generator(self, device: torch.device, seed: int) -> torch.Generator:
        self.log.append(("generator", self._index(device), seed))
        return torch.Generator().manual_seed(seed)

    def graph_inference(self, step, device):
        self.log.append(("graph_inference", self._index(device), self.current))
        return step

    def graph_module(self, module, sample):
        self.log.append(("graph_module", torch.is_autocast_enabled("cpu"), torch.is_autocast_cache_enabled()))
        return self.graph(module)

    def describe(self, device: torch.device) -> dict:
        return {"device_name": self._name, "device_count": self.count, "driver": "555.42.06", "cuda": "12.8"}

    def events(self, kind: str) -> list[tuple]:
        return [e for e in self.log if e[0] == kind]


def graphed_like_cuda(module: torch.nn.Module):
    """What ``make_graphed_callables`` returns, on a CPU: the backward "replay" writes parameter
    gradients into static buffers and hands back ``buffer.detach()`` (torch/cuda/graphs.py)."""
    params = tuple(p for p in module.parameters() if p.requires_grad)
    static_grads = [torch.zeros_like(p) for p in params]
    state = {}

    class Graphed(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, *ps):
            with torch.enable_grad():
                state["out"] = module(x.detach())
            return state["out"].detach()

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad):
            for buf, g in zip(static_grads, torch.autograd.grad(state["out"], params, grad), strict=True):
                buf.copy_(g)
            return (None, *(buf.detach() for buf in static_grads))

    return lambda x: Graphed.apply(x, *params)


class EagerCpu(Accelerator):
    """The CPU, compiling with dynamo's eager backend (the counters are dynamo's own)."""

    compile_backend = "eager"


@pytest.fixture
def fake_cuda() -> Iterator[FakeCuda]:
    with use_accelerator("cuda", FakeCuda()) as fake:
        yield fake


@pytest.fixture
def eager_cpu() -> Iterator[Accelerator]:
    with use_accelerator("cpu", EagerCpu()) as cpu:
        yield cpu


def probe(model: torch.nn.Module, fake: FakeCuda, seen: list) -> torch.nn.Module:
    """Log, at every forward, the current fake device and the process-wide state a step runs under."""

    def hook(module, args):
        seen.append(
            {
                "device": fake.current,
                "cudnn_benchmark": torch.backends.cudnn.benchmark,
                "flags": fp32_flags(),
                "autocast_cache": torch.is_autocast_cache_enabled(),
                "autocast": torch.is_autocast_enabled("cpu"),
            }
        )
        fake.log.append(("step", fake.current))

    model.register_forward_pre_hook(hook)
    return model


# -- C1: CUDA graphs under autocast ------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_make_graphed_callables_refuses_autocast_cache_and_precision_turns_it_off(monkeypatch, dtype):
    """Real torch: make_graphed_callables checks autocast's cache before touching a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # lets CUDA autocast switch on
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    model, x = torch.nn.Linear(4, 4), torch.randn(2, 4)
    with (
        pytest.raises(RuntimeError, match="does not support the autocast caching"),
        devices.precision(dtype, "cuda"),
    ):
        torch.cuda.make_graphed_callables(model, (x,))
    # No GPU here: with the cache off it gets past that check and fails later, for that reason.
    with pytest.raises(Exception) as err, devices.precision(dtype, "cuda", cache_enabled=False):  # noqa: PT011
        assert torch.is_autocast_enabled() and not torch.is_autocast_cache_enabled()
        torch.cuda.make_graphed_callables(model, (x,))
    assert "autocast caching" not in str(err.value)


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_graphed_rows_capture_and_replay_without_autocast_cache(fake_cuda, tiny_model, mode):
    seen: list = []
    r = bench.measure(
        probe(tiny_model(), fake_cuda, seen), mode=mode, device="cuda:1", dtype="bf16", cuda_graphs=True, **FAST
    )
    assert r.status == "ok", r.error
    if mode == "train":
        assert fake_cuda.events("graph_module") == [("graph_module", True, False)]  # autocast on, cache off
    else:
        assert fake_cuda.events("graph_inference") == [("graph_inference", 1, 1)]  # captured with GPU 1 current
    assert seen and all(s["autocast"] and not s["autocast_cache"] for s in seen)
    # The table says the row was replayed from a graph (the JSON has cuda_graphs: true).
    row = bench.to_table([r]).splitlines()[2]
    assert " eager+graphs " in row, row


# -- C2 and R1: fp32 is fp32, tf32 its own row, flags put back, new API only ----------------------


@pytest.mark.parametrize(
    ("dtype", "expected", "tf32"),
    [("fp32", "ieee", False), ("tf32", "tf32", True), ("bf16", "ieee", False)],
)
def test_rows_run_with_their_fp32_precision_and_put_it_back(fake_cuda, tiny_model, dtype, expected, tf32):
    before = fp32_flags()
    assert before["cudnn.conv"] == "tf32"  # torch's default: cuDNN convolutions in TF32
    seen: list = []
    r = bench.measure(probe(tiny_model(), fake_cuda, seen), device="cuda", dtype=dtype, **FAST)
    assert r.status == "ok", r.error
    assert {s["flags"]["cudnn.conv"] for s in seen} == {expected}
    assert {s["flags"]["cuda.matmul"] for s in seen} == {expected}
    assert r.tf32 is tf32 and r.extra["fp32_precision"]["cudnn.conv"] == expected
    assert r.autocast == (dtype if dtype == "bf16" else None)
    assert fp32_flags() == before


def _set_legacy_then_new() -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.fp32_precision = "ieee"


def _set_mixed() -> None:
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cudnn.rnn.fp32_precision = "ieee"


@pytest.mark.parametrize("setup", [lambda: None, _set_legacy_then_new, _set_mixed])
def test_precision_never_touches_the_legacy_tf32_flags(setup):
    """Real torch: after the new API set cuDNN to IEEE, reading the legacy ``allow_tf32`` raises
    ("a mix of the legacy and new APIs"); precision() only uses the new API and restores exactly."""
    saved = fp32_flags()
    try:
        setup()
        before = fp32_flags()
        for dtype in ("fp32", "tf32", "bf16", "fp16"):
            with devices.precision(dtype, "cpu"):
                assert fp32_flags()["cudnn.conv"] == ("tf32" if dtype == "tf32" else "ieee")
            assert fp32_flags() == before
        if setup is _set_mixed:
            with pytest.raises(RuntimeError, match="mix of the legacy and new APIs"):
                torch.backends.cudnn.allow_tf32  # noqa: B018 - the read is what raises
    finally:
        torch.backends.cudnn.allow_tf32 = True  # torch's default, legacy flag included
        for name, value in saved.items():
            _backend_op(name).fp32_precision = value
    assert fp32_flags() == saved and torch.backends.cudnn.allow_tf32 is True


def _backend_op(name: str):
    backend, op = name.split(".")
    return getattr(getattr(torch.backends, backend), op)


def test_fp32_math_refuses_other_modes():
    with pytest.raises(ValueError, match="'ieee' or 'tf32'"), fp32_math("bf16"):
        pass


# -- C3 and L4: torch.compile reset per row, static shapes, really compiled ----------------------


def _widths(i: int) -> dict:
    return {"depths": (1, 1, 1), "widths": (4, 8, 8 + i), "stem_width": 4}


@pytest.mark.slow
def test_every_compiled_row_compiles_because_dynamo_is_reset(monkeypatch, eager_cpu):
    """Real dynamo: all reszoo models share ResNet.forward, so without a reset the rows past the
    recompile limit run eager; the row says so. With the reset every row compiles."""

    def rows() -> list:
        models = [reszoo.ResNet(reszoo.ResNetConfig(**_widths(i))) for i in range(4)]
        with torch._dynamo.config.patch(recompile_limit=2):
            return [bench.measure(m, device="cpu", compile="default", **FAST) for m in models]

    reset = rows()
    assert [(r.compiled, r.recompiles) for r in reset] == [(True, 0)] * 4
    # The same rows without the reset (the old behaviour): the limit is hit and the rows say so.
    monkeypatch.setattr(isolation, "reset_compiler", lambda: None)
    torch._dynamo.reset()
    stale = rows()
    torch._dynamo.reset()
    assert [r.compiled for r in stale] == [True, True, False, False]
    notes = [[w.split(":")[0] for w in r.warnings if not w.startswith("few runs")] for r in stale]
    assert notes == [[], [], ["not compiled"], ["not compiled"]]


def test_compiled_rows_reset_before_and_after_and_free_memory(monkeypatch, eager_cpu, tiny_model):
    resets: list = []
    monkeypatch.setattr(isolation, "reset_compiler", lambda: resets.append(1) or torch._dynamo.reset())
    rows = bench.sweep(tiny_model, batch_sizes=[2, 4], name="tiny", device="cpu", compile="default", **FAST)
    assert len(resets) == 4  # before and after each row: cudagraph-tree pools go with the graphs
    assert [(r.compiled, r.recompiles, r.graph_breaks) for r in rows] == [(True, 0, 0)] * 2


def test_compile_model_keeps_shapes_static():
    """Real dynamo: with dynamic=False a second batch size compiles a second static graph, not a
    symbolic one (automatic dynamic shapes would make the rows of a sweep incomparable)."""
    shapes: list = []

    def backend(gm, inputs):
        shapes.append([tuple(t.shape) for t in inputs if isinstance(t, torch.Tensor) and t.shape[-1] == 8])  # images
        return gm.forward

    torch._dynamo.reset()
    fn = compiling.compile_model(torch.nn.Conv2d(3, 4, 3), mode=None, backend=backend)
    for bs in (2, 3):
        fn(torch.randn(bs, 3, 8, 8))
    torch._dynamo.reset()
    assert shapes == [[(2, 3, 8, 8)], [(3, 3, 8, 8)]]
    assert all(isinstance(d, int) for s in shapes for t in s for d in t)


def test_compile_report_words_what_happened():
    eager = compiling.CompileReport(graphs=0, graph_breaks=0, recompiles=0, eager_frames=1, limit_hit=True)
    assert not eager.compiled and eager.warning().startswith("not compiled: dynamo's recompile limit was hit")
    again = compiling.CompileReport(graphs=2, graph_breaks=0, recompiles=1, eager_frames=0, limit_hit=False)
    assert again.compiled and again.warning().startswith("recompiled: 1 recompiles")
    assert compiling.CompileReport(1, 0, 0, 0, False).warning() is None


# -- C4: cuda:N is timed, graphed and synchronised on GPU N -------------------------------------


def test_a_row_on_cuda_1_runs_with_gpu_1_current(fake_cuda, tiny_model):
    seen: list = []
    r = bench.measure(probe(tiny_model(), fake_cuda, seen), device="cuda:1", **FAST)
    assert r.status == "ok" and r.device_id == "cuda:1"
    assert seen and {s["device"] for s in seen} == {1}
    assert {e[1] for e in fake_cuda.log if e[0] in ("sync", "reset_peak", "peak", "empty_cache", "enter")} == {1}
    assert fake_cuda.current == 0  # put back


# -- L1: gradients with graphs -----------------------------------------------------------------


def _grads_per_step(monkeypatch, step, model, steps: int = 3) -> list[float]:
    seen: list = []

    def record(opt, *args, **kwargs):  # the optimizer's step, replaced by a recorder: weights stay put
        seen.append(float(sum(p.grad.abs().sum() for p in model.parameters() if p.grad is not None)))

    monkeypatch.setattr(torch.optim.SGD, "step", record)
    for _ in range(steps):
        step()
    return seen


def test_graphed_training_gradients_do_not_double(monkeypatch, fake_cuda, tiny_model):
    model = tiny_model()
    step = bench.make_step(model, mode="train", input_size=(3, 16, 16), batch_size=4, device="cuda", cuda_graphs=True)
    grads = _grads_per_step(monkeypatch, step, model)
    assert grads[0] > 0 and grads == pytest.approx([grads[0]] * 3)


def test_zeroing_gradients_in_place_with_graphs_doubles_them(tiny_model):
    """Real autograd: the first step's .grad steals the graph's static buffer; zeroing it in place
    makes the next backward add onto itself. This is why the step zeroes with set_to_none=True."""
    model = tiny_model()
    fn, x = graphed_like_cuda(model), torch.randn(4, 3, 16, 16)
    sums = []
    for _ in range(3):
        fn(x).sum().backward()
        sums.append(float(model.fc.weight.grad.abs().sum()))
        model.zero_grad(set_to_none=False)
    assert sums[1] == pytest.approx(2 * sums[0]) and sums[2] == pytest.approx(2 * sums[0])


# -- L2, R10: peak memory after warm-up, cuDNN autotuner on and put back ------------------------


def test_peak_memory_is_counted_after_warmup_and_cudnn_benchmark_is_scoped(fake_cuda, tiny_model):
    before = torch.backends.cudnn.benchmark
    seen: list = []
    r = bench.measure(probe(tiny_model(), fake_cuda, seen), device="cuda", warmup=3, min_run_time=0.01)
    assert r.status == "ok" and r.peak_memory_mb == 64 and r.extra["warmup_peak_memory_mb"] == 64
    kinds = [e[0] for e in fake_cuda.log if e[0] in ("step", "reset_peak", "peak", "sync")]
    last_reset = max(i for i, k in enumerate(kinds) if k == "reset_peak")
    assert kinds[:last_reset].count("step") == 3  # the warm-up steps come before the reset
    assert kinds[last_reset - 2 : last_reset] == ["sync", "peak"]  # warm-up finished, its peak kept
    assert kinds[-2:] == ["sync", "peak"] and "step" in kinds[last_reset:]  # timed peak read at the end
    assert {s["cudnn_benchmark"] for s in seen} == {True} and r.cudnn_benchmark is True
    assert torch.backends.cudnn.benchmark is before


# -- L3: failures are rows; memory is freed after them -------------------------------------------


class Failing(torch.nn.Module):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.conv, self.message, self.inputs = torch.nn.Conv2d(3, 4, 3), message, None

    def forward(self, x):
        if not torch.is_inference_mode_enabled():  # the FLOP count runs it under no_grad: let it pass
            return self.conv(x)
        self.inputs = weakref.ref(x)
        raise RuntimeError(self.message)


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", "oom"),
        ("cuDNN error: CUDNN_STATUS_ALLOC_FAILED", "oom"),
        ("CUDA out of memory. Tried to allocate 2.00 GiB", "oom"),
        ("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR", "error"),
        ("CUDA error: operation failed due to a previous error during capture", "error"),
    ],
)
def test_a_failing_row_is_recorded_and_its_memory_freed(fake_cuda, message, status):
    model = Failing(message)
    fake_cuda.on_empty_cache = lambda: model.inputs is not None and model.inputs() is not None
    r = bench.measure(model, input_size=(3, 8, 8), batch_size=2, device="cuda", **FAST)
    assert (r.status, r.error) == (status, message.splitlines()[0])
    assert r.peak_memory_mb is None
    # Memory is handed back after the step's tensors were freed (no traceback pins them).
    assert fake_cuda.log[-1] == ("empty_cache", 0, False)


def test_a_fatal_device_error_stops_the_run(fake_cuda):
    model = Failing("CUDA error: an illegal memory access was encountered")
    with pytest.raises(RuntimeError, match="illegal memory access"):
        bench.measure(model, input_size=(3, 8, 8), device="cuda", **FAST)
    assert fp32_flags()["cudnn.conv"] == "tf32"  # flags put back even so


def test_failure_kinds():
    assert failure_kind(torch.OutOfMemoryError("x")) == "oom"
    assert failure_kind(RuntimeError("HIPBLAS_STATUS_ALLOC_FAILED")) == "oom"
    assert failure_kind(RuntimeError("CUDA error: device-side assert triggered")) == "fatal"
    assert failure_kind(RuntimeError("shape mismatch")) == "error"


def test_a_sweep_goes_on_after_an_error_row(monkeypatch, tiny_model):
    real = bench.measuring.build_step

    def build(model, settings):
        if settings.batch_size == 3:
            raise RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED")
        return real(model, settings)

    monkeypatch.setattr(bench.measuring, "build_step", build)
    rows = bench.sweep(tiny_model, batch_sizes=[2, 3, 4], name="tiny", device="cpu", **FAST)
    assert [r.status for r in rows] == ["ok", "error", "ok"]


# -- L5: compare on a GPU ------------------------------------------------------------------------


def test_block_length_reaches_the_gpu_block_time(monkeypatch):
    clock = [0.0]

    class Timer:
        timer = staticmethod(lambda: clock[0])

    utils = type("Utils", (), {"timer": Timer})
    monkeypatch.setattr(comparing, "torch_benchmark", lambda: type("Benchmark", (), {"utils": utils}))
    steps = {"a": lambda: clock.__setitem__(0, clock[0] + 0.002), "b": lambda: clock.__setitem__(0, clock[0] + 0.004)}
    assert comparing._block_length(steps, 0.05) == 25  # the fastest variant's block lasts 50 ms


def test_compare_on_a_gpu_warms_up_autotunes_and_scopes(monkeypatch, fake_cuda):
    seen: list = []
    real = comparing.build_step

    def build(model, settings):
        step = real(model, settings)

        def probed():
            seen.append((fake_cuda.current, torch.backends.cudnn.benchmark, fp32_flags()["cudnn.conv"]))
            return step()

        return probed

    monkeypatch.setattr(comparing, "build_step", build)
    monkeypatch.setattr(comparing, "_block_length", lambda steps, seconds: 3)
    rs = bench.compare("resnet20", device="cuda:1", batch_size=2, rounds=2, number=1)
    assert [r.warmup for r in rs] == [10, 10] and [r.timed_steps for r in rs] == [6, 6]
    assert set(seen) == {(1, True, "ieee")}
    assert all(r.status == "ok" and r.cudnn_benchmark and r.device_id == "cuda:1" for r in rs)


# -- L6, point 4: what a row carries; JSON labels ------------------------------------------------


def test_a_cuda_row_carries_what_a_reader_needs(fake_cuda, tiny_model):
    r = bench.measure(tiny_model(), device="cuda:1", dtype="bf16", min_run_time=0.01)
    d = r.as_dict()
    assert (d["device"], d["device_id"], d["device_count"]) == ("NVIDIA H100 80GB HBM3", "cuda:1", 2)
    assert (d["driver"], d["cuda"], d["tf32"], d["autocast"]) == ("555.42.06", "12.8", False, "bf16")
    assert (d["compiled"], d["cudnn_benchmark"], d["warmup"]) == (None, True, 10)  # 10 on a GPU, as timm
    assert d["timed_steps"] >= d["runs"] >= 1 and d["spread"] == pytest.approx(r.time_iqr_ms / r.time_median_ms)
    assert d["peak_tflops"] == 989.0  # bf16 on an H100 SXM


def test_to_json_labels_results_with_their_device(fake_cuda, tiny_model):
    r = bench.measure(tiny_model(), device="cuda", **FAST)
    env = json.loads(bench.to_json([r]))["environment"]
    assert (env["device_type"], env["device_name"], env["device_count"], env["driver"]) == (
        "cuda",
        "NVIDIA H100 80GB HBM3",
        2,
        "555.42.06",
    )
    assert "fp32_precision" in env and "cudnn_benchmark" in env


def test_h100_nvl_has_its_own_peak():
    assert bench.peak_tflops_for("NVIDIA H100 NVL", "bf16") == 835.0
    assert bench.peak_tflops_for("NVIDIA H100 80GB HBM3", "bf16") == 989.0


# -- L7, R5, R7: the trainer's device, rank and cuDNN --------------------------------------------


@pytest.mark.parametrize(
    ("env", "group", "expected"),
    [
        ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "0"}, None, 0),  # torchrun: LOCAL_RANK
        ({"WORLD_SIZE": "4", "RANK": "3", "SLURM_LOCALID": "0"}, None, 0),  # srun
        ({"WORLD_SIZE": "4", "RANK": "3"}, None, 1),  # no local rank: rank modulo the GPUs
        ({}, (3, 4), 1),  # mp.spawn / a process group made by hand
        ({}, None, None),  # one process: plain "cuda"
    ],
)
def test_each_rank_takes_its_own_gpu(monkeypatch, fake_cuda, env, group, expected):
    for var in ("WORLD_SIZE", "RANK", *devices.LOCAL_RANK_VARIABLES):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    if group is not None:
        monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda: group[0])
        monkeypatch.setattr(torch.distributed, "get_world_size", lambda: group[1])
    want = torch.device("cuda") if expected is None else torch.device("cuda", expected)
    assert devices.resolve_device("cuda") == want


class _Stop(Exception):
    pass


def test_fit_under_a_launch_binds_its_gpu_and_nccl(monkeypatch, fake_cuda, tiny_model):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    for var in devices.LOCAL_RANK_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    calls: list = []

    def init(**kwargs):
        calls.append(kwargs)
        raise _Stop

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", init)
    with pytest.raises(_Stop):
        train.fit(tiny_model(), Recipe(data="synthetic", device="cuda", batch_size=4, iterations=1), progress=False)
    assert fake_cuda.events("set_current") == [("set_current", 1)]
    assert calls == [{"backend": "nccl", "device_id": torch.device("cuda", 1)}]


def test_fit_on_cuda_runs_with_the_cudnn_autotuner(monkeypatch, fake_cuda, tiny_model):
    for var in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    before = torch.backends.cudnn.benchmark
    seen: list = []
    monkeypatch.setattr(trainer, "run_fit", lambda *a, **k: seen.append((torch.backends.cudnn.benchmark, k["device"])))
    train.fit(tiny_model(), Recipe(data="synthetic", device="cuda", batch_size=4, iterations=1), progress=False)
    assert seen == [(True, torch.device("cuda", 0))]
    assert torch.backends.cudnn.benchmark is before


def test_device_cifar_loader_draws_from_a_generator_on_its_device(fake_cuda):
    images, labels = torch.randint(0, 255, (8, 3, 8, 8), dtype=torch.uint8), torch.arange(8) % 2
    norm = {"mean": (0.5,) * 3, "std": (0.2,) * 3}
    loader = DeviceCifarLoader(
        images, labels, batch_size=2, train=True, seed=3, device="cuda:1", rank=1, world_size=2, **norm
    )
    assert len(list(loader)) == 2 and len(list(loader)) == 2
    assert fake_cuda.events("generator") == [("generator", 1, (3 * 1_000_003 + e) * 4099 + 1) for e in (0, 1)]


# -- L8 and rows written as they go: run_suite ---------------------------------------------------


@pytest.mark.timeout(120)
def test_run_suite_compiles_only_the_devices_named(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_suite.py"), "--compile", "default", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "--compile default needs --devices" in done.stderr
    assert not list(tmp_path.iterdir())


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_suite_writes_each_row_as_it_goes(monkeypatch, tmp_path, tiny_model):
    suite = _load_script("run_suite")
    calls: list = []
    real = bench.measure

    def measure(model, **kwargs):
        calls.append(kwargs["name"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(tiny_model(), **{**kwargs, "min_run_time": 0.01, "warmup": 0})

    monkeypatch.setattr(bench, "measure", measure)
    argv = ["run_suite", "--devices", "cpu", "--pattern", "resnet*", "--out-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(KeyboardInterrupt):
        suite.main()
    (out,) = tmp_path.glob("*.json")
    assert [r["mode"] for r in json.loads(out.read_text())["results"]] == ["infer", "train"]
    assert out.with_suffix(".md").exists()


# -- point 3: the self-check ---------------------------------------------------------------------


def test_self_check_on_a_cpu_runs_what_means_something_and_says_why_it_skips(eager_cpu):
    checks = {c.name.split(" (")[0]: c for c in selfcheck.self_check("cpu", size=64)}
    assert checks["fp32 is fp32"].status == "pass"
    assert checks["compiled rows compile"].status == "pass"
    assert checks["matmul peak"].status == "info"
    for name in ("synchronisation", "device scope", "CUDA graphs", "peak memory"):
        assert checks[name].status == "skip" and checks[name].detail
    text = selfcheck.format_checks(list(checks.values()))
    assert "SKIP  synchronisation: a CPU runs each operation" in text and text.endswith("4 skip, 1 info")


def test_self_check_on_a_fake_gpu_runs_every_cuda_check(monkeypatch, fake_cuda):
    """The CUDA branch of each check, on the fake GPU (CPU tensors). The clock is replaced where a
    verdict would depend on this machine's speed: queued work "returns" at once and "finishes"
    in 5 ms, as on a GPU, and the judges are tested on their own below."""
    timed: list = []

    def per_call(fn, acc, device, *, calls, sync):
        fn()
        timed.append((device.index, fake_cuda.current, sync))
        return 5e-3 if sync else 1e-5

    monkeypatch.setattr(selfcheck, "_per_call", per_call)
    checks = {c.name: c for c in selfcheck.self_check("cuda", compile=False, size=64)}
    assert checks["synchronisation"].status == "pass"
    assert checks["device scope (cuda:1)"].status == "pass"
    # Each device's work is timed, unsynchronised and synchronised, with that device current.
    assert {(0, 0, False), (0, 0, True), (1, 1, False), (1, 1, True)} <= set(timed)
    assert checks["matmul peak (bf16, n=64)"].status == "warn"  # 2 * 64^3 FLOP in 5 ms: far below an H100
    assert checks["fp32 is fp32"].status == "warn"  # the CPU ignores CUDA's TF32 flag: tf32 ran IEEE
    assert checks["CUDA graphs (bf16 training)"].status == "pass"
    assert checks["peak memory"].status == "pass"


@pytest.mark.parametrize(("tflops", "status"), [(1200.0, "fail"), (800.0, "pass"), (100.0, "warn")])
def test_judge_peak(tflops, status):
    assert selfcheck.judge_peak("bf16", tflops, 989.0).status == status


def test_judges_of_sync_timer_and_fp32():
    assert selfcheck.judge_sync(1e-4, 5e-3).status == "pass"
    assert selfcheck.judge_sync(5e-3, 5.1e-3).status == "fail"
    assert selfcheck.judge_timer("t", 1.0e-3, 1.1e-3).status == "pass"
    assert selfcheck.judge_timer("t", 1.0e-5, 1.1e-3).status == "fail"
    ieee = {"matmul": 3e-7, "conv": 2e-7}
    assert selfcheck.judge_fp32(ieee, {"matmul": 4e-4, "conv": 3e-4}, True).status == "pass"
    assert selfcheck.judge_fp32({"matmul": 4e-4, "conv": 2e-7}, None, True).status == "fail"  # TF32 in fp32
    assert selfcheck.judge_fp32(ieee, None, False).status == "fail"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_gpu_check_script_on_a_cpu(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--no-compile", "--size", "64"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "PASS  fp32 is fp32" in done.stdout and "SKIP  CUDA graphs" in done.stdout
