"""The embedded synthetic benchmark: determinism, split hygiene, masks, manifest, atomic cache.

Everything runs on the ``tiny`` preset (64-96 px, a few images per set) under a temporary
``IMLBENCH_HOME``; one build takes well under a second.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imlbench.datasets import photos as photos_mod
from imlbench.datasets import synthetic
from imlbench.datasets.base import DatasetError, load_image, load_mask
from imlbench.datasets.manipulations import blob_mask, copy_move, remove_object, splice
from imlbench.datasets.photos import PHOTOS, SPLITS, Photo
from imlbench.datasets.synthetic import (MANIFEST, PRESET_ENV, PRESETS, build_synthetic, dataset_dir, list_samples)

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMLBENCH_HOME", str(tmp_path_factory.mktemp("home")))
        return build_synthetic(progress=False, config=TINY)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("IMLBENCH_HOME", str(tmp_path))
    return tmp_path


def _manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST).read_text())


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- determinism --------------------------------------------------------------------------
def test_same_seed_gives_identical_files(tiny_root, home):
    again = build_synthetic(progress=False, config=TINY)
    assert again != tiny_root and again.name == tiny_root.name
    assert _files(again) == _files(tiny_root)


def test_other_seed_gives_other_data(tiny_root, home):
    other = build_synthetic(progress=False, config=dataclasses.replace(TINY, seed=1))
    assert other.name != tiny_root.name
    a, b = _files(tiny_root), _files(other)
    shared = [k for k in a if k in b and k.startswith("test-splice/images/")]
    assert shared and all(a[k] != b[k] for k in shared)


def test_samples_do_not_depend_on_set_sizes(tiny_root, home):
    bigger = build_synthetic(progress=False, config=dataclasses.replace(TINY, n_test_tampered=4))
    a, b = _files(tiny_root), _files(bigger)
    name = "test-removal/images/removal-0000"
    key = next(k for k in a if k.startswith(name))
    assert a[key] == b[key]


# -- content ------------------------------------------------------------------------------
def test_set_sizes_and_labels(tiny_root):
    sets = _manifest(tiny_root)["sets"]
    assert sorted(sets) == sorted(synthetic.SET_NAMES)
    counts = {name: (sum(r["label"] for r in recs), sum(1 - r["label"] for r in recs))
              for name, recs in sets.items()}
    assert counts == {"train": (6, 3), "val": (3, 2), "test-splice": (3, 2),
                      "test-copymove": (3, 2), "test-removal": (3, 2)}
    for name in ("splice", "copymove", "removal"):
        assert {r["manipulation"] for r in sets[f"test-{name}"]} == {name, "authentic"}
    assert {r["manipulation"] for r in sets["train"]} == {"splice", "copymove", "removal", "authentic"}


def test_masks_binary_nonempty_and_sized_like_images(tiny_root):
    lo, hi = TINY.mask_area
    for name in synthetic.SET_NAMES:
        for s in list_samples(name, TINY, progress=False):
            image = load_image(s.image_path)
            assert min(image.shape[:2]) in range(TINY.short_side[0], TINY.short_side[1] + 1)
            if s.label == 0:
                assert s.mask_path is None and s.source == "authentic"
                continue
            grey = np.asarray(Image.open(s.mask_path))
            assert set(np.unique(grey)) <= {0, 255}
            mask = load_mask(s.mask_path, image.shape[:2])  # raises on a size mismatch
            assert lo <= mask.mean() <= hi


def test_splits_share_no_photo(tiny_root):
    used: dict[str, set[str]] = {}
    for name, recs in _manifest(tiny_root)["sets"].items():
        split = "test" if name.startswith("test-") else name
        for r in recs:
            used.setdefault(split, set()).add(r["host"]["photo"])
            if "donor" in r:
                used[split].add(r["donor"]["photo"])
    assert not used["train"] & used["test"] and not used["val"] & used["test"]
    assert not used["train"] & used["val"]
    table = {p.name: p.split for p in PHOTOS}
    assert all(table[p] == split for split, names in used.items() for p in names)


def test_scenes_stay_in_one_split():
    by_scene: dict[str, set[str]] = {}
    for p in PHOTOS:
        by_scene.setdefault(p.scene, set()).add(p.split)
    assert all(len(s) == 1 for s in by_scene.values())
    assert by_scene["motorcycle"] == {"train"}
    assert {p.split for p in PHOTOS} == set(SPLITS)
    # a splice needs a donor from another scene of the same split
    assert all(len({p.scene for p in photos_mod.photos_in(s)}) >= 2 for s in SPLITS)


def test_manifest_records_history(tiny_root):
    m = _manifest(tiny_root)
    assert m["config"] == json.loads(json.dumps(dataclasses.asdict(TINY)))
    assert [p["sha256"] for p in m["photos"]] == [p.sha256 for p in PHOTOS]
    scene = {p.name: p.scene for p in PHOTOS}
    for recs in m["sets"].values():
        for r in recs:
            q = r["host"]["jpeg_quality"]
            assert TINY.prior_jpeg_quality[0] <= q <= TINY.prior_jpeg_quality[1]
            final = r["final"]
            assert r["image"].endswith(".jpg" if final["format"] == "jpeg" else ".png")
            if r["manipulation"] == "splice":
                assert scene[r["donor"]["photo"]] != scene[r["host"]["photo"]]
            if r["label"]:
                assert r["mask_area"] == pytest.approx(
                    load_mask(tiny_root / r["mask"]).mean(), abs=1e-5)


# -- cache --------------------------------------------------------------------------------
def test_interrupted_build_leaves_nothing_usable(home, monkeypatch):
    real = synthetic.generate
    calls = []

    def crash_after_three(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "generate", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        build_synthetic(progress=False, config=TINY)
    parent = dataset_dir(TINY).parent
    assert list(parent.iterdir()) == []  # neither a half dataset nor its temp folder
    monkeypatch.setattr(synthetic, "generate", real)
    assert (build_synthetic(progress=False, config=TINY) / MANIFEST).is_file()


def test_abandoned_temp_folders_are_removed(home):
    parent = dataset_dir(TINY).parent
    dead = parent / f".building-{synthetic.socket.gethostname()}-999999999-abcd"
    alive = parent / f".building-{synthetic.socket.gethostname()}-{os.getpid()}-abcd"
    for d in (dead, alive):
        d.mkdir(parents=True)
    build_synthetic(progress=False, config=TINY)
    assert not dead.exists() and alive.exists()


def test_force_rebuilds_in_place(home):
    root = build_synthetic(progress=False, config=TINY)
    marker = root / "stale.txt"
    marker.write_text("x")
    assert build_synthetic(progress=False, config=TINY) == root and marker.exists()
    assert build_synthetic(force=True, progress=False, config=TINY) == root
    assert not marker.exists() and (root / MANIFEST).is_file()


def test_missing_files_are_reported(home):
    root = build_synthetic(progress=False, config=TINY)
    next((root / "val/images").iterdir()).unlink()
    with pytest.raises(DatasetError, match="imlbench data synth --force"):
        list_samples("val", TINY, progress=False)


def test_preset_env(home, monkeypatch):
    monkeypatch.setenv(PRESET_ENV, "tiny")
    assert synthetic.default_config() == TINY
    assert dataset_dir() == home / "synthetic" / f"v{synthetic.GENERATOR_VERSION}-{synthetic.config_key(TINY)}"
    monkeypatch.setenv(PRESET_ENV, "huge")
    with pytest.raises(ValueError, match="IMLBENCH_SYNTH_PRESET='huge'.*tiny"):
        synthetic.default_config()
    with pytest.raises(ValueError, match="unknown synthetic set"):
        list_samples("test", TINY)


# -- photos -------------------------------------------------------------------------------
def test_photo_errors_name_the_package():
    photo = PHOTOS[0]
    absent = dataclasses.replace(photo, package="imlbench_no_such_pkg", requirement="some-pkg>=1")
    with pytest.raises(DatasetError, match="pip install 'some-pkg>=1'"):
        absent.path()
    moved = dataclasses.replace(photo, relpath="data/not-there.png")
    with pytest.raises(DatasetError, match="missing from the installed"):
        moved.path()
    altered = dataclasses.replace(photo, sha256="0" * 64)
    with pytest.raises(DatasetError, match="different file"):
        altered.load()


def test_photos_load_and_match_fingerprints():
    for photo in PHOTOS:
        image = photo.load()
        assert image.dtype == np.uint8 and image.ndim == 3 and min(image.shape[:2]) >= 256
    assert isinstance(PHOTOS[0], Photo) and photos_mod.photos_available()


# -- manipulations ------------------------------------------------------------------------
def _noise(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_blob_mask_area_and_bounds():
    rng = np.random.default_rng(0)
    for area in (0.03, 0.1, 0.25):
        fractions = [blob_mask((60, 90), area, rng).mean() for _ in range(20)]
        assert 0.5 * area < np.median(fractions) < 1.5 * area


def test_splice_changes_only_the_masked_region():
    host, donor = _noise(seed=0), _noise(seed=1)
    mask = blob_mask(host.shape[:2], 0.1, np.random.default_rng(0))
    out = splice(host, donor, mask, feather_sigma=0.0)
    assert np.array_equal(out[~mask], host[~mask]) and np.array_equal(out[mask], donor[mask])


def test_removal_changes_only_the_masked_region():
    image = _noise()
    mask = blob_mask(image.shape[:2], 0.1, np.random.default_rng(1))
    out = remove_object(image, mask, radius=3)
    assert np.array_equal(out[~mask], image[~mask]) and not np.array_equal(out[mask], image[mask])


def _smooth(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A smooth RGB pattern evaluated at (possibly sub-pixel) coordinates."""
    return np.stack([128 + 100 * np.sin(x / 7), 128 + 100 * np.cos(y / 9), (x + y) * 1.2], axis=-1)


