"""Pretrained models by name: one resolver, one network built per load.

:func:`resolve` decides what a name means, once, for :func:`load_pretrained`, :func:`download`
and :func:`convert_checkpoint` alike:

- a catalog name or alias (``"resnet110-cifar"``, see :func:`reszoo.list_pretrained`): the entry
  and its source, a Hub repo (:mod:`reszoo.weights.hub`) or an original URL (:mod:`reszoo.weights.cache`);
- ``"hf-hub:owner/repo[@revision]"``: the catalog entry hosted there (e.g. a timm repo), else a
  repo in the reszoo folder format;
- a local folder written by :func:`reszoo.save_pretrained`;
- with ``checkpoint=``, a local copy of a catalog entry's original file.

A load reads top-down, each step a call from here into the module that owns it, none calling
back: resolve (the catalog) -> fetch and verify (:mod:`reszoo.weights.cache` for URLs,
:mod:`reszoo.weights.hub` for the Hub) -> convert (:mod:`reszoo.weights.convert`) -> build the
network once, from its registered config, on the meta device (no initialisation cost) -> fit the
weights to it (which also guards what goes into the cache) and load them by assignment.

Example::

    import reszoo
    model = reszoo.load_pretrained("resnet110-cifar")                 # the paper's ResNet-110, CIFAR-10
    model = reszoo.load_pretrained("resnet50-imagenet", device="cuda")
    model = reszoo.load_pretrained("out/")                            # a save_pretrained folder
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from reszoo.errors import InvalidArgumentError, MissingInputError, WeightsIntegrityError
from reszoo.models.registry import default_config
from reszoo.models.resnet import ResNet, ResNetConfig
from reszoo.utils.checks import check_bool, check_int, check_path, check_str, closest_names, type_error
from reszoo.utils.devices import resolve_device
from reszoo.weights.cache import (
    converted_path,
    discard,
    fetch_original,
    read_converted,
    read_header,
    read_safetensors,
    store_converted,
    verify_file,
)
from reszoo.weights.catalog import DEFAULT_WEIGHTS, default_weights, find_by_repo, get_weights, list_pretrained
from reszoo.weights.convert import (
    StateDict,
    adapt_input_conv,
    convert_state_dict,
    fit_state_dict,
    input_conv,
    read_checkpoint,
)
from reszoo.weights.hub import (
    CONFIG_NAME,
    HF_PREFIX,
    WEIGHTS_NAME,
    folder_files,
    hub_download,
    hub_files,
    parse_hub_name,
    read_hub_file,
    read_hub_header,
    read_saved,
    save_pretrained,
)
from reszoo.weights.records import HubSource, LocalSource, Source, UrlSource, Weights, WeightsInfo
from reszoo.weights.untrusted import check_header

__all__ = [
    "Resolved",
    "convert_checkpoint",
    "download",
    "entry_config",
    "load_pretrained",
    "pretrained_model",
    "resolve",
    "resolve_pretrained",
]

_NAME = "a weight name (see reszoo.list_pretrained()), 'hf-hub:owner/repo[@revision]' or a directory"
_HEAD_KEYS = ("fc.weight", "fc.bias")


class Resolved(NamedTuple):
    """What a name means: the catalog entry (if any) and where the weights are."""

    entry: Weights | None  # None for a reszoo folder (local or a Hub repo): its config.json describes it
    location: Source  # a HubSource with the revision to read, a UrlSource, or a LocalSource (folder or file)


# -- one resolver ---------------------------------------------------------------------------------


def resolve(name: str | os.PathLike[str], *, revision: str | None = None, checkpoint: str | None = None) -> Resolved:
    """Turn a name into (entry, location) without downloading or reading anything.

    Args:
        name: a catalog name or alias, ``"hf-hub:owner/repo[@revision]"`` or a local folder.
        revision: a Hub branch, tag or commit; refused for sources that are not on the Hub.
        checkpoint: a local copy of the entry's original file (then ``name`` must be a catalog entry).

    Raises:
        InvalidArgumentError: an unknown name (with the closest names), a malformed ``hf-hub:``
            name, or a revision for a source that has none.
        MissingInputError: a name that is a path to a folder that does not exist.
    """
    is_path = isinstance(name, os.PathLike)
    name = os.fspath(name)
    if checkpoint is not None:
        _refuse_revision(revision, f"checkpoint={checkpoint!r} is a local file")
        return Resolved(get_weights(name), LocalSource(checkpoint))
    if name.startswith(HF_PREFIX):
        repo_id, rev = parse_hub_name(name, revision)
        entry = find_by_repo(repo_id)
        if entry is None:
            return Resolved(None, HubSource(repo_id=repo_id, filename=WEIGHTS_NAME, revision=rev or "main"))
        return Resolved(entry, dataclasses.replace(entry.source, revision=rev or entry.source.revision))
    entry, unknown = None, None
    if not is_path:  # a pathlib.Path is a folder, never a catalog name
        try:
            entry = get_weights(name)
        except InvalidArgumentError as err:
            unknown = err
    if entry is not None:
        if isinstance(entry.source, HubSource):
            return Resolved(entry, dataclasses.replace(entry.source, revision=revision or entry.source.revision))
        _refuse_revision(revision, f"{entry.name!r} is downloaded from {entry.source.url}")
        return Resolved(entry, entry.source)
    folder = _folder(name, is_path=is_path, unknown=unknown)
    _refuse_revision(revision, f"{name!r} is a local directory")
    return Resolved(None, LocalSource(folder))


def _looks_like_path(name: str) -> bool:
    seps = {os.sep, "/", os.altsep} - {None}
    return any(s in name for s in seps) or name.startswith(("~", "."))


def _folder(name: str, *, is_path: bool, unknown: InvalidArgumentError | None) -> str:
    """``name`` as an existing folder; a path-looking name that is none says so, anything else is unknown."""
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        return os.path.abspath(path)
    if os.path.exists(path):
        raise MissingInputError(f"{name!r} is a file, not a folder; load_pretrained takes {_NAME}.")
    if is_path or _looks_like_path(name):
        raise MissingInputError(
            f"The folder {name!r} does not exist ({os.path.abspath(path)}); load_pretrained takes {_NAME} "
            "written by reszoo.save_pretrained."
        )
    raise InvalidArgumentError(
        f"{unknown} Also accepted: 'hf-hub:owner/repo' or a directory written by save_pretrained."
    )


def _refuse_revision(revision: str | None, where: str) -> None:
    if revision is not None:
        raise InvalidArgumentError(f"revision={revision!r} applies to Hub repos only, but {where}.")


def _local_checkpoint(checkpoint: Any, check_hash: Any) -> str | None:
    """``checkpoint`` as a str; ``check_hash=False`` is refused without one (downloads are always verified)."""
    check_bool("check_hash", check_hash)
    if checkpoint is None:
        if not check_hash:
            raise InvalidArgumentError(
                "check_hash=False applies to a local checkpoint= only; downloads are always verified."
            )
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise type_error("checkpoint", checkpoint, "a path to a local file or None")
    return os.fspath(checkpoint)


# -- one build per load ---------------------------------------------------------------------------


def _build(config: ResNetConfig) -> ResNet:
    """The network a config describes, on the meta device: no initialisation, the weights come next."""
    with torch.device("meta"):
        return ResNet(config)


def _materialise(model: ResNet, fitted: StateDict, w: WeightsInfo, *, device: torch.device | None) -> ResNet:
    """Load the fitted weights by assignment (no copy, no init); eval mode, on ``device``."""
    model.load_state_dict(fitted, strict=True, assign=True)
    leftover = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if leftover:
        raise WeightsIntegrityError(f"Weights {w.name!r}: these tensors were not loaded: {leftover[:10]}.")
    if device is not None:
        model.to(device)
    model.eval()
    model.pretrained_weights = w
    return model


def _fill(
    model: ResNet, fitted: StateDict, w: WeightsInfo, *, device: torch.device | None, overrides: dict[str, Any]
) -> ResNet:
    """``model`` (the weights' own network) or, with ``overrides``, the one they ask for, filled by the
    same tensors.

    The weights were fitted (and cached) against their own network; a changed ``in_chans`` adapts
    the first convolution (:func:`adapt_input_conv`). Other changes must keep every key and shape.
    """
    config = model.config
    wanted = config.replace(**overrides) if overrides else config
    if wanted != config:
        model = _build(wanted)
        key, conv = input_conv(model)
        if key in fitted and fitted[key].shape[1] != conv.in_channels:
            fitted = {**fitted, key: adapt_input_conv(conv.in_channels, fitted[key])}
        changed = ", ".join(f"{k}={v!r}" for k, v in overrides.items() if getattr(config, k) != v)
        fitted = fit_state_dict(fitted, model, source=f"Weights {w.name!r} with {changed}")
    return _materialise(model, fitted, w, device=device)


def _read_local(w: Weights, path: str, *, device: torch.device | None, check_hash: bool) -> StateDict:
    """A local copy of an entry's file, checked against its checksum (unless ``check_hash=False``), converted."""
    if not os.path.isfile(path):
        raise MissingInputError(f"checkpoint={path!r} is not a file (a local copy of {w.source.filename} expected).")
    if path.endswith(".safetensors"):
        return convert_state_dict(w.converter, read_safetensors(path, device=device))
    if check_hash:
        try:
            verify_file(path, w.source, label=w.name)
        except WeightsIntegrityError as err:
            raise WeightsIntegrityError(f"{err} Pass check_hash=False to load a file changed on purpose.") from None
    return convert_state_dict(w.converter, read_checkpoint(path))


def _url_weights(w: Weights, model: ResNet, *, device: torch.device | None, force: bool = False) -> StateDict:
    """A URL entry's weights, fitted to ``model``: from the converted cache, else fetched, verified,
    converted, fitted and cached. An original that passed its checksum but cannot be read, converted
    or fitted is deleted, so the next call downloads it again instead of failing on it forever."""
    cached = None if force else read_converted(w, device=device)
    if cached is not None:
        return fit_state_dict(cached, model, source=f"Weights {w.name!r} ({converted_path(w)})")
    original, sha256 = fetch_original(w, force=force)
    try:
        converted = convert_state_dict(w.converter, read_checkpoint(original))
        fitted = fit_state_dict(converted, model, source=f"Weights {w.name!r} from {original}")
    except (ValueError, RuntimeError):
        discard(original)
        raise
    store_converted(w, fitted, source_sha256=sha256)
    return fitted


def _entry_weights(
    w: Weights, location: Source, model: ResNet, *, device: torch.device | None, check_hash: bool
) -> StateDict:
    """A catalog entry's weights from where ``location`` says, converted to our layout and fitted to ``model``."""
    if isinstance(location, UrlSource):
        return _url_weights(w, model, device=device)
    if isinstance(location, HubSource):
        path = hub_download(location.repo_id, location.filename, revision=location.revision, w=w)
        state_dict = convert_state_dict(w.converter, read_hub_file(path, label=w.name, device=device))
        return fit_state_dict(state_dict, model, source=f"Weights {w.name!r} ({location.repo_id}/{location.filename})")
    state_dict = _read_local(w, location.path, device=device, check_hash=check_hash)
    return fit_state_dict(state_dict, model, source=f"Checkpoint {location.path!r} for {w.name!r}")


def entry_config(w: Weights) -> ResNetConfig:
    """The network an entry's weights fit: its architecture's config with the entry's overrides."""
    return default_config(w.arch).replace(**w.overrides)


def _load_folder(
    location: HubSource | LocalSource, *, device: torch.device | None, overrides: dict[str, Any], arch: str | None
) -> ResNet:
    """A model from a reszoo folder: config.json rebuilds the network, model.safetensors fills it.

    The folder may come from anyone, so nothing is built before its config is checked: its fields
    and sizes (``read_saved``, within :data:`reszoo.weights.untrusted.LIMITS`), then against the
    tensors the weights file's header lists; then the network is built on the meta device and the
    tensors are read into it.
    """
    hub = isinstance(location, HubSource)
    if hub:
        label = f"{HF_PREFIX}{location.repo_id}"
        c_path = hub_download(location.repo_id, CONFIG_NAME, revision=location.revision)
    else:
        c_path, w_path = folder_files(location.path)
    config, info = read_saved(c_path, location)
    if arch is not None:
        _check_folder_arch(arch, config, info, location)
    if hub:
        w_path = hub_download(location.repo_id, WEIGHTS_NAME, revision=location.revision)
        header = read_hub_header(w_path, label=label)
    else:
        header = read_header(w_path)
    check_header(config, header, where=w_path)
    model = _build(config)
    state_dict = read_hub_file(w_path, label=label, device=device) if hub else read_safetensors(w_path, device=device)
    fitted = fit_state_dict(state_dict, model, source=f"Weights {w_path}")
    return _fill(model, fitted, info, device=device, overrides=overrides)


def _load(
    resolved: Resolved,
    *,
    device: torch.device | None,
    check_hash: bool = True,
    overrides: dict[str, Any] | None = None,
    arch: str | None = None,
) -> ResNet:
    """The model a resolved name describes (with ``overrides``), with its weights: fetched and verified,
    converted, then the network built once and loaded.

    ``arch``: the registered name a folder must hold (``create_model``'s check).
    """
    w, location = resolved
    overrides = overrides or {}
    if w is None:
        return _load_folder(location, device=device, overrides=overrides, arch=arch)
    model = _build(entry_config(w))
    fitted = _entry_weights(w, location, model, device=device, check_hash=check_hash)
    return _fill(model, fitted, w, device=device, overrides=overrides)


def _new_head_warning(w: Weights, num_classes: int) -> str:
    return (
        f"{w.name}: num_classes={num_classes} differs from the weights' {w.num_classes}; the classifier is "
        f"freshly initialised and these weight keys were not loaded: {', '.join(_HEAD_KEYS)}."
    )


# -- the public calls -----------------------------------------------------------------------------


def load_pretrained(
    name: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    check_hash: bool = True,
) -> ResNet:
    """A ResNet with pretrained weights, in eval mode.

    Args:
        name: a weight name or alias (``"resnet110-cifar"``, see :func:`list_pretrained`),
            ``"hf-hub:owner/repo[@revision]"`` (a repo written by :func:`push_to_hub`), or a local
            directory written by :func:`save_pretrained`.
        num_classes: a different number of classes: every weight but the classifier is loaded,
            the classifier is freshly initialised, and a warning names the skipped keys.
        device: where the model goes (tensors are read straight to it); ``None`` keeps the CPU,
            ``"auto"`` takes the best device present.
        checkpoint: a local copy of the entry's original file (e.g. ``"resnet20-12fca82f.th"``),
            checked against its sha256 prefix and converted; or a ``.safetensors`` in our layout.
        revision: a Hub branch, tag or commit for Hub entries and ``hf-hub:`` repos (default: the
            entry's, or ``main``); refused for other sources.
        check_hash: check ``checkpoint`` against the entry's checksum (``False`` only with
            ``checkpoint``: downloads are always verified).

    Returns:
        The model; ``model.pretrained_weights`` is its :class:`~reszoo.weights.WeightsInfo` record
        (``model.pretrained_weights.transforms()`` is its evaluation pre-processing).

    Raises:
        InvalidArgumentError, ArgumentTypeError: unknown name (with the closest names) or bad
            arguments (both are ``ValueError``).
        MissingInputError: a folder or ``checkpoint`` file that does not exist.
        WeightsNotCachedError: offline (or the source is unreachable) and not cached.
        WeightsIntegrityError: a checksum mismatch, a truncated or corrupted file (never kept), or
            weights that do not fit the architecture (missing/unexpected keys listed).

    Example::

        model = reszoo.load_pretrained("resnet56-cifar10", num_classes=100)   # new head, rest loaded
    """
    # Every argument is checked before anything is downloaded.
    if not isinstance(name, (str, os.PathLike)):
        raise type_error("name", name, _NAME)
    check_int("num_classes", num_classes, minimum=1, optional=True)
    device = None if device is None else resolve_device(device)
    check_str("revision", revision, optional=True, what="a Hub branch, tag or commit")
    checkpoint = _local_checkpoint(checkpoint, check_hash)
    resolved = resolve(name, revision=revision, checkpoint=checkpoint)
    model = _load(resolved, device=device, check_hash=check_hash)
    w = model.pretrained_weights
    if num_classes is not None and num_classes != w.num_classes:
        warnings.warn(_new_head_warning(w, num_classes), UserWarning, stacklevel=2)
        model.reset_classifier(num_classes)
        model.eval()
    return model


def pretrained_model(arch: str, pretrained: bool | str | os.PathLike[str], **overrides: Any) -> nn.Module:
    """``create_model(arch, pretrained=...)``: the registered ``arch`` with pretrained weights.

    Args:
        arch: a registered model name.
        pretrained: ``True`` for the architecture's default entry (``reszoo.weights.catalog.DEFAULT_WEIGHTS``),
            or what :func:`load_pretrained` takes: a weight name or alias for ``arch``,
            ``"hf-hub:owner/repo"``, or a folder written by :func:`reszoo.save_pretrained`.
        **overrides: config fields. ``num_classes`` other than the weights' keeps the backbone and
            re-initialises the classifier (with a warning; ``0``: no classifier, quietly), ``in_chans``
            other than 3 adapts the first convolution (:func:`adapt_input_conv`); any other field must
            leave the weights' keys and shapes as they are (``drop_path_rate=0.1`` does).

    Returns:
        The model in training mode, as ``create_model`` returns one (``load_pretrained`` returns
        eval mode); ``model.pretrained_weights`` is its :class:`~reszoo.weights.WeightsInfo` record.
    """
    resolved = resolve_pretrained(arch, pretrained)
    num_classes = overrides.pop("num_classes", None)
    check_int("num_classes", num_classes, minimum=0, optional=True)
    if resolved.entry is not None:  # every override is checked before anything is downloaded
        default_config(arch).replace(**resolved.entry.overrides).replace(**overrides)
    model = _load(resolved, device=None, overrides=overrides, arch=arch)
    w = model.pretrained_weights
    if num_classes is not None and num_classes != w.num_classes:
        if num_classes:
            warnings.warn(_new_head_warning(w, num_classes), UserWarning, stacklevel=3)
        model.reset_classifier(num_classes)
    return model.train()


def resolve_pretrained(arch: str, pretrained: Any) -> Resolved:
    """What ``create_model(arch, pretrained=...)`` loads, checked to be weights for ``arch``; nothing is read.

    Raises:
        InvalidArgumentError: an unknown name, or weights for another architecture; the message
            lists the weight names for ``arch``.
        ArgumentTypeError: ``pretrained`` is neither a bool, a str nor a path.
    """
    if pretrained is True:
        return resolve(default_weights(arch).name)
    if not isinstance(pretrained, (str, os.PathLike)):
        raise type_error("pretrained", pretrained, _PRETRAINED)
    text = os.fspath(pretrained)
    catalog = list_pretrained(include_aliases=True)
    is_name = isinstance(pretrained, str) and not text.startswith(HF_PREFIX) and not _looks_like_path(text)
    if is_name and text not in catalog and not os.path.isdir(os.path.expanduser(text)):
        close = closest_names(text, catalog)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise InvalidArgumentError(f"Unknown pretrained={text!r}.{hint} {_choices(arch)}")
    if not is_name and not text.startswith(HF_PREFIX) and not os.path.isdir(os.path.expanduser(text)):
        raise MissingInputError(f"pretrained={text!r} is not a folder ({os.path.abspath(text)}). {_choices(arch)}")
    resolved = resolve(pretrained)
    if resolved.entry is not None and resolved.entry.arch != arch:
        raise InvalidArgumentError(
            f"pretrained={text!r} holds weights for {resolved.entry.arch}, not {arch}. {_choices(arch)}"
        )
    return resolved


_PRETRAINED = "True, False, a weight name, 'hf-hub:owner/repo' or a folder written by save_pretrained"
# The fields that make an architecture what its name says; weights may differ in the others
# (classes, input channels, shortcut option B or C, activation, ...), as the catalog's own entries do.
_ARCH_FIELDS = ("stem", "stem_width", "block", "depths", "widths", "strides", "stride_in_1x1")


def _choices(arch: str) -> str:
    """The valid ``pretrained=`` values for ``arch``, for messages."""
    entries = [get_weights(n) for n in list_pretrained() if get_weights(n).arch == arch]
    aliases = [a for w in entries for a in w.aliases]
    own = f"True ({DEFAULT_WEIGHTS[arch]}), " if arch in DEFAULT_WEIGHTS else ""
    own += "".join(f"{w.name}, " for w in entries) + (f"(aliases: {', '.join(aliases)}), " if aliases else "")
    return f"Valid for {arch}: {own}'hf-hub:owner/repo' or a folder written by save_pretrained."


def _check_folder_arch(arch: str, config: ResNetConfig, info: WeightsInfo, location: Source) -> None:
    """A folder's network must be ``arch`` (up to the fields weights may change), or create_model would lie."""
    default = default_config(arch)
    same = all(getattr(config, f) == getattr(default, f) for f in _ARCH_FIELDS)
    if not same or (config.shortcut == "none") != (default.shortcut == "none"):
        raise InvalidArgumentError(
            f"pretrained={location.url!r} holds a {info.arch or 'custom'} network (depths={config.depths}, "
            f"widths={config.widths}, shortcut={config.shortcut!r}), not {arch}; load it with "
            "reszoo.load_pretrained(folder) instead."
        )


def download(name: str, *, force: bool = False) -> Path:
    """Fill the cache for a weight entry (or ``hf-hub:`` repo) ahead of going offline.

    Args:
        name: a weight name, alias or ``"hf-hub:owner/repo[@revision]"`` (a local folder needs
            nothing and returns its weights file).
        force: download (and convert) again even if cached.

    Returns:
        The cached safetensors file that :func:`load_pretrained` will read.
    """
    check_str("name", name, what=_NAME)
    check_bool("force", force)
    w, location = resolve(name)
    if w is None:
        if isinstance(location, HubSource):
            return Path(hub_files(location.repo_id, location.revision, force=force)[1])
        return Path(folder_files(location.path)[1])
    if isinstance(location, HubSource):
        return Path(hub_download(location.repo_id, location.filename, revision=location.revision, w=w, force=force))
    if force or read_converted(w) is None:
        _url_weights(w, _build(entry_config(w)), device=None, force=force)
    return converted_path(w)


def convert_checkpoint(
    name: str,
    output_dir: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    check_hash: bool = True,
) -> Path:
    """Turn an entry's original checkpoint into the :func:`save_pretrained` format.

    Args:
        name: the weight entry (e.g. ``"resnet20-cifar10"``).
        output_dir: where ``model.safetensors`` and ``config.json`` go.
        checkpoint: a local copy of the original file; default: download it (verified).
        check_hash: check ``checkpoint`` against the entry's sha256 prefix.

    Returns:
        The output directory, ready for :func:`push_to_hub` or ``load_pretrained(output_dir)``.
    """
    check_path("output_dir", output_dir)
    checkpoint = _local_checkpoint(checkpoint, check_hash)
    if not isinstance(name, str):
        raise type_error("name", name, "a weight name (see reszoo.list_pretrained())")
    resolved = resolve(name, checkpoint=checkpoint)
    if resolved.entry is None:  # a reszoo folder (local or on the Hub) is in the output format already
        get_weights(name)  # raises: not a catalog entry, with the closest names
    return save_pretrained(_load(resolved, device=None, check_hash=check_hash), output_dir)
