"""Training: the paper's recipes run by one resumable loop that owns its run folder.

Two ways in:

- :func:`train_model` (what ``reszoo train`` runs) trains a registered model by name. It holds
  the resume rules: a folder that already holds a run is refused unless ``resume=True``, and
  resuming reads the folder's ``run.json`` (the same model must be named; the saved model
  overrides and recipe are used, with any given now on top). It seeds torch with
  ``recipe.seed`` *before* building the model, so two runs with the same seed start from
  bit-identical weights.
- :func:`fit` trains a model you built, on a built-in dataset, an image folder
  (``recipe.data="folder"``) or your own ``Dataset``/``DataLoader`` (``train_data=``).

``train_model(name, pretrained=...)`` is fine-tuning in one call: the weights are loaded, the
classifier replaced for the folder's classes, and :func:`~reszoo.train.recipes.finetune_recipe` used.

Both check every argument, choose the device (``reszoo.utils.devices.resolve_device``) and, under
torchrun, start the process group; then :func:`reszoo.train.loop.run_fit` runs the loop's steps (set
up, step, report, finish).

The run folder (``out``) has one owner, :func:`fit`, and one writer at a time (its lock); Ctrl-C
or SIGTERM stops a run with a folder at the next step, after a checkpoint.
:mod:`reszoo.train.runfolder` describes its files: ``recipe.json``, ``run.json`` (model name and
overrides, config, recipe, seed, process count, reszoo/torch/Python versions),
``history.jsonl``, ``checkpoint.pt`` and, at the end, ``model/`` (``reszoo.weights.hub.save_pretrained``)
and ``summary.json``. Every file is written atomically, and nothing is written before every
input has been checked and the dataset read.

Schedules count iterations, as the paper does. Recipes live in :mod:`reszoo.train.recipes`, the batch
streams in :mod:`reszoo.train.batches`; their public names are re-exported here, so
``reszoo.train.recipes.Recipe``, ``reszoo.train.batches.SyntheticTask`` and the like keep working.

Example:
    >>> from reszoo import train
    >>> recipe = train.cifar_recipe(depth=110)
    >>> [train.learning_rate(recipe, i) for i in (0, 399, 400, 32_000, 48_000)]
    [0.01, 0.01, 0.1, 0.010000000000000002, 0.0010000000000000002]
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reszoo.data.constants import NUM_CLASSES
from reszoo.data.imagefolder import folder_classes
from reszoo.errors import InvalidArgumentError
from reszoo.models._factory import create_model
from reszoo.models.registry import default_config
from reszoo.models.resnet import ResNetConfig
from reszoo.train.batches import model_classes
from reszoo.train.loop import FitResult, run_fit
from reszoo.train.recipes import (
    Recipe,
    finetune_recipe,
    is_cifar_depth,
    paper_recipe,
)
from reszoo.train.runfolder import (
    check_apart,
    check_folder,
    read_run,
    resume_settings,
)
from reszoo.utils.accelerator import cudnn_benchmark
from reszoo.utils.checks import check_bool, check_instance, check_str, type_error
from reszoo.utils.devices import distributed, pin_device

__all__ = [
    "fit",
    "train_model",
]


def train_model(
    name: str,
    *,
    pretrained: str | os.PathLike[str] | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    recipe_overrides: Mapping[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> FitResult:
    """Build the registered model ``name`` and train it: the paper's recipe, or a fine-tune.

    Without ``pretrained`` the recipe is :func:`~reszoo.train.recipes.paper_recipe` for
    ``recipe_overrides["data"]`` (the model's paper's CIFAR recipe for the later families, the
    model's depth deciding the 2015 recipe's warm-up); with it,
    :func:`~reszoo.train.recipes.finetune_recipe`; ``recipe_overrides`` go on top. The model is built
    after ``torch.manual_seed(recipe.seed)``, so the same seed gives the same starting weights.
    With ``data="folder"`` the folder's class count sets ``num_classes`` and its class names
    travel with the saved model (``model/config.json``).

    Args:
        name: a registered model name, e.g. ``"resnet110"``.
        pretrained: weights to fine-tune from, anything ``create_model(name, pretrained=...)``
            takes: a weight name for ``name``, ``"hf-hub:owner/repo"``, or a folder written by
            ``save_pretrained`` (e.g. a run's ``model/``). The classifier is replaced when the
            class count differs. On resume it is read from the run folder (nothing is loaded).
        model_overrides: config fields to change, e.g. ``{"num_classes": 100}``.
        recipe_overrides: recipe fields to change, e.g. ``{"data": "folder", "data_root": "photos/"}``.
        out: the run folder; None writes nothing. A folder that holds a run (``checkpoint.pt``)
            is refused unless ``resume``, and so is one that overlaps the data folder (``data_root``
            inside it, or it inside ``data_root``: an image folder would no longer train).
        resume: continue the run in ``out``: the model named in its ``run.json`` must be
            ``name``; its saved overrides and recipe are used, with the ones given here on top
            (e.g. ``{"iterations": 80_000}`` to train longer).
        progress: show a progress bar (rank 0 only).
        on_step: as for :func:`fit`.

    Returns:
        A :class:`FitResult`.

    Raises:
        InvalidArgumentError: a bad name, override, folder (one holding another run, or one
            overlapping the data folder) or image folder (one class, classes that differ from
            ``num_classes``).
        MissingInputError: ``resume`` with no ``run.json`` or no checkpoint in ``out``; a missing
            image folder.
    """
    check_str("name", name)
    model_overrides = dict(_mapping("model_overrides", model_overrides))
    recipe_overrides = dict(_mapping("recipe_overrides", recipe_overrides))
    if pretrained is not None and not isinstance(pretrained, (str, os.PathLike)):
        raise type_error("pretrained", pretrained, "None, a weight name, 'hf-hub:owner/repo' or a saved folder")
    pretrained = None if pretrained is None else os.fspath(pretrained)
    if check_bool("resume", resume):
        if out is None:
            raise InvalidArgumentError("resume=True needs out (the run folder holding checkpoint.pt).")
        recipe, model_overrides = resume_settings(out, name, model_overrides, recipe_overrides)
        pretrained = _resumed_pretrained(out, pretrained)
        torch.manual_seed(recipe.seed)
        model = create_model(name, **model_overrides)  # the checkpoint holds every weight: nothing to load
    else:
        recipe = _start_recipe(name, pretrained, model_overrides, recipe_overrides)
        _check_frozen_start(recipe, pretrained)
        _check_apart(out, recipe)  # before the folder is read and the weights are loaded
        model_overrides = _with_folder_classes(recipe, model_overrides)
        torch.manual_seed(recipe.seed)  # the starting weights follow the seed
        model = _build(name, pretrained, model_overrides)
        model_overrides = {*model_overrides, *_changed_fields(name, model.config)}  # given, or from the weights
    run_info = {"model": name, "model_overrides": sorted(model_overrides), "pretrained": pretrained}
    return _launch(model, recipe, out=out, resume=resume, progress=progress, on_step=on_step, run_info=run_info)


def _start_recipe(name: str, pretrained: str | None, model_overrides: dict, recipe_overrides: dict) -> Recipe:
    if pretrained is not None:
        return finetune_recipe(**recipe_overrides)
    depth = default_config(name).replace(**model_overrides).depth  # checks the overrides; builds nothing
    return paper_recipe(depth=depth if is_cifar_depth(depth) else None, model=name, **recipe_overrides)


def _check_frozen_start(recipe: Recipe, pretrained: str | None) -> None:
    """A frozen backbone built here without weights is a random one: only the classifier would learn."""
    if recipe.freeze_backbone and pretrained is None:
        raise InvalidArgumentError(
            "freeze_backbone=True (--freeze-backbone) trains the classifier only and keeps the backbone as it is, "
            "but without pretrained= (--pretrained WEIGHTS) the backbone is freshly initialised: the classifier "
            "would learn on random features. Give the weights to fine-tune from, or leave freeze_backbone out."
        )


def _with_folder_classes(recipe: Recipe, model_overrides: dict[str, Any]) -> dict[str, Any]:
    """``num_classes`` from the image folder (``data="folder"``); a different one given is refused."""
    if recipe.data != "folder":
        return model_overrides
    if not recipe.data_root:
        raise InvalidArgumentError("data='folder' needs data_root (--root: the image folder); received None.")
    classes = folder_classes(recipe.data_root)
    given = model_overrides.get("num_classes")
    if given is not None and given != len(classes):
        raise InvalidArgumentError(
            f"num_classes={given} differs from the {len(classes)} class folders of {recipe.data_root} "
            f"({', '.join(classes)}); leave num_classes out and the folder sets it."
        )
    return {**model_overrides, "num_classes": len(classes)}


def _build(name: str, pretrained: str | None, model_overrides: dict[str, Any]) -> nn.Module:
    if pretrained is None:
        return create_model(name, **model_overrides)
    with warnings.catch_warnings():
        # A new classifier for the folder's classes is the point of a fine-tune, not news.
        warnings.filterwarnings("ignore", message=".*the classifier is freshly initialised")
        return create_model(name, pretrained=pretrained, **model_overrides)


def _changed_fields(name: str, config: ResNetConfig) -> list[str]:
    """The config fields that differ from ``name``'s defaults (e.g. a weight entry's): a resume rebuilds from them."""
    mine, default = config.to_dict(), default_config(name).to_dict()
    return [key for key in mine if mine[key] != default.get(key)]


def _resumed_pretrained(out: Any, pretrained: str | None) -> str | None:
    saved = read_run(out).get("pretrained")
    if pretrained is not None and pretrained != saved:
        raise InvalidArgumentError(
            f"{os.fspath(out)} holds a fine-tune of {saved!r}; received pretrained={pretrained!r}. A resume "
            "continues from the checkpoint: leave --pretrained out."
        )
    return saved


def _mapping(name: str, value: Any) -> Mapping[str, Any]:
    return {} if value is None else check_instance(name, value, Mapping, what="None or a dict")


def fit(
    model: nn.Module,
    recipe: Recipe,
    *,
    train_data: Any = None,
    eval_data: Any = None,
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

    Your own data: give ``train_data`` (and ``eval_data``), each a map-style ``Dataset`` of
    ``(image tensor, label)`` or a ``DataLoader`` of ``(images, labels)`` batches; the recipe's
    ``data`` becomes ``"custom"`` (so ``recipe.json`` says so). A ``Dataset`` is loaded by fit:
    shuffled by ``(seed, epoch)``, sharded by a ``DistributedSampler`` under torchrun, each
    sample's random augmentation drawn from ``(seed, epoch, index)``, so a resume is exact (with
    any ``num_workers``) and skips to its place in the epoch without loading what came before. A
    ``DataLoader`` is used as given: each epoch fit calls its sampler's ``set_epoch`` and reseeds
    its ``generator`` (if any) from ``(seed, epoch)``, and a resume replays the epoch up to its
    place. That resume is exact when the order is seeded (``shuffle=False``, a
    ``generator=torch.Generator()``, or a ``DistributedSampler``) and random augmentation runs in
    workers (``num_workers > 0``: their seeds come from the generator) or not at all; otherwise
    it continues with other random draws. Refused: a DataLoader over an ``IterableDataset`` (no
    place to resume to) and, under torchrun, one without a ``DistributedSampler``.

    Args:
        model: the model (a reszoo ResNet when ``out`` is given: the final model is saved with
            ``save_pretrained``, or with ``data="folder"``; any classifier otherwise).
        recipe: how to train.
        train_data: your training data (a ``Dataset`` or ``DataLoader``; see above), or None for
            the recipe's ``data``.
        eval_data: your evaluation data, or None (no evaluation: ``test_error`` stays None).
        out: run folder for the history, checkpoints and the final model; None writes nothing.
            A folder that already holds a run (``checkpoint.pt``) is refused unless ``resume``, and
            so is one that overlaps ``recipe.data_root`` (either inside the other).
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
        OutOfMemoryError: a training step (``batch_size``) or an evaluation (``eval_batch_size``)
            did not fit in the device's memory; the message names the size and a smaller one.
        NonFiniteLossError: the loss became NaN or infinite (checked at every log, evaluation
            and checkpoint step; the last checkpoint written is from before).
        RunFolderError: another process is writing ``out`` (it holds the folder's lock, which
            the operating system releases when that process ends).
        FileWriteError: a file of ``out`` could not be written (disk full, no permission); the
            message names it, and the previous checkpoint is unchanged.
        TrainingInterrupted: SIGINT (Ctrl-C) or SIGTERM arrived while training into ``out``: the
            run stopped after the step under way and saved a checkpoint to resume from.
    """
    recipe = _with_data(recipe, train_data, eval_data)
    _warn_frozen_without_record(model, recipe, resume)
    data = (train_data, eval_data)
    return _launch(model, recipe, out=out, resume=resume, progress=progress, on_step=on_step, run_info=None, data=data)


