"""Korus "Realistic Tampering Dataset" v2.0 (Korus & Huang; DATASETS.md §8).

Files expected (``realistic-tampering-dataset.zip`` unpacks to ``data-images/``), per camera
folder (``Canon_60D``, ``Nikon_D90``, ``Nikon_D7000``, ``Sony_A57``; any folder holding a
``tampered-realistic/`` sub-folder counts):

- ``tampered-realistic/<name>.TIF`` — 1920×1080 forgeries (upper-case extensions; matched
  case-insensitively);
- ``ground-truth/<name>.PNG`` — same name as the forgery; **three levels**: black =
  authentic, white = semantic change, grey = "collateral damage" (changed pixels keeping
  roughly the same content). Decoded with ``"korus_3level"``: grey counts as manipulated,
  because those pixels were modified and the author states that the black (authentic) labels
  are accurate while the white/grey border is rough;
- ``pristine/<name>.TIF`` — the originals (authentic), with the *same file names* as their
  forgeries. Sample ids keep them apart (``<camera>/pristine/<name>.TIF``), and so do exported
  maps: a shared stem is replaced by the sample id without extension, ``/`` as ``__``
  (``Canon_60D__pristine__DPP0520.npy``; ``runner.prediction_names``).
"""
from __future__ import annotations

from imlbench.datasets.base import Sample
from imlbench.datasets.real._common import Layout, Located, RealDataset, image_files, pair_masks

_TAMPERED, _MASKS, _PRISTINE = "tampered-realistic", "ground-truth", "pristine"


def _list(located: Located, name: str) -> list[Sample]:
    samples = []
    for camera in sorted(p for p in located.folder.iterdir() if (p / _TAMPERED).is_dir()):
        tampered = image_files(camera / _TAMPERED)
        masks_dir = camera / _MASKS
        masks = image_files(masks_dir) if masks_dir.is_dir() else {}
        paired = pair_masks(KORUS.title, tampered, masks, str(masks_dir), "<name>.PNG, as the forgery")
        samples += [located.tampered(tampered[s], mask, f"{name}/realistic", "korus_3level")
                    for s, mask in paired.items()]
        if (camera / _PRISTINE).is_dir():
            samples += located.authentic(image_files(camera / _PRISTINE).values(), name)
    return samples


KORUS = RealDataset(
    name="korus", title="Korus realistic tampering",
    folders=("data-images", "realistic-tampering-dataset/data-images", "realistic-tampering-dataset",
             "realistic-tampering", "korus", "Korus"),
    layouts=(Layout("official", {"cameras": f"*/{_TAMPERED}"}, ("cameras",)),),
    lister=_list,
    expected_counts=(220, 220),
    description="Korus realistic tampering: 220 forgeries (3-level masks), 220 pristine, 1920x1080",
)
