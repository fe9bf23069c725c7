"""Dataset contract: a ``Sample`` record per image and a lazy ``Dataset`` of them.

A dataset lists its samples (paths, label) without decoding anything; images and masks are
decoded on demand by :func:`load_image` / :func:`load_mask`. The same dataset always
returns the same records in the same order, so results and shards are reproducible.
"""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import numpy as np
from PIL import Image

from imlbench.errors import ImlbenchError

MASK_THRESHOLD = 127.5
"""Masks are binarised at grey > 127.5 (i.e. >= 128 on 8 bits): anti-aliased edges and JPEG
ringing go to whichever side they are closer to. 16-bit masks are scaled to 8 bits first."""


class DatasetError(ImlbenchError, ValueError):
    """A dataset's files do not match what its reader expects; message names file and fix."""


@dataclass(frozen=True)
class Sample:
    """One image of a dataset.

    ``label`` is 1 for a manipulated image, 0 for an authentic one; authentic images have
    ``mask_path=None`` and are scored against an all-zero mask. ``source`` says where the
    sample comes from (dataset name, or manipulation type for synthetic data).
    ``mask_encoding`` names how the mask file marks manipulated pixels (a key of
    :data:`MASK_ENCODINGS`; ``"binary"`` = white on black); ``load_mask(sample, ...)`` decodes it.
    """

    sample_id: str
    image_path: Path
    mask_path: Path | None
    label: int
    source: str
    mask_encoding: str = "binary"

    def __post_init__(self) -> None:
        if self.label not in (0, 1):
            raise DatasetError(f"sample {self.sample_id!r}: label must be 0 or 1, got {self.label!r}")
        if self.label == 0 and self.mask_path is not None:
            raise DatasetError(f"sample {self.sample_id!r}: authentic sample must not have a mask "
                               f"(got {self.mask_path})")
        mask_encoding(self.mask_encoding)  # unknown names fail here, not in a worker mid-run


@dataclass
class Dataset:
    """A named, lazily listed collection of samples.

    ``lister`` is called once, on first access, and must be deterministic. ``is_available``
    says whether the data is on disk (datasets that are absent are left out of ``all``).
    ``expected_counts`` = ``(tampered, authentic)`` of the complete published release, when
    known; ``imlbench data check`` reports a listing that differs (a partial unpack).
    """

    name: str
    lister: Callable[[], Sequence[Sample]]
    description: str = ""
    is_available: Callable[[], bool] = lambda: True
    expected_counts: tuple[int, int] | None = None
    path: str | None = None
    """Absolute path of the file or folder, for a dataset given as a path instead of a registered
    name (provenance and training identity; tables show the short ``name``)."""
    _samples: tuple[Sample, ...] | None = None
    _fingerprint: str | None = None

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

    def fingerprint(self) -> str:
        """12 hex digits identifying this version of the data: SHA-256 over every sample's id,
        label, mask encoding and the byte sizes of its image and mask files (``-1``: missing).

        Stored with every result, so that scores computed on a regenerated, re-encoded or
        partially unpacked copy are never silently compared with scores on the original. File
        sizes rather than contents keep it to one ``stat`` per file (a same-size edit in place
        goes unnoticed; byte-identical copies elsewhere match). Computed once per instance.
        """
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for s in self.samples:
                sizes = (_file_size(s.image_path), _file_size(s.mask_path) if s.mask_path else "")
                digest.update(f"{s.sample_id}\t{s.label}\t{s.mask_encoding}\t{sizes[0]}\t{sizes[1]}\n"
                              .encode())
            self._fingerprint = digest.hexdigest()[:12]
        return self._fingerprint


