"""Property-based tests over random architectures: shapes, parameter counts, init, gradients."""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from reszoo import ResNet, ResNetConfig
from reszoo.blocks import ResidualBlock

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
    size = model.total_stride * 2
    model(torch.randn(3, cfg.in_chans, size, size)).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
