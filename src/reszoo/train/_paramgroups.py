"""Which parameters train, and how fast: the optimizer's groups for training and fine-tuning.

A fine-tune trains the classifier (``model.fc``) at the schedule's learning rate and the backbone
at ``recipe.backbone_lr_scale`` times it, or not at all (``recipe.freeze_backbone``: its
BatchNorm statistics stay fixed too, :func:`train_mode`); with ``recipe.decay_norm_and_bias``
False, norms and biases (the 1-D parameters) get no weight decay, as timm and torchvision's
reference scripts offer. Each group carries an ``lr_scale`` that the loop multiplies into the
schedule's learning rate.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from reszoo.errors import InvalidArgumentError
from reszoo.train.recipes import Recipe

__all__ = ["param_groups", "train_mode"]


def param_groups(model: nn.Module, recipe: Recipe) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: classifier and backbone (``backbone_lr_scale``), each split
    into decayed and not decayed (1-D parameters: norms and biases, when ``decay_norm_and_bias`` is
    False); a frozen backbone is left out. Each group's ``lr_scale`` multiplies the schedule's lr.
    """
    head = _head(model) if recipe.freeze_backbone or recipe.backbone_lr_scale != 1 else None
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for param in model.parameters():
        in_head = id(param) in head_ids
        if not param.requires_grad or (recipe.freeze_backbone and not in_head):
            continue
        decayed = recipe.decay_norm_and_bias or param.ndim > 1
        groups.setdefault((in_head, decayed), []).append(param)
    return [
        {
            "params": params,
            "weight_decay": recipe.weight_decay if decayed else 0.0,
            "lr_scale": 1.0 if in_head or head is None else recipe.backbone_lr_scale,
        }
        for (in_head, decayed), params in sorted(groups.items())  # a fixed order: the checkpoint's
    ]


def _head(model: nn.Module) -> nn.Module:
    head = getattr(model, "fc", None)
    if not isinstance(head, nn.Module) or not any(True for _ in head.parameters()):
        raise InvalidArgumentError(
            f"freeze_backbone and backbone_lr_scale need a model whose classifier is model.fc; "
            f"{type(model).__name__} has none with parameters."
        )
    return head


def train_mode(model: nn.Module, recipe: Recipe) -> None:
    """``model.train()``, except a frozen backbone: its BatchNorm statistics stay fixed (eval mode)."""
    model.train()
    if recipe.freeze_backbone:
        head = _head(model)
        for module in model.modules():
            if module is not model and module is not head and not any(m is module for m in head.modules()):
                module.eval()
