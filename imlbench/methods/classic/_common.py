"""Shared plumbing of the training-free forensic baselines.

Each algorithm computes a per-pixel *feature* (error level, noise level, grid abnormality)
whose scale depends on the image. :func:`anomaly_probability` turns it into a probability
map in the same way for all of them, so that ``prob > 0.5`` and the max-of-map image score
mean the same thing across algorithms:

* robust z-score per image: ``z = (f - median(f)) / max(1.4826 * MAD(f), min_scale)``
  (the median and MAD are computed over the image's own pixels, so the reference level is
  the image's majority, which is assumed authentic);
* probability ``sigmoid(z - Z_HALF)``: 0.5 at ``Z_HALF = 3`` robust standard deviations,
  0.047 at the median level, 0.95 at 6 robust standard deviations.

``min_scale`` (in the feature's units) stops a nearly constant feature (flat image) from
turning rounding noise into huge z-scores. The map is deterministic and always finite.
"""
from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch

from imlbench.methods.base import InputPolicy, Method, Prediction

Z_HALF = 3.0
"""Robust z-score mapped to probability 0.5."""

MAD_TO_STD = 1.4826
"""MAD of a Gaussian times this is its standard deviation."""

NO_EVIDENCE = 1.0 / (1.0 + math.exp(Z_HALF))
"""Probability of a pixel at the image's median level (z = 0); also the constant map returned
for images too small to analyse, i.e. a tiny image reads as a perfectly consistent one."""


def images_to_uint8(images: torch.Tensor) -> np.ndarray:
    """``float [B, 3, H, W]`` in [0, 1] (``uint8 / 255``) → ``uint8 [B, H, W, 3]`` exactly.

    The algorithms analyse 8-bit quantisation traces, so values outside [0, 1] (a caller that
    normalised the image already) are an error rather than something to clip.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images float [B, 3, H, W], got shape {tuple(images.shape)}")
    if images.dtype not in (torch.float32, torch.float64):  # half precision cannot hold k/255
        raise ValueError(f"expected float32 images (uint8 / 255), got {images.dtype}; "
                         "convert before predict, not under autocast")
    x = images.detach().to("cpu", torch.float32)
    low, high = (float(v) for v in torch.aminmax(x))
    if not (low >= 0.0 and high <= 1.0):  # also false for NaN
        raise ValueError(f"expected RGB values uint8/255 in [0, 1], got range [{low:.4g}, "
                         f"{high:.4g}]; pass un-normalised images")
    # float32 k/255 * 255 is within 1e-4 of k, so rounding recovers the byte exactly
    return torch.round(x * 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def luminance(rgb: np.ndarray) -> np.ndarray:
    """``uint8 [H, W, 3]`` → ``float64 [H, W]`` JFIF luma ``Y = .299 R + .587 G + .114 B``.

    This is the channel JPEG quantises most finely; it is left unrounded (unlike a JPEG
    encoder) so that noise estimates are not limited to a lattice of 8-bit steps.
    """
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def anomaly_probability(feature: np.ndarray, *, min_scale: float, two_sided: bool = False,
                        informative: np.ndarray | None = None) -> np.ndarray:
    """``float [H, W]`` feature → ``float32 [H, W]`` probability in [0, 1] (module docstring).

    ``two_sided``: deviations below the median are as suspicious as deviations above it.
    ``informative``: ``bool [H, W]``, where the feature was measurable; only those values set
    the reference level, and the others get :data:`NO_EVIDENCE` (all of them if none is).
    """
    if informative is None:
        informative = np.ones(feature.shape, dtype=bool)
    if not informative.any():
        return np.full(feature.shape, NO_EVIDENCE, dtype=np.float32)
    reference = feature[informative]
    median = float(np.median(reference))
    scale = max(MAD_TO_STD * float(np.median(np.abs(reference - median))), min_scale)
    z = np.where(informative, (feature - median) / scale, 0.0)
    if two_sided:
        z = np.abs(z)
    # sigmoid written with tanh: finite for any z, unlike 1 / (1 + exp(-x)) for large |x|
    prob = 0.5 * (1.0 + np.tanh(0.5 * (z - Z_HALF)))
    return np.clip(prob, 0.0, 1.0).astype(np.float32)


def box_mean(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size × size`` window centred on each pixel (mirrored borders), float64."""
    import cv2  # deferred: importing the method registry must not pay for OpenCV

    return cv2.blur(np.ascontiguousarray(x, dtype=np.float64), (size, size),
                    borderType=cv2.BORDER_REFLECT_101)


def cells_to_pixels(cells: np.ndarray, cell: int, offset: tuple[int, int],
                    shape: tuple[int, int]) -> np.ndarray:
    """Paint a grid of per-cell values back onto pixels.

    ``cells [m, n]``: value of the ``cell × cell`` pixel square whose top-left corner is
    ``offset + cell * (i, j)``. Pixels outside the painted squares (borders, partial cells)
    take the nearest cell's value. Returns ``[H, W] = shape`` with the dtype of ``cells``.
    """
    height, width = shape
    oy, ox = offset
    up = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)[:height - oy, :width - ox]
    return np.pad(up, ((oy, height - oy - up.shape[0]), (ox, width - ox - up.shape[1])),
                  mode="edge")


class ClassicForensicMethod(Method):
    """Base of the training-free localizers: one image at a time, at its native size.

    Subclasses implement :meth:`heatmap` and set ``min_side``, the smallest height/width
    for which their statistics are defined; smaller images get the constant
    :data:`NO_EVIDENCE` map. ``image_score`` is ``None`` (the runner uses the max of the map).
    """

    input_policy: ClassVar[InputPolicy] = InputPolicy("native")
    trainable: ClassVar[bool] = False
    min_side: int = 1

    def heatmap(self, rgb: np.ndarray) -> np.ndarray:
        """``uint8 [H, W, 3]`` (``H, W >= min_side``) → ``float32 [H, W]`` in [0, 1]."""
        raise NotImplementedError(f"{type(self).__name__} must implement heatmap()")

    def predict(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> Prediction:
        maps = []
        for rgb in images_to_uint8(images):
            if min(rgb.shape[:2]) < self.min_side:
                maps.append(np.full(rgb.shape[:2], NO_EVIDENCE, dtype=np.float32))
            else:
                maps.append(self.heatmap(rgb))
        mask_prob = torch.from_numpy(np.stack(maps)[:, None]).to(images.device)
        return Prediction(mask_prob=mask_prob, image_score=None)

