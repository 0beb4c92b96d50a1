"""The learning-rate schedule, read by running it.

A deep copy of the optimizer and scheduler (the model's parameters replaced by empty tensors,
so nothing is copied or changed) is stepped through the whole run, and its learning rate is
compared with the paper's at the same fraction of training: 0.1, divided by 10 at 32k and 48k
of 64k iterations (50% and 75%; epochs 91 and 137 of 182 on 45k images), scaled linearly with
the batch size. Learning rates are compared on a log scale: a factor of 2 or more is a difference.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from reszoo.diagnosis.findings import Finding
from reszoo.diagnosis.reference import Reference
from reszoo.train.recipes import learning_rate

MAX_STEPS = 1_000_000  # about 5 s of scheduler steps; longer runs are sampled from their first million
_PROBES = (0.25, 0.49, 0.51, 0.74, 0.76, 0.99)  # around the paper's drops at 50% and 75%


@dataclass
class Run:
    """The length of the user's run, in the scheduler's steps and in iterations."""

    steps: int  # scheduler steps over the run
    per_step: int  # iterations per scheduler step (1, or the iterations of an epoch)
    iterations: int
    batch_size: int
    train_size: int

    @property
    def epochs(self) -> float:
        return self.iterations * self.batch_size / self.train_size


def lr_trajectory(optimizer: torch.optim.Optimizer, scheduler: Any, steps: int) -> list[float]:
    """The first group's learning rate at each of ``steps`` scheduler steps (before the step), from copies."""
    memo: dict[int, Any] = {id(p): torch.empty(0) for g in optimizer.param_groups for p in g["params"]}
    opt, sched = copy.deepcopy((optimizer, scheduler), memo)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": no training happens here
        advance = _stepper(sched)
        for k in range(min(steps, MAX_STEPS)):
            lrs.append(float(opt.param_groups[0]["lr"]))
            advance(k + 1)
    return lrs


