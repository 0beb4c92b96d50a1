"""The training loop, as the steps a reader follows: set up, (start the folder), step, report, finish.

:func:`run_fit` is what :func:`reszoo.train.trainer.fit` runs once the arguments are checked, the device
chosen and the process group started:

1. :func:`_set_up`: memory format, the batch streams (the dataset is read here, before any file
   is written; an image folder's class names and pre-processing become the model's weights
   record), the frozen backbone and the optimizer's parameter groups, seed, :func:`_restore` from
   the checkpoint when resuming, the DDP / ``torch.compile`` wrappers. What is fixed for the run
   goes in :class:`_Run`; what changes as it goes (iteration, plateau, errors, running sums) in
   the one small :class:`_State`.
2. ``reszoo.train.runfolder.claim_folder`` (the folder's lock, held to the end) and
   ``reszoo.train.runfolder.start_folder``: ``recipe.json``, ``run.json``, the history trimmed to the
   checkpoint (rank 0 of a run with a folder).
3. :func:`_train`: per iteration :func:`_step`, and at log, evaluation and checkpoint iterations
   :func:`_report` (log record, non-finite check, evaluation and plateau, checkpoint). SIGINT
   (Ctrl-C) and SIGTERM stop a run with a folder at the next step boundary, after a checkpoint
   (:class:`~reszoo.train._interrupts.StopRequest`; :class:`~reszoo.errors.TrainingInterrupted` says how
   to resume).
4. :func:`_finish`: rank 0's BatchNorm statistics to every rank, replica digests compared,
   ``model/`` and ``summary.json`` written.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reszoo.errors import InvalidArgumentError, NonFiniteLossError, ReplicasDivergedError, TrainingInterrupted
from reszoo.train._interrupts import StopRequest
from reszoo.train._paramgroups import param_groups, train_mode
from reszoo.train.batches import Batch, Batches, data_weights, make_batches
from reszoo.train.recipes import Recipe, learning_rate
from reszoo.train.runfolder import (
    CHECKPOINT_NAME,
    HISTORY_NAME,
    MODEL_DIR,
    SUMMARY_NAME,
    checkpoint_identity,
    claim_folder,
    load_checkpoint,
    save_checkpoint,
    start_folder,
    state_digest,
    write_json,
)
from reszoo.utils.accelerator import batch_fits
from reszoo.utils.devices import preferred_memory_format
from reszoo.utils.fileio import write_error

__all__ = [
    "FitResult",
    "run_fit",
]


@dataclass
class FitResult:
    """What :func:`reszoo.train.trainer.fit` returns.

    Attributes:
        model: the trained model (unwrapped, on its training device).
        iterations: iterations done in total.
        train_error: top-1 training error (0-1) over the last logging interval.
        test_error: top-1 error (0-1) of the last evaluation, or None.
        history: the records written to ``history.jsonl`` during this call.
        out: the run folder, or None.
    """

    model: nn.Module
    iterations: int
    train_error: float | None
    test_error: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    out: Path | None = None


def run_fit(
    model: nn.Module,
    recipe: Recipe,
    *,
    out: str | Path | None,
    resume: bool,
    progress: bool,
    on_step: Callable[[int], None] | None,
    rank: int,
    world: int,
    device: torch.device,
    run_info: dict[str, Any],
    train_data: Any = None,
    eval_data: Any = None,
) -> FitResult:
    """Train with checked arguments on ``device`` as process ``rank`` of ``world``.

    ``run_info`` holds what ``run.json`` says beyond the recipe: ``model`` (the registered name,
    or None), ``model_overrides`` (the names of the config fields that were overridden) and
    ``pretrained`` (the weights a fine-tune started from, or None). ``train_data``/``eval_data``:
    the caller's data for ``recipe.data == "custom"``.
    """
    where = dict(out=out, resume=resume, rank=rank, world=world, device=device)
    run, state = _set_up(model, recipe, **where, data=(train_data, eval_data), run_info=run_info)
    recipe = run.recipe
    claim = contextlib.nullcontext()
    if run.writes:
        assert run.out is not None
        claim = claim_folder(run.out, resume=resume, checkpoint=state.checkpoint)
    with claim:
        if run.writes:
            assert run.out is not None
            start_folder(
                run.out, recipe=recipe, config=model.config, run_info=run_info, world=world, iteration=state.iteration
            )
        with StopRequest(enabled=run.out is not None) as stop:
            _train(run, state, progress=progress, on_step=on_step, stop=stop, name=run_info["model"])
        return _finish(run, state)


# -- set-up ------------------------------------------------------------------------------------


@dataclass
class _Run:
    """What a run is set up with, fixed from the first step to the last."""

    recipe: Recipe
    model: nn.Module  # unwrapped: what is checkpointed, evaluated and saved
    net: nn.Module  # what a step calls: the model, wrapped in DDP and/or compiled
    optimizer: torch.optim.Optimizer
    data: Batches
    device: torch.device
    amp: bool  # bf16 autocast
    channels_last: bool
    rank: int
    world: int
    out: Path | None

    @property
    def writes(self) -> bool:
        """Rank 0 of a run with a folder writes the files."""
        return self.rank == 0 and self.out is not None

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)


@dataclass
class _State:
    """What changes as a run goes (the checkpoint holds it)."""

    iteration: int = 0
    lr: float = 0.0  # of the last step
    plateau: dict[str, Any] = field(default_factory=lambda: {"best": 2.0, "bad": 0, "drops": 0})
    # The last logged errors: a resumed run that has nothing left to do still reports them.
    errors: dict[str, float | None] = field(default_factory=lambda: {"train_error": None, "test_error": None})
    history: list[dict[str, Any]] = field(default_factory=list)
    # Sums since the last report (loss, wrong, seen, non-finite steps). They stay on the device and
    # are read only at reports, so a GPU is never made to wait for the host every iteration.
    stats: torch.Tensor = field(default_factory=lambda: torch.zeros(4))
    since: tuple[float, int] = (0.0, 0)  # (clock, iteration) of the last report
    checkpoint: tuple[int, ...] | None = None  # the identity of the checkpoint file resumed from
    saved: int = -1  # the iteration of the last checkpoint written


def _set_up(
    model: nn.Module,
    recipe: Recipe,
    *,
    out: Any,
    resume: bool,
    rank: int,
    world: int,
    device: torch.device,
    data: tuple[Any, Any],
    run_info: dict[str, Any],
) -> tuple[_Run, _State]:
    channels_last = _to_device(model, recipe, device)
    # The dataset is read before anything is written: a missing one leaves no run folder behind.
    # It consumes no global random state, so reading it before or after the restore is the same.
    where = dict(device=device, rank=rank, world=world, channels_last=channels_last)
    batches = make_batches(recipe, model, **where, train_data=data[0], eval_data=data[1])
    recipe = batches.recipe  # with the folder's mean/std and iterations from epochs, as recipe.json says
    if recipe.schedule == "plateau" and batches.evaluate is None:
        raise InvalidArgumentError(
            "schedule='plateau' lowers the lr when the evaluation error stops improving, but this run has no "
            "evaluation set (eval_data=None, or val_fraction=0); choose schedule='step' or 'cosine'."
        )
    if batches.classes is not None:  # an image folder: its classes and pre-processing go with the model
        base = getattr(model, "pretrained_weights", None)
        arch = run_info["model"] or getattr(base, "arch", None)
        model.pretrained_weights = data_weights(model, recipe, batches.classes, arch=arch, base=base)
        run_info["classes"] = list(batches.classes)  # into run.json: a checkpoint read alone names them too
    optimizer = torch.optim.SGD(
        param_groups(model, recipe),
        lr=learning_rate(recipe, 0),
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
    )
    train_mode(model, recipe)
    torch.manual_seed(recipe.seed)
    state = _State()
    if resume:
        _restore(state, model, optimizer, Path(out), recipe, device)
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if recipe.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    amp = recipe.amp if recipe.amp is not None else device.type == "cuda"
    out_dir = Path(out) if out is not None else None
    return _Run(recipe, model, net, optimizer, batches, device, amp, channels_last, rank, world, out_dir), state


def _to_device(model: nn.Module, recipe: Recipe, device: torch.device) -> bool:
    """Move ``model`` to ``device`` in the recipe's memory format; True for channels-last."""
    if recipe.channels_last is None:
        memory_format = preferred_memory_format(device.type)
    else:
        memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format)
    return memory_format == torch.channels_last


