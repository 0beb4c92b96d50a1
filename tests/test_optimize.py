"""optimize_for_inference: every path (eager, compiled with freezing, bf16, ONNX Runtime) keeps the
outputs of the model it was given, and every refusal names what was wrong.

Tolerances: folding BatchNorm rounds differently in fp32, so the eager and compiled fp32 paths and
ONNX Runtime agree with the original within RTOL = 1e-3 of the logits' scale (measured: 1e-7 to
5e-6 of the scale; the issue's bound, 1e-4 absolute on unit-scale logits, is checked by the
benchmark on ResNet-50 and ResNet-56); bf16 keeps 8 bits of mantissa, so within 5e-2 of the scale
(measured ~1e-2), and fp16 (10 bits) is held to the same bound where the CPU runs it. int8 is tested
by prediction agreement in test_quantize.py. No timing here. The same bounds are stated in
docs/benchmarks.md ("The paths of optimize_for_inference").
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import reszoo
from reszoo.infer.freezing import FrozenCompiled
from reszoo.infer.optimize import fold_batchnorm, optimize_for_inference
from reszoo.utils.cpuinfo import cpu_features

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY_OVERRIDES  # noqa: E402

# Folding rewrites w' = w * gamma / sqrt(var + eps), which rounds differently in fp32: outputs
# agree to about 1e-6 relative per layer, compounding over up to ~150 layers to well under 1e-4
# of the logits' scale. 1e-3 of the scale leaves room without hiding a wrong fold (which is off
# by O(1) of the scale).
RTOL = 1e-3
BF16_RTOL = 5e-2
NATIVE_BF16 = cpu_features()["bf16"]
NO_BF16 = "this CPU has no native bf16 kernels (AVX512-BF16 or AMX), so dtype='bf16' is refused here"
NATIVE_FP16 = cpu_features()["fp16"]
NO_FP16 = "this CPU has no native fp16 kernels (AVX512-FP16 or AMX-FP16), so dtype='fp16' is refused here"


def _randomise_bn(model: nn.Module, seed: int, gamma: float = 1.0) -> None:
    # Fresh BNs are the identity (mean 0, var 1, gamma 1, beta 0), which would make folding
    # trivially right; give them statistics like a trained network's.
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(gamma * (torch.rand(n, generator=g) + 0.5))
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)


def _small(name: str) -> tuple[nn.Module, tuple[int, int, int]]:
    # Same block structure, shortcuts and depth as registered; narrower (ImageNet models) and on
    # small inputs to keep 19 models in seconds. resnet1202 keeps its 1202 layers at width 4-16, 8x8.
    cfg = reszoo.default_config(name)
    if cfg.stem != "cifar":
        # A grouped 3x3 needs width * width_per_group / 64 >= 1 (ResNeXt's 4 channels per group: width 16).
        widths = (16, 32, 64, 128) if cfg.groups > 1 else (8, 16, 32, 64)
        model = reszoo.create_model(name, widths=widths, stem_width=8)
        return model, (3, 64, 64)
    if name == "resnet1202":
        return reszoo.create_model(name, widths=(4, 8, 16), stem_width=4), (3, 8, 8)
    return reszoo.create_model(name), (3, 16, 16)


@pytest.mark.parametrize("name", reszoo.list_models())
def test_every_registered_model_equal_after_optimize(name):
    model, size = _small(name)
    # 600 residual blocks with unit-scale random BNs overflow fp32 (NaN in the original model
    # too); small scales keep resnet1202's activations finite, as trained weights do.
    _randomise_bn(model, 0, gamma=0.1 if model.config.depth > 200 else 1.0)
    model.eval()
    fast = optimize_for_inference(model, compile=False)
    # Every norm a convolution feeds is folded; a pre-activation network keeps those that normalise a
    # sum: each block's bn1 and the final norm (issue 23).
    left = sum(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert left == (sum(model.config.depths) + 1 if model.config.block_cls.preact else 0)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "the original must be left untouched"
    x = torch.randn(2, *size)
    with torch.inference_mode():
        ref, out = model(x), fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=RTOL, atol=RTOL * ref.abs().max().item())


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 3), side=st.sampled_from([8, 12, 32]), scale=st.floats(0.1, 10))
def test_equivalence_property_over_random_inputs_and_statistics(seed, batch, side, scale):
    torch.manual_seed(seed)
    model = reszoo.ResNet(reszoo.ResNetConfig(**TINY_OVERRIDES, shortcut="B"))
    _randomise_bn(model, seed)
    model.eval()
    fast = optimize_for_inference(model, channels_last=seed % 2 == 0, compile=False)
    x = scale * torch.randn(batch, 3, side, side)
    with torch.inference_mode():
        ref, out = model(x), fast(x)
    torch.testing.assert_close(out, ref, rtol=RTOL, atol=RTOL * ref.abs().max().item() + 1e-6)


def _close(out: torch.Tensor, ref: torch.Tensor, rtol: float = RTOL) -> None:
    torch.testing.assert_close(out.float(), ref, rtol=rtol, atol=rtol * ref.abs().max().item())


@pytest.mark.skipif(not NATIVE_BF16, reason=NO_BF16)
def test_bf16_casts_weights_and_takes_fp32_inputs(tiny_model):
    model = tiny_model()
    _randomise_bn(model, 2)
    model.eval()
    fast = optimize_for_inference(model, dtype="bf16", compile=False)
    assert not fast.training
    assert fast.conv1.weight.dtype == torch.bfloat16
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(p.requires_grad for p in fast.parameters())
    x = torch.randn(3, 3, 16, 16)
    with torch.inference_mode():
        out, ref = fast(x), model(x)  # fp32 in: cast on entry
    assert out.dtype == torch.bfloat16
    _close(out, ref, BF16_RTOL)


@pytest.mark.skipif(not NATIVE_FP16, reason=NO_FP16)
@pytest.mark.parametrize("dtype", ["fp16", torch.float16])
def test_fp16_casts_weights_and_takes_fp32_inputs(tiny_model, dtype):
    model = tiny_model()
    _randomise_bn(model, 6)
    model.eval()
    fast = optimize_for_inference(model, dtype=dtype, compile=False)
    assert fast.conv1.weight.dtype == torch.float16
    x = torch.randn(3, 3, 16, 16)
    with torch.inference_mode():
        out, ref = fast(x), model(x)
    assert out.dtype == torch.float16
    _close(out, ref, BF16_RTOL)


@pytest.mark.parametrize("dtype", ["fp32", torch.float32])
def test_fp32_casts_a_double_model_and_keeps_its_outputs(tiny_model, dtype):
    model = tiny_model().double()
    _randomise_bn(model, 7)
    model.eval()
    fast = optimize_for_inference(model, dtype=dtype, compile=False)
    assert {p.dtype for p in fast.parameters()} == {torch.float32}
    assert next(model.parameters()).dtype == torch.float64, "the original must be left untouched"
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        out, ref = fast(x.float()), model(x.double())
    assert out.dtype == torch.float32
    _close(out, ref.float())


def test_layout_and_folding_can_be_switched_off(tiny_model):
    nchw = optimize_for_inference(tiny_model().eval(), channels_last=False, fold_bn=False, compile=False)
    assert isinstance(nchw.bn1, nn.BatchNorm2d)
    assert nchw.conv1.weight.is_contiguous()


def test_default_compiles_on_cpu_and_not_when_asked(tiny_model):
    # Wrapping compiles nothing yet (torch.compile is lazy): this costs no compile time.
    fast = optimize_for_inference(tiny_model())
    assert isinstance(fast, FrozenCompiled)
    assert fast.mode is None and not fast.module.training
    assert fast.config.depths == (1, 1, 1)  # attributes read through to the compiled module
    assert not isinstance(optimize_for_inference(tiny_model(), compile=False), FrozenCompiled)


def test_cpu_features_describe_this_cpu_and_torch_threads():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        feats = cpu_features()
    finally:
        torch.set_num_threads(before)
    assert feats["capability"] == torch.backends.cpu.get_cpu_capability()
    assert feats["threads"] == 1 and feats["cores"] >= 1 and feats["name"]
    assert all(isinstance(feats[k], bool) for k in ("avx512_bf16", "amx", "vnni", "bf16", "fp16"))


@pytest.mark.parametrize(
    ("name", "dtype", "needs"),
    [("bf16", torch.bfloat16, "AVX512-BF16 or AMX"), ("fp16", torch.float16, "AVX512-FP16 or AMX-FP16")],
)
def test_reduced_precision_refused_where_the_cpu_has_no_kernels(tiny_model, monkeypatch, name, dtype, needs):
    import reszoo.utils.cpuinfo

    real = reszoo.utils.cpuinfo.cpu_features()
    monkeypatch.setattr(reszoo.utils.cpuinfo, "cpu_features", lambda: {**real, name: False, "capability": "AVX2"})
    with pytest.raises(ValueError, match=rf"dtype='{name}' needs a CPU with {needs}.*capability 'AVX2'"):
        optimize_for_inference(tiny_model(), dtype=name)
    with pytest.raises(ValueError, match=rf"dtype='{name}' needs"):
        optimize_for_inference(tiny_model(), dtype=dtype)
    for compile in (True, None):  # refused before anything is compiled, on every path
        with pytest.raises(ValueError, match=rf"dtype='{name}' needs"):
            optimize_for_inference(tiny_model(), dtype=name, compile=compile)


@pytest.mark.skipif(cpu_features()["fp16"], reason="this CPU has native fp16 kernels, so fp16 is allowed")
def test_fp16_refused_on_this_cpu(tiny_model):
    with pytest.raises(ValueError, match=r"dtype='fp16' needs a CPU with AVX512-FP16 or AMX-FP16"):
        optimize_for_inference(tiny_model(), dtype="fp16")


def test_bad_dtype_names_value_and_choices(tiny_model):
    model = tiny_model()
    with pytest.raises(ValueError, match=r"'int4'.*fp32, bf16, fp16, int8"):
        optimize_for_inference(model, dtype="int4")
    with pytest.raises(
        TypeError, match=r"dtype must be one of fp32, bf16, fp16, int8, a torch.dtype or None; received dtype=8"
    ):
        optimize_for_inference(model, dtype=8)
    with pytest.raises(ValueError, match=r"torch.float32/bfloat16/float16; received dtype=torch.int32"):
        optimize_for_inference(model, dtype=torch.int32)


def test_bad_model_and_flags_are_named(tiny_model):
    with pytest.raises(TypeError, match=r"model must be a Module; received model='resnet20' \(str\)"):
        optimize_for_inference("resnet20")
    with pytest.raises(TypeError, match=r"compile must be True or False; received compile='false' \(str\)"):
        optimize_for_inference(tiny_model(), compile="false")
    with pytest.raises(ValueError, match=r"backend 'tensorrt'.*onnxruntime"):
        optimize_for_inference(tiny_model(), backend="tensorrt")


def test_bad_compile_mode_names_value_and_choices(tiny_model):
    model = tiny_model()
    with pytest.raises(
        ValueError, match=r"compile_mode='max-autotune' needs compile=True or None, received compile=False"
    ):
        optimize_for_inference(model, compile=False, compile_mode="max-autotune")
    with pytest.raises(ValueError, match=r"torch.compile mode 'fastest'\..*Valid names: default, .*max-autotune"):
        optimize_for_inference(model, compile=True, compile_mode="fastest")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"calibration": [torch.randn(2, 3, 16, 16)]},
            r"calibration applies to dtype='int8' only; received dtype=None",
        ),
        ({"dtype": "int8"}, r"dtype='int8' needs calibration data.*received calibration=None"),
        ({"dtype": "int8", "compile": False, "calibration": []}, r"dtype='int8' is always compiled"),
        ({"input_size": (3, 16, 16)}, r"input_size=\(3, 16, 16\) applies to backend='onnxruntime'"),
        (
            {"backend": "onnxruntime", "dtype": "bf16"},
            r"backend='onnxruntime' runs the fp32 model; received dtype='bf16'",
        ),
        ({"backend": "onnxruntime", "compile": True}, r"backend='onnxruntime' is not compiled by torch"),
        ({"backend": "auto"}, r"backend='auto' times the paths on example_inputs.*received example_inputs=None"),
        (
            {"backend": "auto", "example_inputs": torch.randn(3, 16, 16)},
            r"a batch \(N, C, H, W\).*received example_inputs=a tensor of shape \(3, 16, 16\)",
        ),
        (
            {"backend": "auto", "example_inputs": torch.randn(1, 3, 16, 16), "compile": False},
            r"backend='auto' chooses between fp32 paths.*compile=False",
        ),
        (
            {"backend": "auto", "example_inputs": torch.randn(1, 3, 16, 16), "dtype": "bf16"},
            r"backend='auto' chooses between fp32 paths.*dtype='bf16'",
        ),
        (
            {"example_inputs": torch.randn(1, 3, 16, 16)},
            r"example_inputs applies to backend='auto'.*received backend='torch'",
        ),
        (
            {"backend": "auto", "example_inputs": torch.zeros(1, 3, 16, 16, dtype=torch.int64)},
            r"example_inputs must be a float batch .*received a torch.int64 tensor of shape \(1, 3, 16, 16\)",
        ),
        ({"check": torch.randn(2, 3, 16, 16)}, r"check measures int8's agreement.*received dtype=None"),
    ],
)
def test_options_that_do_not_go_together_are_refused(tiny_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimize_for_inference(tiny_model(), **kwargs)


def test_missing_onnxruntime_names_the_extra(tiny_model, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(
        ValueError, match=r"not installed: onnxruntime\. Install them with: pip install 'reszoo\[onnx\]'"
    ):
        optimize_for_inference(tiny_model(), backend="onnxruntime")


def test_fold_batchnorm_counts_and_refuses_training_mode(tiny_model):
    model = tiny_model(shortcut="B")
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(model)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert fold_batchnorm(model.eval()) == n_bn == 1 + 3 * 2 + 2  # stem, 3 blocks x 2, 2 projections


@pytest.mark.slow
def test_compiled_path_freezes_and_matches_eager_at_two_batch_sizes(tiny_model):
    from torch._inductor.utils import run_and_get_code

    model = tiny_model()
    _randomise_bn(model, 1)
    model.eval()
    fast = optimize_for_inference(model)  # the CPU default: compiled with freezing
    x = torch.randn(3, 3, 16, 16)
    out, code = run_and_get_code(fast, x)
    # torch.compile(options={"freezing": True}) leaves the weights as graph inputs in torch 2.14;
    # frozen, they are constants and the convolutions are oneDNN's fused, pre-packed ones.
    assert "_frozen_param" in "".join(code) and "mkldnn._convolution_pointwise" in "".join(code)
    with torch.inference_mode():
        _close(out, model(x))
        _close(fast(x[:1]), model(x[:1]))  # a new batch size recompiles, still frozen


@pytest.mark.slow
@pytest.mark.skipif(not NATIVE_BF16, reason=NO_BF16)
def test_compiled_bf16_matches_eager(tiny_model):
    model = tiny_model()
    _randomise_bn(model, 3)
    model.eval()
    fast = optimize_for_inference(model, dtype="bf16", compile=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        _close(fast(x), model(x), BF16_RTOL)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_onnxruntime_backend_matches_eager_and_is_cached(tiny_model, monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra (pip install 'reszoo[onnx]') is not installed")
    monkeypatch.setenv("RESZOO_CACHE", str(tmp_path))
    model = tiny_model()
    _randomise_bn(model, 4)
    model.eval()
    fast = optimize_for_inference(model, backend="onnxruntime", input_size=(3, 16, 16))
    assert not fast.from_cache and fast.export_seconds > 0 and fast.path.parent == tmp_path / "onnx"
    with torch.inference_mode():
        for batch in (1, 5):  # a dynamic batch dimension
            x = torch.randn(batch, 3, 16, 16)
            _close(fast(x), model(x))
        _close(fast(x.contiguous(memory_format=torch.channels_last).double()), model(x))  # any layout, float dtype
    again = optimize_for_inference(model, backend="onnxruntime", input_size=(3, 16, 16))
    assert again.from_cache and again.export_seconds == 0.0 and again.path == fast.path
    _randomise_bn(model, 5)  # other weights: another file
    assert optimize_for_inference(model, backend="onnxruntime", input_size=(3, 16, 16)).path != fast.path
    with pytest.raises(ValueError, match=r"input must have shape \(N, 3, 16, 16\).*received shape \(2, 3, 8, 8\)"):
        fast(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"input must be a float tensor; received dtype torch.uint8"):
        fast(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"input must be a torch.Tensor"):
        fast([[0.0]])


# -- backend="auto": the faster path on the user's batch, timed now ---------------------------------


def test_auto_keeps_the_faster_path_and_says_what_it_timed(tiny_model, monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra (pip install 'reszoo[onnx]') is not installed")
    import reszoo.infer.optimize as optimize
    from reszoo.infer.ort import OrtModule

    monkeypatch.setenv("RESZOO_CACHE", str(tmp_path))
    model = tiny_model().eval()
    x = torch.randn(2, 3, 16, 16)
    timed = []

    def fake_timing(candidates, example):  # the real timing is exercised by the next test
        timed.append((sorted(candidates), tuple(example.shape)))
        return {"torch": 2.0, "onnxruntime": 1.0}

    monkeypatch.setattr(optimize, "_time_side_by_side", fake_timing)
    fast = optimize_for_inference(model, backend="auto", example_inputs=x)
    assert timed == [(["onnxruntime", "torch"], (2, 3, 16, 16))]
    assert isinstance(fast, OrtModule)
    assert fast.selection["chosen"] == "onnxruntime"
    assert fast.selection["seconds_per_call"] == {"torch": 2.0, "onnxruntime": 1.0}
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-3, atol=1e-3 * model(x).abs().max().item())
    monkeypatch.setattr(optimize, "_time_side_by_side", lambda c, e: {"torch": 1.0, "onnxruntime": 2.0})
    assert isinstance(optimize_for_inference(model, backend="auto", example_inputs=x), FrozenCompiled)


def test_auto_times_for_real_and_without_onnxruntime_keeps_torch(tiny_model, monkeypatch):
    import reszoo.infer.ort as ort

    monkeypatch.setattr(ort, "missing_dependencies", lambda: ["onnxruntime"])
    model = tiny_model().eval()
    x = torch.randn(3, 3, 16, 16)
    fast = optimize_for_inference(model, backend="auto", example_inputs=x)
    assert isinstance(fast, FrozenCompiled)
    selection = fast.selection
    assert selection["chosen"] == "torch" and selection["example_shape"] == (3, 3, 16, 16)
    assert list(selection["seconds_per_call"]) == ["torch"] and selection["seconds_per_call"]["torch"] > 0
    assert selection["not_tried"] == {"onnxruntime": "not installed (onnxruntime)"}
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-3, atol=1e-3 * model(x).abs().max().item())
