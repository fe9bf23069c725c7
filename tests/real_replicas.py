"""Tiny fabricated copies of the real datasets' on-disk layouts (DATASETS.md), for tests.

Each builder writes, under a data root, a few images per dataset with the archive's real
folder and file names, extensions (and their case), mask encodings and the odd cases of
DATASETS.md §13: spaces in folder names, a dot inside a stem, ``.JPG``/``.TIF``/``.PNG``,
RGBA/RGB/L masks, stray grey pixels, inverted/colour-coded/three-level masks, masks joined
through a CSV, a tampered file without a mask, ignored ``_edgemask_3``/``copy``/``paste``
masks, read-me/list/``.mat``/``Thumbs.db``/AppleDouble clutter. ``defects=True`` also
reproduces the documented image/mask size mismatches.

``Replica.truth`` maps every expected sample id to the mask the adapter must decode
(``bool [H, W]``), or ``None`` for an authentic image.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 48, 32  # landscape 3:2 like CASIA's 384x256, tiny


@dataclass
class Replica:
    name: str
    folder: Path
    truth: dict[str, np.ndarray | None] = field(default_factory=dict)
    boundary: dict[str, np.ndarray] = field(default_factory=dict)
    """Pixels a lossy (JPEG) mask may decode either way: excluded from exact comparison."""

    @property
    def counts(self) -> tuple[int, int]:
        tampered = sum(m is not None for m in self.truth.values())
        return tampered, len(self.truth) - tampered


# -- pixels ---------------------------------------------------------------------------------------
def _rng(*key: object) -> np.random.Generator:
    from imlbench.seeding import rng_for

    return rng_for("replica", *key)


def _photo(key: str, size: tuple[int, int] = (W, H)) -> np.ndarray:
    w, h = size
    rng = _rng(key)
    base = rng.integers(40, 200, size=(1, 1, 3))
    return np.clip(base + rng.integers(-30, 30, size=(h, w, 3)), 0, 255).astype(np.uint8)


def _region(key: str, size: tuple[int, int] = (W, H)) -> np.ndarray:
    """``bool [H, W]``: a rectangle away from the borders (so JPEG edges stay inside)."""
    w, h = size
    rng = _rng(key, "region")
    y0, x0 = int(rng.integers(4, h // 3)), int(rng.integers(4, w // 3))
    mask = np.zeros((h, w), bool)
    mask[y0:y0 + h // 3 + 2, x0:x0 + w // 3 + 2] = True
    return mask


def _write(path: Path, array: np.ndarray, mode: str | None = None, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode is not None:
        image = image.convert(mode)
    image.save(path, **save)
    return path


def _white_on_black(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.uint8) * 255


def _tampered_photo(path: Path, key: str, mask: np.ndarray, **save) -> Path:
    image = _photo(key, (mask.shape[1], mask.shape[0]))
    image[mask] = np.clip(image[mask].astype(int) + 60, 0, 255).astype(np.uint8)
    return _write(path, image, **save)


def _text(path: Path, text: str, newline: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode())


# -- CASIA v1.0 (Pham layout) ---------------------------------------------------------------------
CASIA1_UNPACKED = {  # name: (dataset folder, tampered folder, ground truth, authentic), DATASETS.md §1.2
    "pham": ("CASIA1.0", "Tp", "CASIA 1.0 groundtruth", "Au"),
    # the archive as it commonly unpacks, Pham's ground truth unzipped inside it
    "archive": ("CASIA 1.0 dataset", "Modified Tp/Tp", "CASIA 1.0 groundtruth", "Au"),
    # IML-ViT issue #10's path
    "imlvit": ("CASIA1.0", "Modified Tp/Tp", "CASIA 1.0 groundtruth", "Au"),
    "modified-tp-flat": ("CASIA 1.0 dataset", "Modified TP", "CASIA 1.0 groundtruth", "Au"),
    # CAT-Net: CASIA/CASIA 1.0 dataset/{Au,Modified TP} beside CASIA/CASIA 1.0 groundtruth
    "cat-net": ("CASIA", "CASIA 1.0 dataset/Modified TP", "CASIA 1.0 groundtruth",
                "CASIA 1.0 dataset/Au"),
}


def make_casia1(root: Path, defects: bool = True, unpacked: str = "pham") -> Replica:
    """``unpacked``: one of :data:`CASIA1_UNPACKED` (sample ids follow its folders)."""
    name, tp, gt_rel, au = CASIA1_UNPACKED[unpacked]
    folder = root / name
    gt = folder / gt_rel
    rep = Replica("casia1", folder)
    for image in ("Au_ani_0001.jpg", "Au_art_0044.JPG", "Au_sec_0063.jpg"):  # .JPG: upper case
        _write(folder / au / image, _photo(image), quality=90)
        rep.truth[f"{au}/{image}"] = None
    (folder / au / "Thumbs.db").write_bytes(b"\0clutter")
    tampered = (  # (sub-folder, stem, size, mask mode)
        ("CM", "Sp_S_CND_A_pla0016_pla0016_0196", (W, H), "RGBA"),
        ("Sp", "Sp_D_NNN_A_ani0099_ani0100.0288", (H, W), "RGB"),  # dot in the stem; portrait
        ("Sp", "Sp_D_NNN_R_cha0084_sec0061_0369", (W, H), "L"),
    )
    for sub, stem, size, mode in tampered:
        mask = _region(stem, size)
        _tampered_photo(folder / tp / sub / f"{stem}.jpg", stem, mask, quality=90)
        grey = _white_on_black(mask)
        if stem.endswith("_0369"):  # three stray pixels (52, 64, 76) in the real mask, all < 128
            grey[0, 0], grey[0, 1], grey[0, 2] = 52, 64, 76
        _write(gt / sub / f"{stem}_gt.png", grey, mode)
        rep.truth[f"{tp}/{sub}/{stem}.jpg"] = mask
    # identical to Au_cha_0011 and without a mask: left out by the adapter
    _write(folder / tp / "Sp" / "Sp_D_NRN_A_cha0011_sec0011_0542.jpg", _photo("0542"))
    _text(gt / "CopyMove_groundtruth_list.txt", "Sp_S_CND_A_pla0016_pla0016_0196_gt.png", "\r\n")
    _text(gt / "Splicing_groundtruth_list.txt",
          "Sp_D_NNN_A_ani0099_ani0100.0288_gt.png\nSp_D_NNN_R_cha0084_sec0061_0369_gt.png", "\r\n")
    (gt / "FileNameCorrection.xlsx").write_bytes(b"PK\x03\x04 not really a spreadsheet")
    return rep


# -- CASIA v2.0 (Pham revised package, ground truth unpacked beside it) ---------------------------
CASIA2_TRANSPOSED = "Tp_D_CNN_M_N_sec00011_cha00085_11227"


def make_casia2(root: Path, defects: bool = True) -> Replica:
    folder = root / "CASIA2.0_revised"
    gt = root / "CASIA 2 Groundtruth"  # beside the images, with a space in its name
    rep = Replica("casia2", folder)
    authentic = ("Au_ani_00001.jpg", "Au_nat_30198.jpg", "Au_arc_10120.bmp", "Au_pla_00002.jpg",
                 "Au_sec_00003.jpg", "Au_txt_00004.jpg")
    for name in authentic:
        _write(folder / "Au" / name, _photo(name))  # the extension picks the format
        rep.truth[f"Au/{name}"] = None
    (folder / "Au" / "Thumbs.db").write_bytes(b"\0")
    tampered = ("Tp_D_CND_M_N_ani00018_sec00096_00138.tif", "Tp_S_NRN_M_N_pla00020_pla00020_10988.jpg",
                "Tp_S_CnN_S_N_txt00071_txt00071_01297.tif",  # lower-case 'n'
                "Tp_D_CNN_M_N_arc00086_xxx00001_00306.tif",  # unknown donor 'xxx'
                "Tp_D_NRD_S_N_cha10002_cha10001_20094.jpg",  # its mask is named _gt3.png
                f"{CASIA2_TRANSPOSED}.jpg")                   # its mask is transposed
    for name in tampered:
        stem = Path(name).stem
        mask = _region(stem)
        _tampered_photo(folder / "Tp" / name, stem, mask)
        suffix = "_gt3" if stem.endswith("_20094") else "_gt"
        stored = mask.T if (defects and stem == CASIA2_TRANSPOSED) else mask
        _write(gt / f"{stem}{suffix}.png", _white_on_black(stored), "L")
        rep.truth[f"Tp/{name}"] = mask
    _text(folder / "Tp" / "tp_list.txt", "\n".join(tampered))
    return rep


# -- Columbia Uncompressed ------------------------------------------------------------------------
RED, DARK_RED, GREEN, DARK_GREEN = (255, 0, 0), (200, 0, 0), (0, 255, 0), (0, 200, 0)


def _edgemask(mask: np.ndarray) -> np.ndarray:
    """Columbia's colour code: bright shades near the splicing border, darker ones far from it;
    green = spliced, red = the rest."""
    from scipy import ndimage

    near = ndimage.binary_dilation(mask, iterations=3) & ~ndimage.binary_erosion(mask, iterations=3)
    rgb = np.zeros(mask.shape + (3,), np.uint8)
    rgb[~mask] = DARK_RED
    rgb[~mask & near] = RED
    rgb[mask] = DARK_GREEN
    rgb[mask & near] = GREEN
    return rgb


def make_columbia(root: Path, defects: bool = True, nested: bool = False) -> Replica:
    from scipy import ndimage

    folder = root / "Columbia Uncompressed Image Splicing Detection"
    splc = folder / "4cam_splc" / ("4cam_splc" if nested else "")
    auth = folder / "4cam_auth"
    rep = Replica("columbia", folder)
    for stem in ("canong3_canonxt_sub_01", "nikond70_kodakdcs330_sub_26"):
        mask = _region(stem)
        _tampered_photo(splc / f"{stem}.tif", stem, mask)
        _write(splc / "edgemask" / f"{stem}_edgemask.jpg", _edgemask(mask), quality=75)
        rep.truth[(splc / f"{stem}.tif").relative_to(folder).as_posix()] = mask
        # JPEG chroma bleeding may flip pixels within 2 px of the border
        band = ndimage.binary_dilation(mask, iterations=2) & ~ndimage.binary_erosion(mask, iterations=2)
        rep.boundary[(splc / f"{stem}.tif").relative_to(folder).as_posix()] = band
    blue_band = _edgemask(_region("canong3_canonxt_sub_01"))
    blue_band[:4] = (0, 0, 255)  # the ignored _edgemask_3 variant has an extra blue band
    _write(splc / "edgemask" / "canong3_canonxt_sub_01_edgemask_3.jpg", blue_band)
    for stem in ("canong3_02_sub_01", "kodakdcs330_03_sub_01"):
        _write(auth / f"{stem}.tif", _photo(stem))
        rep.truth[f"4cam_auth/{stem}.tif"] = None
    _text(folder / "README.txt", "Columbia Uncompressed Image Splicing Detection Evaluation Dataset")
    return rep


# -- COVERAGE -------------------------------------------------------------------------------------
COVERAGE_WRONG_SIZE = "41"


def make_coverage(root: Path, defects: bool = True) -> Replica:
    folder = root / "COVERAGE"
    rep = Replica("coverage", folder)
    for n in ("1", "41", "100"):  # no zero padding
        mask = _region(f"cov{n}")
        _write(folder / "image" / f"{n}.tif", _photo(f"cov{n}"))
        _tampered_photo(folder / "image" / f"{n}t.tif", f"cov{n}t", mask)
        stored = mask[:-3] if (defects and n == COVERAGE_WRONG_SIZE) else mask
        for kind in ("forged", "copy", "paste"):
            region = stored if kind == "forged" else np.roll(stored, 5, axis=1)
            _write(folder / "mask" / f"{n}{kind}.tif", _white_on_black(region), "L")
        rep.truth[f"image/{n}t.tif"] = mask
        rep.truth[f"image/{n}.tif"] = None
    (folder / "label").mkdir(parents=True)
    (folder / "label" / "TFlabel.mat").write_bytes(b"MATLAB 5.0 MAT-file")
    _text(folder / "readme.txt", "COVERAGE copy-move forgery database")
    return rep


# -- NIST Nimble 2016 -----------------------------------------------------------------------------
NIST_HEADER = ("TaskID|ProbeFileID|ProbeFileName|ProbeMaskFileName|DonorFileID|DonorFileName|"
               "DonorMaskFileName|IsTarget|ProbePostProcessed|DonorPostProcessed|ManipulationQuality|"
               "IsManipulationTypeRemoval|IsManipulationTypeSplice|IsManipulationTypeCopyClone|"
               "Collection|BaseFileName|Lighting|IsControl|CorrespondingControlFileName|"
               "SemanticConsistency").split("|")
NIST_PROBES = (  # probe id, mask id (differs!), post-processing, removal/splice/copyclone flags
    ("0128", "3942", "none", "NYN"),
    ("5470", "3942", "rescale", "NYN"),  # the same manipulation again: shares the mask
    ("1758", "0815", "none", "YNN"),
    ("7105", None, "none", "NNN"),       # non-targets: authentic
    ("2222", None, "rescale", "NNN"),
)


def make_nist16(root: Path, defects: bool = True) -> Replica:
    folder = root / "NC2016_Test0613"
    ref = folder / "reference" / "manipulation"
    rep = Replica("nist16", folder)
    rows = []
    for probe, mask_id, post, flags in NIST_PROBES:
        probe_rel = f"probe/NC2016_{probe}.jpg"
        mask_rel = f"reference/manipulation/mask/NC2016_{mask_id}.png" if mask_id else ""
        if mask_id:
            mask = _region(f"nist{mask_id}")
            _tampered_photo(folder / probe_rel, f"nist{probe}", mask, quality=92)
            # inverted: black = manipulated on white
            _write(folder / mask_rel, 255 - _white_on_black(mask), "L")
            rep.truth[probe_rel] = mask
        else:
            _write(folder / probe_rel, _photo(f"nist{probe}"))
            rep.truth[probe_rel] = None
        row = dict.fromkeys(NIST_HEADER, "")
        row.update(TaskID="Manipulation", ProbeFileID=f"NC2016_{probe}", ProbeFileName=probe_rel,
                   ProbeMaskFileName=mask_rel, IsTarget="Y" if mask_id else "N",
                   ProbePostProcessed=post, IsManipulationTypeRemoval=flags[0],
                   IsManipulationTypeSplice=flags[1], IsManipulationTypeCopyClone=flags[2],
                   Collection="Nimble-SCI", BaseFileName="world/NC2016_3272.jpg", IsControl="N")
        rows.append(row)
    ref.mkdir(parents=True, exist_ok=True)
    with open(ref / "NC2016-manipulation-ref.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, NIST_HEADER, delimiter="|", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    _write(folder / "world" / "NC2016_3272.jpg", _photo("world"))
    _text(folder / "reference" / "remove" / "NC2016-removal-ref.csv", "|".join(NIST_HEADER))
    _text(folder / "indexes" / "NC2016-manipulation-index.csv",
          "TaskID|ProbeFileID|ProbeFileName|ProbeWidth|ProbeHeight")
    return rep


# -- IMD2020 --------------------------------------------------------------------------------------
IMD_WRONG_SIZE = "z14/00030_fake.jpg"


def make_imd2020(root: Path, defects: bool = True) -> Replica:
    folder = root / "IMD2020"
    rep = Replica("imd2020", folder)
    entries = (  # (folder, original, manipulated)
        ("1a1ogs", "1a1ogs_orig.jpg", "c8tf5mq_0.png"),
        ("1b8r7b", "1b8r7b_orig.jpg", "c94scmh_0.jpg"),
        ("1d6mhe", "d6mhe_orig.jpg", "c9ab12x_0.jpg"),  # the original lacks the leading '1'
        ("z5", "00022_orig.jpg", "00022_fake.jpg"),
        ("z14", "00030_orig.jpg", "00030_fake.jpg"),
        ("z22", "00047_orig.jpg", "00047_fake_02.jpg"),
    )
    for sub, orig, fake in entries:
        _write(folder / sub / orig, _photo(orig))
        rep.truth[f"{sub}/{orig}"] = None
        stem = Path(fake).stem
        mask = _region(stem)
        _tampered_photo(folder / sub / fake, stem, mask)
        stored = mask[:, :-4] if (defects and f"{sub}/{fake}" == IMD_WRONG_SIZE) else mask
        _write(folder / sub / f"{stem}_mask.png", _white_on_black(stored), "L")
        rep.truth[f"{sub}/{fake}"] = mask
    _text(folder / "readme.txt", "IMD2020 real-life manipulated images")
    return rep


# -- DSO-1 ----------------------------------------------------------------------------------------
def make_dso1(root: Path, defects: bool = True, nested: bool = False) -> Replica:
    top = root / "tifs-database"
    folder = top / "tifs-database" if nested else top
    rep = Replica("dso1", folder)
    for name in ("normal-01.png", "normal-46.png"):
        _write(folder / "DSO-1" / name, _photo(name))
        rep.truth[f"DSO-1/{name}"] = None
    for name in ("splicing-01.png", "splicing-99.png", "splicing-100.png"):
        mask = _region(name)
        _tampered_photo(folder / "DSO-1" / name, name, mask)
        _write(folder / "DSO-1-Fake-Images-Masks" / name, 255 - _white_on_black(mask), "L")  # inverted
        rep.truth[f"DSO-1/{name}"] = mask
    (folder / "DSO-1" / "._splicing-01.png").write_bytes(b"\0\5\26\7 AppleDouble")
    junk = root / "__MACOSX" / "tifs-database" / "DSO-1" / "._splicing-01.png"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"\0\5\26\7")
    return rep


# -- Korus realistic tampering --------------------------------------------------------------------
KORUS_GREY = 128


def make_korus(root: Path, defects: bool = True) -> Replica:
    from scipy import ndimage

    folder = root / "data-images"
    rep = Replica("korus", folder)
    for camera, name in (("Canon_60D", "DPP0520"), ("Nikon_D90", "r36610622t")):
        mask = _region(name)
        core = ndimage.binary_erosion(mask, iterations=2)
        levels = np.zeros(mask.shape, np.uint8)
        levels[mask] = KORUS_GREY  # collateral damage around the semantic change
        levels[core] = 255
        _write(folder / camera / "pristine" / f"{name}.TIF", _photo(name))
        _tampered_photo(folder / camera / "tampered-realistic" / f"{name}.TIF", name, mask)
        _write(folder / camera / "ground-truth" / f"{name}.PNG", levels, "L")
        rep.truth[f"{camera}/tampered-realistic/{name}.TIF"] = mask  # grey counts as manipulated
        rep.truth[f"{camera}/pristine/{name}.TIF"] = None
    _text(folder / "readme.md", "Realistic Tampering Dataset v2.0")
    return rep


# -- CocoGlide ------------------------------------------------------------------------------------
def make_cocoglide(root: Path, defects: bool = True) -> Replica:
    folder = root / "CocoGlide"
    rep = Replica("cocoglide", folder)
    size = (32, 32)  # square, like the release's 256x256
    for category, coco_id in (("dining table", "114871"), ("teddy bear", "563758"), ("cat", "7386")):
        fake = f"glide_inpainting_val2017_{coco_id}_up.png"
        mask = _region(fake, size)
        _tampered_photo(folder / "fake" / fake, fake, mask)
        _write(folder / "mask" / f"{category}_{coco_id}_mask.png", _white_on_black(mask), "L")
        _write(folder / "real" / f"{category}_{coco_id}.png", _photo(f"{category}{coco_id}", size))
        rep.truth[f"fake/{fake}"] = mask
        rep.truth[f"real/{category}_{coco_id}.png"] = None
    _text(folder / "table.csv", "\ufeffreal,fake,mask,prompt\n")
    _text(folder / "licenses.json", '{"images": [], "licenses": []}')
    return rep


BUILDERS = {"casia1": make_casia1, "casia2": make_casia2, "columbia": make_columbia,
            "coverage": make_coverage, "nist16": make_nist16, "imd2020": make_imd2020,
            "dso1": make_dso1, "korus": make_korus, "cocoglide": make_cocoglide}
