"""Real weights and real images for the checks a synthetic task cannot make (int8 agreement).

``../shared/data`` beside the checkout (or ``$RESZOO_SHARED_DATA``) holds the original CIFAR-10
ResNet-20/56 checkpoints and 2,000 real CIFAR-10 images (a JPEG copy, 200 per class; its README
gives the sources and licences). They are never copied into the repository; tests that need them
skip, saying why, where the folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(os.environ.get("RESZOO_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
IMAGES = SHARED_DATA / "cifar10-jpeg-train-2000.npz"
CHECKPOINTS = {"resnet20": "akamaster-resnet20-12fca82f.th", "resnet56": "akamaster-resnet56-4bfd9763.th"}

needs_real_data = pytest.mark.skipif(
    not IMAGES.exists(),
    reason=f"real CIFAR-10 images and weights not found in {SHARED_DATA} (set RESZOO_SHARED_DATA)",
)


def pretrained(name: str) -> torch.nn.Module:
    """The original CIFAR-10 weights of ``name`` ("resnet20" or "resnet56"), in eval mode."""
    import reszoo

    return reszoo.load_pretrained(f"{name}-cifar10", checkpoint=SHARED_DATA / CHECKPOINTS[name]).eval()


def calibration_and_held_out(
    model: torch.nn.Module, *, per_class: int = 50, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(calibration images, held-out images, held-out labels): ``per_class`` images of each class to
    calibrate on, the other images to measure on, pre-processed as the weights expect."""
    with np.load(IMAGES) as z:
        x, y = z["x"], z["y"]
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]
    calibrate = np.sort(np.concatenate(picks))
    held = np.setdiff1d(np.arange(len(y)), calibrate)
    transform = model.pretrained_weights.transforms()

    def images(idx: np.ndarray) -> torch.Tensor:
        return transform(torch.from_numpy(x[idx]).permute(0, 3, 1, 2).contiguous())

    return images(calibrate), images(held), torch.from_numpy(y[held])
