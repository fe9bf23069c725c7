"""COVERAGE (Wen et al., ICIP 2016): copy-move with similar-but-genuine objects (DATASETS.md §4).

Files expected (IDs ``N`` = 1..100, no zero padding):

- ``image/<N>t.tif`` tampered, ``image/<N>.tif`` its pristine original (authentic);
- ``mask/<N>forged.tif`` — the forged region, the mask every protocol scores against; grey
  TIFF, white = forged (``"binary"`` encoding, grey > 127.5). ``mask/<N>copy.tif`` (source
  region) and ``mask/<N>paste.tif`` are ignored;
- ``label/*.mat`` and ``readme.txt`` are ignored.

MVSS-Net's re-packed copy (``tampered/<N>t.tif``, ``Au/<N>.tif``, ``mask/<N>forged.tif``) is
accepted too.

Known defect: the masks of IDs 41, 48, 55–59, 61 and 95 are not the size of their image.
Evaluation stops at them with the mask's path (``--skip-bad`` leaves them out and lists
them); use the corrected masks (SunnyHaze/IML-Dataset-Corrections). Copies downloaded before
27 Sep 2017 have some original/tampered labels swapped.
"""
from __future__ import annotations

import re
from pathlib import Path

from imlbench.datasets.base import DatasetError, Sample
from imlbench.datasets.formats import _few
from imlbench.datasets.real._common import (Layout, Located, RealDataset, image_files,
                                            image_files_in, masks_by_image_stem, pair_masks)

_TAMPERED = re.compile(r"^\d+t$")
_AUTHENTIC = re.compile(r"^\d+$")
_FORGED = re.compile(r"^(\d+)forged$")


def _image_stem_of_mask(mask_stem: str) -> str | None:
    m = _FORGED.match(mask_stem)
    return f"{m.group(1)}t" if m else None


def _split(images: dict[str, Path]) -> tuple[dict[str, Path], dict[str, Path]]:
    """``<N>t`` → tampered, ``<N>`` → authentic; any other name is an error."""
    tampered = {s: p for s, p in images.items() if _TAMPERED.match(s)}
    authentic = {s: p for s, p in images.items() if _AUTHENTIC.match(s)}
    odd = [str(p) for s, p in images.items() if s not in tampered and s not in authentic]
    if odd:
        raise DatasetError(f"COVERAGE: images named neither <N>t (tampered) nor <N> (original): "
                           f"{_few(odd)}; move them out")
    return tampered, authentic


def _list(located: Located, name: str) -> list[Sample]:
    # official: both kinds in image/; MVSS re-pack: tampered/ and Au/ (the names tell them apart)
    folders = [located.path(role) for role in ("tampered", "authentic")]
    tampered, authentic = _split(image_files_in(list(dict.fromkeys(f for f in folders if f))))
    masks_dir = located.path("masks")
    masks = masks_by_image_stem(COVERAGE.title, image_files(masks_dir), _image_stem_of_mask,
                                str(masks_dir))
    paired = pair_masks(COVERAGE.title, tampered, masks, str(masks_dir), "<N>forged.tif for <N>t.tif")
    samples = [located.tampered(tampered[s], mask, f"{name}/copymove") for s, mask in paired.items()]
    samples += located.authentic(authentic.values(), name)
    return samples


COVERAGE = RealDataset(
    name="coverage", title="COVERAGE",
    folders=("COVERAGE", "Coverage", "coverage", "COVER"),
    layouts=(
        Layout("official", {"tampered": "image", "authentic": "image", "masks": "mask"},
               ("tampered", "masks")),
        Layout("mvss", {"tampered": "tampered", "masks": "mask", "authentic": "Au"},
               ("tampered", "masks")),
    ),
    lister=_list,
    expected_counts=(100, 100),
    description="COVERAGE: 100 copy-moves among similar genuine objects + their 100 originals",
)
