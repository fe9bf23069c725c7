"""Registered train-time augmentation transforms (:data:`~imlbench.registry.AUGMENTATIONS`).

Geometric ones move image and mask together (the mask with nearest-neighbour resampling);
photometric ones change the image only. Each names the albumentations 1.3 class whose
semantics it follows, since MPC's official pipeline is written with them. The robustness
layer's perturbations are augmentation steps too (:mod:`imlbench.robustness.augment`); these
are the ones a robustness sweep has no use for.
"""
from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from imlbench.registry import AUGMENTATIONS

Params = dict[str, float]


class AugmentTransform:
    """A registered augmentation: ``apply(image uint8 [H,W,3], mask uint8 [H,W], params, rng)``
    → the pair transformed. ``params`` names each parameter and whether it is an integer;
    ``defaults`` (values to choose from) or ``default_ranges`` (``[low, high]``) are what is drawn
    when a recipe gives a parameter neither ``ranges`` nor ``choices``."""

    name: ClassVar[str]
    params: ClassVar[dict[str, bool]] = {}
    """Parameter name → integer?"""
    defaults: ClassVar[dict[str, tuple[float, ...]]] = {}
    default_ranges: ClassVar[dict[str, tuple[float, float]]] = {}
    geometric: ClassVar[bool] = False

    @classmethod
    def check(cls, name: str, value: float) -> str | None:
        """Why ``value`` is not allowed for parameter ``name`` (``None``: it is)."""
        return None

    def apply(self, image: np.ndarray, mask: np.ndarray, params: Params,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


@AUGMENTATIONS.register()
class HFlip(AugmentTransform):
    """Mirror left-right."""
    name = "hflip"
    geometric = True

    def apply(self, image, mask, params, rng):
        return image[:, ::-1], mask[:, ::-1]


@AUGMENTATIONS.register()
class VFlip(AugmentTransform):
    """Mirror top-bottom."""
    name = "vflip"
    geometric = True

    def apply(self, image, mask, params, rng):
        return image[::-1], mask[::-1]


@AUGMENTATIONS.register()
class Transpose(AugmentTransform):
    """Swap rows and columns (albumentations ``Transpose``)."""
    name = "transpose"
    geometric = True

    def apply(self, image, mask, params, rng):
        return image.transpose(1, 0, 2), mask.T


@AUGMENTATIONS.register()
class Rot90(AugmentTransform):
    """Rotate by ``k`` quarter turns counter-clockwise; ``k`` in {0, 1, 2, 3} by default, as
    albumentations' ``RandomRotate90`` (``randint(0, 3)``, so a quarter of the draws are no-ops)."""
    name = "rot90"
    params = {"k": True}
    defaults = {"k": (0, 1, 2, 3)}
    geometric = True

    @classmethod
    def check(cls, name, value):
        return None if value in (0, 1, 2, 3) else "a number of quarter turns, 0, 1, 2 or 3"

    def apply(self, image, mask, params, rng):
        k = int(params["k"])
        return np.rot90(image, k), np.rot90(mask, k)


@AUGMENTATIONS.register()
class Scale(AugmentTransform):
    """Rescale by ``factor`` to ``(int(H·f), int(W·f))`` (truncated, as albumentations'
    ``RandomScale``): image ``cv2.INTER_LINEAR``, mask nearest."""
    name = "scale"
    params = {"factor": False}
    geometric = True

    @classmethod
    def check(cls, name, value):
        return None if 0 < value <= 4 else "a scale factor in (0, 4]"

    def apply(self, image, mask, params, rng):
        h, w = image.shape[:2]
        nh, nw = max(1, int(h * params["factor"])), max(1, int(w * params["factor"]))
        if (nh, nw) == (h, w):
            return image, mask
        return (cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=cv2.INTER_LINEAR),
                cv2.resize(np.ascontiguousarray(mask), (nw, nh), interpolation=cv2.INTER_NEAREST))


def _side(name: str, value: float) -> str | None:
    return None if value >= 1 else "a side in pixels, an integer >= 1"


@AUGMENTATIONS.register()
class PadTo(AugmentTransform):
    """Pad to at least ``size`` × ``size``, centred, reflecting (cv2 ``BORDER_REFLECT_101``, image
    and mask alike): albumentations' ``PadIfNeeded`` with its defaults. Larger sides are kept."""
    name = "pad_to"
    params = {"size": True}
    geometric = True

    check = classmethod(lambda cls, name, value: _side(name, value))

    def apply(self, image, mask, params, rng):
        size = int(params["size"])
        h, w = image.shape[:2]
        top, left = max(0, size - h) // 2, max(0, size - w) // 2
        pads = [top, max(0, size - h) - top, left, max(0, size - w) - left]
        # reflect-101 cannot pad more than the side minus one at once: tiny pictures take rounds
        while any(pads):
            h, w = image.shape[:2]
            now = [min(p, (h if i < 2 else w) - 1) for i, p in enumerate(pads)]
            if not any(now):  # a 1-pixel side cannot be reflected: repeat it
                image, mask = (cv2.copyMakeBorder(np.ascontiguousarray(a), *pads, cv2.BORDER_REPLICATE)
                               for a in (image, mask))
                break
            image, mask = (cv2.copyMakeBorder(np.ascontiguousarray(a), *now, cv2.BORDER_REFLECT_101)
                           for a in (image, mask))
            pads = [p - n for p, n in zip(pads, now)]
        return image, mask


