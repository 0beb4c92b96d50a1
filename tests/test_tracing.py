"""Every registered model through the tools other codebases run on it: torch.fx, torchvision's
create_feature_extractor, torch.jit.script and torch.jit.trace, torch.compile(fullgraph=True) and
torch.export (static, and dynamic batch and H x W). Each must give the eager outputs in fp32.

Cost decides the depth tested, never the tool. torch.fx runs every registered model at its full
depth. create_feature_extractor, torch.jit.script and torch.jit.trace run every registered model
of up to MAX_BLOCKS blocks at full depth; a deeper one (resnet101/152, resnet110, plain110,
resnet1202: its 600 blocks take 20-40 s per tool here) runs as itself with each stage cut to its
first 3 blocks: the same code, which each tool would otherwise see up to 200 times over. The dynamo
tools (torch.compile, torch.export) cost a second or more per call at any depth, so they run once
per distinct architecture of the registry (its configs with stages cut to two blocks: resnet20 ...
resnet1202 are one architecture, named in the test id); inductor compiles two models.
"""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import nn

import reszoo
from reszoo.errors import InvalidArgumentError
from reszoo.models.resnet import check_input

MAX_BLOCKS = 30  # resnet56 (27 blocks) and resnet50 (16) at full depth, deeper nets cut
TOL = {"rtol": 1e-5, "atol": 1e-5}  # fp32: the same kernels run, so only summation order may differ


@pytest.fixture(autouse=True)
def _quiet_jit():
    # torch.jit.script/trace are deprecated in this torch (FutureWarning) and trace warns about
    # its own constants; both are what deployments still call, so the warnings are expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def cut(config: reszoo.ResNetConfig, blocks: int) -> reszoo.ResNetConfig:
    """``config`` with every stage cut to at most ``blocks`` blocks (all else unchanged)."""
    return config.replace(depths=tuple(min(d, blocks) for d in config.depths))


def registered(name: str, *, max_blocks: int | None = None) -> nn.Module:
    """The registered model, or its architecture cut to 3 blocks a stage when it has more than ``max_blocks``."""
    config = reszoo.default_config(name)
    if max_blocks is not None and sum(config.depths) > max_blocks:
        config = cut(config, 3)
    return calibrated(reszoo.ResNet(config))


def calibrated(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with batch-norm statistics taken from a random batch.

    A fresh model's unit running variance lets a deep residual sum grow without bound (resnet1202
    gives inf); statistics from a batch keep every output finite and of order one, so a tight
    tolerance means something.
    """
    size = 2 * model.total_stride
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 1.0  # running stats := this batch's
    model.train()
    with torch.no_grad():
        model(torch.randn(8, model.config.in_chans, size, size))
    return model.eval()


def smallest_input(model: nn.Module, batch: int = 2) -> torch.Tensor:
    """The smallest batch the model takes: H = W = its total stride."""
    return torch.randn(batch, model.config.in_chans, model.total_stride, model.total_stride)


def eager(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(x)
    assert torch.isfinite(out).all()
    return out


def architectures(blocks: int) -> dict[str, reszoo.ResNetConfig]:
    """The registry's distinct architectures with stages cut to ``blocks``, named by the models they stand for."""
    groups: dict[reszoo.ResNetConfig, list[str]] = {}
    for name in reszoo.list_models():
        groups.setdefault(cut(reszoo.default_config(name), blocks), []).append(name)
    return {"+".join(names): config for config, names in groups.items()}


NAMES = reszoo.list_models()
ARCHS = architectures(2)
DYNAMO_CASES = [pytest.param(cfg, id=f"{ids}@2blocks") for ids, cfg in ARCHS.items()]


# -- torch.fx ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_fx_symbolic_trace_gives_eager_outputs_and_keeps_the_input_check(name):
    model = registered(name)  # full depth, resnet1202 included
    x = smallest_input(model)
    traced = torch.fx.symbolic_trace(model)
    torch.testing.assert_close(traced(x), eager(model, x), **TOL)
    # The check is one wrapped call in the graph, not traced through: it still runs eagerly.
    calls = [n.target.__name__ for n in traced.graph.nodes if n.op == "call_function"]
    assert "check_input" in calls
    with pytest.raises(InvalidArgumentError, match="input channels"):
        traced(torch.randn(1, model.config.in_chans + 1, 64, 64))


