"""Tests for reszoo.data.imagefolder: both layouts, the held-out split, bad folders and files, find_images."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import PIL.Image
import pytest
import torch
from torchvision.transforms import v2

from reszoo.data.imagefiles import IMAGE_EXTENSIONS, find_images, load_rgb
from reszoo.data.imagefolder import FolderSplit, ImageFiles, scan_folder
from reszoo.errors import ArgumentTypeError, InvalidArgumentError, MissingInputError

sys.path.insert(0, str(Path(__file__).parent))
from _images import CLASSES, make_image_folder  # noqa: E402


@pytest.fixture(scope="module")
def split_root(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("split"), per_class=6, val_per_class=2, size=16)


@pytest.fixture(scope="module")
def single_root(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("single"), per_class=10, layout="single", size=16)


def _paths(split: FolderSplit) -> set[str]:
    return {p for p, _ in split.samples}


def test_split_layout_reads_train_and_val(split_root):
    train = scan_folder(split_root, split="train")
    val = scan_folder(split_root, split="val")
    assert train.classes == val.classes == CLASSES
    assert train.class_counts() == dict.fromkeys(CLASSES, 6)
    assert val.class_counts() == dict.fromkeys(CLASSES, 2)
    assert train.root == str(split_root / "train") and val.root == str(split_root / "val")
    for split in (train, val):
        for path, label in split.samples:
            assert Path(path).parent.name == CLASSES[label]
    both = scan_folder(split_root, split="all")
    assert _paths(both) == _paths(train) | _paths(val) and len(both.samples) == 24


def test_one_tree_held_out_split_is_deterministic_disjoint_and_stratified(single_root):
    train = scan_folder(single_root, split="train", val_fraction=0.2, seed=3)
    val = scan_folder(single_root, split="val", val_fraction=0.2, seed=3)
    assert not _paths(train) & _paths(val)
    assert _paths(train) | _paths(val) == _paths(scan_folder(single_root, split="all"))
    assert val.class_counts() == dict.fromkeys(CLASSES, 2)  # 20% of each class
    assert train.class_counts() == dict.fromkeys(CLASSES, 8)
    assert scan_folder(single_root, split="val", val_fraction=0.2, seed=3) == val
    other = scan_folder(single_root, split="val", val_fraction=0.2, seed=4)
    assert _paths(other) != _paths(val)  # the seed picks the share


def test_small_class_keeps_one_image_each_side(tmp_path):
    make_image_folder(tmp_path, classes=("circle",), per_class=2, layout="single", size=8)
    make_image_folder(tmp_path, classes=("square",), per_class=9, layout="single", size=8)
    val = scan_folder(tmp_path, split="val", val_fraction=0.01)
    train = scan_folder(tmp_path, split="train", val_fraction=0.01)
    assert val.class_counts() == {"circle": 1, "square": 1}
    assert train.class_counts() == {"circle": 1, "square": 8}


def test_train_folder_alone_is_one_tree(tmp_path):
    make_image_folder(tmp_path / "train", per_class=5, layout="single", size=8)
    val = scan_folder(tmp_path, split="val", val_fraction=0.2)
    assert val.root == str(tmp_path / "train") and len(val.samples) == 3


def test_val_folder_alone_evaluates_whole(tmp_path):
    make_image_folder(tmp_path / "val", per_class=2, layout="single", size=8)
    assert len(scan_folder(tmp_path, split="val").samples) == 6
    with pytest.raises(MissingInputError, match="no train/ folder"):
        scan_folder(tmp_path, split="train")


def test_classes_given_set_the_label_order(split_root):
    order = ("triangle", "circle", "square")
    split = scan_folder(split_root, split="val", classes=order)
    assert split.classes == order
    assert all(Path(p).parent.name == order[label] for p, label in split.samples)


def test_classes_mismatch_names_both_sides(split_root):
    with pytest.raises(InvalidArgumentError, match=r"missing \['star'\], unexpected \['triangle'\]"):
        scan_folder(split_root, classes=("circle", "square", "star"))
    with pytest.raises(InvalidArgumentError, match="at least two distinct"):
        scan_folder(split_root, classes=("circle",))
    with pytest.raises(ArgumentTypeError, match="classes"):
        scan_folder(split_root, classes="circle")


def test_train_and_val_with_different_classes_are_refused(tmp_path):
    make_image_folder(tmp_path, classes=("circle", "square"), per_class=2, val_per_class=1, size=8)
    make_image_folder(tmp_path / "val", classes=("triangle",), per_class=1, layout="single", size=8)
    with pytest.raises(InvalidArgumentError, match=r"only in train \[\], only in val \['triangle'\]"):
        scan_folder(tmp_path, split="train")


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(MissingInputError, match="not a folder"):
        scan_folder(tmp_path / "nope")
    with pytest.raises(MissingInputError, match=f"No class folders in {tmp_path}: found nothing"):
        scan_folder(tmp_path)
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(MissingInputError, match="found 1 file"):
        scan_folder(tmp_path)


def test_one_class_is_refused(tmp_path):
    make_image_folder(tmp_path, classes=("circle",), per_class=3, layout="single", size=8)
    with pytest.raises(InvalidArgumentError, match=r"Only one class folder in .*\('circle'\)"):
        scan_folder(tmp_path)


def test_class_without_a_valid_image_is_named(tmp_path):
    make_image_folder(tmp_path, classes=("circle", "square"), per_class=2, layout="single", size=8)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(InvalidArgumentError, match=f"{tmp_path / 'empty'} holds no image files"):
        scan_folder(tmp_path, split="all")
    (tmp_path / "empty" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InvalidArgumentError, match="holds 1 unreadable image file"):
        scan_folder(tmp_path, split="all")


def test_non_images_and_hidden_folders_are_ignored(tmp_path):
    make_image_folder(tmp_path, classes=("circle", "square"), per_class=2, layout="single", size=8)
    (tmp_path / "circle" / "README.txt").write_text("x")
    (tmp_path / "circle" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    nested = tmp_path / "square" / "more"
    nested.mkdir()
    PIL.Image.new("RGB", (8, 8)).save(nested / "deep.PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        split = scan_folder(tmp_path, split="all")
    assert split.classes == ("circle", "square") and split.skipped == ()
    assert split.class_counts() == {"circle": 2, "square": 3}  # recursive, extension in any case


def test_corrupt_images_are_skipped_with_one_counting_warning(tmp_path):
    make_image_folder(tmp_path, classes=("circle", "square"), per_class=3, layout="single", size=8)
    bad = [tmp_path / "circle" / f"bad{i}.png" for i in range(4)] + [tmp_path / "square" / "bad.jpg"]
    for path in bad:
        path.write_bytes(b"garbage, not an image")
    with pytest.warns(UserWarning) as record:
        split = scan_folder(tmp_path, split="all")
    assert len(record) == 1
    message = str(record[0].message)
    assert "Skipped 5 image file(s)" in message and "and 2 more" in message
    assert os.path.join("circle", "bad0.png") in message
    assert sorted(split.skipped) == sorted(map(str, bad))
    assert split.class_counts() == {"circle": 3, "square": 3}


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "LA", "I;16"])
def test_any_mode_is_read_as_rgb(tmp_path, mode):
    path = tmp_path / ("x.tiff" if mode == "CMYK" else "x.png")
    PIL.Image.new(mode, (5, 4)).save(path)
    img = load_rgb(path)
    assert img.mode == "RGB" and img.size == (5, 4)


def test_load_rgb_names_the_bad_file(tmp_path):
    with pytest.raises(MissingInputError, match="not found"):
        load_rgb(tmp_path / "none.png")
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    with pytest.raises(MissingInputError, match=f"Cannot read image {tmp_path / 'cut.png'}"):
        load_rgb(tmp_path / "cut.png")


def test_truncated_image_fails_at_read_time_naming_the_file(tmp_path):
    make_image_folder(tmp_path, classes=("circle", "square"), per_class=2, layout="single", size=32, formats=("png",))
    victim = tmp_path / "circle" / "circle_0000.png"
    victim.write_bytes(victim.read_bytes()[:60])  # header intact: passes the scan
    data = ImageFiles(scan_folder(tmp_path, split="all"))
    with pytest.raises(MissingInputError, match=str(victim)):
        data[0]


def test_image_files_dataset_applies_the_transform(split_root):
    transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    data = ImageFiles(scan_folder(split_root, split="val"), transform=transform)
    image, label = data[len(data) - 1]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and label == 2
    assert len(data) == 6 and data.classes == CLASSES and data.targets == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ArgumentTypeError, match="FolderSplit"):
        ImageFiles(str(split_root))


def test_modes_of_the_image_set_all_load(tmp_path):
    root = make_image_folder(tmp_path, per_class=4, val_per_class=0, size=8, modes=("RGB", "L", "RGBA", "P"))
    data = ImageFiles(scan_folder(root, split="train"))
    assert {data[i][0].mode for i in range(len(data))} == {"RGB"}


def test_find_images_files_folders_globs(split_root, tmp_path):
    circles = split_root / "train" / "circle"
    one = circles / "circle_0000.png"
    odd = tmp_path / "photo.data"  # named explicitly: kept whatever its extension
    PIL.Image.new("RGB", (4, 4)).save(odd, format="PNG")
    found = find_images([str(one), circles, str(split_root / "val" / "*" / "*.jpg"), odd, str(one)])
    assert found == sorted(found) and len(found) == len(set(found))
    assert str(one) in found and str(odd) in found
    assert len([f for f in found if f.startswith(str(circles))]) == 6
    assert len([f for f in found if "/val/" in f]) == 3  # one jpg per class
    assert find_images(str(split_root / "**")) == find_images([split_root])
    assert all(f.lower().endswith(IMAGE_EXTENSIONS) for f in find_images([split_root]))


def test_find_images_refuses_what_names_nothing(tmp_path):
    with pytest.raises(MissingInputError, match="No such file or folder"):
        find_images([str(tmp_path / "none.jpg")])
    with pytest.raises(MissingInputError, match="No image files match"):
        find_images([str(tmp_path / "*.jpg")])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(MissingInputError, match="No image files in folder"):
        find_images([tmp_path])
    with pytest.raises(ArgumentTypeError):
        find_images([])


def test_bad_arguments(split_root):
    with pytest.raises(InvalidArgumentError, match="split"):
        scan_folder(split_root, split="test")
    with pytest.raises(InvalidArgumentError, match="val_fraction"):
        scan_folder(split_root, val_fraction=1.5)
    with pytest.raises(InvalidArgumentError, match="val_fraction must be > 0"):
        scan_folder(split_root / "train", split="val", val_fraction=0)
