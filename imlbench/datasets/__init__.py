"""Datasets: the ``Sample``/``Dataset`` contract, on-disk readers, and the embedded synthetic
benchmark. Importing this package registers the built-in datasets in ``DATASETS``."""
from __future__ import annotations

from imlbench.datasets.base import Dataset, DatasetError, Sample, load_image, load_mask
from imlbench.datasets.catalog import SYNTH_TRAIN, SYNTH_VAL, TEST_SETS, test_set_names
from imlbench.datasets.formats import (IMAGE_EXTENSIONS, MASK_SUFFIXES, UnknownDatasetError,
                                       read_benco_folder, read_benco_json,
                                       read_image_mask_folders, resolve_dataset)
from imlbench.datasets.synthetic import PRESET_ENV, SynthConfig, build_synthetic, default_config
from imlbench.datasets import real  # noqa: F401  (registers the real-data adapters)

__all__ = [
    "Dataset", "DatasetError", "Sample", "load_image", "load_mask",
    "SYNTH_TRAIN", "SYNTH_VAL", "TEST_SETS", "test_set_names",
    "IMAGE_EXTENSIONS", "MASK_SUFFIXES", "UnknownDatasetError",
    "read_benco_folder", "read_benco_json", "read_image_mask_folders", "resolve_dataset",
    "PRESET_ENV", "SynthConfig", "build_synthetic", "default_config",
]
