"""A CIFAR ResNet written from the published descriptions, without any of reszoo's parts.

It serves two checks that need an implementation reszoo's own code did not write:

- ``reszoo bench --compare`` times reszoo's CIFAR models against it (:func:`reference_cifar_resnet`);
- the converter tests load released checkpoints into it and into reszoo and compare outputs, so a
  converter that loads without error but computes something else (wrong padding side, wrong key
  mapping) is caught.

``RefCifarResNet(option="A", head="linear")`` follows the layout of akamaster/pytorch_resnet_cifar10
(README and REFERENCE.md: conv1/bn1, layer1..3 of basic blocks, a parameter-free shortcut
``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))``, classifier ``linear``);
``option="B", head="fc"`` the layout of chenyaofo/pytorch-cifar-models (``downsample.0/1``
projection, classifier ``fc``).

Example:
    >>> import torch
    >>> net = reference_cifar_resnet(20)
    >>> net(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reszoo.utils.checks import check_choice, check_int, check_ints, check_str, value_error

OPTIONS = ("A", "B")


class RefBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: zero-padded subsampling (A) or a 1x1 projection (B)."""

    def __init__(self, cin: int, cout: int, stride: int, option: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.option = option
        self.project = stride != 1 or cin != cout
        self.planes = cout
        if self.project and option == "B":
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if not self.project:
            sc = x
        elif self.option == "A":
            sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.planes // 4, self.planes // 4))
        else:
            sc = self.downsample(x)
        return F.relu(out + sc)


class RefCifarResNet(nn.Module):
    """The CIFAR ResNet of He et al. 2015 (section 4.2), one stage per entry of ``depths``.

    Args:
        depths: basic blocks per stage.
        widths: channels per stage; the stem has ``widths[0]``. Option A doubles them stage to
            stage, as the paper's networks do (its shortcut pads ``planes // 4`` on each side).
        option: ``"A"`` (zero-padded shortcut) or ``"B"`` (projection where the shape changes).
        head: attribute name of the classifier (``"linear"`` as akamaster, ``"fc"`` as chenyaofo).
        num_classes: outputs of the classifier.
    """

    def __init__(
        self,
        depths: Sequence[int] = (1, 1, 1),
        widths: Sequence[int] = (4, 8, 16),
        *,
        option: str = "A",
        head: str = "linear",
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        depths = check_ints("depths", depths, minimum=1)
        widths = check_ints("widths", widths, length=len(depths), minimum=1)
        check_choice("option", option, OPTIONS)
        check_str("head", head)
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        if option == "A" and any(b != 2 * a for a, b in zip(widths, widths[1:], strict=False)):
            raise value_error("widths", widths, "doubling from stage to stage for option 'A'")
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        cin = widths[0]
        for i, (d, w) in enumerate(zip(depths, widths, strict=True)):
            blocks = []
            for j in range(d):
                blocks.append(RefBlock(cin, w, 2 if (i > 0 and j == 0) else 1, option))
                cin = w
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.n_stages = len(depths)
        self.head_name = head
        self.add_module(head, nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return getattr(self, self.head_name)(x)


def reference_cifar_resnet(depth: int, num_classes: int = 10) -> RefCifarResNet:
    """The paper's CIFAR ResNet of ``depth = 6n + 2`` with option-A shortcuts, akamaster's layout.

    Same architecture as ``reszoo.cifar_resnet(depth)``: 3x3 stem of 16, three stages of
    ``n`` basic blocks at 16/32/64 channels, zero-padded identity shortcuts; its parameters come in
    the same order, so copying a reszoo state_dict's values across gives the same outputs.
    """
    check_int("depth", depth)
    if depth < 8 or (depth - 2) % 6:
        raise value_error("depth", depth, "6n+2 with n >= 1 (20, 32, 44, 56, 110, 1202, ...)")
    n = (depth - 2) // 6
    return RefCifarResNet((n, n, n), (16, 32, 64), option="A", head="linear", num_classes=num_classes)
