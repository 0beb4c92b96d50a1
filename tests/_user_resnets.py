"""ResNets written the way people write them in forum posts and blog code, for `reszoo diagnose`'s tests.

Nothing here imports reszoo: each network is plain PyTorch (and torchvision), in the styles that
circulate (an option-A CIFAR net with a LambdaLayer and F.pad; one with torch.cat zero padding;
a projection-shortcut CIFAR net with nn.Sequential shortcuts and no init code; a Keras port; a
torchvision-v1-style bottleneck ResNet-50; ...). The faithful ones should draw no warning; each
of the others carries the mistakes its name says.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init

# ----------------------------------------------------------------------------------------------
# 1. The common option-A CIFAR net: LambdaLayer + F.pad shortcut, functional ReLUs, `out +=`,
#    kaiming_normal_ with its default fan_in on convs and the linear layer. Faithful.


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlockA(nn.Module):
    def __init__(self, in_planes, planes, stride=1, shortcut="A", relu_before_add=False, bias=False, momentum=0.1):
        super().__init__()
        self.relu_before_add = relu_before_add
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(planes, momentum=momentum)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes, momentum=momentum)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                pad = planes // 4
                self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0))
            elif shortcut == "avgpool-module":  # option A as modules: a 1x1/2 average pool, then the zero channels
                pad = planes // 4
                self.shortcut = nn.Sequential(
                    nn.AvgPool2d(kernel_size=1, stride=2), LambdaLayer(lambda x: F.pad(x, (0, 0, 0, 0, pad, pad)))
                )
            elif shortcut == "maxpool":  # subsample with a 2x2 max-pool instead of taking every second pixel
                pad = planes // 4
                self.shortcut = LambdaLayer(lambda x: F.pad(F.max_pool2d(x, 2), (0, 0, 0, 0, pad, pad)))
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.relu_before_add:
            out = F.relu(out)
            out += self.shortcut(x)
            return out
        out += self.shortcut(x)
        out = F.relu(out)
        return out


def _weights_init(m):
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        init.kaiming_normal_(m.weight)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR; the keyword arguments are the mistakes people make."""

    def __init__(self, num_blocks=(9, 9, 9), num_classes=10, widths=(16, 32, 64), he_init=True, **block_kw):
        super().__init__()
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._make_layer(widths[0], num_blocks[0], 1, block_kw)
        self.layer2 = self._make_layer(widths[1], num_blocks[1], 2, block_kw)
        self.layer3 = self._make_layer(widths[2], num_blocks[2], 2, block_kw)
        self.linear = nn.Linear(widths[2], num_classes)
        if he_init:
            self.apply(_weights_init)

    def _make_layer(self, planes, num_blocks, stride, block_kw):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(BasicBlockA(self.in_planes, planes, s, **block_kw))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


def akamaster_resnet(depth=56, **kw):
    n = (depth - 2) // 6
    return CifarResNet((n, n, n), **kw)


# ----------------------------------------------------------------------------------------------
# 2. Another faithful option-A net, written differently: the branch as an nn.Sequential with
#    ReLU modules, zero channels added with torch.cat, fan_out init, adaptive pooling. Faithful.


class CatPadBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.stride, self.extra = stride, cout - cin
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x
        if self.stride > 1:
            identity = identity[:, :, :: self.stride, :: self.stride]
        if self.extra:
            zeros = torch.zeros(identity.size(0), self.extra, identity.size(2), identity.size(3), device=x.device)
            identity = torch.cat([identity, zeros], dim=1)
        return self.act(self.residual(x) + identity)


