"""`create_model(name, pretrained=...)` and `resnet56(pretrained=...)`: the one-line pretrained models.

Offline: weights come from a save_pretrained folder or a Hub repo served on 127.0.0.1
(``tests/_http.py``, as in test_hub.py), registered as test-only catalog entries.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as safetensors_bytes

import reszoo
import reszoo.models.resnet
from reszoo import weights as W
from reszoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from reszoo.errors import ArgumentTypeError, InvalidArgumentError, MissingInputError, WeightsIntegrityError
from reszoo.weights import catalog
from reszoo.weights.convert import adapt_input_conv

sys.path.insert(0, str(Path(__file__).parent))
from _refnets import randomize_  # noqa: E402
from conftest import TINY_OVERRIDES  # noqa: E402

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))


def tiny_net(seed: int, **overrides) -> reszoo.ResNet:
    """The tiny resnet20-shaped network with seeded weights and BatchNorm statistics, eval mode."""
    return randomize_(reszoo.create_model("resnet20", **TINY_OVERRIDES, **overrides), seed=seed)


def hub_entry(monkeypatch, server, name: str, *, seed: int, default: bool = False, **overrides) -> reszoo.ResNet:
    """A test-only catalog entry for resnet20 (the tiny net) served from the local Hub; returns its network."""
    ref = tiny_net(seed, **overrides)
    repo = f"tests/{name}"
    server.add_hub_file(repo, "model.safetensors", safetensors_bytes(ref.state_dict()))
    entry = W.Weights(
        name=name,
        arch="resnet20",
        source=W.HubSource(repo_id=repo),
        converter="torchvision",
        dataset="cifar10",
        num_classes=10,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        crop_size=32,
        config_overrides=tuple({**TINY_OVERRIDES, **overrides}.items()),
        aliases=(f"{name}-alias",),
    )
    monkeypatch.setitem(W.WEIGHTS, name, entry)
    monkeypatch.setitem(catalog._ALIASES, f"{name}-alias", name)
    if default:
        monkeypatch.setitem(W.DEFAULT_WEIGHTS, "resnet20", name)
    return ref


def assert_close_to_scale(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal up to fp32 rounding relative to the outputs' scale (seeded nets have large logits)."""
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()


@pytest.fixture
def folder(tmp_path):
    """A save_pretrained folder of a seeded resnet20 and the network it holds."""
    ref = randomize_(reszoo.resnet20(), seed=3)
    reszoo.save_pretrained(ref, tmp_path / "r20")
    return tmp_path / "r20", ref


# -- what pretrained= loads ---------------------------------------------------------------------------


def test_every_default_is_an_entry_of_that_architecture_as_registered():
    for arch, name in W.DEFAULT_WEIGHTS.items():
        entry = W.get_weights(name)
        assert entry.arch == arch and not entry.config_overrides, name  # the registered network itself
        assert W.default_weights(arch) is entry
    archs_with_weights = {w.arch for w in W.WEIGHTS.values()}
    assert archs_with_weights == set(W.DEFAULT_WEIGHTS)
    with pytest.raises(InvalidArgumentError, match=r"No pretrained weights for 'plain20'.*resnet18, resnet20"):
        reszoo.create_model("plain20", pretrained=True)


@pytest.mark.timeout(120)
def test_pretrained_true_loads_the_default_entry_once_and_offline(hub_server, monkeypatch):
    ref = hub_entry(monkeypatch, hub_server, "resnet20-testdefault", seed=1, default=True)
    model = reszoo.create_model("resnet20", pretrained=True)
    assert model.training, "create_model returns training mode, with or without weights (as timm, torchvision)"
    assert model.pretrained_weights.name == "resnet20-testdefault"
    torch.testing.assert_close(model.eval()(X), ref(X), rtol=0, atol=0)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # from the Hugging Face cache from now on
    for again in (
        reszoo.resnet20(pretrained=True),
        reszoo.create_model("resnet20", pretrained="resnet20-testdefault"),
        reszoo.create_model("resnet20", pretrained="resnet20-testdefault-alias"),
        reszoo.create_model("resnet20", pretrained="hf-hub:tests/resnet20-testdefault"),
    ):
        torch.testing.assert_close(again.eval()(X), ref(X), rtol=0, atol=0)
    assert hub_server.gets == {"/tests/resnet20-testdefault/resolve/main/model.safetensors": 1}


@pytest.mark.timeout(120)
def test_a_named_entry_builds_its_own_variant(hub_server, monkeypatch):
    hub_entry(monkeypatch, hub_server, "resnet20-testdefault", seed=1, default=True)
    ref_b = hub_entry(monkeypatch, hub_server, "resnet20-test-b", seed=2, shortcut="B")
    model = reszoo.resnet20(pretrained="resnet20-test-b")
    assert model.config.shortcut == "B" and model.pretrained_weights.name == "resnet20-test-b"
    torch.testing.assert_close(model.eval()(X), ref_b(X), rtol=0, atol=0)


def test_a_save_pretrained_folder(folder):
    path, ref = folder
    for pretrained in (path, str(path)):
        model = reszoo.create_model("resnet20", pretrained=pretrained)
        torch.testing.assert_close(model.eval()(X), ref(X), rtol=0, atol=0)


