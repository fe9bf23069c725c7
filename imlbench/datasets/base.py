"""Dataset contract: a ``Sample`` record per image and a lazy ``Dataset`` of them.

A dataset lists its samples (paths, label) without decoding anything; images and masks are
decoded on demand by :func:`load_image` / :func:`load_mask`. The same dataset always
returns the same records in the same order, so results and shards are reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

MASK_THRESHOLD = 127.5
"""Masks are binarised at grey > 127.5 (i.e. >= 128 on 8 bits): anti-aliased edges and JPEG
ringing go to whichever side they are closer to. 16-bit masks are scaled to 8 bits first."""


class DatasetError(ValueError):
    """A dataset's files do not match what its reader expects; message names file and fix."""


@dataclass(frozen=True)
class Sample:
    """One image of a dataset.

    ``label`` is 1 for a manipulated image, 0 for an authentic one; authentic images have
    ``mask_path=None`` and are scored against an all-zero mask. ``source`` says where the
    sample comes from (dataset name, or manipulation type for synthetic data).
    """

    sample_id: str
    image_path: Path
    mask_path: Path | None
    label: int
    source: str

    def __post_init__(self) -> None:
        if self.label not in (0, 1):
            raise DatasetError(f"sample {self.sample_id!r}: label must be 0 or 1, got {self.label!r}")
        if self.label == 0 and self.mask_path is not None:
            raise DatasetError(f"sample {self.sample_id!r}: authentic sample must not have a mask "
                               f"(got {self.mask_path})")


@dataclass
class Dataset:
    """A named, lazily listed collection of samples.

    ``lister`` is called once, on first access, and must be deterministic. ``is_available``
    says whether the data is on disk (datasets that are absent are left out of ``all``).
    """

    name: str
    lister: Callable[[], Sequence[Sample]]
    description: str = ""
    is_available: Callable[[], bool] = lambda: True
    _samples: tuple[Sample, ...] | None = None

    @property
    def samples(self) -> tuple[Sample, ...]:
        if self._samples is None:
            samples = tuple(self.lister())
            ids = [s.sample_id for s in samples]
            if len(set(ids)) != len(ids):
                dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
                raise DatasetError(f"dataset {self.name!r} has duplicate sample ids {dup}; "
                                   "ids must be unique (they seed perturbations and key results)")
            self._samples = samples
        return self._samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    @property
    def n_tampered(self) -> int:
        return sum(s.label for s in self.samples)


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file to ``uint8 [H, W, 3]`` RGB (greyscale/alpha/palette converted)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                arr = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DatasetError(f"image file not found: {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}. Re-export or remove the file.") from exc


def load_mask(path: str | Path | None, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a ground-truth mask to ``bool [H, W]`` (True = manipulated).

    ``path=None`` (authentic) returns zeros of ``shape``. A mask whose size differs from
    ``shape`` is an error, never silently resized: resizing would change the score.
    """
    if path is None:
        if shape is None:
            raise ValueError("load_mask(None) needs the image shape")
        return np.zeros(shape, dtype=bool)
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = np.asarray(im, dtype=np.float64) / 257.0
            else:
                grey = np.asarray(im.convert("L"), dtype=np.float64)
    except FileNotFoundError:
        raise DatasetError(f"mask file not found: {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot decode mask {path}: {exc}") from exc
    mask = grey > MASK_THRESHOLD
    if shape is not None and mask.shape != tuple(shape):
        raise DatasetError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image is "
                           f"{shape[1]}x{shape[0]}; fix the mask so both have the same size")
    return mask
