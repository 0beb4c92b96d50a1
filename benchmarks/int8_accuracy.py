"""int8 on real images (issue 24): where the error enters, what each fix gains, what a user gets.

    python benchmarks/int8_accuracy.py layers --model resnet20         # per-layer SQNR table (markdown)
    python benchmarks/int8_accuracy.py sensitivity --model resnet20    # logit SQNR with one layer kept in fp32
    python benchmarks/int8_accuracy.py ablation --model resnet56 --seeds 0 1 2 3
    python benchmarks/int8_accuracy.py calibration-size --model resnet56
    python benchmarks/int8_accuracy.py final                          # optimize_for_inference(..., check=)
    python benchmarks/int8_accuracy.py bf16                           # bf16 on the same held-out images
    python benchmarks/int8_accuracy.py qat --model resnet56           # + fine-tuning by distillation (QAT)
    python benchmarks/int8_accuracy.py qat-compile --model resnet56 --seeds 0 --steps 20   # its compiled speed

Data: the original CIFAR-10 ResNet-20/56 weights (akamaster) and 2,000 real CIFAR-10 images (a
JPEG copy, 200 per class) from ``../shared/data`` beside the checkout, or ``$RESZOO_SHARED_DATA``.
Each seed splits them, stratified by class, into ``--calibration-per-class`` images per class to
calibrate on (50: 500 images) and the rest to measure on (1,500), so nothing is measured on
the images it was calibrated on. ``ablation`` also measures on three more views of each held-out
image (mirrored, shifted 2 pixels, both), as CIFAR training augments: 6,000 comparisons per seed
instead of 1,500, because a few changed predictions in 1,500 are too few to tell two recipes apart.

The ablations build each variant's graphs here from torchao's pieces and reszoo's
(:mod:`reszoo.infer.int8recipe`, :mod:`reszoo.infer.biascorrection`) and measure the reference (uncompiled)
int8 graph: its predictions match the compiled model's (logits within 43-48 dB of each other,
the same changed predictions give or take one). ``final`` measures what users get: the compiled
``optimize_for_inference(model, dtype="int8", calibration=..., check=...)``.

One torch thread by default (the machine is shared); results go to
``benchmarks/results/int8-accuracy/<command>-<model>.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.fx import GraphModule, Interpreter, Node

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "int8-accuracy"
CHECKPOINTS = {"resnet20": "akamaster-resnet20-12fca82f.th", "resnet56": "akamaster-resnet56-4bfd9763.th"}
IMAGES = "cifar10-jpeg-train-2000.npz"
ATEN = torch.ops.aten
LAYERS = (ATEN.conv2d.default, ATEN.linear.default)


# ---------------------------------------------------------------------------------------------- data
def shared_data() -> Path:
    """``$RESZOO_SHARED_DATA``, or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("RESZOO_SHARED_DATA") or ROOT.parent / "shared" / "data")


def load_model(name: str) -> torch.nn.Module:
    import reszoo

    return reszoo.load_pretrained(f"{name}-cifar10", checkpoint=shared_data() / CHECKPOINTS[name]).eval()


def load_images() -> tuple[np.ndarray, np.ndarray]:
    """``(x uint8 (N, 32, 32, 3) RGB, y int64 (N,))``."""
    with np.load(shared_data() / IMAGES) as z:
        return z["x"], z["y"]


def preprocess(model: torch.nn.Module, x: np.ndarray) -> torch.Tensor:
    """The weights' evaluation pre-processing (ImageNet mean/std) on a batch of HWC uint8 images."""
    return model.pretrained_weights.transforms()(torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2))


