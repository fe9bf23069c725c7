"""The JPEG-domain reader (jpeglib) against libjpeg's own decoding, and the bytes perturbations
hand on (a JPEG perturbation's file, decoded once)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imlbench.datasets.jpeg_dct import (JPEG_DCT, decode_rgb, encode_reference_jpeg, file_inputs,
                                        grid_crop, is_jpeg, jpeg_domain_input, read_jpeg_dct,
                                        source_jpeg)
from imlbench.robustness import parse_spec
from imlbench.robustness.perturbations import decode_jpeg, encode_jpeg

# An asymmetric table: reading it transposed (or in zigzag order) breaks the reconstruction.
TABLE = (np.arange(64).reshape(8, 8) % 7 + 1 + np.arange(8)[None, :]).astype(int)


def picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colours plus noise: many non-zero coefficients, few clipped pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = np.stack([128 + 60 * np.sin(xx / 5 + c) * np.cos(yy / 7 - c) for c in range(3)], -1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def idct_matrix() -> np.ndarray:
    """Orthonormal 8-point DCT-II basis ``C[k, n]`` (JPEG's transform): x = C.T @ X @ C."""
    k, n = np.mgrid[:8, :8]
    c = np.sqrt(2 / 8) * np.cos((2 * n + 1) * k * np.pi / 16)
    c[0] /= np.sqrt(2)
    return c


def reconstruct_y(coef: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Dequantise and inverse-DCT every 8×8 block of a 2-D coefficient plane; + 128 level shift."""
    c = idct_matrix()
    h, w = coef.shape
    blocks = coef.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3) * table
    pixels = np.einsum("ku,abkl,lv->abuv", c, blocks, c) + 128
    return pixels.transpose(0, 2, 1, 3).reshape(h, w)


@pytest.mark.parametrize("mode", ["L", "YCbCr444"])
def test_coefficients_and_table_are_libjpegs(mode, tmp_path):
    h, w = 45, 61  # not multiples of 8: the plane covers ceil(H/8) x ceil(W/8) blocks
    image = picture(h, w)
    path = tmp_path / "x.jpg"
    if mode == "L":
        Image.fromarray(image).convert("L").save(path, qtables=[TABLE.flatten().tolist()])
    else:
        Image.fromarray(image).save(path, qtables=[TABLE.flatten().tolist()] * 2, subsampling=0)
    dct = read_jpeg_dct(path)
    assert dct.coef.dtype == np.int16 and dct.coef.shape == (48, 64)
    assert dct.qtable.dtype == np.float32 and np.array_equal(dct.qtable, TABLE)
    with Image.open(path) as im:
        if mode != "L":
            im.draft("YCbCr", im.size)  # libjpeg's Y plane itself, no colour conversion
        decoded_y = np.asarray(im)[..., 0] if mode != "L" else np.asarray(im)
    ours = np.clip(reconstruct_y(dct.coef.astype(np.float64), dct.qtable), 0, 255)[:h, :w]
    # libjpeg's integer IDCT and rounding differ from the exact transform by at most one level
    assert np.abs(ours - decoded_y.astype(np.float64)).max() <= 1.0
    assert np.mean(np.abs(np.round(ours) - decoded_y) > 0) < 0.05
    # the same reader from bytes
    again = read_jpeg_dct(path.read_bytes())
    assert np.array_equal(again.coef, dct.coef) and np.array_equal(again.qtable, dct.qtable)


def test_the_y_table_is_the_one_its_component_uses(tmp_path):
    """4:2:0 colour with the default two tables: Y uses slot 0 (luminance), not chroma's."""
    path = tmp_path / "x.jpg"
    Image.fromarray(picture(30, 50)).save(path, quality=60)
    with Image.open(path) as im:
        luma = np.asarray(im.quantization[0]).reshape(8, 8)
    dct = read_jpeg_dct(path)
    assert np.array_equal(dct.qtable, luma) and dct.coef.shape == (32, 56)


def test_jpeg_test_reads_the_content_not_the_extension(tmp_path):
    png_named_jpg = tmp_path / "fake.jpg"
    Image.fromarray(picture(16, 16)).save(png_named_jpg, format="PNG")
    real = tmp_path / "real.png"
    Image.fromarray(picture(16, 16)).save(real, format="JPEG")
    assert not is_jpeg(png_named_jpg) and source_jpeg(png_named_jpg) is None
    assert is_jpeg(real) and source_jpeg(real) == real and is_jpeg(real.read_bytes())
    assert not is_jpeg(b"not an image")


def test_non_jpeg_pixels_become_the_official_q100_444_resave():
    image = picture(21, 35)
    seen, dct = jpeg_domain_input(image, None)
    data = encode_reference_jpeg(image)
    with Image.open(io.BytesIO(data)) as im:
        assert im.layer[0][1:3] == (1, 1) and im.layer[1][1:3] == (1, 1)  # 4:4:4 sampling
    assert np.array_equal(dct.qtable, np.ones((8, 8)))
    assert np.array_equal(seen, decode_rgb(data)) and not np.array_equal(seen, image)
    assert np.array_equal(dct.coef, read_jpeg_dct(data).coef)


def test_a_jpeg_source_is_used_as_it_is(tmp_path):
    image = picture(24, 40)
    path = tmp_path / "x.jpg"
    Image.fromarray(image).save(path, quality=70)
    pixels = decode_rgb(path.read_bytes())
    seen, extras = file_inputs((JPEG_DCT,), pixels, path)
    assert seen is pixels
    assert np.array_equal(extras["jpeg_dct.coef"], read_jpeg_dct(path).coef)
    assert sorted(extras) == ["jpeg_dct.coef", "jpeg_dct.qtable"]
    assert file_inputs((), pixels, path) == (pixels, {})


def test_a_jpeg_perturbation_hands_on_the_file_it_produced():
    image, sid = picture(40, 56), "set/img-3"
    spec = parse_spec("jpeg:70")
    pixels, data = spec.apply_encoded(image, sid)
    assert isinstance(data, bytes) and data == encode_jpeg(image, 70)
    assert np.array_equal(pixels, spec.apply(image, sid)) and np.array_equal(pixels, decode_jpeg(data))
    seen, extras = file_inputs((JPEG_DCT,), pixels, data)
    assert seen is pixels  # decoded once, by the perturbation
    written = read_jpeg_dct(data)
    assert np.array_equal(extras["jpeg_dct.coef"], written.coef)
    assert np.array_equal(extras["jpeg_dct.qtable"], written.qtable)
    with Image.open(io.BytesIO(data)) as im:  # q70's luminance table, not q100's ones
        assert np.array_equal(written.qtable, np.asarray(im.quantization[0]).reshape(8, 8))


def test_other_steps_drop_or_keep_the_encoding(tmp_path):
    image, source = picture(32, 32), tmp_path / "src.jpg"
    assert parse_spec("none").apply_encoded(image, "a", source) == (image, source)
    kept = parse_spec("jpeg:80+gaussian_blur:1").apply_encoded(image, "a")  # identity step
    assert kept[1] == encode_jpeg(image, 80)
    for text in ("jpeg:80+gaussian_noise:2", "resize:0.5", "gaussian_blur:3"):
        pixels, data = parse_spec(text).apply_encoded(image, "a", source)
        assert data is None and np.array_equal(pixels, parse_spec(text).apply(image, "a"))
    last = parse_spec("resize:0.5+jpeg:60").apply_encoded(image, "a", source)
    assert last[1] == encode_jpeg(parse_spec("resize:0.5").apply(image, "a"), 60)


def test_grid_crop_keeps_pixels_and_blocks_aligned():
    image = picture(45, 70)
    _, extras = file_inputs((JPEG_DCT,), image, None)
    image, _ = jpeg_domain_input(image, None)
    mask = np.zeros((45, 70), np.float32)
    mask[10:20, 30:50] = 1
    rng = np.random.default_rng(0)
    for _ in range(5):
        state = rng.bit_generator.state
        crop, m, ex = grid_crop(image, mask, extras, 32, rng)
        rng2 = np.random.default_rng()
        rng2.bit_generator.state = state
        top = int(rng2.integers(0, 45 - 32 + 1)) // 8 * 8
        left = int(rng2.integers(0, 70 - 32 + 1)) // 8 * 8
        assert np.array_equal(crop, image[top:top + 32, left:left + 32] / np.float32(255))
        assert np.array_equal(m, mask[top:top + 32, left:left + 32])
        assert np.array_equal(ex["jpeg_dct.coef"], extras["jpeg_dct.coef"][top:top + 32, left:left + 32])
        assert ex["jpeg_dct.qtable"] is extras["jpeg_dct.qtable"]
    small, m, ex = grid_crop(image[:20, :20], mask[:20, :20],
                             {"jpeg_dct.coef": extras["jpeg_dct.coef"][:24, :24]}, 32, rng)
    assert small.shape == (32, 32, 3) and np.all(small[20:] == 0.5) and np.all(m[20:] == 0)
    assert np.all(ex["jpeg_dct.coef"][24:] == 0) and ex["jpeg_dct.coef"].shape == (32, 32)
    with pytest.raises(ValueError, match="multiple of 8"):
        grid_crop(image, mask, extras, 30, rng)


def test_an_unreadable_jpeg_is_a_dataset_error(tmp_path):
    from imlbench.datasets.base import DatasetError

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(encode_jpeg(picture(16, 16), 90)[:40])
    with pytest.raises(DatasetError, match="bad.jpg"):
        read_jpeg_dct(Path(bad))
