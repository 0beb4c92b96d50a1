"""Key-layout converters: other projects' checkpoints -> reszoo's (torchvision's) state_dict names,
and pretrained weights adapted to a changed network (``adapt_input_conv``, timm's rule).

State_dict key names are a file format. Every translation from another project's names lives in
one function here, and :func:`fit_state_dict` checks the result against the model before loading.

Example:
    >>> import torch
    >>> from reszoo.weights.convert import convert_state_dict
    >>> original = {"state_dict": {"module.linear.weight": torch.zeros(10, 64)}, "best_prec1": 91.78}
    >>> list(convert_state_dict("akamaster", original))
    ['fc.weight']
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from reszoo.errors import InvalidArgumentError, MissingInputError, WeightsIntegrityError
from reszoo.utils.checks import check_int, unknown_name_error

StateDict = dict[str, torch.Tensor]


def _unwrap(obj: Any, source: str) -> Mapping[str, Any]:
    """The state_dict inside a checkpoint: the object itself or its ``"state_dict"`` entry."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise InvalidArgumentError(
            f"Expected a state_dict (a mapping of names to tensors) from {source}, received {type(obj)}."
        )
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise InvalidArgumentError(f"The state_dict from {source} has entries that are not tensors: {bad[:5]}.")
    return obj


def _strip_prefix(key: str, prefix: str) -> str:
    return key[len(prefix) :] if key.startswith(prefix) else key


def convert_reszoo(obj: Any) -> StateDict:
    """reszoo's own layout (what :func:`reszoo.save_pretrained` writes): unchanged."""
    return dict(_unwrap(obj, "a reszoo checkpoint"))


def convert_torchvision(obj: Any) -> StateDict:
    """torchvision / timm layout: the same names as ours; a DataParallel ``module.`` prefix is dropped.

    timm's ResNet (``timm/models/resnet.py``) keeps torchvision's key names, so its Hub files need
    no renaming: torchvision's own weights (``timm/resnet50.tv_in1k``, ``timm/resnext50_32x4d.tv_in1k``,
    ``timm/wide_resnet50_2.tv2_in1k``) and timm's variants built from the same names, whose extra
    parts reszoo names as timm does: the deep stem ``conv1.0`` ... ``conv1.6`` and average-pool
    shortcut ``downsample.1``/``downsample.2`` of ``resnet50d``, the ``se.fc1``/``se.fc2`` of
    ``seresnet50``.
    """
    return {_strip_prefix(k, "module."): v for k, v in _unwrap(obj, "a torchvision-style checkpoint").items()}


def convert_chenyaofo(obj: Any) -> StateDict:
    """chenyaofo/pytorch-cifar-models: a plain state_dict with torchvision's names.

    Its ``CifarResNet`` has ``conv1``/``bn1``, ``layer1..3`` of basic blocks whose projection
    shortcut is ``downsample.0`` (1x1 conv) and ``downsample.1`` (BN), and ``fc``: exactly our
    option-B CIFAR network, so the only work is the checks in :func:`fit_state_dict`.
    """
    return convert_torchvision(obj)


def convert_akamaster(obj: Any) -> StateDict:
    """akamaster/pytorch_resnet_cifar10: ``{"state_dict": ..., "best_prec1": ...}`` saved from DataParallel.

    Every key starts with ``module.``, and the classifier is ``linear`` (ours is ``fc``, as in
    torchvision). The option-A shortcut has no parameters, so there are no shortcut keys; the
    files predate BatchNorm's ``num_batches_tracked`` buffer, which :func:`fit_state_dict` adds.
    """
    out = {}
    for key, value in _unwrap(obj, "an akamaster checkpoint").items():
        key = _strip_prefix(key, "module.")
        if key.startswith("linear."):
            key = "fc." + key[len("linear.") :]
        out[key] = value
    return out