def stratified_split(y: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration indices, held-out indices): ``per_class`` random images of each class, the rest."""
    rng = np.random.default_rng(seed)
    calibrate: list[int] = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        calibrate += rng.choice(idx, size=per_class, replace=False).tolist()
    calibrate_idx = np.sort(np.array(calibrate))
    return calibrate_idx, np.setdiff1d(np.arange(len(y)), calibrate_idx)


def views(x: np.ndarray) -> np.ndarray:
    """Each image, mirrored, shifted by (2, 2) with black fill, and mirrored and shifted by (-2, -2)."""

    def shift(a: np.ndarray, d: int) -> np.ndarray:
        out = np.zeros_like(a)
        if d > 0:
            out[:, d:, d:] = a[:, :-d, :-d]
        else:
            out[:, :d, :d] = a[:, -d:, -d:]
        return out

    mirrored = x[:, :, ::-1]
    return np.concatenate([x, mirrored, shift(x, 2), shift(mirrored, -2)])


# ------------------------------------------------------------------------------------ variants
def mse_observer() -> Any:
    """torchao's HistogramObserver with the range that minimises the squared error of the actual uint8 grid.

    torchao's search charges every value half a step of rounding error (it models levels at the
    centres of 256 bins), so the many exact zeros after a ReLU look costly and it narrows the range
    (up to 6 dB of activation SQNR lost on ResNet-56's layer2.6). This one models levels at
    ``(q - zero_point) * scale`` and tries 256 ranges (x 256 lower bounds where values are signed).
    Measured: higher SQNR, and more changed predictions; not used by reszoo.
    """
    from torchao.quantization.pt2e.observer import HistogramObserver

    class _MSE(HistogramObserver):
        def _non_linear_param_search(self) -> tuple[torch.Tensor, torch.Tensor]:
            lo, hi = min(self.min_val.item(), 0.0), max(self.max_val.item(), 0.0)
            edges = torch.linspace(self.min_val.item(), self.max_val.item(), self.bins + 1, dtype=torch.float64)
            x, c = (edges[:-1] + edges[1:]) / 2, self.histogram.double()
            x, c = x[c > 0], c[c > 0]
            f = torch.linspace(1 / 256, 1, 256, dtype=torch.float64)
            lows = lo * f if lo < 0 else torch.zeros(1, dtype=torch.float64)
            highs = hi * f if hi > 0 else torch.zeros(1, dtype=torch.float64)
            grid_lo, grid_hi = (g.reshape(-1) for g in torch.meshgrid(lows, highs, indexing="ij"))
            best, best_err = (lo, hi), math.inf
            for s in range(0, grid_lo.numel(), 512):
                low, high = grid_lo[s : s + 512, None], grid_hi[s : s + 512, None]
                scale = ((high - low) / (self.quant_max - self.quant_min)).clamp_min(float(self.eps))
                zp = (self.quant_min - torch.round(low / scale)).clamp(self.quant_min, self.quant_max)
                xq = (torch.clamp(torch.round(x / scale) + zp, self.quant_min, self.quant_max) - zp) * scale
                err = ((xq - x) ** 2 * c).sum(1)
                i = int(err.argmin())
                if err[i] < best_err:
                    best_err, best = err[i].item(), (low[i, 0].item(), high[i, 0].item())
            return torch.tensor(best[0]), torch.tensor(best[1])

    return _MSE


@dataclasses.dataclass(frozen=True)
class Variant:
    """One recipe: torchao's X86 default with some of reszoo's changes, or with another choice."""

    observer: str = "histogram"  # histogram (torchao's), minmax, mse
    weights: str = "per_channel"  # per_channel (torchao's), per_tensor
    fp32_layers: str = "none"  # none, stem, auto (reszoo: the layers reading the image and the head)
    share_padding: bool = False
    bias_correction: bool = False
    also_fp32: tuple[str, ...] = ()  # module names kept in fp32 besides fp32_layers (sensitivity)


VARIANTS = {
    "torchao default": Variant(),
    "min-max observer": Variant(observer="minmax"),
    "MSE observer": Variant(observer="mse"),
    "per-tensor weights": Variant(weights="per_tensor"),
    "stem fp32": Variant(fp32_layers="stem"),
    "stem + head fp32": Variant(fp32_layers="auto"),
    "shared pad scale": Variant(share_padding=True),
    "bias correction": Variant(bias_correction=True),
    "stem + head fp32, shared pad": Variant(fp32_layers="auto", share_padding=True),
    "stem + head fp32, shared pad, MSE observer": Variant(fp32_layers="auto", share_padding=True, observer="mse"),
    "reszoo (stem + head fp32, shared pad, bias correction)": Variant(
        fp32_layers="auto", share_padding=True, bias_correction=True
    ),
}
RESZOO = "reszoo (stem + head fp32, shared pad, bias correction)"


def quantization_config(variant: Variant) -> Any:
    from torchao.quantization.pt2e.observer import MinMaxObserver
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        QuantizationConfig,
        get_default_x86_inductor_quantization_config,
    )

    base = get_default_x86_inductor_quantization_config()
    act, weight = base.input_activation, base.weight
    observers = {"minmax": MinMaxObserver, "mse": mse_observer()}
    if variant.observer in observers:
        act = dataclasses.replace(act, observer_or_fake_quant_ctr=observers[variant.observer].with_args(eps=2**-12))
    if variant.weights == "per_tensor":
        weight = dataclasses.replace(
            weight,
            qscheme=torch.per_tensor_symmetric,
            ch_axis=None,
            observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12),
        )
    return QuantizationConfig(act, act, weight, None, False)


def build(model: torch.nn.Module, calibration: torch.Tensor, variant: Variant) -> tuple[GraphModule, GraphModule]:
    """(fp32 graph, int8 reference graph) of ``variant``, as reszoo.infer.quantize.quantize_graphs builds reszoo's."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from reszoo.infer import biascorrection, int8recipe
    from reszoo.infer.quantize import fp32_graph

    net = copy.deepcopy(model).eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    with torch.no_grad():
        exported = torch.export.export(net, (calibration[:2],), dynamic_shapes=({0: batch},), strict=True)
    layers = {"none": (), "stem": ("conv1",), "auto": int8recipe.sensitive_layers(exported.module())}
    quantizer = int8recipe.make_quantizer(
        fp32_layers=(*layers[variant.fp32_layers], *variant.also_fp32),
        share_padding=variant.share_padding,
        config=quantization_config(variant),
    )
    observed = prepare_pt2e(exported.module(), quantizer)
    batches = list(calibration.split(100))
    with torch.no_grad():
        for x in batches:
            observed(x)
    reference = fp32_graph(observed)
    converted = convert_pt2e(observed)
    if variant.bias_correction:
        images = biascorrection.correction_images(batches)
        biascorrection.correct_biases(converted, biascorrection.channel_means(reference, images), images)
    return reference, converted


# ------------------------------------------------------------------------- QAT by distillation
@dataclasses.dataclass(frozen=True)
class Distill:
    """Quantization-aware fine-tuning of reszoo's recipe on the calibration images, the fp32 model as teacher.

    The model is exported in train mode, prepared with ``prepare_qat_pt2e`` (reszoo's quantizer with a
    QAT config: fake quantization in place of observers; BatchNorm kept beside each convolution
    until ``convert_pt2e`` folds it), its activation ranges calibrated as ``prepare_pt2e``'s would be,
    then every parameter is trained for ``steps`` steps to match the fp32 model's logits on
    augmented calibration images (random flip, 4-pixel pad-and-crop shift); no labels.
    """

    steps: int = 300
    batch: int = 64
    lr: float = 1e-5
    optimizer: str = "adam"  # adam, sgd (momentum 0.9)
    loss: str = "mse"  # mse (logits), kl (softmax at temperature, times T^2)
    temperature: float = 4.0
    # histogram: activation ranges chosen once as prepare_pt2e's, then fixed; learned: from there, trained
    # (LSQ); moving: torchao's QAT default (moving-average min-max)
    acts: str = "histogram"
    freeze_observers: int = 0  # acts="moving": step after which the activation ranges stop moving (0: never)
    bn_train_steps: int = 0  # steps with BatchNorm in train mode (batch statistics) before it is frozen
    bias_correction: bool = True
    seed: int = 0


def qat_quantization_config(acts: str) -> Any:
    """torchao's x86 QAT config; ``acts="histogram"``: activations fake-quantized with HistogramObserver's
    ranges (as static int8 chooses them) and weights with exact per-channel min-max, not moving averages."""
    from torchao.quantization.pt2e.fake_quantize import FakeQuantize
    from torchao.quantization.pt2e.learnable_fake_quantize import LearnableFakeQuantize
    from torchao.quantization.pt2e.observer import HistogramObserver, PerChannelMinMaxObserver
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        QuantizationConfig,
        get_default_x86_inductor_quantization_config,
    )

    base = get_default_x86_inductor_quantization_config(is_qat=True)
    if acts == "moving":
        return base
    if acts == "learned":  # LSQ (Esser et al. 2020): scale and zero point trained with the weights
        fake = LearnableFakeQuantize.with_args(observer=HistogramObserver, use_grad_scaling=True)
    else:
        fake = FakeQuantize.with_args(observer=HistogramObserver, eps=2**-12)
    act = dataclasses.replace(base.input_activation, observer_or_fake_quant_ctr=fake)
    weight = dataclasses.replace(
        base.weight, observer_or_fake_quant_ctr=FakeQuantize.with_args(observer=PerChannelMinMaxObserver, eps=2**-12)
    )
    return QuantizationConfig(act, act, weight, None, True)


