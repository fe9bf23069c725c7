"""Columbia Uncompressed Image Splicing Detection Evaluation Dataset (DATASETS.md §3).

Files expected:

- ``4cam_splc/<camA>_<camB>_sub_<NN>.tif`` — 180 spliced images (``.bmp`` accepted too);
- ``4cam_splc/edgemask/<stem>_edgemask.jpg`` — their ground truth. This is no binary mask
  but a lossy colour JPEG painting the image red and green (bright and darker shades, near
  and far from the splicing border). **Green = the spliced region** (CAT-Net, photoholmes,
  IML-ViT agree); the ``"columbia_edgemask"`` encoding decodes a pixel as spliced when green
  dominates red and is bright (G > R and G > 127.5), which splits JPEG colour bleeding at
  the border in the middle. ``<stem>_edgemask_3.jpg`` variants (with a blue band) are ignored,
  as by every protocol;
- ``4cam_auth/<cam>_<scene>_sub_<NN>.tif`` — 183 authentic images.

Some unpacks nest each folder in itself (``4cam_splc/4cam_splc/``); that layout is accepted.
"""
from __future__ import annotations

from imlbench.datasets.base import Sample
from imlbench.datasets.real._common import (Layout, Located, RealDataset, image_files,
                                            image_stem_before, masks_by_image_stem, pair_masks)

_image_stem_of_mask = image_stem_before("_edgemask")


def _list(located: Located, name: str) -> list[Sample]:
    spliced_dir, masks_dir = located.path("tampered"), located.path("masks")
    images = image_files(spliced_dir)
    masks = masks_by_image_stem(COLUMBIA.title, image_files(masks_dir), _image_stem_of_mask,
                                str(masks_dir))
    paired = pair_masks(COLUMBIA.title, images, masks, str(masks_dir), "<image stem>_edgemask.jpg")
    samples = [located.tampered(images[stem], mask, f"{name}/splice", "columbia_edgemask")
               for stem, mask in paired.items()]
    return samples + located.authentic_folder(name)


COLUMBIA = RealDataset(
    name="columbia", title="Columbia Uncompressed",
    folders=("Columbia Uncompressed Image Splicing Detection", "Columbia Uncompressed",
             "Columbia", "columbia", "ColumbiaUncompressed"),
    layouts=(
        Layout("official", {"tampered": "4cam_splc", "masks": "4cam_splc/edgemask",
                            "authentic": "4cam_auth"}, ("tampered", "masks")),
        Layout("nested", {"tampered": "4cam_splc/4cam_splc", "masks": "4cam_splc/4cam_splc/edgemask",
                          "authentic": ("4cam_auth/4cam_auth", "4cam_auth")}, ("tampered", "masks")),
    ),
    lister=_list,
    expected_counts=(180, 183),
    description="Columbia Uncompressed: 180 spliced TIFFs (colour edge-mask GT), 183 authentic",
)
