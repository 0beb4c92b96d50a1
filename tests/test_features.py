"""Backbones as timm's users know them: features_only / out_indices / feature_info through
create_model, forward_intermediates, torchvision's BackboneWithFPN, pretrained weights; and the
headless model (num_classes=0) whose forward gives pooled features."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import reszoo
from reszoo.errors import ArgumentTypeError, InvalidArgumentError
from reszoo.models.features import FeatureInfo, ResNetFeatures
from reszoo.models.summary import config_counts, count_params, layer_summary

# (channels, reduction) of features 0..N: the stem's activation, then layer1..layerN.
EXPECTED_INFO = {
    "resnet20": ([16, 16, 32, 64], [1, 1, 2, 4]),
    "resnet18": ([64, 64, 128, 256, 512], [2, 4, 8, 16, 32]),
    "resnet50": ([64, 256, 512, 1024, 2048], [2, 4, 8, 16, 32]),
}


def small_input(model: nn.Module, batch: int = 2) -> torch.Tensor:
    size = max(8, model.total_stride)
    return torch.randn(batch, model.config.in_chans, size, size)


@pytest.mark.parametrize("name", sorted(EXPECTED_INFO))
def test_feature_info_states_channels_reduction_and_module(name):
    channels, reduction = EXPECTED_INFO[name]
    info = reszoo.create_model(name).feature_info
    assert isinstance(info, FeatureInfo)
    assert (info.channels(), info.reduction()) == (channels, reduction)
    assert info.module_name() == ["relu"] + [f"layer{i}" for i in range(1, len(channels))]
    assert info.get_dicts()[1] == {"num_chs": channels[1], "reduction": reduction[1], "module": "layer1", "index": 1}


@pytest.mark.parametrize("name", reszoo.list_models())
def test_features_only_gives_every_stage_as_feature_info_says(name):
    backbone = reszoo.create_model(name, features_only=True)
    size = 8 if backbone.config.stem == "cifar" else 64  # twice the total stride: every map at least 2x2
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, size, size))
    info = backbone.feature_info
    assert len(features) == len(info) == len(backbone.config.depths) + 1
    for f, spec in zip(features, info, strict=True):
        assert tuple(f.shape) == (1, spec.num_chs, size // spec.reduction, size // spec.reduction)
    assert not any(k.startswith("fc.") for k in backbone.state_dict())


def test_backbone_outputs_equal_forward_intermediates_and_drop_unused_stages():
    model = reszoo.create_model("resnet18").eval()
    x = torch.randn(2, 3, 64, 64)
    backbone = ResNetFeatures(model, out_indices=(1, 2)).eval()
    with torch.no_grad():
        got = backbone(x)
        _, expected = model.forward_intermediates(x, indices=[1, 2])
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)
    assert backbone.feature_info.module_name() == ["layer1", "layer2"]
    assert not hasattr(backbone, "layer3") and not hasattr(backbone, "layer4")
    # Its keys are the full model's: the full state_dict loads once the unused ones are dropped.
    kept = {k: v for k, v in model.state_dict().items() if k.split(".")[0] in dict(backbone.named_children())}
    backbone.load_state_dict(kept, strict=True)
    stem_only = ResNetFeatures(model, out_indices=(0,))
    assert stem_only.stem_names == ("conv1", "bn1", "relu")  # stops before the max pool
    assert stem_only(x)[0].shape == (2, 64, 32, 32)


@pytest.mark.parametrize(
    ("out_indices", "expected"),
    [(None, (0, 1, 2, 3)), ((3, 1), (1, 3)), ([-1], (3,)), (2, (2, 3)), ((0,), (0,))],
)
def test_out_indices_forms(out_indices, expected):
    backbone = reszoo.create_model("resnet20", features_only=True, out_indices=out_indices)
    assert backbone.out_indices == expected
    assert [f.index for f in backbone.feature_info] == list(expected)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"features_only": True, "out_indices": (4,)}, InvalidArgumentError, r"0\.\.3.*out_indices=\(4,\)"),
        ({"features_only": True, "out_indices": (1, 1)}, InvalidArgumentError, r"without repeats"),
        ({"features_only": True, "out_indices": ()}, InvalidArgumentError, r"at least one index"),
        ({"features_only": True, "out_indices": 0}, InvalidArgumentError, r"1\.\.4.*out_indices=0"),
        ({"features_only": True, "out_indices": "1"}, ArgumentTypeError, r"out_indices='1'"),
        ({"out_indices": (1,)}, InvalidArgumentError, r"features_only=True"),
        ({"features_only": "yes"}, ArgumentTypeError, r"features_only='yes'"),
    ],
)
def test_bad_feature_arguments_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        reszoo.create_model("resnet20", **kwargs)


# -- forward_intermediates (timm's signature) ------------------------------------------------------
def test_forward_intermediates_as_timm():
    model = reszoo.create_model("resnet20").eval()
    x = small_input(model)
    with torch.no_grad():
        final, features = model.forward_intermediates(x)
        assert torch.equal(final, model.forward_features(x))
        assert torch.equal(model.forward_head(final), model(x))
        assert [f.shape[1] for f in features] == model.feature_info.channels()
        only = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [f.shape[1] for f in only] == [32, 64] and torch.equal(only[0], features[2])
        early, taken = model.forward_intermediates(x, indices=[-3], stop_early=True)
        assert torch.equal(early, taken[0]) and torch.equal(early, features[1])  # stopped after layer1
        assert torch.equal(model.forward_intermediates(x, indices=[0], norm=True)[1][0], features[0])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"indices": [7]}, InvalidArgumentError, r"indices=\[7\]"),
        ({"indices": 1.5}, ArgumentTypeError, r"indices=1\.5"),
        ({"stop_early": 1}, ArgumentTypeError, r"stop_early=1"),
        ({"output_fmt": "NHWC"}, InvalidArgumentError, r"output_fmt 'NHWC'.*NCHW"),
    ],
)
def test_forward_intermediates_refuses_bad_arguments(kwargs, error, message):
    model = reszoo.create_model("resnet20")
    with pytest.raises(error, match=message):
        model.forward_intermediates(small_input(model), **kwargs)


# -- torchvision's FPN ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet50", "resnet20"])
def test_plugs_into_torchvision_backbone_with_fpn(name):
    from torchvision.models.detection.backbone_utils import BackboneWithFPN

    model = reszoo.create_model(name).eval()
    stages = model.stage_names
    info = model.feature_info
    fpn = BackboneWithFPN(
        model,
        return_layers={stage: str(i) for i, stage in enumerate(stages)},
        in_channels_list=info.channels()[1:],
        out_channels=32,
    ).eval()
    x = small_input(model)
    with torch.no_grad():
        out = fpn(x)
        body = fpn.body(x)  # torchvision's IntermediateLayerGetter over our children, in order
        _, expected = model.forward_intermediates(x, indices=list(range(1, len(stages) + 1)))
    for i, feature in enumerate(expected):
        assert torch.equal(body[str(i)], feature)
        assert out[str(i)].shape == (2, 32, *feature.shape[-2:])
    assert "pool" in out  # the extra max-pooled level torchvision adds


# -- with pretrained weights ---------------------------------------------------------------------
def test_backbone_from_saved_pretrained_weights(tmp_path, tiny_model):
    trained = tiny_model(num_classes=5).eval()
    with torch.no_grad():  # weights unlike a fresh model's, so a load that silently failed would show
        for p in trained.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    reszoo.save_pretrained(trained, tmp_path / "tiny")
    loaded = reszoo.load_pretrained(tmp_path / "tiny")
    backbone = ResNetFeatures(loaded, out_indices=(1, 3)).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        got = backbone(x)
        _, expected = trained.forward_intermediates(x, indices=(1, 3))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert backbone.feature_info.channels() == [4, 16]


# -- num_classes=0: a headless model -------------------------------------------------------------
def test_num_classes_zero_returns_pooled_features(tiny_model):
    full = tiny_model().eval()
    headless = tiny_model(num_classes=0).eval()
    headless.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("fc.")})
    assert isinstance(headless.fc, nn.Identity) and headless.num_classes == 0
    assert not any(k.startswith("fc.") for k in headless.state_dict())
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        pooled = headless(x)
        assert pooled.shape == (3, headless.num_features)
        assert torch.equal(pooled, full.forward_head(full.forward_features(x), pre_logits=True))
        assert torch.equal(headless.forward_head(headless.forward_features(x)), pooled)


def test_reset_classifier_zero_and_back(tiny_model):
    model = tiny_model().eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(0)
        assert isinstance(model.get_classifier(), nn.Identity) and model.config.num_classes == 0
        assert torch.equal(model(x), pooled)
        model = model.to(torch.float64)
        model.reset_classifier(7)  # from a headless model: the new head takes the model's dtype
        assert model.fc.weight.dtype == torch.float64 and model(x.double()).shape == (2, 7)
    assert model.config.num_classes == 7
    with pytest.raises(InvalidArgumentError, match=r"num_classes=-1"):
        model.reset_classifier(-1)


@pytest.mark.parametrize("name", ["resnet20", "resnet50"])
def test_headless_counts_config_and_summary(name):
    config = reszoo.default_config(name).replace(num_classes=0)
    assert reszoo.ResNetConfig.from_dict(config.to_dict()) == config
    with torch.device("meta"):
        model = reszoo.ResNet(config)
        full = reszoo.create_model(name)
    params, macs = config_counts(config)
    assert params == count_params(model) == count_params(full) - count_params(full.fc)
    full_params, full_macs = config_counts(reszoo.default_config(name))
    assert full_macs - macs == full.fc.in_features * full.fc.out_features
    rows = layer_summary(model, config.input_size)
    assert rows[-1][:3] == ("fc", "Identity", (1, model.num_features))


def test_headless_model_saves_and_loads(tmp_path, tiny_model):
    model = tiny_model(num_classes=0).eval()
    reszoo.save_pretrained(model, tmp_path / "headless")
    loaded = reszoo.load_pretrained(tmp_path / "headless").eval()
    assert loaded.config == model.config and isinstance(loaded.fc, nn.Identity)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
