"""Training: the paper's recipes, the loop, the run folder, the Fig. 6 experiment.

``recipes`` (``Recipe`` and the paper's presets, plain data) -> ``batches`` (the batch streams a
recipe asks for) -> ``loop`` (the training loop as named steps, with ``_paramgroups`` and
``_interrupts``) -> ``trainer`` (``fit``, ``train_model``); ``runfolder`` owns the run folder's
files, ``experiment`` the degradation experiment.

This face offers the names a training script uses, each imported on first use, so that reading
a recipe costs no torch import.

Example:
    >>> from reszoo import train
    >>> train.cifar_recipe().lr
    0.1
"""

from reszoo.utils.lazy import lazy_face

_NAMES = {
    **dict.fromkeys(("fit", "train_model"), "reszoo.train.trainer"),
    **dict.fromkeys(
        (
            "CIFAR_ITERS_PER_EPOCH",
            "DATASETS",
            "IMAGENET_ITERS_PER_EPOCH",
            "Recipe",
            "cifar_recipe",
            "finetune_recipe",
            "imagenet_recipe",
            "learning_rate",
            "paper_recipe",
            "preact_cifar_recipe",
            "recipe_fields",
            "resnext_cifar_recipe",
            "wrn_cifar_recipe",
        ),
        "reszoo.train.recipes",
    ),
    **dict.fromkeys(
        ("CHECKPOINT_FORMAT", "CHECKPOINT_NAME", "HISTORY_NAME", "RUN_NAME", "load_checkpoint", "state_digest"),
        "reszoo.train.runfolder",
    ),
    **dict.fromkeys(("DEVICES", "SCHEDULES"), "reszoo.utils.choices"),
    "FitResult": "reszoo.train.loop",
    "SyntheticTask": "reszoo.train.batches",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_face(__name__, _NAMES)