class CatPadResNet(nn.Module):
    def __init__(self, n=9, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(CatPadBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


# ----------------------------------------------------------------------------------------------
# 3. The projection-shortcut CIFAR net of many tutorials: nn.Sequential 1x1 conv + BN shortcuts
#    wherever the shape changes, and no init code at all (PyTorch's defaults).


class ForumBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ForumResNet56(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, 9, 1)
        self.layer2 = self._make_layer(32, 9, 2)
        self.layer3 = self._make_layer(64, 9, 2)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(ForumBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(out.flatten(1))


# ----------------------------------------------------------------------------------------------
# 4. A CIFAR net with the ImageNet stem (7x7/2 conv + 3x3/2 max-pool), as when torchvision's
#    ResNet is pointed at CIFAR.


class ImageNetStemCifarResNet(CifarResNet):
    def __init__(self, n=3):
        super().__init__((n, n, n))
        self.conv1 = nn.Conv2d(3, 16, kernel_size=7, stride=2, padding=3, bias=False)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        init.kaiming_normal_(self.conv1.weight)

    def forward(self, x):
        out = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(out.view(out.size(0), -1))


# ----------------------------------------------------------------------------------------------
# 5. A Keras port of the CIFAR ResNet-20 (Keras' defaults translated literally): conv bias,
#    BatchNorm(momentum=0.99, eps=1e-3), Glorot-uniform kernels, a 1x1 conv shortcut without BN.


class KerasBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.b1 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.99)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.b2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.99)
        self.proj = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        x = self.proj(x) if self.proj is not None else x
        return torch.relu(x + y)


class KerasPortResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 16, 3, 1, 1)
        self.b0 = nn.BatchNorm2d(16, eps=1e-3, momentum=0.99)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(KerasBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.dense = nn.Linear(64, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = torch.relu(self.b0(self.c0(x)))
        for block in self.blocks:
            x = block(x)
        x = F.avg_pool2d(x, 8)
        return self.dense(torch.flatten(x, 1))


# ----------------------------------------------------------------------------------------------
# 6. A torchvision-v1-style bottleneck ResNet-50: the stride on the first 1x1 (the paper's layout),
#    `out += identity`, one shared ReLU module, torchvision's init.


class V1Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class V1ResNet50(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, stride=2)
        self.layer4 = self._make_layer(512, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * 4),
            )
        layers = [V1Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [V1Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ----------------------------------------------------------------------------------------------
# 7. Smaller variations people post.


class PlainCifarNet(nn.Module):
    """20 layers with no shortcut: a VGG-style stack written as one nn.Sequential."""

    def __init__(self, n=3):
        super().__init__()
        layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(2 * n):
                layers += [nn.Conv2d(cin, cout, 3, stride if i == 0 else 1, 1, bias=False), nn.BatchNorm2d(cout)]
                layers.append(nn.ReLU())
                cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(64, 10)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.pad = cout - cin
        self.stride = stride

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        sc = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            sc = F.pad(sc, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return out + sc


class PreActCifarNet(nn.Module):
    def __init__(self, n=3):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(PreActBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(64)
        self.fc = nn.Linear(64, 10)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        x = F.relu(self.bn(self.blocks(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class PreActProjBlock(nn.Module):
    """The pre-activation paper's code: BN-ReLU once, read by the branch and by the projection (if any)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.preact = nn.Sequential(nn.BatchNorm2d(cin), nn.Identity(), nn.ReLU())  # norm, (no) dropout, act
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.proj = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x):
        pre = self.preact(x)
        shortcut = self.proj(pre) if self.proj is not None else x
        return self.conv2(F.relu(self.bn2(self.conv1(pre)))) + shortcut


class PreActConvHeadNet(nn.Module):
    """Pre-activation ResNet-20 written timm's ResNetV2 way: the last norm as BN + nn.Identity + ReLU, and the
    classifier a 1x1 convolution on the pooled features. Faithful to preresnet20."""

    def __init__(self, n=3, num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(PreActProjBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.Sequential(nn.BatchNorm2d(64), nn.Identity(), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(64, num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.fc:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.pool(self.norm(self.blocks(self.stem(x))))).flatten(1)


class FlattenHeadNet(CifarResNet):
    """No global pooling: the 8x8 map flattened into a hidden fc layer with dropout, then the classifier."""

    def __init__(self):
        super().__init__((3, 3, 3))
        self.linear = nn.Sequential(nn.Linear(64 * 8 * 8, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(out.view(out.size(0), -1))


class NoBatchNormNet(CifarResNet):
    """BatchNorm taken out (replaced by identities), biases put back in the convolutions."""

    def __init__(self):
        super().__init__((3, 3, 3), bias=True)
        for m in list(self.modules()):
            for name, child in list(m.named_children()):
                if isinstance(child, nn.BatchNorm2d):
                    setattr(m, name, nn.Identity())


class GroupNormNet(CifarResNet):
    def __init__(self):
        super().__init__((3, 3, 3))
        for m in list(self.modules()):
            for name, child in list(m.named_children()):
                if isinstance(child, nn.BatchNorm2d):
                    setattr(m, name, nn.GroupNorm(4, child.num_features))


class LeakyBlock(BasicBlockA):
    def forward(self, x):
        out = F.leaky_relu(self.bn1(self.conv1(x)), 0.1)
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.leaky_relu(out, 0.1)


class LeakyNet(CifarResNet):
    def __init__(self):
        super().__init__((3, 3, 3))
        for layer in (self.layer1, self.layer2, self.layer3):
            for block in layer:
                block.__class__ = LeakyBlock

    def forward(self, x):
        out = F.leaky_relu(self.bn1(self.conv1(x)), 0.1)
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class StridedFirstStageNet(CifarResNet):
    """The first stage downsamples too (stride 2 in layer1), so the stages work on 16/8/4 maps."""

    def __init__(self):
        super().__init__((3, 3, 3))
        block = self.layer1[0]
        block.conv1.stride = (2, 2)
        block.shortcut = LambdaLayer(lambda x: x[:, :, ::2, ::2])


class UniformBNNet(CifarResNet):
    """BatchNorm scales initialised U(0, 1), as PyTorch did before 1.1."""

    def __init__(self):
        super().__init__((3, 3, 3))
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.data.uniform_()


class ZeroInitNet(CifarResNet):
    """Zero-init of each block's last BatchNorm scale (Goyal et al. 2017): equivalent."""

    def __init__(self):
        super().__init__((3, 3, 3))
        for m in self.modules():
            if isinstance(m, BasicBlockA):
                nn.init.zeros_(m.bn2.weight)


class BottleneckCifarNet(nn.Module):
    """A bottleneck CIFAR net (1x1, 3x3, 1x1 x4) with option-B projections: not a ResNet-20."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(2):
                s = stride if i == 0 else 1
                down = None
                if s != 1 or cin != planes * 4:
                    down = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, s, bias=False), nn.BatchNorm2d(planes * 4))
                blocks.append(V1Bottleneck(cin, planes, s, down))
                cin = planes * 4
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, 10)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
