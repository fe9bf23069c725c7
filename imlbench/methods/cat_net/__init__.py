"""CAT-Net v2 (``cat_net``): compression artifact tracing, RGB + JPEG-DCT streams.

Paper: Kwon, Nam, Yu, Lee, Kim, "Learning JPEG Compression Artifacts for Image Manipulation
Detection and Localization", IJCV 130(8), 2022 (v2; v1: WACV 2021, same architecture).
Official code: github.com/mjkwon2021/CAT-Net at commit 331b8059c3f5 (code last changed in
April 2022). Licences: code Apache-2.0 (HRNet parts MIT, Microsoft); released weights
(``CAT_full_v2.pth.tar``, ``DCT_only_v2.pth.tar``) CC-BY 4.0.

From the official code (``lib/models/network_CAT.py``, ``network_DCT.py``,
``Splicing/data/AbstractDataset.py``, ``dataset_arbitrary.py``, ``tools/infer.py``,
``lib/core/function.py``, ``experiments/CAT_full.yaml``):

* architecture and state-dict names (2926 entries, 114,263,810 parameters; ``net.`` prefix here);
* input: the Y coefficients and Y table of the JPEG file itself (non-JPEG files re-saved by Pillow
  at q100 4:4:4 and *both* streams reading that re-save), RGB ``(x - 127.5) / 127.5``, padded
  bottom/right to a multiple of 8 with 127.5 (RGB) and 0 (coefficients), DCT volume = one-hot of
  ``min(|c|, 20)``;
* output: softmax class 1 of logits upsampled bilinearly to the 8-padded size (the ``validate``
  rule; ``infer.py`` only draws the 1/4 map as a heatmap), no image score;
* training: weighted CE (0.5, 2.5), SGD 0.005 / 0.9 / 5e-4, poly 0.9, batch 11, 512² crops on
  the 8×8 grid, no flips.

Our choices (config fields of :class:`CatNetConfig` / documented behaviour):

* the widths, blocks and module counts are config fields, so ``tiny_config`` is the same code
  path at a few channels; ``variant=dct_only`` builds DCT_only_v2 (1/8 output);
* the JPEG reader is ``jpeglib`` instead of ``jpegio`` (same coefficients and tables, installs
  from a wheel; :mod:`imlbench.datasets.jpeg_dct`);
* under a perturbation the DCT stream reads the bytes the perturbation produced (``jpeg:q``) or,
  after a pixel-only perturbation, the official q100 re-save of the perturbed pixels;
* padded training pixels are labelled authentic (the official code ignores them, label -1);
* ``predict`` without file inputs treats the pixels as a non-JPEG file (q100 re-save).
"""
from imlbench.methods.cat_net.method import CatNet, convert_official_state_dict
from imlbench.methods.cat_net.model import CATNet, CatNetConfig

__all__ = ["CATNet", "CatNet", "CatNetConfig", "convert_official_state_dict"]
