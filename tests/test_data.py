"""Tests for reszoo.data: CIFAR from local files, the paper split, ImageFolder, loaders."""

from __future__ import annotations

import pickle

import numpy as np
import PIL.Image
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar
from torch.utils.data import TensorDataset
from torchvision.datasets import FakeData

from reszoo import data as D
from reszoo import transforms as T
from reszoo.data import augment, datasets
from reszoo.errors import ArgumentTypeError, MissingInputError


def _write_fake_cifar10(root, n_per_batch: int = 4) -> np.ndarray:
    """CIFAR-10's on-disk layout with tiny made-up batches; returns the training images (N, 32, 32, 3)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = []
    for i, (name, _) in enumerate(tv_cifar.CIFAR10.train_list + tv_cifar.CIFAR10.test_list):
        flat = rng.integers(0, 256, (n_per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = [(i + j) % 10 for j in range(n_per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": flat, "labels": labels}, f)
        if name.startswith("data_batch"):
            train.append(flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{k}" for k in range(10)]}, f)
    return np.concatenate(train)


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    expected = _write_fake_cifar10(tmp_path)
    # The made-up files cannot match CIFAR's md5 sums; everything else is torchvision's real code.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    return tmp_path, expected


def test_missing_cifar_says_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        D.cifar_dataset(tmp_path, name="cifar100")
    msg = str(info.value)
    assert isinstance(info.value, MissingInputError)  # one line from the CLI, exit 2
    assert str(tmp_path / "cifar-100-python") in msg
    assert "download=True" in msg and "--download" in msg and "cifar-100-python.tar.gz" in msg


def test_incomplete_cifar_folder_is_a_file_not_found_error(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(MissingInputError, match="incomplete or corrupted"):
        D.cifar_dataset(tmp_path)


def test_unknown_cifar_name(tmp_path):
    with pytest.raises(ValueError, match="'cifar1000'.*cifar10, cifar100"):
        D.cifar_dataset(tmp_path, name="cifar1000")


def test_load_cifar_tensors_from_local_files(fake_cifar):
    root, expected = fake_cifar
    images, labels = D.load_cifar_tensors(root)
    assert images.dtype == torch.uint8 and images.shape == (20, 3, 32, 32) and images.is_contiguous()
    assert labels.dtype == torch.int64 and labels.shape == (20,)
    assert torch.equal(images, torch.from_numpy(expected).permute(0, 3, 1, 2))
    test_images, _ = D.load_cifar_tensors(root, train=False)
    assert test_images.shape == (4, 3, 32, 32)
    ds = D.cifar_dataset(root, transform=T.cifar_eval_transform())
    x, y = ds[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == int(labels[3])


def test_paper_split_is_45k_5k_disjoint_and_seeded():
    ds = list(range(50_000))
    train, val = D.paper_split(ds)
    assert (len(train), len(val)) == (45_000, 5_000)
    assert set(train.indices).isdisjoint(val.indices)
    assert sorted(train.indices + val.indices) == ds
    assert D.paper_split(ds, seed=0)[1].indices == val.indices
    assert D.paper_split(ds, seed=1)[1].indices != val.indices
    with pytest.raises(ValueError, match="val_size=50000"):
        D.paper_split(ds, val_size=50_000)


def test_imagenet_folder(tmp_path):
    for cls in ("n01", "n02"):
        (tmp_path / "val" / cls).mkdir(parents=True)
        for i in range(2):
            PIL.Image.new("RGB", (40, 30), (i * 50, 0, 0)).save(tmp_path / "val" / cls / f"{i}.png")
    ds = D.imagenet_dataset(tmp_path, split="val", transform=T.imagenet_eval_transform(resize_size=28, crop_size=24))
    assert ds.classes == ["n01", "n02"] and len(ds) == 4
    x, y = ds[3]
    assert x.shape == (3, 24, 24) and y == 1
    with pytest.raises(MissingInputError, match="train.*image-net.org"):
        D.imagenet_dataset(tmp_path, split="train")
    with pytest.raises(ValueError, match="'test'"):
        D.imagenet_dataset(tmp_path, split="test")


def test_make_loader_defaults_and_seeded_order():
    ds = FakeData(size=10, image_size=(3, 32, 32), num_classes=10, transform=T.cifar_train_transform())
    loader = D.make_loader(ds, batch_size=4, train=True, num_workers=0)
    batches = list(loader)
    assert len(batches) == 2 and batches[0][0].shape == (4, 3, 32, 32)  # last partial batch dropped
    assert loader.pin_memory == torch.cuda.is_available()
    ev = D.make_loader(ds, batch_size=4, train=False, num_workers=1)
    assert len(ev) == 3 and ev.persistent_workers and not ev.drop_last
    assert D.default_num_workers() >= 1

    ids = TensorDataset(torch.arange(20))

    def order(seed: int) -> list[int]:
        return torch.cat(
            [b[0] for b in D.make_loader(ids, batch_size=5, train=True, num_workers=0, seed=seed)]
        ).tolist()

    assert order(0) == order(0) and order(0) != order(1) and sorted(order(0)) == list(range(20))
    with pytest.raises(ValueError, match="batch_size=0"):
        D.make_loader(ids, batch_size=0, train=True)


def _constant_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i is filled with the value i + 1, label i: an augmented batch still shows which image it came from."""
    labels = torch.arange(n)
    return (labels + 1).to(torch.uint8)[:, None, None, None].expand(n, 3, 32, 32).contiguous(), labels


