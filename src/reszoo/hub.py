"""Pretrained weights: download, verify, cache, load, save and publish.

Where files come from and where they go:

- Hub entries (the ImageNet weights, ``hf-hub:owner/repo``) are read with ``huggingface_hub``:
  its cache (``HF_HUB_CACHE`` / ``HF_HOME``), ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and revisions
  apply. Only safetensors files are read from the Hub.
- URL entries (the original CIFAR checkpoints) are downloaded once to
  ``$RESZOO_CACHE/originals`` (default ``~/.cache/reszoo``), checked against the sha256 prefix in
  their name, read with ``torch.load(weights_only=True)``, converted to reszoo's layout and cached
  as safetensors in ``$RESZOO_CACHE/converted``, so the next load reads safetensors only.
  ``RESZOO_URL_MIRROR`` replaces the scheme and host of every URL (a mirror keeping the paths).
- Every cache file is written to a temporary name and moved into place (``os.replace``) under a
  file lock, so concurrent processes never see half a file and never download twice.

Example::

    import reszoo
    model = reszoo.load_pretrained("resnet110-cifar")                 # the paper's ResNet-110, CIFAR-10
    model = reszoo.load_pretrained("resnet50-imagenet", device="cuda")
    reszoo.save_pretrained(model, "out/")                             # model.safetensors + config.json
    model = reszoo.load_pretrained("out/")
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from torch import nn

from reszoo.fileio import atomic_path
from reszoo.convert import StateDict, convert_state_dict, fit_state_dict, read_checkpoint
from reszoo.resnet import ResNet, ResNetConfig
from reszoo.weights import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    HubSource,
    LocalSource,
    Metric,
    UrlSource,
    Weights,
    find_by_repo,
    get_weights,
    list_pretrained,
)

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
HF_PREFIX = "hf-hub:"
# Bump when a converter's output changes, so stale converted files in users' caches are rebuilt.
CONVERTED_VERSION = 1
_HEAD_KEYS = ("fc.weight", "fc.bias")


class WeightsIntegrityError(RuntimeError):
    """A weights file failed its checksum or size check, or is truncated or corrupted."""


class WeightsNotCachedError(FileNotFoundError):
    """The weights are not in the cache and cannot be downloaded (offline or unreachable)."""


# -- cache, offline mode, checksums ---------------------------------------------------------------


def cache_dir() -> Path:
    """reszoo's own cache: ``$RESZOO_CACHE``, else ``$XDG_CACHE_HOME/reszoo``, else ``~/.cache/reszoo``."""
    root = os.environ.get("RESZOO_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "reszoo")
    return Path(root).expanduser()


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read at call time, not only at import)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return value in constants.ENV_VARS_TRUE_VALUES or constants.is_offline_mode()


def _endpoint() -> str | None:
    # huggingface_hub reads HF_ENDPOINT once at import; reading it here as well lets it be set later.
    return os.environ.get("HF_ENDPOINT") or None


def _progress() -> bool:
    from huggingface_hub.utils import are_progress_bars_disabled

    return not are_progress_bars_disabled()