def _restore(
    state: _State, model: nn.Module, optimizer: torch.optim.Optimizer, out: Path, recipe: Recipe, device: torch.device
) -> None:
    state.checkpoint = checkpoint_identity(out / CHECKPOINT_NAME)
    ckpt = load_checkpoint(out)
    done = ckpt["iteration"]
    if recipe.iterations < done:
        raise InvalidArgumentError(
            f"iterations must be >= {done} to resume the run in {out}, which has done {done}; "
            f"received iterations={recipe.iterations}."
        )
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
    except (RuntimeError, ValueError, TypeError, KeyError) as err:  # another model's, or a damaged one
        raise InvalidArgumentError(
            f"{out / CHECKPOINT_NAME} does not fit this model and recipe; it was written for another run "
            f"({type(err).__name__}: {str(err).splitlines()[0][:300]})."
        ) from None
    state.iteration = state.saved = done
    state.plateau = dict(ckpt["plateau"])
    state.errors.update(ckpt.get("errors", {}))


# -- the loop ----------------------------------------------------------------------------------


class _Output:
    """Where rank 0's records go: ``history.jsonl`` and the progress bar."""

    def __init__(self, run: _Run, *, start: int, progress: bool) -> None:
        self.file = None
        if run.writes:
            assert run.out is not None
            self.path = run.out / HISTORY_NAME
            self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self.bar = None
        if progress and run.rank == 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=run.recipe.iterations, initial=start, unit="it", dynamic_ncols=True)

    def record(self, rec: dict[str, Any], errors: dict[str, float | None]) -> None:
        if self.file is not None:
            try:
                self.file.write(json.dumps(rec) + "\n")
                self.file.flush()
            except OSError as err:  # a full disk: say which file (the checkpoint on disk is still good)
                raise write_error(self.path, err, existed=True) or err from None
        if self.bar is not None:
            post = {"loss": f"{rec['train_loss']:.3f}", "err": f"{rec['train_error']:.3f}"}
            if errors["test_error"] is not None:
                post["test_err"] = f"{errors['test_error']:.3f}"
            if rec["images_per_s"] is not None:
                post["img/s"] = f"{rec['images_per_s']:.0f}"
            self.bar.set_postfix(post, refresh=False)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.file is not None:
            self.file.close()


