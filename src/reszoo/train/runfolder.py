"""The files of a training run folder: their names, and how each is written and read back.

:func:`reszoo.train.trainer.fit` is the one writer of a run folder; this module holds the file-level
work. Every file is replaced atomically (``reszoo.utils.fileio.atomic_path``, flushed to disk), so a
process killed at any moment leaves each file whole, old or new; the temporary a kill leaves
behind is deleted when the next run claims the folder. ``history.jsonl`` is the one
log appended to (a record per write, flushed); a torn last line is dropped on resume.

The rules of a run folder live here too: :func:`check_folder` (before anything is written; a run
folder and the data it trains on are apart, :func:`check_apart`),
:func:`claim_folder` (one writer at a time: the folder's lock, ``reszoo.utils.fileio.lock_folder``),
:func:`start_folder` (what a start or resume writes) and :func:`resume_settings` (what a
resume by model name reads back). A write that fails (a full disk, no permission) raises
``reszoo.errors.FileWriteError`` naming the file, and the previous file stays as it was.

A run folder holds:

- ``recipe.json``: the recipe (``Recipe.to_dict``), rewritten at each start or resume.
- ``run.json``: what was asked and where: model name and config overrides, the model's config,
  the recipe, the seed, the process count and the reszoo, torch and Python versions.
- ``history.jsonl``: one record per log or evaluation step.
- ``checkpoint.pt``: everything needed to continue exactly.
- ``model/`` (``reszoo.weights.hub.save_pretrained``) and ``summary.json``: written at the end.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reszoo._version import __version__
from reszoo.errors import FileWriteError, InvalidArgumentError, MissingInputError, RunFolderError
from reszoo.models.resnet import ResNetConfig
from reszoo.train.recipes import Recipe
from reszoo.utils.fileio import (
    atomic_path,
    in_use_error,
    lock_folder,
    lock_holder,
    tensors_digest,
    torn_temporaries,
)
from reszoo.weights.convert import load_error_reason
from reszoo.weights.hub import CONFIG_NAME, WEIGHTS_NAME

CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_NAME = "history.jsonl"
RECIPE_NAME = "recipe.json"
RUN_NAME = "run.json"
SUMMARY_NAME = "summary.json"
MODEL_DIR = "model"
CHECKPOINT_FORMAT = 1

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "HISTORY_NAME",
    "MODEL_DIR",
    "RECIPE_NAME",
    "RUN_NAME",
    "SUMMARY_NAME",
    "check_apart",
    "check_folder",
    "checkpoint_identity",
    "claim_folder",
    "load_checkpoint",
    "read_run",
    "remove_torn_temporaries",
    "resume_settings",
    "save_checkpoint",
    "start_folder",
    "state_digest",
    "trim_history",
    "versions",
    "write_json",
]


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically and flushed to disk."""
    with atomic_path(path, fsync=True) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def save_checkpoint(path: str | os.PathLike[str], checkpoint: dict[str, Any]) -> None:
    """Write a training checkpoint (plain tensors and dicts) atomically; the previous one survives a crash.

    Raises:
        FileWriteError: the disk is full or the folder not writable (the message names the file
            and the cause; the previous checkpoint is unchanged).
    """
    with atomic_path(path, fsync=True) as tmp, open(tmp, "wb") as f:
        # Through a Python file, so a full disk is the OSError it is (torch.save given a path
        # reports it as "enforce fail at inline_container.cc").
        torch.save({"format": CHECKPOINT_FORMAT, **checkpoint}, f)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`reszoo.train.trainer.fit` (a run folder or the file itself).

    Args:
        path: the run folder or its ``checkpoint.pt``.

    Returns:
        The checkpoint dict: ``iteration``, ``model``, ``optimizer``, ``plateau``, ``errors``,
        ``rng``, ``recipe``, ``format``.

    Raises:
        MissingInputError: there is no checkpoint at ``path``.
        InvalidArgumentError: the file is not a reszoo training checkpoint.
    """
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise MissingInputError(f"No checkpoint at {p}; a run writes one every checkpoint_every iterations.")
    # Only our own plain-data checkpoints are read, and never with pickle's full powers.
    try:
        ckpt = torch.load(p, weights_only=True, map_location="cpu")
    except PermissionError:
        raise
    except Exception as err:  # torn, truncated, not a torch file: the loader's errors are of many types
        raise InvalidArgumentError(
            f"{p} could not be read as a reszoo training checkpoint ({load_error_reason(err)})."
        ) from None
    if not isinstance(ckpt, dict) or type(ckpt.get("format")) is not int or ckpt["format"] != CHECKPOINT_FORMAT:
        raise InvalidArgumentError(f"{p} is not a reszoo training checkpoint (format {CHECKPOINT_FORMAT}).")
    bad = [key for key, valid in _CHECKPOINT_FIELDS.items() if key not in ckpt or not valid(ckpt[key])]
    if bad:
        raise InvalidArgumentError(f"{p} is a damaged reszoo training checkpoint: bad or missing {bad}.")
    return ckpt


def _numbers(value: Any, keys: dict[str, type | tuple[type, ...]]) -> bool:
    return isinstance(value, dict) and all(
        isinstance(value.get(k), t) and not isinstance(value.get(k), bool) for k, t in keys.items()
    )


# What a checkpoint holds (reszoo.train.loop writes it), checked on reading.
_CHECKPOINT_FIELDS = {
    "iteration": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "model": lambda v: isinstance(v, dict),
    "optimizer": lambda v: isinstance(v, dict),
    "plateau": lambda v: _numbers(v, {"best": (int, float), "bad": int, "drops": int}),
    "errors": lambda v: isinstance(v, dict) and all(x is None or isinstance(x, float) for x in v.values()),
    "rng": lambda v: isinstance(v, dict) and isinstance(v.get("torch"), torch.Tensor),
}


def checkpoint_identity(path: str | os.PathLike[str]) -> tuple[int, ...] | None:
    """Which file is at ``path`` now (device, inode, size, modification time), or None: a rewrite changes it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def state_digest(model: nn.Module) -> str:
    """SHA-256 over every parameter and buffer (names, dtypes, shapes and bytes), for comparing replicas.

    Args:
        model: the model.

    Returns:
        The hex digest: ``reszoo.utils.fileio.tensors_digest`` of the state dict, the ``reszoo_digest``
        that ``save_pretrained`` stores in ``model.safetensors``.
    """
    return tensors_digest(model.state_dict())


