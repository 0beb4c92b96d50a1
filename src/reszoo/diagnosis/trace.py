"""What a model runs: one forward pass recorded as a graph of operations.

Two recorders run together. Forward hooks on every module give the module path of each
operation and, for PyTorch's own layers (``nn.Conv2d``, ``nn.BatchNorm2d``, ``nn.ReLU``, ...),
their settings. A :class:`~torch.overrides.TorchFunctionMode` sees every torch call made in
Python between them: the ``out += self.shortcut(x)``, ``F.relu``, ``F.pad``, ``torch.cat`` and
``x[:, :, ::2, ::2]`` of users' blocks, which no module hook sees. Tensors are followed by
identity, so in-place operations (``+=``, ``ReLU(inplace=True)``) become new nodes of the graph.

This costs one eager forward pass (about 10 ms for a ResNet-56 on one CPU thread; torch.export's
non-strict capture of the same network takes 0.7-1.2 s) and works on any code eager mode runs.
When the function mode itself fails (a model that installs its own mode, scripted submodules),
the pass is repeated with module hooks alone: additions and functional calls are then invisible,
and :attr:`Trace.method` says so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from reszoo.errors import ArgumentTypeError

# torch function names, by the kind of node they become.
FUNCTION_KINDS: dict[str, str] = {
    **dict.fromkeys(("conv1d", "conv2d", "conv3d"), "conv"),
    **dict.fromkeys(("batch_norm", "group_norm", "layer_norm", "instance_norm"), "norm"),
    **dict.fromkeys(
        ("relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "gelu", "silu", "elu", "elu_", "selu", "mish")
        + ("hardswish", "hardtanh", "sigmoid", "tanh", "softplus", "prelu", "celu"),
        "act",
    ),
    **dict.fromkeys(
        ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "max_pool2d_with_indices"), "pool"
    ),
    **dict.fromkeys(("mean", "amax"), "reduce"),
    **dict.fromkeys(("linear", "addmm", "matmul", "mm"), "linear"),
    **dict.fromkeys(("add", "add_", "__add__", "__iadd__", "__radd__"), "add"),
    **dict.fromkeys(("cat", "concat", "concatenate"), "cat"),
    "pad": "pad",
    "__getitem__": "slice",
    **dict.fromkeys(("dropout", "dropout2d", "alpha_dropout", "feature_alpha_dropout"), "dropout"),
    **dict.fromkeys(("mul", "mul_", "__mul__", "__rmul__", "__imul__"), "mul"),
    **dict.fromkeys(("interpolate", "upsample"), "resize"),
    **dict.fromkeys(("softmax", "log_softmax"), "softmax"),
    **dict.fromkeys(
        ("flatten", "view", "reshape", "squeeze", "unsqueeze", "contiguous", "clone", "permute", "detach", "to"),
        "reshape",
    ),
}
# Module classes of torch.nn, by kind; their inner torch calls are one node, read from the module.
MODULE_KINDS: dict[str, str] = {
    **dict.fromkeys(("Conv1d", "Conv2d", "Conv3d"), "conv"),
    **dict.fromkeys(("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "GroupNorm"), "norm"),
    **dict.fromkeys(("LayerNorm", "InstanceNorm2d", "LocalResponseNorm"), "norm"),
    **dict.fromkeys(
        ("ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Hardswish")
        + ("Hardtanh", "Sigmoid", "Tanh", "Softplus"),
        "act",
    ),
    **dict.fromkeys(("MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"), "pool"),
    "Linear": "linear",
    **dict.fromkeys(("Dropout", "Dropout2d", "AlphaDropout", "FeatureAlphaDropout"), "dropout"),
    **dict.fromkeys(("Flatten", "Unflatten", "Identity"), "reshape"),
    **dict.fromkeys(("Softmax", "LogSoftmax"), "softmax"),
    **dict.fromkeys(("Upsample",), "resize"),
}
CAPTURE = "hooks + torch function mode"
HOOKS_ONLY = "hooks only"


@dataclass
class Op:
    """One node of the recorded graph.

    Attributes:
        index: its position in execution order (0 is the input).
        kind: ``input``, ``conv``, ``norm``, ``act``, ``pool``, ``reduce``, ``linear``, ``add``,
            ``cat``, ``pad``, ``slice``, ``dropout``, ``mul``, ``reshape``, ``resize``,
            ``softmax``, ``const`` (a tensor made from nothing, e.g. ``torch.zeros``) or ``other``.
        name: the torch function or module class (``"conv2d"``, ``"BatchNorm2d"``, ``"__iadd__"``).
        module: the path of the module it ran in (``"layer2.0.shortcut"``; ``""`` at the top).
        inputs: indices of the nodes whose tensors it read.
        shape: its output's shape.
        attrs: settings: kernel, stride, padding, groups, bias, channels, momentum, eps, p, ...
    """

    index: int
    kind: str
    name: str
    module: str
    inputs: tuple[int, ...]
    shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Op({self.index}, {self.kind}:{self.name} @{self.module or '.'} <- {self.inputs} -> {self.shape})"


@dataclass
class Trace:
    """A recorded forward pass: the graph, how it was recorded, and what it cost."""

    ops: list[Op]
    output: int
    method: str
    input_shape: tuple[int, ...]
    seconds: float
    modules: int
    notes: list[str] = field(default_factory=list)

    def live(self) -> set[int]:
        """Indices of the nodes the output depends on (dead computations left out)."""
        seen, stack = set(), [self.output]
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(self.ops[i].inputs)
        return seen


def _tensors(value: Any) -> Iterable[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


def _pair(value: Any) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _index_text(index: Any) -> str:
    """``x[:, :, ::2, ::2]``'s index as written: ``[:, :, ::2, ::2]``."""

    def one(i: Any) -> str:
        if isinstance(i, slice):
            text = f"{'' if i.start is None else i.start}:{'' if i.stop is None else i.stop}"
            return text + (f":{i.step}" if i.step is not None else "")
        return "..." if i is Ellipsis else repr(i)

    return "[" + ", ".join(one(i) for i in (index if isinstance(index, tuple) else (index,))) + "]"