def _timm_resnetv2_key(key: str) -> str:
    block = re.fullmatch(r"stages\.(\d+)\.blocks\.(\d+)\.(.*)", key)
    if block is not None:
        stage, index, rest = block.groups()
        rest = re.sub(r"^norm([123])\.", r"bn\1.", rest)  # normK comes before convK: our bnK
        rest = rest.replace("downsample.conv.", "downsample.0.")
        return f"layer{int(stage) + 1}.{index}.{rest}"
    for theirs, ours in (("stem.conv.", "conv1."), ("norm.", "final_norm."), ("head.fc.", "fc.")):
        if key.startswith(theirs):
            return ours + key[len(theirs) :]
    return key  # anything else is reported by fit_state_dict as unexpected


def convert_timm_resnetv2(obj: Any) -> StateDict:
    """timm's ResNetV2 (``resnetv2_50``, ``resnetv2_101``: pre-activation, 7x7 stem) -> reszoo's names.

    timm names the parts by role (``stem.conv``, ``stages.0.blocks.0.norm1``,
    ``downsample.conv``, ``norm``, ``head.fc``); reszoo keeps torchvision's scheme for them as for
    every ResNet (``conv1``, ``layer1.0.bn1``, ``downsample.0``, ``final_norm``, ``fc``): stage
    ``i`` becomes ``layer{i+1}``, a block's ``normK`` (the norm before ``convK``) becomes ``bnK``.

    timm's classifier here is a 1x1 convolution (``use_conv=True``): its ``(classes, features, 1, 1)``
    weight becomes our ``nn.Linear``'s ``(classes, features)``, the same numbers.

    Only this layout is covered. The deep-stem, average-pool variants (``resnetv2_50d``) name their
    pooled projection ``downsample.conv`` too, where reszoo has ``downsample.1``, and the BiT models
    use weight-standardised convolutions, which reszoo does not build.
    """
    out = {}
    for key, value in _unwrap(obj, "a timm ResNetV2 checkpoint").items():
        key = _timm_resnetv2_key(_strip_prefix(key, "module."))
        out[key] = value.flatten(1) if key == "fc.weight" and value.ndim == 4 else value
    return out


CONVERTERS: dict[str, Callable[[Any], StateDict]] = {
    "reszoo": convert_reszoo,
    "torchvision": convert_torchvision,
    "chenyaofo": convert_chenyaofo,
    "akamaster": convert_akamaster,
    "timm_resnetv2": convert_timm_resnetv2,
}


def convert_state_dict(converter: str, obj: Any) -> StateDict:
    """Apply the named converter to a loaded checkpoint object.

    Args:
        converter: one of ``CONVERTERS``.
        obj: what ``torch.load`` or ``safetensors.torch.load_file`` returned.

    Returns:
        A state_dict with reszoo's key names, tensors made contiguous (safetensors needs that).

    Raises:
        InvalidArgumentError: an unknown converter, or ``obj`` is not a state_dict of tensors.
    """
    if converter not in CONVERTERS:
        raise unknown_name_error("converter", str(converter), sorted(CONVERTERS))
    return {k: v.detach().contiguous() for k, v in CONVERTERS[converter](obj).items()}


