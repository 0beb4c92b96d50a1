"""Tests for reszoo.data.transforms: shapes, ranges, determinism, distributions, PCA lighting, multi-scale."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

import reszoo
from reszoo import transforms as T
from reszoo.data import augment as A
from reszoo.data import constants as C

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY_OVERRIDES  # noqa: E402

# chi-square 0.999 quantile with 80 degrees of freedom (81 offsets): a fair sampler fails a
# fixed-seed test with probability 1e-3, so a failure here means a biased sampler.
CHI2_80_P999 = 124.84


def _uint8(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _tiny_net() -> reszoo.ResNet:
    # For parametrize lists, which cannot take fixtures; tests take the tiny_model fixture.
    return reszoo.ResNet(reszoo.ResNetConfig(**TINY_OVERRIDES)).eval()


# --- constants ---------------------------------------------------------------------------------


def test_constants_are_rgb_triples_and_pca_basis_is_orthonormal():
    for name in ("CIFAR10", "CIFAR100", "IMAGENET"):
        mean, std = getattr(C, f"{name}_MEAN"), getattr(C, f"{name}_STD")
        assert len(mean) == len(std) == 3
        assert all(0.3 < m < 0.6 for m in mean) and all(0.2 < s < 0.3 for s in std)
    vec = torch.tensor(C.IMAGENET_PCA_EIGVEC)
    assert torch.allclose(vec.T @ vec, torch.eye(3), atol=2e-3)
    assert T.normalization("cifar100") == (C.CIFAR100_MEAN, C.CIFAR100_STD)
    with pytest.raises(ValueError, match="cifar10"):
        T.normalization("cifar11")


def test_channel_stats_matches_numpy():
    x = _uint8(6, 3, 5, 7)
    mean, std = T.channel_stats(x, chunk=4)
    a = x.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean, a.mean(axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(std, a.std(axis=(0, 2, 3)), rtol=1e-9)


# --- shapes, dtypes, ranges ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "in_hw", "out_shape"),
    [
        (lambda: T.cifar_train_transform(), (32, 32), (3, 32, 32)),
        (lambda: T.cifar_eval_transform(), (32, 32), (3, 32, 32)),
        (lambda: T.imagenet_train_transform(crop_size=24, scale_range=(28, 40)), (45, 60), (3, 24, 24)),
        (lambda: T.imagenet_train_transform(recipe="rrc", crop_size=24), (45, 60), (3, 24, 24)),
        (lambda: T.imagenet_eval_transform(resize_size=28, crop_size=24), (45, 60), (3, 24, 24)),
        (lambda: T.ten_crop_transform(resize_size=28, crop_size=24), (45, 60), (10, 3, 24, 24)),
    ],
)
@pytest.mark.parametrize("kind", ["pil", "uint8", "float", "batch"])
def test_pipelines_accept_pil_tensors_and_batches(make, in_hw, out_shape, kind):
    img = _uint8(3, *in_hw)
    if kind == "pil":
        inpt = PIL.Image.fromarray(img.permute(1, 2, 0).numpy())
    elif kind == "float":
        inpt = img.float() / 255
    elif kind == "batch":
        inpt = torch.stack([img, img])
    else:
        inpt = img
    out = make()(inpt)
    expected = (2, *out_shape) if kind == "batch" else out_shape
    assert tuple(out.shape) == expected
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_cifar_eval_value_range_is_the_normalised_unit_interval():
    t = T.cifar_eval_transform()
    lo = t(torch.zeros(3, 32, 32, dtype=torch.uint8))
    hi = t(torch.full((3, 32, 32), 255, dtype=torch.uint8))
    mean, std = torch.tensor(C.CIFAR10_MEAN), torch.tensor(C.CIFAR10_STD)
    assert torch.allclose(lo[:, 0, 0], -mean / std)
    assert torch.allclose(hi[:, 0, 0], (1 - mean) / std)
    x = t(_uint8(3, 32, 32))
    assert (x >= lo - 1e-6).all() and (x <= hi + 1e-6).all()
    # uint8 and the same image as float in [0, 1] give the same result
    img = _uint8(3, 32, 32, seed=3)
    assert torch.allclose(t(img), t(img.float() / 255), atol=1e-6)


def test_eval_transform_is_resize_then_center_crop_and_deterministic():
    img = _uint8(3, 50, 70)
    t = T.eval_transform(mean=(0.5,) * 3, std=(0.25,) * 3, crop_size=32, resize_size=40, interpolation="bicubic")
    a, b = t(img), t(img)
    assert torch.equal(a, b)
    ref = TF.center_crop(TF.resize(img, [40], interpolation=v2.InterpolationMode.BICUBIC, antialias=True), [32])
    assert torch.allclose(a, (ref.float() / 255 - 0.5) / 0.25, atol=1e-6)
    # a batch is the images one by one
    batch = torch.stack([img, _uint8(3, 50, 70, seed=1)])
    assert torch.allclose(t(batch)[1], t(batch[1]), atol=1e-6)


def test_ten_crop_holds_five_crops_and_their_flips():
    img = _uint8(3, 40, 52)
    crops = T.ten_crop_transform(resize_size=40, crop_size=32, mean=(0.0,) * 3, std=(1.0,) * 3)(img)
    resized = TF.resize(img, [40], antialias=True).float() / 255
    center = TF.center_crop(resized, [32])
    assert torch.allclose(crops[4], center, atol=1e-6)
    assert torch.allclose(crops[9], center.flip(-1), atol=1e-6)
    assert torch.allclose(crops[0], resized[:, :32, :32], atol=1e-6)
    assert len({tuple(c.flatten()[:50].tolist()) for c in crops}) == 10


def test_train_transforms_are_deterministic_under_a_seed():
    cases = [
        (T.cifar_train_transform(), _uint8(3, 32, 32)),
        (T.imagenet_train_transform(crop_size=24, scale_range=(28, 40)), _uint8(3, 45, 60)),
    ]
    for t, x in cases:
        torch.manual_seed(7)
        a = t(x)
        torch.manual_seed(7)
        b = t(x)
        assert torch.equal(a, b)
        outs = []
        for seed in range(8):
            torch.manual_seed(seed)
            outs.append(t(x))
        assert any(not torch.equal(outs[0], o) for o in outs[1:]), "other seeds give other crops"


def test_imagenet_paper_recipe_draws_every_shorter_side_in_the_range():
    t = T.imagenet_train_transform()
    kinds = [type(s).__name__ for s in t.transforms]
    assert kinds == [
        "ToImage",
        "RandomShortestSize",
        "RandomCrop",
        "RandomHorizontalFlip",
        "ToDtype",
        "PCALighting",
        "Normalize",
    ]
    assert list(t.transforms[1].min_size) == list(range(256, 481))
    assert t.transforms[5].std == 0.1
    rrc = T.imagenet_train_transform(recipe="rrc")
    assert [type(s).__name__ for s in rrc.transforms][1] == "RandomResizedCrop"
    assert "PCALighting" not in [type(s).__name__ for s in T.imagenet_train_transform(pca_std=0).transforms]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: T.imagenet_train_transform(recipe="fb"), "paper, rrc"),
        (lambda: T.eval_transform(mean=C.IMAGENET_MEAN, std=C.IMAGENET_STD, crop_size=224, interpolation="x"), "x"),
        (lambda: T.eval_transform(mean=(0.5,), std=(0.0,), crop_size=32), "std"),
        (lambda: T.imagenet_eval_transform(resize_size=200, crop_size=224), "crop_size"),
        (lambda: T.imagenet_train_transform(scale_range=(200, 480)), "scale_range"),
        (lambda: T.cifar_train_transform(padding=-1), "padding=-1"),
        (lambda: A.batch_random_crop_flip(torch.zeros(3, 8, 8)), r"\(3, 8, 8\)"),
        (lambda: A.batch_random_crop_flip(torch.zeros(2, 3, 8, 8), padding=-1), "padding=-1"),
        (lambda: A.batch_random_crop_flip(torch.zeros(2, 3, 8, 8), flip_p=1.5), "flip_p=1.5"),
        (lambda: T.imagenet_train_transform(pca_std=-0.1), "pca_std=-0.1"),
        (lambda: T.imagenet_train_transform(pca_std=float("nan")), "pca_std=nan"),
        (lambda: T.imagenet_train_transform(scale_range=(256,)), r"scale_range=\(256,\)"),
        (lambda: T.imagenet_train_transform(scale_range=256), "scale_range=256"),
        (lambda: T.imagenet_train_transform(crop_size=0), "crop_size=0"),
        (lambda: T.imagenet_train_transform(interpolation="area"), "'area'.*bilinear"),
        (lambda: T.eval_transform(mean=C.IMAGENET_MEAN, std=C.IMAGENET_STD, crop_size=0), "crop_size=0"),
        (
            lambda: T.eval_transform(mean=C.IMAGENET_MEAN, std=C.IMAGENET_STD, crop_size=8, resize_size=0),
            "resize_size=0",
        ),
        (lambda: T.eval_transform(mean=(), std=(), crop_size=32), r"mean=\[\]"),
        (lambda: T.eval_transform(mean=(0.5,), std=(float("nan"),), crop_size=32), "std"),
        (lambda: T.eval_transform(mean=(float("inf"),), std=(1.0,), crop_size=32), "mean"),
        (lambda: T.cifar_eval_transform(mean=(0.5, 0.5), std=(0.2,)), "same"),
        (lambda: T.cifar_train_transform(crop_size=-32), "crop_size=-32"),
        (lambda: T.ten_crop_transform(resize_size=200), "resize_size=200"),
        (lambda: T.ten_crop_transform(interpolation="lanczos"), "'lanczos'.*bicubic"),
        (lambda: T.channel_stats(torch.zeros(2, 3, 4, 4)), "float32"),
        (lambda: T.channel_stats(torch.zeros(3, 4, 4, dtype=torch.uint8)), r"\(3, 4, 4\)"),
        (lambda: T.channel_stats(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), chunk=0), "chunk=0"),
        (lambda: T.PCALighting(eigval=(1.0, 2.0)), r"\(2,\)"),
    ],
)
def test_bad_arguments_name_the_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()


_OFFSETS = torch.zeros(2, dtype=torch.int64)
_NO_FLIP = torch.zeros(2, dtype=torch.bool)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: A.sample_crop_flip(-1), "n=-1"),
        (lambda: A.sample_crop_flip(2.0), "n=2.0"),
        (lambda: A.sample_crop_flip(4, padding=-2), "padding=-2"),
        (lambda: A.sample_crop_flip(4, flip_p=-0.1), "flip_p=-0.1"),
        (lambda: A.sample_crop_flip(4, generator=torch.Generator(), device="meta"), "generator is on cpu.*meta"),
        (lambda: A.crop_flip(torch.zeros(2, 8, 8), _OFFSETS, _OFFSETS, _NO_FLIP), r"\(2, 8, 8\)"),
        (
            lambda: A.crop_flip(torch.zeros(2, 3, 8, 8), _OFFSETS[:1], _OFFSETS, _NO_FLIP),
            r"top must be a \(2,\).*\(1,\)",
        ),
        (lambda: A.crop_flip(torch.zeros(2, 3, 8, 8), _OFFSETS, [0, 0], _NO_FLIP), "left.*list"),
        (lambda: A.crop_flip(torch.zeros(2, 3, 8, 8), _OFFSETS.float(), _OFFSETS, _NO_FLIP), "top.*float32"),
        (lambda: A.crop_flip(torch.zeros(2, 3, 8, 8), _OFFSETS, _OFFSETS, _OFFSETS), "flip.*int64"),
        (lambda: A.crop_flip(torch.zeros(2, 3, 8, 8), _OFFSETS, _OFFSETS, _NO_FLIP, padding=-1), "padding=-1"),
        (lambda: A.crop_flip(torch.zeros(2, 3, 8, 8), _OFFSETS, _OFFSETS + 9, _NO_FLIP), r"0\.\.8.*left in 9\.\.9"),
        (lambda: A.crop_flip(torch.zeros(2, 3, 8, 8), _OFFSETS - 1, _OFFSETS, _NO_FLIP), r"top in -1\.\.-1"),
        (lambda: T.multi_scale_predict(_tiny_net(), torch.randn(1, 3, 8, 8), scales=(16, 0)), "scale=0"),
        (lambda: T.multi_scale_predict(_tiny_net(), torch.randn(3, 8, 8)), r"\(3, 8, 8\)"),
    ],
)
def test_batch_augmentation_and_multi_scale_reject_bad_values(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_sample_crop_flip_draws_on_the_requested_device_and_accepts_empty_batches():
    top, left, flip = A.sample_crop_flip(0)
    assert top.shape == left.shape == flip.shape == (0,)
    top, _, flip = A.sample_crop_flip(3, device="meta")
    assert top.device.type == "meta" and flip.dtype == torch.bool
    empty = torch.zeros(0, 3, 8, 8, dtype=torch.uint8)
    assert A.batch_random_crop_flip(empty).shape == empty.shape


# --- crop offsets and flips: distribution --------------------------------------------------------


def _coded_batch(n: int) -> torch.Tensor:
    """Images whose channel 0 holds row + 1 and channel 1 column + 1, so a crop reveals its offset."""
    ar = torch.arange(1, 33, dtype=torch.uint8)
    img = torch.stack([ar[:, None].expand(32, 32), ar[None, :].expand(32, 32), torch.zeros(32, 32, dtype=torch.uint8)])
    return img.expand(n, 3, 32, 32).contiguous()


def _decode(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Offsets into the 4-padded image and flips of crops of _coded_batch (pixel 16 always lies inside)."""
    out = out.to(torch.int64)
    top = out[:, 0, 16, 16] - 13
    flip = out[:, 1, 16, 17] < out[:, 1, 16, 16]
    left = torch.where(flip, out[:, 1, 16, 16] - 12, out[:, 1, 16, 16] - 13)
    return top, left, flip