def _mirrored(url: str) -> str:
    mirror = os.environ.get("RESZOO_URL_MIRROR")
    return mirror.rstrip("/") + urlsplit(url).path if mirror else url


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks (``huggingface_hub``'s own file hasher)."""
    from huggingface_hub.utils.sha import sha_fileobj

    with open(path, "rb") as f:
        return sha_fileobj(f).hex()


def tensors_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state_dict (stored in our safetensors metadata)."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _unlink(*paths: str | os.PathLike[str]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


def _save_safetensors(state_dict: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write atomically: to a temporary file in the same folder, then ``os.replace``."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    meta = {"format": "pt", "reszoo_format_version": str(FORMAT_VERSION), "reszoo_digest": tensors_digest(tensors)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={**meta, **metadata})


def _read_safetensors(path: str | os.PathLike[str], *, device: torch.device | None = None) -> StateDict:
    """Read a safetensors file; a truncated/corrupted file or a wrong reszoo digest raises WeightsIntegrityError."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device=str(device or "cpu")) as f:
            metadata = dict(f.metadata() or {})
            state_dict = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except FileNotFoundError:
        raise
    except Exception as err:  # safetensors raises its own error type for every kind of damage
        raise WeightsIntegrityError(
            f"{path} is truncated or corrupted: safetensors cannot read it ({type(err).__name__}: {err})."
        ) from err
    expected = metadata.get("reszoo_digest")
    if expected and tensors_digest(state_dict) != expected:
        raise WeightsIntegrityError(f"{path} is corrupted: its tensors do not match the checksum stored in the file.")
    return state_dict


def verify_file(path: str | os.PathLike[str], source: UrlSource | HubSource, *, label: str) -> str:
    """Check a file's size and sha256 against what ``source`` knows; return the sha256.

    Raises:
        WeightsIntegrityError: naming the file, what was expected and what was found.
    """
    size = os.path.getsize(path)
    expected_size = getattr(source, "size", None)
    if expected_size is not None and size != expected_size:
        what = "truncated" if size < expected_size else "longer than expected"
        raise WeightsIntegrityError(
            f"{label}: {path} is {what}: {size:,} bytes, expected {expected_size:,} ({source.filename})."
        )
    digest = sha256_file(path)
    prefix = getattr(source, "sha256_prefix", None)
    if prefix and not digest.startswith(prefix):
        raise WeightsIntegrityError(
            f"{label}: checksum mismatch for {path}: sha256 {digest} does not start with {prefix!r} "
            f"(the prefix in the name {source.filename}); the file is corrupted, truncated or a different file."
        )
    if source.sha256 and digest != source.sha256:
        raise WeightsIntegrityError(
            f"{label}: checksum mismatch for {path}: sha256 {digest}, expected {source.sha256}."
        )
    return digest


def _not_cached(w: Weights, what: str, reason: str) -> WeightsNotCachedError:
    return WeightsNotCachedError(
        f"Weights {w.name!r} are not cached and cannot be downloaded ({reason}): {what}. "
        f"While online, run `reszoo download {w.name}` (or reszoo.hub.download({w.name!r})) to fill the cache, "
        f"or load a local copy of the file with "
        f"reszoo.load_pretrained({w.name!r}, checkpoint='path/to/{w.source.filename}')."
    )


# -- URL sources: original checkpoints -> converted safetensors -------------------------------------


def _original_path(w: Weights) -> Path:
    return cache_dir() / "originals" / w.source.filename


def _converted_path(w: Weights) -> Path:
    tag = getattr(w.source, "sha256_prefix", None) or "unversioned"
    return cache_dir() / "converted" / f"{w.name}-{tag}-c{CONVERTED_VERSION}.safetensors"


def _fetch_original(w: Weights, *, force: bool = False) -> tuple[Path, str]:
    """The verified original file in the cache and its sha256, downloading it if needed. Call under the entry's lock."""
    from torch.hub import download_url_to_file

    src = w.source
    assert isinstance(src, UrlSource)
    dest = _original_path(w)
    if dest.exists() and not force:
        try:
            return dest, verify_file(dest, src, label=w.name)
        except WeightsIntegrityError:
            _unlink(dest)  # a damaged cache file is never used or kept; fetch it again below
            if is_offline():
                raise
    url = _mirrored(src.url)
    if is_offline():
        raise _not_cached(w, f"{src.filename} from {url} is not in {dest.parent}", "HF_HUB_OFFLINE is set")
    with atomic_path(dest) as tmp:
        try:
            download_url_to_file(url, str(tmp), progress=_progress())
        except Exception as err:  # urllib: URLError, HTTPError, IncompleteRead, timeouts
            raise _not_cached(w, f"downloading {url} failed ({type(err).__name__}: {err})", "download failed") from err
        try:
            digest = verify_file(tmp, src, label=f"{w.name} (downloaded from {url})")
        except WeightsIntegrityError as err:
            raise WeightsIntegrityError(f"{err} The download was discarded.") from None
    return dest, digest


def _lock(path: Path):
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock")


def _ensure_converted(w: Weights, *, force: bool = False) -> Path:
    """The converted safetensors file of a URL entry, building it from the original if needed."""
    path = _converted_path(w)
    with _lock(path):
        if path.exists() and not force:
            return path
        original, original_sha256 = _fetch_original(w, force=force)
        try:
            state_dict = _checked(w, convert_state_dict(w.converter, read_checkpoint(original)), source=str(original))
        except (ValueError, RuntimeError):
            # A file that passed its checksum prefix but cannot be read or converted is not kept:
            # the next call downloads it again instead of failing on the same cached file forever.
            _unlink(original)
            raise
        meta = {"reszoo_weights": w.name, "source_sha256": original_sha256, "converter": w.converter}
        _save_safetensors(state_dict, path, meta)
    return path


def _checked(w: Weights, state_dict: StateDict, *, source: str) -> StateDict:
    """Refuse to cache a conversion that does not fit the entry's architecture."""
    with torch.device("meta"):
        model = _entry_model(w)
    fit_state_dict(state_dict, model, source=f"Weights {w.name!r} from {source}")
    return state_dict


# -- Hub sources ------------------------------------------------------------------------------------


def _hub_download(repo_id: str, filename: str, *, revision: str | None, w: Weights | None, force: bool = False) -> str:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.utils import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from reszoo import __version__

    label = w.name if w is not None else f"{HF_PREFIX}{repo_id}"
    before = try_to_load_from_cache(repo_id, filename, revision=revision)
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            endpoint=_endpoint(),
            local_files_only=is_offline(),
            force_download=force,
            library_name="reszoo",
            library_version=__version__,
        )
    except LocalEntryNotFoundError as err:
        reason = "HF_HUB_OFFLINE is set" if is_offline() else "the Hub cannot be reached"
        what = f"{filename} of the Hub repo {repo_id} (revision {revision or 'main'}) is not in the Hugging Face cache"
        if w is not None:
            raise _not_cached(w, what, reason) from err
        raise WeightsNotCachedError(
            f"{what} and cannot be downloaded ({reason}). While online, run `reszoo download {label}`, "
            "or load a local directory written by reszoo.save_pretrained."
        ) from err
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as err:  # after its subclass above
        raise FileNotFoundError(f"{label}: {type(err).__name__}: {err}") from err
    if force or not isinstance(before, str) or os.path.realpath(before) != os.path.realpath(path):
        _verify_hub_file(path, w.source if w is not None and isinstance(w.source, HubSource) else None, label=label)
    return path


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
        _unlink(blob, path)  # never keep a damaged file in the cache
        raise WeightsIntegrityError(
            f"{label}: checksum mismatch for the downloaded {os.path.basename(path)}: sha256 {digest}, expected "
            f"{expected}; the download was corrupted or truncated and was deleted from the cache. Try again."
        )


# -- building models --------------------------------------------------------------------------------


def _entry_model(w: Weights, num_classes: int | None = None) -> ResNet:
    from reszoo.registry import create_model

    overrides = w.overrides
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    return create_model(w.arch, **overrides)


def _materialise(
    make: Any, state_dict: StateDict, w: Weights, *, num_classes: int | None, device: Any, source: str
) -> ResNet:
    """Build on the meta device (no init cost), load the weights by assignment, add a fresh head if asked."""
    new_head = num_classes is not None and num_classes != w.num_classes
    with torch.device("meta"):
        model = make(num_classes if new_head else None)
    skip = _HEAD_KEYS if new_head else ()
    fitted = fit_state_dict(state_dict, model, skip=skip, source=source)
    model.load_state_dict(fitted, strict=not new_head, assign=True)
    if new_head:
        skipped = [k for k in _HEAD_KEYS if k in state_dict]
        warnings.warn(
            f"{w.name}: num_classes={num_classes} differs from the weights' {w.num_classes}; the classifier is "
            f"freshly initialised and these weight keys were not loaded: {', '.join(skipped)}.",
            UserWarning,
            stacklevel=4,
        )
        ref = fitted["conv1.weight"]
        model.fc = nn.Linear(model.num_features, num_classes, device=ref.device, dtype=ref.dtype)
    leftover = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if leftover:
        raise RuntimeError(f"{source}: these tensors were not loaded: {leftover[:10]}.")
    if device is not None:
        model.to(device)
    model.eval()
    model.pretrained_weights = w
    return model


def _load_entry(w: Weights, *, num_classes: int | None, device: torch.device | None, revision: str | None) -> ResNet:
    if isinstance(w.source, HubSource):
        src = w.source
        path = _hub_download(src.repo_id, src.filename, revision=revision or src.revision, w=w)
        try:
            state_dict = _read_safetensors(path, device=device)
        except WeightsIntegrityError as err:
            _unlink(os.path.realpath(path), path)
            raise WeightsIntegrityError(f"{w.name}: {err} It was deleted from the cache; try again.") from None
        state_dict = convert_state_dict(w.converter, state_dict)
        source = f"Weights {w.name!r} ({src.repo_id}/{src.filename})"
    else:
        path = _ensure_converted(w)
        try:
            state_dict = _read_safetensors(path, device=device)
        except WeightsIntegrityError:
            # A damaged converted file is rebuilt from the verified original (re-downloaded if need be).
            with _lock(path):
                _unlink(path)
            path = _ensure_converted(w)
            state_dict = _read_safetensors(path, device=device)
        source = f"Weights {w.name!r} ({path})"
    return _materialise(
        lambda n: _entry_model(w, n), state_dict, w, num_classes=num_classes, device=device, source=source
    )


def _load_checkpoint(w: Weights, checkpoint: str | os.PathLike[str], *, num_classes, device, check_hash) -> ResNet:
    path = os.fspath(checkpoint)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint={path!r} is not a file (a local copy of {w.source.filename} expected).")
    if path.endswith(".safetensors"):
        state_dict = _read_safetensors(path, device=device)
    else:
        if check_hash and isinstance(w.source, (UrlSource, HubSource)):
            try:
                verify_file(path, w.source, label=w.name)
            except WeightsIntegrityError as err:
                raise WeightsIntegrityError(f"{err} Pass check_hash=False to load a file changed on purpose.") from None
        state_dict = read_checkpoint(path)
    state_dict = convert_state_dict(w.converter, state_dict)
    return _materialise(
        lambda n: _entry_model(w, n),
        state_dict,
        w,
        num_classes=num_classes,
        device=device,
        source=f"Checkpoint {path!r} for {w.name!r}",
    )


def _read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}).") from err
    if not isinstance(data, dict) or "config" not in data or "reszoo_format_version" not in data:
        raise ValueError(
            f"{path} is not a reszoo config.json (no 'reszoo_format_version'/'config'); "
            "reszoo loads directories written by reszoo.save_pretrained."
        )
    if int(data["reszoo_format_version"]) > FORMAT_VERSION:
        raise ValueError(
            f"{path} has reszoo_format_version={data['reszoo_format_version']}, newer than this reszoo "
            f"understands ({FORMAT_VERSION}); upgrade reszoo."
        )
    return data


