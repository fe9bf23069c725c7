"""Small fabricated data shared by tests (no downloads, a few KB each)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from imlbench.datasets.base import Dataset, Sample


def make_folder_dataset(root: Path, n_tampered: int = 3, n_authentic: int = 2,
                        sizes=((24, 32), (17, 23), (32, 32)), seed: int = 0) -> Dataset:
    """Writes an IMDL-BenCo folder (``Tp/``, ``Gt/``, ``Au/``) of PNGs of varied sizes under
    ``root`` and returns a Dataset over the same files.

    Tampered images have a bright rectangle where the mask is set, so simple methods can find it.
    """
    rng = np.random.default_rng(seed)
    for sub in ("Tp", "Gt", "Au"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n_tampered + n_authentic):
        h, w = sizes[i % len(sizes)]
        img = rng.integers(0, 120, size=(h, w, 3), dtype=np.uint8)
        stem = f"img{i:02d}"
        label = int(i < n_tampered)
        ipath = root / ("Tp" if label else "Au") / f"{stem}.png"
        mpath = None
        if label:
            mask = np.zeros((h, w), dtype=np.uint8)
            y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
            mask[y0:y0 + h // 3 + 1, x0:x0 + w // 3 + 1] = 255
            img[mask > 0] = 230
            mpath = root / "Gt" / f"{stem}.png"
            Image.fromarray(mask).save(mpath)
        Image.fromarray(img).save(ipath)
        samples.append(Sample(stem, ipath, mpath, label, "test"))
    return Dataset("tiny", lambda: samples)


def config_args(config: dict) -> list[str]:
    """``--config key=value`` CLI arguments for a method config (tuples written as YAML lists)."""
    return [arg for key, value in config.items()
            for arg in ("--config", f"{key}={list(value) if isinstance(value, tuple) else value}")]
