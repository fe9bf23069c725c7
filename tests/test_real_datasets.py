"""Real-dataset adapters on tiny replicas of each archive's on-disk layout (tests/real_replicas.py),
mask decoders, and ``imlbench data check`` on each documented defect."""
from __future__ import annotations

import os
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from imlbench.datasets import test_set_names
from imlbench.datasets.base import (MASK_ENCODINGS, DatasetError, Sample, load_image, load_mask,
                                    mask_encoding, read_mask_pixels)
from imlbench.datasets.check import check_dataset
from imlbench.datasets.real import REAL_DATASETS
from imlbench.paths import DATA_ROOT_ENV
from imlbench.registry import DATASETS
from tests.real_replicas import (BUILDERS, CASIA1_UNPACKED, CASIA2_TRANSPOSED, KORUS_GREY,
                                 make_casia1, make_casia2, make_cocoglide, make_columbia,
                                 make_coverage, make_dso1, make_imd2020, make_korus, make_nist16)

COUNT = "count differs from the published release"


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    return tmp_path


def assert_decodes_like(replica, dataset):
    """Sample ids are the replica's, and every mask decodes to the replica's truth."""
    assert [s.sample_id for s in dataset.samples] == sorted(replica.truth)
    for s in dataset.samples:
        truth = replica.truth[s.sample_id]
        assert s.label == int(truth is not None), s.sample_id
        mask = load_mask(s, load_image(s.image_path).shape[:2])
        if truth is None:
            assert s.mask_path is None and not mask.any()
            continue
        agree = mask == truth
        agree |= replica.boundary.get(s.sample_id, False)  # JPEG masks: a 2-px band may flip
        assert agree.all(), f"{s.sample_id}: {(~agree).sum()} pixels decoded wrongly"


def test_every_real_adapter_has_a_replica():
    assert set(BUILDERS) == {d.name for d in REAL_DATASETS}


# -- each adapter on its replica -----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_adapter_reads_its_archive_layout(name, root):
    replica = BUILDERS[name](root, defects=False)
    dataset = DATASETS.build(name)
    assert dataset.is_available() and dataset.name == name
    assert_decodes_like(replica, dataset)
    assert DATASETS.build(name).samples == dataset.samples  # same records, same order
    assert (name in test_set_names()) == DATASETS.get(name).test_set
    report = check_dataset(dataset)
    assert report.problems[COUNT] == 1  # a replica is far smaller than the release
    dataset.expected_counts = replica.counts
    expected = {"non-binary mask"} if name == "casia1" else set()  # its 3 stray grey pixels
    assert set(check_dataset(dataset).problems) == expected


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_absent_dataset_is_not_in_all_and_says_what_was_tried(name, root):
    dataset = DATASETS.build(name)
    assert not dataset.is_available()
    assert name not in test_set_names()
    with pytest.raises(DatasetError) as err:
        dataset.samples
    for folder in DATASETS.get(name).folders:
        assert str(root / folder) in str(err.value)


