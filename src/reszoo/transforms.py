"""Reference pre-processing for CIFAR and ImageNet, on ``torchvision.transforms.v2``.

Every pipeline is built from plain data (mean, std, sizes, interpolation: the fields a weight
entry carries), so ``get_weights(name).transforms()`` and the training presets share one code
path. The same pipeline accepts PIL images, uint8 or float tensors and ``(N, C, H, W)`` batches.

Two things are not plain ``v2`` transforms: ``batch_random_crop_flip`` augments a whole batch on
its own device in one gather (no Python loop over images), and ``multi_scale_predict`` is the
paper's fully-convolutional multi-scale test.

Example:
    >>> import torch
    >>> from reszoo.transforms import cifar_train_transform
    >>> torch.manual_seed(0) and None
    >>> x = cifar_train_transform()(torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8))
    >>> x.shape, x.dtype
    (torch.Size([3, 32, 32]), torch.float32)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import PIL.Image
import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

# Per-channel statistics of the training images (RGB, pixels scaled to [0, 1]; std over all
# pixels of all images). CIFAR figures: the 50,000 training images of each set, as widely
# reported (torchvision reference scripts and most CIFAR ResNet repositories); reproduce them with
# ``channel_stats(load_cifar_tensors(root)[0])``. The often-copied CIFAR-10 std
# (0.2023, 0.1994, 0.2010) is the mean of per-image stds, not the dataset std, so it is not used.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
# ImageNet: torchvision's published constants (torchvision.models weights, resnet.py transforms).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# AlexNet "standard color augmentation" (Krizhevsky et al. 2012) uses the PCA of ImageNet RGB
# pixels; these are the figures of fb.resnet.torch (datasets/imagenet.lua), used by most
# reimplementations. Columns of the eigenvector matrix are the principal components.
IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

NORMALIZATION = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
IMAGENET_RECIPES = ("paper", "rrc")
# The paper's multi-scale test (section 3.4): shorter side in {224, 256, 384, 480, 640}.
PAPER_TEST_SCALES = (224, 256, 384, 480, 640)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGENET_PCA_EIGVAL",
    "IMAGENET_PCA_EIGVEC",
    "NORMALIZATION",
    "PAPER_TEST_SCALES",
    "PCALighting",
    "batch_random_crop_flip",
    "channel_stats",
    "cifar_eval_transform",
    "cifar_train_transform",
    "crop_flip",
    "eval_transform",
    "imagenet_eval_transform",
    "imagenet_train_transform",
    "multi_scale_predict",
    "normalization",
    "sample_crop_flip",
    "ten_crop_transform",
]


def normalization(dataset: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The ``(mean, std)`` pair for ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.

    Args:
        dataset: the dataset name.

    Returns:
        Two RGB tuples for inputs scaled to [0, 1].

    Example:
        >>> normalization("imagenet")[0]
        (0.485, 0.456, 0.406)
    """
    if dataset not in NORMALIZATION:
        from reszoo.registry import unknown_name_error

        raise unknown_name_error("dataset", str(dataset), list(NORMALIZATION))
    return NORMALIZATION[dataset]


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if not mean or len(mean) != len(std):
        raise ValueError(f"mean and std must have the same, non-zero length; received mean={mean}, std={std}.")
    if not all(math.isfinite(m) for m in mean):
        raise ValueError(f"mean must be finite; received mean={mean}.")
    if not all(0 < s < math.inf for s in std):
        raise ValueError(f"std must be positive and finite; received std={std}.")
    return mean, std


def _check_size(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; received {name}={value!r}.")
    return value


def _check_padding(padding: Any) -> int:
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an int >= 0; received padding={padding!r}.")
    return padding


def _check_batch(images: Any) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a batch (N, C, H, W); received {shape}.")


def _check_interpolation(interpolation: str) -> str:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"Unknown interpolation {interpolation!r}; valid choices: {', '.join(INTERPOLATIONS)}.")
    return interpolation


