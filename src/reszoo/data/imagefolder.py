"""Image folders: the ImageFolder layout read as plain data, and the images in it.

Two layouts are read, as torchvision's ``ImageFolder`` names them:

    root/train/<class>/*.png   root/val/<class>/*.png      the split layout
    root/<class>/*.png                                     one tree (a held-out share is the val split)

(``root/train/`` alone is one tree too.) :func:`scan_folder` turns a folder into a
:class:`FolderSplit` (class names, ``(path, label)`` samples, skipped files); :class:`ImageFiles`
is the torch ``Dataset`` over one. Which files are images, and how they are opened and decoded,
is :mod:`reszoo.data.imagefiles`'s: a file with an image extension that cannot be read (PIL cannot
open it, a pipe, a broken link, a decompression bomb) is skipped, with one warning per scan that
counts them and names the first three; a file that passes the scan but fails to decode later
raises :class:`MissingInputError` naming it.

Example:
    >>> import tempfile, PIL.Image
    >>> root = tempfile.mkdtemp()
    >>> for name in ("cat", "dog"):
    ...     _ = os.makedirs(f"{root}/{name}")
    ...     for i in range(5):
    ...         PIL.Image.new("L", (8, 8)).save(f"{root}/{name}/{i}.png")
    >>> split = scan_folder(root, split="train", val_fraction=0.2)
    >>> split.classes, len(split.samples)
    (('cat', 'dog'), 8)
    >>> image, label = ImageFiles(split)[0]
    >>> image.mode, label
    ('RGB', 0)
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from reszoo.data.imagefiles import IMAGE_EXTENSIONS, image_files, load_rgb, unreadable
from reszoo.errors import InvalidArgumentError, MissingInputError
from reszoo.utils.checks import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_path,
    check_str,
    type_error,
    value_error,
)

SPLITS = ("train", "val", "all")

__all__ = [
    "SPLITS",
    "FolderSplit",
    "ImageFiles",
    "folder_classes",
    "image_stats",
    "is_split_layout",
    "scan_folder",
]


@dataclass(frozen=True)
class FolderSplit:
    """One split of an image folder, as plain data.

    Attributes:
        root: the folder the classes were read from (``root/train``, ``root/val`` or ``root``).
        classes: class-folder names; label ``i`` is ``classes[i]`` (sorted, unless given to ``scan_folder``).
        samples: ``(path, label)`` pairs, sorted by class then path.
        skipped: image files PIL cannot open, left out (warned once).
    """

    root: str
    classes: tuple[str, ...]
    samples: tuple[tuple[str, int], ...]
    skipped: tuple[str, ...] = ()

    @property
    def labels(self) -> list[int]:
        """The label of each sample, in order."""
        return [label for _, label in self.samples]

    def class_counts(self) -> dict[str, int]:
        """Images per class name."""
        counts = dict.fromkeys(self.classes, 0)
        for _, label in self.samples:
            counts[self.classes[label]] += 1
        return counts


def _class_folders(tree: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(tree) if e.is_dir() and not e.name.startswith("."))


def _describe(tree: Path) -> str:
    entries = [e.name for e in os.scandir(tree) if not e.name.startswith(".")]
    files = sum(1 for e in entries if (tree / e).is_file())
    return f"{files} file(s) and no class folders" if entries else "nothing"


def _check_classes(
    tree: Path, found: list[str], classes: Sequence[str] | None, *, subset: bool = False
) -> tuple[str, ...]:
    """The class folders of ``tree`` to read: ``found`` (sorted) or, when given, ``classes``, which
    must be the same set (with ``subset``: ``found``, which must be among ``classes``)."""
    layout = f"expected {tree}/<class>/<image>, one folder per class"
    if not found:
        raise MissingInputError(f"No class folders in {tree}: found {_describe(tree)}; {layout}.")
    if classes is None:
        if len(found) < 2:
            raise InvalidArgumentError(
                f"Only one class folder in {tree} ({found[0]!r}); a classifier needs at least two; {layout}."
            )
        return tuple(found)
    if subset:
        unknown = [c for c in found if c not in set(classes)]
        if unknown:
            more = f", ... ({len(classes)} in all)" if len(classes) > 10 else ""
            raise InvalidArgumentError(
                f"The class folders in {tree} must be among the classes expected; these are not: "
                f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} (expected: "
                f"{', '.join(classes[:10])}{more})."
            )
        return tuple(found)
    missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
    if missing or extra:
        raise InvalidArgumentError(
            f"The class folders in {tree} differ from the classes expected: missing {missing}, unexpected {extra}."
        )
    return tuple(classes)


def _check_given(classes: Any, *, subset: bool) -> tuple[str, ...] | None:
    if classes is None:
        if subset:
            raise value_error("classes", classes, "the class names the folder's classes are among, with subset=True")
        return None
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise type_error("classes", classes, "a sequence of class names or None")
    names = tuple(check_str("classes", c) for c in classes)
    if subset:  # a model's names: ImageNet's hold two "crane"s; a folder named so is the first
        if not names:
            raise value_error("classes", classes, "at least one class name")
    elif len(set(names)) != len(names) or len(names) < 2:
        raise value_error("classes", classes, "at least two distinct class names")
    return names


def _readable(files: list[str]) -> tuple[list[str], dict[str, str]]:
    """``files`` split into (readable, {unreadable: why}) by a header check, in threads (I/O bound)."""
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(files) // 64))) as pool:
        why = list(pool.map(unreadable, files))
    pairs = list(zip(files, why, strict=True))
    return [f for f, w in pairs if w is None], {f: w for f, w in pairs if w is not None}


def _scan_tree(tree: Path, classes: tuple[str, ...]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Readable image files per class of ``tree``, and the unreadable ones with the reason."""
    per_class: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    repeats: list[str] = []
    for name in classes:
        files = image_files(tree / name, repeats)
        good, bad = _readable(files)
        skipped.update(bad)
        if not good:
            what = f"{len(bad)} unreadable image file(s)" if bad else "no image files"
            raise InvalidArgumentError(
                f"Class folder {tree / name} holds {what}; every class needs at least one image "
                f"({', '.join(IMAGE_EXTENSIONS)})."
            )
        per_class[name] = good
    if repeats:
        names = ", ".join(os.path.relpath(p, tree) for p in repeats[:3])
        more = f" and {len(repeats) - 3} more" if len(repeats) > 3 else ""
        warnings.warn(
            f"{len(repeats)} link(s) under {tree} lead to folders or files already read; each image is counted "
            f"once: {names}{more}.",
            stacklevel=3,
        )
    return per_class, skipped


