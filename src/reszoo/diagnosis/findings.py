"""Findings and the diagnosis that holds them, as plain data.

Every finding has a stable id from :data:`FINDINGS` (tests and users key on them), a severity,
a message that says what the user's code does and what the reference does, the measured
evidence, and a one-line fix. The table also says where each cause was found: the paper's
section, or the public thread where users ran into it.

Severity is earned: ``"error"`` means the network or pipeline is not the named reference in a
way that changes results (another depth, no shortcuts, an ImageNet stem on 32x32 images,
augmentation at test time); ``"warning"`` a known cause of lower accuracy or a mismatch with the
reference; ``"info"`` an equivalent or harmless choice, reported so nothing is hidden.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from reszoo.diagnosis.report import format_report
from reszoo.utils.checks import check_choice, check_str

SEVERITIES = ("error", "warning", "info")
CATEGORIES = ("architecture", "initialisation", "recipe", "data")

_PAPER = "He et al. 2015 (arXiv 1512.03385)"


@dataclass(frozen=True)
class FindingSpec:
    """What a finding id means: its category, the severities it can have, a title, where the cause is documented."""

    category: str
    severities: tuple[str, ...]
    title: str
    source: str


def _spec(category: str, severities: str, title: str, source: str) -> FindingSpec:
    return FindingSpec(category, tuple(severities.split()), title, source)


FINDINGS: dict[str, FindingSpec] = {
    # -- architecture -------------------------------------------------------------------------
    "stem-imagenet-on-cifar": _spec(
        "architecture",
        "error",
        "ImageNet stem (7x7/2 conv, max-pool) on 32x32 images",
        f"{_PAPER} section 4.2 (3x3 stem, maps of 32/16/8); weiaicunzai/pytorch-cifar100#29, "
        "hpcaitech/ColossalAI-Examples#131, Spijkervet/SimCLR#8",
    ),
    "stem-mismatch": _spec(
        "architecture", "warning info", "stem differs from the reference's", f"{_PAPER} Table 1 and section 4.2"
    ),
    "shortcut-projection": _spec(
        "architecture",
        "warning",
        "projection shortcuts where the reference has parameter-free ones",
        f"{_PAPER} sections 3.3 and 4.2 (option A on CIFAR); gcr/torch-residual-networks#18, apache/mxnet#2046, "
        "akamaster/pytorch_resnet_cifar10#40",
    ),
    "shortcut-zero-pad": _spec(
        "architecture",
        "warning",
        "zero-padding shortcuts where the reference projects",
        f"{_PAPER} section 4.1, Table 3 (option B beats A on ImageNet)",
    ),
    "shortcut-variant": _spec(
        "architecture",
        "info",
        "the same shortcut option, built another way",
        "apache/mxnet#2046 (2x2 parameter-free shortcut); He et al. 2019 'Bag of Tricks' (ResNet-D)",
    ),
    "shortcut-missing": _spec(
        "architecture",
        "error",
        "no shortcut where the reference adds one",
        f"{_PAPER} section 4.1, Fig. 4 and 6 (plain nets)",
    ),
    "shortcut-extra": _spec(
        "architecture", "warning", "shortcuts in a plain reference network", f"{_PAPER} section 4.1"
    ),
    "stride-placement": _spec(
        "architecture",
        "warning",
        "stride on another convolution of the block (v1 vs v1.5)",
        "NVIDIA DeepLearningExamples resnet50v1.5 README; apache/mxnet#8740; pytorch/vision#191",
    ),
    "stage-stride": _spec(
        "architecture",
        "warning",
        "a stage downsamples where the reference does not (or the reverse)",
        f"{_PAPER} Table 1, section 4.2; tinygrad/tinygrad#770",
    ),
    "depth-mismatch": _spec(
        "architecture", "error", "blocks per stage differ", f"{_PAPER} section 4.2 (6n+2), Table 1"
    ),
    "width-mismatch": _spec(
        "architecture", "error", "channel widths differ", f"{_PAPER} section 4.2 (16/32/64), Table 1"
    ),
    "block-type": _spec("architecture", "error", "basic vs bottleneck block", f"{_PAPER} section 4.1, Fig. 5, Table 1"),
    "activation-order": _spec(
        "architecture",
        "warning",
        "ReLU before the addition, none after it, or another order",
        f"{_PAPER} section 3.2, Fig. 2 (the second ReLU after the addition); He et al. 2016 (arXiv 1603.05027)",
    ),
    "activation-type": _spec("architecture", "warning", "another activation than ReLU", f"{_PAPER} section 3.2"),
    "norm-missing": _spec(
        "architecture",
        "warning",
        "a convolution without BatchNorm",
        f"{_PAPER} section 3.4 (BN after each convolution)",
    ),
    "norm-type": _spec("architecture", "warning", "another normalisation than BatchNorm", f"{_PAPER} section 3.4"),
    "conv-bias": _spec(
        "architecture",
        "info",
        "convolution bias before BatchNorm",
        "Ioffe & Szegedy 2015 (arXiv 1502.03167) section 3.2: BN's beta subsumes the bias",
    ),
    "dropout": _spec(
        "architecture", "warning", "dropout in the network", f"{_PAPER} sections 3.4 and 4.2 (no dropout)"
    ),
    "head-mismatch": _spec(
        "architecture",
        "warning info",
        "classifier head differs",
        f"{_PAPER} section 3.3 and 4.2 (global average pool, one fc)",
    ),
    "param-count": _spec(
        "architecture",
        "warning info",
        "parameter count differs",
        f"{_PAPER} section 4.2 (0.27M ... 19.4M); reszoo's exact counts",
    ),
    # -- initialisation -----------------------------------------------------------------------
    "init-conv": _spec(
        "initialisation",
        "warning info",
        "convolutions not He-initialised",
        f"{_PAPER} section 3.4 (init of He et al. 2015b); BayesWatch/tf-variational-dropout#6, "
        "benchopt/benchmark_resnet_classif#30",
    ),
    "init-norm": _spec(
        "initialisation",
        "warning info",
        "BatchNorm not initialised to scale 1, shift 0",
        "pytorch/pytorch#12259 (U(0,1) scales before PyTorch 1.1); zero-init: pytorch/vision#498, "
        "Goyal et al. 2017 section 5.1",
    ),
    "bn-momentum": _spec(
        "initialisation",
        "error warning info",
        "BatchNorm momentum in another convention",
        "pytorch/examples#289 (PyTorch 0.1 = TF 0.9), Cadene/pretrained-models.pytorch#5, pytorch/vision#8250",
    ),
    "bn-eps": _spec("initialisation", "info", "BatchNorm epsilon differs", "Keras BatchNormalization (epsilon 1e-3)"),
    # -- recipe ------------------------------------------------------------------------------
    "optimizer-type": _spec(
        "recipe", "warning", "not SGD with momentum", f"{_PAPER} sections 3.4 and 4.2; keras-team/keras#8231"
    ),
    "learning-rate": _spec(
        "recipe",
        "warning info",
        "initial learning rate differs (after linear scaling with the batch)",
        f"{_PAPER} sections 3.4 and 4.2; facebookarchive/fb.resnet.torch#89; Goyal et al. 2017 (linear scaling)",
    ),
    "momentum": _spec("recipe", "warning info", "momentum differs", f"{_PAPER} sections 3.4 and 4.2 (0.9)"),
    "weight-decay": _spec(
        "recipe", "warning info", "weight decay differs", f"{_PAPER} sections 3.4 and 4.2 (1e-4); keras-team/keras#8231"
    ),
    "weight-decay-norm": _spec(
        "recipe",
        "info",
        "no weight decay on BatchNorm and biases",
        "apache/mxnet#2046 (decay on all parameters was needed); tensorflow/models#2755",
    ),
    "params-not-optimized": _spec(
        "recipe",
        "warning",
        "parameters missing from the optimizer",
        "torch.optim docs: build the optimizer after the model is complete",
    ),
    "lr-schedule": _spec(
        "recipe",
        "warning info",
        "learning-rate schedule differs",
        f"{_PAPER} section 4.2 (/10 at 32k and 48k of 64k); IntelLabs/distiller#14, "
        "akamaster/pytorch_resnet_cifar10#29, tensorflow/models#5243",
    ),
    "training-length": _spec(
        "recipe",
        "warning",
        "training is much shorter than the paper's",
        f"{_PAPER} section 4.2 (64k iterations); IntelLabs/distiller#14, D-X-Y/NAS-Bench-201#23",
    ),
    "warmup-missing": _spec(
        "recipe",
        "warning",
        "no warm-up for ResNet-110/1202",
        f"{_PAPER} section 4.2 (0.01 until training error < 80%, ~400 iterations); facebookarchive/fb.resnet.torch#177",
    ),
    "batch-size": _spec(
        "recipe",
        "warning info",
        "batch size differs",
        f"{_PAPER} section 4.2 (128); keras-team/keras#10632, fb.resnet.torch#89",
    ),
    # -- data ---------------------------------------------------------------------------------
    "normalization": _spec(
        "data",
        "error warning info",
        "normalisation constants differ from the data's, the weights', or between train and eval",
        "kuangliu/pytorch-cifar#16, akamaster/pytorch_resnet_cifar10#9, gpleiss/efficient_densenet_pytorch#68, "
        "chenyaofo/pytorch-cifar-models#8",
    ),
    "augmentation-missing": _spec(
        "data",
        "warning",
        "random crop or flip missing from training",
        f"{_PAPER} sections 3.4 and 4.2 (pad 4, random 32x32 crop, flip); keras-team/keras#8231, apache/mxnet#2046",
    ),
    "augmentation-differs": _spec(
        "data", "info", "augmentation differs from the paper's", "keras-team/keras#8231 (3.2-px shifts, fill mode)"
    ),
    "augmentation-in-eval": _spec(
        "data",
        "error",
        "random augmentation in the evaluation transform",
        f"{_PAPER} section 4.2 ('we only evaluate the single view of the original 32x32 image')",
    ),
    "input-size": _spec(
        "data",
        "warning info",
        "the model sees another input size than the reference's",
        f"{_PAPER} sections 3.4 and 4.2 (224 crops; 32x32); pytorch/vision#222",
    ),
}


@dataclass(frozen=True)
class Finding:
    """One difference from the reference.

    Attributes:
        id: a stable id from :data:`FINDINGS`, e.g. ``"shortcut-projection"``.
        severity: ``"error"``, ``"warning"`` or ``"info"``.
        message: what the user's code does and what the reference does.
        evidence: what was measured (JSON-ready): shapes, counts, std ratios, learning rates, module names.
        fix: the one-line fix.
    """

    id: str
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""

    def __post_init__(self) -> None:
        check_choice("id", self.id, FINDINGS)
        check_choice("severity", self.severity, FINDINGS[self.id].severities)
        check_str("message", self.message)

    @property
    def category(self) -> str:
        return FINDINGS[self.id].category

    @property
    def source(self) -> str:
        return FINDINGS[self.id].source

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "category": self.category,
            "message": self.message,
            "evidence": self.evidence,
            "fix": self.fix,
            "source": self.source,
        }


def findings_table() -> str:
    """The table of ids for docs/diagnose.md, generated from :data:`FINDINGS` (a test keeps the page in step)."""
    rows = ["| id | category | severity | what | where the cause is documented |", "|---|---|---|---|---|"]
    for fid, spec in FINDINGS.items():
        rows.append(f"| `{fid}` | {spec.category} | {', '.join(spec.severities)} | {spec.title} | {spec.source} |")
    return "\n".join(rows)


def severity_rank(severity: str) -> int:
    """0 for errors, 1 for warnings, 2 for info: the report's order."""
    return SEVERITIES.index(severity)