def _resize(resize_size: Any, crop_size: int, interpolation: str) -> v2.Resize:
    """The shorter-side resize before a ``crop_size`` crop (center or ten-crop)."""
    _check_size("resize_size", resize_size)
    if crop_size > resize_size:
        raise ValueError(
            f"crop_size must be <= resize_size; received crop_size={crop_size}, resize_size={resize_size}."
        )
    return v2.Resize(resize_size, interpolation=_check_interpolation(interpolation), antialias=True)


def _to_float_normalized(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    mean, std = _check_stats(mean, std)
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


class PCALighting(v2.Transform):
    """AlexNet PCA lighting: add ``eigvec @ (alpha * eigval)``, ``alpha ~ N(0, std)``, to every pixel.

    One shift per image (for a batch ``(N, 3, H, W)``, one per image of the batch), the same for
    every pixel of that image. Works on float images in [0, 1], so put it after
    ``v2.ToDtype(torch.float32, scale=True)`` and before ``v2.Normalize``. The result is not
    clamped, as in fb.resnet.torch, since normalisation follows and clamping would bias the shift.

    Args:
        std: standard deviation of ``alpha`` (0.1 in AlexNet and the ResNet paper).
        eigval: the three eigenvalues of the RGB pixel covariance.
        eigvec: a 3x3 matrix whose columns are the matching eigenvectors.

    Example:
        >>> import torch
        >>> out = PCALighting()(torch.full((2, 3, 4, 4), 0.5))
        >>> out.shape, bool((out[0] == out[0, :, :1, :1]).all())
        (torch.Size([2, 3, 4, 4]), True)
    """

    def __init__(
        self,
        std: float = 0.1,
        eigval: Sequence[float] = IMAGENET_PCA_EIGVAL,
        eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC,
    ) -> None:
        super().__init__()
        if not std >= 0:
            raise ValueError(f"PCALighting std must be >= 0; received std={std!r}.")
        eigval_t = torch.as_tensor(eigval, dtype=torch.float32)
        eigvec_t = torch.as_tensor(eigvec, dtype=torch.float32)
        if eigval_t.shape != (3,) or eigvec_t.shape != (3, 3):
            raise ValueError(
                f"eigval must have shape (3,) and eigvec (3, 3); received {tuple(eigval_t.shape)} "
                f"and {tuple(eigvec_t.shape)}."
            )
        self.std = float(std)
        self.eigval = eigval_t
        self.eigvec = eigvec_t

    @staticmethod
    def _is_image(inpt: Any) -> bool:
        # Boxes, masks and other tv_tensors ride along a sample unchanged.
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Video)):
            return True
        return isinstance(inpt, torch.Tensor) and not isinstance(inpt, tv_tensors.TVTensor)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        batch_shape: tuple[int, ...] = ()
        for inpt in flat_inputs:
            if self._is_image(inpt):
                batch_shape = tuple(inpt.shape[:-3])
                break
        alpha = torch.randn((*batch_shape, 3)) * self.std
        # rgb[..., i] = sum_j eigvec[i, j] * alpha[..., j] * eigval[j]
        return {"shift": (alpha * self.eigval) @ self.eigvec.T}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not self._is_image(inpt):
            if isinstance(inpt, PIL.Image.Image):
                raise ValueError(
                    "PCALighting needs a float tensor image in [0, 1]; received a PIL image. "
                    "Put v2.ToImage() and v2.ToDtype(torch.float32, scale=True) before it."
                )
            return inpt
        if not inpt.is_floating_point():
            raise ValueError(
                f"PCALighting needs a float image in [0, 1]; received dtype {inpt.dtype}. "
                "Put v2.ToDtype(torch.float32, scale=True) before it."
            )
        if inpt.ndim < 3 or inpt.shape[-3] != 3:
            raise ValueError(f"PCALighting needs RGB images (..., 3, H, W); received shape {tuple(inpt.shape)}.")
        shift = params["shift"].to(device=inpt.device, dtype=inpt.dtype)
        out = inpt.as_subclass(torch.Tensor) + shift[..., :, None, None]
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


