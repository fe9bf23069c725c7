"""JPEG-domain inputs: the Y-channel DCT coefficients and quantisation table of a JPEG *file*.

Some methods (CAT-Net) read the compressed file itself, not only its decoded pixels. This
module turns the bytes of a JPEG (or, for anything else, the re-encode the official CAT-Net
code makes) into those inputs, so the runner can hand them to a method beside the pixels.

Reader: ``jpeglib`` (PyPI, MPL-2.0, manylinux wheels bundling libjpeg). It reads the entropy-coded
coefficients losslessly (no IDCT), so they do not depend on the decoder's IDCT, and it reads the
quantisation tables of every slot. CAT-Net's own code uses ``jpegio`` (a C++/Cython extension
without wheels, built from source with g++); ``jpeglib`` returns the same Y coefficients and
tables (checked against ``jpegio`` and against an inverse DCT of libjpeg's decoding, see
``tests/test_jpeg_dct.py``). It reads from a path only, so bytes go through a temporary file.

The rule for files that are not JPEG is the official one (``dataset_arbitrary.py``): a file is a
JPEG when Pillow reads its format as ``"JPEG"`` (from the content, not the extension: a camera MPO
is not); anything else is re-saved with Pillow at quality 100, 4:4:4 (all-ones tables), and the
method then sees the decoded re-save, pixels and coefficients alike.
"""
from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from imlbench.datasets.base import DatasetError

JpegSource = bytes | Path
"""A JPEG's bytes, or the path of a file holding them."""

JPEG_DCT = "jpeg_dct"
"""File-input name of :class:`JpegDct` (what a method lists in ``Method.file_inputs``)."""

REENCODE_QUALITY = 100
"""Non-JPEG inputs are re-saved at this Pillow quality with 4:4:4 chroma (CAT-Net's rule)."""


@dataclass(frozen=True)
class JpegDct:
    """The Y component of a JPEG in the coefficient domain.

    ``coef``: ``int16 [8*bv, 8*bh]`` quantised Y coefficients in jpegio's 2-D layout: element
    ``(8*by + u, 8*bx + v)`` is coefficient ``(u, v)`` of block ``(by, bx)``; ``bv, bh =
    ceil(H/8), ceil(W/8)`` whatever the chroma subsampling. ``qtable``: ``float32 [8, 8]`` the Y
    quantisation table in natural (row-major) order, row = vertical frequency ``u``.
    """

    coef: np.ndarray
    qtable: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "qtable": self.qtable}


def is_jpeg(source: JpegSource) -> bool:
    """True when Pillow reads the format of ``source`` as JPEG (an MPO or a PNG is not)."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            return im.format == "JPEG"
    except (OSError, SyntaxError, ValueError):
        return False


def read_jpeg_dct(source: JpegSource) -> JpegDct:
    """Y coefficients and Y table of a JPEG (bytes or a path); an unreadable one is a DatasetError."""
    import jpeglib

    if isinstance(source, bytes):
        with tempfile.NamedTemporaryFile(suffix=".jpg") as tmp:
            tmp.write(source)
            tmp.flush()
            return _read(jpeglib, Path(tmp.name), "JPEG bytes")
    return _read(jpeglib, Path(source), str(source))


def _read(jpeglib: Any, path: Path, what: str) -> JpegDct:
    try:
        jpeg = jpeglib.read_dct(str(path))
        jpeg.load()
        y = np.asarray(jpeg.Y)
        table = np.asarray(jpeg.qt)[int(np.asarray(jpeg.quant_tbl_no)[0])]
    except Exception as exc:  # jpeglib raises plain Exceptions for libjpeg errors
        raise DatasetError(f"cannot read the DCT coefficients of {what}: {exc}. Re-export the "
                           "file as a baseline JPEG, or remove it.") from exc
    bv, bh = y.shape[:2]
    # [bv, bh, 8, 8] -> [8*bv, 8*bh]: row 8*by+u, column 8*bx+v
    coef = y.transpose(0, 2, 1, 3).reshape(8 * bv, 8 * bh).astype(np.int16, copy=False)
    return JpegDct(np.ascontiguousarray(coef), table.astype(np.float32))


def encode_reference_jpeg(image: np.ndarray) -> bytes:
    """``uint8 [H, W, 3]`` -> Pillow JPEG at quality 100, 4:4:4: the official re-save of a
    non-JPEG input (``convert('RGB').save(tmp, quality=100, subsampling=0)``)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=REENCODE_QUALITY, subsampling=0)
    return buffer.getvalue()