def _weights_from_config(data: dict[str, Any], config: ResNetConfig, source: HubSource | LocalSource) -> Weights:
    pre = data.get("pretrained") or {}
    default_name = source.repo_id if isinstance(source, HubSource) else os.path.basename(os.path.normpath(source.path))
    return Weights(
        name=pre.get("name") or default_name,
        arch=data.get("architecture") or "custom",
        source=source,
        converter="reszoo",
        dataset=pre.get("dataset") or "unknown",
        num_classes=config.num_classes,
        mean=tuple(pre.get("mean") or IMAGENET_MEAN),
        std=tuple(pre.get("std") or IMAGENET_STD),
        crop_size=int(pre.get("crop_size") or config.image_size),
        resize_size=pre.get("resize_size"),
        interpolation=pre.get("interpolation") or "bilinear",
        metrics=tuple(Metric(**m) for m in pre.get("metrics") or ()),
        license=pre.get("license"),
        origin=pre.get("origin"),
        notes=pre.get("notes") or "",
        categories=tuple(pre["class_names"]) if pre.get("class_names") else None,
    )


def _load_saved(config_path: str, weights_path: str, source: HubSource | LocalSource, *, num_classes, device) -> ResNet:
    data = _read_config(config_path)
    config = ResNetConfig.from_dict(data["config"])
    w = _weights_from_config(data, config, source)
    state_dict = _read_safetensors(weights_path, device=device)
    return _materialise(
        lambda n: ResNet(config if n is None else config.replace(num_classes=n)),
        state_dict,
        w,
        num_classes=num_classes,
        device=device,
        source=f"Weights {weights_path}",
    )


