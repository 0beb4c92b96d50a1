"""Every registered model, exact oracles (the paper's and torchvision's), and bad input."""

from __future__ import annotations

import pytest
import torch
import torchvision

import reszoo
from reszoo import ResNet, ResNetConfig
from reszoo.errors import ArgumentTypeError, InvalidArgumentError

# He et al. 2015 section 4.2 (0.27M ... 19.4M), counted exactly for 10 classes (../shared/REFERENCE.md).
CIFAR_OPTION_A = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962, 1202: 19_421_274}
CIFAR_OPTION_B = {20: 272_474, 32: 466_906, 44: 661_338, 56: 855_770, 110: 1_730_714, 1202: 19_424_026}
# torchvision 0.29.1 model docs.
IMAGENET = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
# Paper MACs per 32x32 image, option A (conv + fc), in millions.
CIFAR_MACS_M = {20: 40.55, 32: 68.86, 44: 97.17, 56: 125.49, 110: 252.89, 1202: 2829.0}
IMAGENET_GMACS = {18: 1.814, 34: 3.664, 50: 4.089, 101: 7.801, 152: 11.514}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_registry_names():
    expected = {f"resnet{d}" for d in (20, 32, 44, 56, 110, 1202, 18, 34, 50, 101, 152)}
    expected |= {f"plain{d}" for d in (20, 32, 44, 56, 110, 18, 34)}
    family = {f"preresnet{d}" for d in (20, 56, 110, 164, 1001)} | {"resnetv2_50", "resnetv2_101"}
    family |= {"wrn16_10", "wrn28_10", "wrn40_8", "wide_resnet50_2", "wide_resnet101_2"}
    family |= {"resnext29_32x4d", "resnext29_16x64d", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d"}
    family |= {"resnet50d", "resnet101d", "seresnet50"}
    expected |= family  # issue 23: the later papers' networks, from the same parts
    assert set(reszoo.list_models()) == expected
    assert set(reszoo.list_models("plain*")) == {n for n in expected if n.startswith("plain")}
    assert reszoo.list_models("resnet1?") == ["resnet18"]
    for name in expected:
        assert getattr(reszoo, name) is reszoo.models.registry.get_model_fn(name)


@pytest.mark.parametrize("depth", sorted(CIFAR_OPTION_A))
def test_cifar_parameter_counts(depth):
    with torch.device("meta"):
        assert n_params(reszoo.create_model(f"resnet{depth}")) == CIFAR_OPTION_A[depth]
        assert n_params(reszoo.create_model(f"resnet{depth}", shortcut="B")) == CIFAR_OPTION_B[depth]
        if depth != 1202:
            assert n_params(reszoo.create_model(f"plain{depth}")) == CIFAR_OPTION_A[depth]


@pytest.mark.parametrize("depth", sorted(CIFAR_MACS_M))
def test_cifar_macs_match_paper(depth):
    # On the CPU, not the meta device: at 32x32 a real pass costs less than meta's Python shape rules.
    model = reszoo.create_model(f"resnet{depth}")
    assert reszoo.count_macs(model, (3, 32, 32)) / 1e6 == pytest.approx(CIFAR_MACS_M[depth], abs=0.5)


@pytest.mark.parametrize("depth", sorted(IMAGENET))
def test_imagenet_counts(depth):
    with torch.device("meta"):
        model = reszoo.create_model(f"resnet{depth}")
    assert n_params(model) == IMAGENET[depth]
    assert reszoo.count_macs(model, (3, 224, 224)) / 1e9 == pytest.approx(IMAGENET_GMACS[depth], abs=5e-4)


# torchvision's ResNeXt and Wide ResNet are the same network with wider or grouped bottlenecks (issue 23).
TORCHVISION_FAMILY = [
    "resnext50_32x4d",
    "wide_resnet50_2",
    pytest.param("resnext101_32x8d", marks=pytest.mark.slow),
    pytest.param("resnext101_64x4d", marks=pytest.mark.slow),
    pytest.param("wide_resnet101_2", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name", [f"resnet{d}" for d in sorted(IMAGENET)] + TORCHVISION_FAMILY)
def test_torchvision_weights_load_strictly_and_match(name):
    torch.manual_seed(len(name))
    tv = getattr(torchvision.models, name)().eval()
    # make the BN statistics non-trivial so a mismatched buffer would show
    for m in tv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    ours = reszoo.create_model(name).eval()
    assert list(ours.state_dict()) == list(tv.state_dict())
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=0, atol=0)


def _aten_ops(model: torch.nn.Module, x: torch.Tensor, train: bool) -> list[str]:
    """The ATen operators one forward (and, in training, backward) pass runs, in order."""
    from torch.profiler import ProfilerActivity, profile

    model.train(train)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        if train:
            model(x).sum().backward()
        else:
            with torch.inference_mode():
                model(x)
    return [e.name for e in prof.events() if e.name.startswith("aten::")]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2"])
@pytest.mark.parametrize("train", [False, True], ids=["infer", "train"])
def test_same_aten_ops_as_torchvision(name, train):
    """Performance parity by construction: our eager network does exactly torchvision's work.

    Timing on a shared machine is too noisy to catch a few percent (benchmarks/compare.py does
    that); the operator sequence is not. An out-of-place residual add, an extra copy or a
    layout change would show up here as a differing list.
    """
    torch.manual_seed(0)
    ours = reszoo.create_model(name)
    tv = getattr(torchvision.models, name)()
    x = torch.randn(2, 3, 32, 32)  # the smallest input (total stride 32): the operator list does not depend on it
    ops_ours, ops_tv = _aten_ops(ours, x, train), _aten_ops(tv, x, train)
    assert "aten::add_" in ops_ours
    assert ops_ours == ops_tv


def test_torchvision_style_code_works():
    model = reszoo.resnet18()
    model.fc = torch.nn.Linear(512, 7)
    seen = []
    model.layer4[-1].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    assert seen == [torch.Size([1, 512, 2, 2])]
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer4", "avgpool", "fc"):
        assert hasattr(model, name)


def test_cifar_names_match_torchvision_convention():
    keys = reszoo.resnet20().state_dict().keys()
    assert {k.split(".")[0] for k in keys} == {"conv1", "bn1", "layer1", "layer2", "layer3", "fc"}


@pytest.mark.parametrize("name", reszoo.list_models())
def test_every_model_runs_forward_and_backward(name):
    model = reszoo.create_model(name)
    size = max(8, model.total_stride)  # small inputs: this test is about every layer taking part, not pixels
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, model.config.num_classes)
    out.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_overrides_and_reset_classifier():
    model = reszoo.create_model("resnet20", shortcut="B", num_classes=100, in_chans=1)
    assert model.config.shortcut == "B" and model.fc.out_features == 100
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 100)
    model.reset_classifier(5)
    assert model.fc.out_features == 5 and model.config.num_classes == 5
    assert reszoo.cifar_resnet(74).config.depth == 74
    assert reszoo.create_model("resnet50", stride_in_1x1=True).layer2[0].conv1.stride == (2, 2)