def _warn_frozen_without_record(model: Any, recipe: Recipe, resume: Any) -> None:
    # fit cannot know where a model's weights came from: torchvision's way is load_state_dict, which
    # leaves no record, so a frozen backbone without one is said aloud, not refused (train_model,
    # which builds the model itself, refuses it).
    if recipe.freeze_backbone and resume is False and getattr(model, "pretrained_weights", None) is None:
        warnings.warn(
            f"freeze_backbone=True on a {type(model).__name__} that carries no pretrained weights record "
            "(model.pretrained_weights): if its backbone is freshly initialised, only the classifier learns, on "
            "random features. Load weights first (create_model(name, pretrained=...)); if you loaded them "
            "yourself, this warning can be ignored.",
            stacklevel=3,
        )


def _with_data(recipe: Any, train_data: Any, eval_data: Any) -> Any:
    """``data="custom"`` when ``train_data`` is given; the data arguments checked."""
    from torch.utils.data import DataLoader, Dataset

    what = "None, a torch Dataset (len() and indexing) or a DataLoader"
    for name, value in (("train_data", train_data), ("eval_data", eval_data)):
        map_style = isinstance(value, Dataset) and hasattr(value, "__len__")
        if value is not None and not (isinstance(value, DataLoader) or map_style):
            raise type_error(name, value, what)
    check_instance("recipe", recipe, Recipe, what="a reszoo.train.recipes.Recipe")
    if train_data is None:
        if eval_data is not None:
            raise InvalidArgumentError("eval_data needs train_data too (your own data: both, or train_data alone).")
        return recipe
    return recipe.replace(data="custom", data_root=None) if recipe.data != "custom" else recipe


