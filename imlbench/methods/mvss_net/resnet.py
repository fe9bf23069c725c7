"""The dilated ResNet both MVSS-Net views use (our code, official layer names and shapes).

The official backbone (``models/mvssnet.py:96-229``) is a torchvision-v1.5-style ResNet-50
(stride on the 3×3 conv of each bottleneck) with layer4 at stride 1 and *multi-grid*
dilations ``(1, 2, 4)`` per block, so every feature from layer3 on is at stride 16.
torchvision's ``replace_stride_with_dilation`` would give ``(1, 2, 2)``: a different network,
which is why this module exists instead of a timm/torchvision model.

Parameter names equal the official ``ResNet``'s (``conv1``, ``bn1``, ``layer1.0.conv1`` ...,
``fc``): the key mapping only adds or strips a prefix. ``fc`` (1000 ImageNet classes) is never
used by MVSS-Net; it is kept so that the released files load strictly (every key used).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from imlbench.errors import CheckpointError, ConfigError
from imlbench.weights import read_state_dict


@dataclass(frozen=True)
class ResNetSpec:
    """``blocks``: bottlenecks per stage (ResNet-50: ``(3, 4, 6, 3)``). ``width``: planes of
    layer1 (64); stage ``i`` has ``width·2^i`` planes and ``4·width·2^i`` output channels.
    ``layer4_dilations``: dilation of each layer4 block (official multi-grid ``(1, 2, 4)``; its
    length must equal ``blocks[3]``). ``width`` is also the stem's width. ``fc_classes``:
    classes of the unused ImageNet ``fc``."""

    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    width: int = 64
    layer4_dilations: tuple[int, ...] = (1, 2, 4)
    fc_classes: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "layer4_dilations", tuple(self.layer4_dilations))
        if len(self.blocks) != 4 or min(self.blocks) < 1:
            raise ConfigError(f"mvss_net: backbone_blocks must be 4 positive counts, got {self.blocks}")
        if len(self.layer4_dilations) != self.blocks[3]:
            raise ConfigError(f"mvss_net: layer4_dilations {self.layer4_dilations} needs one "
                             f"dilation per layer4 block (backbone_blocks[3] = {self.blocks[3]})")
        if self.width < 1:
            raise ConfigError(f"mvss_net: backbone_width must be positive, got {self.width}")

    @property
    def channels(self) -> tuple[int, int, int, int]:
        """Output channels of layer1..layer4 (ResNet-50: 256, 512, 1024, 2048)."""
        c = Bottleneck.expansion * self.width
        return (c, 2 * c, 4 * c, 8 * c)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (stride, dilation) → 1×1 (×4 channels), residual, ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class DilatedResNet(nn.Module):
    """``[B, 3, H, W] -> (c1, c2, c3, c4)``: layer1..layer4 outputs at strides 4, 8, 16, 16."""

    def __init__(self, spec: ResNetSpec):
        super().__init__()
        self.spec = spec
        in_channels = spec.width  # the stem is as wide as layer1's planes (64)
        self.conv1 = nn.Conv2d(3, in_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        strides = (1, 2, 2, 1)  # layer4 keeps stride 16 (official "stride 2 => stride 1")
        for i, (n_blocks, stride) in enumerate(zip(spec.blocks, strides)):
            planes = spec.width * 2 ** i
            dilations = (1,) * n_blocks if i < 3 else spec.layer4_dilations
            layer, in_channels = _stage(in_channels, planes, n_blocks, stride, dilations)
            self.add_module(f"layer{i + 1}", layer)
        self.fc = nn.Linear(in_channels, spec.fc_classes)  # unused; in the released files
        self._init_weights()

    def _init_weights(self) -> None:
        # As the official ResNet (kaiming fan_out, BN weight 1 / bias 0) before ImageNet loading.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return c1, c2, c3, self.layer4(c3)


def _stage(in_channels: int, planes: int, n_blocks: int, stride: int,
           dilations: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    out = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or in_channels != out:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(out))
    blocks = [Bottleneck(in_channels, planes, stride, dilations[0], downsample)]
    blocks += [Bottleneck(out, planes, dilation=d) for d in dilations[1:]]
    return nn.Sequential(*blocks), out


def load_torchvision_resnet(backbone: DilatedResNet, path: str) -> None:
    """Initialise from a local torchvision ImageNet ResNet file (``resnet50-19c8e357.pth`` or
    newer), as the official code does at construction (there with a download and
    ``strict=False``). Every backbone key must be in the file (an ImageNet ResNet-50 has the
    same names and shapes); nothing is downloaded."""
    state = read_state_dict(path)
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    # torchvision files predate num_batches_tracked; those counters may be missing.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(f"{path} is not a torchvision ResNet of this shape: missing {missing[:5]}"
                         f", unexpected {unexpected[:5]}; pass an ImageNet resnet50 .pth")
