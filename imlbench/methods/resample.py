"""Resampling kernels and the input-policy shaping that uses them.

Official inference scripts disagree on how they resize: most call ``cv2.resize`` with
``INTER_LINEAR`` on the **uint8** image (no antialiasing, fixed-point rounding), some go through
PIL, some through torch. A re-implementation that resizes differently is a different model at
the pixel level, so the kernel is part of a method's :class:`~imlbench.methods.base.InputPolicy`
(``kernel`` for the input, ``output_kernel`` for bringing the map back to the ground truth), and
every resize of the evaluation runner and of the training stream goes through this module.

Kernels by name (``KERNELS``):

* ``bilinear_aa`` — torch bilinear, ``align_corners=False``, antialiased (imlbench's default:
  a downscaled input is not aliased);
* ``bilinear`` — torch bilinear without antialiasing; ``bilinear_ac`` — with
  ``align_corners=True`` (maps only: PSCC-Net's upsampling); ``bicubic`` — torch bicubic
  (clamped to [0, 1]); ``nearest`` — torch nearest;
* ``cv2_linear`` / ``cv2_cubic`` / ``cv2_area`` — ``cv2.resize`` with ``INTER_LINEAR`` /
  ``INTER_CUBIC`` / ``INTER_AREA``: on the uint8 image for inputs (the official scripts' rounding),
  on float32 for maps;
* ``pil_bilinear`` / ``pil_bicubic`` — PIL ``Image.resize`` (antialiased when shrinking), on the
  uint8 image for inputs and on mode ``F`` (float32) for maps;
* ``cv2_linear_u8`` (maps only) — the map as 8 bits (``round(255·p)``), ``cv2.resize``
  INTER_LINEAR on uint8, ``/ 255``: MVSS-Net's inference resizes its stored 8-bit map this way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from imlbench.methods.base import InputPolicy

TORCH_KERNELS = ("bilinear_aa", "bilinear", "bilinear_ac", "bicubic", "nearest")
CV2_KERNELS = ("cv2_linear", "cv2_cubic", "cv2_area")
PIL_KERNELS = ("pil_bilinear", "pil_bicubic")
MAP_ONLY_KERNELS = ("bilinear_ac", "cv2_linear_u8")
KERNELS = TORCH_KERNELS + CV2_KERNELS + PIL_KERNELS + ("cv2_linear_u8",)
INPUT_KERNELS = tuple(k for k in KERNELS if k not in MAP_ONLY_KERNELS)
"""``align_corners=True`` is an upsampling convention of feature maps, never an image resize;
``cv2_linear_u8`` is how official scripts resize a map they already stored as an 8-bit PNG."""


def check_kernel(kernel: str, field: str, allowed: Sequence[str] = KERNELS) -> None:
    if kernel not in allowed:
        raise ValueError(f"InputPolicy.{field}={kernel!r} is not a resampling kernel; expected one "
                         f"of {', '.join(allowed)}")


def _size(size: Sequence[int]) -> tuple[int, int]:
    return int(size[0]), int(size[1])


def resize_image(image: np.ndarray, size: Sequence[int], kernel: str = "bilinear_aa") -> torch.Tensor:
    """``image``: ``uint8 [H, W, 3]`` → ``float32 [3, h, w]`` in [0, 1] resized to ``size = (h, w)``.

    cv2 and PIL kernels resample the uint8 image, so the result is exactly ``uint8 / 255`` as the
    official scripts feed it; torch kernels resample ``image / 255`` in float32.
    """
    check_kernel(kernel, "kernel", INPUT_KERNELS)
    h, w = _size(size)
    if kernel in TORCH_KERNELS:
        x = to_float(image)
        return resize_maps(x[None], (h, w), kernel)[0].clamp_(0, 1)
    if image.shape[:2] != (h, w):
        image = _resize_array(image, (h, w), kernel)
    return to_float(image)


def to_float(image: np.ndarray) -> torch.Tensor:
    """``uint8 [H, W, 3]`` → ``float32 [3, H, W]``, exactly ``uint8 / 255``."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def resize_maps(maps: torch.Tensor, size: Sequence[int], kernel: str = "bilinear_aa") -> torch.Tensor:
    """``maps``: ``float [B, C, h, w]`` → ``[B, C, H, W]`` with ``kernel`` (identity at equal size)."""
    check_kernel(kernel, "output_kernel")
    size = _size(size)
    if tuple(maps.shape[-2:]) == size:
        return maps
    if kernel == "nearest":
        return F.interpolate(maps, size=size, mode="nearest")
    if kernel in ("bilinear_aa", "bilinear"):
        return F.interpolate(maps, size=size, mode="bilinear", align_corners=False,
                             antialias=kernel == "bilinear_aa")
    if kernel == "bilinear_ac":
        return F.interpolate(maps, size=size, mode="bilinear", align_corners=True)
    if kernel == "bicubic":
        return F.interpolate(maps, size=size, mode="bicubic", align_corners=False).clamp_(0, 1)
    array = maps.detach().float().cpu().numpy()
    if kernel == "cv2_linear_u8":
        array = np.rint(np.clip(array, 0, 1) * 255).astype(np.uint8)
        resized = [[_resize_array(c, size, "cv2_linear") for c in m] for m in array]
        out = np.asarray(resized, dtype=np.float32) / np.float32(255)
        return torch.from_numpy(out).to(device=maps.device, dtype=maps.dtype)
    out = np.stack([np.stack([_resize_array(np.ascontiguousarray(c), size, kernel) for c in m])
                    for m in array])
    return torch.from_numpy(out).to(device=maps.device, dtype=maps.dtype)


