"""Reference pre-processing for CIFAR and ImageNet, on ``torchvision.transforms.v2``.

Every pipeline is built from plain data (mean, std, sizes, interpolation: the fields a weight
entry carries), so ``get_weights(name).transforms()`` and the training presets share one code
path. The same pipeline accepts PIL images, uint8 or float tensors and ``(N, C, H, W)`` batches.

Two things are not plain ``v2`` transforms: ``batch_random_crop_flip`` (from
:mod:`reszoo.data.augment`, re-exported here) augments a whole batch on its own device in one gather,
and ``multi_scale_predict`` is the paper's fully-convolutional multi-scale test. The
normalisation constants live in :mod:`reszoo.data.constants` and are re-exported here.

Example:
    >>> import torch
    >>> from reszoo.data.transforms import cifar_train_transform
    >>> torch.manual_seed(0) and None
    >>> x = cifar_train_transform()(torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8))
    >>> x.shape, x.dtype
    (torch.Size([3, 32, 32]), torch.float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import PIL.Image
import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from reszoo.data.augment import check_batch
from reszoo.data.constants import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_PCA_EIGVAL,
    IMAGENET_PCA_EIGVEC,
    IMAGENET_STD,
    NORMALIZATION,
)
from reszoo.errors import ArgumentTypeError, InvalidArgumentError
from reszoo.utils.checks import check_choice, check_int, check_ints, check_mean_std, check_number, value_error

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
IMAGENET_RECIPES = ("paper", "rrc")
# The paper's multi-scale test (section 3.4): shorter side in {224, 256, 384, 480, 640}.
PAPER_TEST_SCALES = (224, 256, 384, 480, 640)

__all__ = [
    "PAPER_TEST_SCALES",
    "PCALighting",
    "channel_stats",
    "cifar_eval_transform",
    "cifar_train_transform",
    "eval_transform",
    "imagenet_eval_transform",
    "imagenet_train_transform",
    "model_eval_transform",
    "model_resize",
    "model_resize_size",
    "model_train_transform",
    "multi_scale_predict",
    "normalization",
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
    return NORMALIZATION[check_choice("dataset", dataset, NORMALIZATION)]


def interpolation_mode(interpolation: str) -> v2.InterpolationMode:
    """``"bilinear"``, ``"bicubic"`` or ``"nearest"`` as torchvision's enum (torchvision before
    0.2x refuses the plain string: "Argument interpolation should be an InterpolationMode")."""
    return v2.InterpolationMode(check_choice("interpolation", interpolation, INTERPOLATIONS))


def _resize(resize_size: Any, crop_size: int, interpolation: str) -> v2.Resize:
    """The shorter-side resize before a ``crop_size`` crop (center or ten-crop)."""
    check_int("resize_size", resize_size, minimum=1)
    if crop_size > resize_size:
        raise InvalidArgumentError(
            f"crop_size must be <= resize_size; received crop_size={crop_size}, resize_size={resize_size}."
        )
    return v2.Resize(resize_size, interpolation=interpolation_mode(interpolation), antialias=True)


def _to_float_normalized(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    mean, std = check_mean_std(mean, std)
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
        check_number("std", std, minimum=0)
        eigval_t = torch.as_tensor(eigval, dtype=torch.float32)
        eigvec_t = torch.as_tensor(eigvec, dtype=torch.float32)
        if eigval_t.shape != (3,) or eigvec_t.shape != (3, 3):
            raise InvalidArgumentError(
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
                raise ArgumentTypeError(
                    "PCALighting needs a float tensor image in [0, 1]; received a PIL image. "
                    "Put v2.ToImage() and v2.ToDtype(torch.float32, scale=True) before it."
                )
            return inpt
        if not inpt.is_floating_point():
            raise ArgumentTypeError(
                f"PCALighting needs a float image in [0, 1]; received dtype {inpt.dtype}. "
                "Put v2.ToDtype(torch.float32, scale=True) before it."
            )
        if inpt.ndim < 3 or inpt.shape[-3] != 3:
            raise InvalidArgumentError(
                f"PCALighting needs RGB images (..., 3, H, W); received shape {tuple(inpt.shape)}."
            )
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
    check_int("crop_size", crop_size, minimum=1)
    check_choice("interpolation", interpolation, INTERPOLATIONS)
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
    check_int("crop_size", crop_size, minimum=1)
    check_int("padding", padding, minimum=0)
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomCrop(crop_size, padding=padding, fill=0, padding_mode="constant"),
            v2.RandomHorizontalFlip(0.5),
            *_to_float_normalized(mean, std),
        ]
    )


def _scale_augmentation(scale_range: Any, crop_size: int, interpolation: str) -> list[v2.Transform]:
    """The paper's scale augmentation: shorter side drawn uniformly from ``scale_range``, then a crop."""
    low, high = check_ints("scale_range", scale_range, length=2)
    if not crop_size <= low <= high:
        raise value_error("scale_range", scale_range, f"(low, high) with crop_size ({crop_size}) <= low <= high")
    return [
        # RandomShortestSize draws one of the listed sizes uniformly: every integer in the range.
        v2.RandomShortestSize(
            list(range(low, high + 1)), interpolation=interpolation_mode(interpolation), antialias=True
        ),
        v2.RandomCrop(crop_size),
    ]


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
    check_int("crop_size", crop_size, minimum=1)
    check_choice("interpolation", interpolation, INTERPOLATIONS)
    check_number("pca_std", pca_std, minimum=0)  # 0 turns lighting off
    check_choice("recipe", recipe, IMAGENET_RECIPES)
    lighting: list[v2.Transform] = []
    if recipe == "paper":
        geometry = _scale_augmentation(scale_range, crop_size, interpolation)
        if pca_std > 0:
            lighting.append(PCALighting(pca_std))
    else:
        geometry = [v2.RandomResizedCrop(crop_size, interpolation=interpolation_mode(interpolation), antialias=True)]
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
    check_int("resize_size", resize_size, minimum=1)  # eval_transform takes None (no resize); this one resizes
    return eval_transform(mean=mean, std=std, crop_size=crop_size, resize_size=resize_size, interpolation=interpolation)


