"""A name becomes a model to evaluate or predict with: a weight entry, a Hub repo, a saved folder or a run.

:func:`load_for_evaluation` accepts everything :func:`reszoo.load_pretrained` accepts (through the
one resolver, :func:`reszoo.weights.pretrained.resolve`) and the run folders of ``reszoo train``
(:func:`load_run`: the final ``model/``, or the latest ``checkpoint.pt`` while the run is
unfinished, read with ``weights_only=True``). The model comes back in eval mode with a weights
record (pre-processing and class names, :mod:`reszoo.infer.inputs`).

Example::

    model = load_for_evaluation("runs/shapes")        # a run folder of reszoo train
    model = load_for_evaluation("resnet56-cifar10")   # a weight entry
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reszoo.data.constants import DATASETS, IMAGENET_MEAN, IMAGENET_STD
from reszoo.data.transforms import model_resize_size
from reszoo.errors import InvalidArgumentError, MissingInputError, RunFolderError, WeightsIntegrityError
from reszoo.models.registry import default_config
from reszoo.models.resnet import ResNet, ResNetConfig
from reszoo.train.runfolder import CHECKPOINT_NAME, MODEL_DIR, RUN_NAME, SUMMARY_NAME, load_checkpoint, read_run
from reszoo.utils.checks import check_path, type_error
from reszoo.utils.devices import resolve_device
from reszoo.weights.convert import check_values, fit_state_dict
from reszoo.weights.hub import CONFIG_NAME
from reszoo.weights.pretrained import load_pretrained, resolve
from reszoo.weights.records import WeightsInfo
from reszoo.weights.untrusted import check_limits

__all__ = ["load_for_evaluation", "load_run"]

_KINDS = (
    "a weight name (reszoo.list_pretrained()), 'hf-hub:owner/repo[@revision]', a folder written by "
    "save_pretrained (config.json) or a run folder of reszoo train (run.json)"
)
# The config fields that shape the weights: a run folder's model/ or checkpoint must agree with run.json on them.
_SHAPE_FIELDS = ("stem", "stem_width", "block", "depths", "widths", "shortcut", "in_chans", "num_classes")


def load_for_evaluation(name: str | os.PathLike[str], *, device: str | torch.device | None = None) -> nn.Module:
    """The model ``name`` names, in eval mode, with a weights record (pre-processing and class names).

    Args:
        name: a weight name or alias, ``"hf-hub:owner/repo[@revision]"`` or a folder written by
            ``save_pretrained`` (all as :func:`reszoo.load_pretrained` reads them), or a run folder
            of ``reszoo train`` (:func:`load_run`).
        device: where the model goes; ``None`` keeps the CPU.

    Raises:
        InvalidArgumentError: a name that names nothing (the closest weight names and the kinds
            accepted in one line).
        MissingInputError: a folder that does not exist or holds neither ``run.json`` nor ``config.json``.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise type_error("name", name, _KINDS)
    folder = Path(os.path.expanduser(os.fspath(name)))
    if folder.is_dir() and (folder / RUN_NAME).is_file():
        return load_run(folder, device=device)
    if folder.is_dir() and not (folder / CONFIG_NAME).is_file():
        raise MissingInputError(
            f"{os.fspath(name)!r} is a folder but holds neither {RUN_NAME} nor {CONFIG_NAME}; WEIGHTS is {_KINDS}."
        )
    try:
        resolve(name)  # what the name means, before anything is read: the one resolver's errors, with our kinds
    except (InvalidArgumentError, MissingInputError) as err:
        raise type(err)(f"{err} A run folder of reszoo train (with {RUN_NAME}) is accepted too.") from None
    return load_pretrained(name, device=device)


def load_run(folder: str | os.PathLike[str], *, device: str | torch.device | None = None) -> ResNet:
    """The model of a ``reszoo train`` run folder: its final ``model/``, or its latest checkpoint while unfinished.

    A run is finished when ``model/`` holds the weights of the iterations ``run.json`` asks for
    (``summary.json``); a run still going, stopped or resumed to train longer is read from
    ``checkpoint.pt`` (``weights_only=True``). Either must hold the network ``run.json`` describes.

    Raises:
        MissingInputError: no ``run.json``, or neither ``model/`` nor ``checkpoint.pt``.
        RunFolderError: ``model/`` or the checkpoint holds another model than ``run.json`` names.
    """
    folder = Path(check_path("folder", folder)).expanduser()
    run = read_run(folder)
    config = _run_config(folder, run)
    if not (folder / MODEL_DIR / CONFIG_NAME).is_file() and not (folder / CHECKPOINT_NAME).is_file():
        raise MissingInputError(
            f"The run in {folder} holds no model yet: neither {MODEL_DIR}/ (written at its end) nor "
            f"{CHECKPOINT_NAME} (written every checkpoint_every iterations)."
        )
    if _finished(folder, run):
        model = load_pretrained(folder / MODEL_DIR, device=device)
        _check_same(folder, config, model.config, f"{MODEL_DIR}/")
    else:
        model = _from_checkpoint(folder, config, device=device)
    w = getattr(model, "pretrained_weights", None)
    if not isinstance(w, WeightsInfo) or w.dataset is None:
        model.pretrained_weights = _run_weights(folder, run, model.config, name=folder.name)
    model.run_recipe = dict(run["recipe"])  # evaluate reads a folder run's held-out split from it
    return model.eval()


