"""IML-ViT; importing this package registers ``iml_vit``.

Paper: Ma, Du, Jiang, Du, Al Hammadi, Zhou, *IML-ViT: Benchmarking Image Manipulation
Localization by Vision Transformer*, arXiv:2307.14863 (2023). Official code:
github.com/SunnyHaze/IML-ViT at commit 07dd2be0f4ea27a5c97c9fa5ffbe236733833eac (MIT licence,
(c) 2023 Xiaochen Ma). Released weights (README's Drive folder, trained on CASIAv2 or the
CAT-Net protocol): no licence is stated beside them; they are fine-tuned from MAE ViT-B, whose
code and weights are CC BY-NC 4.0 (facebookresearch/mae LICENSE), so treat them as
non-commercial. Our code is written anew; with the same random weights it gives the official
code's logits bit for bit (1024 canvas, CPU float32), checked outside this repository.

From the official code (the default config reproduces it; ``imlbench run --method iml_vit
--checkpoint iml-vit_checkpoint.pth`` needs no ``--config``):

* architecture: :mod:`~imlbench.methods.iml_vit.vit` (windowed ViT-B/16, global blocks 2, 5, 8,
  11, decomposed relative positions, the bicubic position-embedding resize on every forward,
  window padding 64 -> 70) and :mod:`~imlbench.methods.iml_vit.decoder` (simple feature
  pyramid with the channel LayerNorm, p6 by subsampling, fused 1x1 head with BatchNorm);
* inference (Demo.ipynb): black padding bottom/right to the 1024² canvas in pixel space, then
  ImageNet normalisation; no resizing; sigmoid of the logits upsampled to the canvas, cropped to
  the image. No image-level score: imlbench's documented rule (max of the map) applies;
* loss: BCE + 20 x edge-weighted BCE over the padded canvas (:mod:`.losses`); initialisation
  (xavier Linear layers, MAE encoder through ``pretrained_path``);
* checkpoints: the bare state_dict (or ``{"model": ...}``), renamed by :mod:`.keymap` and
  loaded strictly.

Our choices (each a field of :class:`IMLViTConfig` or documented where it acts):

* ``oversize`` (default "resize"; official behaviour "crop") for images larger than the canvas;
* the normalisation is ``(x/255 - mean)/std`` in float32 rather than albumentations'
  ``(x - 255 mean) * (1/(255 std))`` (differences <= 4.8e-7);
* ``predict`` runs one image per forward to bound memory (the result does not depend on it);
* training batches that already have the canvas size get the edge band of the padded mask
  (see ``IMLViT.loss``); the official dataset computes it before padding.
"""
from imlbench.methods.iml_vit.model import IMLViT, IMLViTConfig

__all__ = ["IMLViT", "IMLViTConfig"]