def module_attrs(kind: str, m: nn.Module) -> dict[str, Any]:
    """The settings of a torch.nn layer that the findings read."""
    if kind == "conv":
        return {
            "in": m.in_channels,
            "out": m.out_channels,
            "kernel": tuple(m.kernel_size),
            "stride": tuple(m.stride),
            "padding": m.padding if isinstance(m.padding, str) else tuple(m.padding),
            "groups": m.groups,
            "bias": m.bias is not None,
        }
    if kind == "norm":
        attrs: dict[str, Any] = {"eps": getattr(m, "eps", None), "affine": getattr(m, "affine", True)}
        if isinstance(m, nn.modules.batchnorm._NormBase):
            attrs.update(momentum=m.momentum, track_running_stats=m.track_running_stats)
        return attrs
    if kind == "pool":
        return {
            "kernel": getattr(m, "kernel_size", None),
            "stride": getattr(m, "stride", None),
            "output_size": getattr(m, "output_size", None),
        }
    if kind == "linear":
        return {"in": m.in_features, "out": m.out_features, "bias": m.bias is not None}
    if kind == "dropout":
        return {"p": m.p}
    return {}


def function_attrs(kind: str, name: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The settings of a functional call, read from its arguments."""

    def arg(i: int, key: str, default: Any = None) -> Any:
        return kwargs.get(key, args[i] if len(args) > i else default)

    if kind == "conv" and len(args) > 1:
        w = args[1]
        return {
            "in": w.shape[1] * arg(6, "groups", 1),
            "out": w.shape[0],
            "kernel": tuple(w.shape[2:]),
            "stride": _pair(arg(3, "stride", 1)),
            "padding": arg(4, "padding", 0),
            "groups": arg(6, "groups", 1),
            "bias": arg(2, "bias") is not None,
        }
    if kind == "pool":
        return {"kernel": arg(1, "kernel_size"), "stride": arg(2, "stride"), "output_size": arg(1, "output_size")}
    if kind == "pad":
        return {"pad": tuple(arg(1, "pad", ())), "value": arg(3, "value", 0.0)}
    if kind == "reduce":
        return {"dim": arg(1, "dim")}
    if kind == "dropout":
        return {"p": arg(1, "p", 0.5)}
    if kind == "slice":
        return {"index": _index_text(args[1]) if len(args) > 1 else ""}
    if kind == "norm" and name == "batch_norm":
        return {"momentum": arg(6, "momentum"), "eps": arg(7, "eps")}
    if kind == "linear" and name == "linear" and len(args) > 1:
        return {"in": args[1].shape[-1], "out": args[1].shape[0], "bias": arg(2, "bias") is not None}
    return {}


def _known_leaf(m: nn.Module) -> str | None:
    """The kind of a torch.nn layer whose inner calls are recorded as one node; None for any other module."""
    cls = type(m)
    if not cls.__module__.startswith("torch.nn.") or next(m.children(), None) is not None:
        return None
    return next((MODULE_KINDS[c.__name__] for c in cls.__mro__ if c.__name__ in MODULE_KINDS), None)


class _Recorder:
    """Builds the graph from module hooks and (optionally) torch calls, following tensors by identity."""

    def __init__(self, model: nn.Module, *, capture: bool) -> None:
        self.ops: list[Op] = []
        self.producer = WeakIdKeyDictionary()  # tensor -> index of the node that made it
        self.capture = capture
        self.stack: list[str] = []
        self.in_leaf = 0
        self.handles = []
        self.unrecorded = 0
        for name, m in model.named_modules():
            self.handles.append(m.register_forward_pre_hook(self._pre(name, _known_leaf(m))))
            self.handles.append(m.register_forward_hook(self._post(name, _known_leaf(m))))
        self.modules = len(self.handles) // 2

    def close(self) -> None:
        for h in self.handles:
            h.remove()

    def add(self, kind: str, name: str, inputs: tuple[int, ...], outputs: list[torch.Tensor], attrs: dict) -> None:
        index = len(self.ops)
        shape = tuple(outputs[0].shape) if outputs else ()
        self.ops.append(Op(index, kind, name, self.stack[-1] if self.stack else "", inputs, shape, attrs))
        for t in outputs:
            self.producer[t] = index

    def inputs_of(self, values: Any) -> tuple[int, ...]:
        found: list[int] = []
        for t in _tensors(values):
            i = self.producer.get(t)
            if i is None and not self.capture and not isinstance(t, nn.Parameter):
                # Hooks alone cannot see functional calls (additions, F.relu): a stand-in node made from
                # the previous one, shared by every later reader of the same tensor.
                self.unrecorded += 1
                self.add("other", "(unrecorded)", (len(self.ops) - 1,), [t], {})
                i = len(self.ops) - 1
            if i is not None and i not in found:
                found.append(i)
        return tuple(found)

    def _pre(self, name: str, kind: str | None):
        def hook(module: nn.Module, args: tuple) -> None:
            self.stack.append(name)
            if kind is not None:
                self.in_leaf += 1

        return hook

    def _post(self, name: str, kind: str | None):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            if kind is not None:
                self.in_leaf -= 1
                inputs = self.inputs_of(args)
                self.add(kind, type(module).__name__, inputs, list(_tensors(output)), module_attrs(kind, module))
            self.stack.pop()

        return hook

    def on_call(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        outputs = list(_tensors(out))
        if self.in_leaf or not outputs:
            return
        name = getattr(func, "__name__", str(func))
        kind = FUNCTION_KINDS.get(name, "other")
        inputs = self.inputs_of((args, kwargs))
        if not inputs:
            kind = "const"
        elif kind == "add" and len(inputs) < 2:
            kind = "other"  # x + 1, x + bias: not a merge of two paths
        self.add(kind, name, inputs, outputs, function_attrs(kind, name, args, kwargs) if inputs else {})


class _CallMode(TorchFunctionMode):
    def __init__(self, recorder: _Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.recorder.on_call(func, args, kwargs, out)
        return out


def _run(model: nn.Module, x: torch.Tensor, *, capture: bool) -> Trace:
    start = time.perf_counter()
    rec = _Recorder(model, capture=capture)
    try:
        rec.add("input", "input", (), [x], {})
        with torch.no_grad():
            if capture:
                with _CallMode(rec):
                    out = model(x)
            else:
                out = model(x)
    finally:
        rec.close()
    outs = list(_tensors(out))
    if not outs:
        raise ArgumentTypeError(f"the model returned {type(out).__name__}, not a tensor")
    output = rec.producer.get(outs[0], len(rec.ops) - 1)
    trace = Trace(rec.ops, output, CAPTURE if capture else HOOKS_ONLY, tuple(x.shape), 0.0, rec.modules)
    if rec.unrecorded:
        trace.notes.append(f"{rec.unrecorded} tensors came from calls hooks cannot see (additions, functional ops)")
    trace.seconds = time.perf_counter() - start
    return trace


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, and put the count back after.

    Everything here works on one image or on small weight tensors, which gain nothing from threads;
    on a shared machine their spin-waits cost dearly: a ResNet-56 pass took 1.1-1.8 s with 2 threads
    on a loaded 2-core CPU and 0.011 s with 1, the std of a 3x3 kernel 7 ms instead of 0.02 ms.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def unwrap(model: nn.Module) -> nn.Module:
    """The user's network inside ``torch.compile``, ``DataParallel`` or ``DistributedDataParallel`` wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or (
            model.module if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else None
        )
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def trace_model(model: nn.Module, input_shape: tuple[int, ...], *, capture: bool = True) -> Trace:
    """Run ``model`` once on a random batch of ``input_shape`` in eval mode, without gradients, and record it.

    The model's train/eval flags are put back afterwards; nothing else is changed (eval mode
    leaves BatchNorm's running statistics alone). With ``capture=True`` a failure of the function
    mode is retried with hooks alone, and the trace says so; a model that fails on its own raises.

    Args:
        model: any ``nn.Module`` taking one image batch.
        input_shape: ``(N, C, H, W)``.
        capture: record torch calls too (additions, functional activations, padding).

    Returns:
        The :class:`Trace`.
    """
    model = unwrap(model)
    flags = {m: m.training for m in model.modules()}
    param = next(model.parameters(), None)
    x = torch.randn(input_shape, generator=torch.Generator().manual_seed(0))
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype if param.is_floating_point() else torch.float32)
    model.eval()
    try:
        with one_thread():
            return _traced(model, x, capture)
    finally:
        for m, flag in flags.items():
            m.training = flag


def _traced(model: nn.Module, x: torch.Tensor, capture: bool) -> Trace:
    if capture and not isinstance(model, torch.jit.ScriptModule):
        try:
            return _run(model, x, capture=True)
        except Exception as err:  # the mode failed; hooks alone may still work
            trace = _run(model, x, capture=False)
            trace.notes.append(f"torch function capture failed ({type(err).__name__}: {err}); hooks only")
            return trace
    trace = _run(model, x, capture=False)
    if capture:
        trace.notes.append("a TorchScript module: hooks only")
    return trace
