"""The named choices reszoo accepts, defined once, as plain data (no torch, no numpy).

The library checks its arguments against these tuples and the ``reszoo`` command line offers the
same tuples as ``choices=`` and in its help, so building the parser (``reszoo --help``) imports
no torch, and a new choice is added in one place. Each tuple lists the default first where the
library has one.

A dataset id table lives with the facts about each dataset (:mod:`reszoo.data.constants`), and a
recipe's ``data`` choices with the recipe (:data:`reszoo.train.recipes.DATASETS`): both are plain
data too, in packages above this one.

Example:
    >>> DEVICES
    ('auto', 'cpu', 'cuda', 'mps')
"""

from __future__ import annotations

__all__ = [
    "BENCH_COMPARISONS",
    "BENCH_MODES",
    "DEVICES",
    "DEVICE_TYPES",
    "DTYPES",
    "EVAL_DATASETS",
    "EVAL_PROTOCOLS",
    "EVAL_SPLITS",
    "EXPERIMENTS",
    "EXPORT_FORMATS",
    "EXPORT_SUFFIXES",
    "SCHEDULES",
]

# -- devices and arithmetic (reszoo.utils.devices) --------------------------------------------------

# The device types reszoo runs on; a device is one of them, optionally with an index ("cuda:1").
DEVICE_TYPES = ("cpu", "cuda", "mps")
# What a device argument takes by name: "auto" (CUDA, then MPS, then CPU) or a device type.
DEVICES = ("auto", *DEVICE_TYPES)
# The arithmetic of a measured or trained step (reszoo.utils.devices.precision): IEEE fp32, TF32
# matmuls and convolutions (NVIDIA Ampere or newer), or bf16 / fp16 autocast.
DTYPES = ("fp32", "tf32", "bf16", "fp16")

# -- benchmarks (reszoo.bench) ----------------------------------------------------------------------

# What one benchmark row times: a forward pass, or a training step (forward, backward, SGD step).
BENCH_MODES = ("infer", "train")
# What `reszoo bench --compare` sets a model beside: torchvision's equivalent (the reference CIFAR
# net for CIFAR models; reszoo.bench.comparing), or the same model in ONNX Runtime
# (reszoo.bench.ort_compare).
BENCH_COMPARISONS = ("torchvision", "timm", "onnxruntime")

# -- inference (reszoo.infer) -----------------------------------------------------------------------

# What reszoo.infer.export writes: an ONNX file, a torch.export program, a TorchScript module.
EXPORT_FORMATS = ("onnx", "pt2", "torchscript")
# The format an output file's suffix names when none is given (torch.jit.save's examples write `.pt`).
EXPORT_SUFFIXES = {".onnx": "onnx", ".pt2": "pt2", ".pt": "torchscript"}
# The test sets reszoo.infer.evaluation reads by name: reszoo.data.constants' dataset ids, and an
# image folder.
EVAL_DATASETS = ("cifar10", "cifar100", "imagenet", "folder")
# The split each of them is evaluated on unless told otherwise (first), and the others it has.
EVAL_SPLITS = {
    "cifar10": ("test", "train"),
    "cifar100": ("test", "train"),
    "imagenet": ("val", "train"),
    "folder": ("val", "train", "all"),
}
# How an image becomes the model's input at test time (reszoo.infer.inputs): one centre crop, ten
# crops averaged, or the paper's fully-convolutional multi-scale test.
EVAL_PROTOCOLS = ("center-crop", "ten-crop", "multi-scale")

# -- training (reszoo.train) ------------------------------------------------------------------------

# A recipe's learning-rate schedules (reszoo.train.recipes.learning_rate).
SCHEDULES = ("step", "plateau", "cosine")
# The paper's experiments that reszoo.train.experiment reproduces (degradation: Fig. 6).
EXPERIMENTS = ("degradation",)