def _assert_uniform(top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor) -> None:
    n = top.numel()
    assert top.min() >= 0 and top.max() <= 8 and left.min() >= 0 and left.max() <= 8
    counts = torch.bincount(top * 9 + left, minlength=81).double()
    assert (counts > 0).all(), "every one of the 81 offsets occurs"
    expected = n / 81
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < CHI2_80_P999, f"chi-square {chi2:.1f} over 80 dof"
    # flips: within 4 standard deviations of n/2
    assert abs(float(flip.double().mean()) - 0.5) < 4 * (0.25 / n) ** 0.5


def test_decoder_recovers_known_offsets():
    top, left = torch.arange(81) // 9, torch.arange(81) % 9
    flip = torch.arange(81) % 2 == 0
    got = _decode(A.crop_flip(_coded_batch(81), top, left, flip))
    assert torch.equal(got[0], top) and torch.equal(got[1], left) and torch.equal(got[2], flip)


def test_batch_crop_offsets_cover_all_81_positions_uniformly_and_flip_half():
    g = torch.Generator().manual_seed(1234)
    out = A.batch_random_crop_flip(_coded_batch(81 * 120), generator=g)
    _assert_uniform(*_decode(out))


def test_per_image_transform_offsets_are_uniform_and_flip_half():
    t = v2.Compose([v2.ToImage(), v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(0.5)])
    assert [type(s) for s in T.cifar_train_transform().transforms[:3]] == [type(s) for s in t.transforms]
    img = _coded_batch(1)[0]
    torch.manual_seed(99)
    out = torch.stack([t(img) for _ in range(81 * 40)])
    _assert_uniform(*_decode(out))


