"""The natural photos that the synthetic benchmark is made from: files that ship inside
packages imlbench already depends on, so a fresh, offline machine can build it.

The list is fixed and every file is fingerprinted (SHA-256 of its bytes): the benchmark's
identity never depends on what happens to be installed. A missing or different file is an
error that names the package to install, never a silently smaller or different benchmark.

Splits are assigned per *scene* (``motorcycle_left``/``motorcycle_right`` are one stereo
scene), so no scene, hence no source photo, is shared between train, val and test.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imlbench.datasets.base import DatasetError, load_image

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Photo:
    name: str
    package: str
    """Import name of the package that ships the file (``skimage``)."""
    requirement: str
    """What to ``pip install`` when the file is missing (``scikit-image>=0.22``)."""
    relpath: str
    """Path of the file inside the package folder."""
    sha256: str
    scene: str
    """Photos of one scene (a stereo pair) are always in the same split."""
    split: str
    credit: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)  # locates the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise DatasetError(f"photo {self.name!r} of the synthetic benchmark ships with the "
                               f"{self.package!r} package, which is not installed; run "
                               f"`pip install '{self.requirement}'`")
        path = Path(next(iter(spec.submodule_search_locations))) / self.relpath
        if not path.is_file():
            raise DatasetError(f"photo {self.name!r} is missing from the installed {self.package!r} "
                               f"(expected {path}); reinstall it: `pip install --force-reinstall "
                               f"'{self.requirement}'`")
        return path

    def load(self) -> np.ndarray:
        """Decode to ``uint8 [H, W, 3]`` after checking the file's fingerprint."""
        path = self.path()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise DatasetError(
                f"photo {self.name!r} at {path} has SHA-256 {digest[:16]}..., expected "
                f"{self.sha256[:16]}...; this {self.package!r} ships a different file, so the "
                f"synthetic benchmark would not be the published one. Install '{self.requirement}' "
                f"from PyPI (unmodified).")
        return load_image(path)


_SKIMAGE = ("skimage", "scikit-image>=0.22")
_SKLEARN = ("sklearn", "scikit-learn>=1.3")
_MPL = ("matplotlib", "matplotlib>=3.7")

PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", *_SKIMAGE, "data/astronaut.png",
          "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5", "astronaut", "train",
          "NASA (Eileen Collins), public domain; via scikit-image"),
    Photo("rocket", *_SKIMAGE, "data/rocket.jpg",
          "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c", "rocket", "train",
          "SpaceX, public domain; via scikit-image"),
    Photo("motorcycle_left", *_SKIMAGE, "data/motorcycle_left.png",
          "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179", "motorcycle", "train",
          "Middlebury 2014 stereo benchmark (Scharstein et al.); via scikit-image"),
    Photo("motorcycle_right", *_SKIMAGE, "data/motorcycle_right.png",
          "5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797", "motorcycle", "train",
          "Middlebury 2014 stereo benchmark (Scharstein et al.); via scikit-image"),
    Photo("flower", *_SKLEARN, "datasets/images/flower.jpg",
          "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638", "flower", "val",
          "vultilion on Flickr, CC BY 2.0; via scikit-learn"),
    Photo("grace_hopper", *_MPL, "mpl-data/sample_data/grace_hopper.jpg",
          "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130", "grace_hopper", "val",
          "US Navy portrait of Grace Hopper, public domain; via matplotlib"),
    Photo("chelsea", *_SKIMAGE, "data/chelsea.png",
          "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", "chelsea", "test",
          "Stefan van der Walt, CC0; via scikit-image"),
    Photo("coffee", *_SKIMAGE, "data/coffee.png",
          "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7", "coffee", "test",
          "Rachel Michetti, CC0; via scikit-image"),
    Photo("china", *_SKLEARN, "datasets/images/china.jpg",
          "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29", "china", "test",
          "danielbuechele on Flickr, CC BY 2.0; via scikit-learn"),
)


def photos_in(split: str) -> tuple[Photo, ...]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return tuple(p for p in PHOTOS if p.split == split)


def photos_available() -> bool:
    """Whether every listed photo file is present (fingerprints are checked when building)."""
    try:
        for photo in PHOTOS:
            photo.path()
    except DatasetError:
        return False
    return True