def eval_transform(
    *,
    mean: Sequence[float],
    std: Sequence[float],
    crop_size: int,
    resize_size: int | None = None,
    interpolation: str = "bilinear",
) -> v2.Compose:
    """The evaluation pipeline described by a weight entry's fields.

    Args:
        mean: per-channel mean (inputs scaled to [0, 1]).
        std: per-channel standard deviation.
        crop_size: the square input size. With ``resize_size=None`` it is only documentation
            (CIFAR images are used as they are), otherwise the center-crop size.
        resize_size: shorter side to resize to before the center crop; ``None`` for no resize and
            no crop.
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.

    Returns:
        A ``v2.Compose`` that maps a PIL image, uint8/float tensor or batch to a normalised float32
        tensor.

    Example:
        >>> import torch
        >>> t = eval_transform(mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_size=224, resize_size=256)
        >>> t(torch.zeros(3, 300, 400, dtype=torch.uint8)).shape
        torch.Size([3, 224, 224])
    """
    _check_size("crop_size", crop_size)
    _check_interpolation(interpolation)
    steps: list[v2.Transform] = [v2.ToImage()]
    if resize_size is not None:
        steps += [_resize(resize_size, crop_size, interpolation), v2.CenterCrop(crop_size)]
    return v2.Compose(steps + _to_float_normalized(mean, std))


def cifar_eval_transform(*, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> v2.Compose:
    """CIFAR evaluation: the 32x32 image as it is, to float, normalised (the paper tests on the original image).

    Args:
        mean: per-channel mean.
        std: per-channel standard deviation.

    Returns:
        A ``v2.Compose``.
    """
    return eval_transform(mean=mean, std=std, crop_size=32, resize_size=None)


def cifar_train_transform(
    *,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
    padding: int = 4,
    crop_size: int = 32,
) -> v2.Compose:
    """CIFAR training (paper, section 4.2): zero-pad 4 pixels, random 32x32 crop, random flip, normalise.

    On a batch tensor a ``v2`` transform draws one crop and flip for the whole batch; use
    ``batch_random_crop_flip`` for per-image draws on a batch.

    Args:
        mean: per-channel mean.
        std: per-channel standard deviation.
        padding: zero padding on each side before the crop.
        crop_size: the crop size.

    Returns:
        A ``v2.Compose``.
    """
    _check_size("crop_size", crop_size)
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomCrop(crop_size, padding=_check_padding(padding), fill=0, padding_mode="constant"),
            v2.RandomHorizontalFlip(0.5),
            *_to_float_normalized(mean, std),
        ]
    )


