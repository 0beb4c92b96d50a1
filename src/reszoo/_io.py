"""File writing shared by the weight cache (hub.py) and training runs (train.py)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; if the block succeeds it replaces ``path``.

    Readers see the old file or the new one, never a half-written one, and a process killed
    mid-write leaves only a hidden temporary behind, which is removed when the block fails.
    The unique name keeps concurrent writers of the same file apart.

    Args:
        path: the file to write.
        fsync: flush the new file to disk before the rename (checkpoints that must survive a crash).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
