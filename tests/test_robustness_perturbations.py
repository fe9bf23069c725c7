"""Perturbations: contract over the whole registry, then each built-in against hand-computed or
reference (OpenCV / NumPy) values."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from imlbench.registry import PERTURBATIONS
from imlbench.robustness import CLEAN, GRIDS, PerturbationError, PerturbationSpec, parse_spec
from imlbench.robustness.perturbations import (GaussianBlur, GaussianNoise, GaussianNoiseVar, Jpeg,
                                               Resize, encode_jpeg, scaled_size)
from imlbench.seeding import rng_for


def textured(h: int = 32, w: int = 40, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient plus noise: compressible but not trivially so. uint8 [h, w, 3]."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy) * 100 / (h + w)], axis=-1)
    noise = np.random.default_rng(seed).normal(0, 20, (h, w, 3))
    return np.clip(base + noise + 20, 0, 255).astype(np.uint8)


def mid_severity(name: str):
    grid = next((g[name] for g in GRIDS.values() if name in g), None)
    assert grid is not None, f"perturbation {name!r} has no severities in any of GRIDS"
    return grid[len(grid) // 2]


ALL_NAMES = PERTURBATIONS.list(include_test_only=True)


# -- contract over the registry -------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 24)])
def test_perturbation_contract(name, shape):
    cls = PERTURBATIONS.get(name)
    spec = PerturbationSpec(((name, mid_severity(name)),))
    image = textured(*shape)
    before = image.copy()
    out = spec.apply(image, "sample-1")
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    np.testing.assert_array_equal(image, before)  # input untouched
    np.testing.assert_array_equal(spec.apply(image.copy(), "sample-1"), out)  # deterministic
    if not cls.changes_geometry:
        assert out.shape == image.shape
    elif shape == (17, 24):  # a geometry-changing perturbation must show it at a mid severity
        assert out.shape != image.shape
    # a non-contiguous view is handled like its contiguous copy
    flipped = image[:, ::-1]
    np.testing.assert_array_equal(spec.apply(flipped, "sample-1"),
                                  spec.apply(np.ascontiguousarray(flipped), "sample-1"))


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_grid_severity_is_valid_and_perturbs(name):
    image = textured(16, 16)
    for grid in GRIDS.values():
        for severity in grid.get(name, ()):
            out = PerturbationSpec(((name, severity),)).apply(image, "s")
            assert out.shape != image.shape or not np.array_equal(out, image), (name, severity)


WITH_IDENTITY = [n for n in ALL_NAMES if PERTURBATIONS.get(n).identity_severity is not None]


def test_some_perturbations_have_an_identity_severity():
    assert WITH_IDENTITY  # else the next test would silently run on nothing


@pytest.mark.parametrize("name", WITH_IDENTITY)
def test_identity_severity_returns_the_input_object(name):
    cls = PERTURBATIONS.get(name)
    image = textured(5, 7)
    assert cls(cls.identity_severity).apply(image, rng_for("x")) is image


def test_clean_returns_the_input_object():
    image = textured(5, 7)
    assert CLEAN.apply(image, "any") is image
    assert parse_spec("none").apply(image, "any") is image


def test_noise_is_seeded_by_sample_id_not_by_call_order():
    image = textured(8, 8)
    spec = parse_spec("gaussian_noise:8")
    a1, b1 = spec.apply(image, "a"), spec.apply(image, "b")
    b2, a2 = spec.apply(image, "b"), spec.apply(image, "a")
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(a1, b1)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)])
def test_bad_images_are_refused(bad):
    with pytest.raises(PerturbationError, match=r"uint8 \[H, W, 3\]"):
        Jpeg(75).apply(bad, rng_for("x"))


@pytest.mark.parametrize("cls, bad, allowed", [
    (Jpeg, 0, r"\[1, 100\]"), (Jpeg, 101, r"\[1, 100\]"), (Jpeg, 75.5, "integer"),
    (Resize, 0, r"\(0, 8\]"), (Resize, -0.5, r"\(0, 8\]"), (Resize, 9, r"\(0, 8\]"),
    (GaussianBlur, 4, "odd"), (GaussianBlur, -3, "odd"), (GaussianBlur, 0, "odd"),
    (GaussianNoise, -1, r"\[0, 255\]"), (GaussianNoiseVar, -1, r"\[0, 65025\]"),
    (Jpeg, True, "JPEG quality"), (Jpeg, "75", "JPEG quality"),
    (GaussianNoise, math.nan, "standard deviation"),
])
def test_bad_severities_say_what_is_allowed(cls, bad, allowed):
    with pytest.raises(PerturbationError, match=allowed) as err:
        cls(bad)
    assert cls.name in str(err.value) and repr(bad) in str(err.value)


def test_integral_floats_become_ints_for_integer_severities():
    assert Jpeg(75.0).severity == 75 and isinstance(Jpeg(75.0).severity, int)
    assert isinstance(GaussianBlur(np.int64(7)).severity, int)
    assert isinstance(Resize(2).severity, float)


# -- JPEG ------------------------------------------------------------------------------------
def test_jpeg_file_size_and_error_grow_as_quality_falls():
    image = textured(48, 48)
    qualities = [100, 90, 75, 50, 25, 10, 1]
    sizes = [len(encode_jpeg(image, q)) for q in qualities]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    errors = [np.abs(Jpeg(q).apply(image, rng_for("x")).astype(int) - image).mean() for q in qualities]
    assert errors == sorted(errors)


def test_jpeg_equals_opencv_reference_with_the_documented_settings():
    """Pillow and OpenCV wrap the same libjpeg: 4:2:0, IJG tables -> bit-identical output."""
    image = textured(24, 40)
    for quality in (30, 75, 95):
        params = [cv2.IMWRITE_JPEG_QUALITY, quality,
                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), params)
        assert ok
        reference = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
        assert len(encode_jpeg(image, quality)) == data.size
        np.testing.assert_array_equal(Jpeg(quality).apply(image, rng_for("x")), reference)


# -- resize ----------------------------------------------------------------------------------
@pytest.mark.parametrize("hw, scale, expected", [
    ((3, 5), 0.5, (2, 3)),      # 1.5 -> 2, 2.5 -> 3: halves round up (not to even)
    ((5, 3), 0.5, (3, 2)),
    ((1, 1), 0.25, (1, 1)),     # never below one pixel
    ((10, 7), 1.5, (15, 11)),   # 10.5 -> 11
    ((64, 48), 0.25, (16, 12)),
    ((7, 9), 0.75, (5, 7)),     # 5.25 -> 5, 6.75 -> 7
])
def test_resize_output_size(hw, scale, expected):
    assert scaled_size(*hw, scale) == expected
    assert Resize(scale).apply(textured(*hw), rng_for("x")).shape == (*expected, 3)


def test_resize_down_averages_areas_and_up_keeps_flat_regions():
    blocks = np.array([[10, 20], [30, 40]], dtype=np.uint8).repeat(2, 0).repeat(2, 1)
    image = np.stack([blocks, blocks + 1, blocks + 2], axis=-1)  # 4x4, constant 2x2 blocks
    image[0, 0] = [14, 15, 16]  # the first block's mean becomes 11, 12, 13
    down = Resize(0.5).apply(image, rng_for("x"))
    np.testing.assert_array_equal(down[..., 0], [[11, 20], [30, 40]])
    flat = np.full((5, 6, 3), 77, np.uint8)
    np.testing.assert_array_equal(Resize(1.5).apply(flat, rng_for("x")), np.full((8, 9, 3), 77))


# -- blur ------------------------------------------------------------------------------------
def _separable_blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Reference: reflect-101 padding (NumPy 'reflect') and separable correlation, in float."""
    r = len(kernel) // 2
    padded = np.pad(image.astype(np.float64), ((r, r), (r, r), (0, 0)), mode="reflect")
    rows = sum(k * padded[i:i + image.shape[0]] for i, k in enumerate(kernel))
    return sum(k * rows[:, i:i + image.shape[1]] for i, k in enumerate(kernel))


