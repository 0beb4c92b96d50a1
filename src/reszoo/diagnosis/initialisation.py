"""Initialisation findings, read from the weights as built.

Convolutions: the standard deviation of each weight against He et al.'s ``sqrt(2 / n)`` with
``n`` the fan-in (``k*k*in``, the forward-pass form) or the fan-out (``k*k*out``, the
backward-pass form, torchvision's and reszoo's): both count as the paper's. PyTorch's default
``kaiming_uniform_(a=sqrt(5))`` gives ``1/sqrt(6)`` = 0.41 of the fan-in form. The classifier is
not judged (torchvision and reszoo keep PyTorch's default for it). BatchNorm: scale 1 and shift 0;
a zero scale on a block's last norm ("zero-init residual", Goyal et al. 2017) is equivalent.
Weights that were trained (BatchNorm statistics already updated) are not judged.
"""

from __future__ import annotations

import math
from collections import Counter

import torch
from torch import nn

from reszoo.diagnosis.findings import Finding
from reszoo.diagnosis.reference import Reference
from reszoo.diagnosis.structure import Structure

DEFAULT_RATIO = 1 / math.sqrt(6)  # PyTorch's default conv init as a fraction of He (fan-in)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def is_trained(model: nn.Module) -> bool:
    """True when BatchNorm statistics have been updated: the weights are not fresh from their init."""
    for m in model.modules():
        if isinstance(m, _NORMS) and m.track_running_stats and m.running_mean is not None:
            if m.running_mean.is_meta:
                return False
            if (m.num_batches_tracked is not None and int(m.num_batches_tracked) > 0) or bool(
                m.running_mean.abs().max() > 0 or (m.running_var - 1).abs().max() > 0
            ):
                return True
    return False


def classify_conv(weight: torch.Tensor) -> tuple[str, float, float]:
    """``("he", ...)``, ``("he-uniform", ...)``, ``("pytorch-default", ...)``, ``("xavier", ...)``,
    ``("zero", ...)`` or ``("other", ...)``, with the std as a fraction of He's fan-in and fan-out forms."""
    w = weight.detach().float().flatten().cpu()
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    std = float(w.std()) if w.numel() > 1 else 0.0
    r_in, r_out = std / math.sqrt(2 / fan_in), std / math.sqrt(2 / fan_out)
    if std == 0:
        return "zero", r_in, r_out
    tol = max(0.1, 4 / math.sqrt(2 * w.numel()))  # ~4 standard errors of a sample std
    # A Gaussian has kurtosis 3, a uniform 1.8 (standard error about sqrt(24 / n): 0.35 at n = 200).
    kurtosis = float(((w - w.mean()) ** 4).mean() / std**4) if w.numel() >= 200 else 3.0
    uniform = kurtosis < 2.2
    # PyTorch's default first: a uniform 0.41x He (fan-in) can also be 1x He (fan-out) when
    # out = 6 x in, as in a 3->16 stem, and the default is by far the commoner of the two.
    if abs(r_in / DEFAULT_RATIO - 1) <= tol and (uniform or abs(r_out - 1) > tol):
        return "pytorch-default", r_in, r_out
    if abs(r_in - 1) <= tol or abs(r_out - 1) <= tol:
        return ("he-uniform" if uniform else "he"), r_in, r_out
    if abs(std / math.sqrt(2 / (fan_in + fan_out)) - 1) <= tol:
        return "xavier", r_in, r_out
    return "other", r_in, r_out


_WORDS = {
    "pytorch-default": "PyTorch's default kaiming_uniform_(a=sqrt(5)), std 0.41x He",
    "xavier": "Xavier/Glorot (std sqrt(2/(fan_in+fan_out)))",
    "zero": "zeros",
    "other": "neither He nor a known default",
}


