"""Train-time augmentation: every transform keeps image and mask aligned, photometric steps are
the robustness perturbations themselves, recipes name their mistakes, the training stream
augments and crops reproducibly."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import yaml

from imlbench.benchmark.recipes import load_recipe
from imlbench.benchmark.train_data import TrainDataset
from imlbench.datasets.base import load_image
from imlbench.errors import ConfigError
from imlbench.methods.resample import to_float
from imlbench.registry import AUGMENTATIONS, PERTURBATIONS
from imlbench.robustness import GRIDS, parse_spec
from imlbench.robustness.augment import Augmentation, parse_augment, preset_names
from tests.helpers import make_folder_dataset

# Values for parameters that have no default (a new transform without defaults gets a line here).
REQUIRED = {("scale", "factor"): [0.55, 1.7], ("pad_to", "size"): [90], ("short_side", "size"): [40, 130]}


def _severities(name: str) -> list[float]:
    for grid in GRIDS.values():
        if name in grid:
            return [grid[name][0], grid[name][-1]]
    raise AssertionError(f"perturbation {name!r} is in no grid: give it test severities here")


def _cases() -> list[tuple[str, dict]]:
    cases = []
    for name in AUGMENTATIONS.list():
        cls = AUGMENTATIONS.get(name)
        choices = {p: REQUIRED.get((name, p)) or list(cls.defaults.get(p) or
                                                     cls.default_ranges.get(p)) for p in cls.params}
        cases.append((name, {"choices": choices} if choices else {}))
    for name in PERTURBATIONS.list():
        cases.append((name, {"choices": {"severity": _severities(name)}}))
    return cases


def _marked_picture(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 61×77 picture, dark except an L-shaped bright region exactly where the mask is 1 (an
    L has no symmetry, so a flip, turn or transpose that moved only one of the two shows)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, size=(61, 77, 3), dtype=np.uint8)
    mask = np.zeros((61, 77), np.uint8)
    mask[10:45, 12:24] = 1
    mask[35:45, 12:50] = 1
    image[mask == 1] = rng.integers(200, 256, size=(int(mask.sum()), 3), dtype=np.uint8)
    return image, mask


@pytest.mark.parametrize("name,params", _cases(), ids=[c[0] for c in _cases()])
def test_each_transform_keeps_image_and_mask_aligned(name, params):
    image, mask = _marked_picture()
    steps = parse_augment([{"transform": name, **params}])
    values = list(steps[0].choices.values())[0] if steps[0].choices else [None]
    for i in range(3 * len(values)):
        out, out_mask = Augmentation(steps).apply(image, mask, np.random.default_rng(i))
        assert out.dtype == np.uint8 and out.ndim == 3 and out_mask.dtype == np.uint8
        assert out.shape[:2] == out_mask.shape and set(np.unique(out_mask)) <= {0, 1}
        cls = AUGMENTATIONS.get(name) if name in AUGMENTATIONS else PERTURBATIONS.get(name)
        if getattr(cls, "geometric", False) or getattr(cls, "changes_geometry", False):
            # the bright pixels are where the mask is, except within a pixel of the region's
            # edge (a resampled picture blends there, its mask is nearest-neighbour)
            bright = out.mean(axis=2) > 130
            kernel = np.ones((3, 3), np.uint8)
            band = cv2.dilate(out_mask, kernel) != cv2.erode(out_mask, kernel)
            off = (bright != (out_mask == 1)) & ~band
            assert not off.any(), f"{name}: {int(off.sum())} pixels off the mask, away from its edge"
            assert out_mask.sum() > 0
        else:  # photometric: the mask is untouched
            assert out.shape == image.shape and np.array_equal(out_mask, mask)


def test_geometric_transforms_move_the_pair_as_numpy_does():
    image, mask = _marked_picture()
    rng = np.random.default_rng(0)
    for name, expect in [("hflip", lambda a: a[:, ::-1]), ("vflip", lambda a: a[::-1]),
                         ("transpose", lambda a: np.swapaxes(a, 0, 1))]:
        out, m = Augmentation(parse_augment([{"transform": name}])).apply(image, mask, rng)
        assert np.array_equal(out, expect(image)) and np.array_equal(m, expect(mask))
    out, m = Augmentation(parse_augment([{"transform": "rot90", "choices": {"k": [1]}}])).apply(
        image, mask, rng)
    assert np.array_equal(out, np.rot90(image)) and np.array_equal(m, np.rot90(mask))
    out, m = Augmentation(parse_augment([{"transform": "pad_to", "choices": {"size": [80]}}])).apply(
        image, mask, rng)
    assert out.shape[:2] == (80, 80) and np.array_equal(out[9:70, 1:78], image)  # centred
    assert np.array_equal(out[8, 1:78], image[1]) and np.array_equal(m[8, 1:78], mask[1])  # reflect-101
    out, m = Augmentation(parse_augment([{"transform": "scale", "choices": {"factor": [0.5]}}])).apply(
        image, mask, rng)
    assert out.shape[:2] == m.shape == (30, 38)  # int(61 * 0.5), int(77 * 0.5), as albumentations


@pytest.mark.parametrize("quality", [50, 70, 95])
def test_train_time_jpeg_is_the_jpeg_perturbation(quality):
    image, mask = _marked_picture(1)
    steps = parse_augment([{"transform": "jpeg", "ranges": {"severity": [quality, quality]}}])
    out, out_mask = Augmentation(steps).apply(image, mask, np.random.default_rng(0))
    assert np.array_equal(out, PERTURBATIONS.get("jpeg")(quality).apply(image, np.random.default_rng(1)))
    assert np.array_equal(out, parse_spec(f"jpeg:{quality}").apply(image, "any-sample"))
    assert np.array_equal(out_mask, mask)


def test_gates_and_one_of_weights_draw_as_declared():
    image, mask = _marked_picture()
    gated = Augmentation(parse_augment([{"transform": "hflip", "p": 0.25}]))
    flipped = [not np.array_equal(gated.apply(image, mask, np.random.default_rng(i))[0], image)
               for i in range(2000)]
    assert abs(np.mean(flipped) - 0.25) < 0.03
    never = Augmentation(parse_augment([{"transform": "hflip", "p": 0.0}]))
    assert all(np.array_equal(never.apply(image, mask, np.random.default_rng(i))[0], image)
               for i in range(200))
    pick = Augmentation(parse_augment([{"transform": "one_of", "of": [
        {"transform": "hflip", "p": 0.2}, {"transform": "vflip", "p": 0.6}]}]))
    vertical = [np.array_equal(pick.apply(image, mask, np.random.default_rng(i))[0], image[::-1])
                for i in range(2000)]
    assert abs(np.mean(vertical) - 0.75) < 0.03  # weights ∝ the children's p, as OneOf


def test_integer_parameters_refuse_fractions():
    for bad in ([{"transform": "pad_to", "choices": {"size": [100.5]}}],
                [{"transform": "rot90", "choices": {"k": [1.5]}}],
                [{"transform": "rot90", "choices": {"k": [4]}}]):
        with pytest.raises(ConfigError, match=r"augment\[0\]\.choices"):
            parse_augment(bad)
    parse_augment([{"transform": "short_side", "ranges": {"size": [1, 100_000_000]}}])  # checked fast


def test_the_training_stream_applies_the_augmentation_then_crops(tmp_path):
    ds = make_folder_dataset(tmp_path / "d", n_tampered=3, n_authentic=0, sizes=((24, 32),))
    jpeg = Augmentation(parse_augment([{"transform": "jpeg", "ranges": {"severity": [60, 60]}}]))
    data = TrainDataset([ds.samples], 40, seed=0, hflip=False, augment=jpeg, shaping="crop")
    samples, order = data.epoch(0)
    item = data[0]
    expect = PERTURBATIONS.get("jpeg")(60).apply(load_image(samples[int(order[0])].image_path),
                                                 np.random.default_rng(0))
    assert item["image"].shape == (3, 40, 40)
    assert torch.equal(item["image"][:, :24, :32], to_float(expect))  # native pixels, no resize
    assert item["image"][:, 24:].abs().sum() == 0 and item["mask"][:, :, 32:].sum() == 0
    # random draws (scale, flips, noise) and crop offsets depend on the position alone
    big = make_folder_dataset(tmp_path / "big", n_tampered=4, n_authentic=0, sizes=((70, 90),))
    noisy = Augmentation(parse_augment("mpc_official", image_size=48))
    a = TrainDataset([big.samples], 48, seed=5, hflip=False, augment=noisy, shaping="crop")
    b = TrainDataset([big.samples], 48, seed=5, hflip=False, augment=noisy, shaping="crop")
    items = [a[k]["image"] for k in range(8)]
    assert all(torch.equal(b[k]["image"], items[k]) for k in reversed(range(8)))  # any order
    other = TrainDataset([big.samples], 48, seed=6, hflip=False, augment=noisy, shaping="crop")
    assert not all(torch.equal(other[k]["image"], items[k]) for k in range(8))


def test_native_crops_are_windows_of_the_picture_and_its_mask(tmp_path):
    ds = make_folder_dataset(tmp_path / "d", n_tampered=4, n_authentic=0, sizes=((40, 48),))
    data = TrainDataset([ds.samples], 16, seed=3, hflip=False, shaping="crop")
    samples, order = data.epoch(0)
    from imlbench.datasets.base import load_mask
    for k in range(4):
        item = data[k]
        s = samples[int(order[k])]
        image, mask = to_float(load_image(s.image_path)), torch.from_numpy(load_mask(s)).float()
        hits = [(t, l) for t in range(25) for l in range(33)
                if torch.equal(image[:, t:t + 16, l:l + 16], item["image"])]
        assert hits, "the crop is not a window of the picture"
        t, l = hits[0]
        assert torch.equal(mask[t:t + 16, l:l + 16], item["mask"][0])


def test_mpc_official_preset_and_recipe_errors_name_the_field(tmp_path):
    assert "mpc_official" in preset_names()
    steps = parse_augment("mpc_official", image_size=256)
    assert steps[0].transform == "sequence" and steps[0].p == 0.75
    assert steps[0].of[1].choices == {"size": (256.0,)}
    bad = {"image_size": 32, "batch_size": 2, "steps": 2, "optimizer": {"name": "adamw", "lr": 1e-3},
           "schedule": {"name": "constant"}}
    for augment, message in [
            ([{"transform": "jpg"}], r"augment\[0\]: unknown transform 'jpg'"),
            ([{"transform": "jpeg", "ranges": {"quality": [50, 90]}}], r"augment\[0\]\.ranges\.quality"),
            ([{"transform": "gaussian_blur", "ranges": {"severity": [3, 7]}}], "can draw 4.*choices"),
            ([{"transform": "hflip", "p": 1.5}], r"augment\[0\]\.p must be a probability"),
            ([{"transform": "one_of", "of": [{"transform": "vflip", "p": "x"}]}], r"of\[0\]\.p"),
            ("mpc_offical", "unknown augmentation preset 'mpc_offical'")]:
        path = tmp_path / "r.yaml"
        path.write_text(yaml.safe_dump({**bad, "augment": augment}))
        with pytest.raises(ConfigError, match=message):
            load_recipe(path, "seg_ce")
    path.write_text(yaml.safe_dump({**bad, "shaping": "cropped"}))
    with pytest.raises(ConfigError, match="shaping"):
        load_recipe(path, "seg_ce")


def test_registries_do_not_share_names():
    assert not set(AUGMENTATIONS.list()) & set(PERTURBATIONS.list())


def test_a_method_with_file_inputs_cannot_augment(tmp_path):
    ds = make_folder_dataset(tmp_path / "d", n_tampered=1, n_authentic=0)
    flips = Augmentation(parse_augment([{"transform": "hflip"}]))
    with pytest.raises(ConfigError, match=r"file inputs \['jpeg_dct'\].*augment: \[\]"):
        TrainDataset([ds.samples], 16, seed=0, file_inputs=("jpeg_dct",), augment=flips)
