"""reszoo: the ResNets of He et al. 2015 ("Deep Residual Learning for Image Recognition").

Example:
    >>> import reszoo
    >>> model = reszoo.create_model("resnet56")
    >>> sum(p.numel() for p in model.parameters())
    853018
"""

from reszoo._version import __version__
from reszoo.utils.lazy import lazy_face

__all__ = [
    "__version__",
    "ReszooError",
    # parts
    "BasicBlock",
    "Bottleneck",
    "CifarStem",
    "ClassifierHead",
    "DeepStem",
    "ImageNetStem",
    "PreActBasicBlock",
    "PreActBottleneck",
    "ResidualBlock",
    "ResNet",
    "ResNetConfig",
    "SqueezeExcite",
    "ZeroPadShortcut",
    "avg_down_projection",
    "conv1x1",
    "conv3x3",
    "init_weights",
    "make_shortcut",
    "make_stages",
    "projection",
    # registry
    "create_model",
    "default_config",
    "list_models",
    "register_model",
    "count_flops",
    "count_macs",
    "count_params",
    # benchmarks and the inference fast path
    "bench",
    "optimize_for_inference",
    # pre-processing and data loading
    "data",
    "transforms",
    # training, fine-tuning, your own images
    "train",
    "finetune_recipe",
    "scan_folder",
    "find_images",
    # evaluate and predict
    "evaluate",
    "EvalResult",
    "load_for_evaluation",
    "predict",
    "Prediction",
    # why a ResNet does worse than the paper's
    "diagnose",
    "Diagnosis",
    "Finding",
    # pretrained weights
    "get_weights",
    "list_pretrained",
    "load_pretrained",
    "push_to_hub",
    "save_pretrained",
    # architectures
    "cifar_config",
    "cifar_resnet",
    "imagenet_config",
    "imagenet_resnet",
    "plain18",
    "plain20",
    "plain32",
    "plain34",
    "plain44",
    "plain56",
    "plain110",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet34",
    "resnet44",
    "resnet50",
    "resnet56",
    "resnet101",
    "resnet110",
    "resnet152",
    "resnet1202",
    # the family of the later papers, from the same parts
    "preact_cifar_config",
    "resnext_cifar_config",
    "wrn_config",
    "preresnet20",
    "preresnet56",
    "preresnet110",
    "preresnet164",
    "preresnet1001",
    "resnetv2_50",
    "resnetv2_101",
    "wrn16_10",
    "wrn28_10",
    "wrn40_8",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "resnext29_32x4d",
    "resnext29_16x64d",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "resnet50d",
    "resnet101d",
    "seresnet50",
]

# Every name loads on first use (PEP 562), so `import reszoo` costs almost nothing and
# `reszoo --help` imports no torch; `from reszoo import resnet56` works as for any module.
_ZOO = (
    "cifar_config", "cifar_resnet", "imagenet_config", "imagenet_resnet",
    "plain18", "plain20", "plain32", "plain34", "plain44", "plain56", "plain110",
    "resnet18", "resnet20", "resnet32", "resnet34", "resnet44", "resnet50", "resnet56",
    "resnet101", "resnet110", "resnet152", "resnet1202",
)  # fmt: skip
_FAMILY = (
    "preact_cifar_config", "resnext_cifar_config", "wrn_config",
    "preresnet20", "preresnet56", "preresnet110", "preresnet164", "preresnet1001", "resnetv2_50", "resnetv2_101",
    "wrn16_10", "wrn28_10", "wrn40_8", "wide_resnet50_2", "wide_resnet101_2",
    "resnext29_32x4d", "resnext29_16x64d", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
    "resnet50d", "resnet101d", "seresnet50",
)  # fmt: skip
_NAMES = {
    "ReszooError": "reszoo.errors",
    **dict.fromkeys(
        ("BasicBlock", "Bottleneck", "PreActBasicBlock", "PreActBottleneck", "ResidualBlock", "conv1x1", "conv3x3"),
        "reszoo.models.blocks",
    ),
    **dict.fromkeys(("CifarStem", "DeepStem", "ImageNetStem"), "reszoo.models.stems"),
    **dict.fromkeys(
        ("ZeroPadShortcut", "avg_down_projection", "make_shortcut", "projection"), "reszoo.models.shortcuts"
    ),
    "SqueezeExcite": "reszoo.models.attention",
    **dict.fromkeys(
        ("ClassifierHead", "ResNet", "ResNetConfig", "init_weights", "make_stages"), "reszoo.models.resnet"
    ),
    **dict.fromkeys(("default_config", "list_models", "register_model"), "reszoo.models.registry"),
    "create_model": "reszoo.models._factory",
    **dict.fromkeys(("count_flops", "count_macs", "count_params"), "reszoo.models.summary"),
    **dict.fromkeys(_ZOO, "reszoo.models.zoo"),
    **dict.fromkeys(_FAMILY, "reszoo.models.family"),
    "optimize_for_inference": "reszoo.infer.optimize",
    "finetune_recipe": "reszoo.train.recipes",
    "scan_folder": "reszoo.data.imagefolder",
    "find_images": "reszoo.data.imagefiles",
    **dict.fromkeys(("evaluate", "EvalResult"), "reszoo.infer.evaluation"),
    "load_for_evaluation": "reszoo.infer.loading",
    **dict.fromkeys(("predict", "Prediction"), "reszoo.infer.prediction"),
    "diagnose": "reszoo.diagnosis.api",
    **dict.fromkeys(("Diagnosis", "Finding"), "reszoo.diagnosis.findings"),
    **dict.fromkeys(("get_weights", "list_pretrained"), "reszoo.weights.catalog"),
    "load_pretrained": "reszoo.weights.pretrained",
    "save_pretrained": "reszoo.weights.hub",
    "push_to_hub": "reszoo.weights.publish",
}
_MODULES = {
    "bench": "reszoo.bench",
    "data": "reszoo.data",
    "train": "reszoo.train",
    "transforms": "reszoo.data.transforms",
}
__getattr__, __dir__ = lazy_face(__name__, _NAMES, _MODULES)
