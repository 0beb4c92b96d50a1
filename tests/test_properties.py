"""Property-based tests over random architectures (shapes, parameter counts, init, gradients) and
over wrong-typed settings (every config field refuses them cleanly)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from reszoo import ResNet, ResNetConfig, create_model
from reszoo.errors import ArgumentTypeError, InvalidArgumentError
from reszoo.models.attention import ATTENTION
from reszoo.models.blocks import BLOCKS, ResidualBlock
from reszoo.models.layers import ACT_LAYERS, NORM_LAYERS
from reszoo.models.resnet import INIT_MODES
from reszoo.models.shortcuts import SHORTCUT_OPTIONS
from reszoo.models.stems import STEMS

OPTIONS = ("A", "B", "C", "none")


@st.composite
def configs(draw, *, families=("cifar", "imagenet")):
    family = draw(st.sampled_from(families))
    block = draw(st.sampled_from(["basic", "bottleneck"]))
    stages = draw(st.integers(1, 4))
    depths = tuple(draw(st.lists(st.integers(1, 2), min_size=stages, max_size=stages)))
    widths = tuple(draw(st.lists(st.integers(1, 12), min_size=stages, max_size=stages)))
    shortcut = draw(st.sampled_from(OPTIONS))
    if shortcut == "A":  # option A can only add channels: keep widths non-decreasing
        widths = tuple(sorted(widths))
    return ResNetConfig(
        stem=family,
        stem_width=draw(st.integers(1, 8)) if shortcut != "A" else min(widths),
        block=block,
        depths=depths,
        widths=widths,
        shortcut=shortcut,
        num_classes=draw(st.integers(1, 20)),
        in_chans=draw(st.integers(1, 4)),
    )


def expected_params(cfg: ResNetConfig) -> int:
    """Closed form: conv weights + 2 per norm channel + fc, summed block by block."""
    c, s = cfg.in_chans, cfg.stem_width
    stem_k = 3 if cfg.stem == "cifar" else 7
    total = stem_k * stem_k * c * s + 2 * s
    in_chs = s
    strides = (1,) + (2,) * (len(cfg.depths) - 1)
    for depth, width, stride in zip(cfg.depths, cfg.widths, strides, strict=True):
        for i in range(depth):
            if cfg.block == "basic":
                out = width
                total += 9 * in_chs * out + 2 * out + 9 * out * out + 2 * out
            else:
                out = 4 * width
                total += in_chs * width + 2 * width + 9 * width * width + 2 * width + width * out + 2 * out
            changes = in_chs != out or (i == 0 and stride != 1)
            if cfg.shortcut == "C" or (cfg.shortcut == "B" and changes):
                total += in_chs * out + 2 * out
            in_chs = out
    return total + in_chs * cfg.num_classes + cfg.num_classes


@given(cfg=configs(), batch=st.integers(1, 3), extra=st.integers(0, 9))
def test_output_shape(cfg, batch, extra):
    # Not the meta device: for networks this small its Python shape rules cost 40x the real CPU pass.
    model = ResNet(cfg)
    size = model.total_stride + extra
    x = torch.randn(batch, cfg.in_chans, size, size)
    model.eval()
    assert model(x).shape == (batch, cfg.num_classes)
    feats = model.forward_features(x)
    assert feats.shape[:2] == (batch, model.num_features)
    assert model.forward_head(feats, pre_logits=True).shape == (batch, model.num_features)


@given(cfg=configs())
def test_parameter_count_closed_form(cfg):
    with torch.device("meta"):  # counts only
        model = ResNet(cfg)
    assert sum(p.numel() for p in model.parameters()) == expected_params(cfg)


@given(
    n=st.integers(1, 30),
    widths=st.lists(st.integers(1, 64), min_size=3, max_size=3).map(lambda w: tuple(sorted(w))),
    num_classes=st.integers(1, 1000),
)
def test_cifar_option_a_count_for_any_n(n, widths, num_classes):
    with torch.device("meta"):
        model = ResNet(depths=(n, n, n), widths=widths, stem_width=widths[0], num_classes=num_classes)
    cfg = model.config
    assert sum(p.numel() for p in model.parameters()) == expected_params(cfg)
    # option A: no parameter lives in any shortcut
    assert not [k for k in model.state_dict() if "downsample" in k]


@given(cfg=configs(), mode=st.sampled_from(["fan_out", "fan_in"]))
def test_he_init_std_per_layer(cfg, mode):
    model = ResNet(cfg.replace(init_mode=mode))
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            w = m.weight
            k = w.shape[2] * w.shape[3]
            fan = k * (w.shape[0] if mode == "fan_out" else w.shape[1])
            n = w.numel()
            if n < 50:  # too few samples for a meaningful std estimate
                continue
            # the sample std of n normals has relative standard error ~ 1/sqrt(2n): allow 6 of them
            tol = 6 / math.sqrt(2 * n)
            assert abs(w.std().item() / math.sqrt(2 / fan) - 1) < tol, name
            assert abs(w.mean().item()) < 6 * math.sqrt(2 / fan) / math.sqrt(n), name
        elif isinstance(m, torch.nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert torch.equal(m.bias, torch.zeros_like(m.bias))


@given(cfg=configs())
def test_same_seed_same_weights(cfg):
    torch.manual_seed(123)
    a = ResNet(cfg).state_dict()
    torch.manual_seed(123)
    b = ResNet(cfg).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@given(cfg=configs().filter(lambda c: c.shortcut != "none"))
def test_zero_init_residual_blocks_compute_act_of_shortcut(cfg):
    model = ResNet(cfg.replace(zero_init_residual=True)).eval()
    seen = []

    def check(block, inputs, output):
        (x,) = inputs
        expected = torch.relu(block.downsample(x))
        assert torch.allclose(output, expected, atol=1e-6)
        seen.append(block)

    hooks = [m.register_forward_hook(check) for m in model.modules() if isinstance(m, ResidualBlock)]
    size = model.total_stride * 2
    model(torch.randn(2, cfg.in_chans, size, size))
    for h in hooks:
        h.remove()
    assert len(seen) == sum(cfg.depths)


@given(cfg=configs())
def test_every_parameter_gets_a_gradient(cfg):
    model = ResNet(cfg)
    size = model.total_stride  # the smallest input: the last stage sees 1x1 (batch 3 keeps BatchNorm defined)
    model(torch.randn(3, cfg.in_chans, size, size)).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


# --- wrong-typed settings ------------------------------------------------------------------------
# Every field of ResNetConfig is fed values of the wrong type, as they arrive from careless code,
# a CLI or a JSON file: words ("false", "1"), floats for ints, None, lists for scalars, bools for
# ints. Each must be refused with reszoo's own error naming the field: never accepted silently
# (stride_in_1x1="False" would be truthy) and never a foreign exception from deep inside torch.

WORDS = st.sampled_from(["false", "False", "true", "1", "0", "16", "3,3,3", "none", "None", "", "A"])
FLOATS = st.floats(allow_nan=True, allow_infinity=True)  # 1.0 and 16.0 included
LISTS = st.lists(st.integers(0, 4), max_size=3)
NOT_A_NUMBER = st.one_of(WORDS, st.none(), LISTS, st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
NOT_AN_INT = st.one_of(NOT_A_NUMBER, FLOATS, st.booleans())
NOT_A_FLOAT = st.one_of(NOT_A_NUMBER, st.booleans())  # an int is a valid float
NOT_A_BOOL = st.one_of(NOT_A_NUMBER, FLOATS, st.integers())
# Items that make a tuple of ints wrong, and whole values that are not tuples at all.
BAD_ITEM = st.one_of(WORDS, FLOATS, st.none(), st.booleans(), LISTS)
NOT_INTS = st.one_of(st.integers(), WORDS, FLOATS, st.booleans(), st.lists(BAD_ITEM, min_size=1, max_size=3))
NOT_A_NAME = st.one_of(st.integers(), FLOATS, st.none(), st.booleans(), LISTS)

# field -> (wrong-typed values, the names it accepts as strings; None: it takes no strings)
NAMED = {
    "stem": sorted(STEMS),
    "block": sorted(BLOCKS),
    "shortcut": list(SHORTCUT_OPTIONS),
    "norm": sorted(NORM_LAYERS),
    "act": sorted(ACT_LAYERS),
    "init_mode": list(INIT_MODES),
    "attention": list(ATTENTION),
}
WRONG = {
    **{name: NOT_A_BOOL for name in ("stride_in_1x1", "zero_init_residual")},
    **{name: NOT_AN_INT for name in ("stem_width", "num_classes", "in_chans", "image_size")},
    **{name: NOT_AN_INT for name in ("groups", "width_per_group", "se_reduction")},
    **{name: st.one_of(NOT_INTS, st.none()) for name in ("depths", "widths")},
    "strides": NOT_INTS,  # None is valid: the paper's strides
    "drop_path_rate": NOT_A_FLOAT,
    "conv_dropout": NOT_A_FLOAT,
    **{name: st.one_of(NOT_A_NAME, st.text(max_size=8).filter(lambda t, v=v: t not in v)) for name, v in NAMED.items()},
}
WRONG["block"] = st.one_of(WRONG["block"], st.sampled_from([int, str, torch.nn.Conv2d]))  # classes, not blocks


def test_every_config_field_has_wrong_values():
    assert set(WRONG) == set(ResNetConfig.field_names())


def _build(entry: str, field: str, value: object) -> object:
    if entry == "config":
        return ResNetConfig(**{field: value})
    if entry == "replace":
        return ResNetConfig().replace(**{field: value})
    if entry == "from_dict":
        return ResNetConfig.from_dict({field: value})
    return create_model("resnet20", **{field: value})


@pytest.mark.parametrize("field", sorted(WRONG))
@given(data=st.data(), entry=st.sampled_from(["config", "replace", "from_dict", "create_model"]))
def test_wrong_typed_fields_are_refused_naming_the_field(field, data, entry):
    value = data.draw(WRONG[field], label=field)
    # A string for a field that takes names is a wrong value; anything else here is a wrong type.
    expected = InvalidArgumentError if isinstance(value, str) and field in NAMED else ArgumentTypeError
    with pytest.raises(expected) as info:
        _build(entry, field, value)
    assert field in str(info.value)
