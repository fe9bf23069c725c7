"""TruFor (Guillaro, Cozzolino, Sud, Dufour, Verdoliva, "TruFor: Leveraging all-round clues for
trustworthy image forgery detection and localization", CVPR 2023, arXiv 2212.10957) as the
method ``trufor``; importing this package registers it.

Official code: github.com/grip-unina/TruFor at commit ``ae54475df6f41a491d7615100feb19263dec13f7``
(inference: ``test_docker/src``; training: ``TruFor_train_test``).

**Licence.** The official code is under the GRIP-UNINA licence (``LICENSE.txt``): use,
reproduction and modification for informational and nonprofit purposes only, industrial or
profit-oriented use expressly prohibited, notices kept, authors credited when results are made
public (its CMX-derived files are also MIT, which does not lift that restriction). This package
is an **independent implementation** written for imlbench from the paper and from reading the
official code; it copies none of the official files. The released weights (``TruFor_weights.zip``
→ ``trufor.pth.tar``, and ``noiseprint++.th``) are not shipped and keep their own terms: the
official README puts every downloaded file under the same nonprofit-only licence, so results
obtained with them fall under it too.

From the official code (checked numerically against it outside this repository, same weights,
same input: max |diff| <= 4e-6 on the maps, the score and the logits):
the architecture (Noiseprint++ 17-layer DnCNN, dual MiT-B2 with CMX FRM/FFM fusion, two SegFormer
MLP decoders on the same features, detector on weighted pooled statistics), its epsilons (see
:mod:`~imlbench.methods.trufor.mit`, BN eps 1e-3 in the localisation decoder only), the input
(native size, batch 1, uint8 / 256, ImageNet normalisation of the RGB stream only), the outputs
(softmax channel 1, ``sigmoid(conf)``, ``sigmoid(det)``, maps resized to the image in the
forward) and the losses (:mod:`~imlbench.methods.trufor.losses`).

Our choices (each a :class:`~imlbench.methods.trufor.model.TruForConfig` field or documented):
``conf_bn_eps`` 1e-5 as ``test_docker`` (the training code used 1e-3); the two trainable phases
as imlbench stages ``"2"`` and ``"3"`` (``phases``); phase 1 (Noiseprint++ training) is not
released and not reproduced. Training runs in imlbench's shared loop, so images are resized to
the recipe size (the official loop takes random 512² crops, pads with 127.5 and ignores padded
pixels) and no class-balanced sampling unless the protocol asks for it. Drop-path rates rise
linearly over all blocks in both streams (the official CMX encoder gives every block of stage 2
the same rate, a different one per stream); training only. An image under 29 px per side is an
error (the official script skips it silently).

Loading: ``imlbench run --method trufor --checkpoint trufor.pth.tar --trust-checkpoint``. The
released container holds a numpy scalar (``best_value``), so ``torch.load(weights_only=True)``
refuses it and imlbench says to pass ``--trust-checkpoint``; only its ``state_dict`` is used, all
952 entries, mapped by :mod:`~imlbench.methods.trufor.keymap` and loaded strictly. A bare official
state_dict and ``noiseprint++.th`` (option ``noiseprint_weights``) load with ``weights_only``.
"""
from imlbench.methods.trufor.keymap import official_to_ours, ours_to_official, read_official
from imlbench.methods.trufor.model import TruFor, TruForConfig

__all__ = ["TruFor", "TruForConfig", "official_to_ours", "ours_to_official", "read_official"]