def read_checkpoint(path: str | os.PathLike[str]) -> Any:
    """Read a local checkpoint without executing code from it.

    ``.safetensors`` files are read with safetensors; anything else (legacy ``.th``/``.pt``/``.pth``)
    with ``torch.load(weights_only=True, map_location="cpu")``, which refuses arbitrary pickles,
    and maps tensors saved on a GPU to the CPU.

    Raises:
        MissingInputError: the file does not exist (a ``FileNotFoundError``).
        InvalidArgumentError: the file is truncated, corrupted or not a checkpoint (a ``ValueError``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingInputError(f"No checkpoint file at {path!r}.")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path)
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # torch and safetensors raise many types for a damaged file
        refused = _code_in_pickle(err)
        if refused is not None:
            raise InvalidArgumentError(
                f"Checkpoint {path!r} holds Python objects, not only tensors ({refused}). reszoo reads "
                "checkpoints without running code from them and will not unpickle this one: ask whoever "
                "published it for a safetensors file or a plain state_dict of tensors (a file of your own: "
                "save model.state_dict() where you trained it)."
            ) from None
        raise InvalidArgumentError(
            f"Could not read checkpoint {path!r} ({os.path.getsize(path):,} bytes): it is truncated, "
            f"corrupted or not a checkpoint ({type(err).__name__}: {_first_line(err)})."
        ) from None


def _code_in_pickle(err: Exception) -> str | None:
    """What a pickle held that ``torch.load(weights_only=True)`` refused to build (``"GLOBAL print"``),
    or None when ``err`` is not that refusal (a damaged file, say).

    torch's message goes on to explain how to load the file anyway, by unpickling it with its full
    powers, which runs whatever code the file holds. reszoo never relays that advice: the files it
    reads come from elsewhere.
    """
    found = re.search(r"Unsupported global: (GLOBAL \S+)", str(err))
    return found[1] if found else None


def load_error_reason(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` (or safetensors) could not read a file, in one line, for a
    message: the Python object it refused to unpickle, or the loader's own reason; never torch's
    advice to unpickle the file anyway."""
    refused = _code_in_pickle(err)
    if refused is not None:
        return f"it holds Python objects ({refused}), which reszoo never unpickles"
    return f"{type(err).__name__}: {_first_line(err)}"


def _first_line(err: Exception) -> str:
    """The reason an error gives, in one line of at most 200 characters, without torch's advice to
    unpickle the file (the weights-only unpickler's own reason where there is one)."""
    text = str(err)
    reason = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    line = reason[1] if reason else next((x.strip() for x in text.splitlines() if x.strip()), "")
    return "" if "weights_only" in line else line[:200]


def _is_nbt(key: str) -> bool:
    return key.endswith(".num_batches_tracked")