# -- checking arguments -----------------------------------------------------------------------------


def _check_name(name: Any) -> str:
    if not isinstance(name, (str, os.PathLike)):
        raise ValueError(
            f"Expected a weight name (see reszoo.list_pretrained()), 'hf-hub:owner/repo' or a directory, "
            f"received {name!r}."
        )
    return os.fspath(name)


def _check_num_classes(num_classes: Any) -> None:
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise ValueError(f"num_classes must be an integer >= 1 or None, received num_classes={num_classes!r}.")


def _check_device(device: Any) -> torch.device | None:
    """``device`` as a ``torch.device`` (None stays None), refused early, before any download, if unusable."""
    if device is None:
        return None
    try:
        parsed = torch.device(device)
        torch.empty(0, device=parsed)  # an unavailable backend or device index fails here
    except (RuntimeError, TypeError, AssertionError) as err:
        raise ValueError(
            f"device={device!r} cannot be used ({err}); valid: None, 'cpu', 'cuda', 'cuda:N' (an available GPU), "
            "'mps', ... or a torch.device."
        ) from err
    return parsed


def _check_revision(revision: Any) -> None:
    if revision is not None and (not isinstance(revision, str) or not revision):
        raise ValueError(
            f"revision must be a Hub branch, tag or commit (a non-empty str) or None, received {revision!r}."
        )


