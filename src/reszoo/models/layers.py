"""Name tables for the norm and activation layers a config may ask for, and the two training
helpers the blocks and stages share: stochastic depth and activation checkpointing.

A config names its layers by string so that it stays plain data: it can be written to
``config.json`` and rebuilt without code. A callable is accepted too, for experiments that need
a layer outside these tables (such a config cannot be saved as JSON).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.utils.checkpoint
from torch import nn

from reszoo.utils.checks import type_error, unknown_name_error

NormFactory = Callable[[int], nn.Module]
ActFactory = Callable[[], nn.Module]


def _group_norm(num_channels: int) -> nn.GroupNorm:
    # 32 groups is the GroupNorm paper's default; narrow CIFAR layers (16 channels) get one
    # channel per group rather than an error.
    return nn.GroupNorm(min(32, num_channels), num_channels)


NORM_LAYERS: dict[str, NormFactory] = {
    "batchnorm": nn.BatchNorm2d,
    "groupnorm": _group_norm,
}

ACT_LAYERS: dict[str, ActFactory] = {
    # inplace ReLU as in torchvision: it saves one activation per block in training.
    "relu": lambda: nn.ReLU(inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
}


def _resolve(value: str | Callable[..., nn.Module], table: dict, what: str) -> Callable[..., nn.Module]:
    if callable(value):
        return value
    if not isinstance(value, str):
        raise type_error(what, value, f"one of {', '.join(sorted(table))}, or a callable")
    if value not in table:
        raise unknown_name_error(what, value, sorted(table))
    return table[value]


def get_norm_layer(norm: str | NormFactory) -> NormFactory:
    """Return the factory ``f(num_channels) -> nn.Module`` for a norm name or callable."""
    return _resolve(norm, NORM_LAYERS, "norm")


def get_act_layer(act: str | ActFactory) -> ActFactory:
    """Return the factory ``f() -> nn.Module`` for an activation name or callable."""
    return _resolve(act, ACT_LAYERS, "act")


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Stochastic depth (Huang et al. 2016): zero the whole residual branch for some samples.

    Each sample's branch is kept with probability ``1 - drop_prob`` and scaled by
    ``1 / (1 - drop_prob)`` in training, so its expected value is unchanged and evaluation needs no
    rescaling (the paper instead scales by the survival probability at test time; the outputs agree
    in expectation). Outside training, or with ``drop_prob == 0``, ``x`` is returned as it is.
    """
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    shape = [x.shape[0]] + [1] * (x.dim() - 1)  # one draw per sample, broadcast over C, H, W
    mask = x.new_empty(shape).bernoulli_(keep_prob)
    return x * mask.div_(keep_prob)


class DropPath(nn.Module):
    """:func:`drop_path` as a module, placed on a residual branch (never on the shortcut).

    Args:
        drop_prob: probability of dropping the branch of a sample, in ``[0, 1)``.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.4f}"


@contextlib.contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Within the block, batch norms in ``module`` normalise with batch statistics as usual but
    leave their running statistics (and ``num_batches_tracked``) as they were.

    Activation checkpointing runs a stage's forward twice; without this the recomputation would
    apply the running-average update a second time and training would drift from the same run
    without checkpointing.
    """
    norms = [m for m in module.modules() if getattr(m, "num_batches_tracked", None) is not None]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


def checkpointed(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` keeping only ``x`` for backward, recomputing the rest (activation checkpointing).

    Non-reentrant checkpointing (``use_reentrant=False``, PyTorch's recommendation): it supports
    inputs that need no gradient and keeps the RNG state, so stochastic depth draws the same
    masks when the forward is recomputed. The recomputation leaves norm statistics alone
    (:func:`frozen_running_stats`), so gradients and running statistics equal those without it.
    """
    if torch.compiler.is_compiling():
        # Compiled, the recomputation is part of the backward graph, which does not repeat the
        # forward's buffer updates (and dynamo takes no custom context_fn).
        return torch.utils.checkpoint.checkpoint(module, x, use_reentrant=False)
    return torch.utils.checkpoint.checkpoint(
        module,
        x,
        use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), frozen_running_stats(module)),
    )
