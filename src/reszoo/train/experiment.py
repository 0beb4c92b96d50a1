"""Experiments of the paper, reproduced with :mod:`reszoo.train`.

``degradation`` is Fig. 6 (left and middle) of He et al. 2015: plain and residual CIFAR networks of
20 and 56 layers trained with the same recipe. The paper's finding is that plain-56 has *higher*
training and test error than plain-20 while ResNet-56 beats ResNet-20. With ``models=`` it trains
any registered networks the same way (e.g. the pre-activation ``preresnet20``/``preresnet56``
against ``plain20``/``plain56``, or ``wrn16_10`` against ``resnext29_32x4d``) and draws the same
curves, plain networks on the left, residual ones on the right.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reszoo.errors import ArgumentTypeError, InvalidArgumentError
from reszoo.train.loop import FitResult
from reszoo.train.recipes import Recipe
from reszoo.train.runfolder import CHECKPOINT_NAME, HISTORY_NAME
from reszoo.train.trainer import fit
from reszoo.utils.checks import check_bool, check_instance, check_path, is_int, type_error, value_error
from reszoo.utils.fileio import atomic_path

CSV_COLUMNS = ("model", "family", "depth", "iteration", "train_error", "test_error")
_FAMILIES = (("plain", "none"), ("resnet", "A"))  # (name prefix, shortcut)
# Config fields that define the compared networks: the experiment sets them for each model.
_FIXED_FIELDS = ("block", "depths", "shortcut")

__all__ = ["CSV_COLUMNS", "DegradationResult", "degradation"]


@dataclass
class DegradationResult:
    """What :func:`degradation` wrote and measured.

    Attributes:
        csv: path of ``curves.csv``.
        png: path of ``degradation.png``, or None when matplotlib is not installed.
        runs: the :class:`~reszoo.train.loop.FitResult` of each model, by name.
    """

    csv: Path
    png: Path | None
    runs: dict[str, FitResult] = field(default_factory=dict)


def degradation(
    recipe: Recipe,
    *,
    out: str | os.PathLike[str],
    depths: Sequence[int] | None = None,
    models: Sequence[str] | None = None,
    model_overrides: dict[str, Any] | None = None,
    progress: bool = True,
    plot: bool = True,
) -> DegradationResult:
    """Train plain{d} and resnet{d} for each depth (or the registered ``models``) with one recipe;
    write the curves as CSV and PNG.

    Each model trains in ``out/<model>/`` (a normal run folder); a folder that already holds a
    checkpoint is resumed, so an interrupted experiment continues where it stopped.

    Args:
        recipe: the recipe shared by every model (e.g. ``reszoo.train.recipes.cifar_recipe(data_root=...)``).
        out: output folder.
        depths: CIFAR depths (6n + 2); the paper's Fig. 6 uses 20, 32, 44, 56 (and 110 for ResNets).
            Default (20, 56) unless ``models`` is given.
        models: registered model names to train instead, e.g. ``("plain20", "plain56", "preresnet20",
            "preresnet56")``: a network with ``shortcut="none"`` is drawn with the plain ones, any other
            with the residual ones. Not together with ``depths``.
        model_overrides: config overrides for every model (e.g. ``widths=(4, 8, 16)`` for a smoke run);
            not ``block``, ``depths`` or ``shortcut``, which define the networks compared.
        progress: progress bars.
        plot: draw ``degradation.png`` (needs matplotlib: ``pip install 'reszoo[plot]'``).

    Returns:
        A :class:`DegradationResult`.
    """
    import torch

    from reszoo.models.resnet import ResNet

    check_instance("recipe", recipe, Recipe, what="a reszoo.train.recipes.Recipe")
    root = Path(check_path("out", out))
    check_bool("progress", progress)
    check_bool("plot", plot)
    if models is not None and depths is not None:
        raise InvalidArgumentError(f"Give depths or models, not both; received depths={depths!r}, models={models!r}.")
    configs = _configs(depths, model_overrides) if models is None else _model_configs(models, model_overrides)
    runs: dict[str, FitResult] = {}
    rows: list[dict[str, Any]] = []
    for (name, family), config in configs.items():
        depth = config.depth
        run_dir = root / name
        torch.manual_seed(recipe.seed)  # each network starts from the weights its seed gives
        model = ResNet(config)
        resume = (run_dir / CHECKPOINT_NAME).exists()
        runs[name] = fit(model, recipe, out=run_dir, resume=resume, progress=progress)
        for rec in _read_history(run_dir):
            row = {"model": name, "family": family, "depth": depth, "iteration": rec["iteration"]}
            rows.append({**row, "train_error": rec["train_error"], "test_error": rec.get("test_error", "")})
    csv_path = root / "curves.csv"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    png = _plot(rows, root / "degradation.png") if plot else None
    return DegradationResult(csv_path, png, runs)


def _checked_overrides(model_overrides: Any) -> dict[str, Any]:
    if model_overrides is not None:
        check_instance("model_overrides", model_overrides, Mapping, what="None or a dict")
    overrides = dict(model_overrides or {})
    fixed = sorted(set(overrides) & set(_FIXED_FIELDS))
    if fixed:
        raise InvalidArgumentError(
            f"model_overrides may not set {fixed}: the experiment sets {list(_FIXED_FIELDS)} for each model "
            f"(from the depths or the models compared); received {overrides!r}."
        )
    return overrides


def _model_configs(models: Any, model_overrides: Any) -> dict[tuple[str, str], Any]:
    """The registered ``models``' configs with the overrides, each checked before any training."""
    from reszoo.models.registry import default_config

    if isinstance(models, str) or not isinstance(models, Sequence) or not models:
        raise ArgumentTypeError(
            f"models must name at least one registered model; received models={models!r} ({type(models).__name__})."
        )
    if len(set(models)) != len(models):
        raise InvalidArgumentError(f"models must not repeat a name; received models={models!r}.")
    overrides = _checked_overrides(model_overrides)
    out = {}
    for name in models:
        config = default_config(name).replace(**overrides)
        out[(name, "plain" if config.shortcut == "none" else "resnet")] = config
    return out