# --- the batch augmentation equals the per-image one ---------------------------------------------


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_batch_crop_flip_equals_per_image_functional_ops(dtype):
    images = _uint8(16, 3, 32, 32).to(dtype)
    top, left, flip = A.sample_crop_flip(16, generator=torch.Generator().manual_seed(5))
    out = A.crop_flip(images, top, left, flip)
    assert out.dtype == dtype and out.shape == images.shape
    for i in range(16):
        ref = TF.crop(TF.pad(images[i], [4]), int(top[i]), int(left[i]), 32, 32)
        if flip[i]:
            ref = TF.horizontal_flip(ref)
        assert torch.equal(out[i], ref), i


def test_batch_random_crop_flip_is_seeded_and_equals_crop_flip_on_its_draws():
    images = _uint8(32, 3, 32, 32)
    a = A.batch_random_crop_flip(images, generator=torch.Generator().manual_seed(3))
    b = A.batch_random_crop_flip(images, generator=torch.Generator().manual_seed(3))
    c = A.batch_random_crop_flip(images, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    draws = A.sample_crop_flip(32, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, A.crop_flip(images, *draws))
    # padding 0 and flip_p 1 is a pure flip
    flipped = A.batch_random_crop_flip(images, padding=0, flip_p=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(flipped, images.flip(-1))


def test_batch_random_crop_flip_rejects_a_generator_on_another_device():
    with pytest.raises(ValueError, match="generator"):
        A.batch_random_crop_flip(torch.zeros(2, 3, 8, 8, device="meta"), generator=torch.Generator())


# --- PCA lighting --------------------------------------------------------------------------------


def test_pca_lighting_shift_is_constant_per_image_with_the_alexnet_covariance():
    n = 20_000
    base = torch.full((n, 3, 2, 2), 0.5)
    torch.manual_seed(0)
    out = T.PCALighting(0.1)(base)
    shift = out - base
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-6), "one colour per image"
    s = shift[:, :, 0, 0].double()
    vec = torch.tensor(C.IMAGENET_PCA_EIGVEC, dtype=torch.float64)
    val = torch.tensor(C.IMAGENET_PCA_EIGVAL, dtype=torch.float64)
    expected = vec @ torch.diag((0.1 * val) ** 2) @ vec.T
    cov = torch.cov(s.T)
    # sampling error of a covariance from 20k draws is about 1% of its scale; allow 5%
    assert torch.allclose(cov, expected, rtol=0, atol=0.05 * float(expected.abs().max()))
    # along each principal axis the variance is (0.1 * eigval)^2 within 5% (standard error 1%)
    along = torch.cov((s @ vec).T).diagonal()
    assert torch.allclose(along, (0.1 * val) ** 2, rtol=0.05)
    assert abs(float(s.mean(0).abs().max())) < 4 * 0.1 * float(val[0]) / n**0.5


def test_pca_lighting_single_image_and_errors():
    img = torch.rand(3, 4, 4)
    torch.manual_seed(1)
    out = T.PCALighting()(img)
    assert out.shape == img.shape and not torch.equal(out, img)
    assert torch.equal(T.PCALighting(0.0)(img), img)
    with pytest.raises(ValueError, match="uint8"):
        T.PCALighting()(torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="PIL"):
        T.PCALighting()(PIL.Image.new("RGB", (4, 4)))
    with pytest.raises(ValueError, match="std"):
        T.PCALighting(-0.1)


# --- multi-scale testing -------------------------------------------------------------------------


def test_multi_scale_predict_averages_one_pass_per_scale(tiny_model):
    net = tiny_model().eval()
    seen: list[tuple[int, ...]] = []
    net.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    images = torch.randn(2, 3, 32, 48)
    out = T.multi_scale_predict(net, images, scales=(16, 24, 40))
    assert [s[2:] for s in seen] == [(16, 24), (24, 36), (40, 60)]
    with torch.no_grad():
        ref = sum(net(TF.resize(images, [s], antialias=True)) for s in (16, 24, 40)) / 3
    assert out.shape == (2, 10)
    assert torch.allclose(out, ref, atol=1e-5)


def test_multi_scale_predict_with_flips_and_paper_scales(tiny_model):
    net = tiny_model().eval()
    calls: list[int] = []
    net.register_forward_pre_hook(lambda m, args: calls.append(min(args[0].shape[2:])))
    T.multi_scale_predict(net, torch.randn(1, 3, 32, 32), flip=True, scales=(16, 32))
    assert calls == [16, 16, 32, 32]
    calls.clear()
    T.multi_scale_predict(net, torch.randn(1, 3, 8, 8))
    assert calls == [224, 256, 384, 480, 640]
    with pytest.raises(ValueError, match="scales"):
        T.multi_scale_predict(net, torch.randn(1, 3, 8, 8), scales=())
    with pytest.raises(ValueError, match="uint8"):
        T.multi_scale_predict(net, torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_weight_fields_build_the_same_pipeline_as_the_presets():
    img = _uint8(3, 60, 80)
    a = T.eval_transform(mean=C.IMAGENET_MEAN, std=C.IMAGENET_STD, crop_size=224, resize_size=256)
    b = T.imagenet_eval_transform()
    assert torch.equal(a(img), b(img))
    c = T.eval_transform(mean=C.CIFAR10_MEAN, std=C.CIFAR10_STD, crop_size=32)
    assert torch.equal(c(img[:, :32, :32]), T.cifar_eval_transform()(img[:, :32, :32]))


def _interpolations(transform):
    """Every ``interpolation`` attribute in a (nested) torchvision pipeline."""
    found = []
    stack = [transform]
    while stack:
        t = stack.pop()
        if hasattr(t, "interpolation"):
            found.append(t.interpolation)
        stack.extend(getattr(t, "transforms", []))
    return found


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_pipelines_hand_torchvision_an_interpolation_mode_not_a_string(interpolation):
    # torchvision before 0.2x refuses interpolation="bilinear" (seen on a GPU machine with 0.26:
    # "Argument interpolation should be an InterpolationMode ..."); reszoo declares torchvision>=0.19.
    from reszoo import transforms as T

    pipelines = [
        T.eval_transform(
            mean=C.IMAGENET_MEAN, std=C.IMAGENET_STD, crop_size=224, resize_size=256, interpolation=interpolation
        ),
        T.ten_crop_transform(
            mean=C.IMAGENET_MEAN, std=C.IMAGENET_STD, crop_size=224, resize_size=256, interpolation=interpolation
        ),
        T.imagenet_train_transform(recipe="paper", interpolation=interpolation),
        T.imagenet_train_transform(recipe="rrc", interpolation=interpolation),
    ]
    modes = [m for p in pipelines for m in _interpolations(p)]
    assert len(modes) >= 4
    assert all(m == v2.InterpolationMode(interpolation) and isinstance(m, v2.InterpolationMode) for m in modes), modes