def _held_out(files: list[str], *, name: str, fraction: float, seed: int) -> list[str]:
    """The held-out share of one class: ``round(n * fraction)`` files (>= 1 when fraction > 0 and n >= 2, <= n - 1)."""
    count = round(len(files) * fraction)
    if fraction > 0 and len(files) >= 2:
        count = min(max(count, 1), len(files) - 1)
    order = list(files)
    random.Random(f"{seed}/{name}").shuffle(order)  # one stream per class: adding a class moves no other split
    return sorted(order[:count])


def _trees(root: Path, split: str) -> tuple[list[Path], bool]:
    """(the trees ``split`` reads, whether ``split`` is a held-out share of one tree)."""
    train, val = root / "train", root / "val"
    if train.is_dir() and val.is_dir():
        return {"train": [train], "val": [val], "all": [train, val]}[split], False
    if val.is_dir() and not train.is_dir():  # only a validation set (e.g. to evaluate on): no held-out share
        if split == "train":
            raise MissingInputError(f"No training images in {root}: it holds val/ but no train/ folder.")
        return [val], False
    return [train if train.is_dir() else root], True


def _warn_skipped(root: Path, skipped: dict[str, str]) -> None:
    """One warning that counts the skipped files and names three, each with its reason where PIL's
    "cannot identify" is not the whole story."""
    if skipped:
        shown = list(skipped.items())[:3]
        names = ", ".join(os.path.relpath(p, root) + (f" ({why})" if why else "") for p, why in shown)
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        warnings.warn(
            f"Skipped {len(skipped)} image file(s) under {root} that PIL cannot open: {names}{more}.", stacklevel=3
        )


