"""mmsegmentation models as imlbench methods, built through mmseg's own registry.

``segformer_b0`` and ``mmseg_deeplabv3plus_r50`` use model configs written below as data
(transcribed from mmseg 1.2.2's ``configs/_base_/models/*.py``), so they do not depend on
mmseg shipping its config files. ``mmseg`` builds any other model from a config by name: the
stem of a file under ``mmseg/.mim/configs`` (which the mmseg wheel ships), or a path.

Every config is adapted the same way (:func:`adapt_model_config`):

* ``SyncBN`` → ``BN``: training here is single-process; SyncBN needs torch.distributed.
* no downloads: ``pretrained`` and ``init_cfg`` of type ``Pretrained`` are removed; a local
  backbone checkpoint can be given as ``pretrained_path``.
* one-class heads: mmseg's binary convention (``num_classes=2, out_channels=1``); the
  tampered probability is ``sigmoid(logit)``. The loss is binary cross-entropy on logits
  upsampled to the mask size, plus each auxiliary head's BCE weighted by its config
  ``loss_weight`` — computed here, so the loop needs no mmseg ``SegDataSample`` structures.
* the ``data_preprocessor`` is dropped: the method normalises [0, 1] RGB with the ImageNet
  mean/std, the same as mmseg's 0-255 mean/std after ``bgr_to_rgb``.

mmseg (and mmcv-lite, see :mod:`imlbench._mmcv_compat`) is imported only when a model is built.

Attribution and licence: the two model configs below are transcribed from mmsegmentation 1.2.2
(github.com/open-mmlab/mmsegmentation, ``configs/_base_/models/segformer_mit-b0.py`` and
``deeplabv3plus_r50-d8.py``; Apache License 2.0, Copyright 2020 The MMSegmentation Authors),
with the changes listed above; the networks themselves are mmseg's, built through its registry
(SegFormer: Xie et al., NeurIPS 2021; DeepLabV3+: Chen et al., ECCV 2018). The adapter code
here is ours. See ``NOTICE``.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from imlbench._mmcv_compat import import_mmseg
from imlbench.weights import load_pretrained
from imlbench.errors import ConfigError
from imlbench.methods.base import InputPolicy, Method, Prediction
from imlbench.methods.nets import normalize_imagenet
from imlbench.registry import METHODS

_BN = {"type": "SyncBN", "requires_grad": True}  # mmseg's default; adapt_model_config makes it BN

SEGFORMER_B0: dict[str, Any] = {
    "type": "EncoderDecoder",
    "backbone": {"type": "MixVisionTransformer", "in_channels": 3, "embed_dims": 32,
                 "num_stages": 4, "num_layers": [2, 2, 2, 2], "num_heads": [1, 2, 5, 8],
                 "patch_sizes": [7, 3, 3, 3], "sr_ratios": [8, 4, 2, 1],
                 "out_indices": (0, 1, 2, 3), "mlp_ratio": 4, "qkv_bias": True, "drop_rate": 0.0,
                 "attn_drop_rate": 0.0, "drop_path_rate": 0.1},
    "decode_head": {"type": "SegformerHead", "in_channels": [32, 64, 160, 256],
                    "in_index": [0, 1, 2, 3], "channels": 256, "dropout_ratio": 0.1,
                    "norm_cfg": _BN, "align_corners": False},
    "train_cfg": {}, "test_cfg": {"mode": "whole"},
}

DEEPLABV3PLUS_R50: dict[str, Any] = {
    "type": "EncoderDecoder",
    "backbone": {"type": "ResNetV1c", "depth": 50, "num_stages": 4, "out_indices": (0, 1, 2, 3),
                 "dilations": (1, 1, 2, 4), "strides": (1, 2, 1, 1), "norm_cfg": _BN,
                 "norm_eval": False, "style": "pytorch", "contract_dilation": True},
    "decode_head": {"type": "DepthwiseSeparableASPPHead", "in_channels": 2048, "in_index": 3,
                    "channels": 512, "dilations": (1, 12, 24, 36), "c1_in_channels": 256,
                    "c1_channels": 48, "dropout_ratio": 0.1, "norm_cfg": _BN,
                    "align_corners": False},
    "auxiliary_head": {"type": "FCNHead", "in_channels": 1024, "in_index": 2, "channels": 256,
                       "num_convs": 1, "concat_input": False, "dropout_ratio": 0.1,
                       "norm_cfg": _BN, "align_corners": False,
                       "loss_decode": {"type": "CrossEntropyLoss", "loss_weight": 0.4}},
    "train_cfg": {}, "test_cfg": {"mode": "whole"},
}

_TINY_SEGFORMER = {"backbone": {"embed_dims": 8, "num_layers": [1, 1, 1, 1]},
                   "decode_head": {"in_channels": [8, 16, 40, 64], "channels": 16}}


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in recursively (dicts merge, anything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else copy.deepcopy(value)
    return out


def adapt_model_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Single-process BN, no download pointers, one-class heads, no data preprocessor."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("type") == "SyncBN":
                node = {**node, "type": "BN"}
            if isinstance(node.get("init_cfg"), dict) and node["init_cfg"].get("type") == "Pretrained":
                node = {k: v for k, v in node.items() if k != "init_cfg"}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(walk(v) for v in node)
        return node

    cfg = walk(copy.deepcopy(cfg))
    cfg.pop("data_preprocessor", None)
    cfg["pretrained"] = None
    for key in ("decode_head", "auxiliary_head"):
        heads = cfg.get(key)
        for head in heads if isinstance(heads, list) else [heads] if heads else []:
            weight = head.get("loss_decode", {}).get("loss_weight", 1.0)
            head.update(num_classes=2, out_channels=1, threshold=0.5,
                        loss_decode={"type": "CrossEntropyLoss", "use_sigmoid": True,
                                     "avg_non_ignore": True, "loss_weight": weight})
    return cfg


def shipped_config(name: str | Path) -> dict[str, Any]:
    """The ``model`` dict of an mmseg config: a path, or a config stem shipped with mmseg."""
    import_mmseg()
    import mmseg
    from mmengine import Config

    path = Path(name)
    if not path.is_file():
        root = Path(mmseg.__file__).parent / ".mim" / "configs"
        found = sorted(root.glob(f"**/{name}.py"))
        if not found:
            import difflib

            stems = sorted(p.stem for p in root.glob("**/*.py") if p.parent.name != "_base_")
            close = difflib.get_close_matches(str(name), stems, n=3, cutoff=0.4)
            raise ConfigError(f"no mmseg config named {str(name)!r} under {root}"
                             f"{'; did you mean ' + ', '.join(close) if close else ''}? "
                             "Give a config stem such as 'segformer_mit-b2_8xb2-160k_ade20k-512x512' "
                             "or a path to a config file.")
        path = found[0]
    return Config.fromfile(str(path)).to_dict()["model"]


@contextlib.contextmanager
def _quiet_mmengine():
    """Silence mmengine's INFO log of every parameter's initialisation (hundreds of lines)."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class MMSegModel(Method):
    """An mmseg ``EncoderDecoder`` with a one-class head (sigmoid + BCE)."""

    trainable = True
    model_config: ClassVar[dict[str, Any] | None] = None
    """The model dict of this method (``None``: read from the ``config`` argument)."""

    def __init__(self, input_size: int = 512, overrides: dict[str, Any] | None = None,
                 pretrained_path: str | Path | None = None, config: str | None = None) -> None:
        """``overrides``: merged into the model config (e.g. ``{"decode_head": {"channels":
        128}}``). ``pretrained_path``: local weights for the backbone. ``config``: an mmseg
        config name or path (only for the generic ``mmseg`` method)."""
        super().__init__()
        models = import_mmseg()
        if (config is None) == (self.model_config is None):
            raise ConfigError(f"{type(self).__name__}: give `config` (an mmseg config name) only to "
                             "the generic 'mmseg' method, and always to it")
        base = self.model_config if config is None else shipped_config(config)
        self.input_policy = InputPolicy("resize", input_size)
        with warnings.catch_warnings():  # mmseg's heads call their own deprecated build_loss
            warnings.filterwarnings("ignore", message="``build_loss`` would be deprecated")
            self.segmentor = models.build(adapt_model_config(merged(base, overrides or {})))
        if isinstance(getattr(self.segmentor, "decode_head", None), torch.nn.ModuleList) or not hasattr(
                self.segmentor, "extract_feat"):
            raise ValueError(f"{type(self.segmentor).__name__} is not supported: imlbench wraps "
                             "EncoderDecoder models with a single decode head")
        with _quiet_mmengine():
            self.segmentor.init_weights()
        if pretrained_path is not None:
            load_pretrained(self.segmentor.backbone, pretrained_path)

    def _heads(self) -> list[tuple[str, torch.nn.Module]]:
        seg = self.segmentor
        aux = getattr(seg, "auxiliary_head", None)
        aux_heads = list(aux) if isinstance(aux, torch.nn.ModuleList) else [aux] if aux else []
        return [("loss_decode", seg.decode_head)] + [
            (f"loss_aux{i if len(aux_heads) > 1 else ''}", h) for i, h in enumerate(aux_heads)]

    def _logits(self, images: torch.Tensor, heads: list[tuple[str, torch.nn.Module]]
                ) -> dict[str, torch.Tensor]:
        """Logits ``[B, 1, H, W]`` of each head, upsampled to the input size."""
        feats = self.segmentor.extract_feat(normalize_imagenet(images))
        return {name: F.interpolate(head(feats), size=images.shape[-2:], mode="bilinear",
                                    align_corners=head.align_corners)
                for name, head in heads}

    def predict(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> Prediction:
        logits = self._logits(images, self._heads()[:1])["loss_decode"]
        return Prediction(logits.float().sigmoid())

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        heads = self._heads()
        logits = self._logits(batch["image"], heads)
        terms = {name: F.binary_cross_entropy_with_logits(logits[name].float(), batch["mask"])
                 * head.loss_decode.loss_weight for name, head in heads}
        return {"loss": sum(terms.values()), **terms}


@METHODS.register("segformer_b0")
class SegFormerB0(MMSegModel):
    """SegFormer-B0 (MiT-B0 encoder + all-MLP head) from mmsegmentation, one-class head."""

    reference = ("Xie et al., SegFormer: Simple and Efficient Design for Semantic Segmentation "
                 "with Transformers, NeurIPS 2021")
    model_config = SEGFORMER_B0

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {"input_size": 32, "overrides": _TINY_SEGFORMER}


@METHODS.register("mmseg_deeplabv3plus_r50")
class MMSegDeepLabV3PlusR50(MMSegModel):
    """DeepLabV3+ on ResNetV1c-50 (output stride 8) from mmsegmentation, one-class head."""

    reference = ("Chen et al., Encoder-Decoder with Atrous Separable Convolution for Semantic "
                 "Image Segmentation (DeepLabV3+), ECCV 2018; mmsegmentation implementation")
    model_config = DEEPLABV3PLUS_R50

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {"input_size": 32, "overrides": {
            "backbone": {"depth": 18},
            "decode_head": {"in_channels": 512, "c1_in_channels": 64, "channels": 16,
                            "c1_channels": 8},
            "auxiliary_head": {"in_channels": 256, "channels": 8}}}


@METHODS.register("mmseg")
class MMSegFromConfig(MMSegModel):
    """Any mmsegmentation model by config name (``config=...``), one-class head."""

    reference = "MMSegmentation Contributors, OpenMMLab Semantic Segmentation Toolbox, 2020"

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {"config": "segformer_mit-b0_8xb2-160k_ade20k-512x512", "input_size": 32,
                "overrides": _TINY_SEGFORMER}