def _configs(depths: Any, model_overrides: Any) -> dict[tuple[str, str], Any]:
    """Every network's config, built (and so checked) before the first one trains for hours."""
    from reszoo.models.zoo import cifar_config

    depths = (20, 56) if depths is None else depths
    if isinstance(depths, str) or not isinstance(depths, Sequence):
        raise ArgumentTypeError(
            f"depths must name at least one CIFAR depth; received depths={depths!r} ({type(depths).__name__})."
        )
    if not depths:
        raise InvalidArgumentError(f"depths must name at least one CIFAR depth; received depths={depths!r}.")
    expected = "6n+2 with n >= 1 (20, 32, 44, 56, 110, 1202, ...)"
    for depth in depths:
        if not is_int(depth):
            raise type_error("depth", depth, expected)
        if depth < 8 or (depth - 2) % 6:
            raise value_error("depth", depth, expected)
    if len(set(depths)) != len(depths):
        raise InvalidArgumentError(f"depths must not repeat a depth; received depths={depths!r}.")
    overrides = _checked_overrides(model_overrides)
    return {
        (f"{family}{depth}", family): cifar_config(depth, shortcut=shortcut).replace(**overrides)
        for depth in depths
        for family, shortcut in _FAMILIES
    }


def _read_history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / HISTORY_NAME
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _plot(rows: list[dict[str, Any]], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; no display is needed (or present on a server)
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn(
            "matplotlib is not installed; skipping degradation.png (pip install 'reszoo[plot]').", stacklevel=3
        )
        return None
    # As in the paper's Fig. 6: one panel per family, thin dashed lines training error, bold test error.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, family in zip(axes, ("plain", "resnet"), strict=True):
        models = [m for _, m in sorted({(r["depth"], r["model"]) for r in rows if r["family"] == family})]
        for i, model in enumerate(models):
            color = f"C{i}"
            mine = [r for r in rows if r["model"] == model]
            ax.plot([r["iteration"] for r in mine], [100 * r["train_error"] for r in mine], "--", lw=1, color=color)
            test = [r for r in mine if r["test_error"] != ""]
            ax.plot(
                [r["iteration"] for r in test],
                [100 * r["test_error"] for r in test],
                "-",
                lw=2,
                color=color,
                label=model,
            )
        title = "plain" if family == "plain" else "residual"
        ax.set_title(f"{title} networks (dashed: training error, bold: test error)", fontsize=9)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("top-1 error (%)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