def _train(
    run: _Run,
    state: _State,
    *,
    progress: bool,
    on_step: Callable[[int], None] | None,
    stop: StopRequest,
    name: str | None,
) -> None:
    recipe = run.recipe
    output = _Output(run, start=state.iteration, progress=progress)
    state.stats = _accumulator(4, run.device)
    state.since = (time.perf_counter(), state.iteration)
    batches = run.data.train(state.iteration)
    per_process = f" ({recipe.batch_size // run.world} per process)" if run.world > 1 else ""
    step_fits = dict(doing="in a training step", field="batch_size", batch_size=recipe.batch_size, note=per_process)
    try:
        while state.iteration < recipe.iterations:
            with batch_fits(**step_fits, device=run.device):
                _step(run, state, next(batches))
            it = state.iteration
            evaluate = it == recipe.iterations or (recipe.eval_every > 0 and it % recipe.eval_every == 0)
            checkpoint = it == recipe.iterations or it % recipe.checkpoint_every == 0
            if evaluate or checkpoint or it % recipe.log_every == 0:
                _report(run, state, output, evaluate=evaluate, checkpoint=checkpoint)
            output.advance()
            if on_step is not None:
                on_step(it)
            signum = stop.agreed(iteration=it, every=recipe.log_every, world=run.world, device=run.device)
            if signum and it < recipe.iterations:
                _stop(run, state, signum, name)
    finally:
        output.close()


