"""``imlbench data check``: find what would break or bias an evaluation before it runs."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from imlbench.datasets.base import MASK_THRESHOLD, Dataset, DatasetError


@dataclass
class CheckReport:
    dataset: str
    n_tampered: int = 0
    n_authentic: int = 0
    problems: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, what: str) -> None:
        self.problems[kind] += 1
        self.examples.setdefault(kind, [])
        if len(self.examples[kind]) < 5:
            self.examples[kind].append(what)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(dataset: Dataset) -> CheckReport:
    """Counts, unreadable files, image/mask size mismatches, non-binary and empty masks."""
    report = CheckReport(dataset.name)
    try:
        samples = dataset.samples
    except DatasetError as exc:  # unmatched images/masks, duplicate ids: the listing itself failed
        report.add("listing", str(exc))
        return report
    for s in samples:
        if s.label:
            report.n_tampered += 1
        else:
            report.n_authentic += 1
        try:
            with Image.open(s.image_path) as im:
                im.load()
                size = im.size
        except (OSError, SyntaxError, ValueError) as exc:
            report.add("unreadable image", f"{s.image_path}: {exc}")
            continue
        if s.mask_path is None:
            continue
        try:
            with Image.open(s.mask_path) as m:
                m.load()
                msize = m.size
                grey = np.asarray(m.convert("L"))
        except (OSError, SyntaxError, ValueError) as exc:
            report.add("unreadable mask", f"{s.mask_path}: {exc}")
            continue
        if msize != size:
            report.add("size mismatch", f"{s.image_path.name} {size[0]}x{size[1]} vs mask "
                                        f"{msize[0]}x{msize[1]}")
        values = np.unique(grey)
        if not np.isin(values, (0, 255)).all():
            report.add("non-binary mask", f"{s.mask_path.name}: {len(values)} grey levels "
                                          f"(binarised at > {MASK_THRESHOLD})")
        if not (grey > MASK_THRESHOLD).any():
            report.add("empty mask on tampered image", str(s.mask_path.name))
    return report


def render_report(report: CheckReport) -> str:
    from tabulate import tabulate

    rows = [["tampered images", report.n_tampered], ["authentic images", report.n_authentic]]
    rows += [[kind, n] for kind, n in sorted(report.problems.items())]
    text = f"{report.dataset}: {'OK' if report.ok else 'PROBLEMS FOUND'}\n"
    text += tabulate(rows, headers=["check", "count"], tablefmt="github") + "\n"
    for kind, ex in sorted(report.examples.items()):
        text += f"  {kind}, e.g.: " + "; ".join(ex) + "\n"
    return text