def test_config_round_trip():
    cfg = reszoo.create_model("resnet50").config
    assert ResNetConfig.from_dict(cfg.to_dict()) == cfg
    assert ResNetConfig.from_dict({"depths": [1, 1], "widths": [4, 8]}).depths == (1, 1)
    assert reszoo.models.registry.default_config("resnet50") == cfg


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: reszoo.create_model("resnet50", stride_in_1x1="False"), r"stride_in_1x1 must be True or False"),
        (lambda: reszoo.create_model("resnet20", zero_init_residual="false"), r"zero_init_residual='false' \(str\)"),
        (lambda: reszoo.create_model("resnet20", depths=3), r"depths must be a tuple of integers; received depths=3"),
        (lambda: reszoo.create_model("resnet20", num_classes=10.0), r"num_classes=10\.0 \(float\)"),
        (lambda: reszoo.create_model("resnet20", in_chans=True), r"in_chans=True \(bool\)"),
        (lambda: reszoo.create_model("resnet20", block=torch.nn.Conv2d), r"block must be a string or a ResidualBlock"),
        (lambda: reszoo.create_model("resnet20", norm=None), r"norm must be a string or a callable"),
        (lambda: ResNet("resnet20"), r"config must be a ResNetConfig.*create_model\('resnet20'\)"),
        (lambda: ResNetConfig.from_dict([("depths", (1,))]), r"data must be a dict"),
        (lambda: reszoo.cifar_resnet("20"), r"depth must be an integer; received depth='20'"),
        (lambda: reszoo.resnet20().reset_classifier(2.0), r"num_classes=2\.0"),
    ],
)
def test_wrong_types_are_type_errors_naming_the_field(call, message):
    with pytest.raises(ArgumentTypeError, match=message):
        call()


def test_config_with_a_callable_is_not_plain_data():
    cfg = ResNetConfig(act=torch.nn.Tanh)
    assert ResNet(cfg).relu.__class__ is torch.nn.Tanh
    with pytest.raises(InvalidArgumentError, match=r"act=.*callable"):
        cfg.to_dict()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: reszoo.create_model("resnet5"), r"Unknown model 'resnet5'.*resnet50"),
        (lambda: reszoo.create_model("resnt56"), r"Did you mean: resnet56"),
        (lambda: reszoo.cifar_resnet(51), r"6n\+2.*received depth=51"),
        (lambda: reszoo.imagenet_resnet(20), r"received depth=20"),
        # num_classes=0 is a headless model now (timm's convention, tests/test_features.py); below 0 is refused.
        (lambda: reszoo.create_model("resnet20", num_classes=-1), r"num_classes=-1"),
        (lambda: reszoo.create_model("resnet20", in_chans=0), r"in_chans=0"),
        (lambda: reszoo.create_model("resnet20", shortcut="E"), r"Unknown shortcut 'E'.*A, B, C, D, none"),
        (lambda: reszoo.create_model("resnet20", block="wide"), r"Unknown block 'wide'.*basic"),
        (lambda: reszoo.create_model("resnet20", norm="ln"), r"Unknown norm 'ln'.*batchnorm"),
        (lambda: reszoo.create_model("resnet20", init_mode="xavier"), r"Unknown init_mode 'xavier'"),
        (lambda: reszoo.create_model("resnet20", widths=(16, 32)), r"widths=\(16, 32\)"),
        (lambda: reszoo.create_model("resnet20", colour="red"), r"\['colour'\].*valid fields.*num_classes"),
        (lambda: reszoo.create_model("plain20", zero_init_residual=True), r"shortcut='none'"),
        (lambda: reszoo.resnet20().reset_classifier(-1), r"received num_classes=-1"),
        (lambda: ResNet(widths=(32, 16, 8), stem_width=32), r"in_chs=32, out_chs=16"),
    ],
)
def test_bad_input_is_rejected_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("resnet18", (1, 3, 16, 16), r"total stride 32"),
        ("resnet20", (1, 1, 32, 32), r"Expected 3 input channels.*received 1"),
        ("resnet20", (3, 32, 32), r"\(N, C, H, W\).*\(3, 32, 32\)"),
    ],
)
def test_bad_batches_are_rejected_before_any_layer(name, shape, message):
    with pytest.raises(ValueError, match=message):
        reszoo.create_model(name)(torch.randn(shape))