def test_the_network_is_built_once_on_the_meta_device(folder, monkeypatch):
    builds = []
    real_init = reszoo.models.resnet.init_weights

    def spy(model, **kwargs):
        builds.append(all(p.is_meta for p in model.parameters()))
        return real_init(model, **kwargs)

    monkeypatch.setattr(reszoo.models.resnet, "init_weights", spy)
    reszoo.create_model("resnet20", pretrained=folder[0])
    assert builds == [True]  # one build, never initialised: the weights are assigned
    builds.clear()
    reszoo.create_model("resnet20", pretrained=folder[0], in_chans=1)
    assert builds and all(builds)  # the network asked for is built on meta too, then filled


# -- adapting to the task ------------------------------------------------------------------------------


def test_in_chans_1_sums_the_rgb_filters(folder):
    path, ref = folder
    model = reszoo.create_model("resnet20", pretrained=path, in_chans=1).eval()
    assert model.config.in_chans == 1
    torch.testing.assert_close(model.conv1.weight, ref.conv1.weight.sum(dim=1, keepdim=True))
    grey = X[:, :1]
    assert_close_to_scale(model(grey), ref(grey.expand(-1, 3, -1, -1)))
    torch.testing.assert_close(model.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)  # the rest as loaded


def test_more_channels_repeat_the_rgb_filters_cyclically_scaled(folder):
    path, ref = folder
    w = ref.conv1.weight
    five = reszoo.resnet20(pretrained=path, in_chans=5)
    torch.testing.assert_close(five.conv1.weight, torch.cat([w, w[:, :2]], dim=1) * (3 / 5))
    # Six channels carrying the same RGB image twice answer as the RGB model does.
    six = reszoo.resnet20(pretrained=path, in_chans=6).eval()
    assert_close_to_scale(six(torch.cat([X, X], dim=1)), ref(X))


def test_adapt_input_conv_rules():
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    assert adapt_input_conv(3, w) is w
    assert adapt_input_conv(1, w).dtype == torch.float64
    torch.testing.assert_close(adapt_input_conv(2, w), w[:, :2] * 1.5)
    with pytest.raises(InvalidArgumentError, match="in_chans=3: a first convolution of 1 input channels"):
        adapt_input_conv(3, torch.randn(4, 1, 3, 3))
    with pytest.raises(InvalidArgumentError, match="in_chans must be an integer >= 1"):
        adapt_input_conv(0, w)


def test_num_classes_keeps_the_backbone_and_warns_about_the_head(folder):
    path, ref = folder
    with pytest.warns(UserWarning, match="num_classes=100 differs from the weights' 10.*fc.weight, fc.bias"):
        model = reszoo.create_model("resnet20", pretrained=path, num_classes=100)
    model.eval()
    assert model.fc.out_features == 100 and model.config.num_classes == 100
    torch.testing.assert_close(model.forward_features(X), ref.forward_features(X), rtol=0, atol=0)


def test_num_classes_0_is_headless_quietly(folder):
    path, ref = folder
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = reszoo.create_model("resnet20", pretrained=path, num_classes=0).eval()
    torch.testing.assert_close(model(X), ref.forward_head(ref.forward_features(X), pre_logits=True))


def test_features_only_with_pretrained_weights(folder):
    path, ref = folder
    backbone = reszoo.create_model("resnet20", pretrained=path, features_only=True, out_indices=(1, 2, 3)).eval()
    maps = backbone(X)
    x = ref.relu(ref.bn1(ref.conv1(X)))
    for stage, got in zip((ref.layer1, ref.layer2, ref.layer3), maps, strict=True):
        x = stage(x)
        torch.testing.assert_close(got, x, rtol=0, atol=0)


# -- wrong values: one clear error each ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pretrained", "error", "message"),
    [
        ("resnet20-cifar11", InvalidArgumentError, r"Unknown pretrained='resnet20-cifar11'\. Did you mean: resnet20-c"),
        ("resnet56-cifar10", InvalidArgumentError, r"pretrained='resnet56-cifar10' holds weights for resnet56, not "),
        (1, ArgumentTypeError, r"pretrained must be True, False, a weight name.*received pretrained=1 \(int\)"),
        ("./no/such/folder", MissingInputError, r"pretrained='./no/such/folder' is not a folder"),
    ],
)  # fmt: skip
def test_a_wrong_pretrained_value_names_it_and_the_valid_ones(pretrained, error, message):
    with pytest.raises(error, match=message) as info:
        reszoo.create_model("resnet20", pretrained=pretrained)
    if error is not ArgumentTypeError:
        assert "Valid for resnet20: True (resnet20-cifar10), resnet20-cifar10, resnet20-cifar10-b" in str(info.value)


def test_a_folder_of_another_architecture_is_refused(folder):
    with pytest.raises(InvalidArgumentError, match=r"holds a resnet20 network .* not resnet56; load it with"):
        reszoo.create_model("resnet56", pretrained=folder[0])
    with pytest.raises(InvalidArgumentError, match=r"not plain20"):  # same shapes, but no shortcuts
        reszoo.create_model("plain20", pretrained=folder[0])


def test_overrides_that_change_the_weights_keys_are_refused(folder):
    with pytest.raises(WeightsIntegrityError, match=r"with shortcut='B' do not fit.*missing keys: layer2\.0\.down"):
        reszoo.create_model("resnet20", pretrained=folder[0], shortcut="B")


def test_overrides_are_checked_before_anything_is_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("RESZOO_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a download would fail with WeightsNotCachedError instead
    with pytest.raises(InvalidArgumentError, match=r"Unknown config field\(s\) \['depthz'\]"):
        reszoo.create_model("resnet50", pretrained=True, depthz=3)
    with pytest.raises(InvalidArgumentError, match="num_classes must be an integer >= 0"):
        reszoo.create_model("resnet50", pretrained=True, num_classes=-1)