@pytest.mark.parametrize("name", NAMES)
def test_create_feature_extractor_gives_stage_outputs_and_logits(name):
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    model = registered(name, max_blocks=MAX_BLOCKS)
    x = smallest_input(model)
    stages = model.stage_names
    extractor = create_feature_extractor(model, return_nodes={**{s: s for s in stages}, "fc": "logits"})
    out = extractor(x)
    with torch.no_grad():
        final, features = model.forward_intermediates(x, indices=list(range(1, len(stages) + 1)))
    for stage, expected in zip(stages, features, strict=True):
        torch.testing.assert_close(out[stage], expected, **TOL)
    torch.testing.assert_close(out["logits"], eager(model, x), **TOL)
    with torch.no_grad():  # the last stage's map, after a pre-activation network's final norm
        torch.testing.assert_close(model.forward_features(x), final, **TOL)
    nodes = set(get_graph_node_names(model)[1])
    assert {"layer1.0.relu", "fc"} <= nodes and ("conv1" in nodes or "conv1.0" in nodes)  # deep stem: conv1.0


# -- TorchScript ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_jit_script_gives_eager_outputs_and_the_same_state_dict_keys(name):
    model = registered(name, max_blocks=MAX_BLOCKS)
    x = smallest_input(model)
    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), eager(model, x), **TOL)
    # The scripted form is model.as_sequential(): the model's own keys, so its weights load as they are.
    assert list(scripted.state_dict()) == list(model.state_dict())
    y = torch.randn(3, model.config.in_chans, 2 * model.total_stride + 3, 2 * model.total_stride + 3)
    torch.testing.assert_close(scripted(y), eager(model, y), **TOL)  # any size: nothing was baked in


def test_jit_script_saves_and_loads(tiny_model):
    model = calibrated(tiny_model(num_classes=7))
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    x = smallest_input(model)
    torch.testing.assert_close(loaded(x), eager(model, x), **TOL)
    loaded.load_state_dict(model.state_dict())  # strict: the eager keys fit the loaded module


@pytest.mark.parametrize("name", NAMES)
def test_jit_trace_gives_eager_outputs(name):
    model = registered(name, max_blocks=MAX_BLOCKS)
    x = smallest_input(model)
    traced = torch.jit.trace(model, x)
    torch.testing.assert_close(traced(x), eager(model, x), **TOL)
    y = torch.randn(1, model.config.in_chans, 2 * model.total_stride, 2 * model.total_stride)
    torch.testing.assert_close(traced(y), eager(model, y), **TOL)


def test_script_and_features_backbone():
    backbone = reszoo.create_model("resnet18", features_only=True, out_indices=(0, 2, 4)).eval()
    x = torch.randn(1, 3, 64, 64)
    scripted = torch.jit.script(backbone)
    with torch.no_grad():
        expected = backbone(x)
    got = scripted(x)
    assert len(got) == len(expected) == 3
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    assert list(scripted.state_dict()) == list(backbone.state_dict())


# -- torch.compile and torch.export ----------------------------------------------------------
@pytest.mark.parametrize("config", DYNAMO_CASES)
def test_compile_fullgraph_captures_the_whole_model(config):
    # backend="eager" runs dynamo's capture (fullgraph: no graph break allowed) without inductor's
    # code generation, which the two inductor tests below cover.
    torch._dynamo.reset()
    model = calibrated(reszoo.ResNet(config))
    x = smallest_input(model)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(model, x), **TOL)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["resnet20", "resnet50"])