def fit_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module, *, skip: Iterable[str] = (), source: str = "the weights"
) -> StateDict:
    """Check a converted state_dict against ``model`` and return exactly the keys it expects.

    BatchNorm's ``num_batches_tracked`` counter is reconciled both ways: missing ones (older
    checkpoints, timm's Hub files) are added as 0 and extra ones dropped, because the counter only
    matters for ``momentum=None`` training, never for evaluation or fine-tuning with momentum.

    Args:
        state_dict: converted weights.
        model: the model they must fit.
        skip: keys that are not loaded (e.g. ``fc.weight`` when the head is replaced).
        source: names the weights in error messages.

    Returns:
        The state_dict to load with ``strict=True``.

    Raises:
        WeightsIntegrityError: (a ``RuntimeError``) listing missing keys, unexpected keys and shape
            mismatches.
    """
    skip = set(skip)
    expected = {k: v for k, v in model.state_dict().items() if k not in skip}
    out = {k: v for k, v in state_dict.items() if k not in skip}
    for key in list(out):
        if _is_nbt(key) and key not in expected:
            del out[key]
    for key in expected:
        if _is_nbt(key) and key not in out:
            out[key] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(expected) - set(out))
    unexpected = sorted(set(out) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(out[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(out) & set(expected)
        if tuple(out[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or shapes:
        arch = getattr(getattr(model, "config", None), "depth", None)
        what = f"this ResNet (depth {arch})" if arch else type(model).__name__

        def show(keys: list[str]) -> str:
            return ", ".join(keys[:10]) + (f", ... ({len(keys)} in all)" if len(keys) > 10 else "")

        parts = [
            f"missing keys: {show(missing)}" if missing else "",
            f"unexpected keys: {show(unexpected)}" if unexpected else "",
            f"shape mismatches: {show(shapes)}" if shapes else "",
        ]
        raise WeightsIntegrityError(f"{source} do not fit {what}: " + "; ".join(p for p in parts if p) + ".")
    return check_values(out, model, source=source)


def _show(keys: list[str]) -> str:
    return ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")


def check_values(state_dict: Mapping[str, torch.Tensor], model: nn.Module, *, source: str) -> StateDict:
    """The tensors as ``model`` holds them, or one error naming the first tensors that cannot be.

    A floating-point weight is converted to the model's dtype: a model saved in float16 or
    bfloat16 loads exactly (every 16-bit value is a float32 value), one saved in float64 rounds to
    float32's precision, which is what the model computes in. Refusing them would refuse models
    people save on purpose (``model.half()``); loading them as they are would fail later, at the
    first forward pass, with a dtype error. Integer counters (BatchNorm's ``num_batches_tracked``)
    become int64. A tensor of another kind (an integer or boolean weight, a float counter), or a
    weight holding NaN or an infinity, is refused: it would give NaN for every image, or nothing
    meaningful, and no conversion can repair it. Keys the model does not have pass unchanged
    (:func:`fit_state_dict` reports them).

    Raises:
        WeightsIntegrityError: naming ``source`` and the first offending tensors with their dtypes.
    """
    expected = model.state_dict()
    out: StateDict = {}
    wrong, infinite = [], []
    for key, tensor in state_dict.items():
        want = expected.get(key)
        if want is not None and not isinstance(tensor, torch.Tensor):
            wrong.append(f"{key} ({type(tensor).__name__})")
            continue
        if want is not None:
            is_float = tensor.is_floating_point()
            if want.is_floating_point() != is_float or tensor.dtype == torch.bool or tensor.is_complex():
                wrong.append(f"{key} ({str(tensor.dtype).removeprefix('torch.')})")
                continue
            tensor = tensor.to(want.dtype)
            if is_float and not bool(torch.isfinite(tensor).all()):
                infinite.append(key)
        out[key] = tensor
    if wrong:
        dtype = str(next((t.dtype for t in expected.values() if t.is_floating_point()), torch.float32))
        raise WeightsIntegrityError(
            f"{source}: {len(wrong)} tensor(s) of a type a ResNet cannot hold: {_show(wrong)}. Weights must be "
            f"floating point (float16, bfloat16 and float64 are converted to {dtype.removeprefix('torch.')}) "
            "and BatchNorm's num_batches_tracked an integer; the file is damaged or holds something else."
        )
    if infinite:
        raise WeightsIntegrityError(
            f"{source}: {len(infinite)} tensor(s) hold NaN or infinite values: {_show(infinite)}. Every prediction "
            "would be NaN; the file is damaged, or the weights come from a training run that diverged."
        )
    return out


# -- pretrained weights for a changed network ----------------------------------------------------


def input_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The input convolution (the first one registered: ``conv1`` in the named stems) and its weight's key."""
    name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    return f"{name}.weight", conv


def adapt_input_conv(in_chans: int, weight: torch.Tensor) -> torch.Tensor:
    """RGB filters of a first convolution, adapted to ``in_chans`` input channels (timm's rule).

    ``in_chans=1`` sums the three filters: a grey image gives the response its RGB copy gave.
    More channels (or 2) repeat R, G, B cyclically and scale by ``3 / in_chans``, which keeps the
    response to an input whose channels all carry the same image.

    Args:
        in_chans: input channels of the new convolution.
        weight: the pretrained ``(out, 3, k, k)`` weight.

    Returns:
        An ``(out, in_chans, k, k)`` weight of the same dtype (``weight`` itself if it fits).

    Raises:
        InvalidArgumentError: ``weight`` has other than 3 input channels (and not ``in_chans``).
    """
    check_int("in_chans", in_chans, minimum=1)
    have = weight.shape[1]
    if have == in_chans:
        return weight
    if have != 3:
        raise InvalidArgumentError(
            f"in_chans={in_chans}: a first convolution of {have} input channels cannot be adapted; "
            "only RGB (3-channel) weights are summed or repeated."
        )
    w = weight.float()
    if in_chans == 1:
        out = w.sum(dim=1, keepdim=True)
    else:
        out = w.repeat(1, math.ceil(in_chans / 3), 1, 1)[:, :in_chans] * (3 / in_chans)
    return out.to(weight.dtype)
