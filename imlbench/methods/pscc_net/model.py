"""The ``pscc_net`` method: HRNet features → progressive SCCM masks + detection head."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from imlbench.errors import ConfigError
from imlbench.methods.base import InputPolicy, Method, Prediction, build_config
from imlbench.methods.pscc_net.heads import DetectionHead, ProgressiveMaskHead
from imlbench.methods.pscc_net.hrnet import HRNet, HRNetSpec
from imlbench.methods.pscc_net.keymap import find_official_files, from_official
from imlbench.methods.pscc_net.losses import balanced_bce, detection_ce, mask_pyramid
from imlbench.registry import METHODS
from imlbench.weights import read_state_dict


@dataclass(frozen=True)
class PSCCNetConfig:
    """Options of ``pscc_net`` (``METHODS.build("pscc_net", **kwargs)`` keywords). The defaults
    are the official network (``models/seg_hrnet_config.py``, ``utils/config.py``,
    ``models/NLCDetection.py``, ``models/detection_head.py``); changing one builds a variant
    that the released files no longer fit.

    ``stem_channels``, ``layer1_planes``, ``layer1_blocks``, ``widths``, ``blocks``: the HRNet
    (see :class:`HRNetSpec`; stride-1 stem and one module per stage are fixed: PSCC-Net's).
    ``grid``: side of the fixed grid both heads work on (official ``crop_size`` 256; the
    localisation map is ``grid``² at every image size). ``mask_hidden``: width of each
    SCCM's mask conv (16). ``head_width``, ``head_hidden``: detection head's final 1×1 conv
    (128) and classifier hidden layer (16). ``authentic_ratio``: the share of authentic
    images the detection CE weights assume (official ``train_ratio[0]`` = 0.25).
    """

    stem_channels: int = 64
    layer1_planes: int = 64
    layer1_blocks: int = 2
    widths: tuple[int, int, int, int] = (18, 36, 72, 144)
    blocks: int = 2
    grid: int = 256
    mask_hidden: int = 16
    head_width: int = 128
    head_hidden: int = 16
    authentic_ratio: float = 0.25

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))  # YAML gives lists
        if len(self.widths) != 4:
            raise ConfigError(f"pscc_net: widths needs 4 branch widths, got {self.widths}")
        if self.grid < 8 or self.grid % 8:
            raise ConfigError(f"pscc_net: grid must be a positive multiple of 8 (four scales, "
                             f"the 1/4 one folded by 2), got {self.grid}")
        if not 0 < self.authentic_ratio < 1:
            raise ConfigError(f"pscc_net: authentic_ratio must be in (0, 1), got {self.authentic_ratio}")

    @property
    def hrnet(self) -> HRNetSpec:
        return HRNetSpec(stem_channels=self.stem_channels, stem_stride=1,
                         layer1_planes=self.layer1_planes, layer1_blocks=self.layer1_blocks,
                         widths=self.widths, blocks=self.blocks, modules=(1, 1, 1))


@METHODS.register("pscc_net")
class PSCCNet(Method):
    """PSCC-Net: HRNet + progressive spatio-channel correlation masks and a detection head."""

    trainable = True
    reference = ("Liu, Liu, Chen, Liu, PSCC-Net: Progressive Spatio-Channel Correlation Network "
                 "for Image Manipulation Detection and Localization, IEEE TCSVT 2022 "
                 "(github.com/proteus1991/PSCC-Net)")
    # Evaluation: native size, RGB in [0, 1], no normalisation (official utils/load_vdata.py);
    # predict returns the map at the input size already (bilinear, align_corners=True from the
    # grid), so the runner's output kernel only matters if it ever resamples it again.
    # ``kernel`` is used by training only (native evaluation never resizes): the official
    # loader resizes training images to 256² with PIL bicubic (utils/load_tdata.py).
    input_policy = InputPolicy("native", kernel="pil_bicubic", output_kernel="bilinear_ac")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        cfg = self.config = build_config("pscc_net", PSCCNetConfig, kwargs)
        self.backbone = HRNet(cfg.hrnet)
        self.backbone.init_official()
        self.localizer = ProgressiveMaskHead(cfg.widths, cfg.grid, cfg.mask_hidden)
        self.detector = DetectionHead(cfg.widths, cfg.grid, cfg.head_width, cfg.head_hidden)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """The same code path with few channels and a 32² grid (the registry tests)."""
        return {"stem_channels": 8, "layer1_planes": 4, "layer1_blocks": 1,
                "widths": (4, 8, 12, 16), "blocks": 1, "grid": 32, "mask_hidden": 4,
                "head_width": 16, "head_hidden": 8}

    # -- forward --------------------------------------------------------------------------
    def forward_all(self, images: Tensor) -> tuple[list[Tensor], Tensor]:
        """``images [B,3,H,W]`` in [0,1] → (``[mask1..mask4]`` probabilities at ``grid/2^k``,
        detection logits ``[B, 2]``)."""
        features = self.backbone(images)
        return self.localizer(features), self.detector(features)

    @torch.no_grad()
    def predict(self, images: Tensor, masks: Tensor | None = None) -> Prediction:
        """``mask_prob [B,1,H,W]``: mask1 (``grid``²) brought to the input size with bilinear,
        align_corners=True (official ``test.py:77-78``); ``image_score [B]``: softmax[:, 1] of
        the detection logits (``test.py:82-84``).

        At an input of exactly ``grid``² both resamplings (features to the grid, map back) are
        the identity, bit for bit; at any other size the backbone features are resampled to the
        grid (bilinear, align_corners=True, no antialiasing, as the official heads do) and the
        map comes back from ``grid``² to H×W the same way."""
        maps, logits = self.forward_all(images)
        prob = F.interpolate(maps[0], size=images.shape[-2:], mode="bilinear", align_corners=True)
        return Prediction(prob.clamp_(0, 1), torch.softmax(logits.float(), dim=1)[:, 1])

    # -- training ---------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Official train.py: four balanced mask BCEs + the weighted detection CE, summed."""
        maps, logits = self.forward_all(batch["image"])
        targets = mask_pyramid(batch["mask"], [tuple(m.shape[-2:]) for m in maps])
        terms = {f"mask{k}": balanced_bce(m, t) for k, (m, t) in enumerate(zip(maps, targets), 1)}
        terms["detection"] = detection_ce(logits, batch["label"], self.config.authentic_ratio)
        return {"loss": sum(terms.values()), **terms}

    # -- the released files -----------------------------------------------------------------
    @classmethod
    def read_official_checkpoint(cls, path: Path, *, trust: bool = False) -> dict[str, Tensor]:
        """The authors' folder (three ``.pth`` files, see :mod:`.keymap`) → our state_dict."""
        return from_official(lambda p: read_state_dict(p, trust=trust), find_official_files(path))