def conv_findings(model: nn.Module, structure: Structure) -> list[Finding]:
    classifier = {o.module for o in structure.linears}  # a 1x1 conv classifier is not judged, as a linear is not
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd) and n not in classifier]
    if not convs:
        return []
    kinds = {n: classify_conv(m.weight) for n, m in convs}
    counts = Counter(k for k, _, _ in kinds.values())
    bad = [n for n, (k, _, _) in kinds.items() if k not in ("he", "he-uniform")]
    ratios = sorted(r for _, r, _ in kinds.values())
    evidence = {
        "convs": len(convs),
        "kinds": dict(counts),
        "median_std_over_he_fan_in": round(ratios[len(ratios) // 2], 3),
        "examples": {
            n: {"kind": k, "std/he_fan_in": round(ri, 3), "std/he_fan_out": round(ro, 3)}
            for n, (k, ri, ro) in list(kinds.items())[:3]
        },
    }
    if bad:
        main = Counter(kinds[n][0] for n in bad).most_common(1)[0][0]
        return [
            Finding(
                "init-conv",
                "warning",
                f"{len(bad)} of your {len(convs)} convolutions start from {_WORDS[main]}; the paper initialises "
                "every convolution from a zero-mean Gaussian with std sqrt(2/n) (He et al. 2015b).",
                {**evidence, "not_he": bad[:8]},
                "for m in model.modules(): if isinstance(m, nn.Conv2d): "
                "nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')",
            )
        ]
    if counts.get("he-uniform"):
        return [
            Finding(
                "init-conv",
                "info",
                f"{counts['he-uniform']} convolutions are He-initialised from a uniform distribution (same std); "
                "the paper samples a Gaussian. Equivalent in practice.",
                evidence,
                "Nothing to fix; nn.init.kaiming_normal_ gives the paper's Gaussian.",
            )
        ]
    return []


def _last_norms(structure: Structure) -> set[str]:
    names = set()
    for b in structure.blocks:
        norms = [o for o in b.branch if o.kind == "norm"]
        if norms:
            names.add(norms[-1].module)
    return names


def norm_init_findings(model: nn.Module, structure: Structure) -> list[Finding]:
    last = _last_norms(structure)
    zeroed, uniform, other = [], [], []
    for name, m in model.named_modules():
        if not isinstance(m, (*_NORMS, nn.GroupNorm)) or getattr(m, "weight", None) is None:
            continue
        w, b = m.weight.detach().float(), m.bias.detach().float()
        if bool((w == 1).all()) and bool((b == 0).all()):
            continue
        if bool((w == 0).all()) and bool((b == 0).all()) and name in last:
            zeroed.append(name)
        elif bool((b == 0).all()) and w.numel() > 4 and float(w.min()) >= 0 and float(w.max()) <= 1:
            uniform.append(name)
        else:
            other.append(name)
    out = []
    if uniform or other:
        what = (
            "scales drawn from U(0, 1), PyTorch's default before 1.1"
            if uniform
            else "scales other than 1 or shifts other than 0"
        )
        out.append(
            Finding(
                "init-norm",
                "warning",
                f"{len(uniform) + len(other)} of your norms start with {what}; the paper's start at scale 1, shift 0.",
                {"uniform": uniform[:8], "other": other[:8]},
                "nn.init.ones_(bn.weight); nn.init.zeros_(bn.bias) for every BatchNorm.",
            )
        )
    if zeroed:
        out.append(
            Finding(
                "init-norm",
                "info",
                f"The last norm of {len(zeroed)} residual branches starts at scale 0 (zero-init residual, Goyal et "
                "al. 2017): each block starts as its shortcut. Not in the paper; equivalent or slightly better.",
                {"zero_scale": zeroed[:8]},
                "Nothing to fix (zero_init_residual=True in torchvision and reszoo).",
            )
        )
    return out


def momentum_findings(model: nn.Module, ref_model: nn.Module) -> list[Finding]:
    ref = next((m for m in ref_model.modules() if isinstance(m, _NORMS)), None)
    ref_momentum, ref_eps = (ref.momentum, ref.eps) if ref is not None else (0.1, 1e-5)
    norms = [(n, m) for n, m in model.named_modules() if isinstance(m, _NORMS)]
    momenta = Counter(m.momentum for _, m in norms)
    out = []
    for momentum, count in momenta.items():
        finding = _momentum_finding(momentum, count, len(norms), ref_momentum)
        if finding:
            out.append(finding)
    untracked = [n for n, m in norms if not m.track_running_stats]
    if untracked:
        out.append(
            Finding(
                "bn-momentum",
                "warning",
                f"{len(untracked)} of your BatchNorms keep no running statistics (track_running_stats=False): in "
                "evaluation they normalise each test batch with its own statistics, so a prediction depends on the "
                "other images of its batch.",
                {"norms": untracked[:8]},
                "nn.BatchNorm2d(c) with the default track_running_stats=True.",
            )
        )
    eps = Counter(m.eps for _, m in norms if m.eps != ref_eps)
    if eps:
        out.append(
            Finding(
                "bn-eps",
                "info",
                f"{sum(eps.values())} of your BatchNorms use eps {sorted(eps)}; the reference uses {ref_eps} "
                "(PyTorch's default; Keras uses 1e-3). A small change to the normalisation.",
                {"eps": {str(k): v for k, v in eps.items()}, "reference": ref_eps},
                f"nn.BatchNorm2d(c, eps={ref_eps}).",
            )
        )
    return out


def _momentum_finding(momentum: float | None, count: int, total: int, ref: float) -> Finding | None:
    evidence = {"momentum": momentum, "norms": count, "of": total, "reference": ref}
    fix = f"nn.BatchNorm2d(c, momentum={ref}) (PyTorch's convention: the weight of the new batch)."
    if momentum is None:
        return Finding(
            "bn-momentum",
            "warning",
            f"{count} of your BatchNorms have momentum=None: a cumulative average over all of training, weighted "
            "equally, so statistics from early (very different) weights stay in the evaluation statistics.",
            evidence,
            fix,
        )
    if momentum == 0:
        return Finding(
            "bn-momentum",
            "error",
            f"{count} of your BatchNorms have momentum=0: their running statistics never move from mean 0, var 1, "
            "so evaluation normalises with the wrong statistics.",
            evidence,
            fix,
        )
    if momentum >= 0.5:
        return Finding(
            "bn-momentum",
            "warning",
            f"{count} of your BatchNorms have momentum={momentum}. In PyTorch momentum is the weight of the *new* "
            f"batch: running = {1 - momentum:.2g} x running + {momentum} x batch, so the statistics used in "
            f"evaluation are those of the last few batches. Keras' momentum={momentum} means PyTorch's "
            f"{1 - momentum:.2g}.",
            evidence,
            fix,
        )
    if momentum != ref:
        return Finding(
            "bn-momentum",
            "info",
            f"{count} of your BatchNorms have momentum={momentum} (reference {ref}): the running statistics average "
            f"over about {1 / momentum:.0f} batches instead of {1 / ref:.0f}. Harmless for long training.",
            evidence,
            fix,
        )
    return None


def init_findings(model: nn.Module, structure: Structure, reference: Reference, notes: list[str]) -> list[Finding]:
    """``init-conv``, ``init-norm``, ``bn-momentum``, ``bn-eps`` for the user's model."""
    out = momentum_findings(model, reference.model)
    if is_trained(model):
        notes.append("weights are trained (BatchNorm statistics have moved): initialisation not judged")
        return out
    return conv_findings(model, structure) + norm_init_findings(model, structure) + out