def _parse_hub_name(name: str, revision: str | None = None) -> tuple[str, str | None]:
    """``"hf-hub:owner/name[@rev]"`` -> (repo_id, revision); ``revision`` is the keyword argument, if given."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    repo, _, rev = name[len(HF_PREFIX) :].partition("@")
    try:
        if repo.count("/") != 1:
            raise HFValidationError("it needs exactly one '/'")
        validate_repo_id(repo)
    except HFValidationError as err:
        raise ValueError(f"Expected 'hf-hub:owner/name[@revision]', received {name!r}: {err}") from None
    if rev and revision is not None and rev != revision:
        raise ValueError(f"{name!r} names revision {rev!r} but revision={revision!r} was passed as well; give one.")
    return repo, rev or revision


def _resolve_hub(name: str, revision: str | None) -> tuple[Weights | None, str, str | None]:
    """An ``hf-hub:`` name -> (the entry hosted in that repo, if any; repo_id; revision)."""
    repo_id, rev = _parse_hub_name(name, revision)
    return find_by_repo(repo_id), repo_id, rev


def _hub_files(repo_id: str, revision: str | None, *, force: bool = False) -> tuple[str, str]:
    """config.json and model.safetensors of a repo in our format (the small file first: fails fast)."""
    c_path = _hub_download(repo_id, CONFIG_NAME, revision=revision, w=None, force=force)
    return c_path, _hub_download(repo_id, WEIGHTS_NAME, revision=revision, w=None, force=force)


def _no_revision(revision: str | None, where: str) -> None:
    if revision is not None:
        raise ValueError(f"revision={revision!r} applies to Hub repos only, but {where}.")


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
        device: where the model goes (tensors are read straight to it).
        checkpoint: a local copy of the entry's original file (e.g. ``"resnet20-12fca82f.th"``),
            checked against its sha256 prefix and converted; or a ``.safetensors`` in our layout.
        revision: a Hub branch, tag or commit for Hub entries and ``hf-hub:`` repos (default: the
            entry's, or ``main``); refused for other sources.
        check_hash: check ``checkpoint`` against the entry's checksum (``False`` only with
            ``checkpoint``: downloads are always verified).

    Returns:
        The model; ``model.pretrained_weights`` is its :class:`~reszoo.weights.Weights` record
        (``model.pretrained_weights.transforms()`` is its evaluation pre-processing).

    Raises:
        ValueError: unknown name (with the closest names) or bad arguments.
        WeightsNotCachedError: offline (or the source is unreachable) and not cached.
        WeightsIntegrityError: a checksum mismatch, truncated or corrupted file (never kept).
        RuntimeError: weights that do not fit the architecture (missing/unexpected keys listed).

    Example::

        model = reszoo.load_pretrained("resnet56-cifar10", num_classes=100)   # new head, rest loaded
    """
    # Every argument is checked before anything is downloaded.
    name = _check_name(name)
    _check_num_classes(num_classes)
    device = _check_device(device)
    _check_revision(revision)
    if not isinstance(check_hash, bool):
        raise ValueError(f"check_hash must be True or False, received {check_hash!r}.")
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise ValueError(f"checkpoint must be a path to a local file or None, received {checkpoint!r}.")
        _no_revision(revision, f"checkpoint={os.fspath(checkpoint)!r} is a local file")
        return _load_checkpoint(
            get_weights(name), checkpoint, num_classes=num_classes, device=device, check_hash=check_hash
        )
    if not check_hash:
        raise ValueError("check_hash=False applies to a local checkpoint= only; downloads are always verified.")
    if name.startswith(HF_PREFIX):
        entry, repo_id, rev = _resolve_hub(name, revision)
        if entry is not None:  # e.g. a timm repo: its config.json is timm's, our entry knows the architecture
            return _load_entry(entry, num_classes=num_classes, device=device, revision=rev)
        c_path, w_path = _hub_files(repo_id, rev)
        src = HubSource(repo_id=repo_id, revision=rev or "main")
        return _load_saved(c_path, w_path, src, num_classes=num_classes, device=device)
    try:
        entry = get_weights(name)
    except ValueError as err:
        unknown = err
    else:
        if not isinstance(entry.source, HubSource):
            _no_revision(revision, f"{entry.name!r} is downloaded from {entry.source.url}")
        return _load_entry(entry, num_classes=num_classes, device=device, revision=revision)
    if os.path.isdir(name):
        _no_revision(revision, f"{name!r} is a local directory")
        c_path, w_path = os.path.join(name, CONFIG_NAME), os.path.join(name, WEIGHTS_NAME)
        for p in (c_path, w_path):
            if not os.path.isfile(p):
                raise FileNotFoundError(f"{name!r} is a directory but has no {os.path.basename(p)}.")
        return _load_saved(c_path, w_path, LocalSource(os.path.abspath(name)), num_classes=num_classes, device=device)
    raise ValueError(f"{unknown} Also accepted: 'hf-hub:owner/repo' or a directory written by save_pretrained.")