# The paper's ImageNet geometry at 224 (shorter side 256 for the centre crop, 256-480 for the
# scale augmentation), scaled for another input size.
def _imagenet_sizes(size: int) -> tuple[int, tuple[int, int]]:
    return round(size * 256 / 224), (round(size * 256 / 224), round(size * 480 / 224))


def model_resize(*, size: int, cifar_style: bool) -> v2.Compose:
    """Any image to the model's input geometry, as uint8 (no normalisation): what the model's eval sees.

    Shorter side resized to :func:`model_resize_size` (``size`` for CIFAR-style models, ``size *
    256 / 224`` for ImageNet-style ones), then the centre ``size`` x ``size`` crop: what
    ``eval_transform(crop_size=size, resize_size=model_resize_size(...))`` does, so a weights
    record describes it.
    """
    check_int("size", size, minimum=1)
    resize = model_resize_size(size=size, cifar_style=cifar_style)
    return v2.Compose([v2.ToImage(), v2.Resize(resize, antialias=True), v2.CenterCrop(size)])


def model_resize_size(*, size: int, cifar_style: bool) -> int:
    """The shorter side images are resized to before the centre crop of :func:`model_resize`."""
    return size if cifar_style else _imagenet_sizes(size)[0]


def model_eval_transform(*, size: int, cifar_style: bool, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Evaluation pre-processing for images of any size: :func:`model_resize`, then float and normalise.

    Args:
        size: the model's input size (``config.image_size``).
        cifar_style: the model has the CIFAR stem (``config.stem == "cifar"``).
        mean: per-channel mean.
        std: per-channel standard deviation.
    """
    return v2.Compose([*model_resize(size=size, cifar_style=cifar_style).transforms, *_to_float_normalized(mean, std)])


def model_train_transform(*, size: int, cifar_style: bool, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Training pre-processing for images of any size, the paper's for the model's kind.

    CIFAR-style: shorter side resized to ``size``, then the paper's CIFAR augmentation (pad 4,
    random ``size`` crop, flip; :func:`cifar_train_transform`). ImageNet-style: the paper's ImageNet augmentation
    (:func:`imagenet_train_transform`: scale 256-480 for 224, scaled with ``size``, random crop,
    flip, PCA lighting).

    Args:
        size: the model's input size (``config.image_size``).
        cifar_style: the model has the CIFAR stem (``config.stem == "cifar"``).
        mean: per-channel mean.
        std: per-channel standard deviation.
    """
    check_int("size", size, minimum=1)
    if not cifar_style:
        return imagenet_train_transform(mean=mean, std=std, crop_size=size, scale_range=_imagenet_sizes(size)[1])
    resize = v2.Resize(size, antialias=True)
    return v2.Compose([v2.ToImage(), resize, *cifar_train_transform(mean=mean, std=std, crop_size=size).transforms[1:]])


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
    check_int("crop_size", crop_size, minimum=1)
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
    if not check_batch(images).is_floating_point():
        raise ArgumentTypeError(f"images must be a normalised float batch; received dtype {images.dtype}.")
    scales = check_ints("scales", scales)
    if not scales:
        raise InvalidArgumentError("scales must list at least one size; received an empty sequence.")
    for s in scales:
        check_int("scale", s, minimum=1)
    total: torch.Tensor | int = 0
    with torch.inference_mode():
        for s in scales:
            x = _resize_shorter(images, s)
            for view in (x, x.flip(-1)) if flip else (x,):
                total = total + model(view).float()
    return total / (len(scales) * (2 if flip else 1))


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
        raise InvalidArgumentError(
            f"images must be uint8 (N, C, H, W); received {getattr(images, 'dtype', type(images).__name__)}, "
            f"shape {tuple(getattr(images, 'shape', ()))}."
        )
    check_int("chunk", chunk, minimum=1)
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
