"""A reszoo folder from elsewhere (a ``save_pretrained`` folder, an ``hf-hub:`` repo, a run folder),
checked before anything is built: what its config may ask for, and whether its config describes
the tensors in its ``model.safetensors``.

A ``config.json`` is text anyone can edit: ``depths=[200000, 1, 1]`` would have reszoo build
modules for minutes, and ``crop_size: 200000`` would have ``predict`` ask for 120 GB per image.
So a folder's config must stay within :data:`LIMITS` (generous: several times what the largest
registered network needs), and its stages, widths, stem, input channels and classes must be those
of the tensors its safetensors header lists (read without loading the tensors). Only then is the
network built, on the meta device, and the tensors read into it.

Example:
    >>> from reszoo.models.resnet import ResNetConfig
    >>> check_limits(ResNetConfig(depths=(200, 200, 200)), where="config.json")  # resnet1202: within the limits
    >>> LIMITS["blocks"][0]
    2048
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from reszoo.errors import InvalidArgumentError, WeightsIntegrityError
from reszoo.models.resnet import ResNetConfig

__all__ = ["LIMITS", "MAX_CONFIG_BYTES", "Header", "check_header", "check_limits", "check_size"]

# name -> (limit, why that limit). Each is several times what the largest registered network (or a
# well-known dataset) needs, so no real model is refused, while a hostile file cannot make reszoo
# build for minutes or allocate tens of gigabytes.
LIMITS: dict[str, tuple[int, str]] = {
    "blocks": (2048, "resnet1202, the deepest registered network, has 600"),
    "stages": (8, "registered networks have 3 or 4"),
    "channels": (8192, "the widest registered stage is 512 wide, 2048 out of a bottleneck"),
    "in_chans": (1024, "RGB is 3; multispectral images have tens to hundreds of bands"),
    "stride": (32, "registered networks use 1 and 2"),
    "image_size": (1024, "224 is the largest registered input; a 1024 crop is 20x its pixels"),
    "num_classes": (100_000, "ImageNet-21k has 21,843 classes"),
}
# A config.json is a few kilobytes (a 100,000-class list of names is about 2 MB).
MAX_CONFIG_BYTES = 16 * 2**20

Header = Mapping[str, tuple[tuple[int, ...], str]]  # tensor name -> (shape, safetensors dtype)

_BLOCK_KEY = re.compile(r"layer(\d+)\.(\d+)\.")


def _over(where: str, what: str, key: str) -> InvalidArgumentError:
    limit, why = LIMITS[key]
    return InvalidArgumentError(
        f"{where}: {what}; a saved folder may ask for at most {limit:,} ({why}). Nothing was built: "
        "reszoo reads folders within these limits, so that a damaged or hostile file cannot exhaust the machine."
    )


def check_size(name: str, value: int | None, *, where: str) -> None:
    """An image size (``image_size``, ``crop_size``, ``resize_size``) within :data:`LIMITS`."""
    if value is not None and value > LIMITS["image_size"][0]:
        raise _over(where, f"{name}={value} pixels", "image_size")


def check_limits(config: ResNetConfig, *, where: str) -> None:
    """Refuse a config that asks for more than :data:`LIMITS` allows (``where`` names the file).

    Raises:
        InvalidArgumentError: naming the field, its value and the limit.
    """
    blocks = sum(config.depths)
    if len(config.depths) > LIMITS["stages"][0]:
        raise _over(where, f"depths={list(config.depths)} asks for {len(config.depths)} stages", "stages")
    if blocks > LIMITS["blocks"][0]:
        raise _over(where, f"depths={list(config.depths)} asks for {blocks} residual blocks", "blocks")
    for name in ("stem_width", "widths"):
        value = getattr(config, name)
        if max(value if isinstance(value, tuple) else (value,)) > LIMITS["channels"][0]:
            shown = list(value) if isinstance(value, tuple) else value
            raise _over(where, f"{name}={shown} asks for that many channels", "channels")
    if config.strides is not None and max(config.strides) > LIMITS["stride"][0]:
        raise _over(where, f"strides={list(config.strides)}", "stride")
    if config.in_chans > LIMITS["in_chans"][0]:
        raise _over(where, f"in_chans={config.in_chans}", "in_chans")
    if config.num_classes > LIMITS["num_classes"][0]:
        raise _over(where, f"num_classes={config.num_classes}", "num_classes")
    check_size("image_size", config.image_size, where=where)


def _found(header: Header) -> dict[str, object]:
    """What the tensors say about the network: stages and blocks, widths, stem, input channels, classes."""
    blocks: dict[int, set[int]] = {}
    for key in header:
        m = _BLOCK_KEY.match(key)
        if m:
            blocks.setdefault(int(m[1]), set()).add(int(m[2]))
    stages = max(blocks, default=0)
    found: dict[str, object] = {"depths": [len(blocks.get(s, ())) for s in range(1, stages + 1)]}
    widths = [header.get(f"layer{s}.0.conv1.weight", ((),))[0] for s in range(1, stages + 1)]
    if all(len(shape) == 4 for shape in widths):
        found["widths"] = [shape[0] for shape in widths]
    stem = header.get("conv1.weight", ((),))[0]
    if len(stem) == 4:
        found["stem_width"], found["in_chans"] = stem[0], stem[1]
    fc = header.get("fc.weight", ((),))[0]
    found["num_classes"] = fc[0] if len(fc) == 2 else 0
    return found


def check_header(config: ResNetConfig, header: Header, *, where: str) -> None:
    """The config must describe the tensors its weights file lists, before the network is built.

    Compares the stages and blocks per stage, the stage widths, the stem's width, the input
    channels and the classes; the full key and shape check follows on the built network
    (:func:`reszoo.weights.convert.fit_state_dict`).

    Raises:
        WeightsIntegrityError: naming each field, its value in config.json and in the file.
    """
    wanted = {
        "depths": list(config.depths),
        "widths": list(config.widths),
        "stem_width": config.stem_width,
        "in_chans": config.in_chans,
        "num_classes": config.num_classes,
    }
    found = _found(header)
    differ = [f"{k}={wanted[k]} (the tensors: {found[k]})" for k in wanted if k in found and found[k] != wanted[k]]
    if differ:
        raise WeightsIntegrityError(
            f"{where}: config.json does not describe the tensors of model.safetensors: {', '.join(differ)}. "
            "Nothing was built: one of the two files was changed or comes from another model."
        )
