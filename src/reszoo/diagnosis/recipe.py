"""Recipe findings: the optimizer's settings, its parameter groups, the batch size and the schedule.

The paper's values come from :func:`reszoo.train.recipes.paper_recipe` for the reference (SGD, momentum
0.9, weight decay 1e-4 on every parameter, lr 0.1 at batch 128 for CIFAR and 256 for ImageNet).
A learning rate scaled linearly with the batch size (Goyal et al. 2017) counts as the paper's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from reszoo.diagnosis.findings import Finding
from reszoo.diagnosis.reference import TRAIN_IMAGES, Reference
from reszoo.diagnosis.schedule import Run, base_lr, schedule_findings

# BatchNorm's statistics from fewer images than this get noisy enough to cost accuracy
# (Wu & He 2018, "Group Normalization", Fig. 1: ResNet-50's error rises below 16 per GPU).
MIN_BN_BATCH = 16


def _main_group(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    return max(optimizer.param_groups, key=lambda g: sum(p.numel() for p in g["params"]))


def optimizer_findings(model: nn.Module, optimizer: Any, reference: Reference, batch: int) -> list[Finding]:
    """``optimizer-type``, ``learning-rate``, ``momentum``, ``weight-decay``, ``weight-decay-norm``,
    ``params-not-optimized``."""
    out = _missing_params(model, optimizer)
    recipe = reference.recipe
    if not isinstance(optimizer, torch.optim.SGD):
        out.append(
            Finding(
                "optimizer-type",
                "warning",
                f"Your optimizer is {type(optimizer).__name__}; the paper trains with SGD, momentum {recipe.momentum}. "
                "Adaptive methods reach lower accuracy on these ResNets at the paper's schedule "
                "(keras-team/keras#8231).",
                {"yours": type(optimizer).__name__, "paper": "SGD"},
                f"torch.optim.SGD(model.parameters(), lr={recipe.lr * batch / recipe.batch_size:g}, "
                f"momentum={recipe.momentum}, weight_decay={recipe.weight_decay:g})",
            )
        )
        return out  # the learning rate, momentum and decay of another optimizer mean other things
    group = _main_group(optimizer)
    out += _lr(optimizer, reference, batch)
    out += _momentum(group, reference)
    out += _decay(optimizer, group, reference)
    return out


def _missing_params(model: nn.Module, optimizer: Any) -> list[Finding]:
    given = {id(p) for g in optimizer.param_groups for p in g["params"]}
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in given]
    if not missing:
        return []
    return [
        Finding(
            "params-not-optimized",
            "warning",
            f"{len(missing)} of your model's trainable parameters are in no parameter group of the optimizer: they "
            "never change (an optimizer built before a layer was replaced or moved, or from a sub-module).",
            {"parameters": missing[:8], "count": len(missing)},
            "Build the optimizer last, from model.parameters().",
        )
    ]


def _lr(optimizer: torch.optim.Optimizer, reference: Reference, batch: int) -> list[Finding]:
    recipe = reference.recipe
    lr, expected = base_lr(optimizer), recipe.lr * batch / recipe.batch_size
    ratio = lr / expected
    evidence = {
        "lr": lr,
        "expected": expected,
        "batch_size": batch,
        "paper_batch_size": recipe.batch_size,
        "ratio": round(ratio, 3),
    }
    scaled = f" (the paper's {recipe.lr:g} at batch {recipe.batch_size}, scaled to your batch {batch})"
    if abs(math.log(ratio)) > math.log(1.5):
        return [
            Finding(
                "learning-rate",
                "warning",
                f"Your initial learning rate is {lr:g}; the paper's is {expected:g}"
                f"{scaled if batch != recipe.batch_size else ''}: "
                f"{ratio:.2g}x.",
                evidence,
                f"lr={expected:g} (0.1 x batch / {recipe.batch_size}).",
            )
        ]
    if abs(ratio - 1) > 0.05:
        return [
            Finding(
                "learning-rate",
                "info",
                f"Your initial learning rate {lr:g} is close to the paper's {expected:g}{scaled} ({ratio:.2f}x).",
                evidence,
                f"lr={expected:g}.",
            )
        ]
    return []


def _momentum(group: dict[str, Any], reference: Reference) -> list[Finding]:
    out = []
    recipe = reference.recipe
    momentum, dampening = group.get("momentum", 0), group.get("dampening", 0)
    if abs(momentum - recipe.momentum) > 1e-9 or dampening:
        out.append(
            Finding(
                "momentum",
                "warning",
                f"Your SGD momentum is {momentum}"
                + (f" with dampening {dampening}" if dampening else "")
                + f"; the paper's is {recipe.momentum} without dampening"
                + (": plain SGD without momentum trains these ResNets much slower." if momentum == 0 else "."),
                {"momentum": momentum, "dampening": dampening, "paper": recipe.momentum},
                f"torch.optim.SGD(..., momentum={recipe.momentum})",
            )
        )
    if group.get("nesterov"):
        out.append(
            Finding(
                "momentum",
                "info",
                "Your SGD uses Nesterov momentum; the paper uses plain momentum. Equivalent or slightly better.",
                {"nesterov": True},
                "Nothing to fix (nesterov=False is the paper's).",
            )
        )
    return out


def _decay(optimizer: torch.optim.Optimizer, group: dict[str, Any], reference: Reference) -> list[Finding]:
    out = []
    paper = reference.recipe.weight_decay
    wd = group.get("weight_decay", 0)
    if wd == 0 or not 0.7 <= wd / paper <= 1.4:
        out.append(
            Finding(
                "weight-decay",
                "warning",
                f"Your weight decay is {wd:g}; the paper's is {paper:g}"
                + (" (5e-4 is the VGG/Wide-ResNet value, 5x the paper's)." if abs(wd - 5e-4) < 1e-12 else "."),
                {"weight_decay": wd, "paper": paper},
                f"torch.optim.SGD(..., weight_decay={paper:g})",
            )
        )
    elif wd != paper:
        out.append(
            Finding(
                "weight-decay",
                "info",
                f"Your weight decay {wd:g} is close to the paper's {paper:g}.",
                {"weight_decay": wd, "paper": paper},
                f"weight_decay={paper:g}",
            )
        )
    undecayed = [p for g in optimizer.param_groups if g.get("weight_decay", 0) == 0 and wd for p in g["params"]]
    if undecayed and all(p.dim() <= 1 for p in undecayed):
        out.append(
            Finding(
                "weight-decay-norm",
                "info",
                f"{len(undecayed)} one-dimensional parameters (BatchNorm scales and shifts, biases) get no weight "
                "decay; the paper decays every parameter. Small either way on these ResNets.",
                {"parameters_without_decay": len(undecayed), "elements": sum(p.numel() for p in undecayed)},
                "One parameter group with weight decay on everything (the paper; reszoo's decay_norm_and_bias=True).",
            )
        )
    return out


def run_length(
    reference: Reference,
    *,
    epochs: int | None,
    iterations: int | None,
    batch_size: int,
    train_size: int | None,
    scheduler_steps: str,
    notes: list[str],
) -> Run | None:
    """The user's run in scheduler steps and iterations; ``None`` (and a note) when no length was given."""
    if train_size is None:
        train_size = TRAIN_IMAGES[reference.dataset]
        if epochs is not None or scheduler_steps == "epoch":
            notes.append(
                f"train_size not given: assumed {train_size:,} images (all of {reference.dataset}'s training set)"
            )
    per_epoch = math.ceil(train_size / batch_size)
    if iterations is None and epochs is None:
        notes.append("no epochs or iterations given: the schedule's length and warm-up are not checked")
        return None
    total = iterations if iterations is not None else epochs * per_epoch
    per_step = per_epoch if scheduler_steps == "epoch" else 1
    return Run(max(1, math.ceil(total / per_step)), per_step, total, batch_size, train_size)