def decode_rgb(data: bytes) -> np.ndarray:
    """JPEG bytes -> ``uint8 [H, W, 3]`` RGB, decoded by Pillow as ``load_image`` decodes files."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def jpeg_domain_input(image: np.ndarray, jpeg: JpegSource | None) -> tuple[np.ndarray, JpegDct]:
    """The pixels and coefficients a JPEG-domain method sees for ``image``.

    ``jpeg``: the JPEG that ``image`` is the decoding of (the source file, or the bytes a JPEG
    perturbation produced), or ``None`` when ``image`` came from anything else; it is then
    re-encoded by :func:`encode_reference_jpeg` and replaced by the decoded re-encode.
    """
    if jpeg is None:
        jpeg = encode_reference_jpeg(image)
        image = decode_rgb(jpeg)
    return image, read_jpeg_dct(jpeg)


def _jpeg_dct_arrays(image: np.ndarray, jpeg: JpegSource | None
                     ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    image, dct = jpeg_domain_input(image, jpeg)
    return image, dct.arrays()


FILE_INPUTS: dict[str, Callable[[np.ndarray, JpegSource | None],
                                tuple[np.ndarray, dict[str, np.ndarray]]]] = {
    JPEG_DCT: _jpeg_dct_arrays,
}
"""Inputs computed from the file, by name: ``(image, jpeg) -> (image the method sees, arrays)``.
``jpeg_dct``: ``coef`` int16 [8*bv, 8*bh] and ``qtable`` float32 [8, 8] (:class:`JpegDct`)."""


def check_file_inputs(names: Sequence[str], who: str) -> None:
    unknown = [n for n in names if n not in FILE_INPUTS]
    if unknown:
        raise ValueError(f"{who} asks for file inputs {unknown}; known are {sorted(FILE_INPUTS)}")
    if len(names) > 1:  # each may replace the pixels; two would need an order between them
        raise ValueError(f"{who} asks for file inputs {list(names)}; at most one is supported")


def file_inputs(names: Sequence[str], image: np.ndarray, jpeg: JpegSource | None
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Compute the file inputs ``names`` for ``image`` (see :func:`jpeg_domain_input` for
    ``jpeg``); returns the image the method sees and the arrays under flat keys
    ``"<name>.<field>"`` (``jpeg_dct.coef``, ``jpeg_dct.qtable``), the form in which they are
    batched and reach ``predict(images, extras=...)`` and ``loss(batch)``. No names: unchanged."""
    extras: dict[str, np.ndarray] = {}
    for name in names:
        image, arrays = FILE_INPUTS[name](image, jpeg)
        extras.update({f"{name}.{key}": value for key, value in arrays.items()})
    return image, extras


def source_jpeg(path: str | Path) -> Path | None:
    """``path`` when the file is a JPEG (its own coefficients are used), else ``None``."""
    return Path(path) if is_jpeg(Path(path)) else None


def grid_crop(image: np.ndarray, mask: np.ndarray, extras: dict[str, np.ndarray], size: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A random ``size``² training crop on the 8×8 JPEG grid, as CAT-Net's training data
    (``AbstractDataset._create_tensor``): offsets ``randint(0, H - size) // 8 * 8``; a picture
    smaller than the crop is padded bottom/right first.

    ``image`` ``uint8 [H, W, 3]`` -> ``float32 [size, size, 3]`` in [0, 1], padded with 0.5
    (the official 127.5, which is 0 after CAT-Net's normalisation); ``mask`` ``[H, W]`` ->
    ``[size, size]`` padded with 0 (the official code ignores padded pixels, label -1; the
    training batch holds {0, 1} only); coefficient planes (keys ending in ``.coef``, ``[8*bv,
    8*bh]``) cropped alike and padded with 0; other arrays (tables) unchanged.
    """
    if size % 8:
        raise ValueError(f"a JPEG-grid crop needs a multiple of 8, got image_size={size}")
    h, w = image.shape[:2]
    top = int(rng.integers(0, max(h - size, 0) + 1)) // 8 * 8
    left = int(rng.integers(0, max(w - size, 0) + 1)) // 8 * 8

    def cut(array: np.ndarray, fill: float, dtype: np.dtype) -> np.ndarray:
        out = np.full((size, size) + array.shape[2:], fill, dtype=dtype)
        part = array[top:top + size, left:left + size]
        out[:part.shape[0], :part.shape[1]] = part
        return out

    crop = cut(image.astype(np.float32) / np.float32(255.0), 0.5, np.float32)
    cropped = {key: cut(value, 0, value.dtype) if key.endswith(".coef") else value
               for key, value in extras.items()}
    return crop, cut(mask, 0, mask.dtype), cropped
