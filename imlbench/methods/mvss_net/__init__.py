"""MVSS-Net (``mvss_net``): multi-view multi-scale supervised manipulation detection.

Paper: X. Chen, C. Dong, J. Ji, J. Cao, X. Li, *Image Manipulation Detection by Multi-View
Multi-Scale Supervision*, ICCV 2021 (arXiv 2104.06832); journal version (TPAMI 2022) with
MVSS-Net++, which has no released code and is not implemented here.

Official code: github.com/dong03/MVSS-Net at ``cc2aed77a823723015f95e4a6a3e344f3ddb7ccc``
(model and inference unchanged since release commit 18214be, 2021-08-20). The repository has
no licence file, so neither the code nor the released weights come with a licence grant;
this package is our own implementation, checked numerically against that code, and the
weights are the user's to obtain (README: Google Drive / Baidu links; ``mvssnet_casia.pt``,
``mvssnet_defacto.pt``) under whatever terms the authors set.

From the official code (reproduced exactly, see the modules): the dilated ResNet-50 with
layer4 multi-grid dilations 1, 2, 4 (``resnet``), Sobel gates and ERBs of the edge branch,
the grey conversion and per-forward Bayar normalisation of the noise view, the dual-attention
head (``layers``, ``network``), the BGR input with ImageNet statistics applied to B, G, R as
they come, cv2 INTER_LINEAR resizing to 512², sigmoid of the segmentation logits, the 8-bit
stored map resized back with cv2 INTER_LINEAR and scored by its max (``model``), and the
released container and names (``keymap``).

From the paper (no training code exists): the loss ``0.16·Dice_seg + 0.04·BCE(GMP) +
0.8·Dice_edge``, Adam at 1e-4 on 512² images (``losses``, ``configs/recipes/paper``).

Ours (each a documented field of :class:`MVSSNetConfig`): the edge ground truth from the mask
(``edge_width``), per-image Dice averaging, authentic images in the classification term only
(``authentic_pixel_losses``, after the author's issue #9 reply), the Dice smoothing
(``dice_smooth``), and the schedule and step counts of the recipes.
"""
from imlbench.methods.mvss_net.keymap import map_key, official_to_ours, ours_to_official
from imlbench.methods.mvss_net.model import MVSSNet, MVSSNetConfig

__all__ = ["MVSSNet", "MVSSNetConfig", "map_key", "official_to_ours", "ours_to_official"]
