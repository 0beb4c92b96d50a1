"""Throughput benchmarks: images/s, time per batch with spread, memory, FLOPs, TFLOP/s.

The package face; the work is done in four modules, each with one job:

- :mod:`reszoo.bench.measuring`: one measurement (``measure``, ``sweep``, ``make_step``).
- :mod:`reszoo.bench.machine`: the environment a result depends on (versions, threads against
  cores, the load before the run), what a device computes fast, and the device peak table.
- :mod:`reszoo.bench.comparing`: reszoo's models beside their equivalents, timed round-robin in
  one process (``compare``, on :func:`reszoo.utils.timing.interleaved`, offered here too).
- :mod:`reszoo.bench.reporting`: results as a table, JSON, CSV, a plot.

Device policy (which device, layout, precision) is :mod:`reszoo.utils.devices`'.

Example:
    >>> import reszoo
    >>> from reszoo import bench
    >>> model = reszoo.ResNet(reszoo.ResNetConfig(depths=(1, 1, 1), widths=(4, 8, 16), stem_width=4))
    >>> r = bench.measure(model, input_size=(3, 32, 32), batch_size=2, min_run_time=0.01, warmup=1)
    >>> r.status, r.images_per_s > 0
    ('ok', True)
"""

from reszoo.bench.comparing import compare, comparison_models
from reszoo.bench.machine import PEAK_TFLOPS, environment, environment_warnings, peak_tflops_for
from reszoo.bench.measuring import (
    MAX_SPREAD,
    MIN_RUNS,
    BenchResult,
    StepSettings,
    build_step,
    default_batch_size,
    forward_flops,
    make_step,
    measure,
    median_iqr,
    sweep,
)
from reszoo.bench.reporting import plot, summary_line, to_csv, to_json, to_table
from reszoo.utils.choices import BENCH_MODES as MODES
from reszoo.utils.timing import interleaved

__all__ = [
    "MAX_SPREAD",
    "MIN_RUNS",
    "MODES",
    "PEAK_TFLOPS",
    "BenchResult",
    "StepSettings",
    "build_step",
    "compare",
    "comparison_models",
    "default_batch_size",
    "environment",
    "environment_warnings",
    "forward_flops",
    "interleaved",
    "make_step",
    "measure",
    "median_iqr",
    "peak_tflops_for",
    "plot",
    "summary_line",
    "sweep",
    "to_csv",
    "to_json",
    "to_table",
]
