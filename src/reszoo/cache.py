"""The weights cache: bytes on disk, each file verified before it is used.

URL entries (the original CIFAR checkpoints) travel one way::

    original URL -> $RESZOO_CACHE/originals (sha256 checked) -> converted to reszoo's layout
                 -> checked against the architecture -> $RESZOO_CACHE/converted (safetensors + digest)

so the next load reads safetensors only. ``RESZOO_URL_MIRROR`` replaces the scheme and host of
every URL (a mirror keeping the paths). Every cache file is written to a temporary name and moved
into place under a file lock (:mod:`reszoo.fileio`), so concurrent processes never see half a file
and never download twice. A file that fails a check is deleted, never kept.

The safetensors files reszoo writes carry a ``reszoo_digest`` (:func:`tensors_digest`) in their
metadata, checked on every read: a local folder or cache file damaged after its download (a bad
disk, an interrupted copy) is caught too, which the sha256 of a download alone cannot do.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import torch

from reszoo.convert import StateDict, convert_state_dict, read_checkpoint
from reszoo.errors import WeightsIntegrityError, WeightsNotCachedError
from reszoo.fileio import atomic_path, file_lock, sha256_file, tensors_digest
from reszoo.weights import HubSource, UrlSource, Weights

__all__ = [
    "CONVERTED_VERSION",
    "FORMAT_VERSION",
    "Fit",
    "WeightsIntegrityError",
    "WeightsNotCachedError",
    "cache_dir",
    "converted_path",
    "converted_state_dict",
    "discard",
    "ensure_converted",
    "is_offline",
    "not_cached_error",
    "original_path",
    "read_safetensors",
    "save_safetensors",
    "sha256_file",
    "tensors_digest",
    "verify_file",
]

FORMAT_VERSION = 1  # of the files reszoo writes: safetensors metadata and config.json
# Bump when a converter's output changes, so stale converted files in users' caches are rebuilt.
CONVERTED_VERSION = 1

# Fits converted weights to the network they are for: (state_dict, what they are) -> the state_dict
# to load strictly; raises when they do not fit (see reszoo.convert.fit_state_dict).
Fit = Callable[[StateDict, str], StateDict]


def cache_dir() -> Path:
    """reszoo's own cache: ``$RESZOO_CACHE``, else ``$XDG_CACHE_HOME/reszoo``, else ``~/.cache/reszoo``."""
    root = os.environ.get("RESZOO_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "reszoo")
    return Path(root).expanduser()


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read at call time, not only at import)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return value in constants.ENV_VARS_TRUE_VALUES or constants.is_offline_mode()


def _progress() -> bool:
    from huggingface_hub.utils import are_progress_bars_disabled

    return not are_progress_bars_disabled()


def _mirrored(url: str) -> str:
    mirror = os.environ.get("RESZOO_URL_MIRROR")
    return mirror.rstrip("/") + urlsplit(url).path if mirror else url


def discard(*paths: str | os.PathLike[str]) -> None:
    """Delete cache files that failed a check (missing ones are fine)."""
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