def _stop(run: _Run, state: _State, signum: int, name: str | None) -> None:
    bad = state.stats[3:].clone()  # non-finite steps since the last report: do not checkpoint those weights
    if run.world > 1:
        torch.distributed.all_reduce(bad)
    if bad.item():
        last_good = f" The last good checkpoint is {run.out / CHECKPOINT_NAME}." if run.out is not None else ""
        raise NonFiniteLossError(
            f"Stopped by {signal.Signals(signum).name} at iteration {state.iteration}, after the training loss "
            f"became non-finite; no checkpoint was written.{last_good} Try a lower lr, a warm-up or amp=False."
        )
    if run.writes and state.saved != state.iteration:
        _save(run, state)
    if run.world > 1:
        torch.distributed.barrier()  # rank 0's checkpoint is on disk before any rank leaves
    where = run.out / CHECKPOINT_NAME if run.out is not None else None
    again = (
        f"reszoo train {name} --resume {run.out}"
        if name
        else f"reszoo.train.trainer.fit(model, recipe, out={str(run.out)!r}, resume=True)"
    )
    raise TrainingInterrupted(
        f"{signal.Signals(signum).name} at iteration {state.iteration} of {run.recipe.iterations}; "
        f"the checkpoint is saved in {where}. Resume with: {again}",
        signum=signum,
    )


def _step(run: _Run, state: _State, batch: Batch) -> None:
    x, y = batch
    state.lr = learning_rate(run.recipe, state.iteration, plateau_drops=state.plateau["drops"])
    for group in run.optimizer.param_groups:
        group["lr"] = state.lr * group.get("lr_scale", 1.0)
    with run.autocast():
        logits = run.net(x)
        loss = F.cross_entropy(logits.float(), y)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    state.iteration += 1
    with torch.no_grad():
        finite = torch.isfinite(loss)
        state.stats[0] += torch.where(finite, loss.detach(), 0.0)
        state.stats[1] += (logits.argmax(1) != y).sum()
        state.stats[2] += y.numel()
        state.stats[3] += ~finite


def _report(run: _Run, state: _State, output: _Output, *, evaluate: bool, checkpoint: bool) -> None:
    """Log the interval since the last report; evaluate (and follow a plateau); checkpoint."""
    rec = _interval_record(run, state)
    if evaluate and run.data.evaluate is not None:
        rec["test_error"] = state.errors["test_error"] = _evaluate_and_plateau(run, state)
    if run.rank == 0:
        state.history.append(rec)
        output.record(rec, state.errors)
    if checkpoint and run.writes:
        _save(run, state)
    state.stats.zero_()
    state.since = (time.perf_counter(), state.iteration)


def _interval_record(run: _Run, state: _State) -> dict[str, Any]:
    if run.world > 1:
        torch.distributed.all_reduce(state.stats)
    loss_sum, wrong, seen, bad = state.stats.tolist()
    if bad:
        last_good = f" The last good checkpoint is {run.out / CHECKPOINT_NAME}." if run.out is not None else ""
        raise NonFiniteLossError(
            f"The training loss became non-finite before iteration {state.iteration} (lr {state.lr:g}); "
            f"stopping.{last_good} Try a lower lr, a warm-up (warmup_iters) or amp=False."
        )
    t0, it0 = state.since
    elapsed = time.perf_counter() - t0
    state.errors["train_error"] = wrong / seen
    return {
        "iteration": state.iteration,
        "lr": state.lr,
        "train_loss": loss_sum / ((state.iteration - it0) * run.world),
        "train_error": state.errors["train_error"],
        "images_per_s": seen / elapsed if elapsed > 0 else None,
        "time": time.time(),
    }