def trim_history(path: str | os.PathLike[str], iteration: int) -> None:
    """Keep the records of ``history.jsonl`` up to ``iteration`` (rewritten atomically).

    On resume, records after the checkpoint describe work that is being redone: dropping them
    makes the history read as one uninterrupted run. A line torn by a kill mid-write is dropped.
    """
    path = Path(path)
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("iteration"), int) and record["iteration"] <= iteration:
            keep.append(line)
    with atomic_path(path, fsync=True) as tmp:
        tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")


def versions() -> dict[str, str]:
    """The versions a run depends on, for ``run.json``."""
    return {"reszoo": __version__, "torch": torch.__version__, "python": platform.python_version()}


def read_run(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``run.json`` of a run folder, checked to name a model, its overrides and a recipe.

    Raises:
        MissingInputError: the folder holds no ``run.json``.
        RunFolderError: ``run.json`` is not a reszoo run record.
    """
    path = Path(out) / RUN_NAME
    if not path.is_file():
        raise MissingInputError(f"No run to resume in {os.fspath(out)}: {path} is missing.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFolderError(f"{path} is not a reszoo run record (not JSON: {err}).") from None
    needs = {"model": (str, type(None)), "model_overrides": dict, "recipe": dict}
    if not isinstance(data, dict) or any(k not in data or not isinstance(data[k], t) for k, t in needs.items()):
        raise RunFolderError(
            f'{path} is not a reszoo run record: it needs "model" (a name or null), "model_overrides" '
            'and "recipe" (objects).'
        )
    return data


def check_folder(out: Path, model: nn.Module, *, resume: bool) -> None:
    """Refuse a run folder that cannot take this run, before anything is written.

    Raises:
        InvalidArgumentError: ``out`` or a folder above it is a file; it already holds a run
            (``checkpoint.pt``) and ``resume`` is False; or the model cannot be saved at the end
            (not a reszoo ResNet, or a config holding callables).
        RunFolderError: another process is writing the folder (it holds its lock).
        FileWriteError: the folder cannot be written (no permission).
    """
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"out must be a folder; received out={os.fspath(out)!r}, which is a file.")
    existing = next(p for p in (out, *out.parents) if p.exists())  # "." or "/" at the latest
    if existing != out and not existing.is_dir():
        raise InvalidArgumentError(
            f"out must be a folder path; received out={os.fspath(out)!r}, but {os.fspath(existing)!r} is a file."
        )
    holder = lock_holder(out)
    if holder is not None:
        raise in_use_error(out, holder)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FileWriteError(
            errno.EACCES,
            f"Cannot write the run folder {os.fspath(out)}: {os.fspath(existing)} is not writable (permission "
            "denied); fix its permissions or choose another --out.",
            os.fspath(existing),
        )
    if not resume and (out / CHECKPOINT_NAME).exists():
        raise InvalidArgumentError(
            f"{out} already holds a run; use --resume {out} (resume=True) to continue it, or another --out."
        )
    config = getattr(model, "config", None)
    if not isinstance(config, ResNetConfig):
        raise InvalidArgumentError(
            "A run folder ends with the model saved by reszoo.save_pretrained, which needs a reszoo ResNet; "
            f"received a {type(model).__name__}. Train it with out=None."
        )
    config.to_dict()  # a config holding callables cannot be saved: refuse it now, not after training
    if resume:
        _check_same_model(out, config)


def check_apart(out: str | os.PathLike[str], data_root: str | os.PathLike[str]) -> None:
    """Refuse a run folder that is the data folder, lies inside it or holds it (symbolic links resolved).

    A run written into an image folder becomes part of it: its ``model/`` and ``checkpoint.pt``
    are read as a class folder and files the next time the folder is trained or evaluated, and the
    folder no longer trains. One rule for every dataset keeps it simple to state; the run folder
    beside the data (``runs/NAME``) is always possible.

    Raises:
        InvalidArgumentError: the two folders overlap (the message names both as given).
    """
    run, data = (Path(os.path.expanduser(os.fspath(p))).resolve() for p in (out, data_root))
    if run == data:
        how = "is the data folder"
    elif data in run.parents:
        how = "is inside the data folder"
    elif run in data.parents:
        how = "holds the data folder"
    else:
        return
    raise InvalidArgumentError(
        f"out={os.fspath(out)!r} {how} data_root={os.fspath(data_root)!r}: the run's files would mix with the data "
        "it reads (an image folder would no longer train). Give a run folder apart from the data (--out "
        "beside --root, e.g. runs/NAME)."
    )


def _check_same_model(out: Path, config: ResNetConfig) -> None:
    """A resume must continue the model the folder's run trained (one line naming what differs)."""
    path = out / RUN_NAME
    try:
        saved = json.loads(path.read_text(encoding="utf-8")).get("config")
        saved_config = ResNetConfig.from_dict(saved)
    except (OSError, ValueError, TypeError, AttributeError):
        return  # no readable run.json: the checkpoint's own check (load_state_dict) speaks
    if saved_config != config:
        mine, theirs = config.to_dict(), saved_config.to_dict()
        fields = [k for k in mine if mine[k] != theirs.get(k)]
        name = json.loads(path.read_text(encoding="utf-8")).get("model") or "a model built in Python"
        diff = ", ".join(f"{k}={theirs.get(k)} there, {mine[k]} here" for k in fields[:4])
        raise InvalidArgumentError(f"{out} holds a run of another model ({name}; {diff}); resume it with that model.")


def start_folder(
    out: Path, *, recipe: Recipe, config: ResNetConfig, run_info: dict[str, Any], world: int, iteration: int
) -> None:
    """Write ``recipe.json`` and ``run.json`` and trim the history to ``iteration`` (a start or a resume).

    Args:
        out: the run folder (created).
        recipe: the recipe of this start.
        config: the model's config.
        run_info: ``model`` (the registered name, or None), ``model_overrides`` (the names of
            the overridden config fields; their values are recorded as the config holds them) and
            ``pretrained`` (the weights a fine-tune started from, or None).
        world: process count.
        iteration: where the run starts (the checkpoint's iteration when resuming).
    """
    out.mkdir(parents=True, exist_ok=True)
    config_dict = config.to_dict()
    write_json(out / RECIPE_NAME, recipe.to_dict())
    record = {
        "model": run_info["model"],
        # As the config holds them (plain JSON: tuples as lists), so the run can be rebuilt.
        "model_overrides": {key: config_dict[key] for key in run_info["model_overrides"]},
        "config": config_dict,
        "recipe": recipe.to_dict(),
        "pretrained": run_info.get("pretrained"),
        "classes": run_info.get("classes"),  # an image folder's class names, in label order
        "seed": recipe.seed,
        "world_size": world,
        "versions": versions(),
    }
    write_json(out / RUN_NAME, record)
    trim_history(out / HISTORY_NAME, iteration)


def resume_settings(
    out: str | os.PathLike[str], name: str, model_overrides: dict[str, Any], recipe_overrides: dict[str, Any]
) -> tuple[Recipe, dict[str, Any]]:
    """The recipe and model overrides to resume the run of model ``name`` in ``out`` with.

    The saved ones (``run.json``), with those given now on top (e.g. ``iterations``, to train
    longer).

    Raises:
        MissingInputError: no ``run.json`` or no checkpoint in ``out``.
        InvalidArgumentError: ``out`` holds a run of another model.
        RunFolderError: ``run.json`` is damaged.
    """
    saved = read_run(out)
    where = os.fspath(out)
    if saved["model"] is None:
        raise InvalidArgumentError(
            f"{where} holds a run of a model built in Python; resume it with "
            "reszoo.train.trainer.fit(model, recipe, out=..., resume=True)."
        )
    if saved["model"] != name:
        raise InvalidArgumentError(f"{where} holds a {saved['model']} run; received model {name!r}.")
    if not (Path(out) / CHECKPOINT_NAME).is_file():
        raise MissingInputError(
            f"No checkpoint to resume in {where}: the run stopped before its first checkpoint (written every "
            f"checkpoint_every iterations); start it again (reszoo train {name} --out {where})."
        )
    recipe = Recipe.from_dict({**saved["recipe"], **recipe_overrides})
    return recipe, {**saved["model_overrides"], **model_overrides}


# The files of a run folder and of its model/ that are written through a temporary (atomic_path).
_RUN_FILES = (CHECKPOINT_NAME, HISTORY_NAME, RECIPE_NAME, RUN_NAME, SUMMARY_NAME)
_MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME)


