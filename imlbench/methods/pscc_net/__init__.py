"""PSCC-Net (``pscc_net``); importing this package registers the method.

Paper: X. Liu, Y. Liu, J. Chen, X. Liu, "PSCC-Net: Progressive Spatio-Channel Correlation
Network for Image Manipulation Detection and Localization", IEEE TCSVT 2022 (arXiv:2103.10596).
Official code: github.com/proteus1991/PSCC-Net at commit 53e5ff77d8dc5feddda060cd085f9b765761f816
(code and weights committed together in f8c12718). Licence: MIT (the repository's LICENSE,
"Copyright (c) 2022 Xiaohong Liu"); the released weights are committed in the same repository
under ``checkpoint/`` with no separate licence; its HRNet code is Microsoft's (MIT). This is a
re-implementation, not a copy; it was checked against the official modules numerically.

From the official code (all defaults of :class:`PSCCNetConfig`):

* Network: HRNet-W18-Small-v2 widths with a stride-1 stem and one module per stage
  (:mod:`.hrnet`), the progressive SCCM localisation head and the detection head
  (:mod:`.heads`), both on a fixed 256² grid; BatchNorm momentum 0.01; the backbone's
  N(0, 0.001²) conv init (without the ImageNet file, which was not released with the weights).
* Inference (``utils/load_vdata.py``, ``test.py``): native size, batch 1, RGB ``uint8 / 255``,
  no mean/std, no resize/pad/crop; map = ``mask1`` (a sigmoid probability on the 256² grid)
  brought to H×W with bilinear, align_corners=True; image score = softmax[:, 1] of the
  detection logits (class 1 = forged).
* Losses (``train.py``): :mod:`.losses`. Released files and key mapping: :mod:`.keymap`.

Ours (documented differences):

* RGBA images: imlbench's ``load_image`` drops alpha; the official loader composites over white.
* Training inputs: the official loader resizes every image to 256² with PIL bicubic and
  applies one of 8 dihedral transforms, sampling 25 % of each class; the shared training loop
  resizes with the method's policy kernel, flips horizontally, and samples as the protocol
  says. The mask pyramid is built in the loss from the batch mask (see :mod:`.losses`).
* Schedule: the official step LR (halved every 5 epochs) is approximated in the paper recipe
  (``configs/recipes/paper/pscc_net.yaml`` says how).
"""
from imlbench.methods.pscc_net.hrnet import HRNet, HRNetSpec
from imlbench.methods.pscc_net.keymap import find_official_files, from_official, to_official
from imlbench.methods.pscc_net.model import PSCCNet, PSCCNetConfig

__all__ = ["HRNet", "HRNetSpec", "PSCCNet", "PSCCNetConfig", "find_official_files",
           "from_official", "to_official"]
