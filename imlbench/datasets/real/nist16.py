"""NIST Nimble 2016 (``NC2016_Test0613``, "NIST16") through its reference CSV (DATASETS.md §5).

Files expected:

- ``reference/manipulation/NC2016-manipulation-ref.csv`` — pipe-delimited (``|``) with a
  header; the columns read are ``ProbeFileName`` (``probe/NC2016_<4d>.jpg``),
  ``ProbeMaskFileName`` (``reference/manipulation/mask/NC2016_<4d>.png``, empty for
  non-targets), ``IsTarget`` (``Y``/``N``) and the ``IsManipulationType{Splice,Removal,
  CopyClone}`` flags (the sample's ``source``). Paths are relative to the dataset folder.
- the probes and masks it names. **The mask ID differs from the probe ID** (probe 0128 →
  mask 3942), so masks are only ever found through the CSV; 282 masks are each shared by two
  probes (one ``none``, one ``rescale`` post-processing), which is kept: the protocol's 564.
- Masks are **inverted**: manipulated pixels are black on white. They are decoded with
  NIST MediScore's own rule, every non-white pixel is manipulated (``"nist_inverted"``).

Targets (564) are tampered samples; non-targets (560) are authentic.
"""
from __future__ import annotations

import csv
from pathlib import Path

from imlbench.datasets.base import DatasetError, Sample
from imlbench.datasets.formats import _few
from imlbench.datasets.real._common import Layout, Located, RealDataset

_COLUMNS = ("ProbeFileName", "ProbeMaskFileName", "IsTarget")
_KINDS = (("IsManipulationTypeSplice", "splice"), ("IsManipulationTypeRemoval", "removal"),
          ("IsManipulationTypeCopyClone", "copymove"))


def read_reference(csv_path: Path) -> list[dict[str, str]]:
    """Rows of a NIST reference CSV (``|``-delimited, header first) as dicts."""
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter="|")
        absent = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if absent:
            raise DatasetError(f"{csv_path}: missing column(s) {absent}; found "
                               f"{reader.fieldnames}. Expected NIST's pipe-delimited reference CSV")
        return list(reader)


def _kind(row: dict[str, str]) -> str:
    kinds = [kind for column, kind in _KINDS if row.get(column) == "Y"]
    return "+".join(kinds) or "tampered"


def _list(located: Located, name: str) -> list[Sample]:
    csv_path = located.path("csv")
    samples, missing, bad = [], [], []
    for i, row in enumerate(read_reference(csv_path), start=2):  # line 1 is the header
        image = located.folder / row["ProbeFileName"]
        target = row["IsTarget"].strip()
        mask = located.folder / row["ProbeMaskFileName"] if row["ProbeMaskFileName"] else None
        if target not in ("Y", "N") or (target == "Y") != (mask is not None):
            bad.append(f"line {i}: IsTarget={target!r}, ProbeMaskFileName={row['ProbeMaskFileName']!r}")
            continue
        missing += [p for p in (image, mask) if p is not None and not p.is_file()]
        label = int(target == "Y")
        samples.append(Sample(row["ProbeFileName"], image, mask, label,
                              f"{name}/{_kind(row) if label else 'authentic'}",
                              mask_encoding="nist_inverted"))
    if bad:
        raise DatasetError(f"{csv_path}: rows where a target lacks its mask or a non-target has one: "
                           f"{_few(bad)}")
    if missing:
        raise DatasetError(f"NIST16: files named in {csv_path} do not exist: {_few(missing)}; "
                           "unpack the whole NC2016_Test0613 archive")
    return samples


NIST16 = RealDataset(
    name="nist16", title="NIST Nimble 2016",
    folders=("NC2016_Test0613", "NC2016_Test", "NC2016", "NIST16", "NIST2016", "nist16"),
    layouts=(Layout("official", {"csv": "reference/manipulation/NC2016-manipulation-ref.csv"},
                    ("csv",)),),
    lister=_list,
    expected_counts=(564, 560),
    description="NIST Nimble 2016: 564 manipulated probes (inverted masks via the CSV), 560 not",
)
