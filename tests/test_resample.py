"""Resampling kernels and input-policy shaping: each named kernel is the library operation it
names (cv2 and PIL on uint8 for inputs), and canvas/pad policies crop back to the right pixels."""
from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from imlbench.benchmark.runner import EvalItem, evaluate_cell, to_ground_truth
from imlbench.datasets.base import load_image
from imlbench.methods.base import InputPolicy, Method, Prediction
from imlbench.methods.resample import KERNELS, resize_image, resize_maps, shape_for_policy
from tests.helpers import make_folder_dataset


def picture(h: int = 37, w: int = 53, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", [(16, 24), (64, 80)])  # down and up
def test_cv2_and_pil_kernels_resample_the_uint8_image_as_the_libraries_do(size):
    img = picture()
    h, w = size
    cases = {"cv2_linear": cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR),
             "cv2_cubic": cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC),
             "cv2_area": cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA),
             "pil_bilinear": np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR)),
             "pil_bicubic": np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BICUBIC))}
    for kernel, expected in cases.items():
        got = resize_image(img, size, kernel)
        assert got.shape == (3, h, w) and got.dtype == torch.float32
        assert torch.equal(got, torch.from_numpy(expected).permute(2, 0, 1).float() / 255), kernel


def test_torch_kernels_and_the_default_match_torch_interpolate():
    img = picture()
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255
    aa = F.interpolate(x, size=(16, 24), mode="bilinear", align_corners=False, antialias=True)
    plain = F.interpolate(x, size=(16, 24), mode="bilinear", align_corners=False)
    assert torch.equal(resize_image(img, (16, 24)), aa[0].clamp(0, 1))
    assert torch.equal(resize_image(img, (16, 24), "bilinear"), plain[0].clamp(0, 1))
    assert not torch.equal(aa, plain)  # the two differ when shrinking, so the names matter


def test_map_kernels():
    maps = torch.rand(2, 1, 8, 12)
    ac = F.interpolate(maps, size=(30, 41), mode="bilinear", align_corners=True)
    assert torch.equal(resize_maps(maps, (30, 41), "bilinear_ac"), ac)
    cv = cv2.resize(maps[1, 0].numpy(), (41, 30), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(resize_maps(maps, (30, 41), "cv2_linear")[1, 0].numpy(), cv)
    cubic = resize_maps(maps, (30, 41), "bicubic")
    assert cubic.min() >= 0 and cubic.max() <= 1
    assert resize_maps(maps, (8, 12), "cv2_linear") is maps  # identity at equal size
    stored = np.floor(maps[0, 0].numpy() * 255).astype(np.uint8)  # an 8-bit map, as a PNG holds it
    png_resized = cv2.resize(stored, (41, 30), interpolation=cv2.INTER_LINEAR) / np.float32(255)
    got = resize_maps(torch.from_numpy(stored / np.float32(255))[None, None], (30, 41), "cv2_linear_u8")
    assert np.array_equal(got[0, 0].numpy(), png_resized.astype(np.float32))


def test_every_kernel_name_resizes_maps():
    maps = torch.rand(1, 1, 5, 7)
    for kernel in KERNELS:
        assert resize_maps(maps, (9, 11), kernel).shape == (1, 1, 9, 11), kernel


def test_policy_rejects_unknown_values_naming_the_field():
    with pytest.raises(ValueError, match="InputPolicy.kernel='lanczos'"):
        InputPolicy("resize", 64, kernel="lanczos")
    with pytest.raises(ValueError, match="InputPolicy.output_kernel"):
        InputPolicy("native", output_kernel="area")
    with pytest.raises(ValueError, match="InputPolicy.kernel='bilinear_ac'"):
        InputPolicy("resize", 64, kernel="bilinear_ac")  # a map convention, not an image resize
    with pytest.raises(ValueError, match="needs a size"):
        InputPolicy("canvas")
    with pytest.raises(ValueError, match="pad_value"):
        InputPolicy("pad", pad_value=127.5)


def test_canvas_pads_top_left_with_the_pixel_value_and_keeps_the_picture_exact():
    img = picture(20, 30)
    shaped = shape_for_policy(img, InputPolicy("canvas", 32, pad_value=0.5))
    assert shaped.image.shape == (3, 32, 32) and shaped.valid == (20, 30)
    assert torch.equal(shaped.image[:, :20, :30], torch.from_numpy(img).permute(2, 0, 1).float() / 255)
    assert torch.all(shaped.image[:, 20:, :] == 0.5) and torch.all(shaped.image[:, :, 30:] == 0.5)


def test_canvas_oversize_crop_shows_the_top_left_and_resize_keeps_the_aspect():
    img = picture(40, 64)
    mask = torch.zeros(1, 40, 64)
    mask[:, :, 40:] = 1
    cut = shape_for_policy(img, InputPolicy("canvas", 32, oversize="crop"), mask)
    assert cut.valid == (32, 32) and cut.covers == (32 / 40, 32 / 64)
    assert torch.equal(cut.image, torch.from_numpy(img[:32, :32]).permute(2, 0, 1).float() / 255)
    assert cut.mask.sum() == 0  # the tampered right part is outside the canvas
    fit = shape_for_policy(img, InputPolicy("canvas", 32, oversize="resize"), mask)
    assert fit.valid == (20, 32) and fit.covers == (1.0, 1.0)
    assert torch.all(fit.image[:, 20:] == 0)


def test_map_of_a_cutting_canvas_scores_the_unseen_part_zero():
    item = EvalItem("s", torch.zeros(3, 32, 32), torch.zeros(40, 64, dtype=torch.bool), 1,
                    crop=(32, 32), covers=(32 / 40, 32 / 64))
    prob = to_ground_truth(torch.ones(1, 32, 32), item, (32, 32), "bilinear_aa")
    assert prob.shape == (40, 64)
    assert np.all(prob[:32, :32] == 1) and np.all(prob[32:] == 0) and np.all(prob[:, 32:] == 0)


class _Echo(Method):
    """Test method: the map is the input's red channel; the extra map its green channel."""

    input_policy: ClassVar[InputPolicy] = InputPolicy("canvas", 64, oversize="crop")

    def predict(self, images, masks=None):
        return Prediction(images[:, :1], extra_maps={"green": images[:, 1:2]})


def test_runner_maps_canvas_predictions_and_extra_maps_back_to_the_ground_truth(tmp_path):
    data = make_folder_dataset(tmp_path / "d", n_tampered=2, n_authentic=0, sizes=((48, 80),))
    out = tmp_path / "pred"
    res = evaluate_cell(_Echo(), data, device="cpu", num_workers=0, progress=False,
                        save_predictions=out)
    assert res.n_images == 2
    for sample in data.samples:
        img = load_image(sample.image_path)
        stem = sample.image_path.stem
        red = np.load(out / f"{stem}.npy")
        green = np.load(out / "green" / f"{stem}.npy")
        assert red.shape == green.shape == img.shape[:2]
        assert np.allclose(red[:, :64], img[:, :64, 0] / 255, atol=1e-6) and np.all(red[:, 64:] == 0)
        assert np.allclose(green[:, :64], img[:, :64, 1] / 255, atol=1e-6)