# -- safetensors with a digest ------------------------------------------------------------------------


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str], metadata: dict) -> None:
    """Write atomically (a temporary file, then ``os.replace``), with the tensors' digest in the metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    meta = {"format": "pt", "reszoo_format_version": str(FORMAT_VERSION), "reszoo_digest": tensors_digest(tensors)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={**meta, **metadata})


def read_safetensors(path: str | os.PathLike[str], *, device: torch.device | None = None) -> StateDict:
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


# -- checks -------------------------------------------------------------------------------------------


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


def not_cached_error(w: Weights, what: str, reason: str) -> WeightsNotCachedError:
    """The error for an entry that is neither cached nor downloadable now; it says how to fix that."""
    return WeightsNotCachedError(
        f"Weights {w.name!r} are not cached and cannot be downloaded ({reason}): {what}. "
        f"While online, run `reszoo download {w.name}` (or reszoo.hub.download({w.name!r})) to fill the cache, "
        f"or load a local copy of the file with "
        f"reszoo.load_pretrained({w.name!r}, checkpoint='path/to/{w.source.filename}')."
    )


# -- URL entries: original -> verified -> converted -> cached ------------------------------------------


def original_path(w: Weights) -> Path:
    """Where the original file of a URL entry is cached (it may not be there yet)."""
    return cache_dir() / "originals" / w.source.filename


def converted_path(w: Weights) -> Path:
    """Where the converted safetensors of a URL entry is cached (it may not be there yet)."""
    tag = getattr(w.source, "sha256_prefix", None) or "unversioned"
    return cache_dir() / "converted" / f"{w.name}-{tag}-c{CONVERTED_VERSION}.safetensors"


def _fetch_original(w: Weights, *, force: bool = False) -> tuple[Path, str]:
    """The verified original file in the cache and its sha256, downloading it if needed. Call under the entry's lock."""
    from torch.hub import download_url_to_file

    src = w.source
    assert isinstance(src, UrlSource)
    dest = original_path(w)
    if dest.exists() and not force:
        try:
            return dest, verify_file(dest, src, label=w.name)
        except WeightsIntegrityError:
            discard(dest)  # a damaged cache file is never used or kept; fetch it again below
            if is_offline():
                raise
    url = _mirrored(src.url)
    if is_offline():
        raise not_cached_error(w, f"{src.filename} from {url} is not in {dest.parent}", "HF_HUB_OFFLINE is set")
    with atomic_path(dest) as tmp:
        try:
            download_url_to_file(url, str(tmp), progress=_progress())
        except Exception as err:  # urllib: URLError, HTTPError, IncompleteRead, timeouts
            what = f"downloading {url} failed ({type(err).__name__}: {err})"
            raise not_cached_error(w, what, "download failed") from err
        try:
            digest = verify_file(tmp, src, label=f"{w.name} (downloaded from {url})")
        except WeightsIntegrityError as err:
            raise WeightsIntegrityError(f"{err} The download was discarded.") from None
    return dest, digest


def _convert(w: Weights, path: Path, *, fit: Fit, force: bool = False) -> StateDict:
    """Original -> verified -> converted -> fitted -> cached at ``path``. Call under the entry's lock."""
    original, original_sha256 = _fetch_original(w, force=force)
    try:
        converted = convert_state_dict(w.converter, read_checkpoint(original))
        state_dict = fit(converted, f"Weights {w.name!r} from {original}")
    except (ValueError, RuntimeError):
        # A file that passed its checksum prefix but cannot be read, converted or fitted is not kept:
        # the next call downloads it again instead of failing on the same cached file forever.
        discard(original)
        raise
    meta = {"reszoo_weights": w.name, "source_sha256": original_sha256, "converter": w.converter}
    save_safetensors(state_dict, path, meta)
    return state_dict


def ensure_converted(w: Weights, *, fit: Fit, force: bool = False) -> Path:
    """The converted safetensors file of a URL entry, built from its original if needed (or ``force``).

    Args:
        w: an entry with a :class:`~reszoo.weights.UrlSource`.
        fit: checks a fresh conversion against the entry's network before it is cached.
        force: download and convert again even if cached.
    """
    path = converted_path(w)
    with file_lock(path):
        if force or not path.exists():
            _convert(w, path, fit=fit, force=force)
    return path


def converted_state_dict(w: Weights, *, fit: Fit, device: torch.device | None = None) -> StateDict:
    """The weights of a URL entry, fitted by ``fit``: read from the cache, else converted and cached first.

    A damaged converted file is rebuilt from the verified original (downloaded again if that is
    damaged too). Fitting happens once, whichever way the weights come.
    """
    path = converted_path(w)
    with file_lock(path):
        if path.exists():
            try:
                state_dict = read_safetensors(path, device=device)
            except WeightsIntegrityError:
                discard(path)
            else:
                return fit(state_dict, f"Weights {w.name!r} ({path})")
        return _convert(w, path, fit=fit)
