"""Image files, read safely: which files are images, how one is opened and decoded, and which files
a path, folder or glob names.

- A file whose extension is not in :data:`IMAGE_EXTENSIONS` is not an image (``.txt``,
  ``.DS_Store``), as in torchvision; hidden folders are not read.
- Only regular files are images: a named pipe, socket or device with an image's name is never
  opened (a pipe would block forever).
- An image over PIL's own decompression-bomb limit (twice ``PIL.Image.MAX_IMAGE_PIXELS``) is
  refused, as PIL refuses it.
- A folder is walked once: a symlink loop (``cat/loop -> .``) or a link up to the folder itself
  does not repeat its images, and two names for one file are one image.
- Every image is converted to RGB as torchvision's ``ImageFolder`` loader does, except 16-bit
  greyscale, which is scaled to 8 bits first (:func:`to_rgb`).

:mod:`reszoo.data.imagefolder` reads the ImageFolder layouts on top of this.

Example:
    >>> import tempfile, PIL.Image
    >>> root = tempfile.mkdtemp()
    >>> PIL.Image.new("L", (8, 8)).save(f"{root}/a.png")
    >>> [os.path.basename(p) for p in find_images([root])], load_rgb(f"{root}/a.png").mode
    (['a.png'], 'RGB')
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import PIL.Image

from reszoo.errors import MissingInputError
from reszoo.utils.checks import check_path, type_error

__all__ = ["IMAGE_EXTENSIONS", "find_images", "image_files", "is_image_file", "load_rgb", "to_rgb", "unreadable"]


IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".ppm", ".tif", ".tiff", ".webp")


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def load_rgb(path: str | os.PathLike[str]) -> PIL.Image.Image:
    """The image at ``path``, decoded and converted to RGB.

    Raises:
        MissingInputError: the file does not exist or PIL cannot decode it (the message names it).
    """
    path = check_path("path", path)
    try:
        with _open_file(path) as f, PIL.Image.open(f) as img:
            return to_rgb(img)
    except FileNotFoundError:
        if os.path.islink(path):
            raise MissingInputError(f"Cannot read image {path}: {_broken_link(path)}.") from None
        raise MissingInputError(f"Image file not found: {path}.") from None
    except _NotAFileError as exc:
        raise MissingInputError(f"Cannot read image {path}: {exc}; only regular files are read as images.") from None
    except PIL.Image.DecompressionBombError as exc:
        raise MissingInputError(f"Cannot read image {path}: {_too_large(exc)}.") from None
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's decoders raise all three
        raise MissingInputError(f"Cannot read image {path}: {exc}.") from None


# PIL's modes for 16-bit greyscale (PNG, TIFF), and 32-bit integers (what older PIL made of 16-bit PNGs).
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_rgb(img: PIL.Image.Image) -> PIL.Image.Image:
    """``img`` as 8-bit RGB: ``img.convert("RGB")``, as torchvision's ImageFolder loader does, except
    for 16-bit greyscale (and integer images), which PIL's convert clips at 255, so that nearly every
    pixel turns white. Those are scaled from 0..65535 to 0..255 first (rounded; values outside
    clipped), as a 16-bit PNG's samples span the full 16-bit range.

    Example:
        >>> import numpy as np
        >>> grey16 = PIL.Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
        >>> grey16.mode, to_rgb(grey16).getpixel((1, 0)), grey16.convert("RGB").getpixel((1, 0))
        ('I;16', (128, 128, 128), (255, 255, 255))
    """
    if img.mode in _WIDE_MODES:
        import numpy as np

        wide = np.clip(np.asarray(img).astype(np.int64), 0, 65535)
        img = PIL.Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8))
    return img.convert("RGB")


class _NotAFileError(OSError):
    """A path that is a named pipe, socket or device: opening it to read could block forever."""


def _kind(mode: int) -> str:
    kinds = {stat.S_ISFIFO: "a named pipe", stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a folder"}
    kinds |= {stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
    return next((name for test, name in kinds.items() if test(mode)), "not a file")


def _open_file(path: str) -> BinaryIO:
    """``path`` open for reading if it is a regular file (links followed), else :class:`_NotAFileError`.

    Only regular files are images: a named pipe with an image's name would block the open (and
    the scan, or ``evaluate``, forever). It is told apart by ``stat`` before it is opened, and
    the file is opened without blocking and checked again, in case it was swapped in between.
    """
    if not stat.S_ISREG(mode := os.stat(path).st_mode):
        raise _NotAFileError(_kind(mode))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(mode := os.fstat(fd).st_mode):
            raise _NotAFileError(_kind(mode))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _broken_link(path: str) -> str:
    try:
        return f"a broken link to {os.readlink(path)}"
    except OSError:
        return "a broken link"


def _too_large(err: Exception) -> str:
    """PIL's own decompression-bomb limit, said as such: reszoo uses PIL's limit, not one of its own."""
    return f"{str(err).rstrip('.')} (PIL refuses images over twice PIL.Image.MAX_IMAGE_PIXELS)"


def unreadable(path: str) -> str | None:
    """Why PIL cannot open ``path`` ("" when it cannot decode it), or None when it can.

    Cheap: only the header is read, pixels are not decoded. An image whose header claims more
    pixels than PIL's decompression-bomb limit is unreadable too (PIL refuses it on opening).
    """
    try:
        with _open_file(path) as f, PIL.Image.open(f):
            return None
    except FileNotFoundError:
        return _broken_link(path) if os.path.islink(path) else "gone"
    except _NotAFileError as err:
        return f"{err}, not a regular file"
    except PIL.Image.DecompressionBombError as err:
        return _too_large(err)
    except (OSError, ValueError, SyntaxError):
        return ""


def image_files(folder: Path, repeats: list[str] | None = None) -> list[str]:
    """Image files under ``folder``, recursively, sorted; links are followed, as ImageFolder does.

    Each folder is read once and each file counted once: a link back to a folder already read
    (``cat/loop -> .``), or up to ``folder`` or above it (``cat/sub/up -> ../..``, which holds
    every class), would otherwise repeat images some forty times (until the path grows too long)
    or bring in other classes; two links to one file are one image (the path without a link is
    kept). What was left out that way is added to ``repeats``.
    """
    repeats = [] if repeats is None else repeats
    chosen: dict[tuple[int, int] | str, tuple[str, bool]] = {}  # file identity -> (path, reached by a link)
    folders: set[tuple[int, int]] = set()
    stack = [os.fspath(folder)]
    top = os.path.realpath(folder)
    while stack:
        path = stack.pop()
        try:
            info = os.stat(path)
            if (info.st_dev, info.st_ino) in folders:
                repeats.append(path)
                continue
            folders.add((info.st_dev, info.st_ino))
            entries = sorted((e for e in os.scandir(path) if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError:  # gone or unreadable: passed over, as os.walk does
            continue
        for e in reversed([e for e in entries if e.is_dir()]):  # links followed; read in sorted order
            if e.is_symlink() and _is_within(top, os.path.realpath(e.path)):
                repeats.append(e.path)  # a link up to the folder itself or above it: all of it again
            else:
                stack.append(e.path)
        for e in entries:
            if e.is_dir() or not is_image_file(e.name):
                continue
            try:
                found = e.stat()
                key: tuple[int, int] | str = (found.st_dev, found.st_ino)
            except OSError:  # a broken link: its own entry (the reader says why it cannot be read)
                key = e.path
            link = e.is_symlink()
            if key in chosen and (link or not chosen[key][1]):
                repeats.append(e.path)
                continue
            if key in chosen:
                repeats.append(chosen[key][0])
            chosen[key] = (e.path, link)
    return sorted(path for path, _ in chosen.values())


def _is_within(path: str, folder: str) -> bool:
    """Whether the real path ``path`` is ``folder`` or inside it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _expand(path: str) -> list[str]:
    """The image files one argument names: the file, a folder's images (recursive), or a glob's matches.

    A named pipe, socket or device, or a broken link, is kept too (never opened here): the reader
    skips it with the warning that names unreadable files, instead of it vanishing, hanging the
    run or stopping it.
    """
    if os.path.isdir(path):
        found = image_files(Path(path))
        if not found:
            raise MissingInputError(f"No image files in folder {path} (looked for {', '.join(IMAGE_EXTENSIONS)}).")
        return found
    if os.path.lexists(path):  # a file, a pipe, or a broken link: the reader skips what it cannot read
        return [path]
    if glob.has_magic(path):
        matches = sorted(glob.glob(path, recursive=True))
        found = [m for m in matches if os.path.lexists(m) and not os.path.isdir(m) and is_image_file(m)]
        found += [f for m in matches if os.path.isdir(m) for f in image_files(Path(m))]
        if found:
            return found
        raise MissingInputError(f"No image files match {path!r}.")
    raise MissingInputError(f"No such file or folder: {path}.")


def find_images(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The image files named by ``paths``: files, folders (recursively), glob patterns.

    A file named explicitly is kept whatever its extension (PIL reads the content); in folders
    and globs only :data:`IMAGE_EXTENSIONS` count.

    Args:
        paths: one or more paths or patterns (``"photos/*.jpg"``, ``"photos/**"``).

    Returns:
        The files, sorted and without duplicates.

    Raises:
        MissingInputError: a path or pattern that names no image file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if isinstance(paths, bytes) or not isinstance(paths, Sequence) or not paths:
        raise type_error("paths", paths, "a non-empty sequence of paths")
    found: dict[str, str] = {}
    for path in paths:
        for file in _expand(os.path.expanduser(check_path("paths", path))):
            found.setdefault(os.path.realpath(file), os.path.normpath(file))
    return sorted(found.values())
