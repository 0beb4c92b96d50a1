"""The reszoo folder format and Hub downloads: download and verify, read, save.

A reszoo folder (a local directory or a Hub repo) holds ``model.safetensors`` and a
``config.json`` that rebuilds the network without code: ``reszoo_format_version``, the registered
``architecture`` (when the config is one), the full ``ResNetConfig`` and, for pretrained models,
the pre-processing, class names, metrics, license and origin. Hub files are read with
``huggingface_hub``: its cache (``HF_HUB_CACHE`` / ``HF_HOME``), ``HF_ENDPOINT``,
``HF_HUB_OFFLINE`` and revisions apply, and only safetensors files are read from the network.

Turning a name into a model is :mod:`reszoo.weights.pretrained`'s job; publishing (``push_to_hub``,
model cards) is :mod:`reszoo.weights.publish`'s; the cache of original URL files is
:mod:`reszoo.weights.cache`'s.

Example::

    import reszoo
    reszoo.save_pretrained(model, "out/")                           # model.safetensors + config.json
    model = reszoo.load_pretrained("out/")
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from reszoo.data.constants import HUB_DATASET_IDS, IMAGENET_MEAN, IMAGENET_STD
from reszoo.errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    MissingInputError,
    WeightsIntegrityError,
    WeightsNotCachedError,
)
from reszoo.models.resnet import ResNetConfig
from reszoo.utils.checks import (
    check_choice,
    check_instance,
    check_int,
    check_mean_std,
    check_path,
    is_int,
    is_number,
    type_error,
    value_error,
)
from reszoo.utils.fileio import atomic_path, sha256_file
from reszoo.utils.plaindata import PlainData
from reszoo.weights.cache import (
    FORMAT_VERSION,
    StateDict,
    discard,
    is_offline,
    not_cached_error,
    read_header,
    read_safetensors,
    save_safetensors,
)
from reszoo.weights.records import HubSource, LocalSource, Metric, Weights, WeightsInfo
from reszoo.weights.untrusted import MAX_CONFIG_BYTES, check_limits, check_size

__all__ = [
    "CONFIG_NAME",
    "HF_PREFIX",
    "WEIGHTS_NAME",
    "architecture_of",
    "config_of",
    "folder_files",
    "hub_download",
    "hub_endpoint",
    "hub_files",
    "hub_unreachable",
    "is_unreachable",
    "parse_hub_name",
    "read_config",
    "read_hub_file",
    "read_hub_header",
    "read_saved",
    "save_pretrained",
    "weights_of",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
HF_PREFIX = "hf-hub:"


def hub_endpoint() -> str | None:
    """``HF_ENDPOINT`` if set, else None (huggingface_hub's default).

    huggingface_hub reads HF_ENDPOINT once at import; reading it here as well lets it be set later.
    """
    return os.environ.get("HF_ENDPOINT") or None


# -- Hub download and verification ----------------------------------------------------------------


def parse_hub_name(name: str, revision: str | None = None) -> tuple[str, str | None]:
    """``"hf-hub:owner/name[@rev]"`` -> (repo_id, revision); ``revision`` is the keyword argument, if given.

    Raises:
        InvalidArgumentError: not ``owner/name``, or two different revisions.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    repo, _, rev = name[len(HF_PREFIX) :].partition("@")
    try:
        if repo.count("/") != 1:
            raise HFValidationError("it needs exactly one '/'")
        validate_repo_id(repo)
    except HFValidationError as err:
        raise InvalidArgumentError(
            f"{value_error('name', name, repr(HF_PREFIX + 'owner/name[@revision]'))} {err}"
        ) from None
    if rev and revision is not None and rev != revision:
        raise InvalidArgumentError(
            f"{name!r} names revision {rev!r} but revision={revision!r} was passed as well; give one."
        )
    return repo, rev or revision


def hub_download(
    repo_id: str, filename: str, *, revision: str | None, w: Weights | None = None, force: bool = False
) -> str:
    """A file of a Hub repo in the Hugging Face cache, downloaded if needed and verified when fresh.

    Args:
        repo_id: ``"owner/name"``.
        filename: the file in the repo.
        revision: branch, tag or commit (``None``: ``main``).
        w: the catalog entry it belongs to, if any (its sha256 and name for messages).
        force: download again even if cached.

    Raises:
        WeightsNotCachedError: offline or unreachable, and not cached.
        MissingInputError: no such repo, revision or file.
        WeightsIntegrityError: a download that fails its checksum (deleted from the cache).
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.utils import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from reszoo._version import __version__

    label = w.name if w is not None else f"{HF_PREFIX}{repo_id}"
    before = try_to_load_from_cache(repo_id, filename, revision=revision)
    what = f"{filename} of the Hub repo {repo_id} (revision {revision or 'main'}) is not in the Hugging Face cache"
    if not is_offline() and (force or not isinstance(before, str)):
        # Nothing cached to fall back on: huggingface_hub would retry an unreachable Hub for ~25 s,
        # printing each retry. One request without retries tells first.
        down = hub_unreachable(repo_id, filename, revision)
        if down is not None:
            raise _not_cached(w, label, what, f"the Hub at {hub_endpoint() or _HUB} cannot be reached: {down}")
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            endpoint=hub_endpoint(),
            local_files_only=is_offline(),
            force_download=force,
            library_name="reszoo",
            library_version=__version__,
        )
    except LocalEntryNotFoundError as err:
        reason = "HF_HUB_OFFLINE is set" if is_offline() else "the Hub cannot be reached"
        raise _not_cached(w, label, what, reason) from err
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as err:  # after its subclass above
        raise MissingInputError(f"{label}: {type(err).__name__}: {err}") from err
    if force or not isinstance(before, str) or os.path.realpath(before) != os.path.realpath(path):
        _verify_hub_file(path, w.source if w is not None and isinstance(w.source, HubSource) else None, label=label)
    return path


_HUB = "https://huggingface.co"


def _not_cached(w: Weights | None, label: str, what: str, reason: str) -> WeightsNotCachedError:
    if w is not None:
        return not_cached_error(w, what, reason)
    return WeightsNotCachedError(
        f"{what} and cannot be downloaded ({reason}). While online, run `reszoo download {label}`, "
        "or load a local directory written by reszoo.save_pretrained."
    )


def is_unreachable(err: BaseException) -> bool:
    """True for "no connection": offline mode, or a transport error of the HTTP client (httpx, requests)."""
    if isinstance(err, (ConnectionError, TimeoutError)):  # huggingface_hub's OfflineModeIsEnabled is one
        return True
    names = {c.__name__ for c in type(err).__mro__}
    modules = {c.__module__.split(".")[0] for c in type(err).__mro__}
    client = bool(modules & {"httpx", "httpx2", "httpcore", "requests", "urllib3"})
    return client and bool(names & {"TransportError", "ConnectionError", "Timeout", "TimeoutException"})


def hub_unreachable(repo_id: str, filename: str, revision: str | None) -> str | None:
    """Why the Hub cannot be reached (the connection error, in one line), or None when it answers.

    One ``HEAD`` request for the file, as ``huggingface_hub`` makes first, without its retries;
    any answer (the file's metadata, or an HTTP error such as 404) means the Hub is there, and
    ``hf_hub_download`` then says what it has to say.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    from reszoo._version import __version__

    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=hub_endpoint())
    try:
        get_hf_file_metadata(url, library_name="reszoo", library_version=__version__)
    except Exception as err:  # huggingface_hub raises its own and its HTTP client's errors
        if is_unreachable(err):
            return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}"
    return None