def test_blur_k3_uses_opencv_fixed_table():
    image = textured(20, 20)
    expected = _separable_blur(image, np.array([0.25, 0.5, 0.25]))
    out = GaussianBlur(3).apply(image, rng_for("x")).astype(np.float64)
    assert np.abs(out - expected).max() <= 1.0


def test_blur_k11_uses_sigma_from_kernel_rule():
    image = textured(30, 30)
    blur = GaussianBlur(11)
    assert blur.sigma == pytest.approx(2.0)
    x = np.arange(11) - 5
    kernel = np.exp(-x ** 2 / (2 * blur.sigma ** 2))
    expected = _separable_blur(image, kernel / kernel.sum())
    out = blur.apply(image, rng_for("x")).astype(np.float64)
    assert np.abs(out - expected).max() <= 1.0


def test_blur_sigma_rule_values():
    assert [round(GaussianBlur(k).sigma, 6) for k in (3, 7, 23)] == [0.8, 1.4, 3.8]


def test_blur_kernel_larger_than_image_is_fine():
    out = GaussianBlur(23).apply(textured(3, 5), rng_for("x"))
    assert out.shape == (3, 5, 3)


# -- noise -----------------------------------------------------------------------------------
GREY = np.full((64, 64, 3), 128, np.uint8)


