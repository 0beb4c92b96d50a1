"""Pretrained weight entries: plain data saying where weights live and how to use them.

Each entry is a frozen :class:`~reszoo.weights.records.Weights` record: the architecture it fits, where the file comes
from (a Hugging Face Hub repo or an original URL), the checksum where one is known, the converter
that maps the original key layout to ours, the classes, the evaluation pre-processing, published
accuracy with its source, license and origin. Nothing here downloads: :mod:`reszoo.weights.pretrained`
turns a name into a model, through :mod:`reszoo.weights.hub` (the Hub) and :mod:`reszoo.weights.cache` (URLs).

Example:
    >>> import reszoo
    >>> reszoo.get_weights("resnet110-cifar").name
    'resnet110-cifar10'
    >>> reszoo.list_pretrained("resnet5?-imagenet*")
    ['resnet50-imagenet', 'resnet50-imagenet-v2']
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any

from reszoo.data.constants import DATASETS, IMAGENET_MEAN, IMAGENET_STD
from reszoo.errors import InvalidArgumentError
from reszoo.utils.checks import check_bool, check_str, unknown_name_error
from reszoo.utils.text import sort_key as arch_sort_key
from reszoo.weights.records import HubSource, Metric, UrlSource, Weights

__all__ = [
    "DEFAULT_WEIGHTS",
    "WEIGHTS",
    "default_weights",
    "find_by_repo",
    "get_weights",
    "list_pretrained",
    "pretrained_table",
]


# -- the entries ------------------------------------------------------------------------------


def _entry(name: str, arch: str, dataset: str, **fields: Any) -> Weights:
    """An entry for the registered ``arch``; its classes and (unless given) crop size follow from ``dataset``."""
    info = DATASETS[dataset]
    fields.setdefault("crop_size", info.image_size)
    return Weights(name=name, arch=arch, dataset=dataset, num_classes=info.num_classes, **fields)


_TV_DOCS = "https://pytorch.org/vision/stable/models/resnet.html"
_TIMM_RESULTS = "timm results-imagenet.csv (timm's own re-evaluation, 224px)"


def _imagenet(depth: int, *, v2: bool, tv_top1: float, timm_top1: float) -> Weights:
    tag = "tv2_in1k" if v2 else "tv_in1k"
    recipe = "IMAGENET1K_V2" if v2 else "IMAGENET1K_V1"
    return _entry(
        f"resnet{depth}-imagenet" + ("-v2" if v2 else ""),
        f"resnet{depth}",
        "imagenet",
        source=HubSource(repo_id=f"timm/resnet{depth}.{tag}"),
        converter="torchvision",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        # torchvision evaluates V1 weights at resize 256 / crop 224 and V2 weights at 232 / 224 (bilinear).
        resize_size=232 if v2 else 256,
        aliases=(f"resnet{depth}.{tag}",),
        metrics=(
            Metric("imagenet-val", "top1", tv_top1, f"torchvision ResNet{depth}_Weights.{recipe} ({_TV_DOCS})"),
            Metric("imagenet-val", "top1", timm_top1, _TIMM_RESULTS),
        ),
        license="bsd-3-clause",
        origin=f"torchvision {recipe}, re-hosted as safetensors by timm: https://huggingface.co/timm/resnet{depth}.{tag}",
        notes=(
            "torchvision's improved recipe (long schedule, TrivialAugment, mixup/cutmix, EMA, ...)."
            if v2
            else "torchvision's original weights (ResNet v1.5: stride on the bottleneck's 3x3)."
        ),
    )


_AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10"
_AKAMASTER_FILES = {
    # depth: (file hash prefix, test error % from its README, size in bytes where known)
    20: ("12fca82f", 8.27, 1_099_231),
    32: ("d509ac18", 7.37, None),
    44: ("014dd654", 6.90, None),
    56: ("4bfd9763", 6.61, 3_471_733),
    110: ("1d1ed7c2", 6.32, None),
    1202: ("f3b1deed", 6.18, None),
}
# He et al. 2015, Table 6: CIFAR-10 test error % of the paper's own runs (not these files).
_PAPER_CIFAR10_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}


def _akamaster(depth: int) -> Weights:
    prefix, error, size = _AKAMASTER_FILES[depth]
    return _entry(
        f"resnet{depth}-cifar10",
        f"resnet{depth}",
        "cifar10",
        source=UrlSource(
            url=f"{_AKAMASTER}/raw/master/pretrained_models/resnet{depth}-{prefix}.th",
            sha256_prefix=prefix,
            size=size,
        ),
        converter="akamaster",
        # Its trainer.py normalises CIFAR-10 with the ImageNet statistics, so these weights
        # expect them (CIFAR's own statistics would shift every input).
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        aliases=(f"resnet{depth}-cifar",),
        metrics=(
            Metric("cifar10-test", "top1", round(100 - error, 2), f"{_AKAMASTER} README (test error {error}%)"),
            Metric(
                "cifar10-test",
                "top1",
                round(100 - _PAPER_CIFAR10_ERROR[depth], 2),
                "He et al. 2015, Table 6 (the paper's own runs, for comparison; not these weights)",
            ),
        ),
        license="bsd-2-clause",
        origin=_AKAMASTER,
        notes="The paper's option-A network and recipe, trained by Yerlan Idelbayev; legacy torch.save file.",
    )


_CHENYAOFO = "https://github.com/chenyaofo/pytorch-cifar-models"
_CHENYAOFO_FILES = {
    # (dataset, depth): (file hash prefix, top-1 % from its README)
    ("cifar10", 20): ("4118986f", 92.60),
    ("cifar10", 32): ("ef93fc4d", 93.53),
    ("cifar10", 44): ("2a3cabcb", 94.01),
    ("cifar10", 56): ("187c023a", 94.37),
    ("cifar100", 20): ("23dac2f1", 68.83),
    ("cifar100", 32): ("84213ce6", 70.16),
    ("cifar100", 44): ("ffe32858", 71.63),
    ("cifar100", 56): ("f2eff4c8", 72.63),
}
# Normalisation from its training logs (logs/{dataset}/resnet20/default.log, "data" section).
_CHENYAOFO_NORM = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5070, 0.4865, 0.4409), (0.2673, 0.2564, 0.2761)),
}


def _chenyaofo(dataset: str, depth: int) -> Weights:
    prefix, top1 = _CHENYAOFO_FILES[(dataset, depth)]
    mean, std = _CHENYAOFO_NORM[dataset]
    return _entry(
        f"resnet{depth}-{dataset}-b",
        f"resnet{depth}",
        dataset,
        source=UrlSource(
            url=f"{_CHENYAOFO}/releases/download/resnet/{dataset}_resnet{depth}-{prefix}.pt",
            sha256_prefix=prefix,
        ),
        converter="chenyaofo",
        mean=mean,
        std=std,
        config_overrides=(("shortcut", "B"), ("num_classes", DATASETS[dataset].num_classes)),
        aliases=(f"{dataset}_resnet{depth}",),
        metrics=(Metric(f"{dataset}-test", "top1", top1, f"{_CHENYAOFO} README"),),
        license="bsd-3-clause",
        origin=_CHENYAOFO,
        notes=(
            "Option-B shortcuts (1x1 conv + BN where the shape changes); trained 200 epochs, SGD with "
            "Nesterov, cosine schedule, weight decay 5e-4: not the paper's recipe."
        ),
    )


# torchvision's ResNeXt and Wide ResNet weights, re-hosted by timm: (arch, torchvision's weights enum,
# {recipe: (torchvision acc@1, timm's re-evaluation at 224 px)}), from torchvision's docs and timm's
# model cards (the comparison table of timm/resnext101_32x16d.fb_swsl_ig1b_ft_in1k, results-imagenet.csv).
_TV_FAMILY: tuple[tuple[str, str, dict[str, tuple[float, float]]], ...] = (
    ("resnext50_32x4d", "ResNeXt50_32X4D", {"V1": (77.618, 77.61), "V2": (81.198, 81.182)}),
    ("resnext101_32x8d", "ResNeXt101_32X8D", {"V1": (79.312, 79.31), "V2": (82.834, 82.832)}),
    ("resnext101_64x4d", "ResNeXt101_64X4D", {"V1": (83.246, 82.992)}),
    ("wide_resnet50_2", "Wide_ResNet50_2", {"V1": (78.468, 78.47), "V2": (81.602, 81.606)}),
    ("wide_resnet101_2", "Wide_ResNet101_2", {"V1": (78.848, 78.84), "V2": (82.510, 82.498)}),
)


def _tv_family(arch: str, enum: str, recipe: str, tv_top1: float, timm_top1: float) -> Weights:
    # torchvision's ResNeXt101_64X4D has only IMAGENET1K_V1, trained with the V2 recipe (resize 232); timm
    # re-hosts it as tv_in1k and evaluates it at its default crop 0.875 (resize 256), hence its lower number.
    v2_recipe = recipe == "V2" or arch == "resnext101_64x4d"
    tag = "tv2_in1k" if recipe == "V2" else "tv_in1k"
    return _entry(
        f"{arch}-imagenet" + ("-v2" if recipe == "V2" else ""),
        arch,
        "imagenet",
        source=HubSource(repo_id=f"timm/{arch}.{tag}"),
        converter="torchvision",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        resize_size=232 if v2_recipe else 256,
        aliases=(f"{arch}.{tag}",),
        metrics=(
            Metric("imagenet-val", "top1", tv_top1, f"torchvision {enum}_Weights.IMAGENET1K_{recipe} ({_TV_DOCS})"),
            Metric("imagenet-val", "top1", timm_top1, _TIMM_RESULTS),
        ),
        license="bsd-3-clause",
        origin=f"torchvision IMAGENET1K_{recipe}, re-hosted as safetensors by timm: https://huggingface.co/timm/{arch}.{tag}",
        notes=(
            "torchvision's improved recipe (long schedule, TrivialAugment, mixup/cutmix, EMA, ...)."
            if v2_recipe
            else "torchvision's original weights (stride on the bottleneck's 3x3)."
        ),
    )


_TIMM = "https://github.com/huggingface/pytorch-image-models"
_TIMM_CARDS = "timm model card comparison table (timm/resnext101_32x16d.fb_swsl_ig1b_ft_in1k)"
# Weights trained in timm, with the evaluation pre-processing of their Hub config.json (input size and
# crop_pct give resize = floor(size / crop_pct), as timm computes it) and top-1 at that size, then at
# timm's larger test size (test_input_size, test_crop_pct).
_TIMM_TRAINED: tuple[dict[str, Any], ...] = (
    dict(arch="resnet50d", tag="ra2_in1k", crop=224, crop_pct=0.875, inception=False,
         top1=(80.53, f"{_TIMM_CARDS}, 224 px"), test=(81.356, 288, 0.95)),
    dict(arch="resnet101d", tag="ra2_in1k", crop=256, crop_pct=0.95, inception=False,
         top1=(82.26, f"{_TIMM_CARDS}, 256 px"), test=(83.016, 320, 1.0)),
    dict(arch="seresnet50", tag="ra2_in1k", crop=224, crop_pct=0.875, inception=False,
         top1=(80.26, f"{_TIMM_CARDS}, 224 px"), test=(81.284, 288, 0.95)),
    dict(arch="resnetv2_50", tag="a1h_in1k", crop=224, crop_pct=0.95, inception=True, top1=None,
         test=(81.398, 288, 1.0)),
    dict(arch="resnetv2_101", tag="a1h_in1k", crop=224, crop_pct=0.95, inception=True, top1=None,
         test=(83.002, 288, 1.0)),
)  # fmt: skip
_TIMM_RECIPES = {
    # As the model cards say; the full hyper-parameters are in timm's training notes, not restated here.
    "ra2_in1k": "Trained in timm with its RandAugment recipe ('ra2')",
    "a1h_in1k": "Trained in timm with a recipe based on ResNet strikes back A1 ('a1h', arXiv 2110.00476)",
}


def _timm_trained(arch: str, tag: str, crop: int, crop_pct: float, inception: bool, top1: Any, test: Any) -> Weights:
    test_top1, test_size, test_crop_pct = test
    metrics = [Metric("imagenet-val", "top1", top1[0], top1[1])] if top1 is not None else []
    metrics.append(
        Metric(
            "imagenet-val",
            "top1",
            test_top1,
            f"timm results-imagenet.csv (timm's test size: {test_size} px, crop_pct {test_crop_pct})",
        )
    )
    return _entry(
        f"{arch}-imagenet",
        arch,
        "imagenet",
        source=HubSource(repo_id=f"timm/{arch}.{tag}"),
        converter="timm_resnetv2" if arch.startswith("resnetv2") else "torchvision",
        # timm's ResNetV2 weights were trained on inputs scaled to [-1, 1] (its IMAGENET_INCEPTION_MEAN/STD).
        mean=(0.5, 0.5, 0.5) if inception else IMAGENET_MEAN,
        std=(0.5, 0.5, 0.5) if inception else IMAGENET_STD,
        crop_size=crop,
        resize_size=math.floor(crop / crop_pct),
        interpolation="bicubic",
        aliases=(f"{arch}.{tag}",),
        metrics=tuple(metrics),
        license="apache-2.0",
        origin=f"timm ({_TIMM}), trained by Ross Wightman: https://huggingface.co/timm/{arch}.{tag}",
        notes=f"{_TIMM_RECIPES[tag]}; not the paper's recipe.",
    )


_ENTRIES: tuple[Weights, ...] = (
    *(_akamaster(d) for d in (20, 32, 44, 56, 110, 1202)),
    *(_chenyaofo(ds, d) for ds in ("cifar10", "cifar100") for d in (20, 32, 44, 56)),
    # top-1 %: torchvision's published acc@1, then timm's re-evaluation (REFERENCE.md).
    _imagenet(18, v2=False, tv_top1=69.758, timm_top1=69.752),
    _imagenet(34, v2=False, tv_top1=73.314, timm_top1=73.298),
    _imagenet(50, v2=False, tv_top1=76.130, timm_top1=76.156),
    _imagenet(101, v2=False, tv_top1=77.374, timm_top1=77.404),
    _imagenet(152, v2=False, tv_top1=78.312, timm_top1=78.330),
    _imagenet(50, v2=True, tv_top1=80.858, timm_top1=80.846),
    _imagenet(101, v2=True, tv_top1=81.886, timm_top1=81.906),
    _imagenet(152, v2=True, tv_top1=82.284, timm_top1=82.294),
    *(_tv_family(arch, enum, recipe, *top1) for arch, enum, recipes in _TV_FAMILY for recipe, top1 in recipes.items()),
    *(_timm_trained(**entry) for entry in _TIMM_TRAINED),
)

WEIGHTS: dict[str, Weights] = {w.name: w for w in _ENTRIES}
_ALIASES: dict[str, str] = {alias: w.name for w in _ENTRIES for alias in w.aliases}
# What `pretrained=True` loads: the paper's own recipe where there is a choice. akamaster's option-A
# CIFAR-10 nets are the registered resnet20..1202 as the paper defines them; torchvision's V1 ImageNet
# weights are what torchvision's own `pretrained=True` loaded (V2 is better but another recipe).
# The family follows the same rule (torchvision's V1 for its ResNeXt and Wide ResNet); timm's own weights
# are the only ones for resnet50d, seresnet50 and resnetv2_50.
DEFAULT_WEIGHTS: dict[str, str] = {
    **{f"resnet{d}": f"resnet{d}-cifar10" for d in (20, 32, 44, 56, 110, 1202)},
    **{f"resnet{d}": f"resnet{d}-imagenet" for d in (18, 34, 50, 101, 152)},
    **{arch: f"{arch}-imagenet" for arch, _, _ in _TV_FAMILY},
    **{entry["arch"]: f"{entry['arch']}-imagenet" for entry in _TIMM_TRAINED},
}


def _sort_key(name: str) -> tuple[str, tuple[str, int, str], str]:
    """By dataset, then by architecture (depth), then by name."""
    arch, _, rest = name.partition("-")
    return (rest.split("-")[0], arch_sort_key(arch), name)


def list_pretrained(pattern: str | None = None, *, include_aliases: bool = False) -> list[str]:
    """Names of the pretrained weight entries, filtered by fnmatch wildcards.

    An entry matches if its name or one of its aliases matches; the canonical names are returned
    (with the matching aliases too when ``include_aliases=True``).

    Args:
        pattern: e.g. ``"resnet*-cifar10"`` or ``"*-imagenet*"``; ``None`` lists all.
        include_aliases: also return aliases (``"resnet110-cifar"``, ``"resnet50.tv_in1k"``).

    Returns:
        Sorted names: by dataset, then depth.

    Example:
        >>> import reszoo
        >>> reszoo.list_pretrained("resnet110*")
        ['resnet110-cifar10']
    """
    check_bool("include_aliases", include_aliases)
    check_str("pattern", pattern, optional=True, what="an fnmatch wildcard string")

    def matches(n: str) -> bool:
        return pattern is None or fnmatch.fnmatchcase(n, pattern)

    out = []
    for w in WEIGHTS.values():
        aliases = [a for a in w.aliases if matches(a)]
        if aliases or matches(w.name):
            out += [w.name, *aliases] if include_aliases else [w.name]
    return sorted(set(out), key=_sort_key)


def get_weights(name: str) -> Weights:
    """The entry for a weight name or alias.

    Args:
        name: e.g. ``"resnet56-cifar10"``, ``"resnet110-cifar"`` or ``"resnet50-imagenet"``.

    Returns:
        The :class:`Weights` record.

    Raises:
        InvalidArgumentError: for an unknown name (a ``ValueError``), listing the closest names.

    Example:
        >>> import reszoo
        >>> w = reszoo.get_weights("resnet56-cifar10")
        >>> w.arch, w.source.filename, w.mean
        ('resnet56', 'resnet56-4bfd9763.th', (0.485, 0.456, 0.406))
    """
    if isinstance(name, str):
        if name in WEIGHTS:
            return WEIGHTS[name]
        if name in _ALIASES:
            return WEIGHTS[_ALIASES[name]]
    names = list_pretrained()  # the canonical names first, then the aliases
    names += [n for n in list_pretrained(include_aliases=True) if n not in WEIGHTS]
    raise unknown_name_error("pretrained weights", str(name), names)


def default_weights(arch: str) -> Weights:
    """The entry ``create_model(arch, pretrained=True)`` loads (see ``DEFAULT_WEIGHTS``).

    Raises:
        InvalidArgumentError: ``arch`` has no pretrained weights; the message lists those that do.
    """
    if arch not in DEFAULT_WEIGHTS:
        archs = ", ".join(sorted(DEFAULT_WEIGHTS, key=arch_sort_key))
        raise InvalidArgumentError(f"No pretrained weights for {arch!r}; pretrained=True works for: {archs}.")
    return WEIGHTS[DEFAULT_WEIGHTS[arch]]


def find_by_repo(repo_id: str) -> Weights | None:
    """The entry whose Hub source is ``repo_id`` (e.g. ``"timm/resnet50.tv_in1k"``), if any."""
    for w in WEIGHTS.values():
        if isinstance(w.source, HubSource) and w.source.repo_id == repo_id:
            return w
    return None


def pretrained_table(pattern: str | None = None) -> list[dict[str, Any]]:
    """One JSON-ready row per weight entry (name, architecture, source, top-1, license, pre-processing).

    Args:
        pattern: fnmatch wildcards over names and aliases, as in :func:`list_pretrained`.

    Example:
        >>> [row["top1"] for row in pretrained_table("resnet110*")]
        [93.68]
    """
    rows = []
    for name in list_pretrained(pattern):
        w = WEIGHTS[name]
        src = w.source
        rows.append(
            {
                "name": w.name,
                "aliases": list(w.aliases),
                "arch": w.arch,
                "overrides": w.overrides,
                "dataset": w.dataset,
                "num_classes": w.num_classes,
                "top1": next((m.value for m in w.metrics), None),
                "source": f"hf-hub:{src.repo_id}" if isinstance(src, HubSource) else src.url,
                "sha256_prefix": getattr(src, "sha256_prefix", None),
                "license": w.license,
                **w.preprocessing(),
            }
        )
    return rows
