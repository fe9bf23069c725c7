"""``mvss_net``: MVSS-Net as an imlbench method (inference as the official code, paper loss).

Inference (official ``inference.py`` + ``common/tools.py``): the runner resizes the uint8 image
to 512² with ``cv2.resize`` INTER_LINEAR (aspect not kept); ``predict`` flips RGB to BGR,
normalises with the ImageNet mean/std applied to B, G, R *as they come* (the official
``direct_val`` on a ``cv2.imread`` image), runs the network and takes the sigmoid of the
segmentation logits. The official post-processing stores the map as 8-bit PNG
(``floor(255·p)``, ``ToPILImage``) and resizes it back with ``cv2.resize`` INTER_LINEAR; the
published numbers are computed from those PNGs (``evaluate.py``), image score = max of the
stored map at the original size. Both are reproduced by default (``quantize_8bit``,
``image_score="stored_map"``); see :class:`MVSSNetConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from imlbench.errors import CheckpointError, ConfigError
from imlbench.methods.base import InputPolicy, Method, Prediction, build_config
from imlbench.methods.mvss_net.keymap import official_to_ours, unwrap_released
from imlbench.methods.mvss_net.losses import LossSettings, mvss_losses
from imlbench.methods.mvss_net.network import MVSSNetwork
from imlbench.methods.mvss_net.resnet import ResNetSpec, load_torchvision_resnet
from imlbench.registry import METHODS
from imlbench.weights import read_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class MVSSNetConfig:
    """Switches of ``mvss_net`` (all ``METHODS.build("mvss_net", **kwargs)`` keywords). The
    defaults are the official architecture and inference; the loss fields are our
    reconstruction of the paper (no training code was released).

    Architecture: ``backbone_blocks`` (3, 4, 6, 3), ``backbone_width`` 64 and
    ``layer4_dilations`` (1, 2, 4) give the official dilated ResNet-50 (both views);
    ``pretrained_path``: a local torchvision ImageNet ResNet-50 ``.pth`` that initialises both
    backbones, as the official constructor does (there by download); ``None`` = random init.

    Inference: ``input_size`` 512 (``inference.py --resize``); ``channel_order`` ``"bgr"`` (the
    official input; ``"rgb"`` feeds the channels unflipped, as IMDL-BenCo's re-training does);
    ``quantize_8bit`` (default on): the map is ``floor(255·p)/255`` as the official PNGs are,
    because every published number was computed from those PNGs (the runner then resizes it
    back with cv2 INTER_LINEAR on uint8 like ``inference.py:87``: output kernel
    ``cv2_linear_u8``); off gives the float sigmoid, resized back in float32. ``image_score``: ``"stored_map"`` (default) =
    max of the map at the original size (``evaluate.py:44``, the published image-level AUC);
    ``"network_map"`` = max of the float 512² sigmoid map (``tools.py:28-31``, computed and
    discarded by the official inference).

    Loss (paper Sec. 3.3; ours where the paper is silent): ``seg_weight`` α = 0.16 and
    ``clf_weight`` β = 0.04 (edge weight 1 − α − β; paper); ``dice_smooth`` 0 (the paper's
    Dice has none; IMDL-BenCo uses 1); ``edge_width`` 7: width in input pixels of the boundary
    band the edge target is made of (ours: the official CASIAv2 edge masks came from
    ``cv2.findContours``, issue #13, drawn at an unstated width; 7 is IMDL-BenCo's default);
    ``authentic_pixel_losses`` False: authentic images get only the classification loss (the
    author, issue #9); ``clf_double_sigmoid`` False: BCE on the GMP probability (paper); True
    repeats the reproductions' BCE-with-logits on that probability.
    """

    backbone_blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    backbone_width: int = 64
    layer4_dilations: tuple[int, ...] = (1, 2, 4)
    pretrained_path: str | None = None
    input_size: int = 512
    channel_order: Literal["bgr", "rgb"] = "bgr"
    quantize_8bit: bool = True
    image_score: Literal["stored_map", "network_map"] = "stored_map"
    seg_weight: float = 0.16
    clf_weight: float = 0.04
    dice_smooth: float = 0.0
    edge_width: int = 7
    authentic_pixel_losses: bool = False
    clf_double_sigmoid: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "backbone_blocks", tuple(self.backbone_blocks))
        object.__setattr__(self, "layer4_dilations", tuple(self.layer4_dilations))
        _choice("channel_order", self.channel_order, ("bgr", "rgb"))
        _choice("image_score", self.image_score, ("stored_map", "network_map"))
        if self.input_size < 16 or self.input_size % 16:
            raise ConfigError(f"mvss_net: input_size must be a positive multiple of 16 (stride "
                             f"16 features), got {self.input_size}")
        if min(self.seg_weight, self.clf_weight) < 0 or self.seg_weight + self.clf_weight > 1:
            raise ConfigError(f"mvss_net: seg_weight and clf_weight must be >= 0 with a sum <= 1 "
                              f"(the edge weight is 1 - their sum), got {self.seg_weight}, "
                              f"{self.clf_weight}")
        if self.edge_width < 1 or self.edge_width % 2 == 0:
            raise ConfigError(f"mvss_net: edge_width must be a positive odd number of pixels, "
                             f"got {self.edge_width}")
        if self.dice_smooth < 0:
            raise ConfigError(f"mvss_net: dice_smooth must be >= 0, got {self.dice_smooth}")
        if self.pretrained_path is not None and not Path(self.pretrained_path).is_file():
            raise ConfigError(f"mvss_net: pretrained_path {self.pretrained_path!r} is not a file; "
                             "give a local torchvision resnet50 .pth or leave it unset")
        ResNetSpec(self.backbone_blocks, self.backbone_width, self.layer4_dilations)  # validates

    @property
    def spec(self) -> ResNetSpec:
        return ResNetSpec(self.backbone_blocks, self.backbone_width, self.layer4_dilations)

    @property
    def loss_settings(self) -> LossSettings:
        return LossSettings(self.seg_weight, self.clf_weight, self.dice_smooth, self.edge_width,
                            self.authentic_pixel_losses, self.clf_double_sigmoid)


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"mvss_net: {name} must be one of {choices}, got {value!r}")


@METHODS.register("mvss_net")
class MVSSNet(Method):
    """MVSS-Net (ICCV 2021): edge-supervised RGB view + Bayar noise view, dual attention."""

    trainable = True
    reference = ("Chen et al., Image Manipulation Detection by Multi-View Multi-Scale "
                 "Supervision, ICCV 2021 (github.com/dong03/MVSS-Net)")
    input_policy = InputPolicy("resize", 512, kernel="cv2_linear", output_kernel="cv2_linear")

    def __init__(self, **kwargs: Any):
        super().__init__()
        cfg = self.config = build_config("mvss_net", MVSSNetConfig, kwargs)
        self.input_policy = InputPolicy(  # type: ignore[misc]  (per instance: follows input_size)
            "resize", cfg.input_size, kernel="cv2_linear",
            # the official 8-bit map is resized back as uint8 (inference.py:87)
            output_kernel="cv2_linear_u8" if cfg.quantize_8bit else "cv2_linear")
        self.net = MVSSNetwork(cfg.spec)
        if cfg.pretrained_path is not None:
            for backbone in (self.net.rgb_backbone, self.net.noise_backbone):
                load_torchvision_resnet(backbone, cfg.pretrained_path)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """The same code path with a 1-1-1-2-block, width-8 backbone at 64² (tests, quick)."""
        return {"backbone_blocks": (1, 1, 1, 2), "backbone_width": 8, "layer4_dilations": (1, 2),
                "input_size": 64}

    # -- inference ------------------------------------------------------------------------
    def normalize(self, images: Tensor) -> Tensor:
        """RGB ``[B,3,H,W]`` in [0,1] -> the official network input: BGR (unless
        ``channel_order="rgb"``), then ``(x − mean) / std`` with the ImageNet statistics in
        their listed order, i.e. channel 0 (blue) uses 0.485 / 0.229 as in ``direct_val``."""
        if self.config.channel_order == "bgr":
            images = images.flip(1)
        return (images - self.mean) / self.std

    def outputs(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``images`` RGB in [0,1] -> ``(edge_logits [B,1,H/4,W/4], seg_logits [B,1,H,W])``."""
        return self.net(self.normalize(images))

    @torch.no_grad()
    def predict(self, images: Tensor, masks: Tensor | None = None) -> Prediction:
        """``mask_prob`` ``[B,1,H,W]``: sigmoid of the segmentation logits (8-bit by default);
        ``image_score`` ``[B]`` only with ``image_score="network_map"``; the edge map's
        sigmoid as ``extra_maps["edge"]``, upsampled to the input size for export."""
        edge_logits, seg_logits = self.outputs(images)
        prob = torch.sigmoid(seg_logits.float())
        score = prob.flatten(1).amax(1) if self.config.image_score == "network_map" else None
        if self.config.quantize_8bit:
            prob = torch.floor(prob * 255) / 255  # ToPILImage's pic.mul(255).byte()
        edge = torch.nn.functional.interpolate(torch.sigmoid(edge_logits.float()),
                                               size=prob.shape[-2:], mode="bilinear",
                                               align_corners=False)
        return Prediction(prob, score, extra_maps={"edge": edge.clamp(0, 1)})

    # -- training -------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        edge_logits, seg_logits = self.outputs(batch["image"])
        return mvss_losses(seg_logits, edge_logits, batch["mask"], batch["label"],
                           self.config.loss_settings)

    # -- released checkpoints -------------------------------------------------------------
    @classmethod
    def read_official_checkpoint(cls, path: Path, *, trust: bool = False) -> dict[str, Tensor]:
        """``mvssnet_casia.pt`` / ``mvssnet_defacto.pt`` as released (a bare state_dict of
        plain tensors: loads with ``weights_only=True``) -> our names (see ``keymap``)."""
        path = Path(path)
        if path.is_dir():
            raise CheckpointError(f"{path} is a folder; the released MVSS-Net checkpoint is one .pt "
                             "file (mvssnet_casia.pt or mvssnet_defacto.pt)")
        return official_to_ours(unwrap_released(read_state_dict(path, trust=trust), str(path)))
