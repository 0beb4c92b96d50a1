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
    with pytest.raises(ValueError, match=r"Unknown shortcut 'D'.*A, B, C, none"):
        make_shortcut("D", in_chs=4, out_chs=8, stride=2, norm_layer=nn.BatchNorm2d)


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