def _stepper(scheduler: Any) -> Any:
    """``f(k)``: the scheduler's k-th step as a training loop makes it.

    torch's schedulers count their own steps (``step()``). timm's (``timm.scheduler``) are told where
    training is, as timm's train.py does: ``step(epoch)`` after each epoch when their time is in
    epochs (``t_in_epochs``), ``step_update(num_updates)`` after each iteration otherwise.
    """
    if scheduler is None:
        return lambda k: None
    if callable(getattr(scheduler, "step_update", None)) and hasattr(scheduler, "t_in_epochs"):
        return scheduler.step if scheduler.t_in_epochs else scheduler.step_update
    return lambda k: scheduler.step()


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate the schedule starts from (``initial_lr``, which schedulers record) of the first group."""
    group = optimizer.param_groups[0]
    return float(group.get("initial_lr", group["lr"]))


def reference_lr(reference: Reference, fraction: float, scale: float) -> float:
    r = reference.schedule
    return learning_rate(r, min(r.iterations - 1, int(fraction * r.iterations))) * scale


def _drops(lrs: list[float]) -> list[tuple[int, float]]:
    """Scheduler steps where the learning rate falls by 1.5x or more at once, with the factor."""
    return [(k + 1, lrs[k + 1] / lrs[k]) for k in range(len(lrs) - 1) if lrs[k] > 0 and lrs[k + 1] < lrs[k] / 1.5]


def _mismatch(lrs: list[float], run: Run, reference: Reference, base: float) -> float:
    """Share of the run (after the first 2%) where the learning rate, relative to where it starts, is 2x or
    more off the paper's: the schedule's shape (the level itself is the ``learning-rate`` finding's)."""
    n = len(lrs)
    ref_base = reference.schedule.lr
    off = 0
    counted = 0
    for k in range(n):
        f = (k + 0.5) / run.steps
        if f < 0.02:
            continue
        counted += 1
        ref = reference_lr(reference, f, 1.0) / ref_base
        if lrs[k] <= 0 or abs(math.log(lrs[k] / base / ref)) >= math.log(2):
            off += 1
    return off / max(1, counted)


def is_stepwise(lrs: list[float]) -> bool:
    """A few distinct values (a step schedule), not a smooth curve (cosine, linear, exponential)."""
    return len({round(v, 12) for v in lrs}) <= 12


def describe(lrs: list[float], run: Run) -> str:
    """The user's schedule in words: constant, step drops at which epochs, or a smooth decay."""
    unit = "epoch" if run.per_step > 1 else "iteration"
    if max(lrs) <= min(lrs) * 1.01:
        return f"constant {lrs[0]:g} for all {run.steps:,} {unit}s"
    drops = _drops(lrs)
    if drops and is_stepwise(lrs):
        where = ", ".join(f"{unit} {k:,} (x{f:.2g})" for k, f in drops[:6])
        fractions = ", ".join(f"{k / run.steps:.0%}" for k, _ in drops[:6])
        return f"starts at {lrs[0]:g}, drops at {where}: {fractions} of {run.steps:,} {unit}s"
    return f"decays smoothly from {max(lrs):g} to {lrs[-1]:.3g} over {run.steps:,} {unit}s"


def reference_text(reference: Reference, scale: float) -> str:
    r = reference.schedule
    if r.schedule != "step":
        return f"{r.schedule} schedule from {r.lr * scale:g}"
    marks = ", ".join(f"{m:,} ({m / r.iterations:.0%})" for m in r.milestones)
    return f"{r.lr * scale:g}, x{r.gamma:g} at iterations {marks} of {r.iterations:,}"


def schedule_findings(
    optimizer: Any, scheduler: Any, run: Run | None, reference: Reference, scale: float
) -> list[Finding]:
    """``lr-schedule``, ``training-length`` and ``warmup-missing``."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        return _plateau(scheduler, reference)
    if run is None:
        if scheduler is None:
            return [_constant_without_length(optimizer, reference, scale)]
        return []
    lrs = lr_trajectory(optimizer, scheduler, run.steps)
    out = []
    mismatch = _mismatch(lrs, run, reference, base_lr(optimizer))
    if mismatch > 0.05:
        out.append(_schedule_finding(lrs, run, reference, scale, mismatch, _late_milestones(scheduler, run)))
    out += _length(run, reference)
    out += _warmup(lrs, run, reference, scale)
    return out


def _late_milestones(scheduler: Any, run: Run) -> list[int]:
    """Milestones of a MultiStepLR that the run never reaches (milestones=[150, 250] over 200 epochs)."""
    return sorted(m for m in getattr(scheduler, "milestones", {}) if m >= run.steps)


def _schedule_finding(
    lrs: list[float], run: Run, reference: Reference, scale: float, mismatch: float, late: list[int]
) -> Finding:
    smooth = not is_stepwise(lrs) and lrs[-1] < 0.05 * max(lrs)
    probes = {
        f"{p:.0%}": {
            "yours": round(lrs[min(len(lrs) - 1, int(p * run.steps))], 6),
            "paper": round(reference_lr(reference, p, scale), 6),
        }
        for p in _PROBES
    }
    paper = reference_text(reference, scale)
    message = f"Your learning rate {describe(lrs, run)}; the paper's: {paper}."
    if late:
        unit = "epoch" if run.per_step > 1 else "iteration"
        message += (
            f" Milestone {', '.join(map(str, late))} comes after the run's last {unit} ({run.steps}): it never acts."
        )
    if smooth:
        message += " A smooth decay (cosine) is not the paper's schedule but usually trains as well or better."
    return Finding(
        "lr-schedule",
        "info" if smooth else "warning",
        message + f" They differ by 2x or more over {mismatch:.0%} of training.",
        {
            "yours": describe(lrs, run),
            "paper": paper,
            "mismatch_fraction": round(mismatch, 3),
            "at": probes,
            "epochs": round(run.epochs, 1),
            "iterations": run.iterations,
            **({"milestones_after_the_end": late} if late else {}),
        },
        "torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[round(0.5 * epochs), round(0.75 * epochs)], "
        "gamma=0.1), stepped once per epoch.",
    )


def _constant_without_length(optimizer: Any, reference: Reference, scale: float) -> Finding:
    return Finding(
        "lr-schedule",
        "warning",
        f"No scheduler: your learning rate stays at {base_lr(optimizer):g} for the whole run. The paper's: "
        f"{reference_text(reference, scale)}.",
        {"scheduler": None, "lr": base_lr(optimizer)},
        "torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[round(0.5 * epochs), round(0.75 * epochs)], "
        "gamma=0.1), stepped once per epoch.",
    )


def _plateau(scheduler: Any, reference: Reference) -> list[Finding]:
    factor, patience = scheduler.factor, scheduler.patience
    evidence = {"scheduler": "ReduceLROnPlateau", "factor": factor, "patience": patience}
    if reference.cifar:
        return [
            Finding(
                "lr-schedule",
                "info",
                f"Your learning rate is divided by {1 / factor:.3g} when a metric plateaus (patience {patience}): the "
                "paper's ImageNet rule; on CIFAR it divides by 10 at 50% and 75% of 64k iterations.",
                evidence,
                "MultiStepLR at 50% and 75% of training, as the paper's CIFAR runs.",
            )
        ]
    if abs(factor - reference.recipe.gamma) > 1e-9:
        return [
            Finding(
                "lr-schedule",
                "info",
                f"Your plateau scheduler multiplies the learning rate by {factor:g}; the paper divides it by 10.",
                evidence,
                "ReduceLROnPlateau(optimizer, factor=0.1).",
            )
        ]
    return []


def _length(run: Run, reference: Reference) -> list[Finding]:
    r = reference.schedule
    paper_samples = r.iterations * r.batch_size
    yours = run.iterations * run.batch_size
    if yours >= 0.75 * paper_samples:
        return []
    paper_epochs = paper_samples / run.train_size
    return [
        Finding(
            "training-length",
            "warning",
            f"Your run is {run.epochs:.0f} epochs ({run.iterations:,} iterations at batch {run.batch_size}); the "
            f"paper's is {r.iterations:,} iterations at batch {r.batch_size}, {paper_epochs:.0f} epochs of your "
            f"{run.train_size:,} images ({yours / paper_samples:.0%} of it).",
            {
                "epochs": round(run.epochs, 1),
                "iterations": run.iterations,
                "paper_iterations": r.iterations,
                "paper_epochs": round(paper_epochs, 1),
                "fraction": round(yours / paper_samples, 3),
            },
            f"Train {paper_epochs:.0f} epochs ({r.iterations:,} iterations at batch {r.batch_size}).",
        )
    ]


def _warmup(lrs: list[float], run: Run, reference: Reference, scale: float) -> list[Finding]:
    recipe = reference.recipe
    if recipe.warmup_iters == 0:
        return []
    # The learning rate of each of the first iterations: a per-epoch scheduler holds one value for a whole epoch.
    early = [lrs[min(len(lrs) - 1, i // run.per_step)] for i in range(recipe.warmup_iters)]
    mean = sum(early) / len(early)
    if mean <= 3 * recipe.warmup_lr * scale:
        return []
    return [
        Finding(
            "warmup-missing",
            "warning",
            f"Your learning rate over the first {recipe.warmup_iters} iterations is {mean:g}; for "
            f"{reference.name} the paper warms up at {recipe.warmup_lr * scale:g} until training error is below 80% "
            f"(about {recipe.warmup_iters} iterations), then goes to {recipe.lr * scale:g}: at 0.1 from the start "
            "ResNet-110 can fail to start converging.",
            {
                "lr_first_iterations": mean,
                "warmup_iterations": recipe.warmup_iters,
                "paper_warmup_lr": recipe.warmup_lr * scale,
            },
            f"LambdaLR(optimizer, lambda i: 0.1 if i < {recipe.warmup_iters} else 1.0) stepped per iteration, "
            "chained with the step schedule (reszoo: cifar_recipe(depth=110)).",
        )
    ]