def test_compile_inductor_gives_eager_outputs(name):
    # One block a stage: inductor's C++ compile time grows with the graph, the kernels it writes do not.
    torch._dynamo.reset()
    model = calibrated(reszoo.ResNet(cut(reszoo.default_config(name), 1)))
    x = smallest_input(model)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(model, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("config", DYNAMO_CASES)
def test_export_static(config):
    model = calibrated(reszoo.ResNet(config))
    x = smallest_input(model)
    program = torch.export.export(model, (x,))
    torch.testing.assert_close(program.module()(x), eager(model, x), **TOL)


@pytest.mark.parametrize("config", DYNAMO_CASES)
def test_export_with_dynamic_batch_and_size(config):
    from torch.export import Dim

    model = calibrated(reszoo.ResNet(config))
    stride = model.total_stride
    # From stride + 1: at H = stride the last map is 1x1, a size torch's shape reasoning specialises on.
    height, width = Dim("height", min=stride + 1, max=1024), Dim("width", min=stride + 1, max=1024)
    dynamic = {"x": {0: Dim("batch", min=1, max=64), 2: height, 3: width}}
    program = torch.export.export(model, (torch.randn(2, 3, 2 * stride, 2 * stride),), dynamic_shapes=dynamic)
    for shape in [(1, 3, stride + 1, 3 * stride), (5, 3, 2 * stride + 7, stride + 3)]:
        x = torch.randn(shape)
        torch.testing.assert_close(program.module()(x), eager(model, x), **TOL)


# -- the eager input check stays eager -----------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("resnet18", (1, 3, 16, 16), r"total stride 32"),
        ("resnet20", (1, 1, 32, 32), r"Expected 3 input channels.*received 1"),
        ("resnet20", (3, 32, 32), r"\(N, C, H, W\).*\(3, 32, 32\)"),
    ],
)
def test_eager_input_errors_still_raise_everywhere_eager(name, shape, message):
    model = reszoo.create_model(name).eval()
    x = torch.randn(shape)
    for call in (model, model.forward_features, model.forward_intermediates, model.check_input):
        with pytest.raises(InvalidArgumentError, match=message):
            call(x)


def test_compilers_and_tracers_skip_the_input_check():
    # A batch the check refuses in eager mode passes through under each tool: the check is not
    # part of what they capture, so it cannot become a guard, a graph break or a baked-in constant.
    too_small = torch.randn(1, 3, 8, 8)
    with pytest.raises(InvalidArgumentError, match="total stride 32"):
        check_input(too_small, 3, 32)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return check_input(x, 3, 32) * 2

    torch._dynamo.reset()
    for run in (
        torch.compile(fn, backend="eager", fullgraph=True),
        torch.jit.trace(fn, too_small, check_trace=False),  # its check re-runs fn eagerly
        torch.jit.script(fn),
        torch.export.export(Doubler(), (too_small,)).module(),
    ):
        torch.testing.assert_close(run(too_small), too_small * 2)


class Doubler(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return check_input(x, 3, 32) * 2


# -- the training knobs and the headless model stay traceable ----------------------------------
@pytest.mark.parametrize("overrides", [{"drop_path_rate": 0.2}, {"num_classes": 0}], ids=["drop_path", "headless"])
def test_knobs_and_headless_models_trace_script_and_export(overrides):
    model = calibrated(reszoo.create_model("resnet20", depths=(2, 2, 2), **overrides))
    model.set_grad_checkpointing()  # a training setting: recorded graphs hold the plain forward
    x = smallest_input(model)
    expected = eager(model, x)
    assert expected.shape == (2, 10 if "num_classes" not in overrides else model.num_features)
    tools = {
        "fx": torch.fx.symbolic_trace(model),
        "script": torch.jit.script(model),
        "trace": torch.jit.trace(model, x),
        "export": torch.export.export(model, (x,)).module(),
    }
    for tool, run in tools.items():
        with torch.no_grad():
            torch.testing.assert_close(run(x), expected, **TOL, msg=tool)


def test_compiled_training_with_checkpointing_and_drop_path_matches_eager(tiny_model):
    # aot_eager: dynamo's capture and AOT autograd's joint graph, where the recomputation lives.
    torch._dynamo.reset()
    reference, model = tiny_model(drop_path_rate=0.2), tiny_model(drop_path_rate=0.2)
    model.load_state_dict(reference.state_dict())
    model.set_grad_checkpointing()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    x = torch.randn(4, 3, 16, 16)
    for step in range(2):
        for net in (reference, compiled):
            torch.manual_seed(step)
            net.zero_grad()
            net(x).logsumexp(1).mean().backward()
        for (name, a), b in zip(reference.named_parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)
        for (name, a), b in zip(reference.state_dict().items(), model.state_dict().values(), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=name)  # running stats updated once
