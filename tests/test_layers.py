"""The training knobs, off by default: stochastic depth (drop_path_rate) and gradient checkpointing
(set_grad_checkpointing). Off, the paper's networks are unchanged; on, each does what it says."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import reszoo
from reszoo import BasicBlock, ResNet, ResNetConfig
from reszoo.errors import ArgumentTypeError, InvalidArgumentError
from reszoo.models.layers import DropPath, drop_path
from reszoo.models.shortcuts import ZeroPadShortcut


# -- stochastic depth ----------------------------------------------------------------------------
def test_drop_path_keeps_or_drops_whole_samples_and_keeps_the_mean():
    x = torch.rand(4000, 2, 3, 3) + 1
    y = drop_path(x, 0.25, training=True)
    kept = (y != 0).flatten(1)
    assert (kept.all(1) | ~kept.any(1)).all()  # a sample is kept or dropped whole
    kept = kept.all(1)
    torch.testing.assert_close(y[kept], x[kept] / 0.75)  # kept samples scaled by 1 / keep
    assert abs(kept.float().mean().item() - 0.75) < 0.03  # 4000 draws: 0.03 is over 4 sigma
    assert drop_path(x, 0.25, training=False) is x
    assert drop_path(x, 0.0, training=True) is x
    module = DropPath(0.25).eval()
    assert module(x) is x and "drop_prob=0.2500" in repr(module)


def test_a_dropped_block_passes_its_shortcut_on():
    torch.manual_seed(3)
    block = BasicBlock(8, 16, stride=2, shortcut=ZeroPadShortcut(8, 16, 2), drop_path=0.5).train()
    x = torch.randn(64, 8, 6, 6)
    with torch.no_grad():
        out = block(x)
        shortcut_only = torch.relu(block.downsample(x))
    dropped = [torch.equal(out[i], shortcut_only[i]) for i in range(len(x))]
    assert 10 < sum(dropped) < 54  # some samples dropped (their output is relu(shortcut)), some not


def test_drop_path_rate_rises_linearly_over_blocks_as_huang_et_al():
    model = reszoo.create_model("resnet20", drop_path_rate=0.2)
    rates = [b.drop_path.drop_prob for b in model.modules() if isinstance(b, BasicBlock)]
    assert rates == pytest.approx([0.2 * (i + 1) / 9 for i in range(9)])  # block l of L: rate * l / L


@pytest.mark.parametrize("name", ["resnet20", "resnet50"])
def test_off_by_default_and_identity_in_eval(name):
    paper = reszoo.create_model(name).eval()
    assert not any(isinstance(m, DropPath) for m in paper.modules())  # nothing added to the paper's blocks
    assert all(b.drop_path is None for b in paper.modules() if isinstance(b, reszoo.ResidualBlock))
    with_drop = reszoo.create_model(name, drop_path_rate=0.1)
    assert list(with_drop.state_dict()) == list(paper.state_dict())  # no parameters, no buffers
    with_drop.load_state_dict(paper.state_dict())
    x = torch.randn(2, 3, paper.total_stride, paper.total_stride)
    with torch.no_grad():
        assert torch.equal(with_drop.eval()(x), paper(x))


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (1.0, InvalidArgumentError, r"drop_path_rate must be a number in \[0, 1\); received drop_path_rate=1\.0"),
        (-0.1, InvalidArgumentError, r"received drop_path_rate=-0\.1"),
        (float("nan"), InvalidArgumentError, r"drop_path_rate=nan"),
        ("0.1", ArgumentTypeError, r"drop_path_rate='0\.1' \(str\)"),
    ],
)
def test_bad_drop_path_rate_is_refused(value, error, message):
    with pytest.raises(error, match=message):
        reszoo.create_model("resnet20", drop_path_rate=value)


def test_plain_networks_refuse_stochastic_depth():
    with pytest.raises(InvalidArgumentError, match=r"drop_path_rate=0\.1 with shortcut='none'"):
        reszoo.create_model("plain20", drop_path_rate=0.1)


def test_drop_path_rate_is_plain_config_data():
    config = ResNetConfig(drop_path_rate=0.05)
    assert ResNetConfig.from_dict(config.to_dict()) == config
    assert ResNetConfig.from_dict({"drop_path_rate": 0}).drop_path_rate == 0.0  # an int is a number


# -- gradient checkpointing ----------------------------------------------------------------------
def _train_step(model: nn.Module, x: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, dict, dict]:
    torch.manual_seed(seed)  # the same drop-path masks in both runs
    model.train()
    model.zero_grad()
    out = model(x)
    out.logsumexp(1).mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return out.detach(), grads, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("every", ["stage", "block"])
@pytest.mark.parametrize("overrides", [{}, {"drop_path_rate": 0.3}, {"shortcut": "B", "num_classes": 0}])
def test_checkpointing_changes_nothing_but_memory(tiny_model, overrides, every):
    plain, checkpointed = tiny_model(**overrides, depths=(2, 1, 1)), tiny_model(**overrides, depths=(2, 1, 1))
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.set_grad_checkpointing(every=every)
    x = torch.randn(4, 3, 16, 16)
    for step in range(2):
        out_a, grads_a, state_a = _train_step(plain, x, seed=step)
        out_b, grads_b, state_b = _train_step(checkpointed, x, seed=step)
        torch.testing.assert_close(out_b, out_a, rtol=0, atol=0)
        for name in grads_a:
            torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-6, atol=1e-7, msg=name)
        # Running statistics too: the recomputed forward does not update them a second time.
        for name in state_a:
            torch.testing.assert_close(state_b[name], state_a[name], rtol=0, atol=0, msg=name)


def test_checkpointing_recomputes_each_stage_in_backward(tiny_model):
    model = tiny_model()
    calls = []
    for name in model.stage_names:
        getattr(model, name).register_forward_pre_hook(lambda m, i, name=name: calls.append(name))
    x = torch.randn(2, 3, 16, 16)
    model(x).sum().backward()
    assert calls == ["layer1", "layer2", "layer3"]
    calls.clear()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    assert sorted(calls) == sorted(["layer1", "layer2", "layer3"] * 2)  # forward, then again in backward
    calls.clear()
    with torch.no_grad():  # nothing to recompute without gradients
        model(x)
    assert calls == ["layer1", "layer2", "layer3"]
    model.set_grad_checkpointing(False)
    assert not model.grad_checkpointing
    with pytest.raises(ArgumentTypeError, match=r"enable='yes'"):
        model.set_grad_checkpointing("yes")
    with pytest.raises(InvalidArgumentError, match=r"every 'layer'.*stage, block"):
        model.set_grad_checkpointing(every="layer")


def test_checkpointing_every_block_recomputes_one_block_at_a_time(tiny_model):
    model = tiny_model(depths=(2, 2, 2))
    blocks = [b for name in model.stage_names for b in getattr(model, name)]
    calls = []
    for i, block in enumerate(blocks):
        block.register_forward_pre_hook(lambda m, args, i=i: calls.append(i))
    model.set_grad_checkpointing(every="block")
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    # Forward in order, then each block again just before its own backward: last block first.
    assert calls == list(range(6)) + list(reversed(range(6)))


def test_backbones_checkpoint_too(tiny_model):
    model = tiny_model()
    model.set_grad_checkpointing(every="block")
    backbone = reszoo.models.features.ResNetFeatures(model, out_indices=(1, 3))
    assert backbone.grad_checkpointing and backbone.checkpoint_every == "block"  # taken from the model
    x = torch.randn(2, 3, 16, 16)
    torch.manual_seed(0)
    with_ckpt = backbone(x)
    sum(f.sum() for f in with_ckpt).backward()
    grads = [p.grad.clone() for p in backbone.parameters()]
    backbone.zero_grad()
    backbone.set_grad_checkpointing(False)
    torch.manual_seed(0)
    sum(f.sum() for f in backbone(x)).backward()
    for a, b in zip(grads, (p.grad for p in backbone.parameters()), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert ResNet(model.config).grad_checkpointing is False