def download(name: str, *, force: bool = False) -> Path:
    """Fill the cache for a weight entry (or ``hf-hub:`` repo) ahead of going offline.

    Args:
        name: a weight name, alias or ``"hf-hub:owner/repo[@revision]"``.
        force: download (and convert) again even if cached.

    Returns:
        The cached safetensors file that :func:`load_pretrained` will read.
    """
    if not isinstance(name, str):
        raise ValueError(f"Expected a weight name or 'hf-hub:owner/repo[@revision]', received {name!r}.")
    revision = None
    if name.startswith(HF_PREFIX):
        w, repo_id, revision = _resolve_hub(name, None)
        if w is None:
            return Path(_hub_files(repo_id, revision, force=force)[1])
    else:
        w = get_weights(name)
    if isinstance(w.source, HubSource):
        src = w.source
        return Path(_hub_download(src.repo_id, src.filename, revision=revision or src.revision, w=w, force=force))
    return _ensure_converted(w, force=force)


# -- saving and publishing --------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _architecture_of(config: ResNetConfig) -> str | None:
    """The registered model whose default config equals ``config`` (up to num_classes), if any."""
    from reszoo.registry import get_model_fn, list_models

    target = config.replace(num_classes=10)
    # Building every registered model (even on the meta device) takes seconds (resnet1202), so only
    # names carrying the config's depth are tried; the name is informational (config.json rebuilds
    # the network from the full config), so a custom model named otherwise just gets ``null``.
    depth = str(config.depth)
    for arch in list_models():
        if "".join(c for c in arch if c.isdigit()) != depth:
            continue
        with torch.device("meta"):
            cfg = get_model_fn(arch)().config
        if cfg.replace(num_classes=10) == target:
            return arch
    return None


