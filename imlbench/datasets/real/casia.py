"""CASIA v1.0 and v2.0 (Dong, Wang, Tan 2013) with Pham's ground truth (DATASETS.md §1, §2).

CASIA v1.0 folders accepted under the data root (``CASIA1.0``, ``CASIA 1.0``, ``CASIA 1.0
dataset``, ``CASIA1``, ``CASIAv1``, ``casia1``, ``CASIA``), each with one of these layouts:

- ``pham``: ``Au/``, the tampered images in ``Tp/``, ``Modified Tp/Tp/`` or ``Modified Tp/``
  (also spelt ``Modified TP``; each split into ``CM/`` and ``Sp/``), and Pham's
  ``CASIA 1.0 groundtruth/{CM,Sp}/`` unzipped inside the folder. This is the archive as it
  commonly unpacks (``CASIA 1.0 dataset/Modified Tp/Tp/Sp/...``, the path quoted in IML-ViT
  issue #10) and the layout photoholmes' ``casia1.py`` reads;
- ``cat-net``: ``CASIA 1.0 dataset/{Au, Modified TP}/`` beside ``CASIA 1.0 groundtruth/``
  (CAT-Net's ``Splicing/data/dataset_CASIA.py``);
- ``mvss``: ``TP/{CM,Sp}/`` + ``mask/{CM,Sp}/`` + ``Au/`` (MVSS-Net's ``data/CASIAv1.txt``);
- ``trufor``: a flat ``Sp/`` + ``groundtruth/`` + ``Au/`` or TruFor's Corel ``Au_corel/``
  (TruFor's ``CASIA1corel_*.txt``);
- ``imdl-benco``: ``Tp/`` + ``Gt/`` + ``Au/`` (IMDL-BenCo's ``ManiDataset``).

Files expected (any extension case; read-me, list and ``.xlsx`` files beside them are ignored):

- Tampered images ``Sp_<S|D>_...`` (v1) / ``Tp_<S|D>_...`` (v2), ``.jpg`` or ``.tif``, in one
  folder or split into ``CM/`` and ``Sp/`` sub-folders. ``S`` = copy-move, ``D`` = splicing.
  Stems may hold a dot (``..._ani0100.0288.jpg``), so nothing splits names on ``.``/``_``.
- Masks ``<image stem>_gt.png`` whatever the image's extension (BenCo-style ``Gt/`` folders
  may also name them ``<image stem>.png``); white (255) = tampered, stored as L, RGB or RGBA
  — all read as grey (``"binary"`` encoding). CASIA v2's ``..._20094_gt3.png`` is accepted
  as that image's mask (a known misnaming; CAT-Net renames it).
- Authentic images ``Au_<cat>_<digits>.{jpg,JPG,bmp}`` in ``Au/`` (optional; absent = tampered
  only, which ``data check`` reports as a count below the published one).

Known defects, kept visible rather than patched (``imlbench data check`` lists them):
- v1: ``Sp_D_NRN_A_cha0011_sec0011_0542.jpg`` is the authentic ``Au_cha_0011.jpg`` and has no
  mask; it is left out, as in every 920-image protocol. One mask
  (``Sp_D_NNN_R_cha0084_sec0061_0369_gt.png``) has 3 stray grey pixels (binarised at 127.5).
- v2: 17 masks do not match their image's size (5 transposed, the others a few pixels off or
  another resolution). Evaluation stops at such a mask with its path (or, with
  ``--skip-bad``, leaves it out and lists it): replace the masks by the corrected ground truth
  (SunnyHaze/CASIA2.0-Corrected-Groundtruth, whose ``Gt/`` layout is accepted here) —
  resizing them would change the score.
"""
from __future__ import annotations

import re
from pathlib import Path

from imlbench.datasets.base import Sample
from imlbench.datasets.real._common import (Layout, Located, Lister, RealDataset, image_files_in,
                                            masks_by_image_stem, pair_masks)

_GT_SUFFIX = re.compile(r"_gt\d*$")
_SPLIT_FOLDERS = ("CM", "Sp")
CASIA1_WITHOUT_MASK = ("Sp_D_NRN_A_cha0011_sec0011_0542",)
"""Tampered-named CASIA v1 file identical to ``Au_cha_0011`` (no mask; left out)."""