@dataclass
class Diagnosis:
    """What :func:`reszoo.diagnose` found: the findings, most severe first, and how they were found.

    Attributes:
        model: the user's model class name.
        reference: the reference's name (``"resnet56"``) or class.
        findings: the findings, errors first, then warnings, then info.
        notes: what was not checked and why (no optimizer given, hooks-only trace, ...).
        trace: how the model was run: method, input shape, seconds, modules hooked.
        structure: the user's network and the reference's as read from their traces.
        seconds: the whole diagnosis's wall time.
    """

    model: str
    reference: str
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)
    trace: dict[str, Any] = field(default_factory=dict)
    structure: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.findings = sorted(self.findings, key=lambda f: (severity_rank(f.severity), f.category != "architecture"))

    def of(self, severity: str) -> list[Finding]:
        check_choice("severity", severity, SEVERITIES)
        return [f for f in self.findings if f.severity == severity]

    @property
    def errors(self) -> list[Finding]:
        return self.of("error")

    @property
    def warnings(self) -> list[Finding]:
        return self.of("warning")

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings and info may remain)."""
        return not self.errors

    def ids(self, severity: str | None = None) -> set[str]:
        """The ids found (of one severity, or all)."""
        return {f.id for f in self.findings if severity is None or f.severity == severity}

    def get(self, finding_id: str) -> list[Finding]:
        """The findings with ``finding_id`` (an id can appear once per kind of evidence)."""
        check_choice("finding_id", finding_id, FINDINGS)
        return [f for f in self.findings if f.id == finding_id]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "reference": self.reference,
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
            "trace": self.trace,
            "structure": self.structure,
            "seconds": round(self.seconds, 3),
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def counts(self) -> dict[str, int]:
        """How many findings of each severity, errors first."""
        return {s: len(self.of(s)) for s in SEVERITIES}

    def report(self) -> str:
        """The readable report: most severe first, each with the evidence, the fix and the source."""
        return format_report(self)

    def __str__(self) -> str:
        return self.report()
