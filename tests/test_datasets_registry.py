"""Every registered dataset lists unique ids and loadable images/masks of equal size.

The synthetic sets are made tiny with ``IMLBENCH_SYNTH_PRESET=tiny`` under a temporary
``IMLBENCH_HOME``; datasets whose data is absent here (real benchmarks) are skipped.
"""
from __future__ import annotations

import pytest

from imlbench.datasets import catalog
from imlbench.datasets.base import load_image, load_mask
from imlbench.datasets.synthetic import PRESET_ENV
from imlbench.registry import DATASETS

MAX_SAMPLES_LOADED = 16


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMLBENCH_HOME", str(tmp_path_factory.mktemp("home")))
        mp.setenv(PRESET_ENV, "tiny")
        yield


@pytest.mark.parametrize("name", DATASETS.list(include_test_only=True))
def test_registered_dataset_lists_loadable_samples(name, tiny_synthetic):
    dataset = DATASETS.build(name)
    if not dataset.is_available():
        pytest.skip(f"data of {name!r} is not on this machine")
    samples = dataset.samples
    assert samples and dataset.name == name
    assert len({s.sample_id for s in samples}) == len(samples)
    assert DATASETS.build(name).samples == samples  # same records, same order, every time
    assert DATASETS.build(name).fingerprint() == dataset.fingerprint()  # a stable data version
    labels = {s.label for s in samples}
    picked = [s for s in samples if s.label == 1][: MAX_SAMPLES_LOADED // 2]
    picked += [s for s in samples if s.label == 0][: MAX_SAMPLES_LOADED // 2]
    for s in picked:
        image = load_image(s.image_path)
        mask = load_mask(s.mask_path, image.shape[:2])
        assert image.dtype.name == "uint8" and image.shape[2] == 3
        assert mask.shape == image.shape[:2]
        assert s.label == 1 or (s.mask_path is None and not mask.any())
    if name in catalog.TEST_SETS or name in (catalog.SYNTH_TRAIN, catalog.SYNTH_VAL):
        assert labels == {0, 1}  # authentic images make image-level metrics meaningful


def test_test_sets_are_the_synthetic_test_splits(tiny_synthetic):
    names = catalog.test_set_names()
    assert set(catalog.TEST_SETS) <= set(names)
    assert catalog.SYNTH_TRAIN not in names and catalog.SYNTH_VAL not in names
    assert all(getattr(DATASETS.get(n), "test_set", False) for n in names)