@pytest.mark.parametrize("std", [2, 8, 16])
def test_noise_std_matches_request(std):
    out = GaussianNoise(std).apply(GREY, rng_for("grey")).astype(np.float64)
    assert out.std() == pytest.approx(std, rel=0.03)
    assert out.mean() == pytest.approx(128, abs=0.1 * std / 8 + 0.05)  # rounding is unbiased


@pytest.mark.parametrize("var", [3, 11, 23])
def test_noise_var_std_is_sqrt_var_and_truncates_like_benco(var):
    out = GaussianNoiseVar(var).apply(GREY, rng_for("grey")).astype(np.float64)
    assert out.std() == pytest.approx(math.sqrt(var), rel=0.04)
    assert out.mean() == pytest.approx(127.5, abs=0.1)  # astype(uint8) truncation: -0.5 on average


def test_noise_var_is_the_std_noise_truncated_instead_of_rounded():
    image = textured(16, 16)
    by_std = GaussianNoise(math.sqrt(11)).apply(image, rng_for("s")).astype(int)
    by_var = GaussianNoiseVar(11).apply(image, rng_for("s")).astype(int)
    difference = by_std - by_var
    assert difference.min() >= 0 and difference.max() <= 1 and difference.any()


def test_noise_clips_to_uint8_range():
    black, white = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)
    assert GaussianNoise(50).apply(black, rng_for("b")).min() == 0
    assert GaussianNoise(50).apply(white, rng_for("w")).max() == 255


# -- chains ----------------------------------------------------------------------------------
def test_chain_order_is_respected_and_equals_manual_composition():
    image, sid = textured(24, 32), "img-7"
    chain = parse_spec("resize:0.5+jpeg:75")
    manual = Jpeg(75).apply(Resize(0.5).apply(image, rng_for(sid, "resize:0.5", 0)),
                            rng_for(sid, "jpeg:75", 1))
    np.testing.assert_array_equal(chain.apply(image, sid), manual)
    reversed_chain = parse_spec("jpeg:75+resize:0.5")
    assert not np.array_equal(reversed_chain.apply(image, sid), chain.apply(image, sid))


def test_chain_seeds_each_step_from_sample_label_and_index():
    image, sid = textured(16, 16), "img-3"
    manual = Jpeg(90).apply(GaussianNoise(4).apply(image, rng_for(sid, "gaussian_noise:4", 0)),
                            rng_for(sid, "jpeg:90", 1))
    np.testing.assert_array_equal(parse_spec("gaussian_noise:4+jpeg:90").apply(image, sid), manual)
    # the same step twice draws different noise (different index)
    twice = parse_spec("gaussian_noise:4+gaussian_noise:4").apply(GREY, sid).astype(float)
    assert twice.std() == pytest.approx(4 * math.sqrt(2), rel=0.05)
