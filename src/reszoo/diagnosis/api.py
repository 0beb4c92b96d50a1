"""``diagnose``: a user's model, recipe and pre-processing checked against a reszoo reference."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reszoo.diagnosis.architecture import (
    head_findings,
    param_findings,
    shortcut_findings,
    stage_findings,
    stem_findings,
    stride_findings,
)
from reszoo.diagnosis.findings import Diagnosis, Finding
from reszoo.diagnosis.initialisation import init_findings, is_trained
from reszoo.diagnosis.layers import activation_findings, dropout_findings, norm_findings, order_findings
from reszoo.diagnosis.preprocessing import data_findings
from reszoo.diagnosis.recipe import batch_findings, recipe_findings, run_length
from reszoo.diagnosis.reference import Reference, resolve_reference
from reszoo.diagnosis.structure import Structure, as_dict, read_structure
from reszoo.diagnosis.trace import CAPTURE, Trace, one_thread, trace_model, unwrap
from reszoo.errors import InvalidArgumentError
from reszoo.utils.checks import check_choice, check_instance, check_int, type_error, value_error

SCHEDULER_STEPS = ("epoch", "iteration")
ARCHITECTURE_CHECKS = (
    stem_findings,
    stage_findings,
    shortcut_findings,
    stride_findings,
    order_findings,
    activation_findings,
    norm_findings,
    dropout_findings,
    head_findings,
)


@dataclass(frozen=True)
class Given:
    """What the caller gave besides the model and the reference, checked once."""

    optimizer: Any = None
    scheduler: Any = None
    scheduler_steps: str = "epoch"
    epochs: int | None = None
    iterations: int | None = None
    batch_size: int | None = None
    train_size: int | None = None
    train_transform: Any = None
    eval_transform: Any = None
    input_size: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.optimizer is not None:
            check_instance("optimizer", self.optimizer, torch.optim.Optimizer, what="a torch.optim.Optimizer or None")
        if self.scheduler is not None and not callable(getattr(self.scheduler, "step", None)):
            raise type_error(
                "scheduler",
                self.scheduler,
                "a learning-rate scheduler (torch.optim.lr_scheduler or timm.scheduler) or None",
            )
        check_choice("scheduler_steps", self.scheduler_steps, SCHEDULER_STEPS)
        for name in ("epochs", "iterations", "batch_size", "train_size"):
            check_int(name, getattr(self, name), minimum=1, optional=True)
        if self.epochs is not None and self.iterations is not None:
            raise InvalidArgumentError(
                f"Give epochs or iterations, not both; received epochs={self.epochs}, iterations={self.iterations}."
            )
        object.__setattr__(self, "input_size", _check_input_size(self.input_size))

    def not_given(self) -> list[str]:
        """Notes on what was not checked for want of an argument."""
        notes = []
        if self.optimizer is None and self.scheduler is None:
            notes.append("no optimizer given: the recipe (optimizer, learning rate, schedule) is not checked")
        elif self.optimizer is not None and not isinstance(self.optimizer, torch.optim.SGD):
            notes.append("not SGD: learning rate, momentum, decay and schedule are judged for SGD only")
        if self.train_transform is None:
            notes.append("no train_transform given: augmentation is not checked")
        if self.eval_transform is None:
            notes.append("no eval_transform given: evaluation pre-processing is not checked")
        return notes


def _check_input_size(input_size: Any) -> tuple[int, ...] | None:
    if input_size is None:
        return None
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        return (3, check_int("input_size", input_size, minimum=1), input_size)
    if (
        isinstance(input_size, (tuple, list))
        and len(input_size) in (2, 3, 4)
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_size)
    ):
        return tuple(input_size)[-3:] if len(input_size) > 2 else (3, *input_size)
    raise value_error("input_size", input_size, "an int, (H, W), (C, H, W) or (N, C, H, W) of positive ints, or None")


def _trace_user(model: nn.Module, size: tuple[int, ...], fallback: tuple[int, ...] | None) -> Trace:
    try:
        return trace_model(model, (1, *size))
    except Exception as err:
        if fallback is None or fallback == size:
            raise InvalidArgumentError(
                f"The model fails on a 1x{'x'.join(map(str, size))} batch, the reference's input: "
                f"{type(err).__name__}: {err}. Pass input_size= if it takes another size."
            ) from err
        trace = trace_model(model, (1, *fallback))
        trace.notes.append(
            f"the model fails at the reference's size {size} ({type(err).__name__}); traced at {fallback}"
        )
        return trace


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _explained(findings: list[Finding]) -> int:
    """Parameters other findings account for: projection or missing shortcuts, convolution biases."""
    return sum(f.evidence.get("parameters_difference", 0) for f in findings)


def architecture(user: Structure, ref: Structure, reference: Reference) -> list[Finding]:
    """Every architecture finding, the parameter count last (it accounts for the others)."""
    found = [f for check in ARCHITECTURE_CHECKS for f in check(user, ref, reference)]
    return found + param_findings(user, ref, reference, _explained(found))


def _weights_constants(model: nn.Module, reference: Reference) -> tuple | None:
    """The normalisation the model's pretrained weights expect, where known."""
    record = getattr(model, "pretrained_weights", None)
    if record is not None and hasattr(record, "mean"):
        return tuple(record.mean), tuple(record.std)
    if not reference.cifar and is_trained(model):
        return reference.mean_std  # every ImageNet ResNet weight people load was trained with these
    return None