def _split_or_flat(folder: Path) -> dict[str, Path]:
    """Images of ``folder`` and of its ``CM/``/``Sp/`` sub-folders (Pham's split), merged."""
    return image_files_in([folder] + [folder / sub for sub in _SPLIT_FOLDERS
                                      if (folder / sub).is_dir()])


def _image_stem_of_mask(mask_stem: str) -> str:
    return _GT_SUFFIX.sub("", mask_stem)


def _kind(stem: str) -> str:
    """``Sp_S_...``/``Tp_S_...`` = copy-move, ``*_D_...`` = splicing (the second field)."""
    fields = stem.split("_")
    return {"S": "copymove", "D": "splice"}.get(fields[1] if len(fields) > 1 else "", "tampered")


def _lister(title: str, without_mask: tuple[str, ...] = ()) -> Lister:
    def list_samples(located: Located, name: str) -> list[Sample]:
        tampered_dir, masks_dir = located.path("tampered"), located.path("masks")
        images = _split_or_flat(tampered_dir)
        masks = masks_by_image_stem(title, _split_or_flat(masks_dir), _image_stem_of_mask,
                                    str(masks_dir))
        paired = pair_masks(title, images, masks, str(masks_dir), "<image stem>_gt.png",
                            known_without_mask=without_mask)
        samples = [located.tampered(images[stem], mask, f"{name}/{_kind(stem)}")
                   for stem, mask in paired.items()]
        return samples + located.authentic_folder(name)
    return list_samples


def _layouts(pairs: tuple[tuple[str, str | tuple[str, ...], str, str], ...]) -> tuple[Layout, ...]:
    return tuple(Layout(name, {"tampered": tp, "masks": gt, "authentic": au}, ("tampered", "masks"))
                 for name, tp, gt, au in pairs)


_MODIFIED_TP = ("Modified Tp/Tp", "Modified TP/Tp", "Modified Tp", "Modified TP")
"""Where the CASIA v1.0 archive puts Pham's renamed tampered images; the deeper ``Tp/`` level
first, so a ``Modified Tp/`` that only holds ``Tp/`` is not taken for an empty folder."""

CASIA1 = RealDataset(
    name="casia1", title="CASIA v1.0",
    folders=("CASIA1.0", "CASIA 1.0", "CASIA 1.0 dataset", "CASIA1", "CASIAv1", "casia1", "CASIA"),
    layouts=_layouts((
        ("pham", ("Tp",) + _MODIFIED_TP, "CASIA 1.0 groundtruth", "Au"),
        ("cat-net", tuple(f"CASIA 1.0 dataset/{tp}" for tp in _MODIFIED_TP), "CASIA 1.0 groundtruth",
         "CASIA 1.0 dataset/Au"),
        ("mvss", "TP", "mask", "Au"),
        ("trufor-corel", "Sp", "groundtruth", "Au_corel"),
        ("trufor", "Sp", "groundtruth", "Au"),
        ("imdl-benco", "Tp", "Gt", "Au"),
    )),
    lister=_lister("CASIA v1.0", CASIA1_WITHOUT_MASK),
    expected_counts=(920, 800),
    description="CASIA v1.0 + Pham's masks: 920 tampered (copy-move, splicing), 800 authentic",
)

CASIA2 = RealDataset(
    name="casia2", title="CASIA v2.0",
    folders=("CASIA2.0", "CASIA2.0_revised", "CASIA 2.0", "CASIA2", "CASIAv2", "casia2", "CASIA"),
    layouts=_layouts((
        ("corrected-gt", "Tp", "Gt", "Au"),  # SunnyHaze's corrected package, IMDL-BenCo folders
        ("pham", "Tp", "CASIA 2 Groundtruth", "Au"),
        ("pham-gt-2.0", "Tp", "CASIA2.0_Groundtruth", "Au"),
        ("trufor", "Tp", "groundtruth", "Au"),
        ("pham-gt-beside", "Tp", "../CASIA 2 Groundtruth", "Au"),
        ("pham-gt-2.0-beside", "Tp", "../CASIA2.0_Groundtruth", "Au"),
        ("cat-net", "CASIA 2.0/Tp", "CASIA 2 Groundtruth", "CASIA 2.0/Au"),
    )),
    lister=_lister("CASIA v2.0"),
    expected_counts=(5123, 7491),
    description="CASIA v2.0 + Pham's masks: 5123 tampered, 7491 authentic (the usual training set)",
    test_set=False,
)
