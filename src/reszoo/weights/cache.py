"""The weights cache: bytes on disk, each file verified before it is used. It stores and checks
files; it never converts or builds anything (that is :mod:`reszoo.weights.pretrained`'s job).

URL entries (the original CIFAR checkpoints) keep two files::

    $RESZOO_CACHE/originals/FILE          the original, downloaded and sha256-checked (fetch_original)
    $RESZOO_CACHE/converted/NAME.safetensors  the converted, checked weights with their digest
                                          (store_converted / read_converted)

so the next load reads safetensors only. ``RESZOO_URL_MIRROR`` replaces the scheme and host of
every URL (a mirror keeping the paths). Every cache file is written to a temporary name and moved
into place under a file lock (:mod:`reszoo.utils.fileio`), so concurrent processes never see half a file
and never download twice. A file that fails a check is deleted, never kept.

The safetensors files reszoo writes carry a ``reszoo_digest`` (:func:`tensors_digest`) in their
metadata, checked on every read: a local folder or cache file damaged after its download (a bad
disk, an interrupted copy) is caught too, which the sha256 of a download alone cannot do.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import torch

from reszoo.errors import WeightsIntegrityError, WeightsNotCachedError
from reszoo.utils.fileio import atomic_path, cache_dir, file_lock, sha256_file, tensors_digest
from reszoo.weights.records import HubSource, UrlSource, Weights

StateDict = dict[str, torch.Tensor]

__all__ = [
    "CONVERTED_VERSION",
    "FORMAT_VERSION",
    "converted_path",
    "discard",
    "fetch_original",
    "is_offline",
    "not_cached_error",
    "original_path",
    "read_converted",
    "read_header",
    "read_safetensors",
    "save_safetensors",
    "store_converted",
    "verify_file",
]

FORMAT_VERSION = 1  # of the files reszoo writes: safetensors metadata and config.json
# Bump when a converter's output changes, so stale converted files in users' caches are rebuilt.
CONVERTED_VERSION = 1


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

    with _damage_as_integrity_error(path, "it"), safe_open(str(path), framework="pt", device=str(device or "cpu")) as f:
        metadata = dict(f.metadata() or {})
        state_dict = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    expected = metadata.get("reszoo_digest")
    if expected and tensors_digest(state_dict) != expected:
        raise WeightsIntegrityError(f"{path} is corrupted: its tensors do not match the checksum stored in the file.")
    return state_dict


def read_header(path: str | os.PathLike[str]) -> dict[str, tuple[tuple[int, ...], str]]:
    """Each tensor's name, shape and dtype (``"F32"``, ``"F16"``, ``"I64"``, ...) from a safetensors
    header, without reading the tensors; a damaged header raises WeightsIntegrityError."""
    from safetensors import safe_open

    with _damage_as_integrity_error(path, "its header"), safe_open(str(path), framework="pt") as f:
        slices = {k: f.get_slice(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        return {k: (tuple(s.get_shape()), s.get_dtype()) for k, s in slices.items()}


@contextlib.contextmanager
def _damage_as_integrity_error(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Any error safetensors raises while reading ``path`` (it has its own type for every kind of damage) as a
    WeightsIntegrityError naming the file; a missing file stays FileNotFoundError."""
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as err:
        raise WeightsIntegrityError(
            f"{path} is truncated or corrupted: safetensors cannot read {what} ({type(err).__name__}: {err})."
        ) from err


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
        f"While online, run `reszoo download {w.name}` (or reszoo.weights.pretrained.download({w.name!r})) "
        "to fill the cache, "
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
    """The verified original file in the cache and its sha256, downloading it if needed (under its lock)."""
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


def read_converted(w: Weights, *, device: torch.device | None = None) -> StateDict | None:
    """The converted weights of a URL entry from the cache, or ``None`` when they are not there.

    A damaged file (its digest does not match) is deleted and reported as absent, so the caller
    rebuilds it from the verified original.
    """
    path = converted_path(w)
    if not path.exists():
        return None
    try:
        return read_safetensors(path, device=device)
    except WeightsIntegrityError:
        discard(path)
        return None


def store_converted(w: Weights, state_dict: StateDict, *, source_sha256: str) -> Path:
    """Cache the converted (and checked) weights of a URL entry as safetensors with their digest."""
    path = converted_path(w)
    meta = {"reszoo_weights": w.name, "source_sha256": source_sha256, "converter": w.converter}
    save_safetensors(state_dict, path, meta)
    return path


def fetch_original(w: Weights, *, force: bool = False) -> tuple[Path, str]:
    """The verified original file of a URL entry in the cache and its sha256, downloaded if needed.

    Concurrent processes wait on the file's lock: one downloads, the others read its result.
    """
    dest = original_path(w)
    with file_lock(dest):
        return _fetch_original(w, force=force)
