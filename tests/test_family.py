"""The ResNet family from the same parts: exact oracles against pytorchcv, timm and torchvision.

Parameter counts are checked against numbers recorded from the oracles (no oracle needed). Outputs
are checked against the oracles themselves where they are installed (timm and pytorchcv are in the
``test`` extra; a plain install skips those tests, saying why): pytorchcv's CIFAR networks hold the
same tensors in the same order, so copying them across must give the same outputs; timm's
``resnet50d`` and ``seresnet50`` state_dicts load as they are, ``resnetv2_*`` through
``convert_timm_resnetv2``. torchvision's ResNeXt and Wide ResNet (strict loads, equal outputs, the
same ATen operators) are checked beside its ResNets in tests/test_models.py.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

import reszoo
from reszoo.weights.convert import convert_state_dict, fit_state_dict

# Parameters for 10 / 1000 classes. CIFAR: pytorchcv 0.0.74 (`<name>_cifar10`; preresnet164bn for 164);
# ImageNet: torchvision 0.29 (resnext*, wide_resnet*) and timm 1.0 (resnet50d, resnet101d, seresnet50, resnetv2_*).
ORACLE_PARAMS = {
    "preresnet20": 272_282,
    "preresnet56": 855_578,
    "preresnet110": 1_730_522,
    "preresnet164": 1_703_258,
    "preresnet1001": 10_327_706,
    "wrn16_10": 17_116_634,
    "wrn28_10": 36_479_194,
    "wrn40_8": 35_748_314,
    "resnext29_32x4d": 4_775_754,
    "resnext29_16x64d": 68_155_210,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "resnet50d": 25_576_264,
    "resnet101d": 44_568_392,
    "seresnet50": 28_088_024,
    "resnetv2_50": 25_549_352,
    "resnetv2_101": 44_541_480,
}
# The papers' own figures (millions), where they give one (../shared/REFERENCE.md, "The ResNet family"):
# Identity Mappings (ResNet-164, ResNet-1001), Wide Residual Networks, ResNeXt (CIFAR, 16x64d).
PAPER_PARAMS_M = {
    "preresnet164": 1.7,
    "preresnet1001": 10.2,
    "wrn16_10": 17.1,
    "wrn28_10": 36.5,
    "wrn40_8": 35.7,
    "resnext29_16x64d": 68.1,
}
PYTORCHCV = {
    "preresnet20": "preresnet20_cifar10",
    "preresnet56": "preresnet56_cifar10",
    "preresnet110": "preresnet110_cifar10",
    "preresnet164": "preresnet164bn_cifar10",
    "preresnet1001": "preresnet1001_cifar10",
    "wrn16_10": "wrn16_10_cifar10",
    "wrn28_10": "wrn28_10_cifar10",
    "wrn40_8": "wrn40_8_cifar10",
    "resnext29_32x4d": "resnext29_32x4d_cifar10",
    "resnext29_16x64d": "resnext29_16x64d_cifar10",
}
# Building and running these takes more than a few seconds on 2 cores.
HEAVY = {"preresnet110", "preresnet1001", "wrn28_10", "wrn40_8", "resnext29_16x64d"}

needs_timm = pytest.mark.skipif(
    importlib.util.find_spec("timm") is None, reason="timm is not installed (pip install '.[test]' installs it)"
)
needs_pytorchcv = pytest.mark.skipif(
    importlib.util.find_spec("pytorchcv") is None,
    reason="pytorchcv is not installed (pip install '.[test]' installs it)",
)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_family_name_is_registered_with_an_oracle_count():
    assert set(ORACLE_PARAMS) <= set(reszoo.list_models())
    for name in ORACLE_PARAMS:
        assert getattr(reszoo, name) is reszoo.models.registry.get_model_fn(name)


@pytest.mark.parametrize("name", sorted(ORACLE_PARAMS))
def test_parameter_counts_equal_the_oracles(name):
    with torch.device("meta"):
        model = reszoo.create_model(name)
    assert n_params(model) == ORACLE_PARAMS[name]
    if name in PAPER_PARAMS_M:
        # The papers give 0.1M steps, not always rounded: ResNeXt's "68.1M" is 68,155,210 cut short, and
        # Identity Mappings' 10.2M for ResNet-1001 is near its convolutions alone (10,175,920; 10,327,706
        # with the norms and the classifier, as pytorchcv counts too).
        assert ORACLE_PARAMS[name] / 1e6 == pytest.approx(PAPER_PARAMS_M[name], abs=0.15)


def _calibrated(model: nn.Module, size: int, seed: int) -> nn.Module:
    """The library's own (fan-scaled) weights, seeded random norm scales and shifts, then batch-norm
    statistics from one batch: outputs of order one, so a tight tolerance means something."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            m.momentum = 1.0
    with torch.no_grad():
        model.train()(torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(seed)))
    return model.eval()


