"""Every registered dataset lists unique ids and loadable images/masks of equal size.

The synthetic sets are made tiny with ``IMLBENCH_SYNTH_PRESET=tiny`` under a temporary
``IMLBENCH_HOME``; the real benchmarks are read from their replicas (``tests/real_replicas.py``)
under a temporary data root. A registered dataset with neither fails: nothing is skipped.
"""
from __future__ import annotations

import pytest

from imlbench.datasets import catalog
from imlbench.datasets.base import load_image, load_mask
from imlbench.datasets.synthetic import PRESET_ENV
from imlbench.paths import DATA_ROOT_ENV
from imlbench.registry import DATASETS
from tests.real_replicas import BUILDERS

MAX_SAMPLES_LOADED = 16


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMLBENCH_HOME", str(tmp_path_factory.mktemp("home")))
        mp.setenv(PRESET_ENV, "tiny")
        yield


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, tiny_synthetic):
    """Every real dataset's replica under one data root."""
    root = tmp_path_factory.mktemp("data")
    for build in BUILDERS.values():
        build(root, defects=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DATA_ROOT_ENV, str(root))
        yield root


@pytest.mark.parametrize("name", DATASETS.list(include_test_only=True))
def test_registered_dataset_lists_loadable_samples(name, replicas):
    dataset = DATASETS.build(name)
    assert dataset.is_available(), (
        f"no test data for registered dataset {name!r}: add a replica of its layout to "
        "tests/real_replicas.py (BUILDERS)")
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
        mask = load_mask(s, image.shape[:2])  # decoded with the sample's own encoding
        assert image.dtype.name == "uint8" and image.shape[2] == 3
        assert mask.shape == image.shape[:2]
        assert mask.any() if s.label == 1 else (s.mask_path is None and not mask.any())
    if name in catalog.TEST_SETS or name in (catalog.SYNTH_TRAIN, catalog.SYNTH_VAL):
        assert labels == {0, 1}  # authentic images make image-level metrics meaningful


def test_test_sets_are_the_synthetic_test_splits(tiny_synthetic):
    names = catalog.test_set_names()
    assert set(catalog.TEST_SETS) <= set(names)
    assert catalog.SYNTH_TRAIN not in names and catalog.SYNTH_VAL not in names
    assert all(getattr(DATASETS.get(n), "test_set", False) for n in names)