def _evaluate_and_plateau(run: _Run, state: _State) -> float:
    _sync_buffers(run.model, run.world)
    error = _evaluate(run)
    plateau, recipe = state.plateau, run.recipe
    if recipe.schedule == "plateau":
        if error < plateau["best"] - recipe.plateau_threshold:
            plateau.update(best=error, bad=0)
        else:
            plateau["bad"] += 1
            if plateau["bad"] >= recipe.plateau_patience:
                plateau.update(bad=0, drops=plateau["drops"] + 1)
    return error


@torch.no_grad()
def _evaluate(run: _Run) -> float:
    model = run.model
    was_training = model.training
    model.eval()
    counts = _accumulator(2, run.device)  # wrong, seen
    assert run.data.evaluate is not None
    fits = dict(doing="while evaluating", field="eval_batch_size", batch_size=run.recipe.eval_batch_size)
    with batch_fits(**fits, device=run.device):
        for x, y in run.data.evaluate():
            with run.autocast():
                logits = model(x)
            counts[0] += (logits.argmax(1) != y).sum()
            counts[1] += y.numel()
    if was_training:
        train_mode(model, run.recipe)
    if run.world > 1:
        torch.distributed.all_reduce(counts)
    return (counts[0] / counts[1].clamp(min=1)).item()


def _save(run: _Run, state: _State) -> None:
    assert run.out is not None
    cuda_rng = torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None
    checkpoint = {
        "iteration": state.iteration,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "plateau": dict(state.plateau),
        "errors": dict(state.errors),
        "rng": {"torch": torch.get_rng_state(), "cuda": cuda_rng},
        "recipe": run.recipe.to_dict(),
    }
    save_checkpoint(run.out / CHECKPOINT_NAME, checkpoint)
    state.saved = state.iteration


def _accumulator(size: int, device: torch.device) -> torch.Tensor:
    # float64 sums stay exact over a long interval; MPS has no float64.
    return torch.zeros(size, dtype=torch.float32 if device.type == "mps" else torch.float64, device=device)


def _sync_buffers(model: nn.Module, world: int) -> None:
    # DDP copies rank 0's buffers (BN running statistics) to the other ranks at the start of each
    # forward, so after the last step every rank holds statistics of its own last batch. Evaluation
    # and the final weights use rank 0's, the ones the next forward would have used.
    if world > 1:
        for buf in model.buffers():
            torch.distributed.broadcast(buf, src=0)


# -- the end -----------------------------------------------------------------------------------


def _finish(run: _Run, state: _State) -> FitResult:
    _sync_buffers(run.model, run.world)
    digests = [state_digest(run.model)]
    if run.world > 1:
        gathered: list[Any] = [None] * run.world
        torch.distributed.all_gather_object(gathered, digests[0])
        digests = gathered
        if len(set(digests)) != 1:
            raise ReplicasDivergedError(
                "Replicas diverged: every rank must end with the same weights (DDP keeps them in step, and the "
                f"buffers were broadcast from rank 0); received weight digests per rank {digests}."
            )
    if run.writes:
        assert run.out is not None
        from reszoo.weights.hub import save_pretrained

        save_pretrained(run.model, run.out / MODEL_DIR)
        summary = {
            "iterations": state.iteration,
            **state.errors,
            "world_size": run.world,
            "device": str(run.device),
            "amp": run.amp,
            "channels_last": run.channels_last,
            "replica_digests": digests,
        }
        write_json(run.out / SUMMARY_NAME, summary)
    return FitResult(
        run.model, state.iteration, state.errors["train_error"], state.errors["test_error"], state.history, run.out
    )
