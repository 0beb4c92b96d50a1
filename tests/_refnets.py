"""Reference networks and checkpoint layouts, to check converters by their outputs.

The reference CIFAR ResNet itself (written from the published descriptions, without reszoo's
parts) lives in :mod:`reszoo.models.reference`, where ``reszoo bench --compare`` uses it too; this module
keeps the test-only helpers around it: seeded random weights and the file akamaster's trainer wrote.
"""

from __future__ import annotations

import torch
from torch import nn

from reszoo.models.reference import RefBlock, RefCifarResNet

__all__ = ["RefBlock", "RefCifarResNet", "akamaster_checkpoint", "randomize_"]


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