def qat_quantizer(fp32_layers: tuple[str, ...], acts: str) -> Any:
    """reszoo's quantizer with a QAT config.

    torchao 0.18's ``_fuse_conv_bn_qat`` fails (IndexError in ``_update_conv_input_qspec_map_after_replacement``)
    on a convolution that the quantizer marked annotated with nothing to quantize, as
    ``set_module_name_qconfig(name, None)`` does for the stem: such empty annotations are removed after
    annotating (a node without an annotation is left in fp32 just the same).
    """
    from reszoo.infer import int8recipe

    quantizer = int8recipe.make_quantizer(fp32_layers=fp32_layers, config=qat_quantization_config(acts))
    annotate = quantizer.annotate

    def annotate_without_empty(model: GraphModule) -> GraphModule:
        annotate(model)
        for n in model.graph.nodes:
            a = n.meta.get("quantization_annotation")
            if a is not None and n.target in LAYERS and not a.input_qspec_map and a.output_qspec is None:
                del n.meta["quantization_annotation"]
        return model

    quantizer.annotate = annotate_without_empty
    return quantizer


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """CIFAR's training augmentation on HWC uint8 images: random flip, 4-pixel zero pad, random crop."""
    n, h, w, _ = x.shape
    flip = rng.random(n) < 0.5
    x = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    return np.stack([padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def fake_quantizers(graph: GraphModule) -> tuple[list[Any], list[Any]]:
    """(activation fake quantizers, weight fake quantizers) of a QAT-prepared graph, each once."""
    from torchao.quantization.pt2e import FakeQuantizeBase

    seen = {id(m): m for m in graph.modules() if isinstance(m, FakeQuantizeBase)}
    weights = [m for m in seen.values() if m.qscheme in (torch.per_channel_symmetric, torch.per_channel_affine)]
    acts = [m for m in seen.values() if m.qscheme not in (torch.per_channel_symmetric, torch.per_channel_affine)]
    return acts, weights


def build_qat(
    model: torch.nn.Module, images: np.ndarray, setting: Distill, monitor: Any = None
) -> tuple[GraphModule, dict[str, Any]]:
    """(int8 reference graph, log) of reszoo's recipe fine-tuned by distillation on ``images`` (HWC uint8)."""
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    from reszoo.infer import int8recipe

    torch.manual_seed(setting.seed)
    rng = np.random.default_rng(setting.seed)
    teacher = copy.deepcopy(model).eval()
    calibration = preprocess(model, images)
    net = copy.deepcopy(model).train()
    batch = torch.export.Dim("batch", min=1, max=65536)
    exported = torch.export.export(net, (calibration[:2],), dynamic_shapes=({0: batch},), strict=True).module()
    layers = int8recipe.sensitive_layers(exported)
    prepared = prepare_qat_pt2e(exported, qat_quantizer(layers, setting.acts))
    move_exported_model_to_eval(prepared)  # BatchNorm on its running statistics
    acts, weights = fake_quantizers(prepared)
    log: dict[str, Any] = {"fake_quantizers": {"activations": len(acts), "weights": len(weights)}}
    start = time.perf_counter()
    if setting.acts in ("histogram", "learned"):  # calibrate as prepare_pt2e does: observers see fp32 values
        for m in acts:
            m.disable_fake_quant()
        with torch.no_grad():
            for x in calibration.split(100):
                prepared(x)
        for m in acts:
            m.enable_fake_quant()
            m.disable_observer()
            if setting.acts == "learned":
                m.enable_range_learning()
    params = [p for p in prepared.parameters() if p.requires_grad]
    if setting.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=setting.lr)
    else:
        opt = torch.optim.SGD(params, lr=setting.lr, momentum=0.9)
    losses = []
    order = np.array([], dtype=int)
    if setting.bn_train_steps:
        move_exported_model_to_train(prepared)
    for step in range(setting.steps):
        if monitor is not None:
            monitor(step, prepared)
        if step == setting.bn_train_steps and setting.bn_train_steps:
            move_exported_model_to_eval(prepared)
        if setting.freeze_observers and step == setting.freeze_observers:
            for m in acts:
                m.disable_observer()
        if len(order) < setting.batch:
            order = np.concatenate([order, rng.permutation(len(images))])
        idx, order = order[: setting.batch], order[setting.batch :]
        x = preprocess(model, augment(images[idx], rng))
        with torch.no_grad():
            target = teacher(x)
        out = prepared(x)
        if setting.loss == "kl":
            t = setting.temperature
            loss = torch.nn.functional.kl_div(
                torch.log_softmax(out / t, 1), torch.log_softmax(target / t, 1), log_target=True, reduction="batchmean"
            ) * (t * t)
        else:
            loss = torch.nn.functional.mse_loss(out, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    log["fine_tune_s"] = round(time.perf_counter() - start, 1)
    log["loss_first_last"] = (
        [round(statistics.mean(losses[:10]), 5), round(statistics.mean(losses[-10:]), 5)] if losses else []
    )
    move_exported_model_to_eval(prepared)
    converted = convert_pt2e(prepared)
    move_exported_model_to_eval(converted)
    log["bias_corrected"] = 0
    if setting.bias_correction:
        log["bias_corrected"] = correct_qat_biases(model, converted, calibration)
    return converted, log


def correct_qat_biases(model: torch.nn.Module, converted: GraphModule, calibration: torch.Tensor) -> int:
    """Bias correction of a converted QAT graph towards the original fp32 model's channel means.

    The fp32 reference is the PTQ flow's BatchNorm-folded graph (:func:`build`); its layers are
    matched to the QAT graph's by module name.
    """
    from reszoo.infer import biascorrection
    from reszoo.infer.int8recipe import module_name

    reference, _ = build(model, calibration, VARIANTS["stem + head fp32, shared pad"])
    images = biascorrection.correction_images(list(calibration.split(100)))
    means = biascorrection.channel_means(reference, images)
    by_module = {module_name(n): means[n.name] for n in reference.graph.nodes if n.name in means}
    mapped = {}
    for n in converted.graph.nodes:
        if n.op == "call_function" and n.target in LAYERS and module_name(n) in by_module:
            mapped[n.name] = by_module[module_name(n)]
    return biascorrection.correct_biases(converted, mapped, images)


def logits(net: Any, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([net(b) for b in x.split(batch)])


def sqnr(ref: torch.Tensor, x: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB: 10 log10(|ref|^2 / |x - ref|^2)."""
    noise = float((x.double() - ref.double()).pow(2).sum())
    return math.inf if noise == 0 else 10 * math.log10(float(ref.double().pow(2).sum()) / noise)


def compare(fp32: torch.Tensor, int8: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    p, q = fp32.argmax(1), int8.argmax(1)
    return {
        "images": len(y),
        "changed": int((p != q).sum()),
        "agreement": float((p == q).float().mean()),
        "top1_fp32": float((p == y).float().mean()),
        "top1_int8": float((q == y).float().mean()),
        "logit_sqnr_db": round(sqnr(fp32, int8), 2),
    }


# -------------------------------------------------------------------------------- per-layer table
class Capture(Interpreter):
    """Runs a graph, keeping the outputs of the named nodes.

    ``refs`` (node name -> tensor) replaces those nodes' outputs after they are recorded, so every
    layer of an int8 graph computes from fp32 inputs: what it records is that layer's own error.
    ``quantize_activations=False`` makes every per-tensor quantize/dequantize pass values through;
    ``fp32_weights`` (node name -> weight) runs those layers with their fp32 weights.
    """

    def __init__(
        self,
        graph: GraphModule,
        names: set[str],
        *,
        refs: dict[str, torch.Tensor] | None = None,
        quantize_activations: bool = True,
        fp32_weights: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__(graph)
        self.names, self.refs, self.quantize_activations = names, refs, quantize_activations
        self.fp32_weights = fp32_weights or {}
        self.out: dict[str, torch.Tensor] = {}

    def run_node(self, n: Node) -> Any:
        if not self.quantize_activations and n.op == "call_function" and n.target in per_tensor_ops():
            return self.env[n.args[0]]
        if n.name in self.fp32_weights:
            args = list(self.map_nodes_to_values(n.args, n))
            args[1] = self.fp32_weights[n.name]
            value = n.target(*args)
        else:
            value = super().run_node(n)
        if n.name in self.names:
            self.out[n.name] = value.detach().clone()  # clone: in-place ReLU and add_ follow
            if self.refs is not None:
                value = self.refs[n.name].clone()
        return value


def per_tensor_ops() -> tuple[Any, Any]:
    """The per-tensor quantize and dequantize ops (registered when torchao's PT2E flow is imported)."""
    import torchao.quantization.pt2e  # noqa: F401

    ops = torch.ops.quantized_decomposed
    return ops.quantize_per_tensor.default, ops.dequantize_per_tensor.default


def _weights(graph: GraphModule) -> dict[str, torch.Tensor]:
    out = {}
    for n in graph.graph.nodes:
        if n.op == "call_function" and n.target in LAYERS and isinstance(n.args[1], Node):
            source = n.args[1]
            while source.op == "call_module":  # the observer in front of the weight
                source = source.args[0]
            w = graph
            for part in source.target.split("."):
                w = getattr(w, part)
            out[n.name] = w.detach()
    return out


def layer_table(fp32: GraphModule, int8: GraphModule, x: torch.Tensor) -> list[dict[str, Any]]:
    """For each op of the fp32 graph: local SQNR (its own int8 error: activations and weights, each
    alone), propagated SQNR (the whole int8 model's error there), and its output's uint8 range."""
    from reszoo.infer.int8recipe import module_name

    kinds = (*LAYERS, ATEN.add_.Tensor, ATEN.add.Tensor, ATEN.pad.default, ATEN.avg_pool2d.default)
    kinds += (ATEN.adaptive_avg_pool2d.default, ATEN.relu_.default, ATEN.relu.default, ATEN.max_pool2d.default)
    int8_names = {n.name for n in int8.graph.nodes}
    nodes = [n for n in fp32.graph.nodes if n.op == "call_function" and n.target in kinds and n.name in int8_names]
    names = {n.name for n in nodes}
    ref = Capture(fp32, names)
    ref.run(x)
    runs = {
        "propagated": Capture(int8, names),
        "local": Capture(int8, names, refs=ref.out),
        "activations": Capture(int8, names, refs=ref.out, fp32_weights=_weights(fp32)),
        "weights": Capture(int8, names, refs=ref.out, quantize_activations=False),
    }
    for run in runs.values():
        run.run(x)
    scales = {}
    for n in int8.graph.nodes:
        if n.op == "call_function" and n.target == per_tensor_ops()[0]:
            scales.setdefault(n.args[0].name, (float(n.args[1]), int(n.args[2])))
    rows = []
    for n in nodes:
        r = ref.out[n.name]
        row = {"node": n.name, "op": n.target._opname, "module": module_name(n), "shape": list(r.shape[1:])}
        row.update({k: round(sqnr(r, run.out[n.name]), 1) for k, run in runs.items()})
        if n.name in scales:
            scale, zp = scales[n.name]
            top = scale * (255 - zp)
            rounded = (torch.clamp(torch.round(r / scale) + zp, 0, 255) - zp) * scale
            row.update(
                scale=round(scale, 5),
                range_top=round(top, 2),
                max=round(float(r.max()), 2),
                clipped=float((r > top + scale / 2).float().mean()),
                output_sqnr=round(sqnr(r, rounded), 1),
            )
        rows.append(row)
    return rows


def layers_markdown(rows: list[dict[str, Any]], logit: dict[str, Any]) -> str:
    """The per-layer table as markdown: one row per convolution, shortcut, add and head op."""
    head = (
        "| layer | op | output | local SQNR dB (acts / weights) | propagated dB | "
        "output uint8 range (max seen) | output rounding dB |\n|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        if r["op"] in ("relu_", "relu"):
            continue
        rng = f"0-{r['range_top']} ({r['max']})" if "range_top" in r else "fp32"
        out = r.get("output_sqnr", "")
        # A ReLU after a layer carries that layer's output quantization: show it on the layer's row.
        local = f"{r['local']} ({r['activations']} / {r['weights']})"
        shape = "x".join(str(s) for s in r["shape"])
        lines.append(f"| {r['module'] or '-'} | {r['op']} | {shape} | {local} | {r['propagated']} | {rng} | {out} |")
    lines.append(f"| logits | | | | **{logit['logit_sqnr_db']}** | | |")
    return head + "\n".join(lines) + "\n"


def fold_relu_rows(rows: list[dict[str, Any]], fp32: GraphModule) -> list[dict[str, Any]]:
    """Move each ReLU's output quantization onto the conv or add it follows (the pattern int8 fuses)."""
    by_name = {r["node"]: r for r in rows}
    for n in fp32.graph.nodes:
        if n.name in by_name and by_name[n.name]["op"] in ("relu_", "relu"):
            source = by_name.get(n.args[0].name)
            relu = by_name[n.name]
            if source is not None and "range_top" in relu:
                for k in ("scale", "range_top", "max", "clipped", "output_sqnr"):
                    source[k] = relu[k]
                source["propagated"] = relu["propagated"]
    return rows


# --------------------------------------------------------------------------------------- commands
def setup(model_name: str, seed: int, per_class: int) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    model = load_model(model_name)
    x, y = load_images()
    cal, held = stratified_split(y, per_class, seed)
    return model, preprocess(model, x[cal]), preprocess(model, x[held]), torch.from_numpy(y[held])


def cmd_layers(args: argparse.Namespace) -> dict[str, Any]:
    model, cal, held, y = setup(args.model, args.seeds[0], args.calibration_per_class)
    variant = VARIANTS[args.variant]
    fp32, int8 = build(model, cal, variant)
    every = torch.linspace(0, len(held) - 1, args.images).long()  # the file is sorted by class: all classes
    x, y = held[every], y[every]
    rows = fold_relu_rows(layer_table(fp32, int8, x), fp32)
    logit = compare(logits(model, x), logits(int8, x), y)
    print(layers_markdown(rows, logit))
    return {"variant": args.variant, "images": len(x), "rows": rows, "logits": logit}


def cmd_sensitivity(args: argparse.Namespace) -> dict[str, Any]:
    """Logit SQNR and changed predictions with each quantized layer alone kept in fp32 (the rest as ``variant``)."""
    model, cal, held, y = setup(args.model, args.seeds[0], args.calibration_per_class)
    fp = logits(model, held)
    base = VARIANTS[args.variant]
    layers = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    out = {}
    for layer in ["none", *layers]:
        kept = () if layer == "none" else (layer,)
        _, int8 = build(model, cal, dataclasses.replace(base, also_fp32=kept))
        out[layer] = compare(fp, logits(int8, held), y)
        print(f"{layer:18s} {out[layer]}", flush=True)
    return {"variant": args.variant, "kept_in_fp32": out}


def cmd_ablation(args: argparse.Namespace) -> dict[str, Any]:
    model = load_model(args.model)
    x, y = load_images()
    wanted = args.variants or list(VARIANTS)
    out: dict[str, list[dict[str, Any]]] = {v: [] for v in wanted}
    for seed in args.seeds:
        cal, held = stratified_split(y, args.calibration_per_class, seed)
        xc, xh = preprocess(model, x[cal]), preprocess(model, views(x[held]))
        yh = torch.from_numpy(y[held]).repeat(4)
        n = len(held)
        fp = logits(model, xh)
        for v in wanted:
            start = time.perf_counter()
            _, int8 = build(model, xc, VARIANTS[v])
            q = logits(int8, xh)
            row = {"seed": seed, "held_out": compare(fp[:n], q[:n], yh[:n]), "with_views": compare(fp, q, yh)}
            row["seconds"] = round(time.perf_counter() - start, 1)
            out[v].append(row)
            print(f"{args.model} seed {seed} {v}: {row}", flush=True)
    summary = {v: summarise(rows) for v, rows in out.items()}
    for v, s in summary.items():
        print(f"{v:55s} {s}")
    return {"per_seed": out, "summary": summary}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def total(key: str, field: str) -> int:
        return sum(r[key][field] for r in rows)

    out = {}
    for key in ("held_out", "with_views"):
        images = total(key, "images")
        out[key] = {
            "images": images,
            "changed": total(key, "changed"),
            "agreement": round(1 - total(key, "changed") / images, 4),
            "top1_fp32": round(statistics.mean(r[key]["top1_fp32"] for r in rows), 4),
            "top1_int8": round(statistics.mean(r[key]["top1_int8"] for r in rows), 4),
            "logit_sqnr_db": round(statistics.mean(r[key]["logit_sqnr_db"] for r in rows), 2),
        }
    return out


def cmd_calibration_size(args: argparse.Namespace) -> dict[str, Any]:
    """Agreement of reszoo's recipe against the number of calibration images, on fixed held-out images."""
    model = load_model(args.model)
    x, y = load_images()
    out: dict[str, list[dict[str, Any]]] = {}
    for seed in args.seeds:
        pool, held = stratified_split(y, 100, seed)  # 1,000 to calibrate from, 1,000 held out
        xh = preprocess(model, views(x[held]))
        yh = torch.from_numpy(y[held]).repeat(4)
        fp = logits(model, xh)
        rng = np.random.default_rng(seed)
        order = rng.permutation(pool)
        for count in args.counts:
            _, int8 = build(model, preprocess(model, x[order[:count]]), VARIANTS[RESZOO])
            row = {"seed": seed, "with_views": compare(fp, logits(int8, xh), yh)}
            out.setdefault(str(count), []).append(row)
            print(f"{args.model} seed {seed} {count} images: {row}", flush=True)
    return {"per_count": out}


def cmd_qat(args: argparse.Namespace) -> dict[str, Any]:
    """reszoo's recipe against the same recipe fine-tuned by distillation (:class:`Distill`) on the calibration images.

    Split, held-out views and measure as ``ablation`` (reference int8 graphs, 1,500 held-out images
    and 6,000 with views per seed); the fine-tuning sees the 500 calibration images only.
    """
    model = load_model(args.model)
    x, y = load_images()
    setting = Distill(
        steps=args.steps,
        batch=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        loss=args.loss,
        temperature=args.temperature,
        acts=args.acts,
        freeze_observers=args.freeze_observers,
        bn_train_steps=args.bn_train_steps,
        bias_correction=args.qat_bias_correction,
    )
    names = ([] if args.no_reference else [RESZOO]) + ["qat distill"]
    out: dict[str, list[dict[str, Any]]] = {v: [] for v in names}
    for seed in args.seeds:
        cal, held = stratified_split(y, args.calibration_per_class, seed)
        xc, xh = preprocess(model, x[cal]), preprocess(model, views(x[held]))
        yh = torch.from_numpy(y[held]).repeat(4)
        n = len(held)
        fp = logits(model, xh)
        for v in names:
            start = time.perf_counter()
            if v == RESZOO:
                _, int8 = build(model, xc, VARIANTS[v])
                log: dict[str, Any] = {}
            else:
                int8, log = build_qat(model, x[cal], dataclasses.replace(setting, seed=seed))
            q = logits(int8, xh)
            row = {"seed": seed, "held_out": compare(fp[:n], q[:n], yh[:n]), "with_views": compare(fp, q, yh)}
            row.update(log, seconds=round(time.perf_counter() - start, 1))
            out[v].append(row)
            print(f"{args.model} seed {seed} {v}: {row}", flush=True)
    summary = {v: summarise(rows) for v, rows in out.items()}
    for v, s in summary.items():
        print(f"{v:55s} {s}")
    return {"setting": dataclasses.asdict(setting), "per_seed": out, "summary": summary}


def cmd_qat_compile(args: argparse.Namespace) -> dict[str, Any]:
    """The converted QAT graph compiled as reszoo compiles int8 (``FrozenCompiled``): the same oneDNN
    kernels, the same predictions as its reference graph, and its speed against reszoo's int8 path
    (interleaved, one process, batch ``--batch``). Graph structure, not the fine-tuning, decides the
    speed, so ``--steps`` can be small here."""
    from torch._inductor.utils import run_and_get_code

    from reszoo.infer.freezing import FrozenCompiled
    from reszoo.infer.quantize import quantize_graphs
    from reszoo.utils.timing import interleaved

    model = load_model(args.model)
    x, y = load_images()
    cal, held = stratified_split(y, args.calibration_per_class, args.seeds[0])
    xc, xh, yh = preprocess(model, x[cal]), preprocess(model, x[held]), torch.from_numpy(y[held])
    setting = Distill(steps=args.steps)
    graphs = {"reszoo int8": quantize_graphs(model, list(xc.split(100))).int8}
    graphs["qat distill int8"], log = build_qat(model, x[cal], setting)
    fp = logits(model, xh)
    out: dict[str, Any] = {"steps": args.steps, "fine_tune": log, "paths": {}}
    nets = {}
    batch = xh[: args.batch]
    for name, graph in graphs.items():
        net = FrozenCompiled(graph)
        start = time.perf_counter()
        _, code = run_and_get_code(net, batch)
        compile_s = time.perf_counter() - start
        text = "\n".join(code)
        fast, ref = logits(net, xh), logits(graph, xh)
        out["paths"][name] = {
            "compile_s": round(compile_s, 1),
            "qconv_calls_in_code": text.count("qconv"),
            "qlinear_calls_in_code": text.count("qlinear"),
            "compiled_vs_reference": {
                "changed": int((fast.argmax(1) != ref.argmax(1)).sum()),
                "sqnr_db": round(sqnr(ref, fast), 1),
            },
            "compiled_vs_fp32": compare(fp, fast, yh),
        }
        nets[name] = net
        print(name, out["paths"][name], flush=True)

    def step(net: Any) -> Any:
        return lambda: net(batch)

    times = interleaved({k: step(n) for k, n in nets.items()}, rounds=args.rounds, number=2, warmup=1)
    base = times["reszoo int8"]
    for name, ts in times.items():
        out["paths"][name].update(
            images_per_s=round(len(batch) / statistics.median(ts), 1),
            ratio_vs_reszoo_int8=round(statistics.median(base) / statistics.median(ts), 3),
            paired_ratio_vs_reszoo_int8=round(statistics.median(b / t for b, t in zip(base, ts, strict=True)), 3),
            times_ms=[round(1e3 * t, 1) for t in ts],
        )
        print(name, {k: v for k, v in out["paths"][name].items() if k != "times_ms"}, flush=True)
    return out


def cmd_final(args: argparse.Namespace) -> dict[str, Any]:
    """What a user gets: optimize_for_inference(model, dtype="int8", calibration=..., check=(images, labels))."""
    import warnings

    import reszoo
    from reszoo.infer.quantize import AgreementWarning

    out = {}
    for name in args.models:
        out[name] = []
        for seed in args.seeds:
            model, cal, held, y = setup(name, seed, args.calibration_per_class)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AgreementWarning)
                int8 = reszoo.optimize_for_inference(model, dtype="int8", calibration=cal, check=(held, y))
            report = int8.quantization
            row = {"seed": seed, "prepare_and_check_s": round(time.perf_counter() - start, 1)}
            row.update(dataclasses.asdict(report.check), fp32_layers=report.fp32_layers)
            row["bias_corrected"] = report.bias_corrected
            out[name].append(row)
            print(f"{name} seed {seed}: {report.check.summary()}", flush=True)
    return out


def cmd_bf16(args: argparse.Namespace) -> dict[str, Any]:
    """bf16 (compiled, needs native bf16) against fp32 on the same held-out images as ``final``."""
    import reszoo

    out = {}
    for name in args.models:
        out[name] = []
        for seed in args.seeds:
            model, _, held, y = setup(name, seed, args.calibration_per_class)
            bf16 = reszoo.optimize_for_inference(model, dtype="bf16")
            row = {"seed": seed, **compare(logits(model, held), logits(bf16, held).float(), y)}
            out[name].append(row)
            print(f"{name} seed {seed} bf16: {row}", flush=True)
    return out


def environment() -> dict[str, Any]:
    import torchao

    import reszoo

    return {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "torchao": torchao.__version__,
        "reszoo": reszoo.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "command",
        choices=["layers", "sensitivity", "ablation", "calibration-size", "final", "bf16", "qat", "qat-compile"],
    )
    parser.add_argument("--model", default="resnet20", choices=sorted(CHECKPOINTS))
    parser.add_argument("--models", nargs="+", default=sorted(CHECKPOINTS), choices=sorted(CHECKPOINTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    parser.add_argument("--calibration-per-class", type=int, default=50)
    parser.add_argument("--variant", default="torchao default", choices=list(VARIANTS))
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS))
    parser.add_argument("--images", type=int, default=500, help="held-out images for the per-layer table")
    parser.add_argument("--counts", nargs="+", type=int, default=[32, 64, 128, 256, 500, 1000])
    qat = parser.add_argument_group("qat (Distill's fields)")
    qat.add_argument("--steps", type=int, default=Distill.steps)
    qat.add_argument("--batch-size", type=int, default=Distill.batch)
    qat.add_argument("--lr", type=float, default=Distill.lr)
    qat.add_argument("--optimizer", default=Distill.optimizer, choices=["adam", "sgd"])
    qat.add_argument("--loss", default=Distill.loss, choices=["kl", "mse"])
    qat.add_argument("--temperature", type=float, default=Distill.temperature)
    qat.add_argument("--acts", default=Distill.acts, choices=["histogram", "moving", "learned"])
    qat.add_argument("--freeze-observers", type=int, default=Distill.freeze_observers)
    qat.add_argument("--bn-train-steps", type=int, default=Distill.bn_train_steps)
    qat.add_argument("--qat-bias-correction", action=argparse.BooleanOptionalAction, default=Distill.bias_correction)
    qat.add_argument("--no-reference", action="store_true", help="skip reszoo's recipe (tuning runs)")
    parser.add_argument("--batch", type=int, default=128, help="qat-compile: the timed batch")
    parser.add_argument("--rounds", type=int, default=8, help="qat-compile: interleaved timing rounds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if not (shared_data() / IMAGES).exists():
        sys.exit(f"no {IMAGES} in {shared_data()}; set RESZOO_SHARED_DATA")
    torch.set_num_threads(args.threads)
    commands = {
        "layers": cmd_layers,
        "sensitivity": cmd_sensitivity,
        "ablation": cmd_ablation,
        "calibration-size": cmd_calibration_size,
        "final": cmd_final,
        "bf16": cmd_bf16,
        "qat": cmd_qat,
        "qat-compile": cmd_qat_compile,
    }
    result = {"command": args.command, "args": {k: v for k, v in vars(args).items() if k != "out"}}
    result["environment"] = environment()
    result["result"] = commands[args.command](args)
    tag = "both" if args.command in ("final", "bf16") else args.model
    if args.command in ("qat", "qat-compile"):
        tag = "distill-" + args.model
    if args.command in ("layers", "sensitivity"):
        tag += "-" + args.variant.split(" ")[0]
    out = args.out or RESULTS / f"{args.command}-{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