def test_without_a_data_root_the_error_names_the_option_and_env_var(monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    dataset = DATASETS.build("nist16")
    assert not dataset.is_available()
    with pytest.raises(DatasetError, match=f"--data-root.*\\${DATA_ROOT_ENV}"):
        dataset.samples


def test_a_folder_with_the_wrong_layout_names_the_missing_paths(root):
    (root / "CASIA1.0" / "Tp").mkdir(parents=True)
    with pytest.raises(DatasetError) as err:
        DATASETS.build("casia1").samples
    assert "pham layout lacks 'CASIA 1.0 groundtruth'" in str(err.value)
    assert "imdl-benco layout lacks 'Gt'" in str(err.value)


def test_availability_costs_a_few_stat_calls(root, monkeypatch):
    for build in BUILDERS.values():
        build(root, defects=False)
    calls = Counter()

    def counting(name, real):
        def call(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return call

    for name, real in (("stat", os.stat), ("lstat", os.lstat), ("listing", os.scandir),
                       ("listing", os.listdir)):
        monkeypatch.setattr(os, real.__name__, counting(name, real))
    for present in (True, False):
        if not present:
            monkeypatch.setenv(DATA_ROOT_ENV, str(root / "empty"))
        for d in REAL_DATASETS:
            calls.clear()
            assert DATASETS.build(d.name).is_available() == present
            assert calls["stat"] + calls["lstat"] <= 16 and calls["listing"] <= 1, (d.name, calls)


# -- layout variants --------------------------------------------------------------------------------
def _move(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))


def _ids(name, **kwargs):
    return [s.sample_id for s in DATASETS.build(name, **kwargs).samples]


@pytest.mark.parametrize("unpacked", sorted(CASIA1_UNPACKED))
def test_casia1_as_its_archive_unpacks(unpacked, root):
    replica = make_casia1(root, defects=False, unpacked=unpacked)
    assert_decodes_like(replica, DATASETS.build("casia1"))
    assert_decodes_like(replica, DATASETS.build("casia1", folder=replica.folder))


def test_cocoglide_pairs_fake_and_mask_by_coco_id(root):
    replica = make_cocoglide(root)
    samples = {s.sample_id: s for s in DATASETS.build("cocoglide").samples}
    fake = samples["fake/glide_inpainting_val2017_563758_up.png"]
    assert fake.mask_path.name == "teddy bear_563758_mask.png" and fake.source == "cocoglide/inpainting"
    masks = replica.folder / "mask"
    (masks / "cat_7386_mask.png").rename(masks / "cat_7387_mask.png")  # an id no fake has
    with pytest.raises(DatasetError, match="glide_inpainting_val2017_7386_up.png.*cat_7387_mask.png"):
        DATASETS.build("cocoglide").samples


def test_casia1_mvss_and_imdl_benco_layouts(root):
    replica = make_casia1(root)
    tampered = sorted(k.split("/", 1)[1] for k, m in replica.truth.items() if m is not None)
    folder = replica.folder
    _move(folder / "Tp", folder / "TP")  # MVSS-Net: TP/{CM,Sp} + mask/{CM,Sp}
    _move(folder / "CASIA 1.0 groundtruth", folder / "mask")
    assert sorted(i.split("/", 1)[1] for i in _ids("casia1") if i.startswith("TP/")) == tampered
    gt = folder / "Gt"  # IMDL-BenCo: flat Tp/ + Gt/, masks named <stem>.png
    for sub in ("CM", "Sp"):
        for p in (folder / "TP" / sub).iterdir():
            _move(p, folder / "Tp" / p.name)
        for p in (folder / "mask" / sub).iterdir():
            _move(p, gt / p.name.replace("_gt.png", ".png"))
    shutil.rmtree(folder / "TP")
    shutil.rmtree(folder / "mask")
    ids = _ids("casia1")
    assert sorted(i for i in ids if i.startswith("Tp/")) == sorted(
        f"Tp/{t.split('/')[1]}" for t in tampered)
    assert sum(i.startswith("Au/") for i in ids) == 3
    stem = "Sp_S_CND_A_pla0016_pla0016_0196"
    (gt / f"{stem}_gt.png").write_bytes((gt / f"{stem}.png").read_bytes())
    with pytest.raises(DatasetError, match="two masks for one image"):
        DATASETS.build("casia1").samples


def test_casia2_corrected_and_cat_net_layouts(root):
    replica = make_casia2(root, defects=False)
    expected = sorted(replica.truth)
    _move(root / "CASIA 2 Groundtruth", replica.folder / "Gt")  # SunnyHaze corrected: Au/Tp/Gt
    _move(replica.folder, root / "CASIA2.0")
    assert _ids("casia2") == expected
    cat = root / "CASIA"  # CAT-Net: CASIA/CASIA 2.0/{Au,Tp} + CASIA/CASIA 2 Groundtruth
    _move(root / "CASIA2.0" / "Gt", cat / "CASIA 2 Groundtruth")
    _move(root / "CASIA2.0", cat / "CASIA 2.0")
    assert _ids("casia2") == [f"CASIA 2.0/{i}" for i in expected]
    assert _ids("casia2", folder=cat) == _ids("casia2")


def test_nested_unpacks_are_found(root):
    columbia = make_columbia(root, nested=True, defects=False)
    assert_decodes_like(columbia, DATASETS.build("columbia"))
    dso = make_dso1(root, nested=True)
    assert_decodes_like(dso, DATASETS.build("dso1"))


def test_coverage_mvss_layout(root):
    replica = make_coverage(root, defects=False)
    for p in sorted((replica.folder / "image").iterdir()):
        _move(p, replica.folder / ("tampered" if p.stem.endswith("t") else "Au") / p.name)
    (replica.folder / "image").rmdir()
    ids = _ids("coverage")
    assert sorted(i.split("/")[1] for i in ids) == sorted(k.split("/")[1] for k in replica.truth)
    (replica.folder / "Au" / "1x.tif").write_bytes((replica.folder / "Au" / "1.tif").read_bytes())
    with pytest.raises(DatasetError, match="1x.tif"):
        DATASETS.build("coverage").samples


def test_nist16_joins_masks_through_its_csv(root):
    replica = make_nist16(root)
    samples = {s.sample_id: s for s in DATASETS.build("nist16").samples}
    shared = samples["probe/NC2016_0128.jpg"].mask_path
    assert shared.name == "NC2016_3942.png" and samples["probe/NC2016_5470.jpg"].mask_path == shared
    assert samples["probe/NC2016_1758.jpg"].source == "nist16/removal"
    csv_path = replica.folder / "reference" / "manipulation" / "NC2016-manipulation-ref.csv"
    text = csv_path.read_text()
    csv_path.write_text(text.replace("ProbeMaskFileName", "MaskFile"))
    with pytest.raises(DatasetError, match="missing column.*ProbeMaskFileName"):
        DATASETS.build("nist16").samples
    csv_path.write_text(text)
    (replica.folder / "reference" / "manipulation" / "mask" / "NC2016_0815.png").unlink()
    with pytest.raises(DatasetError, match="NC2016_0815.png"):
        DATASETS.build("nist16").samples


# -- mask decoders ---------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding, pixels, expected", [
    ("binary", [0, 127, 128, 255], [0, 0, 1, 1]),
    ("inverted", [0, 127, 128, 255], [1, 1, 0, 0]),
    ("nist_inverted", [0, 128, 254, 255], [1, 1, 1, 0]),
    ("korus_3level", [0, 10, 11, KORUS_GREY, 255], [0, 0, 1, 1, 1]),
])
def test_grey_decoders(encoding, pixels, expected):
    grey = np.array([pixels], dtype=np.float64)
    assert MASK_ENCODINGS[encoding].decode(grey).tolist() == [[bool(e) for e in expected]]


