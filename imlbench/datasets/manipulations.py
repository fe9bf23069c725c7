"""Image operations of the synthetic benchmark: crops, JPEG histories, region masks, and
the three manipulations (splicing, copy-move, object removal).

Every function is pure given its ``rng`` (``numpy.random.Generator``); images are
``uint8 [H, W, 3]`` and masks ``bool [H, W]`` (True = manipulated). Random draws are returned
as plain-Python metadata so the manifest can record exactly what was done.
"""
from __future__ import annotations

import io
import math
from typing import Any

import cv2
import numpy as np
from PIL import Image

Meta = dict[str, Any]


def uniform(rng: np.random.Generator, bounds: tuple[float, float], digits: int = 4) -> float:
    """A float in ``bounds``, rounded so the manifest records exactly the value used."""
    return round(float(rng.uniform(*bounds)), digits)


def randint(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    """Integer in ``[lo, hi]`` (both inclusive)."""
    return int(rng.integers(bounds[0], bounds[1] + 1))


def random_crop(photo: np.ndarray, rng: np.random.Generator, out_hw: tuple[int, int],
                scale: tuple[float, float]) -> tuple[np.ndarray, Meta]:
    """A window of ``photo`` resampled to ``out_hw`` and flipped with probability 1/2.

    ``scale`` bounds output pixels per photo pixel; it is raised where the window would
    not fit in the photo (small photos are then upsampled).
    """
    out_h, out_w = out_hw
    photo_h, photo_w = photo.shape[:2]
    s = max(uniform(rng, scale), out_h / photo_h, out_w / photo_w)
    win_h, win_w = min(photo_h, math.ceil(out_h / s)), min(photo_w, math.ceil(out_w / s))
    y = int(rng.integers(0, photo_h - win_h + 1))
    x = int(rng.integers(0, photo_w - win_w + 1))
    flip = bool(rng.random() < 0.5)
    window = photo[y:y + win_h, x:x + win_w]
    shrinking = win_h * win_w > out_h * out_w
    crop = cv2.resize(window, (out_w, out_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    if flip:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop), {"box_xywh": [x, y, win_w, win_h], "flip": flip}


def random_size(rng: np.random.Generator, short_side: tuple[int, int], max_aspect: float,
                landscape: bool) -> tuple[int, int]:
    """``(H, W)`` with the short side in ``short_side`` and long/short <= ``max_aspect``."""
    short = randint(rng, short_side)
    long = int(round(short * rng.uniform(1.0, max_aspect)))
    return (short, long) if landscape else (long, short)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG with 4:2:0 chroma subsampling (the usual camera/social-media setting)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=int(quality), subsampling="4:2:0")
    return buf.getvalue()


def encode_png(image: np.ndarray) -> bytes:
    """Lossless; zlib level 1 is ~3x faster than Pillow's default and only ~10 % larger."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def resample(image: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize to ``out_hw`` (what an editor does when a pasted layer is scaled)."""
    return cv2.resize(image, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Compress and decode: gives the image a JPEG history (8x8 block grid, quantisation)."""
    with Image.open(io.BytesIO(encode_jpeg(image, quality))) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def blob_mask(shape: tuple[int, int], area: float, rng: np.random.Generator) -> np.ndarray:
    """An irregular region covering about ``area`` (fraction) of an image of ``shape``.

    A star-shaped random polygon (5-12 vertices, random radii and elongation), smoothed
    into a blob half of the time, placed uniformly where it fits inside the image.
    """
    h, w = shape
    n = randint(rng, (5, 12))
    angles = np.sort(rng.uniform(0.0, 2 * np.pi, n))
    radii = rng.uniform(0.45, 1.0, n)
    elongation = rng.uniform(0.6, 1.6)
    pts = np.stack([radii * np.cos(angles) * elongation, radii * np.sin(angles)], axis=1)
    x, y = pts[:, 0], pts[:, 1]
    unit_area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))  # shoelace
    pts *= math.sqrt(area * h * w / unit_area)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    fit = min(1.0, (w - 2) / (hi[0] - lo[0]), (h - 2) / (hi[1] - lo[1]))  # very elongated: shrink
    pts, lo, hi = pts * fit, lo * fit, hi * fit
    centre = np.array([rng.uniform(-lo[0], w - 1 - hi[0]), rng.uniform(-lo[1], h - 1 - hi[1])])
    canvas = np.zeros((h, w), np.uint8)
    cv2.fillPoly(canvas, [np.round(pts + centre).astype(np.int32)], 255)
    if rng.random() < 0.5:
        sigma = 0.08 * math.sqrt(area * h * w)  # rounds the corners, keeps the area
        canvas = cv2.GaussianBlur(canvas, (0, 0), sigma)
    return canvas > 127


def feather_alpha(mask: np.ndarray, sigma: float) -> np.ndarray:
    """``float32 [H, W, 1]`` blending weights: the mask with edges blurred by ``sigma`` px."""
    alpha = mask.astype(np.float32)
    if sigma > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
    return alpha[..., None]


def blend(base: np.ndarray, overlay: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = base.astype(np.float32) * (1 - alpha) + overlay.astype(np.float32) * alpha
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def splice(host: np.ndarray, donor: np.ndarray, mask: np.ndarray, feather_sigma: float) -> np.ndarray:
    """Paste ``donor`` (same size as ``host``) into ``host`` where ``mask`` is set."""
    return blend(host, donor, feather_alpha(mask, feather_sigma))


def copy_move(image: np.ndarray, rng: np.random.Generator, area: float, transform_prob: float,
              feather_sigma: float, max_tries: int = 50) -> tuple[np.ndarray, np.ndarray, Meta] | None:
    """Copy a region of ``image`` to another place, optionally rotated and scaled.

    Returns ``(image, target_mask, meta)``: the mask marks only the pasted *target* region
    (the source is untouched, authentic content), or ``None`` when no placement fits
    without overlap within ``max_tries`` (the caller draws a new region).
    """
    h, w = image.shape[:2]
    source = blob_mask((h, w), area, rng)
    ys, xs = np.nonzero(source)
    centre = (float(xs.mean()), float(ys.mean()))
    keep_out = cv2.dilate(source.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    transformed = rng.random() < transform_prob
    angle = uniform(rng, (-30.0, 30.0), 2) if transformed else 0.0
    scale = uniform(rng, (0.8, 1.25), 3) if transformed else 1.0
    for _ in range(max_tries):
        dx, dy = uniform(rng, (-w / 2, w / 2), 2), uniform(rng, (-h / 2, h / 2), 2)
        matrix = cv2.getRotationMatrix2D(centre, angle, scale)
        matrix[:, 2] += (dx, dy)
        target = cv2.warpAffine(source.astype(np.uint8) * 255, matrix, (w, h),
                                flags=cv2.INTER_NEAREST) > 127
        # Fully inside the frame (nothing clipped) and clear of the source region.
        if target.sum() >= 0.97 * scale ** 2 * source.sum() and not (target & keep_out).any():
            moved = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT)
            meta = {"rotation_deg": angle, "scale": scale, "shift_xy": [dx, dy],
                    "source_centre_xy": [round(c, 2) for c in centre]}
            return blend(image, moved, feather_alpha(target, feather_sigma)), target, meta
    return None


def remove_object(image: np.ndarray, mask: np.ndarray, radius: int) -> np.ndarray:
    """Fill ``mask`` from its surroundings (OpenCV Telea inpainting); pixels outside are unchanged."""
    return cv2.inpaint(image, mask.astype(np.uint8) * 255, radius, cv2.INPAINT_TELEA)
