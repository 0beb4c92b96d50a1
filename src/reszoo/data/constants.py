"""Facts about datasets, defined once: ids, class counts and names, normalisation statistics.

One id per dataset (``"cifar10"``, ``"cifar100"``, ``"imagenet"``) is used everywhere in reszoo:
recipes, transforms, weight entries. :data:`HUB_DATASET_IDS` maps them to the Hugging Face Hub's
dataset ids for model cards.
"""

from __future__ import annotations

from dataclasses import dataclass

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

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# The 100 fine labels in the order of the dataset's label ids (alphabetical, as in its meta file).
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip


@dataclass(frozen=True)
class DatasetInfo:
    """What reszoo knows of a dataset: its classes, image size and normalisation."""

    id: str
    num_classes: int
    image_size: int  # the evaluation crop: 32 for CIFAR, 224 for ImageNet
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    hub_id: str  # the dataset's id on the Hugging Face Hub
    train_images: int  # the official training split's size (the paper's CIFAR runs held 5k of it out)


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 10, 32, CIFAR10_MEAN, CIFAR10_STD, "cifar10", 50_000),
    "cifar100": DatasetInfo("cifar100", 100, 32, CIFAR100_MEAN, CIFAR100_STD, "cifar100", 50_000),
    "imagenet": DatasetInfo("imagenet", 1000, 224, IMAGENET_MEAN, IMAGENET_STD, "imagenet-1k", 1_281_167),
}

NUM_CLASSES: dict[str, int] = {d.id: d.num_classes for d in DATASETS.values()}
NORMALIZATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    d.id: (d.mean, d.std) for d in DATASETS.values()
}
HUB_DATASET_IDS: dict[str, str] = {d.id: d.hub_id for d in DATASETS.values()}
