"""optimize_for_inference: BatchNorm folding and layout change keep every registered model's outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import reszoo
from reszoo.optimize import fold_batchnorm, optimize_for_inference

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY_OVERRIDES  # noqa: E402

# Folding rewrites w' = w * gamma / sqrt(var + eps), which rounds differently in fp32: outputs
# agree to about 1e-6 relative per layer, compounding over up to ~150 layers to well under 1e-4
# of the logits' scale. 1e-3 of the scale leaves room without hiding a wrong fold (which is off
# by O(1) of the scale).
RTOL = 1e-3


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
    if cfg.stem == "imagenet":
        model = reszoo.create_model(name, widths=(8, 16, 32, 64), stem_width=8)
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
    fast = optimize_for_inference(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
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
    fast = optimize_for_inference(model, channels_last=seed % 2 == 0)
    x = scale * torch.randn(batch, 3, side, side)
    with torch.inference_mode():
        ref, out = model(x), fast(x)
    torch.testing.assert_close(out, ref, rtol=RTOL, atol=RTOL * ref.abs().max().item() + 1e-6)


def test_layout_dtype_and_no_grad(tiny_model):
    model = tiny_model().eval()
    fast = optimize_for_inference(model, dtype="bf16")
    assert not fast.training
    assert fast.conv1.weight.dtype == torch.bfloat16
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(p.requires_grad for p in fast.parameters())
    nchw = optimize_for_inference(model, channels_last=False, fold_bn=False)
    assert isinstance(nchw.bn1, nn.BatchNorm2d)
    assert nchw.conv1.weight.is_contiguous()


def test_bad_dtype_names_value_and_choices(tiny_model):
    model = tiny_model()
    with pytest.raises(ValueError, match=r"'int8'.*fp32, bf16, fp16"):
        optimize_for_inference(model, dtype="int8")
    with pytest.raises(
        TypeError, match=r"dtype must be one of fp32, bf16, fp16, a torch.dtype or None; received dtype=8"
    ):
        optimize_for_inference(model, dtype=8)


def test_bad_model_and_flags_are_named(tiny_model):
    with pytest.raises(TypeError, match=r"model must be a Module; received model='resnet20' \(str\)"):
        optimize_for_inference("resnet20")
    with pytest.raises(TypeError, match=r"compile must be True or False; received compile='false' \(str\)"):
        optimize_for_inference(tiny_model(), compile="false")


def test_bad_compile_mode_names_value_and_choices(tiny_model):
    model = tiny_model()
    with pytest.raises(ValueError, match=r"compile_mode='max-autotune' needs compile=True, received compile=False"):
        optimize_for_inference(model, compile_mode="max-autotune")
    with pytest.raises(ValueError, match=r"torch.compile mode 'fastest'\..*Valid names: default, .*max-autotune"):
        optimize_for_inference(model, compile=True, compile_mode="fastest")


def test_fold_batchnorm_counts_and_refuses_training_mode(tiny_model):
    model = tiny_model(shortcut="B")
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(model)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert fold_batchnorm(model.eval()) == n_bn == 1 + 3 * 2 + 2  # stem, 3 blocks x 2, 2 projections


@pytest.mark.slow
def test_compiled_with_freezing_matches_eager(tiny_model):
    model = tiny_model()
    _randomise_bn(model, 1)
    model.eval()
    fast = optimize_for_inference(model, compile=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        ref, out = model(x), fast(x)
    torch.testing.assert_close(out, ref, rtol=RTOL, atol=RTOL * ref.abs().max().item())