def _check_pair(root: Path) -> None:
    """In the split layout, train/ and val/ must hold the same class folders."""
    train, val = _class_folders(root / "train"), _class_folders(root / "val")
    if set(train) != set(val):
        raise InvalidArgumentError(
            f"{root / 'train'} and {root / 'val'} hold different classes: only in train "
            f"{sorted(set(train) - set(val))}, only in val {sorted(set(val) - set(train))}."
        )


def scan_folder(
    root: str | os.PathLike[str],
    *,
    split: str = "train",
    val_fraction: float = 0.1,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    subset: bool = False,
) -> FolderSplit:
    """One split of an image folder: its classes and ``(path, label)`` samples.

    Args:
        root: a folder with ``train/`` and ``val/`` (each one folder per class), or one tree of
            class folders (``root/<class>/...``, or ``root/train/<class>/...`` alone).
        split: ``"train"``, ``"val"`` or ``"all"``. In one tree, ``"val"`` is a deterministic
            share of each class (``val_fraction``, ``seed``) and ``"train"`` the rest; ``"all"``
            is every image of the tree (in the split layout: of ``train/`` and ``val/``).
        val_fraction: held-out share of each class in one tree (ignored in the split layout).
        seed: the held-out draw follows it.
        classes: the class names expected, in label order (e.g. a trained model's); the folder
            must hold exactly these. ``None``: the folder names, sorted.
        subset: the folder may hold some of ``classes`` only, one or more (a test set of a few of
            a model's classes); labels are still positions in ``classes`` (a name that appears
            twice there, as ImageNet's "crane", is its first), and a folder that is none of them
            is refused, naming it.

    Returns:
        A :class:`FolderSplit`.

    Raises:
        MissingInputError: ``root`` is not a folder, or holds no class folders.
        InvalidArgumentError: one class only, a class with no readable image, classes that differ
            from ``classes`` or between ``train/`` and ``val/``, a held-out split with no image.
    """
    root = Path(check_path("root", root)).expanduser()
    check_choice("split", split, SPLITS)
    check_number("val_fraction", val_fraction, minimum=0, maximum=1)
    check_int("seed", seed)
    check_bool("subset", subset)
    given = _check_given(classes, subset=subset)
    if not root.is_dir():
        raise MissingInputError(f"Image folder not found: {root} is not a folder.")
    trees, held_out = _trees(root, split)
    if len(trees) == 2 or (not held_out and (root / "train").is_dir()):
        _check_pair(root)
    folders = _check_classes(trees[0], _class_folders(trees[0]), given, subset=subset)
    names = given if subset and given is not None else folders
    labels: dict[str, int] = {}
    for i, name in enumerate(names):
        labels.setdefault(name, i)
    per_class: dict[str, list[str]] = dict.fromkeys(folders, [])
    skipped: dict[str, str] = {}
    for tree in trees:
        found, bad = _scan_tree(tree, folders)
        per_class = {n: per_class[n] + found[n] for n in folders}
        skipped.update(bad)
    if held_out and split != "all":
        per_class = _pick(per_class, split=split, fraction=val_fraction, seed=seed, tree=trees[0])
    _warn_skipped(root, skipped)
    samples = tuple((path, labels[n]) for n in sorted(folders, key=labels.__getitem__) for path in per_class[n])
    folder = trees[0] if len(trees) == 1 else root
    return FolderSplit(root=str(folder), classes=names, samples=samples, skipped=tuple(skipped))