def imagenet_train_transform(
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    recipe: str = "paper",
    crop_size: int = 224,
    scale_range: tuple[int, int] = (256, 480),
    pca_std: float = 0.1,
    interpolation: str = "bilinear",
) -> v2.Compose:
    """ImageNet training pre-processing.

    ``recipe="paper"`` (section 3.4): shorter side resized to a size drawn uniformly from the
    integers in ``scale_range``, random ``crop_size`` crop, horizontal flip, PCA lighting with
    ``pca_std``, normalise. ``recipe="rrc"``: torchvision's RandomResizedCrop (scale 0.08-1,
    aspect 3/4-4/3), flip, normalise; like torchvision's reference recipe it has no lighting, so
    ``pca_std`` and ``scale_range`` apply to the paper recipe only.

    Args:
        mean: per-channel mean.
        std: per-channel standard deviation.
        recipe: ``"paper"`` or ``"rrc"``.
        crop_size: the training crop size.
        scale_range: inclusive ``(low, high)`` range of the resized shorter side (paper recipe).
        pca_std: standard deviation of the PCA lighting coefficients; 0 turns lighting off.
        interpolation: resize interpolation.

    Returns:
        A ``v2.Compose``.
    """
    _check_size("crop_size", crop_size)
    _check_interpolation(interpolation)
    if not 0 <= pca_std < math.inf:
        raise ValueError(f"pca_std must be a finite number >= 0 (0 turns lighting off); received pca_std={pca_std!r}.")
    lighting: list[v2.Transform] = []
    if recipe == "paper":
        if not (
            isinstance(scale_range, Sequence)
            and len(scale_range) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in scale_range)
            and crop_size <= scale_range[0] <= scale_range[1]
        ):
            raise ValueError(
                f"scale_range must be two ints with crop_size <= low <= high; received scale_range={scale_range!r} "
                f"with crop_size={crop_size}."
            )
        low, high = scale_range
        geometry: list[v2.Transform] = [
            # RandomShortestSize draws one of the listed sizes uniformly: every integer in the range.
            v2.RandomShortestSize(list(range(low, high + 1)), interpolation=interpolation, antialias=True),
            v2.RandomCrop(crop_size),
        ]
        if pca_std > 0:
            lighting.append(PCALighting(pca_std))
    elif recipe == "rrc":
        geometry = [v2.RandomResizedCrop(crop_size, interpolation=interpolation, antialias=True)]
    else:
        raise ValueError(f"Unknown ImageNet recipe {recipe!r}; valid choices: {', '.join(IMAGENET_RECIPES)}.")
    to_float, normalize = _to_float_normalized(mean, std)
    return v2.Compose([v2.ToImage(), *geometry, v2.RandomHorizontalFlip(0.5), to_float, *lighting, normalize])


def imagenet_eval_transform(
    *,
    resize_size: int = 256,
    crop_size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "bilinear",
) -> v2.Compose:
    """ImageNet single-crop evaluation: resize the shorter side, center crop, normalise.

    Args:
        resize_size: shorter side after resizing (256 for torchvision V1 weights, 232 for V2).
        crop_size: center-crop size.
        mean: per-channel mean.
        std: per-channel standard deviation.
        interpolation: resize interpolation.

    Returns:
        A ``v2.Compose``.
    """
    return eval_transform(mean=mean, std=std, crop_size=crop_size, resize_size=resize_size, interpolation=interpolation)


def _stack_crops(crops: Sequence[torch.Tensor]) -> torch.Tensor:
    # A plain function, not v2.Lambda (which would be called on each crop separately), and at
    # module level so the pipeline pickles into DataLoader workers.
    return torch.stack([c.as_subclass(torch.Tensor) for c in crops], dim=-4)


def ten_crop_transform(
    *,
    resize_size: int = 256,
    crop_size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "bilinear",
) -> v2.Compose:
    """The standard 10-crop test: four corners and center, and their horizontal flips.

    The arguments are those of ``imagenet_eval_transform``, with ``crop_size`` the size of each crop.

    Returns:
        A ``v2.Compose`` mapping one image ``(C, H, W)`` to ``(10, C, crop, crop)`` (a batch
        ``(N, C, H, W)`` to ``(N, 10, C, crop, crop)``); average the model's outputs over dim -2
        of the logits, e.g. ``model(x.flatten(0, 1)).view(n, 10, -1).mean(1)``.

    Example:
        >>> import torch
        >>> ten_crop_transform(resize_size=40, crop_size=32)(torch.zeros(3, 48, 64, dtype=torch.uint8)).shape
        torch.Size([10, 3, 32, 32])
    """
    _check_size("crop_size", crop_size)
    return v2.Compose(
        [
            v2.ToImage(),
            _resize(resize_size, crop_size, interpolation),
            v2.TenCrop(crop_size),
            *_to_float_normalized(mean, std),
            _stack_crops,
        ]
    )