class _Photometric(AugmentTransform):
    """An image-only step of 8-bit look-up or filtering; the mask is returned as given."""

    def apply(self, image, mask, params, rng):
        return self.filter(np.ascontiguousarray(image), params), mask

    def filter(self, image: np.ndarray, params: Params) -> np.ndarray:
        raise NotImplementedError


def _odd_kernel(name: str, value: float) -> str | None:
    return None if value >= 1 and value % 2 == 1 else "an odd kernel size >= 1"


@AUGMENTATIONS.register()
class BoxBlur(_Photometric):
    """``cv2.blur`` with a ``ksize``² box (albumentations ``Blur``: odd 3..7)."""
    name = "box_blur"
    params = {"ksize": True}
    defaults = {"ksize": (3, 5, 7)}
    check = classmethod(lambda cls, name, value: _odd_kernel(name, value))

    def filter(self, image, params):
        return cv2.blur(image, (int(params["ksize"]),) * 2)


@AUGMENTATIONS.register()
class MedianBlur(_Photometric):
    """``cv2.medianBlur`` (albumentations ``MedianBlur``: odd 3..7)."""
    name = "median_blur"
    params = {"ksize": True}
    defaults = {"ksize": (3, 5, 7)}
    check = classmethod(lambda cls, name, value: _odd_kernel(name, value))

    def filter(self, image, params):
        return cv2.medianBlur(image, int(params["ksize"]))


@AUGMENTATIONS.register()
class Downscale(_Photometric):
    """Down by ``factor`` and back up, nearest both ways (albumentations 1.3 ``Downscale``
    defaults: factor 0.25, ``INTER_NEAREST``); the picture keeps its size."""
    name = "downscale"
    params = {"factor": False}
    defaults = {"factor": (0.25,)}

    @classmethod
    def check(cls, name, value):
        return None if 0 < value < 1 else "a factor in (0, 1)"

    def filter(self, image, params):
        h, w = image.shape[:2]
        small = cv2.resize(image, None, fx=params["factor"], fy=params["factor"],
                           interpolation=cv2.INTER_NEAREST)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


@AUGMENTATIONS.register()
class BrightnessContrast(_Photometric):
    """``v·(1 + contrast) + 255·brightness``, clipped and truncated to 8 bits through a look-up
    table (albumentations ``RandomBrightnessContrast``, ``brightness_by_max``; ±0.2 by default)."""
    name = "brightness_contrast"
    params = {"brightness": False, "contrast": False}
    default_ranges = {"brightness": (-0.2, 0.2), "contrast": (-0.2, 0.2)}

    @classmethod
    def check(cls, name, value):
        return None if -1 <= value <= 1 else "a fraction in [-1, 1]"

    def filter(self, image, params):
        lut = np.arange(256, dtype=np.float32) * np.float32(1 + params["contrast"])
        lut += np.float32(255 * params["brightness"])
        return cv2.LUT(image, np.clip(lut, 0, 255).astype(np.uint8))


@AUGMENTATIONS.register()
class Gamma(_Photometric):
    """``255·(v/255)^gamma`` truncated, through a look-up table (albumentations ``RandomGamma``,
    gamma 0.8..1.2 by default)."""
    name = "gamma"
    params = {"gamma": False}
    default_ranges = {"gamma": (0.8, 1.2)}

    @classmethod
    def check(cls, name, value):
        return None if value > 0 else "a positive exponent"

    def filter(self, image, params):
        table = (np.arange(256, dtype=np.float64) / 255) ** params["gamma"] * 255
        return cv2.LUT(image, table.astype(np.uint8))


@AUGMENTATIONS.register()
class ShortSide(AugmentTransform):
    """Resize so the short side is ``size`` (long side ``int(long · size / short)``): image PIL
    bilinear, mask nearest — pytorch-deeplab-xception's ``RandomScaleCrop`` scaling step."""
    name = "short_side"
    params = {"size": True}
    geometric = True

    check = classmethod(lambda cls, name, value: _side(name, value))

    def apply(self, image, mask, params, rng):
        from PIL import Image

        h, w = image.shape[:2]
        short = int(params["size"])
        nh, nw = (int(h * short / w), short) if h > w else (short, int(w * short / h))
        if (nh, nw) == (h, w):
            return image, mask
        return (np.array(Image.fromarray(np.ascontiguousarray(image)).resize((nw, nh), Image.Resampling.BILINEAR)),
                np.array(Image.fromarray(np.ascontiguousarray(mask)).resize((nw, nh), Image.Resampling.NEAREST)))


@AUGMENTATIONS.register()
class PilGaussianBlur(_Photometric):
    """PIL ``ImageFilter.GaussianBlur(radius)`` (pytorch-deeplab-xception's ``RandomGaussianBlur``
    draws the radius uniformly in [0, 1))."""
    name = "pil_gaussian_blur"
    params = {"radius": False}
    default_ranges = {"radius": (0.0, 1.0)}

    @classmethod
    def check(cls, name, value):
        return None if value >= 0 else "a radius >= 0"

    def filter(self, image, params):
        from PIL import Image, ImageFilter

        return np.array(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=params["radius"])))
