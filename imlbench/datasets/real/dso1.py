"""DSO-1 (Carvalho et al., TIFS 2013; in ``tifs-database.zip``; DATASETS.md §7).

Files expected:

- ``DSO-1/splicing-<NN>.png`` (100 spliced; ``01``…``99``, then ``100``) and
  ``DSO-1/normal-<NN>.png`` (100 authentic), 2048×1536 PNG;
- ``DSO-1-Fake-Images-Masks/splicing-<NN>.png`` — the mask has the image's own file name.
  Masks are **inverted**: black = spliced, white = authentic (``"inverted"``: grey < 127.5).

The zip unpacks to ``tifs-database/`` (sometimes ``tifs-database/tifs-database/``, plus a
``__MACOSX/`` tree that is ignored). The two folders may also sit directly under the data
root (then ``DSO-1/`` is the dataset folder).
"""
from __future__ import annotations

from imlbench.datasets.base import Sample
from imlbench.datasets.real._common import Layout, Located, RealDataset, image_files, pair_masks

_AUTHENTIC_PREFIX = "normal"


def _list(located: Located, name: str) -> list[Sample]:
    images = image_files(located.path("images"))
    masks_dir = located.path("masks")
    tampered = {s: p for s, p in images.items() if not s.startswith(_AUTHENTIC_PREFIX)}
    paired = pair_masks(DSO1.title, tampered, image_files(masks_dir), str(masks_dir),
                        "the image's own file name, in DSO-1-Fake-Images-Masks/")
    samples = [located.tampered(tampered[s], mask, f"{name}/splice", "inverted")
               for s, mask in paired.items()]
    samples += located.authentic(
        (p for s, p in images.items() if s.startswith(_AUTHENTIC_PREFIX)), name)
    return samples


DSO1 = RealDataset(
    name="dso1", title="DSO-1",
    folders=("tifs-database", "tifs-database/tifs-database", "DSO-1", "DSO1", "dso1", "dso-1"),
    layouts=(
        Layout("official", {"images": "DSO-1", "masks": "DSO-1-Fake-Images-Masks"},
               ("images", "masks")),
        Layout("folders-at-root", {"images": ".", "masks": "../DSO-1-Fake-Images-Masks"},
               ("masks",)),
    ),
    lister=_list,
    expected_counts=(100, 100),
    description="DSO-1: 100 spliced 2048x1536 PNGs (inverted masks), 100 authentic",
)