def _resize_shorter(images: torch.Tensor, size: int) -> torch.Tensor:
    return TF.resize(images, [size], interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


def multi_scale_predict(
    model: nn.Module,
    images: torch.Tensor,
    *,
    scales: Sequence[int] = PAPER_TEST_SCALES,
    flip: bool = False,
) -> torch.Tensor:
    """The paper's fully-convolutional multi-scale test: logits averaged over shorter-side scales.

    Each scale resizes the whole image (shorter side to the scale, aspect kept) and runs the
    network on it as is; global average pooling makes the network fully convolutional. The paper
    (following VGG) averages the scores; here the logits are averaged. Put the model in eval mode
    first; the call runs under ``torch.inference_mode``.

    Args:
        model: a network that accepts any input size (every reszoo ResNet does).
        images: normalised float batch ``(N, C, H, W)`` on the model's device.
        scales: shorter-side sizes, the paper's {224, 256, 384, 480, 640} by default.
        flip: also average over the horizontally flipped images (2 passes per scale).

    Returns:
        ``(N, num_classes)`` logits averaged over ``len(scales)`` (times 2 with ``flip``) passes.

    Example:
        >>> import torch, reszoo
        >>> net = reszoo.ResNet(reszoo.ResNetConfig(depths=(1, 1, 1), widths=(4, 8, 16), stem_width=4)).eval()
        >>> multi_scale_predict(net, torch.randn(2, 3, 32, 32), scales=(24, 32, 40)).shape
        torch.Size([2, 10])
    """
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a normalised float batch (N, C, H, W); received shape {tuple(images.shape)}, "
            f"dtype {images.dtype}."
        )
    scales = list(scales)
    if not scales:
        raise ValueError("scales must list at least one size; received an empty sequence.")
    for s in scales:
        _check_size("scale", s)
    total: torch.Tensor | int = 0
    with torch.inference_mode():
        for s in scales:
            x = _resize_shorter(images, s)
            for view in (x, x.flip(-1)) if flip else (x,):
                total = total + model(view).float()
    return total / (len(scales) * (2 if flip else 1))


