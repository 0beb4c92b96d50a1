"""CIFAR augmentation throughput: whole uint8 dataset on the device vs. the per-image DataLoader path.

    python benchmarks/augment_throughput.py [--images 50000] [--batch-size 128] [--repeats 3] [--device cpu]

device:    ``DeviceCifarLoader`` over a uint8 (N, 3, 32, 32) tensor: index a batch, one vectorised
           ``batch_random_crop_flip`` gather, normalise (what a training loop gets each step).
per-image: what ``torchvision.datasets.CIFAR10`` does per image (HWC uint8 array -> PIL image)
           followed by ``cifar_train_transform()``, batched by ``make_loader`` with its default
           workers. Synthetic data stands in for CIFAR (same shape and dtype), since the
           measurement does not depend on the pixel values.

Each path runs one untimed warm-up epoch, then ``--repeats`` timed epochs, the two paths
interleaved; the median epoch time gives images/s. The ratio is device / per-image. The device
path runs with ``--threads`` intra-op threads (default 1, as each DataLoader worker does).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import Dataset

from reszoo.data.constants import CIFAR10_MEAN, CIFAR10_STD
from reszoo.data.datasets import DeviceCifarLoader, default_num_workers, make_loader
from reszoo.data.transforms import cifar_train_transform


class SyntheticCifar(Dataset):
    """HWC uint8 images served as PIL images, the way ``torchvision.datasets.CIFAR10`` serves them."""

    def __init__(self, data: np.ndarray, labels: np.ndarray, transform) -> None:
        self.data, self.labels, self.transform = data, labels, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.data[i])), int(self.labels[i])


def epoch_seconds(loader, sync) -> tuple[float, int]:
    start = time.perf_counter()
    n = 0
    for x, _ in loader:
        n += x.shape[0]
    sync()
    return time.perf_counter() - start, n


def measure(images: int, batch_size: int, repeats: int, device: str, workers: int | None) -> dict:
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (images,), generator=g)
    dev = torch.device(device)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    on_device = DeviceCifarLoader(
        data, labels, batch_size=batch_size, mean=CIFAR10_MEAN, std=CIFAR10_STD, train=True, device=dev
    )
    per_image = make_loader(
        SyntheticCifar(data.permute(0, 2, 3, 1).numpy().copy(), labels.numpy(), cifar_train_transform()),
        batch_size=batch_size,
        train=True,
        num_workers=workers,
    )
    loaders = {"device": on_device, "per_image": per_image}
    times: dict[str, list[float]] = {name: [] for name in loaders}
    counts: dict[str, int] = {}
    for loader in loaders.values():
        epoch_seconds(loader, sync)  # warm-up: worker start-up, allocator
    # Interleave the two paths so both see the same background load on a shared machine.
    for _ in range(repeats):
        for name, loader in loaders.items():
            t, counts[name] = epoch_seconds(loader, sync)
            times[name].append(t)
    result = {}
    for name in loaders:
        med = statistics.median(times[name])
        result[name] = {
            "epoch_s": times[name],
            "median_epoch_s": med,
            "images_per_epoch": counts[name],
            "images_per_s": counts[name] / med,
        }
    result["ratio_device_over_per_image"] = result["device"]["images_per_s"] / result["per_image"]["images_per_s"]
    result["setup"] = {
        "images": images,
        "batch_size": batch_size,
        "repeats": repeats,
        "device": str(dev),
        "per_image_workers": per_image.num_workers,
        "device_path_torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "date": datetime.date.today().isoformat(),
    }
    return result


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int; received {text}")
    return value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=positive_int, default=50_000)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--workers", type=int, default=None, help=f"per-image loader workers (default {default_num_workers()})"
    )
    p.add_argument("--json", default=None, help="also write the result to this file")
    p.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="intra-op threads of the device path (default 1: like each DataLoader worker, which torch "
        "runs single-threaded; more threads only pay off for large batches on an idle machine)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    r = measure(args.images, args.batch_size, args.repeats, args.device, args.workers)
    for name in ("device", "per_image"):
        print(
            f"{name:>9}: {r[name]['images_per_s']:>10,.0f} images/s  (median epoch {r[name]['median_epoch_s']:.2f} s)"
        )
    print(f"    ratio: {r['ratio_device_over_per_image']:.1f}x (device / per-image)  setup: {r['setup']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)


if __name__ == "__main__":
    main()
