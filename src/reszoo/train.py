"""Training: the paper's recipes run by one resumable loop that owns its run folder.

Two ways in:

- :func:`train_model` (what ``reszoo train`` runs) trains a registered model by name. It holds
  the resume rules: a folder that already holds a run is refused unless ``resume=True``, and
  resuming reads the folder's ``run.json`` (the same model must be named; the saved model
  overrides and recipe are used, with any given now on top). It seeds torch with
  ``recipe.seed`` *before* building the model, so two runs with the same seed start from
  bit-identical weights.
- :func:`fit` trains a model you built.

Both check every argument, choose the device (``reszoo.devices.resolve_device``) and, under
torchrun, start the process group; then :func:`reszoo.loop.run_fit` runs the loop's steps (set
up, step, report, finish).

The run folder (``out``) has one owner, :func:`fit`, and one writer at a time (its lock); Ctrl-C
or SIGTERM stops a run with a folder at the next step, after a checkpoint.
:mod:`reszoo.runfolder` describes its files: ``recipe.json``, ``run.json`` (model name and
overrides, config, recipe, seed, process count, reszoo/torch/Python versions),
``history.jsonl``, ``checkpoint.pt`` and, at the end, ``model/`` (``reszoo.hub.save_pretrained``)
and ``summary.json``. Every file is written atomically, and nothing is written before every
input has been checked and the dataset read.

Schedules count iterations, as the paper does. Recipes live in :mod:`reszoo.recipes`, the batch
streams in :mod:`reszoo.batches`; their public names are re-exported here, so
``reszoo.train.Recipe``, ``reszoo.train.SyntheticTask`` and the like keep working.

Example:
    >>> from reszoo import train
    >>> recipe = train.cifar_recipe(depth=110)
    >>> [train.learning_rate(recipe, i) for i in (0, 399, 400, 32_000, 48_000)]
    [0.01, 0.01, 0.1, 0.010000000000000002, 0.0010000000000000002]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reszoo.accelerator import accelerator, cudnn_benchmark
from reszoo.batches import SyntheticTask, model_classes
from reszoo.checks import check_bool, check_instance, check_str, type_error
from reszoo.constants import NUM_CLASSES
from reszoo.devices import distributed, resolve_device
from reszoo.errors import InvalidArgumentError, NonFiniteLossError
from reszoo.loop import FitResult, run_fit
from reszoo.recipes import (
    DATASETS,
    DEVICES,
    IMAGENET_ITERS_PER_EPOCH,
    SCHEDULES,
    Recipe,
    cifar_recipe,
    imagenet_recipe,
    is_cifar_depth,
    learning_rate,
    paper_recipe,
    recipe_fields,
)
from reszoo.registry import create_model, default_config
from reszoo.runfolder import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    HISTORY_NAME,
    RUN_NAME,
    check_folder,
    load_checkpoint,
    resume_settings,
    state_digest,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "DATASETS",
    "DEVICES",
    "HISTORY_NAME",
    "IMAGENET_ITERS_PER_EPOCH",
    "NUM_CLASSES",
    "RUN_NAME",
    "SCHEDULES",
    "FitResult",
    "NonFiniteLossError",
    "Recipe",
    "SyntheticTask",
    "cifar_recipe",
    "fit",
    "imagenet_recipe",
    "learning_rate",
    "load_checkpoint",
    "paper_recipe",
    "recipe_fields",
    "state_digest",
    "train_model",
]


def train_model(
    name: str,
    *,
    model_overrides: Mapping[str, Any] | None = None,
    recipe_overrides: Mapping[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> FitResult:
    """Build the registered model ``name`` and train it with the paper's recipe for its data.

    The recipe is :func:`~reszoo.recipes.paper_recipe` for ``recipe_overrides["data"]`` (the
    model's depth decides the CIFAR warm-up) with ``recipe_overrides`` on top. The model is built
    after ``torch.manual_seed(recipe.seed)``, so the same seed gives the same starting weights.

    Args:
        name: a registered model name, e.g. ``"resnet110"``.
        model_overrides: config fields to change, e.g. ``{"num_classes": 100}``.
        recipe_overrides: recipe fields to change, e.g. ``{"data": "synthetic", "iterations": 200}``.
        out: the run folder; None writes nothing. A folder that holds a run (``checkpoint.pt``)
            is refused unless ``resume``.
        resume: continue the run in ``out``: the model named in its ``run.json`` must be
            ``name``; its saved overrides and recipe are used, with the ones given here on top
            (e.g. ``{"iterations": 80_000}`` to train longer).
        progress: show a progress bar (rank 0 only).
        on_step: as for :func:`fit`.

    Returns:
        A :class:`FitResult`.

    Raises:
        InvalidArgumentError: a bad name, override or folder (one holding another run).
        MissingInputError: ``resume`` with no ``run.json`` or no checkpoint in ``out``.
    """
    check_str("name", name)
    model_overrides = dict(_mapping("model_overrides", model_overrides))
    recipe_overrides = dict(_mapping("recipe_overrides", recipe_overrides))
    if check_bool("resume", resume):
        if out is None:
            raise InvalidArgumentError("resume=True needs out (the run folder holding checkpoint.pt).")
        recipe, model_overrides = resume_settings(out, name, model_overrides, recipe_overrides)
    else:
        depth = default_config(name).replace(**model_overrides).depth  # checks the overrides; builds nothing
        recipe = paper_recipe(depth=depth if is_cifar_depth(depth) else None, **recipe_overrides)
    torch.manual_seed(recipe.seed)  # the starting weights follow the seed
    model = create_model(name, **model_overrides)
    run_info = {"model": name, "model_overrides": sorted(model_overrides)}
    return _launch(model, recipe, out=out, resume=resume, progress=progress, on_step=on_step, run_info=run_info)


def _mapping(name: str, value: Any) -> Mapping[str, Any]:
    return {} if value is None else check_instance(name, value, Mapping, what="None or a dict")


def fit(
    model: nn.Module,
    recipe: Recipe,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> FitResult:
    """Train ``model`` with ``recipe``; resumable, distributed when launched by torchrun.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised here (NCCL on GPU,
    Gloo on CPU), the model is wrapped in ``DistributedDataParallel``, each process takes
    ``batch_size / world_size`` images per step (so the global batch is the recipe's), and only
    rank 0 logs and writes files.

    Args:
        model: the model (a reszoo ResNet when ``out`` is given: the final model is saved with
            ``save_pretrained``; any classifier otherwise).
        recipe: how to train.
        out: run folder for the history, checkpoints and the final model; None writes nothing.
            A folder that already holds a run (``checkpoint.pt``) is refused unless ``resume``.
        resume: continue from ``out/checkpoint.pt`` (exactly: same data, RNG and optimizer state).
        progress: show a progress bar (rank 0 only).
        on_step: called with the number of iterations done after every step (for callers that
            want to stop a run or watch it).

    Returns:
        A :class:`FitResult`.

    Raises:
        InvalidArgumentError: a bad argument, or a recipe that does not fit the model, the
            process count or the run folder (``ArgumentTypeError`` for a wrong type).
        MissingInputError: ``resume=True`` and ``out`` holds no checkpoint.
        FileNotFoundError: the dataset is missing (nothing has been written).
        NonFiniteLossError: the loss became NaN or infinite (checked at every log, evaluation
            and checkpoint step; the last checkpoint written is from before).
        RunFolderError: another process is writing ``out`` (it holds the folder's lock, which
            the operating system releases when that process ends).
        FileWriteError: a file of ``out`` could not be written (disk full, no permission); the
            message names it, and the previous checkpoint is unchanged.
        TrainingInterrupted: SIGINT (Ctrl-C) or SIGTERM arrived while training into ``out``: the
            run stopped after the step under way and saved a checkpoint to resume from.
    """
    return _launch(model, recipe, out=out, resume=resume, progress=progress, on_step=on_step, run_info=None)


# -- checks, device and process group ------------------------------------------------------


def _launch(
    model: Any, recipe: Any, *, out: Any, resume: Any, progress: Any, on_step: Any, run_info: dict[str, Any] | None
) -> FitResult:
    _check_fit_args(model, recipe, out, resume, progress, on_step)
    rank, world, _ = distributed()
    if recipe.batch_size % world:
        raise InvalidArgumentError(
            f"batch_size={recipe.batch_size} must divide evenly over {world} processes "
            "(batch_size is the global batch, as in the paper)."
        )
    device = _device(recipe)
    dist = torch.distributed
    own_group = False
    if world > 1 and not dist.is_initialized():
        # DistributedDataParallel imports torch._dynamo, which imports torch.distributed.nn.functional,
        # whose functions default to ``group=group.WORLD``. Imported after init_process_group, those
        # defaults hold the default group for good: destroy_process_group cannot free it, its Gloo
        # worker threads outlive the interpreter, and one releasing a finished collective's tensors
        # during interpreter shutdown aborts the process ("terminate called without an active
        # exception", SIGABRT; 7 aborts in 75 runs here). Imported first, the defaults are None and
        # destroy_process_group joins those threads (0 aborts in 80 runs).
        from torch import _dynamo  # noqa: F401  (`import torch._dynamo` here would make torch local)

        # device_id binds NCCL's communicator to this rank's GPU now (not at the first collective),
        # so barrier() knows the device and cannot pick GPU 0 for every rank.
        cuda = device.type == "cuda"
        dist.init_process_group(backend="nccl" if cuda else "gloo", device_id=device if cuda else None)
        own_group = True
    try:
        run_info = run_info or {"model": None, "model_overrides": []}
        # Every step has the same shapes (drop_last), so cuDNN's autotuner pays off on CUDA, as in
        # timm's train.py; the flag is put back afterwards.
        with cudnn_benchmark(device):
            result = run_fit(
                model,
                recipe,
                out=out,
                resume=resume,
                progress=progress,
                on_step=on_step,
                rank=rank,
                world=world,
                device=device,
                run_info=run_info,
            )
        if world > 1:
            # Leave together: a rank that tears down Gloo while rank 0 is still writing the final
            # files can abort at exit ("terminate called without an active exception").
            dist.barrier()
        return result
    finally:
        if own_group:
            dist.destroy_process_group()


def _check_fit_args(model: Any, recipe: Any, out: Any, resume: Any, progress: Any, on_step: Any) -> None:
    # Everything that needs no device, checked before a process group or any file exists.
    check_instance("model", model, nn.Module, what="a torch.nn.Module")
    check_instance("recipe", recipe, Recipe, what="a reszoo.train.Recipe")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise type_error("out", out, "None or a folder path")
    check_bool("resume", resume)
    check_bool("progress", progress)
    if on_step is not None and not callable(on_step):
        raise type_error("on_step", on_step, "None or a callable taking the iteration")
    if resume and out is None:
        raise InvalidArgumentError("resume=True needs out (the run folder holding checkpoint.pt).")
    if recipe.data != "synthetic" and not recipe.data_root:
        raise InvalidArgumentError(
            f"data={recipe.data!r} needs data_root (the dataset folder); received data_root=None."
        )
    expected = NUM_CLASSES.get(recipe.data)
    if expected is not None and model_classes(model) != expected:
        raise InvalidArgumentError(
            f"{recipe.data} has {expected} classes but the model predicts {model_classes(model)}; "
            f"build it with num_classes={expected}."
        )
    if out is not None:
        check_folder(Path(out), model, resume=resume)


def _device(recipe: Recipe) -> torch.device:
    # Under a launch, resolve_device maps a bare "cuda" to this rank's GPU (LOCAL_RANK, SLURM_LOCALID
    # or the rank, modulo the GPUs present), so no two ranks share one.
    device = resolve_device(recipe.device)
    if device.type == "cuda":
        cuda = accelerator(device)
        if device.index is None:
            device = torch.device("cuda", cuda.current_index())
        cuda.set_current(device)  # NCCL and the default stream follow the current device
    return device
