"""Named datasets: the synthetic sets, and which registered datasets are *test sets*.

A dataset factory is a test set (part of ``--dataset all``) when it has a true ``test_set``
attribute; plug-ins and real-data readers mark their test sets the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

from imlbench.datasets.base import Dataset
from imlbench.datasets.photos import photos_available
from imlbench.datasets.synthetic import SynthConfig, list_samples
from imlbench.registry import DATASETS

SYNTH_TRAIN = "synth-train"
SYNTH_VAL = "synth-val"
TEST_SETS = ("synth-copymove", "synth-removal", "synth-splice")
"""The synthetic protocol's test sets (``synth-train``/``synth-val`` are not test sets)."""


@dataclass(frozen=True)
class SyntheticSet:
    """Factory of one registered synthetic dataset; builds the benchmark on first listing."""

    name: str
    set_name: str
    """Folder of the set inside the generated benchmark (``test-splice``, ``train``, ...)."""
    test_set: bool
    description: str

    def __call__(self, config: SynthConfig | None = None, progress: bool = True) -> Dataset:
        """``config=None`` uses the preset named by ``$IMLBENCH_SYNTH_PRESET`` at listing time."""
        return Dataset(self.name, lambda: list_samples(self.set_name, config, progress),
                       self.description, photos_available)


_SYNTHETIC_SETS = (
    SyntheticSet(SYNTH_TRAIN, "train", False,
                 "synthetic training set: splice + copy-move + removal + authentic (train photos)"),
    SyntheticSet(SYNTH_VAL, "val", False,
                 "synthetic validation set: all manipulations + authentic (val photos)"),
    SyntheticSet("synth-splice", "test-splice", True,
                 "synthetic test set: splicing from other test photos + authentic"),
    SyntheticSet("synth-copymove", "test-copymove", True,
                 "synthetic test set: copy-move (mask = pasted target) + authentic"),
    SyntheticSet("synth-removal", "test-removal", True,
                 "synthetic test set: object removal by inpainting + authentic"),
)
for _s in _SYNTHETIC_SETS:
    DATASETS.add(_s.name, _s, description=_s.description)


def test_set_names() -> list[str]:
    """Registered test sets whose data is available, sorted: what ``--dataset all`` means."""
    return [name for name in DATASETS.list()
            if getattr(DATASETS.get(name), "test_set", False) and DATASETS.build(name).is_available()]


test_set_names.__test__ = False  # a "test_*" name: keep pytest from collecting it where imported
