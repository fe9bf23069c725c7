"""IMD2020, "Real-Life Manipulated Images" part (Novozámský et al., WACVW 2020; DATASETS.md §6).

Files expected: one sub-folder per original photo (``<6-char reddit id>/`` ×374,
``z<k>/`` ×40), each holding

- the original: the one image whose name contains ``orig`` (``<id>_orig.jpg``; found by that
  substring, never rebuilt from the folder name: ``1d6mhe/`` holds ``d6mhe_orig.jpg``) —
  an authentic sample;
- manipulated versions ``<name>.jpg|png`` (``c8tf5mq_0.png``, ``00047_fake_02.jpg``), each
  with ``<name>_mask.png`` beside it (binary PNG, white = manipulated; ``"binary"``).

Known defect: the mask of ``z14/00030_fake.jpg`` is not the size of its image; evaluation
stops there with its path (``--skip-bad`` leaves it out and lists it). Use the corrected mask
(SunnyHaze/IML-Dataset-Corrections).
Sample ids are ``<folder>/<file>``.
"""
from __future__ import annotations

from imlbench.datasets.base import Sample
from imlbench.datasets.real._common import (Layout, Located, RealDataset, image_files,
                                            image_stem_before, masks_by_image_stem, pair_masks)

_MASK = "_mask"
_image_stem_of_mask = image_stem_before(_MASK)


def _list(located: Located, name: str) -> list[Sample]:
    samples = []
    photos = (p for p in located.folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in sorted(photos):
        files = image_files(folder)
        masks = masks_by_image_stem(IMD2020.title, files, _image_stem_of_mask, str(folder))
        originals = {s: p for s, p in files.items() if "orig" in s and not s.endswith(_MASK)}
        manipulated = {s: p for s, p in files.items()
                       if s not in originals and not s.endswith(_MASK)}
        paired = pair_masks(IMD2020.title, manipulated, masks, str(folder), "<image stem>_mask.png")
        samples += [located.tampered(manipulated[s], mask, f"{name}/real-life")
                    for s, mask in paired.items()]
        samples += located.authentic(originals.values(), name)
    return samples


IMD2020 = RealDataset(
    name="imd2020", title="IMD2020 (real-life)",
    folders=("IMD2020", "imd2020", "IMD2020_real", "IMD2020-real"),
    layouts=(Layout("official", {"folders": "."}, ("folders",)),),
    lister=_list,
    expected_counts=(2010, 414),
    description="IMD2020 real-life: 2010 manipulated web images (binary PNG masks), 414 originals",
)
