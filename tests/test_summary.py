"""reszoo.models.summary: the closed-form parameter and MAC counts equal what the counters report."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import reszoo
from reszoo.models.summary import config_counts, count_flops, count_params, has_closed_form, model_row, model_table


def _counted(config: reszoo.ResNetConfig, input_size: tuple[int, int, int] | None = None) -> tuple[int, int]:
    """Parameters and MACs of the network the config builds, by count_params and FlopCounterMode."""
    with torch.device("meta"):
        model = reszoo.ResNet(config)
    flops = count_flops(model, input_size or config.input_size)
    assert flops % 2 == 0
    return count_params(model), flops // 2


@pytest.mark.parametrize("name", reszoo.list_models())
def test_closed_form_equals_the_counters_for_every_registered_model(name):
    config = reszoo.default_config(name)
    assert has_closed_form(config)
    assert config_counts(config) == _counted(config)


VARIANTS = {
    "resnet20 shortcut B": ("resnet20", {"shortcut": "B"}),
    "resnet20 shortcut C": ("resnet20", {"shortcut": "C"}),
    "resnet20 in_chans=1": ("resnet20", {"in_chans": 1}),
    "resnet20 groupnorm": ("resnet20", {"norm": "groupnorm"}),
    "resnet20 strides 1,1,2": ("resnet20", {"strides": (1, 1, 2)}),
    "resnet18 groupnorm, image_size 64": ("resnet18", {"norm": "groupnorm", "image_size": 64}),
    "resnet50 stride_in_1x1": ("resnet50", {"stride_in_1x1": True}),
    "resnet50 shortcut C, image_size 64": ("resnet50", {"shortcut": "C", "image_size": 64}),
    "resnet50 shortcut A, in_chans=1": ("resnet50", {"shortcut": "A", "in_chans": 1}),
    "resnet34 image_size 64, 10 classes": ("resnet34", {"image_size": 64, "num_classes": 10}),
    # issue 23: every family part, alone and combined
    "resnet20 preact_basic, shortcut A": ("resnet20", {"block": "preact_basic"}),
    "resnet20 preact_basic, shortcut C, SE r=4": ("resnet20", {"block": "preact_basic", "shortcut": "C",
                                                               "attention": "se", "se_reduction": 4}),
    "resnet20 SE, deep stem, shortcut D": ("resnet20", {"attention": "se", "stem": "deep", "shortcut": "D"}),
    "resnet50 preact_bottleneck, deep stem, D": ("resnet50", {"block": "preact_bottleneck", "stem": "deep",
                                                             "shortcut": "D", "image_size": 64}),
    "resnet50 groups 8x16d, stride_in_1x1, SE": ("resnet50", {"groups": 8, "width_per_group": 16,
                                                              "stride_in_1x1": True, "attention": "se"}),
    "resnext29_32x4d conv_dropout, groupnorm": ("resnext29_32x4d", {"conv_dropout": 0.3, "norm": "groupnorm"}),
}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_closed_form_equals_the_counters_for_variants(variant):
    name, overrides = VARIANTS[variant]
    config = reszoo.default_config(name).replace(**overrides)
    assert config_counts(config) == _counted(config)


@pytest.mark.parametrize(
    ("name", "size"),
    [("resnet50", (3, 33, 45)), ("resnet50", (3, 97, 61)), ("resnet56", (3, 17, 9)), ("resnet50d", (3, 97, 61))],
)
def test_closed_form_on_odd_input_sizes(name, size):
    # Odd and non-square sizes exercise every floor in the output-size formulas (stride-2 convs and pool).
    config = (
        reszoo.default_config(name).replace(stride_in_1x1=True) if name == "resnet50" else reszoo.default_config(name)
    )
    assert config_counts(config, size) == _counted(config, size)


def test_config_with_a_callable_part_is_counted_on_meta():
    # PReLU has a parameter, so no closed form over the named layers can know this network.
    config = reszoo.default_config("resnet20").replace(act=lambda: nn.PReLU())
    assert not has_closed_form(config)
    params, macs = config_counts(config)
    assert (params, macs) == _counted(config)
    # One weight per PReLU module: the stem's and one per block (each block applies its own twice).
    assert params == config_counts(reszoo.default_config("resnet20"))[0] + 1 + 9


def test_model_rows_come_from_the_closed_form():
    row = model_row("resnet56")
    assert (row.params, row.macs) == (853_018, 125_485_696)
    assert row.depth == 56 and row.shortcut == "A" and row.input_size == (3, 32, 32)
    names = [r.name for r in model_table()]
    assert sorted(names) == sorted(reszoo.list_models())
    assert names[0] == "resnet20" and names.index("plain20") > names.index("resnet1202")  # CIFAR residual first