def _resize_array(array: np.ndarray, size: tuple[int, int], kernel: str) -> np.ndarray:
    """cv2/PIL resize of a uint8 ``[H, W, 3]`` image or a float32 ``[H, W]`` map to ``(h, w)``."""
    h, w = size
    if kernel in CV2_KERNELS:
        import cv2

        flag = {"cv2_linear": cv2.INTER_LINEAR, "cv2_cubic": cv2.INTER_CUBIC,
                "cv2_area": cv2.INTER_AREA}[kernel]
        return cv2.resize(array, (w, h), interpolation=flag)
    from PIL import Image

    flag = {"pil_bilinear": Image.Resampling.BILINEAR, "pil_bicubic": Image.Resampling.BICUBIC}[kernel]
    return np.array(Image.fromarray(array).resize((w, h), flag))  # float32 [H, W] -> mode "F"


@dataclass
class Shaped:
    """An image shaped by an input policy.

    ``image``: ``float32 [3, h, w]`` in [0, 1], what ``predict`` gets. ``valid``: ``(h', w')`` of
    the region of ``image`` that holds the picture (the rest is padding). ``covers``: fraction
    ``(fy, fx)`` of the original picture that the valid region shows, from the top-left (1, 1
    except for a canvas that crops oversized images). ``mask``: the ground-truth mask shaped
    alike (``float [1, h, w]``), when one was given.
    """

    image: torch.Tensor
    valid: tuple[int, int]
    covers: tuple[float, float] = (1.0, 1.0)
    mask: torch.Tensor | None = None


def shape_for_policy(image: np.ndarray, policy: InputPolicy,
                     mask: torch.Tensor | None = None) -> Shaped:
    """Apply ``policy`` to ``image`` (``uint8 [H, W, 3]``); ``mask`` (``float [1, H, W]``) follows
    with nearest-neighbour resampling and zero padding."""
    h, w = image.shape[:2]
    if policy.mode == "resize":
        size = (policy.size, policy.size)
        return Shaped(resize_image(image, size, policy.kernel), size, (1.0, 1.0),
                      _resize_mask(mask, size))
    if policy.mode == "canvas":
        return _canvas(image, policy, mask)
    x = to_float(image)
    if policy.mode == "pad":
        ph = math.ceil(h / policy.multiple) * policy.multiple - h
        pw = math.ceil(w / policy.multiple) * policy.multiple - w
        return Shaped(_pad(x, ph, pw, policy.pad_value), (h, w), (1.0, 1.0), _pad(mask, ph, pw, 0.0))
    return Shaped(x, (h, w), (1.0, 1.0), mask)


def _canvas(image: np.ndarray, policy: InputPolicy, mask: torch.Tensor | None) -> Shaped:
    """Top-left on a ``size``² canvas of ``pad_value``; oversized pictures shrink or are cut."""
    size = int(policy.size)
    h, w = image.shape[:2]
    covers = (1.0, 1.0)
    if max(h, w) > size and policy.oversize == "resize":
        scale = size / max(h, w)
        nh, nw = min(size, max(1, round(h * scale))), min(size, max(1, round(w * scale)))
        x = resize_image(image, (nh, nw), policy.kernel)
        mask = _resize_mask(mask, (nh, nw))
    else:  # "crop": the picture's top-left size² only, as IML-ViT's official code sees it
        nh, nw = min(h, size), min(w, size)
        covers = (nh / h, nw / w)
        x = to_float(image[:nh, :nw])
        mask = None if mask is None else mask[:, :nh, :nw]
    return Shaped(_pad(x, size - nh, size - nw, policy.pad_value), (nh, nw), covers,
                  _pad(mask, size - nh, size - nw, 0.0))


def _pad(x: torch.Tensor | None, ph: int, pw: int, value: float) -> torch.Tensor | None:
    if x is None or (ph == 0 and pw == 0):
        return x
    return F.pad(x, (0, pw, 0, ph), value=value)


def _resize_mask(mask: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor | None:
    return None if mask is None else resize_maps(mask[None], size, "nearest")[0]
