"""Reporting benchmark results: a text or markdown table, JSON, CSV, a plot and one-line summaries.

The measuring is :mod:`reszoo.bench.measuring`'s; this module only presents its :class:`~reszoo.bench.BenchResult`
rows, so the CLI, the benchmark scripts and users' notebooks print and save them the same way.
A row's ``warnings`` (too few runs, a large spread, a slow dtype) appear in the table's ``note``
column and in full in the JSON and CSV. Files are replaced atomically, so a sweep can rewrite
them after every row and an interrupted sweep leaves the rows it measured.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from reszoo.bench.machine import environment
from reszoo.bench.measuring import BenchResult
from reszoo.errors import InvalidArgumentError
from reszoo.utils.fileio import atomic_path
from reszoo.utils.text import format_table, human

__all__ = ["REPORT", "notes", "plot", "summary_line", "to_csv", "to_json", "to_table"]

# What marks a file as a benchmark report: the JSON's "report" value, the PNG's Software text. The
# command line replaces an existing file only when it is such a report (reszoo.cli._common).
REPORT = "reszoo bench"


def to_table(results: Sequence[BenchResult], *, markdown: bool = False) -> str:
    """A readable table of results (one row each)."""
    headers = ["model", "mode", "batch", "dtype", "layout", "compile", "img/s", "ms/batch (IQR)", "GFLOP/img"]
    headers += ["TFLOP/s", "% peak", "peak MB", "note"]
    return format_table(headers, [_row(r) for r in results], markdown=markdown)


def _note(r: BenchResult) -> str:
    # The label before the colon of each warning: "few runs", "noisy", "slow dtype".
    return ", ".join(w.split(":")[0] for w in r.warnings) or "-"


def notes(results: Sequence[BenchResult]) -> list[str]:
    """The full text of every row's warnings, one line each, naming the row (printed under the table)."""
    return [f"{r.model} {r.mode} bs={r.batch_size} {r.dtype}: {w}" for r in results for w in r.warnings]


def _row(r: BenchResult) -> list[str]:
    ok = r.status == "ok"
    return [
        r.model,
        r.mode,
        str(r.batch_size),
        r.dtype,
        "NHWC" if r.channels_last else "NCHW",
        _execution(r),
        f"{r.images_per_s:,.1f}" if ok else r.status.upper(),
        _time(r) if ok else "-",
        f"{r.flops_per_image / 1e9:.3f}",
        f"{r.tflops:.3f}" if ok else "-",
        f"{100 * r.peak_fraction:.1f}" if r.peak_fraction is not None and ok else "-",
        f"{r.peak_memory_mb:,.0f}" if r.peak_memory_mb is not None else "-",
        _note(r),
    ]


def _execution(r: BenchResult) -> str:
    # How the step ran: compiled (mode) or eager, and replayed from a CUDA graph or not.
    how = r.compile or "eager"
    return f"{how}+graphs" if r.cuda_graphs else how


def _time(r: BenchResult) -> str:
    # One run has no spread: say so rather than print "(0.00)".
    spread = f"{r.time_iqr_ms:.2f}" if r.runs > 1 else f"{r.runs} run"
    return f"{r.time_median_ms:.2f} ({spread})"


def to_json(results: Sequence[BenchResult], path: str | None = None, *, env: dict[str, Any] | None = None) -> str:
    """``{"report": "reszoo bench", "environment": {...}, "results": [...]}`` as JSON text, also written to
    ``path`` (atomically) if given. The ``report`` key marks the file as a benchmark report, which
    ``reszoo bench --json`` may replace (it replaces no other file).

    Without ``env``, the environment is that of the first result's device (``device_id``), so GPU
    results are not labelled with the CPU.
    """
    if env is None:
        env = environment(results[0].device_id if results else "cpu")
    text = json.dumps({"report": REPORT, "environment": env, "results": [r.as_dict() for r in results]}, indent=2)
    if path:
        with atomic_path(path) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
    return text


def to_csv(results: Sequence[BenchResult], path: str) -> None:
    """One CSV row per result with every :class:`~reszoo.bench.BenchResult` field except ``extra``
    (written atomically; ``warnings`` joined by ``"; "``)."""
    names = [f.name for f in fields(BenchResult) if f.name != "extra"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            row = r.as_dict()
            row["input_size"] = "x".join(map(str, r.input_size))
            row["warnings"] = "; ".join(r.warnings)
            writer.writerow(row)


def plot(results: Sequence[BenchResult], path: str) -> None:
    """Images/s against batch size (one line per model and mode), or against depth when each
    model has one batch size. Needs matplotlib (``pip install reszoo[plot]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise InvalidArgumentError(
            f"plot needs matplotlib, which is not installed ({err}); received path={path!r}. Install it with: "
            "pip install 'reszoo[plot]'."
        ) from err
    ok = [r for r in results if r.status == "ok"]
    series: dict[str, list[BenchResult]] = {}
    for r in ok:
        series.setdefault(f"{r.model} {r.mode}", []).append(r)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if any(len(v) > 1 for v in series.values()):
        _by_batch(ax, series)
    else:
        _by_depth(ax, ok)
    ax.set_yscale("log")
    ax.set_ylabel("images/s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    # Written atomically like the JSON and CSV; a PNG carries its mark (reszoo bench --plot may replace it).
    fmt = Path(path).suffix.lower().lstrip(".") or "png"
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=fmt, metadata={"Software": REPORT} if fmt == "png" else None)
    finally:
        plt.close(fig)


def _by_batch(ax: Any, series: dict[str, list[BenchResult]]) -> None:
    for label, rs in series.items():
        rs.sort(key=lambda r: r.batch_size)
        ax.plot([r.batch_size for r in rs], [r.images_per_s for r in rs], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")


def _by_depth(ax: Any, ok: list[BenchResult]) -> None:
    by_mode: dict[str, list[BenchResult]] = {}
    for r in ok:
        by_mode.setdefault(r.mode, []).append(r)
    for mode, rs in by_mode.items():
        xs = [_depth(r.model) for r in rs]
        ax.scatter(xs, [r.images_per_s for r in rs], label=mode)
        for x, r in zip(xs, rs, strict=True):
            ax.annotate(r.model, (x, r.images_per_s), fontsize=7)
    ax.set_xlabel("depth (layers)")


def _depth(label: str) -> int:
    digits = "".join(ch for ch in label.split(":")[-1] if ch.isdigit())
    return int(digits) if digits else 0


def summary_line(r: BenchResult) -> str:
    """One line: name, images/s, time per batch, GFLOP/image."""
    return (
        f"{r.model} {r.mode} bs={r.batch_size}: {r.images_per_s:,.1f} img/s, "
        f"{r.time_median_ms:.2f} ms/batch, {human(r.flops_per_image)}FLOP/img"
    )
