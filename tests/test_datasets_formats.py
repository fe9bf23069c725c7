"""On-disk readers (IMDL-BenCo JSON / folder, images+masks folders) and resolve_dataset,
on tiny layouts fabricated in tmp_path."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imlbench.datasets import (DatasetError, UnknownDatasetError, load_image, load_mask,
                               read_benco_folder, read_benco_json, read_image_mask_folders,
                               resolve_dataset)
from imlbench.registry import RegistryError


def _image(path: Path, size: tuple[int, int] = (6, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)
    return path


def _mask(path: Path, size: tuple[int, int] = (6, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    grey = np.zeros((h, w), np.uint8)
    grey[: h // 2] = 255
    Image.fromarray(grey).save(path)
    return path


def _json(path: Path, entries: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))
    return path


def _summary(dataset) -> list[tuple[str, str | None, int]]:
    return [(s.sample_id, s.mask_path.name if s.mask_path else None, s.label) for s in dataset.samples]


# -- IMDL-BenCo JSON ----------------------------------------------------------------------
def test_benco_json_relative_absolute_and_negative(tmp_path):
    _image(tmp_path / "data/tp/b.jpg")
    _mask(tmp_path / "data/gt/b.png")
    _image(tmp_path / "data/au/a.png")
    outside = _image(tmp_path / "elsewhere/c.tif")
    outside_mask = _mask(tmp_path / "elsewhere/c_gt.png")
    path = _json(tmp_path / "data/list.json", [["tp/b.jpg", "gt/b.png"], ["au/a.png", "Negative"],
                                               [str(outside), str(outside_mask)]])
    ds = read_benco_json(path)
    assert _summary(ds) == [(str(outside), "c_gt.png", 1), ("au/a.png", None, 0), ("tp/b.jpg", "b.png", 1)]
    assert ds[2].image_path == tmp_path / "data/tp/b.jpg"
    assert ds[0].image_path == outside  # absolute paths are used as written
    assert ds.n_tampered == 2 and ds.name == "list"  # the stem, never a machine path
    sample = ds[2]
    assert load_mask(sample.mask_path, load_image(sample.image_path).shape[:2]).sum() == 12


def test_benco_json_refuses_paths_leaving_its_folder(tmp_path):
    _image(tmp_path / "outside.png")
    _image(tmp_path / "data/in.png")
    path = _json(tmp_path / "data/list.json", [["sub/../../outside.png", "Negative"]])
    with pytest.raises(DatasetError, match=r"leaves the JSON file's folder.*allow_outside=True"):
        read_benco_json(path).samples
    ds = read_benco_json(path, allow_outside=True)
    assert _summary(ds) == [("../outside.png", None, 0)]
    assert ds[0].image_path == tmp_path / "outside.png"
    # ".." that stays inside the folder is fine
    inside = _json(tmp_path / "data/inside.json", [["sub/../in.png", "Negative"]])
    assert _summary(read_benco_json(inside)) == [("in.png", None, 0)]


@pytest.mark.parametrize("content, message", [
    ({"a": 1}, "must hold a JSON list"),
    ([["only-one"]], r"entry 0: expected \[image path"),
    ([["a.png", None]], r"entry 0: expected"),
    ([["missing.png", "Negative"]], r"do not exist: 1 \(.*missing.png\)"),
])
def test_benco_json_bad_entries(tmp_path, content, message):
    path = _json(tmp_path / "list.json", content)
    with pytest.raises(DatasetError, match=message):
        read_benco_json(path).samples


def test_benco_json_invalid_or_missing_file(tmp_path):
    (tmp_path / "broken.json").write_text("[[")
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_benco_json(tmp_path / "broken.json").samples
    with pytest.raises(DatasetError, match="not found"):
        read_benco_json(tmp_path / "nope.json")


def test_benco_json_duplicate_ids_rejected(tmp_path):
    _image(tmp_path / "a.png")
    path = _json(tmp_path / "list.json", [["a.png", "Negative"], ["./a.png", "Negative"]])
    with pytest.raises(DatasetError, match="duplicate sample ids"):
        read_benco_json(path).samples


# -- IMDL-BenCo folder --------------------------------------------------------------------
def test_benco_folder_matches_by_stem_and_reads_au(tmp_path):
    _image(tmp_path / "Tp/x1.JPG")
    _image(tmp_path / "Tp/x2.tiff")
    _mask(tmp_path / "Gt/x1_gt.png")
    _mask(tmp_path / "Gt/x2.bmp")
    _image(tmp_path / "Au/x1.jpeg")
    (tmp_path / "Tp/.DS_Store").write_text("")
    ds = read_benco_folder(tmp_path)
    assert _summary(ds) == [("Au/x1.jpeg", None, 0), ("Tp/x1.JPG", "x1_gt.png", 1),
                            ("Tp/x2.tiff", "x2.bmp", 1)]
    assert all(s.source == tmp_path.name for s in ds.samples)


def test_benco_folder_reports_unmatched_images_and_masks(tmp_path):
    for i in range(7):
        _image(tmp_path / f"Tp/img{i}.png")
    _mask(tmp_path / "Gt/img0.png")
    with pytest.raises(DatasetError, match=r"no mask in .*Gt: 6 \(img1.png, img2.png, img3.png, "
                                           r"img4.png, img5.png, \.\.\.\).*Au"):
        read_benco_folder(tmp_path).samples
    for i in range(1, 7):
        _mask(tmp_path / f"Gt/img{i}_mask.png")
    _mask(tmp_path / "Gt/stray.png")
    with pytest.raises(DatasetError, match=r"match no image: 1 \(stray.png\)"):
        read_benco_folder(tmp_path).samples


def test_benco_folder_ambiguous_and_foreign_files(tmp_path):
    _image(tmp_path / "Tp/a.png")
    _mask(tmp_path / "Gt/a.png")
    _mask(tmp_path / "Gt/a_gt.png")
    with pytest.raises(DatasetError, match="ambiguous.*a.png/a_gt.png"):
        read_benco_folder(tmp_path).samples
    (tmp_path / "Gt/a_gt.png").unlink()
    (tmp_path / "Tp/notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"not images .*notes.txt"):
        read_benco_folder(tmp_path).samples
    (tmp_path / "Tp/notes.txt").unlink()
    _image(tmp_path / "Tp/a.jpg")
    with pytest.raises(DatasetError, match="differ only by extension"):
        read_benco_folder(tmp_path).samples


def test_benco_folder_needs_tp_and_gt(tmp_path):
    (tmp_path / "Tp").mkdir()
    with pytest.raises(DatasetError, match="Gt is missing"):
        read_benco_folder(tmp_path)


# -- images/ + masks/ ---------------------------------------------------------------------
def test_image_mask_folders_authentic_only_when_allowed(tmp_path):
    _image(tmp_path / "images/a.png")
    _image(tmp_path / "images/b.jpg")
    _mask(tmp_path / "masks/a_mask.png")
    with pytest.raises(DatasetError, match=r"no mask .*1 \(b.jpg\).*authentic_without_mask=True"):
        read_image_mask_folders(tmp_path / "images", tmp_path / "masks").samples
    ds = read_image_mask_folders(tmp_path / "images", tmp_path / "masks", authentic_without_mask=True)
    assert _summary(ds) == [("a.png", "a_mask.png", 1), ("b.jpg", None, 0)]
    assert ds.name == tmp_path.name


def test_image_mask_folders_missing_folder(tmp_path):
    _image(tmp_path / "images/a.png")
    with pytest.raises(DatasetError, match="does not exist"):
        read_image_mask_folders(tmp_path / "images", tmp_path / "masks").samples


# -- resolve_dataset ----------------------------------------------------------------------
def test_resolve_dataset_dispatches_on_layout(tmp_path):
    _image(tmp_path / "benco/Tp/a.png")
    _mask(tmp_path / "benco/Gt/a.png")
    _image(tmp_path / "plain/images/a.png")
    _mask(tmp_path / "plain/masks/a_gt.png")
    _json(tmp_path / "list.json", [["benco/Tp/a.png", "benco/Gt/a.png"]])
    assert _summary(resolve_dataset(str(tmp_path / "benco"))) == [("Tp/a.png", "a.png", 1)]
    assert _summary(resolve_dataset(tmp_path / "plain")) == [("a.png", "a_gt.png", 1)]
    assert _summary(resolve_dataset(str(tmp_path / "list.json"))) == [("benco/Tp/a.png", "a.png", 1)]
    assert resolve_dataset(str(tmp_path / "list.json")).name == "list"
    assert resolve_dataset(tmp_path / "benco").name == "benco"


def test_resolve_dataset_passes_options(tmp_path):
    _image(tmp_path / "plain/images/a.png")
    (tmp_path / "plain/masks").mkdir()
    assert _summary(resolve_dataset(tmp_path / "plain", authentic_without_mask=True)) == [("a.png", None, 0)]
    _image(tmp_path / "up.png")
    _json(tmp_path / "sub/list.json", [["../up.png", "Negative"]])
    with pytest.raises(DatasetError, match="leaves"):
        resolve_dataset(tmp_path / "sub/list.json").samples
    assert len(resolve_dataset(tmp_path / "sub/list.json", allow_outside=True)) == 1


def test_resolve_dataset_unknown_names_and_layouts(tmp_path):
    with pytest.raises(UnknownDatasetError, match=r"Did you mean 'synth-splice'.*No file or folder 'synth-splcie'.*Tp/ and Gt/.*images/ and masks/"):
        resolve_dataset("synth-splcie")
    with pytest.raises(RegistryError):  # also catchable as the registry's error
        resolve_dataset("no-such-dataset")
    (tmp_path / "random").mkdir()
    with pytest.raises(DatasetError, match="not a dataset layout"):
        resolve_dataset(tmp_path / "random")


def test_fingerprint_follows_the_files_not_their_location(tmp_path):
    import shutil

    def folder(root: Path) -> Path:
        _image(root / "Tp" / "a.png"), _mask(root / "Gt" / "a.png"), _image(root / "Au" / "b.png")
        return root

    first = resolve_dataset(folder(tmp_path / "one")).fingerprint()
    assert len(first) == 12 and int(first, 16) >= 0
    shutil.copytree(tmp_path / "one", tmp_path / "copy")
    assert resolve_dataset(tmp_path / "copy").fingerprint() == first  # same files elsewhere
    noise = np.random.default_rng(0).integers(0, 255, (4, 6, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "copy" / "Au" / "b.png")  # new pixels, new size
    assert resolve_dataset(tmp_path / "copy").fingerprint() != first
    _image(tmp_path / "one" / "Au" / "c.png")  # one more sample
    assert resolve_dataset(tmp_path / "one").fingerprint() != first