def is_split_layout(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` holds both ``train/`` and ``val/`` (else it is one tree, or ``val/`` alone)."""
    root = Path(check_path("root", root)).expanduser()
    return (root / "train").is_dir() and (root / "val").is_dir()


def folder_classes(root: str | os.PathLike[str]) -> tuple[str, ...]:
    """The class names a training run on ``root`` would use (its training tree's class folders, sorted).

    Cheap: no image is opened (``scan_folder`` checks the files). Same errors as :func:`scan_folder`
    for a missing folder, no class folders or one class.
    """
    root = Path(check_path("root", root)).expanduser()
    if not root.is_dir():
        raise MissingInputError(f"Image folder not found: {root} is not a folder.")
    tree = _trees(root, "train")[0][0]
    return _check_classes(tree, _class_folders(tree), None)


def image_stats(
    split: FolderSplit, resize: Callable[[Any], Any], *, limit: int = 2000, seed: int = 0
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (a deterministic sample of) a split's images, pixels in [0, 1].

    Args:
        split: the images.
        resize: maps an RGB PIL image to a uint8 ``(C, H, W)`` tensor of one fixed size (e.g.
            ``reszoo.data.transforms.model_resize``): the statistics are those the model's input sees.
        limit: at most this many images, drawn with ``seed`` (all of them when fewer).
        seed: the draw follows it.

    Returns:
        ``(mean, std)`` tuples (``reszoo.data.transforms.channel_stats`` over the images).
    """
    from reszoo.data.transforms import channel_stats

    check_int("limit", limit, minimum=1)
    paths = [p for p, _ in split.samples]
    if len(paths) > limit:
        paths = sorted(random.Random(seed).sample(paths, limit))
    sums, squares = 0.0, 0.0
    for start in range(0, len(paths), 256):  # bounded memory: 256 images at a time
        chunk = torch.stack([resize(load_rgb(p)) for p in paths[start : start + 256]])
        mean, std = (torch.tensor(v, dtype=torch.float64) for v in channel_stats(chunk))
        sums = sums + mean * len(chunk)
        squares = squares + (std**2 + mean**2) * len(chunk)
    mean = sums / len(paths)
    std = (squares / len(paths) - mean**2).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def _pick(per_class: dict[str, list[str]], *, split: str, fraction: float, seed: int, tree: Path) -> dict:
    """The train or val share of each class of one tree."""
    if split == "val" and fraction == 0:
        raise value_error("val_fraction", fraction, f"> 0 to hold out images from the one tree {tree}")
    picked = {}
    for name, files in per_class.items():
        val = set(_held_out(files, name=name, fraction=fraction, seed=seed))
        picked[name] = [f for f in files if (f in val) == (split == "val")]
    if split == "val" and not any(picked.values()):
        raise value_error("val_fraction", fraction, f"large enough to hold out at least one image of {tree}")
    return picked


class ImageFiles(Dataset):
    """``(image, label)`` pairs from a :class:`FolderSplit`: RGB PIL image, then ``transform``.

    Args:
        split: the files and labels.
        transform: applied to each RGB PIL image (e.g. a ``torchvision.transforms.v2`` pipeline);
            ``None`` returns the PIL image.
    """

    def __init__(self, split: FolderSplit, transform: Callable[[Any], Any] | None = None) -> None:
        if not isinstance(split, FolderSplit):
            raise type_error("split", split, "a FolderSplit (from scan_folder)")
        self.split = split
        self.transform = transform

    @property
    def classes(self) -> tuple[str, ...]:
        return self.split.classes

    @property
    def targets(self) -> list[int]:
        """Every sample's label, as torchvision's ``ImageFolder.targets``."""
        return self.split.labels

    def __len__(self) -> int:
        return len(self.split.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.split.samples[index]
        image = load_rgb(path)
        return (self.transform(image) if self.transform is not None else image), label