def _pytorchcv_case(name: str):
    marks = [needs_pytorchcv] + ([pytest.mark.slow] if name in HEAVY else [])
    return pytest.param(name, marks=marks)


# preresnet1001 is preresnet164's blocks 111 times a stage (its count is checked above): minutes here.
@pytest.mark.parametrize("name", [_pytorchcv_case(n) for n in PYTORCHCV if n != "preresnet1001"])
def test_cifar_nets_compute_what_pytorchcv_computes(name):
    from pytorchcv.model_provider import get_model

    theirs = _calibrated(get_model(PYTORCHCV[name], pretrained=False), 32, seed=1)
    ours = reszoo.create_model(name).eval()
    # The same tensors in the same order (pytorchcv keeps no num_batches_tracked): copy them across.
    source = [v for k, v in theirs.state_dict().items() if not k.endswith("num_batches_tracked")]
    target = [k for k in ours.state_dict() if not k.endswith("num_batches_tracked")]
    assert [tuple(v.shape) for v in source] == [tuple(ours.state_dict()[k].shape) for k in target]
    ours.load_state_dict(fit_state_dict(dict(zip(target, source, strict=True)), ours))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)


TIMM_SAME_KEYS = ["resnet50d", "seresnet50", pytest.param("resnet101d", marks=pytest.mark.slow)]


@needs_timm
@pytest.mark.parametrize("name", TIMM_SAME_KEYS)
def test_timm_resnet_d_and_se_state_dicts_load_as_they_are(name):
    import timm

    theirs = _calibrated(timm.create_model(name), 64, seed=2)
    ours = reszoo.create_model(name).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 97, 71)  # odd and unequal sides: the average-pool shortcut's ceil mode
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


@needs_timm
@pytest.mark.parametrize("name", ["resnetv2_50", pytest.param("resnetv2_101", marks=pytest.mark.slow)])
def test_timm_resnetv2_converts_with_equal_outputs_and_features(name):
    import timm

    theirs = _calibrated(timm.create_model(name), 64, seed=3)
    converted = convert_state_dict("timm_resnetv2", theirs.state_dict())
    ours = reszoo.create_model(name).eval()
    assert set(converted) == set(ours.state_dict())
    ours.load_state_dict(fit_state_dict(converted, ours), strict=True)
    x = torch.randn(2, 3, 97, 71)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
        # forward_intermediates as timm's: the stem's conv, the stages, the final norm when asked.
        for norm in (False, True):
            final, maps = ours.forward_intermediates(x, norm=norm)
            final_t, maps_t = theirs.forward_intermediates(x, norm=norm)
            torch.testing.assert_close(final, final_t, rtol=1e-5, atol=1e-5)
            for a, b in zip(maps, maps_t, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert ours.feature_info.channels() == [f["num_chs"] for f in theirs.feature_info]
    assert ours.feature_info.reduction() == [f["reduction"] for f in theirs.feature_info]


# Keys of timm's resnetv2_50 (timm 1.0.31), a sample of each kind, and what they become.
TIMM_RESNETV2_KEYS = {
    "stem.conv.weight": "conv1.weight",
    "stages.0.blocks.0.downsample.conv.weight": "layer1.0.downsample.0.weight",
    "stages.0.blocks.0.norm1.running_var": "layer1.0.bn1.running_var",
    "stages.0.blocks.0.conv1.weight": "layer1.0.conv1.weight",
    "stages.2.blocks.5.norm3.num_batches_tracked": "layer3.5.bn3.num_batches_tracked",
    "stages.3.blocks.2.conv3.weight": "layer4.2.conv3.weight",
    "norm.weight": "final_norm.weight",
    "head.fc.bias": "fc.bias",
    "module.head.fc.weight": "fc.weight",  # a DataParallel prefix is dropped
}


def test_timm_resnetv2_converter_on_recorded_keys():
    sd = {k: torch.zeros(1) for k in TIMM_RESNETV2_KEYS}
    sd["module.head.fc.weight"] = torch.zeros(1000, 2048, 1, 1)  # timm's head is a 1x1 conv
    out = convert_state_dict("timm_resnetv2", sd)
    assert list(out) == list(TIMM_RESNETV2_KEYS.values())
    assert out["fc.weight"].shape == (1000, 2048)
    with torch.device("meta"):
        keys = set(reszoo.create_model("resnetv2_50").state_dict())
    assert set(out) <= keys