def _check_model(model: Any, what: str) -> ResNetConfig:
    """The model's config, its ``num_classes`` taken from the actual classifier; refuses anything but a ResNet."""
    config = getattr(model, "config", None)
    if not isinstance(config, ResNetConfig) or not isinstance(getattr(model, "fc", None), nn.Linear):
        raise ValueError(f"{what} needs a reszoo ResNet (with .config and .fc), received {type(model).__name__}.")
    return config.replace(num_classes=model.fc.out_features)


def _check_weights(model: nn.Module, weights: Any) -> Weights | None:
    """``weights``, else the model's own record; anything but a Weights record or None is refused."""
    if weights is not None and not isinstance(weights, Weights):
        raise ValueError(
            f"weights must be a reszoo.weights.Weights record (e.g. reszoo.get_weights(name)) or None, "
            f"received {weights!r}."
        )
    return weights if weights is not None else getattr(model, "pretrained_weights", None)


def _pretrained_section(w: Weights | None, num_classes: int) -> dict[str, Any] | None:
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


def save_pretrained(
    model: nn.Module, save_directory: str | os.PathLike[str], *, weights: Weights | None = None
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
    config = _check_model(model, "save_pretrained")
    config_dict = config.to_dict()  # fails clearly for configs holding callables
    w = _check_weights(model, weights)
    out = Path(save_directory)
    if out.exists() and not out.is_dir():
        raise ValueError(f"save_directory={os.fspath(save_directory)!r} is a file, not a directory.")
    _save_safetensors(model.state_dict(), out / WEIGHTS_NAME, {"reszoo_weights": w.name if w else ""})
    from reszoo import __version__

    data = {
        "reszoo_format_version": FORMAT_VERSION,
        "library_name": "reszoo",
        "reszoo_version": __version__,
        "architecture": _architecture_of(config),
        "num_classes": config.num_classes,
        "config": config_dict,
        "pretrained": _pretrained_section(w, config.num_classes),
    }
    with atomic_path(out / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return out


_HUB_DATASETS = frozenset({"cifar10", "cifar100", "imagenet-1k"})  # our dataset names that are Hub dataset ids


def model_card(model: nn.Module, repo_id: str, *, weights: Weights | None = None) -> str:
    """A Hub model card (README.md with YAML metadata) describing the model and its weights."""
    from huggingface_hub import ModelCard, ModelCardData

    config = _check_model(model, "model_card")
    w = _check_weights(model, weights)
    arch = _architecture_of(config) or "custom ResNet"
    same_head = w is not None and w.num_classes == config.num_classes
    meta = ModelCardData(
        library_name="reszoo",
        pipeline_tag="image-classification",
        tags=["resnet", "reszoo"],
        license=w.license if w is not None else None,
        datasets=[w.dataset] if same_head and w.dataset in _HUB_DATASETS else None,
    )
    lines = [
        f"# {repo_id}",
        "",
        f"A {arch} (depth {config.depth}, shortcut option {config.shortcut}, {config.num_classes} classes) "
        "in the reszoo format: `model.safetensors` + `config.json` (rebuilds the network without code).",
        "",
        "```python",
        "import reszoo",
        f'model = reszoo.load_pretrained("hf-hub:{repo_id}")',
        "preprocess = model.pretrained_weights.transforms()",
        "```",
    ]
    if w is not None:
        lines += ["", "## Weights", "", f"- name: `{w.name}`", f"- origin: {w.origin}", f"- license: {w.license}"]
        pre = w.preprocessing()
        lines.append(
            f"- pre-processing: resize {pre['resize_size']}, crop {pre['crop_size']}, {pre['interpolation']}, "
            f"mean {tuple(pre['mean'])}, std {tuple(pre['std'])}"
        )
        if w.notes:
            lines.append(f"- notes: {w.notes}")
        if w.metrics and same_head:
            lines += ["", "| dataset | metric | value | source |", "|---|---|---|---|"]
            lines += [f"| {m.dataset} | {m.name} | {m.value} | {m.source} |" for m in w.metrics]
    body = "\n".join(lines) + "\n"
    return str(ModelCard(f"---\n{meta.to_yaml()}\n---\n\n{body}"))


def check_repo_id(repo_id: Any) -> str:
    """Refuse a Hub repo id that is not ``"owner/name"`` (or ``"name"``), before anything is written or sent."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"repo_id must be 'owner/name' (or 'name'), received {repo_id!r}: {err}") from None
    return repo_id


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    weights: Weights | None = None,
) -> str:
    """Publish a model to a Hub repo in the :func:`save_pretrained` format, with a model card.

    Creates the repo if needed and uploads ``model.safetensors``, ``config.json`` and ``README.md``
    in one commit. Anyone can then ``load_pretrained("hf-hub:" + repo_id)``.

    Args:
        model: a :class:`~reszoo.ResNet`.
        repo_id: ``"owner/name"``.
        private: create the repo private (only when it is created).
        token: a Hub token; default: the logged-in one (``hf auth login`` / ``HF_TOKEN``).
        revision: the branch to commit to.
        commit_message: default ``"Upload {name} with reszoo"``.
        create_pr: open a pull request instead of committing directly.
        weights: the weights record to describe; default ``model.pretrained_weights``.

    Returns:
        The URL of the commit (or pull request).
    """
    from huggingface_hub import HfApi

    from reszoo import __version__

    check_repo_id(repo_id)
    for arg, value in (("private", private), ("create_pr", create_pr)):
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{arg} must be True or False, received {value!r}.")
    w = _check_weights(model, weights)
    with tempfile.TemporaryDirectory(prefix="reszoo-push-") as tmp:
        # Written (and the model checked) before the repo is created: a bad model creates nothing.
        save_pretrained(model, tmp, weights=w)
        Path(tmp, "README.md").write_text(model_card(model, repo_id, weights=w), encoding="utf-8")
        api = HfApi(endpoint=_endpoint(), token=token, library_name="reszoo", library_version=__version__)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=tmp,
            repo_type="model",
            revision=revision,
            create_pr=create_pr,
            commit_message=commit_message or f"Upload {w.name if w else 'model'} with reszoo",
        )
    return str(getattr(info, "pr_url", None) or getattr(info, "commit_url", info))


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
    entry = get_weights(name)  # an entry (with the closest names if unknown), not a directory or hf-hub: repo
    return save_pretrained(load_pretrained(entry.name, checkpoint=checkpoint, check_hash=check_hash), output_dir)


def pretrained_table(pattern: str | None = None) -> list[dict[str, Any]]:
    """One JSON-ready row per weight entry (name, architecture, source, top-1, license, pre-processing)."""
    rows = []
    for name in list_pretrained(pattern):
        w = get_weights(name)
        src = w.source
        where = f"hf-hub:{src.repo_id}" if isinstance(src, HubSource) else src.url
        top1 = next((m.value for m in w.metrics), None)
        rows.append(
            {
                "name": w.name,
                "aliases": list(w.aliases),
                "arch": w.arch,
                "overrides": w.overrides,
                "dataset": w.dataset,
                "num_classes": w.num_classes,
                "top1": top1,
                "source": where,
                "sha256_prefix": getattr(src, "sha256_prefix", None),
                "license": w.license,
                **w.preprocessing(),
            }
        )
    return rows
