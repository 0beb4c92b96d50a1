"""Reference networks written from the published descriptions, to check converters by their outputs.

``RefCifarResNet(option="A", head="linear")`` follows the layout of akamaster/pytorch_resnet_cifar10
(README and REFERENCE.md: conv1/bn1, layer1..3 of basic blocks, a parameter-free shortcut
``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))``, classifier ``linear``);
``option="B", head="fc"`` the layout of chenyaofo/pytorch-cifar-models (``downsample.0/1``
projection, classifier ``fc``). Written independently here, so a converter that loads without
error but computes something else (wrong padding side, wrong key mapping) is caught.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RefBlock(nn.Module):
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
    def __init__(
        self, depths=(1, 1, 1), widths=(4, 8, 16), *, option: str = "A", head: str = "linear", num_classes: int = 10
    ) -> None:
        super().__init__()
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
        x = F.avg_pool2d(x, x.shape[-1]).flatten(1)
        return getattr(self, self.head_name)(x)


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded random weights and BatchNorm statistics (so that eval-mode BN is not the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.2)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


def akamaster_checkpoint(model: RefCifarResNet) -> dict:
    """The file layout akamaster's trainer wrote: DataParallel ``module.`` keys, no num_batches_tracked."""
    sd = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    return {"state_dict": sd, "best_prec1": 91.78}