def _file_size(path: str | Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file to ``uint8 [H, W, 3]`` RGB.

    Normalisations (documented, identical for every method): greyscale, palette and CMYK are
    converted to RGB by Pillow; an alpha channel is dropped (not composited — forensic traces
    live in the colour values); 16-bit images are scaled to 8 bits (value / 257, rounded).
    EXIF orientation is **not** applied, to images or masks: ground-truth masks are drawn on the
    stored pixel array, so rotating only the image (or trusting a tag on one of the two files)
    would misalign them.
    """
    with open_decoded(path, "image") as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            arr = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
            return np.repeat(arr[..., None], 3, axis=2)
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


@contextmanager
def open_decoded(path: str | Path, what: str) -> Iterator[Image.Image]:
    """Open and fully decode an image file; every failure is a DatasetError naming the file."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            yield im
    except FileNotFoundError:
        raise DatasetError(f"{what} file not found: {path}") from None
    except Image.DecompressionBombError as exc:
        raise DatasetError(
            f"{what} {path} is larger than Pillow's decompression-bomb limit ({exc}); if the file is "
            f"genuine, raise PIL.Image.MAX_IMAGE_PIXELS in your own script, else remove it") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot decode {what} {path}: {exc}. Re-export or remove the file.") from exc


# -- mask encodings -----------------------------------------------------------------------
@dataclass(frozen=True)
class MaskEncoding:
    """How a dataset's mask files mark manipulated pixels.

    ``decode`` maps the file's pixels to ``bool [H, W]`` (True = manipulated); it receives
    ``float64 [H, W]`` grey levels on the 0..255 scale (16-bit files scaled by 1/257) when
    ``channels == "L"``, or ``uint8 [H, W, 3]`` RGB when ``channels == "RGB"``. ``unclean``
    returns why a mask is not a clean file of this encoding (stray grey levels, ...), or
    ``None``; ``imlbench data check`` reports it.
    """

    name: str
    channels: Literal["L", "RGB"]
    decode: Callable[[np.ndarray], np.ndarray]
    unclean: Callable[[np.ndarray], str | None]
    description: str


def _levels_within(levels: tuple[int, ...]) -> Callable[[np.ndarray], str | None]:
    def unclean(grey: np.ndarray) -> str | None:
        values = np.unique(grey)
        stray = values[~np.isin(values, levels)]
        if stray.size == 0:
            return None
        return (f"{values.size} grey levels, expected only {'/'.join(map(str, levels))} "
                f"(e.g. {', '.join(f'{v:g}' for v in stray[:3])})")
    return unclean


def _at_most_levels(n: int) -> Callable[[np.ndarray], str | None]:
    def unclean(grey: np.ndarray) -> str | None:
        count = np.unique(grey).size
        return None if count <= n else f"{count} grey levels, expected at most {n}"
    return unclean


def _lossy(_: np.ndarray) -> str | None:
    return None  # JPEG colour masks have no exact levels to check; decode() is the only test


KORUS_BLACK_MAX = 10.0
"""Korus masks: grey <= this is black (authentic). photoholmes binarises at the same level."""


def _columbia_edgemask(rgb: np.ndarray) -> np.ndarray:
    r, g = rgb[..., 0].astype(np.int16), rgb[..., 1].astype(np.int16)
    # green dominance splits JPEG colour bleeding at the red/green border in the middle; the
    # brightness floor keeps dark pixels (neither colour painted) authentic
    return (g > r) & (g > MASK_THRESHOLD)


MASK_ENCODINGS: dict[str, MaskEncoding] = {e.name: e for e in (
    MaskEncoding("binary", "L", lambda grey: grey > MASK_THRESHOLD, _levels_within((0, 255)),
                 "white (>127.5) = manipulated on black"),
    MaskEncoding("inverted", "L", lambda grey: grey < MASK_THRESHOLD, _levels_within((0, 255)),
                 "black (<127.5) = manipulated on white (DSO-1)"),
    MaskEncoding("nist_inverted", "L", lambda grey: grey < 255.0, _levels_within((0, 255)),
                 "NIST MediScore rule: every non-white (<255) pixel is manipulated (NIST16)"),
    MaskEncoding("columbia_edgemask", "RGB", _columbia_edgemask, _lossy,
                 "colour JPEG: green (G > R and G > 127.5) = spliced, red = authentic (Columbia)"),
    MaskEncoding("korus_3level", "L", lambda grey: grey > KORUS_BLACK_MAX, _at_most_levels(3),
                 "black = authentic; white (changed meaning) and grey (collateral: changed pixels, "
                 "same content) = manipulated (Korus)"),
)}
"""Registry of mask decoders, by :attr:`Sample.mask_encoding`.

Korus: grey "collateral damage" pixels *were* modified, so a detector that flags them is
right; and the author states that the authentic (black) labels are accurate while the
white/grey border is rough, so black vs non-black is the reliable boundary to score against.
"""


def mask_encoding(name: str) -> MaskEncoding:
    """The :class:`MaskEncoding` called ``name``; an unknown name lists the known ones."""
    try:
        return MASK_ENCODINGS[name]
    except KeyError:
        raise DatasetError(f"unknown mask encoding {name!r}; expected one of "
                           f"{', '.join(sorted(MASK_ENCODINGS))}") from None


def read_mask_pixels(path: str | Path, channels: Literal["L", "RGB"] = "L") -> np.ndarray:
    """A mask file's raw pixels: ``float64 [H, W]`` grey on 0..255 (16-bit scaled by 1/257)
    for ``"L"``, ``uint8 [H, W, 3]`` for ``"RGB"``. Palette/alpha/RGB files are converted."""
    with open_decoded(path, "mask") as im:
        if channels == "RGB":
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            return np.asarray(im, dtype=np.float64) / 257.0
        return np.asarray(im.convert("L"), dtype=np.float64)


def load_mask(path: str | Path | Sample | None, shape: tuple[int, int] | None = None, *,
              encoding: str = "binary") -> np.ndarray:
    """Decode a ground-truth mask to ``bool [H, W]`` (True = manipulated).

    ``path`` is a mask file read with ``encoding`` (see :data:`MASK_ENCODINGS`), or a
    :class:`Sample`, whose own ``mask_path`` and ``mask_encoding`` are used (prefer this: the
    encoding cannot be forgotten). ``None`` (authentic) returns zeros of ``shape``. A mask
    whose size differs from ``shape`` is an error, never silently resized: resizing would
    change the score.
    """
    if isinstance(path, Sample):
        if encoding != "binary":
            raise ValueError("load_mask(sample): the encoding comes from sample.mask_encoding; "
                             "do not pass encoding= as well")
        path, encoding = path.mask_path, path.mask_encoding
    if path is None:
        if shape is None:
            raise ValueError("load_mask(None) needs the image shape")
        return np.zeros(shape, dtype=bool)
    enc = mask_encoding(encoding)
    mask = np.asarray(enc.decode(read_mask_pixels(path, enc.channels)), dtype=bool)
    if shape is not None and mask.shape != tuple(shape):
        raise DatasetError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image is "
                           f"{shape[1]}x{shape[0]}; fix the mask so both have the same size")
    return mask
