"""HRNet feature extractor (Wang et al., TPAMI 2020) as PSCC-Net configures it.

The structure follows the HRNet family (a stem, ``layer1`` of Bottleneck blocks, then stages of
parallel branches at 1, 1/2, 1/4, 1/8 of the stem resolution with a fuse step after each
module); the spec below selects the variant. State-dict names are the HRNet ones
(``conv1``, ``layer1.0.conv1``, ``transition1.1.0.0``, ``stage2.0.branches.0.0.conv1``,
``stage2.0.fuse_layers.0.1.0``, ...), so official HRNet checkpoints map by a prefix only.

PSCC-Net's variant (``HRNetSpec()``, the defaults): HRNet-W18-Small-v2 widths
(18/36/72/144, two BasicBlocks per branch) with a **stride-1 stem** and **one module per
stage** (official ``models/seg_hrnet.py`` + ``seg_hrnet_config.py``). Other HRNets (CAT-Net's
W48 with a stride-2 stem and several modules per stage) are other specs of the same code.

Resampling inside the network: stride-2 3×3 convs (so odd sizes give ``ceil(H/2)``) and, in
the fuse step, ``F.interpolate(bilinear, align_corners=True)`` to the exact size of the target
branch, as in the official code; any input size works.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

BN_MOMENTUM = 0.01
"""BatchNorm momentum of the official HRNet code (PyTorch's default is 0.1)."""


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with a residual; ``planes`` in and out (HRNet branches)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int) -> None:
        super().__init__()
        if inplanes != planes:
            raise ValueError(f"BasicBlock without downsample needs inplanes == planes, "
                             f"got {inplanes} and {planes}")
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 conv-BN with a residual, ``planes × expansion`` channels out; a 1×1
    conv-BN ``downsample`` projects the residual when the widths differ.

    ``expansion`` is 4 in HRNet's ``layer1`` and 2 in PSCC-Net's detection head."""

    def __init__(self, inplanes: int, planes: int, expansion: int = 4) -> None:
        super().__init__()
        out = planes * expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = _bn(out)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, out, 1, bias=False), _bn(out))
                           if inplanes != out else None)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


def _conv_bn(cin: int, cout: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), _bn(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class HRModule(nn.Module):
    """One multi-resolution module: a chain of BasicBlocks per branch, then every branch
    receives the sum of all branches brought to its resolution (and width).

    ``x``: list of ``[B, widths[i], H_i, W_i]`` with ``H_{i+1} = ceil(H_i / 2)``; returns the
    same shapes. Finer → coarser: chained stride-2 conv3×3-BN (ReLU between, none after the
    last); coarser → finer: conv1×1-BN, then bilinear (align_corners=True) to the exact size.
    ``fuse_layers[i][i]`` is an empty placeholder (the branch itself is added as it is)."""

    def __init__(self, widths: tuple[int, ...], blocks: int) -> None:
        super().__init__()
        n = len(widths)
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(w, w) for _ in range(blocks)]) for w in widths)
        self.fuse_layers = nn.ModuleList()
        if n == 1:
            return
        for i in range(n):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(widths[j], widths[i], 1, bias=False),
                                             _bn(widths[i])))
                elif j == i:
                    row.append(nn.Identity())
                else:  # i - j halvings; only the last changes the width
                    steps = [_conv_bn(widths[j], widths[j], 2, relu=True) for _ in range(i - j - 1)]
                    steps.append(_conv_bn(widths[j], widths[i], 2, relu=False))
                    row.append(nn.Sequential(*steps))
            self.fuse_layers.append(row)

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        x = [branch(xi) for branch, xi in zip(self.branches, x)]
        if len(x) == 1:
            return x
        fused = []
        for i, row in enumerate(self.fuse_layers):
            terms = []  # summed in branch order, as the official code does (same rounding)
            for j, layer in enumerate(row):
                z = layer(x[j])
                if j > i:
                    z = F.interpolate(z, size=x[i].shape[-2:], mode="bilinear", align_corners=True)
                terms.append(z)
            y = terms[0]
            for z in terms[1:]:
                y = y + z
            fused.append(F.relu(y))
        return fused


@dataclass(frozen=True)
class HRNetSpec:
    """An HRNet variant. Defaults: PSCC-Net's (official ``seg_hrnet_config.py``).

    ``stem_channels``: width of the two stem convs; ``stem_stride``: their stride (1 in
    PSCC-Net, 2 in the original HRNet); ``layer1_planes`` × 4 is ``layer1``'s width;
    ``widths``: stage-4 branch widths (stage ``s`` uses the first ``s`` of them);
    ``blocks``: BasicBlocks per branch per module; ``modules``: modules in stages 2, 3, 4.
    """

    stem_channels: int = 64
    stem_stride: int = 1
    layer1_planes: int = 64
    layer1_blocks: int = 2
    widths: tuple[int, int, int, int] = (18, 36, 72, 144)
    blocks: int = 2
    modules: tuple[int, int, int] = (1, 1, 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "modules", tuple(self.modules))
        if len(self.widths) != 4 or len(self.modules) != 3:
            raise ValueError(f"HRNetSpec: widths needs 4 values and modules 3, got "
                             f"{self.widths} and {self.modules}")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"HRNetSpec.stem_stride must be 1 or 2, got {self.stem_stride}")


class HRNet(nn.Module):
    """``forward(x [B,3,H,W]) -> [s1, s2, s3, s4]``: the stage-4 branches, ``s_k`` of shape
    ``[B, widths[k-1], ceil(H'/2^(k-1)), ...]`` where ``H' = ceil(H / stem_stride²)``.
    No classification or segmentation head (PSCC-Net uses the four branches)."""

    def __init__(self, spec: HRNetSpec = HRNetSpec()) -> None:
        super().__init__()
        self.spec = spec
        c, s = spec.stem_channels, spec.stem_stride
        self.conv1 = nn.Conv2d(3, c, 3, s, 1, bias=False)
        self.bn1 = _bn(c)
        self.conv2 = nn.Conv2d(c, c, 3, s, 1, bias=False)
        self.bn2 = _bn(c)
        layer1_width = spec.layer1_planes * 4
        self.layer1 = nn.Sequential(
            Bottleneck(c, spec.layer1_planes),
            *[Bottleneck(layer1_width, spec.layer1_planes) for _ in range(spec.layer1_blocks - 1)])
        previous: tuple[int, ...] = (layer1_width,)
        for stage, n_modules in zip((2, 3, 4), spec.modules):
            widths = spec.widths[:stage]
            setattr(self, f"transition{stage - 1}", self._transition(previous, widths))
            setattr(self, f"stage{stage}", nn.Sequential(
                *[HRModule(widths, spec.blocks) for _ in range(n_modules)]))
            previous = widths

    @staticmethod
    def _transition(previous: tuple[int, ...], widths: tuple[int, ...]) -> nn.ModuleList:
        """Existing branches change width with a stride-1 conv3×3-BN-ReLU (or pass as they are);
        the new branch comes from the coarsest previous one by a stride-2 conv3×3-BN-ReLU."""
        layers = nn.ModuleList()
        for i, width in enumerate(widths):
            if i < len(previous):
                layers.append(nn.Identity() if previous[i] == width
                              else _conv_bn(previous[i], width, 1, relu=True))
            else:
                layers.append(nn.Sequential(_conv_bn(previous[-1], width, 2, relu=True)))
        return layers

    def forward(self, x: Tensor) -> list[Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        branches = [self.layer1(x)]
        for stage in (2, 3, 4):
            transition = getattr(self, f"transition{stage - 1}")
            branches = [layer(branches[min(i, len(branches) - 1)])
                        for i, layer in enumerate(transition)]
            branches = getattr(self, f"stage{stage}")(branches)
        return branches

    def init_official(self) -> None:
        """The official ``init_weights`` before an ImageNet file is loaded: every conv weight
        ~ N(0, 0.001²), BatchNorm weight 1 and bias 0 (the convs have no bias)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