def batch_findings(batch_size: int, reference: Reference) -> list[Finding]:
    paper = reference.recipe.batch_size
    if batch_size == paper:
        return []
    small = batch_size < MIN_BN_BATCH
    return [
        Finding(
            "batch-size",
            "warning" if small else "info",
            f"Your batch is {batch_size}; the paper's is {paper}."
            + (
                f" BatchNorm's statistics from fewer than {MIN_BN_BATCH} images are noisy enough to cost accuracy."
                if small
                else " The learning rate is judged scaled linearly to your batch."
            ),
            {"batch_size": batch_size, "paper": paper},
            f"batch_size={paper}" + ("" if small else ", or keep yours with lr = 0.1 x batch / 128"),
        )
    ]


def recipe_findings(
    model: nn.Module, reference: Reference, *, optimizer: Any, scheduler: Any, run: Run | None, batch: int
) -> list[Finding]:
    """Every recipe finding for what was given (the optimizer may come from the scheduler)."""
    if optimizer is None and scheduler is not None:
        optimizer = getattr(scheduler, "optimizer", None)
    if optimizer is None:
        return []
    scale = batch / reference.recipe.batch_size
    out = optimizer_findings(model, optimizer, reference, batch)
    if isinstance(optimizer, torch.optim.SGD):
        out += schedule_findings(optimizer, scheduler, run, reference, scale)
    return out
