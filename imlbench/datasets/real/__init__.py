"""Adapters for the public IML benchmarks *as their archives unpack*, found under the data
root (``--data-root`` / ``$IMLBENCH_DATA``). Importing this package registers them in
``DATASETS``; a dataset whose files are absent is simply not part of ``--dataset all``.

Each module documents the file names, extensions and mask encodings it expects, and the
known defects of its dataset.
"""
from __future__ import annotations

from imlbench.datasets.real._common import Layout, Located, RealDataset
from imlbench.datasets.real.casia import CASIA1, CASIA2
from imlbench.datasets.real.cocoglide import COCOGLIDE
from imlbench.datasets.real.columbia import COLUMBIA
from imlbench.datasets.real.coverage import COVERAGE
from imlbench.datasets.real.dso1 import DSO1
from imlbench.datasets.real.imd2020 import IMD2020
from imlbench.datasets.real.korus import KORUS
from imlbench.datasets.real.nist16 import NIST16
from imlbench.registry import DATASETS

REAL_DATASETS: tuple[RealDataset, ...] = (CASIA1, CASIA2, COLUMBIA, COVERAGE, NIST16, IMD2020,
                                          DSO1, KORUS, COCOGLIDE)
for _d in REAL_DATASETS:
    DATASETS.add(_d.name, _d, description=_d.description)

__all__ = ["Layout", "Located", "RealDataset", "REAL_DATASETS", "CASIA1", "CASIA2", "COLUMBIA",
           "COVERAGE", "NIST16", "IMD2020", "DSO1", "KORUS", "COCOGLIDE"]