def test_device_loader_eval_matches_the_eval_transform():
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    loader = D.DeviceCifarLoader(
        images, torch.arange(10), batch_size=4, mean=T.CIFAR10_MEAN, std=T.CIFAR10_STD, train=False
    )
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    x = torch.cat([b[0] for b in batches])
    assert x.dtype == torch.float32 and torch.allclose(x, T.cifar_eval_transform()(images), atol=1e-5)
    assert torch.equal(torch.cat([b[1] for b in batches]), torch.arange(10))


def test_device_loader_train_keeps_pairs_and_is_seeded_per_epoch():
    images, labels = _constant_images(50)
    kw = {"batch_size": 8, "mean": (0.0,) * 3, "std": (1 / 255,) * 3, "train": True, "seed": 3}
    loader = D.DeviceCifarLoader(images, labels, **kw)
    assert len(loader) == 6
    first = list(loader)
    for x, y in first:
        # the center pixel is never padding, so it still holds the image's own value
        assert torch.equal(x[:, 0, 16, 16].round().long(), y + 1)
    # augmentation happened: no image holds a zero, so zeros are the crop's padding
    assert any(bool((x == 0).any()) for x, _ in first)
    second = list(loader)  # the next epoch
    loader.set_epoch(0)
    again = list(loader)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, second, strict=True))
    same_seed = list(D.DeviceCifarLoader(images, labels, **kw))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, same_seed, strict=True))
    cl = next(iter(D.DeviceCifarLoader(images, labels, **kw, channels_last=True)))[0]
    assert cl.is_contiguous(memory_format=torch.channels_last)


def test_device_loader_shards_by_rank():
    images, labels = _constant_images(11)
    kw = {"batch_size": 2, "mean": (0.0,) * 3, "std": (1 / 255,) * 3}
    ev = [D.DeviceCifarLoader(images, labels, train=False, rank=r, world_size=2, **kw) for r in (0, 1)]
    seen = [torch.cat([y for _, y in loader]).tolist() for loader in ev]
    assert len(seen[0]) == len(seen[1]) == 6  # 11 padded to 12
    assert set(seen[0]) | set(seen[1]) == set(range(11))
    tr = [D.DeviceCifarLoader(images, labels, train=True, rank=r, world_size=2, **kw) for r in (0, 1)]
    seen = [torch.cat([y for _, y in loader]).tolist() for loader in tr]
    assert len(tr[0]) == len(tr[1]) == 2 and set(seen[0]).isdisjoint(seen[1])
    with pytest.raises(ValueError, match="rank=2"):
        D.DeviceCifarLoader(images, labels, train=True, rank=2, world_size=2, **kw)


def test_device_loader_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        D.DeviceCifarLoader(
            torch.zeros(2, 3, 32, 32), torch.zeros(2), batch_size=1, mean=(0,) * 3, std=(1,) * 3, train=True
        )


def test_device_loader_order_follows_the_epoch_it_runs():
    images, labels = _constant_images(12)
    loader = D.DeviceCifarLoader(images, labels, batch_size=12, mean=(0.0,) * 3, std=(1.0,) * 3, train=True, seed=2)
    for epoch in (0, 5):
        loader.set_epoch(epoch)
        _, y = next(iter(loader))
        expected = torch.randperm(12, generator=torch.Generator().manual_seed(2 * 1_000_003 + epoch))
        assert torch.equal(y, expected), epoch