def remove_torn_temporaries(out: Path) -> list[Path]:
    """Delete the temporaries a killed run left in ``out`` and ``out/model/`` (reszoo's own names only).

    A write is a temporary file renamed into place; ``kill -9`` or a power cut mid-write leaves the
    temporary behind (``.checkpoint.pt.<32 hex digits>.tmp``, as large as a checkpoint), and no
    later write reuses its name. Called under the folder's lock, where no other writer is at work.

    Returns:
        The files deleted.
    """
    torn = torn_temporaries(out, _RUN_FILES) + torn_temporaries(out / MODEL_DIR, _MODEL_FILES)
    for path in torn:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return torn


@contextlib.contextmanager
def claim_folder(out: Path, *, resume: bool, checkpoint: tuple[int, ...] | None) -> Iterator[None]:
    """Hold ``out``'s lock for a run, and check under it that no other process wrote a run meanwhile;
    the temporaries a killed run left are deleted first (:func:`remove_torn_temporaries`).

    Args:
        out: the run folder (created).
        resume: the run continues the folder's checkpoint.
        checkpoint: :func:`checkpoint_identity` of the checkpoint the run was set up from (None
            for a new run).

    Raises:
        RunFolderError: another process holds the folder, or wrote its checkpoint since this run
            read it.
        InvalidArgumentError: a new run, and another process has since started one here.
    """
    with lock_folder(out):
        remove_torn_temporaries(out)
        now = checkpoint_identity(out / CHECKPOINT_NAME)
        if not resume and now is not None:
            raise InvalidArgumentError(
                f"{out} already holds a run (another process started it as this one set up); "
                f"use --resume {out} (resume=True) to continue it, or another --out."
            )
        if resume and now != checkpoint:
            raise RunFolderError(
                f"{out / CHECKPOINT_NAME} changed while this run was setting up (another process wrote it); "
                "start the resume again."
            )
        yield