def sample_crop_flip(
    n: int,
    *,
    padding: int = 4,
    flip_p: float = 0.5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw per-image crop offsets and flips as the per-image transform does.

    Args:
        n: number of images.
        padding: zero padding on each side; offsets are uniform over ``0..2*padding``.
        flip_p: probability of a horizontal flip.
        generator: a ``torch.Generator`` on ``device`` for reproducible draws (global RNG if None).
        device: where to draw (the generator's device if one is given).

    Returns:
        ``(top, left, flip)``: int64 offsets into the padded image and a bool flip mask, each ``(n,)``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0; received n={n!r}.")
    _check_padding(padding)
    if not 0.0 <= flip_p <= 1.0:
        raise ValueError(f"flip_p must be in [0, 1]; received flip_p={flip_p!r}.")
    if generator is None:
        device = torch.device("cpu" if device is None else device)
    elif device is None:
        device = generator.device
    else:
        device = torch.device(device)
        if generator.device.type != device.type:
            raise ValueError(
                f"generator is on {generator.device} but the draws are for {device}; make the generator "
                f"with torch.Generator(device={str(device)!r})."
            )
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip = torch.rand((n,), generator=generator, device=device) < flip_p
    return top, left, flip


def crop_flip(
    images: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    flip: torch.Tensor,
    *,
    padding: int = 4,
) -> torch.Tensor:
    """Zero-pad a batch, crop each image at its own offset and flip where asked: one gather, no loop.

    Args:
        images: ``(N, C, H, W)`` batch, any dtype, on any device.
        top: ``(N,)`` row offsets into the padded image, in ``0..2*padding``.
        left: ``(N,)`` column offsets into the padded image, in ``0..2*padding``.
        flip: ``(N,)`` bool, flip image ``i`` horizontally after its crop.
        padding: zero padding on each side.

    Returns:
        A batch with the shape, dtype and device of ``images``.

    Raises:
        ValueError: wrong shapes or dtypes, or an offset outside ``0..2*padding`` (checking it
            synchronises with the device; ``batch_random_crop_flip`` draws in range and skips it).
    """
    _check_batch(images)
    _check_padding(padding)
    n = images.shape[0]
    for name, t in (("top", top), ("left", left), ("flip", flip)):
        if not isinstance(t, torch.Tensor) or t.shape != (n,):
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a ({n},) tensor, one entry per image; received {shape}.")
    for name, t in (("top", top), ("left", left)):
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer offsets; received dtype {t.dtype}.")
    if flip.dtype != torch.bool:
        raise ValueError(f"flip must be a bool tensor; received dtype {flip.dtype}.")
    hi = 2 * padding
    # Out-of-range offsets would read into the neighbouring row instead of failing: refuse them.
    if n and bool(((top < 0) | (top > hi) | (left < 0) | (left > hi)).any()):
        raise ValueError(
            f"top and left must lie in 0..{hi} (2*padding); received top in {int(top.min())}..{int(top.max())}, "
            f"left in {int(left.min())}..{int(left.max())}."
        )
    return _crop_flip(images, top, left, flip, padding)


def _crop_flip(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int
) -> torch.Tensor:
    # crop_flip without the checks (the offset range check costs a device sync), for draws that
    # sample_crop_flip made in range.
    n, _, h, w = images.shape
    if padding:
        images = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    dev = images.device
    rows = top.to(dev)[:, None] + torch.arange(h, device=dev)  # (N, H)
    cols = torch.arange(w, device=dev)
    # A flip reads the crop's columns right to left, so crop and flip are one index computation.
    cols = torch.where(flip.to(dev)[:, None], w - 1 - cols, cols) + left.to(dev)[:, None]  # (N, W)
    # Gather rows, then columns, over the flattened (H, W) plane: two cheap index_selects' worth
    # of work instead of a 4-D advanced index, which materialises a full (N, C, H, W) index set.
    hp, wp = images.shape[-2:]
    flat = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w)
    out = torch.gather(images.reshape(n, images.shape[1], hp * wp), 2, flat.expand(-1, images.shape[1], -1))
    return out.reshape(n, images.shape[1], h, w)


def batch_random_crop_flip(
    images: torch.Tensor,
    *,
    padding: int = 4,
    flip_p: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The CIFAR crop-and-flip augmentation for a whole batch on its own device, vectorised.

    Every image gets its own offset (each of the ``(2*padding+1)**2`` positions equally likely)
    and its own flip (probability ``flip_p``), the distribution of ``cifar_train_transform``.

    Args:
        images: ``(N, C, H, W)`` uint8 or float batch.
        padding: zero padding on each side.
        flip_p: probability of a horizontal flip.
        generator: a ``torch.Generator`` on the images' device for reproducible draws.

    Returns:
        The augmented batch, same shape, dtype and device.

    Example:
        >>> import torch
        >>> x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
        >>> g = torch.Generator().manual_seed(0)
        >>> batch_random_crop_flip(x, generator=g).shape
        torch.Size([8, 3, 32, 32])
    """
    _check_batch(images)
    top, left, flip = sample_crop_flip(
        images.shape[0], padding=padding, flip_p=flip_p, generator=generator, device=images.device
    )
    return _crop_flip(images, top, left, flip, padding)


def channel_stats(images: torch.Tensor, *, chunk: int = 5000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of a uint8 ``(N, C, H, W)`` dataset, pixels scaled to [0, 1].

    Args:
        images: uint8 images.
        chunk: images per step, to bound the float64 working memory.

    Returns:
        ``(mean, std)`` tuples, std over all pixels of all images.

    Example:
        >>> import torch
        >>> channel_stats(torch.full((2, 3, 2, 2), 255, dtype=torch.uint8))
        ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"images must be uint8 (N, C, H, W); received {getattr(images, 'dtype', type(images).__name__)}, "
            f"shape {tuple(getattr(images, 'shape', ()))}."
        )
    _check_size("chunk", chunk)
    c = images.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for i in range(0, images.shape[0], chunk):
        x = images[i : i + chunk].to(torch.float64) / 255.0
        s += x.sum(dim=(0, 2, 3))
        s2 += (x * x).sum(dim=(0, 2, 3))
    count = images.numel() // c
    mean = s / count
    std = (s2 / count - mean * mean).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())
