"""torch.hub entry points: every registered reszoo model, with ``pretrained=`` and config overrides.

    import torch
    model = torch.hub.load("OWNER/reszoo", "resnet56", pretrained=True)        # from GitHub
    model = torch.hub.load("path/to/reszoo", "resnet56", source="local")       # from a checkout
    torch.hub.list("path/to/reszoo", source="local")                          # every model name

Each entry point is ``create_model(name, pretrained=..., **overrides)``: ``pretrained=True`` loads
the architecture's default weights, a weight name (``"resnet56-cifar10-b"``), ``"hf-hub:owner/repo"``
or a ``save_pretrained`` folder loads those; ``num_classes=``, ``in_chans=`` and
``features_only=True`` work as in :func:`reszoo.create_model`. The entry points are generated from
the registry, so a newly registered model is one too.
"""

import os
import sys

dependencies = ["torch", "torchvision", "safetensors", "huggingface_hub"]


def _import_reszoo():
    """reszoo from this checkout's src/ (torch.hub puts only the repository root on sys.path).

    An installed reszoo that is already imported is used as it is.
    """
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
    added = os.path.isdir(os.path.join(src, "reszoo")) and src not in sys.path
    if added:
        sys.path.insert(0, src)
    try:
        import reszoo
        import reszoo.models  # registers the built-in architectures
    finally:
        if added:  # submodules imported later are found through the package's own __path__
            sys.path.remove(src)
    return reszoo


def _entry_point(reszoo, name):
    def entry(*, pretrained=False, **overrides):
        return reszoo.create_model(name, pretrained=pretrained, **overrides)

    entry.__name__ = entry.__qualname__ = name
    doc = (reszoo.models.registry.get_model_fn(name).__doc__ or name).strip().splitlines()[0]
    entry.__doc__ = (
        f"{doc}\n\n"
        f"pretrained: True for the default weights, a weight name for {name} ('reszoo list --pretrained'), "
        "'hf-hub:owner/repo' or a save_pretrained folder; other keywords are config overrides "
        "(num_classes=, in_chans=, features_only=True, ...)."
    )
    return entry


_reszoo = _import_reszoo()
for _name in _reszoo.list_models():
    globals()[_name] = _entry_point(_reszoo, _name)
del _name