def test_device_loader_eval_pads_by_wrapping_even_with_more_ranks_than_images():
    images, labels = _constant_images(2)
    kw = {"batch_size": 1, "mean": (0.0,) * 3, "std": (1.0,) * 3, "train": False, "world_size": 5}
    seen = [torch.cat([y for _, y in D.DeviceCifarLoader(images, labels, rank=r, **kw)]).tolist() for r in range(5)]
    assert [len(s) for s in seen] == [1] * 5
    assert sum(seen, []) == [0, 1, 0, 1, 0]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"images": torch.zeros(0, 3, 32, 32, dtype=torch.uint8), "labels": torch.zeros(0, dtype=torch.int64)},
            "N >= 1",
        ),
        ({"images": torch.zeros(2, 32, 32, dtype=torch.uint8)}, r"\(2, 32, 32\)"),
        ({"labels": torch.zeros(3, dtype=torch.int64)}, r"\(3,\)"),
        ({"labels": torch.zeros(2)}, "float32"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"batch_size": 2.0}, "batch_size=2.0"),
        ({"std": (0.2, 0.0, 0.2)}, "std"),
        ({"mean": (0.5,), "std": (0.2,)}, "need 3 values"),
        ({"mean": (0.5, 0.5, 0.5), "std": (0.2, 0.2)}, "same"),
        ({"padding": -1}, "padding=-1"),
        ({"rank": -1}, "rank=-1"),
        ({"world_size": 0, "rank": 0}, "world_size=0"),
    ],
)
def test_device_loader_rejects_bad_values(change, match):
    kw = {
        "images": torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
        "labels": torch.zeros(2, dtype=torch.int64),
        "batch_size": 1,
        "mean": (0.5,) * 3,
        "std": (0.2,) * 3,
        "train": True,
    }
    kw.update(change)
    with pytest.raises(ValueError, match=match):
        D.DeviceCifarLoader(kw.pop("images"), kw.pop("labels"), **kw)


def test_loader_and_split_reject_bad_values(tmp_path):
    ids = TensorDataset(torch.arange(4))
    with pytest.raises(ValueError, match="num_workers=-1"):
        D.make_loader(ids, batch_size=2, train=True, num_workers=-1)
    with pytest.raises(ValueError, match="num_workers=1.5"):
        D.make_loader(ids, batch_size=2, train=True, num_workers=1.5)
    with pytest.raises(ValueError, match="batch_size=True"):
        D.make_loader(ids, batch_size=True, train=True)
    with pytest.raises(ValueError, match=r"1\.\.3 .*val_size=0"):
        D.paper_split(ids, val_size=0)
    with pytest.raises(ValueError, match="val_size=2.5"):
        D.paper_split(ids, val_size=2.5)
    with pytest.raises(ValueError, match="at least 2.*of 1"):
        D.paper_split([0], val_size=1)
    with pytest.raises(ValueError, match="'cifar11'.*cifar10, cifar100"):
        D.load_cifar_tensors(tmp_path, name="cifar11")
    with pytest.raises(ValueError, match="'Train'.*train, val"):
        D.imagenet_dataset(tmp_path, split="Train")


def test_flags_and_paths_are_strictly_typed(tmp_path):
    with pytest.raises(ArgumentTypeError, match="download='false'"):
        D.cifar_dataset(tmp_path, download="false")
    with pytest.raises(ArgumentTypeError, match="train=1"):
        D.make_loader(TensorDataset(torch.arange(4)), batch_size=2, train=1)
    with pytest.raises(ArgumentTypeError, match="images must be a uint8 tensor"):
        D.DeviceCifarLoader([[0]], torch.zeros(1), batch_size=1, mean=(0.5,), std=(0.2,), train=True)
    # one import path per object: the on-device augmentation is reszoo.data.augment's alone
    assert "batch_random_crop_flip" in augment.__all__
    assert "batch_random_crop_flip" not in T.__all__ and "batch_random_crop_flip" not in D.__all__


def test_default_num_workers_shares_the_cpus_between_the_ranks_of_a_node(monkeypatch):
    monkeypatch.setattr(datasets.os, "sched_getaffinity", lambda pid: set(range(12)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert D.default_num_workers() == 8  # at most 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun: 4 ranks on this node, each with its own workers
    assert D.default_num_workers() == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert D.default_num_workers() == 1  # never 0: the main process would decode
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "garbage")
    assert D.default_num_workers() == 8