def diagnose(
    model: nn.Module,
    reference: str | nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scheduler_steps: str = "epoch",
    epochs: int | None = None,
    iterations: int | None = None,
    batch_size: int | None = None,
    train_size: int | None = None,
    train_transform: Any = None,
    eval_transform: Any = None,
    input_size: int | tuple[int, ...] | None = None,
) -> Diagnosis:
    """Check a model, its recipe and its pre-processing against a reszoo reference, and name the differences.

    The model runs once at the reference's input size (in eval mode, without gradients; nothing
    is changed); what runs is recorded and read as stem, blocks and head, and set beside the
    reference's. Everything but the model and the reference is optional: findings cover what was given.

    Args:
        model: any ``nn.Module`` taking an image batch.
        reference: a registered name (``"resnet56"``, ``"resnet50"``, ...) or a reszoo model.
        optimizer: the training optimizer (its groups, lr, momentum, weight decay are read).
        scheduler: its learning-rate scheduler (torch's or timm's); a deep copy is stepped through the run.
        scheduler_steps: ``"epoch"`` or ``"iteration"``: how often your loop calls ``scheduler.step()``.
        epochs: training length in epochs (or give ``iterations``).
        iterations: training length in iterations.
        batch_size: the training batch (default: the paper's, 128 or 256).
        train_size: training images (default: the dataset's, 50,000 for CIFAR).
        train_transform: the training pre-processing (torchvision v1/v2, reszoo, or any callable).
        eval_transform: the evaluation pre-processing.
        input_size: the size your pipeline feeds the model, if not the reference's.

    Returns:
        A :class:`~reszoo.diagnose.Diagnosis`; ``print(d)`` shows the report, ``d.to_dict()`` the data.

    Example:
        >>> import reszoo
        >>> d = reszoo.diagnose(reszoo.create_model("resnet20"), "resnet20")
        >>> d.ok, [f.id for f in d.warnings]
        (True, [])
    """
    check_instance("model", model, nn.Module, what="a torch.nn.Module")
    given = Given(
        optimizer,
        scheduler,
        scheduler_steps,
        epochs,
        iterations,
        batch_size,
        train_size,
        train_transform,
        eval_transform,
        input_size,
    )
    with one_thread():
        return _run(unwrap(model), reference, given)


def _read(model: nn.Module, reference: Any, given: Given) -> tuple[Trace, Structure, Reference, Structure]:
    """Trace the model at the reference's input size, then the reference the same way; read both."""
    config = _config(reference) if isinstance(reference, str) else resolve_reference(reference).config
    trace = _trace_user(model, config.input_size, given.input_size)
    user = read_structure(trace, params=_params(model))
    context = resolve_reference(reference, num_classes=user.num_classes)
    ref_trace = trace_model(context.model, (1, *config.input_size), capture=trace.method == CAPTURE)
    return trace, user, context, read_structure(ref_trace, params=_params(context.model))


def _recipe(model: nn.Module, context: Reference, given: Given, notes: list[str]) -> list[Finding]:
    batch = given.batch_size or context.recipe.batch_size
    run = None
    if given.optimizer is not None or given.scheduler is not None:
        run = run_length(
            context,
            epochs=given.epochs,
            iterations=given.iterations,
            batch_size=batch,
            train_size=given.train_size,
            scheduler_steps=given.scheduler_steps,
            notes=notes,
        )
    found = recipe_findings(model, context, optimizer=given.optimizer, scheduler=given.scheduler, run=run, batch=batch)
    return found + (batch_findings(given.batch_size, context) if given.batch_size is not None else [])


def _run(model: nn.Module, reference: Any, given: Given) -> Diagnosis:
    start = time.perf_counter()
    trace, user, context, ref = _read(model, reference, given)
    notes = trace.notes + user.notes
    found = architecture(user, ref, context) + init_findings(model, user, context, notes)
    found += _recipe(model, context, given, notes)
    found += data_findings(
        context,
        train_transform=given.train_transform,
        eval_transform=given.eval_transform,
        input_size=given.input_size,
        weights=_weights_constants(model, context),
        notes=notes,
    )
    shape = {"input_shape": list(trace.input_shape), "nodes": len(trace.ops), "modules": trace.modules}
    return Diagnosis(
        model=type(model).__name__,
        reference=context.name,
        findings=found,
        notes=notes + given.not_given(),
        trace={"method": trace.method, **shape, "seconds": round(trace.seconds, 4), "dataset": context.dataset},
        structure={"yours": as_dict(user), "reference": as_dict(ref)},
        seconds=time.perf_counter() - start,
    )


def _config(name: str) -> Any:
    from reszoo.models.registry import default_config, get_model_fn

    get_model_fn(name)  # an unknown name: the error lists the closest names
    return default_config(name)