def _verify_hub_file(path: str, source: HubSource | None, *, label: str) -> None:
    """Check a fresh Hub download against its sha256: the entry's, else the Hub's own.

    The Hub names an LFS file by its sha256 (its ETag), and huggingface_hub stores it under that
    name in ``blobs/``, so a 64-hex blob name is the checksum the Hub vouches for.
    """
    blob = os.path.realpath(path)
    name = os.path.basename(blob)
    expected = (source.sha256 if source is not None else None) or (name if re.fullmatch("[0-9a-f]{64}", name) else None)
    if expected is None:
        return
    digest = sha256_file(blob)
    if digest != expected:
        discard(blob, path)  # never keep a damaged file in the cache
        raise WeightsIntegrityError(
            f"{label}: checksum mismatch for the downloaded {os.path.basename(path)}: sha256 {digest}, expected "
            f"{expected}; the download was corrupted or truncated and was deleted from the cache. Try again."
        )


def read_hub_file(path: str, *, label: str, device: Any = None) -> StateDict:
    """Read a safetensors file from the Hugging Face cache; a damaged one is deleted from the cache."""
    with _discarded_if_damaged(path, label):
        return read_safetensors(path, device=device)


def read_hub_header(path: str, *, label: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """The header of a safetensors file in the Hugging Face cache (:func:`reszoo.weights.cache.read_header`);
    a damaged one is deleted from the cache."""
    with _discarded_if_damaged(path, label):
        return read_header(path)


@contextlib.contextmanager
def _discarded_if_damaged(path: str, label: str) -> Iterator[None]:
    try:
        yield
    except WeightsIntegrityError as err:
        discard(os.path.realpath(path), path)
        raise WeightsIntegrityError(f"{label}: {err} It was deleted from the cache; try again.") from None


def hub_files(repo_id: str, revision: str | None, *, force: bool = False) -> tuple[str, str]:
    """config.json and model.safetensors of a Hub repo in the reszoo format (the small file first: fails fast)."""
    c_path = hub_download(repo_id, CONFIG_NAME, revision=revision, force=force)
    return c_path, hub_download(repo_id, WEIGHTS_NAME, revision=revision, force=force)


# -- the folder format -----------------------------------------------------------------------------


def folder_files(folder: str | os.PathLike[str]) -> tuple[str, str]:
    """config.json and model.safetensors of a local reszoo folder; MissingInputError names a missing one."""
    c_path, w_path = os.path.join(folder, CONFIG_NAME), os.path.join(folder, WEIGHTS_NAME)
    for p in (c_path, w_path):
        if not os.path.isfile(p):
            raise MissingInputError(f"{os.fspath(folder)!r} is a directory but has no {os.path.basename(p)}.")
    return c_path, w_path


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A reszoo ``config.json``, checked: at most 16 MiB of valid JSON, a reszoo file, a format
    version this reszoo reads, and each top-level field reszoo reads of its type. Other top-level
    keys (metadata another tool added) are left alone; the ``pretrained`` section is checked by
    :func:`read_saved`."""
    size = os.path.getsize(path)
    if size > MAX_CONFIG_BYTES:
        raise InvalidArgumentError(
            f"{path} is {size:,} bytes; a reszoo config.json is a few kilobytes, and reszoo reads at most "
            f"{MAX_CONFIG_BYTES:,}. It is not a config.json reszoo wrote."
        )
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (ValueError, RecursionError) as err:  # bad JSON or UTF-8, a 5000-digit number, nesting 10**5 deep
        raise InvalidArgumentError(f"{path} is not valid JSON ({type(err).__name__}: {str(err)[:200]}).") from None
    if not isinstance(data, dict) or "config" not in data or "reszoo_format_version" not in data:
        raise InvalidArgumentError(
            f"{path} is not a reszoo config.json (no 'reszoo_format_version'/'config'); "
            "reszoo loads directories written by reszoo.save_pretrained."
        )
    version = data["reszoo_format_version"]
    if not is_int(version) or version < 1:
        raise InvalidArgumentError(f"{path}: {value_error('reszoo_format_version', version, 'an integer >= 1')}")
    if version > FORMAT_VERSION:
        raise InvalidArgumentError(
            f"{path} has reszoo_format_version={version}, newer than this reszoo "
            f"understands ({FORMAT_VERSION}); upgrade reszoo."
        )
    for key, (kind, words) in _TOP_LEVEL.items():
        value = data.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ArgumentTypeError(f"{path}: {type_error(key, value, words)}")
    return data


# The top-level fields reszoo reads (save_pretrained writes them): their types, and in words.
_TOP_LEVEL: dict[str, tuple[type | tuple[type, ...], str]] = {
    "config": (dict, "a JSON object of ResNetConfig fields"),
    "pretrained": ((dict, type(None)), "a JSON object or null"),
    "architecture": ((str, type(None)), "a registered model name or null"),
    "num_classes": ((int, type(None)), "an integer (the config's num_classes) or null"),
    "library_name": ((str, type(None)), "a string or null"),
    "reszoo_version": ((str, type(None)), "a string or null"),
}


@dataclass(frozen=True)
class _Pretrained(PlainData):
    """config.json's ``pretrained`` section, typed strictly (what :func:`_pretrained_section` writes)."""

    kind = "config.json 'pretrained'"  # messages say "Unknown config.json 'pretrained' field(s)"

    name: str | None = None
    finetuned_from: str | None = None
    dataset: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    crop_size: int | None = None
    resize_size: int | None = None
    interpolation: str | None = None
    class_names: tuple[str, ...] | None = None
    metrics: tuple[dict, ...] | None = None
    license: str | None = None
    origin: str | None = None
    notes: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.mean is None) != (self.std is None):
            raise InvalidArgumentError(f"mean and std go together; received mean={self.mean}, std={self.std}.")
        if self.mean is not None:
            check_mean_std(self.mean, self.std)
        for name in ("crop_size", "resize_size"):
            check_int(name, getattr(self, name), minimum=1, optional=True)
        if self.interpolation is not None:
            from reszoo.data.transforms import INTERPOLATIONS  # torchvision: only when a folder is read

            check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        for i, m in enumerate(self.metrics or ()):
            _check_metric(f"metrics[{i}]", m)


