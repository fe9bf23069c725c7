"""The ``cat_net`` method: CAT-Net's network behind the imlbench Method contract.

``predict(images, extras)``: ``images`` ``float [B, 3, H, W]`` in [0, 1] are the decoded pixels
of the JPEG whose Y coefficients and table arrive in ``extras`` (``jpeg_dct.coef`` ``int16
[B, 8*ceil(H/8), 8*ceil(W/8)]``, ``jpeg_dct.qtable`` ``float [B, 8, 8]``; the runner computes
them from the file, see :mod:`imlbench.datasets.jpeg_dct`). Without ``extras`` the pixels are
treated as a non-JPEG file is by the official code: re-encoded at quality 100, 4:4:4, and both
streams see that re-encode.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from imlbench.datasets.jpeg_dct import JPEG_DCT, file_inputs
from imlbench.methods.base import InputPolicy, Method, Prediction, build_config
from imlbench.methods.cat_net.model import CATNet, CatNetConfig, dct_volume
from imlbench.registry import METHODS

COEF, QTABLE = f"{JPEG_DCT}.coef", f"{JPEG_DCT}.qtable"
CLASS_WEIGHTS = (0.5, 2.5)
"""Cross-entropy weights (authentic, tampered) of the official training (lib/core/criterion.py,
``class_weights`` of the datasets)."""
PREFIX = "net."
"""Our state dict is the official one under ``net.`` (the official names are reproduced)."""


@METHODS.register("cat_net")
class CatNet(Method):
    """CAT-Net v2: HRNet RGB stream + DCT stream read from the JPEG file itself (IJCV 2022)."""

    trainable = True
    reference = ("Kwon et al., Learning JPEG Compression Artifacts for Image Manipulation "
                 "Detection and Localization, IJCV 2022 (github.com/mjkwon2021/CAT-Net)")
    # Native size, batch 1: the network pads to a multiple of 8 itself, with the official grey
    # (127.5, i.e. 0 after normalisation) that the runner's zero padding cannot give.
    input_policy = InputPolicy("native")
    file_inputs: ClassVar[tuple[str, ...]] = (JPEG_DCT,)
    """Computed from the file by the runner and the training stream, passed as ``extras``."""
    config_class = CatNetConfig

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.config = build_config("cat_net", CatNetConfig, kwargs)
        self.net = CATNet(self.config)
        self.register_buffer("class_weights", torch.tensor(CLASS_WEIGHTS), persistent=False)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """The same code path (four RGB branches, three DCT branches, stage 5) at a few channels."""
        return {"blocks": 1, "stem_width": 8, "stage1_planes": 4, "rgb_widths": (4, 8, 8, 16),
                "rgb_modules": (1, 1, 1), "dc_stem_width": 8, "dc_tail": 2,
                "dc_widths": (8, 8, 16), "dc_modules": (1, 1), "fusion_widths": (4, 4, 8, 8)}

    # -- inputs ------------------------------------------------------------------------------
    def network_inputs(self, images: Tensor, extras: dict[str, Tensor] | None
                       ) -> tuple[Tensor, Tensor, Tensor]:
        """``images`` [B,3,H,W] in [0,1] + extras -> (rgb, DCT volume, table) padded to (H8, W8)."""
        if extras is None:
            images, extras = self.pixels_as_file(images)
        coef, qtable = extras[COEF], extras[QTABLE]
        h, w = images.shape[-2:]
        h8, w8 = -(-h // 8) * 8, -(-w // 8) * 8
        if tuple(coef.shape[-2:]) != (h8, w8) or coef.shape[0] != images.shape[0]:
            raise ValueError(f"cat_net: DCT coefficients {tuple(coef.shape)} do not belong to images "
                             f"{tuple(images.shape)} (expected [B, {h8}, {w8}]); the pixels must be "
                             "the decoding of the JPEG the coefficients come from, at its own size")
        rgb = F.pad(images.float() * 2 - 1, (0, w8 - w, 0, h8 - h))  # (x - 127.5) / 127.5, pad 0
        return rgb, dct_volume(coef), qtable.float().reshape(-1, 8, 8)

    @staticmethod
    def pixels_as_file(images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Pixels with no file behind them: the official re-save (q100, 4:4:4) of each image,
        its decoding and its coefficients."""
        decoded, arrays = [], []
        for image in images:
            pixels = (image.detach().float().clamp(0, 1) * 255).round().byte()
            pixels = pixels.permute(1, 2, 0).cpu().numpy()
            pixels, extras = file_inputs((JPEG_DCT,), pixels, None)
            decoded.append(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
            arrays.append(extras)
        device = images.device
        stacked = {k: torch.from_numpy(np.stack([a[k] for a in arrays])).to(device) for k in arrays[0]}
        return torch.stack(decoded).to(device, images.dtype), stacked

    def logits(self, images: Tensor, extras: dict[str, Tensor] | None = None) -> Tensor:
        """2-class logits at 1/4 (``full``) or 1/8 (``dct_only``) of the 8-padded input."""
        rgb, volume, qtable = self.network_inputs(images, extras)
        return self.net(rgb if self.config.variant == "full" else None, volume, qtable)

    # -- the contract ------------------------------------------------------------------------
    def predict(self, images: Tensor, masks: Tensor | None = None,
                extras: dict[str, Tensor] | None = None) -> Prediction:
        """The official full-size rule (lib/core/function.py ``validate``): logits bilinearly
        upsampled to the 8-padded size, softmax, class 1, padding cropped. No image score
        (the official code has none; the runner's max-of-map rule applies)."""
        h, w = images.shape[-2:]
        logits = self.logits(images, extras).float()
        h8, w8 = -(-h // 8) * 8, -(-w // 8) * 8
        logits = F.interpolate(logits, size=(h8, w8), mode="bilinear", align_corners=False)
        return Prediction(logits.softmax(1)[:, 1:, :h, :w])

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted cross-entropy (0.5 authentic, 2.5 tampered) on logits upsampled bilinearly to
        the mask size (tools/train.py, lib/core/criterion.py)."""
        extras = {k: batch[k] for k in (COEF, QTABLE)} if COEF in batch else None
        logits = self.logits(batch["image"], extras).float()
        target = batch["mask"][:, 0]
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, target.round().long(), weight=self.class_weights)
        return {"loss": loss}

    def example_inputs(self, images: Tensor) -> dict[str, Any]:
        """Keyword inputs of ``predict`` for ``images`` [B,3,H,W] (complexity counts): the
        JPEG-domain input of the pixels as the official code builds it for a non-JPEG file."""
        return {"extras": self.pixels_as_file(images)[1]}

    # -- official checkpoints ----------------------------------------------------------------
    @classmethod
    def read_official_checkpoint(cls, path: Path, *, trust: bool = False) -> dict[str, Tensor]:
        """``CAT_full_v2.pth.tar`` / ``DCT_only_v2.pth.tar`` as tools/train.py writes them:
        ``{'epoch', 'best_p_mIoU' (a numpy.float64: needs --trust-checkpoint), 'state_dict',
        'optimizer'}``; only ``state_dict`` is used (as infer.py), names prefixed with ``net.``.
        A bare state dict (or one with a DataParallel ``module.`` prefix) is accepted too."""
        from imlbench.weights import read_state_dict

        if Path(path).is_dir():
            raise ValueError(f"{path} is a folder; cat_net loads one file, e.g. CAT_full_v2.pth.tar")
        state = read_state_dict(path, trust=trust)
        return convert_official_state_dict(state.get("state_dict", state))


def convert_official_state_dict(state: dict[str, Any]) -> dict[str, Tensor]:
    """Official ``CAT_Net``/``DCT_Stream`` names -> ours (``net.`` + the same name)."""
    out = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"official CAT-Net state_dict entry {key!r} is a "
                             f"{type(value).__name__}, expected a tensor")
        key = key[len("module."):] if key.startswith("module.") else key
        out[PREFIX + key] = value
    return out