def test_columbia_decoder_reads_green_as_spliced():
    rgb = np.array([[(0, 255, 0), (0, 200, 0), (255, 0, 0), (200, 0, 0), (110, 150, 10),
                     (150, 110, 10), (0, 100, 0), (128, 128, 0)]], dtype=np.uint8)
    assert MASK_ENCODINGS["columbia_edgemask"].decode(rgb).tolist() == [
        [True, True, False, False, True, False, False, False]]


def test_unclean_levels_are_reported_per_encoding():
    binary, korus = MASK_ENCODINGS["binary"], MASK_ENCODINGS["korus_3level"]
    assert binary.unclean(np.array([[0.0, 255.0]])) is None
    assert "expected only 0/255" in binary.unclean(np.array([[0.0, 1.0]]))  # a 0/1 mask
    assert korus.unclean(np.array([[0.0, 128.0, 255.0]])) is None
    assert "at most 3" in korus.unclean(np.array([[0.0, 60.0, 128.0, 255.0]]))


def test_mask_encoding_is_checked_and_load_mask_stays_compatible(tmp_path):
    with pytest.raises(DatasetError, match="unknown mask encoding 'nope'.*binary"):
        Sample("a", tmp_path / "a.png", tmp_path / "m.png", 1, "t", mask_encoding="nope")
    grey = np.zeros((4, 6), np.uint16)
    grey[:2] = 65535
    Image.fromarray(grey).save(tmp_path / "m16.png")  # 16-bit masks scale to 8 bits first
    assert load_mask(tmp_path / "m16.png", (4, 6))[:2].all()  # (path, shape): binary, as before
    assert not load_mask(tmp_path / "m16.png", (4, 6), encoding="inverted")[:2].any()
    sample = Sample("a", tmp_path / "a.png", tmp_path / "m16.png", 1, "t", mask_encoding="inverted")
    assert (load_mask(sample, (4, 6)) == ~load_mask(tmp_path / "m16.png")).all()
    with pytest.raises(ValueError, match="sample.mask_encoding"):
        load_mask(sample, (4, 6), encoding="binary_but_explicit")
    assert read_mask_pixels(tmp_path / "m16.png", "RGB").shape == (4, 6, 3)
    assert mask_encoding("binary").channels == "L"