_METRIC_FIELDS = {"dataset": "a string", "name": "a string", "value": "a number", "source": "a string"}


def _check_metric(where: str, m: Any) -> None:
    if not isinstance(m, dict) or set(m) != set(_METRIC_FIELDS):
        raise type_error(where, m, f"a JSON object with the keys {', '.join(_METRIC_FIELDS)}")
    for key, words in _METRIC_FIELDS.items():
        if not (is_number(m[key]) if key == "value" else isinstance(m[key], str)):
            raise type_error(f"{where}.{key}", m[key], words)


# config.json written by reszoo 0.1 names ImageNet by its Hub id; reszoo's own id is "imagenet".
_DATASET_IDS = {hub_id: dataset for dataset, hub_id in HUB_DATASET_IDS.items()}


def _in(path: Any, section: str, err: Exception) -> Exception:
    """``err`` again (its class), with the file and the section it is about in front."""
    cls = type(err) if isinstance(err, (InvalidArgumentError, ArgumentTypeError)) else InvalidArgumentError
    return cls(f"{path}: the '{section}' section: {err}")


def read_saved(
    config_path: str | os.PathLike[str], source: HubSource | LocalSource
) -> tuple[ResNetConfig, WeightsInfo]:
    """The network config and the weights' record that a reszoo ``config.json`` describes, every
    field checked (type, value, :data:`reszoo.weights.untrusted.LIMITS`) before anything is built.

    A folder without a ``pretrained`` section (a network saved from scratch) is described by its
    own name and the config's input size, normalised with ImageNet's statistics as timm assumes.

    Raises:
        ArgumentTypeError, InvalidArgumentError: naming the file, the field, the value and what is valid.
    """
    data = read_config(config_path)
    try:
        config = ResNetConfig.from_dict(data["config"])
    except (TypeError, ValueError) as err:
        raise _in(config_path, "config", err) from None
    # An untrusted file: what it asks for is bounded before anything is built or read at that size.
    check_limits(config, where=str(config_path))
    if data.get("num_classes") is not None and data["num_classes"] != config.num_classes:
        raise InvalidArgumentError(
            f"{config_path}: num_classes={data['num_classes']} differs from the config's "
            f"num_classes={config.num_classes}; one of them was changed."
        )
    try:
        pre = _Pretrained.from_dict(data.get("pretrained") or {})
    except (TypeError, ValueError) as err:
        raise _in(config_path, "pretrained", err) from None
    if pre.class_names is not None and len(pre.class_names) != config.num_classes:
        raise InvalidArgumentError(
            f"{config_path}: the 'pretrained' section names {len(pre.class_names)} classes (class_names) but the "
            f"network has num_classes={config.num_classes}; class_names must hold one name per output."
        )
    default_name = source.repo_id if isinstance(source, HubSource) else os.path.basename(os.path.normpath(source.path))
    info = WeightsInfo(
        name=pre.name or default_name,
        arch=data.get("architecture"),
        dataset=_DATASET_IDS.get(pre.dataset, pre.dataset),
        num_classes=config.num_classes,
        mean=pre.mean or IMAGENET_MEAN,
        std=pre.std or IMAGENET_STD,
        crop_size=pre.crop_size or config.image_size,
        resize_size=pre.resize_size,
        interpolation=pre.interpolation or "bilinear",
        metrics=tuple(Metric(**m) for m in pre.metrics or ()),
        license=pre.license,
        origin=pre.origin,
        notes=pre.notes or "",
        categories=pre.class_names or None,
    )
    for name in ("crop_size", "resize_size"):
        check_size(name, getattr(info, name), where=str(config_path))
    return config, info