def test_copy_move_mask_marks_the_pasted_target():
    yy, xx = np.mgrid[0:96, 0:96].astype(float)
    image = np.round(_smooth(yy, xx)).astype(np.uint8)
    out, target, meta = copy_move(image, np.random.default_rng(3), 0.05, transform_prob=0.0,
                                  feather_sigma=0.0)
    assert meta["rotation_deg"] == 0.0 and meta["scale"] == 1.0
    assert np.array_equal(out[~target], image[~target])  # source and background untouched
    dx, dy = meta["shift_xy"]
    ys, xs = np.nonzero(target)
    source_values = _smooth(ys - dy, xs - dx)  # what the pasted pixels must show
    assert np.abs(out[ys, xs] - source_values).mean() < 1.5
    assert np.abs(image[ys, xs] - source_values).mean() > 10  # ... and the host did not


def test_copy_move_target_never_overlaps_its_source():
    image = _noise(64, 64)
    for seed in range(10):
        moved = copy_move(image, np.random.default_rng(seed), 0.12, transform_prob=0.0, feather_sigma=0.0)
        assert moved is not None
        _, target, meta = moved
        dx, dy = meta["shift_xy"]
        ys, xs = np.nonzero(target)
        source = np.round(ys - dy).astype(int), np.round(xs - dx).astype(int)
        assert not target[source].any()
