"""Files: atomic writes, checksums and locks, shared by the weight cache and training runs.

A write that fails for a reason outside the program (a full disk, no permission, a read-only
file system) raises :class:`~reszoo.errors.FileWriteError`, which names the file and the cause;
the file as it was before is left in place.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reszoo.errors import FileWriteError, RunFolderError

if TYPE_CHECKING:
    import torch

# The errors that mean "this file cannot be written here", as opposed to a bug or a missing input.
WRITE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM", "EIO", "ENOTDIR", "EISDIR")
    if hasattr(errno, name)
)
_HINTS = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EACCES: "check the folder's permissions or write elsewhere",
    errno.EROFS: "the file system is read-only; write elsewhere",
}
# Writers in Rust (safetensors) report the operating system's error only in their message.
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _write_errno(err: BaseException | None) -> int | None:
    # The cause may sit under the error raised last: torch.save, given a file whose write fails,
    # raises a RuntimeError while closing its archive, with the OSError as its context.
    for _ in range(8):
        if err is None:
            return None
        code = err.errno if isinstance(err, OSError) else None
        if code is None and not isinstance(err, OSError):
            match = _RUST_OS_ERROR.search(str(err))
            code = int(match.group(1)) if match else None
        if code in WRITE_ERRNOS:
            return code
        err = err.__cause__ or err.__context__
    return None


def write_error(
    path: str | os.PathLike[str], err: BaseException, *, existed: bool | None = None
) -> FileWriteError | None:
    """The :class:`FileWriteError` for ``err`` raised while writing ``path``, or None if ``err`` is not one.

    Args:
        path: the file being written (named in the message).
        err: what the write raised: an ``OSError`` with a write errno, or an error of a Rust writer
            whose message ends in ``(os error N)``.
        existed: whether ``path`` existed before (the message says it is unchanged); default: looked up.
    """
    if isinstance(err, FileWriteError):
        return err
    code = _write_errno(err)
    if code is None:
        return None
    path = os.fspath(path)
    if existed is None:
        existed = os.path.exists(path)
    kept = "the previous file is unchanged" if existed else "nothing was written"
    hint = f"; {_HINTS[code]}" if code in _HINTS else ""
    return FileWriteError(code, f"Cannot write {path}: {os.strerror(code)} ({kept}{hint}).", path)


def _temporary_name(name: str, tag: str) -> str:
    return f".{name}.{tag}.tmp"


def torn_temporaries(folder: str | os.PathLike[str], names: Iterable[str]) -> list[Path]:
    """The temporaries :func:`atomic_path` left in ``folder`` for the files ``names`` when its process was
    killed mid-write (``kill -9``, a power cut): ``.NAME.<32 hex digits>.tmp``, reszoo's own names only.

    Deleting them is the caller's decision, taken where no writer can be at work (a run folder's lock).
    """
    pattern = re.compile("|".join(re.escape(_temporary_name(n, "@")).replace("@", "[0-9a-f]{32}") for n in names))
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(Path(e.path) for e in entries if pattern.fullmatch(e.name) and e.is_file(follow_symlinks=False))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; if the block succeeds it replaces ``path``.

    Readers see the old file or the new one, never a half-written one, and a process killed
    mid-write leaves only a hidden temporary behind, which is removed when the block fails.
    The unique name keeps concurrent writers of the same file apart.

    Args:
        path: the file to write.
        fsync: flush the new file to disk before the rename (checkpoints that must survive a crash).

    Raises:
        FileWriteError: the file could not be written (disk full, no permission, read-only); the
            old file, if any, is unchanged.
    """
    path = Path(path)
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(path, err, existed=existed) or err from None
    tmp = path.with_name(_temporary_name(path.name, uuid.uuid4().hex))
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as err:
        failure = write_error(path, err, existed=existed)
        if failure is None or failure is err:
            raise
        raise failure from err
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def cache_dir() -> Path:
    """reszoo's own cache: ``$RESZOO_CACHE``, else ``$XDG_CACHE_HOME/reszoo``, else ``~/.cache/reszoo``.

    Weights keep their files under ``originals/`` and ``converted/``, ONNX Runtime its exports under ``onnx/``.
    """
    root = os.environ.get("RESZOO_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "reszoo")
    return Path(root).expanduser()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks (``huggingface_hub``'s own file hasher)."""
    from huggingface_hub.utils.sha import sha_fileobj

    with open(path, "rb") as f:
        return sha_fileobj(f).hex()


def tensors_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state_dict (stored in our safetensors metadata)."""
    import torch

    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_lock(path: str | os.PathLike[str]) -> Any:
    """An inter-process lock (``filelock.FileLock``) on ``path + ".lock"``; its folder is created."""
    from filelock import FileLock

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return FileLock(os.fspath(path) + ".lock")


LOCK_NAME = ".lock"


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _flock(fd: int, *, exclusive: bool) -> bool:
    """Try to lock ``fd`` without waiting; True on success. A shared (probe) lock is released at once."""
    try:
        import fcntl
    except ImportError:  # Windows: lock one byte past the pid text, so the pid stays readable
        import msvcrt

        os.lseek(fd, 1024, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        if not exclusive:
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    if not exclusive:
        fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def in_use_error(folder: str | os.PathLike[str], pid: int | None) -> RunFolderError:
    """The error for a folder whose lock another process holds: names the folder, the process and the lock."""
    other = f"process {pid}" if pid and pid > 0 else "another process"
    lock = Path(folder) / LOCK_NAME
    return RunFolderError(
        f"{os.fspath(folder)} is in use by {other} (lock file {lock}); wait for it to finish or stop it, "
        "or use another folder."
    )


def lock_holder(folder: str | os.PathLike[str]) -> int | None:
    """The id of the live process that holds ``folder``'s lock (:func:`lock_folder`), or None; writes nothing."""
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _flock(fd, exclusive=False):
            return None
        return _read_pid(fd) or -1
    finally:
        os.close(fd)


@contextlib.contextmanager
def lock_folder(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created) for the block: ``<folder>/.lock`` holds our pid.

    The operating system drops the lock when its process ends, however it ends (``flock``), so the
    lock of a killed process is taken over by the next one. The lock file is removed on release.

    Raises:
        RunFolderError: another process holds the lock (the message names the folder and its pid).
        FileWriteError: the folder or its lock file cannot be written.
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _acquire(path)
    except OSError as err:
        raise write_error(path, err, existed=False) or err from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # before unlocking: a waiting process then finds no stale file to lock
        os.close(fd)


def _acquire(path: Path) -> int:
    busy = 0
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _flock(fd, exclusive=True):
            pid = _read_pid(fd)
            os.close(fd)
            busy += 1
            if busy < 3:  # a lock_holder probe holds the lock for microseconds: look again
                time.sleep(0.05)
                continue
            raise in_use_error(path.parent, pid)
        try:
            # The owner we waited on may have removed the file as we opened it: lock the file now there.
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise RunFolderError(f"Could not lock {path.parent}: its lock file {path} keeps changing.")