def architecture_of(config: ResNetConfig) -> str | None:
    """The registered model whose default config equals ``config`` (up to num_classes), if any."""
    from reszoo.models.registry import default_config, list_models

    for arch in list_models():
        try:
            default = default_config(arch)
        except ValueError:  # a registered factory that is not a reszoo ResNet
            continue
        if default.replace(num_classes=config.num_classes) == config:
            return arch
    return None


def config_of(model: Any, what: str) -> ResNetConfig:
    """The config that describes ``model`` as saved: its ``num_classes`` taken from the actual classifier
    (0 for a headless model, whose ``fc`` is ``nn.Identity``).

    Raises:
        ArgumentTypeError: ``model`` is not a reszoo ResNet; the message starts with ``what`` (the caller).
    """
    config = getattr(model, "config", None)
    fc = getattr(model, "fc", None)
    if not isinstance(config, ResNetConfig) or not isinstance(fc, (nn.Linear, nn.Identity)):
        raise ArgumentTypeError(
            f"{what} needs a reszoo ResNet (with .config and .fc), received {type(model).__name__}."
        )
    return config.replace(num_classes=fc.out_features if isinstance(fc, nn.Linear) else 0)


def weights_of(model: nn.Module, weights: Any) -> WeightsInfo | None:
    """``weights``, else the model's own record; anything but a weights record or None is refused."""
    if weights is not None:
        what = "a reszoo.weights.WeightsInfo record (e.g. reszoo.get_weights(name)) or None"
        return check_instance("weights", weights, WeightsInfo, what=what)
    return getattr(model, "pretrained_weights", None)