# -- data check catches each documented defect, and each problem it is meant to catch -------
@pytest.mark.parametrize("build, kind, example", [
    (make_casia1, "non-binary mask", "Sp_D_NNN_R_cha0084_sec0061_0369_gt.png: 5 grey levels"),
    (make_casia2, "size mismatch", f"{CASIA2_TRANSPOSED}.jpg 48x32 vs mask 32x48"),
    (make_coverage, "size mismatch", "41t.tif 48x32 vs mask 48x29"),
    (make_imd2020, "size mismatch", "00030_fake.jpg 48x32 vs mask 44x32"),
])
def test_data_check_reports_documented_defects(build, kind, example, root):
    replica = build(root, defects=True)
    dataset = DATASETS.build(replica.name)
    dataset.expected_counts = replica.counts
    report = check_dataset(dataset)
    assert set(report.problems) == {kind} and report.problems[kind] == 1
    assert any(example in e for e in report.examples[kind])
    if kind == "size mismatch":  # evaluation refuses the mask rather than resizing it
        bad = next(s for s in dataset.samples if example.startswith(f"{s.image_path.name} "))
        with pytest.raises(DatasetError, match="fix the mask"):
            load_mask(bad, load_image(bad.image_path).shape[:2])


def _check(name):
    return check_dataset(DATASETS.build(name))


def test_data_check_catches_unmatched_images_and_masks(root):
    replica = make_columbia(root, defects=False)
    edgemasks = replica.folder / "4cam_splc" / "edgemask"
    (edgemasks / "canong3_canonxt_sub_01_edgemask.jpg").rename(
        edgemasks / "canong3_canonxt_sub_99_edgemask.jpg")
    report = _check("columbia")
    assert report.problems == Counter({"listing": 1})
    message = report.examples["listing"][0]
    assert "without a mask" in message and "canong3_canonxt_sub_01.tif" in message
    assert "match no image" in message and "canong3_canonxt_sub_99_edgemask.jpg" in message


def test_data_check_catches_unreadable_files(root):
    dso = make_dso1(root)
    (dso.folder / "DSO-1" / "normal-46.png").write_bytes(b"\x89PNG truncated")
    nist = make_nist16(root)
    (nist.folder / "reference" / "manipulation" / "mask" / "NC2016_0815.png").write_bytes(b"garbage")
    assert _check("dso1").problems["unreadable image"] == 1
    report = _check("nist16")
    assert report.problems["unreadable mask"] == 1
    assert "NC2016_0815.png" in report.examples["unreadable mask"][0]


def test_data_check_judges_masks_by_their_decoding(root):
    nist = make_nist16(root)
    white = np.full((32, 48), 255, np.uint8)  # inverted: all white = nothing manipulated
    Image.fromarray(white).save(nist.folder / "reference" / "manipulation" / "mask" / "NC2016_0815.png")
    assert _check("nist16").problems["empty mask on tampered image"] == 1
    dso = make_dso1(root)
    Image.fromarray(white * 0).save(dso.folder / "DSO-1-Fake-Images-Masks" / "splicing-99.png")
    assert _check("dso1").problems["mask covers the whole image"] == 1
    korus = make_korus(root)
    four = np.array(Image.open(korus.folder / "Canon_60D" / "ground-truth" / "DPP0520.PNG"))
    four[0, 0] = 60
    Image.fromarray(four).save(korus.folder / "Canon_60D" / "ground-truth" / "DPP0520.PNG")
    report = _check("korus")
    assert set(report.problems) == {COUNT, "non-binary mask"}  # 4 levels where 3 are expected
