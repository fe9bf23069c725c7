"""Built-in perturbations: JPEG, resize, Gaussian blur, Gaussian noise (std and IMDL-BenCo variance).

IMDL-BenCo (``IMDLBenCo/transforms/robustness_wrapper.py``, albumentations==1.3.0) attacks, and
how ours relate to them:

* ``GaussianBlur(blur_limit=(k, k))`` -> ``cv2.GaussianBlur(img, (k, k), sigmaX=0)``: our
  ``gaussian_blur:k`` is the same call, bit for bit.
* ``GaussNoise(var_limit=(v, v))`` -> ``sigma = sqrt(v)``, independent N(0, sigma) per pixel and
  channel added to the float image, clipped to [0, 255] and cast with ``astype(uint8)``, which
  *truncates* (mean shift of about -0.5 grey level). ``gaussian_noise_var:v`` reproduces those
  semantics (not BenCo's unseeded global-NumPy draws); ``gaussian_noise:s`` takes the std ``s``
  directly and rounds to nearest (unbiased). ``gaussian_noise_var:v`` ~ ``gaussian_noise:sqrt(v)``.
* ``JpegCompression(quality_lower=q-1, quality_upper=q)`` -> quality drawn uniformly from
  {q-1, q} per image, encoded with ``cv2.imencode`` on an RGB array that OpenCV reads as BGR
  (red and blue swap roles in the YCbCr conversion). Our ``jpeg:q`` encodes at exactly ``q``
  with correct channel order; the same IJG tables and 4:2:0 subsampling, so values are close
  but not bit-identical to BenCo's.
"""
from __future__ import annotations

import io
import math
from typing import ClassVar

import cv2
import numpy as np
from PIL import Image

from imlbench.registry import PERTURBATIONS
from imlbench.robustness.base import Perturbation, Severity, check_image

MAX_RESIZE_SCALE = 8.0
"""Larger factors are almost surely typos (and allocate scale² times the memory)."""


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """``uint8 [H, W, 3]`` RGB -> baseline JPEG bytes: libjpeg through Pillow, IJG quantisation
    tables scaled by ``quality``, 4:2:0 chroma subsampling, no Huffman optimisation.
    (Bit-identical to ``cv2.imencode`` on the BGR image with the same settings.)"""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling="4:2:0",
                                optimize=False, progressive=False)
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> ``uint8 [H, W, 3]`` RGB (libjpeg's default IDCT and chroma upsampling)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.array(im.convert("RGB"), dtype=np.uint8)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(round(H*s), round(W*s))``, halves rounded up, at least 1 pixel each."""
    return (max(1, math.floor(height * scale + 0.5)), max(1, math.floor(width * scale + 0.5)))


@PERTURBATIONS.register()
class Jpeg(Perturbation):
    """JPEG re-compression at a quality in [1, 100] (4:2:0 chroma, IJG tables)."""

    name = "jpeg"
    integer_severity = True
    severity_range = (1, 100)
    severity_help = "a JPEG quality, an integer in [1, 100] (lower = stronger)"
    severity_label = "JPEG quality (1-100, lower = stronger)"
    stronger_when_lower = True

    def _apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return decode_jpeg(encode_jpeg(image, int(self.severity)))

    def apply_encoded(self, image: np.ndarray, rng: np.random.Generator
                      ) -> tuple[np.ndarray, bytes | None]:
        """The decoded image and the JPEG bytes it was decoded from (one encode, one decode)."""
        check_image(image, self.name)
        data = encode_jpeg(image, int(self.severity))
        return decode_jpeg(data), data


@PERTURBATIONS.register()
class Resize(Perturbation):
    """Rescale by a factor: area filter down, bicubic up; size from :func:`scaled_size`.

    The output has a new size; the runner maps the prediction back to the ground truth's size
    before scoring. Bicubic overshoot is saturated to [0, 255] by OpenCV.
    """

    name = "resize"
    changes_geometry = True
    severity_help = f"a scale factor in (0, {MAX_RESIZE_SCALE:g}] (1 = unchanged)"
    identity_severity = 1.0
    severity_label = "scale factor (x original size)"

    @classmethod
    def _is_valid(cls, value: Severity) -> bool:
        return 0 < value <= MAX_RESIZE_SCALE

    def _apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = scaled_size(image.shape[0], image.shape[1], self.severity)
        interpolation = cv2.INTER_AREA if self.severity < 1 else cv2.INTER_CUBIC
        return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interpolation)


@PERTURBATIONS.register()
class GaussianBlur(Perturbation):
    """Gaussian blur with an odd k x k kernel, OpenCV's sigma-from-kernel rule (as IMDL-BenCo).

    ``cv2.GaussianBlur(image, (k, k), sigmaX=0)`` with reflect-101 borders. Its kernel is
    ``cv2.getGaussianKernel(k, 0)``: for k <= 7 OpenCV's fixed tables (k=3: [1, 2, 1] / 4),
    for larger k a sampled Gaussian with ``sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8``.
    """

    name = "gaussian_blur"
    integer_severity = True
    severity_help = "an odd kernel size in pixels, k >= 1 (e.g. 3, 7, 11; 1 = unchanged)"
    identity_severity = 1
    severity_label = "kernel size k (px; sigma = 0.3((k-1)/2-1)+0.8)"

    @classmethod
    def _is_valid(cls, value: Severity) -> bool:
        return value >= 1 and value % 2 == 1

    @property
    def sigma(self) -> float:
        """The rule's sigma (OpenCV uses fixed tables instead for k <= 7)."""
        return 0.3 * ((self.severity - 1) * 0.5 - 1) + 0.8

    def _apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k = int(self.severity)
        return cv2.GaussianBlur(np.ascontiguousarray(image), (k, k), sigmaX=0)


@PERTURBATIONS.register()
class GaussianNoise(Perturbation):
    """Additive Gaussian noise, std on the 0-255 scale, per pixel and channel, rounded and clipped."""

    name = "gaussian_noise"
    severity_range = (0.0, 255.0)
    severity_help = "a noise standard deviation in grey levels, a number in [0, 255] (0 = unchanged)"
    identity_severity = 0.0
    severity_label = "noise std (grey levels, 0-255 scale)"
    truncate: ClassVar[bool] = False
    """True: cast like ``astype(uint8)`` (IMDL-BenCo); False: round to nearest (unbiased)."""

    @property
    def sigma(self) -> float:
        return float(self.severity)

    def _apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # float32 noise: half the time of float64, far finer than one grey level.
        noisy = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(self.sigma)
        if not self.truncate:
            noisy = np.rint(noisy, out=noisy)
        return np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)


@PERTURBATIONS.register()
class GaussianNoiseVar(GaussianNoise):
    """IMDL-BenCo's GaussNoise: the severity is a variance (std = sqrt), values truncated to uint8."""

    name = "gaussian_noise_var"
    severity_range = (0.0, 255.0 ** 2)
    severity_help = "a noise variance in grey levels squared, a number in [0, 65025] (0 = unchanged)"
    severity_label = "noise variance (grey levels², IMDL-BenCo)"
    truncate = True

    @property
    def sigma(self) -> float:
        return math.sqrt(self.severity)
