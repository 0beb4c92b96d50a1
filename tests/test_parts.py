"""The composable parts: shortcuts, blocks, stems, head, make_stages."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from reszoo import (
    BasicBlock,
    Bottleneck,
    CifarStem,
    ClassifierHead,
    ImageNetStem,
    ZeroPadShortcut,
    make_shortcut,
    make_stages,
)


@given(
    in_chs=st.integers(1, 12),
    extra=st.integers(0, 12),
    stride=st.sampled_from([1, 2, 3]),
    size=st.integers(3, 9),
)
def test_option_a_is_subsample_and_zero_pad(in_chs, extra, stride, size):
    out_chs = in_chs + extra
    x = torch.randn(2, in_chs, size, size)
    y = ZeroPadShortcut(in_chs, out_chs, stride)(x)
    sub = x[:, :, ::stride, ::stride]
    before = extra // 2
    assert y.shape == (2, out_chs, *sub.shape[-2:])
    assert torch.equal(y[:, before : before + in_chs], sub)
    assert torch.count_nonzero(y[:, :before]) == 0
    assert torch.count_nonzero(y[:, before + in_chs :]) == 0
    assert not list(ZeroPadShortcut(in_chs, out_chs, stride).parameters())


def test_option_a_matches_reference_cifar_implementation():
    # akamaster/pytorch_resnet_cifar10: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
    x = torch.randn(3, 16, 32, 32)
    planes = 32
    expected = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
    assert torch.equal(ZeroPadShortcut(16, 32, 2)(x), expected)


def test_option_a_rejects_fewer_channels():
    with pytest.raises(ValueError, match="in_chs=8, out_chs=4"):
        ZeroPadShortcut(8, 4)


@pytest.mark.parametrize(
    ("option", "in_chs", "out_chs", "stride", "expected"),
    [
        ("A", 16, 16, 1, nn.Identity),
        ("A", 16, 32, 2, ZeroPadShortcut),
        ("B", 16, 16, 1, nn.Identity),
        ("B", 16, 32, 2, nn.Sequential),
        ("C", 16, 16, 1, nn.Sequential),
        ("C", 16, 32, 2, nn.Sequential),
    ],
)
def test_make_shortcut_choices(option, in_chs, out_chs, stride, expected):
    sc = make_shortcut(option, in_chs=in_chs, out_chs=out_chs, stride=stride, norm_layer=nn.BatchNorm2d)
    assert type(sc) is expected
    assert sc(torch.randn(1, in_chs, 8, 8)).shape == (1, out_chs, 8 // stride, 8 // stride)


def test_make_shortcut_none_and_unknown():
    assert make_shortcut("none", in_chs=4, out_chs=8, stride=2, norm_layer=nn.BatchNorm2d) is None
    with pytest.raises(ValueError, match=r"Unknown shortcut 'E'.*A, B, C, D, none"):
        make_shortcut("E", in_chs=4, out_chs=8, stride=2, norm_layer=nn.BatchNorm2d)


def test_projection_uses_torchvision_key_names():
    sc = make_shortcut("B", in_chs=4, out_chs=8, stride=2, norm_layer=nn.BatchNorm2d)
    assert {k.split(".")[0] for k in sc.state_dict()} == {"0", "1"}


def test_plain_block_adds_nothing():
    torch.manual_seed(0)
    block = BasicBlock(8, 8, shortcut=None).eval()
    x = torch.randn(2, 8, 6, 6)
    branch = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
    assert torch.allclose(block(x), torch.relu(branch))


@pytest.mark.parametrize("stride_in_1x1", [False, True])
def test_bottleneck_stride_placement(stride_in_1x1):
    sc = make_shortcut("B", in_chs=16, out_chs=32, stride=2, norm_layer=nn.BatchNorm2d)
    block = Bottleneck(16, 8, stride=2, stride_in_1x1=stride_in_1x1, shortcut=sc)
    assert block.conv1.stride == ((2, 2) if stride_in_1x1 else (1, 1))
    assert block.conv2.stride == ((1, 1) if stride_in_1x1 else (2, 2))
    assert block(torch.randn(1, 16, 8, 8)).shape == (1, 32, 4, 4)


def test_zero_init_last_zeroes_last_norm():
    for block in (BasicBlock(4, 4, shortcut=nn.Identity()), Bottleneck(16, 4, shortcut=nn.Identity())):
        block.zero_init_last()
        assert torch.count_nonzero(block.last_norm().weight) == 0


def test_stems_shapes_and_names():
    cifar = CifarStem(3, 16)
    assert [n for n, _ in cifar.named_children()] == ["conv1", "bn1", "relu"]
    assert cifar(torch.randn(1, 3, 32, 32)).shape == (1, 16, 32, 32)
    imagenet = ImageNetStem(3, 64)
    assert [n for n, _ in imagenet.named_children()] == ["conv1", "bn1", "relu", "maxpool"]
    assert imagenet(torch.randn(1, 3, 224, 224)).shape == (1, 64, 56, 56)
    assert (cifar.reduction, imagenet.reduction) == (1, 4)


def test_head_pre_logits():
    head = ClassifierHead(8, 5)
    x = torch.randn(2, 8, 3, 3)
    assert torch.allclose(head(x, pre_logits=True), x.mean((2, 3)))
    assert head(x).shape == (2, 5)


def test_make_stages_is_pure_and_counts_channels():
    stages, chs = make_stages(block=Bottleneck, depths=(2, 1), widths=(4, 8), strides=(1, 2), in_chs=4, shortcut="B")
    assert chs == 32 and len(stages) == 2
    assert [len(s) for s in stages] == [2, 1]
    y = nn.Sequential(*stages)(torch.randn(1, 4, 8, 8))
    assert y.shape == (1, 32, 4, 4)
    again, _ = make_stages(block=Bottleneck, depths=(2, 1), widths=(4, 8), strides=(1, 2), in_chs=4, shortcut="B")
    assert [type(m) for m in again[0].modules()] == [type(m) for m in stages[0].modules()]


# -- the family's parts (issue 23) ---------------------------------------------------------------
from reszoo import DeepStem, PreActBasicBlock, PreActBottleneck, SqueezeExcite, avg_down_projection  # noqa: E402
from reszoo.models.blocks import bottleneck_width  # noqa: E402


def _eval_block(block: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.running_var, 0.5, 1.5)
            nn.init.normal_(m.running_mean, std=0.1)
    return block.eval()


def test_preact_basic_block_is_bn_relu_conv_twice_then_add():
    # Identity shortcut: the block's input itself is added, nothing follows the add.
    block = _eval_block(PreActBasicBlock(8, 8, shortcut=nn.Identity()))
    x = torch.randn(2, 8, 6, 6)
    branch = block.conv2(torch.relu(block.bn2(block.conv1(torch.relu(block.bn1(x))))))
    torch.testing.assert_close(block(x), branch + x)
    assert (block(x) < 0).any()  # no activation after the add
    assert [n for n, _ in block.named_children()] == ["bn1", "relu", "conv1", "bn2", "conv2", "downsample"]


def test_preact_projection_sees_the_pre_activated_input():
    # Where the shape changes the shortcut is a 1x1 conv without a norm, on relu(bn1(x)) (He et al. 2016's code).
    sc = make_shortcut("B", in_chs=8, out_chs=16, stride=2, norm_layer=nn.BatchNorm2d, preact=True)
    assert [type(m) for m in sc] == [nn.Conv2d]
    block = _eval_block(PreActBasicBlock(8, 16, stride=2, shortcut=sc))
    x = torch.randn(2, 8, 7, 7)
    pre = torch.relu(block.bn1(x))
    branch = block.conv2(torch.relu(block.bn2(block.conv1(pre))))
    torch.testing.assert_close(block(x), branch + sc(pre))
    # A parameter-free shortcut (option A) keeps the clean identity path: it pads x itself.
    block_a = _eval_block(PreActBasicBlock(8, 16, stride=2, shortcut=ZeroPadShortcut(8, 16, 2)))
    branch_a = block_a.conv2(torch.relu(block_a.bn2(block_a.conv1(torch.relu(block_a.bn1(x))))))
    torch.testing.assert_close(block_a(x), branch_a + ZeroPadShortcut(8, 16, 2)(x))


def test_preact_bottleneck_grouped_and_zero_init_last():
    sc = make_shortcut("B", in_chs=16, out_chs=32, stride=2, norm_layer=nn.BatchNorm2d, preact=True)
    block = PreActBottleneck(16, 8, stride=2, groups=4, width_per_group=32, shortcut=sc)
    assert block.conv2.groups == 4 and block.conv2.in_channels == bottleneck_width(8, groups=4, width_per_group=32)
    assert block.conv2.stride == (2, 2) and block(torch.randn(1, 16, 8, 8)).shape == (1, 32, 4, 4)
    block.zero_init_last()  # the branch ends in conv3: zeroed, the block is its shortcut
    assert torch.count_nonzero(block.conv3.weight) == 0
    x = torch.randn(1, 16, 8, 8)
    torch.testing.assert_close(block.eval()(x), sc(torch.relu(block.bn1(x))))


def test_bottleneck_width_follows_torchvision():
    assert bottleneck_width(64) == 64
    assert bottleneck_width(64, groups=32, width_per_group=4) == 128  # ResNeXt-50 32x4d
    assert bottleneck_width(512, groups=32, width_per_group=8) == 2048  # ResNeXt-101 32x8d, last stage
    assert bottleneck_width(64, width_per_group=128) == 128  # Wide ResNet-50-2


def test_deep_stem_names_shapes_and_preact_form():
    stem = DeepStem(3, 64)
    assert [n for n, _ in stem.named_children()] == ["conv1", "bn1", "relu", "maxpool"]
    assert [m.out_channels for m in stem.conv1 if isinstance(m, nn.Conv2d)] == [32, 32, 64]
    assert stem.conv1[0].stride == (2, 2) and stem.reduction == 4
    assert stem(torch.randn(1, 3, 64, 64)).shape == (1, 64, 16, 16)
    assert [n for n, _ in DeepStem(3, 64, preact=True).named_children()] == ["conv1", "maxpool"]


@pytest.mark.parametrize("size", [8, 9, 15])
def test_avg_down_projection_pools_then_projects(size):
    from reszoo.models.shortcuts import CeilAvgPool2d

    x = torch.randn(2, 8, size, size + 1)
    expected = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)
    compiled = torch.compile(CeilAvgPool2d(2), backend="eager", fullgraph=True)  # the export-friendly form
    assert torch.equal(CeilAvgPool2d(2)(x), expected) and torch.equal(compiled(x), expected)
    proj = avg_down_projection(8, 16, 2, nn.BatchNorm2d).eval()
    assert {k.split(".")[0] for k in proj.state_dict()} == {"1", "2"}  # timm's ResNet-D names
    x = torch.randn(2, 8, size, size)
    pooled = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)
    torch.testing.assert_close(proj(x), proj[2](proj[1](pooled)))
    assert proj(x).shape[-1] == (size - 1) // 2 + 1  # the strided 3x3's output size
    assert type(avg_down_projection(8, 16, 1, nn.BatchNorm2d)[0]) is nn.Identity


def test_make_shortcut_option_d_is_identity_where_the_shape_holds():
    assert type(make_shortcut("D", in_chs=8, out_chs=8, stride=1, norm_layer=nn.BatchNorm2d)) is nn.Identity
    sc = make_shortcut("D", in_chs=8, out_chs=16, stride=2, norm_layer=nn.BatchNorm2d, preact=True)
    assert [type(m).__name__ for m in sc] == ["CeilAvgPool2d", "Conv2d"]


def test_squeeze_excite_scales_channels_by_a_gate():
    se = SqueezeExcite(32, reduction=16)
    assert (se.fc1.out_channels, se.fc2.out_channels) == (2, 32)
    assert SqueezeExcite(8, reduction=16).fc1.out_channels == 1  # at least one unit
    x = torch.randn(2, 32, 5, 5)
    gate = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(se(x), x * gate)


def test_blocks_take_attention_and_dropout_only_when_asked():
    plain = BasicBlock(8, 8, shortcut=nn.Identity())
    assert plain.se is None and plain.dropout is None
    block = Bottleneck(16, 4, shortcut=nn.Identity(), attn_layer=SqueezeExcite, conv_dropout=0.5)
    assert isinstance(block.se, SqueezeExcite) and block.se.channels == 16
    x = torch.randn(2, 16, 4, 4)
    block.eval()
    torch.testing.assert_close(block(x), block(x))  # dropout is off in eval
    block.train()
    assert not torch.equal(block(x), block(x))