# -- checks, device and process group ------------------------------------------------------


def _launch(
    model: Any,
    recipe: Any,
    *,
    out: Any,
    resume: Any,
    progress: Any,
    on_step: Any,
    run_info: dict[str, Any] | None,
    data: tuple[Any, Any] = (None, None),
) -> FitResult:
    _check_fit_args(model, recipe, out, resume, progress, on_step)
    if recipe.data == "custom" and data[0] is None:
        raise InvalidArgumentError(
            "data='custom' needs train_data: fit(model, recipe, train_data=dataset_or_loader) (Python only)."
        )
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
        run_info = run_info or {"model": None, "model_overrides": [], "pretrained": None}
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
                train_data=data[0],
                eval_data=data[1],
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
    check_instance("recipe", recipe, Recipe, what="a reszoo.train.recipes.Recipe")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise type_error("out", out, "None or a folder path")
    check_bool("resume", resume)
    check_bool("progress", progress)
    if on_step is not None and not callable(on_step):
        raise type_error("on_step", on_step, "None or a callable taking the iteration")
    if resume and out is None:
        raise InvalidArgumentError("resume=True needs out (the run folder holding checkpoint.pt).")
    if recipe.data not in ("synthetic", "custom") and not recipe.data_root:
        raise InvalidArgumentError(
            f"data={recipe.data!r} needs data_root (the dataset folder); received data_root=None."
        )
    if recipe.data == "folder" and not isinstance(getattr(model, "config", None), ResNetConfig):
        raise InvalidArgumentError(
            f"data='folder' pre-processes images for the model's input (config.image_size, config.stem), which "
            f"needs a reszoo ResNet; received a {type(model).__name__}. Give your own Dataset as train_data."
        )
    expected = NUM_CLASSES.get(recipe.data)
    if expected is not None and model_classes(model) != expected:
        raise InvalidArgumentError(
            f"{recipe.data} has {expected} classes but the model predicts {model_classes(model)}; "
            f"build it with num_classes={expected}."
        )
    if out is not None:
        _check_apart(out, recipe)
        check_folder(Path(out), model, resume=resume)


def _check_apart(out: Any, recipe: Recipe) -> None:
    # The run folder and the data it reads: apart (runfolder.check_apart), checked before weights load.
    if isinstance(out, (str, os.PathLike)) and recipe.data not in ("synthetic", "custom") and recipe.data_root:
        check_apart(out, recipe.data_root)


def _device(recipe: Recipe) -> torch.device:
    # Under a launch, resolve_device maps a bare "cuda" to this rank's GPU (LOCAL_RANK, SLURM_LOCALID
    # or the rank, modulo the GPUs present), so no two ranks share one; NCCL and the default stream
    # follow the current device.
    return pin_device(recipe.device, make_current=True)