def _pretrained_section(w: WeightsInfo | None, num_classes: int) -> dict[str, Any] | None:
    if w is None:
        return None
    same_head = num_classes == w.num_classes
    return {
        "name": w.name if same_head else f"{w.name}-finetuned",
        "finetuned_from": None if same_head else w.name,
        "dataset": w.dataset if same_head else None,
        **w.preprocessing(),
        # Class names and accuracy belong to the original head only.
        "class_names": list(w.class_names) if same_head and w.class_names else None,
        "metrics": [vars(m) for m in w.metrics] if same_head else [],
        "license": w.license,
        "origin": w.origin,
        "notes": w.notes,
    }


# -- saving -----------------------------------------------------------------------------------------


def save_pretrained(
    model: nn.Module, save_directory: str | os.PathLike[str], *, weights: WeightsInfo | None = None
) -> Path:
    """Write ``model.safetensors`` and a ``config.json`` that rebuilds the model without code.

    config.json holds ``reszoo_format_version``, the registered ``architecture`` (when the config
    matches one), the full ``ResNetConfig`` (its ``num_classes`` taken from the actual classifier)
    and, for pretrained models, the pre-processing, class names, metrics, license and origin.

    Args:
        model: a :class:`~reszoo.ResNet`.
        save_directory: created if needed; existing files of the same names are replaced atomically.
        weights: the weights record to describe; default ``model.pretrained_weights`` if present.

    Returns:
        The directory.

    Example::

        reszoo.save_pretrained(reszoo.load_pretrained("resnet56-cifar10"), "out/")
    """
    config = config_of(model, "save_pretrained")
    config_dict = config.to_dict()  # fails clearly for configs holding callables
    w = weights_of(model, weights)
    out = Path(check_path("save_directory", save_directory))
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"save_directory={os.fspath(save_directory)!r} is a file, not a directory.")
    save_safetensors(model.state_dict(), out / WEIGHTS_NAME, {"reszoo_weights": w.name if w else ""})
    from reszoo._version import __version__

    data = {
        "reszoo_format_version": FORMAT_VERSION,
        "library_name": "reszoo",
        "reszoo_version": __version__,
        "architecture": architecture_of(config),
        "num_classes": config.num_classes,
        "config": config_dict,
        "pretrained": _pretrained_section(w, config.num_classes),
    }
    with atomic_path(out / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return out