def _run_config(folder: Path, run: dict[str, Any]) -> ResNetConfig:
    """The network ``run.json`` describes: its ``config``, else the model name with its overrides;
    within what a folder may ask for (:data:`reszoo.weights.untrusted.LIMITS`), as it is built for real."""
    if isinstance(run.get("config"), dict):
        config = ResNetConfig.from_dict(run["config"])
    elif run["model"] is None:
        raise RunFolderError(f"{folder / RUN_NAME} names no model and holds no config: it cannot be rebuilt.")
    else:
        config = default_config(run["model"]).replace(**run["model_overrides"])
    check_limits(config, where=str(folder / RUN_NAME))
    return config


def _finished(folder: Path, run: dict[str, Any]) -> bool:
    """Whether ``model/`` holds the run's final weights (not those of a run resumed to train longer since)."""
    if not (folder / MODEL_DIR / CONFIG_NAME).is_file():
        return False
    if not (folder / CHECKPOINT_NAME).is_file():
        return True
    try:
        done = json.loads((folder / SUMMARY_NAME).read_text(encoding="utf-8"))["iterations"]
        return int(done) >= int(run["recipe"].get("iterations", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return True  # no readable summary: the saved model is the last finished state


def _describe(config: ResNetConfig) -> str:
    return f"depths={config.depths}, widths={config.widths}, shortcut={config.shortcut!r}, classes={config.num_classes}"


def _check_same(folder: Path, expected: ResNetConfig, found: ResNetConfig, what: str) -> None:
    if any(getattr(expected, f) != getattr(found, f) for f in _SHAPE_FIELDS):
        raise RunFolderError(
            f"{folder / what} holds another model ({_describe(found)}) than {folder / RUN_NAME} describes "
            f"({_describe(expected)}); it is not this run's."
        )


def _from_checkpoint(folder: Path, config: ResNetConfig, *, device: str | torch.device | None) -> ResNet:
    ckpt = load_checkpoint(folder)
    model = ResNet(config)
    check_values(ckpt["model"], model, source=str(folder / CHECKPOINT_NAME))  # NaN is not "another model"
    try:
        fitted = fit_state_dict(ckpt["model"], model, source=str(folder / CHECKPOINT_NAME))
    except WeightsIntegrityError:
        raise RunFolderError(
            f"{folder / CHECKPOINT_NAME} does not fit the network {folder / RUN_NAME} describes ({_describe(config)}): "
            "it holds another model's weights."
        ) from None
    model.load_state_dict(fitted, strict=True)
    model.iteration = ckpt["iteration"]
    return model.to(resolve_device(device)) if device is not None else model


def _run_weights(folder: Path, run: dict[str, Any], config: ResNetConfig, *, name: str) -> WeightsInfo:
    """A weights record for a run's model from its recipe: the data's classes and normalisation."""
    recipe = run["recipe"]
    data = recipe.get("data")
    info = DATASETS.get(data)  # cifar10, cifar100, imagenet: their statistics
    mean = recipe.get("mean") or (info.mean if info else IMAGENET_MEAN)  # a folder run's recipe states its own
    std = recipe.get("std") or (info.std if info else IMAGENET_STD)
    classes = run.get("classes")  # cifar10/100, imagenet: the record's dataset names them (WeightsInfo.class_names)
    return WeightsInfo(
        name=name,
        arch=run["model"],
        dataset=data,
        num_classes=config.num_classes,
        mean=tuple(mean),
        std=tuple(std),
        crop_size=config.image_size,
        resize_size=model_resize_size(size=config.image_size, cifar_style=config.stem == "cifar"),
        categories=tuple(classes) if classes and len(classes) == config.num_classes else None,
    )
