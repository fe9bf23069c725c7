"""``imlbench data check``: find what would break or bias an evaluation before it runs."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from imlbench.datasets.base import (Dataset, DatasetError, Sample, mask_encoding, open_decoded,
                                   read_mask_pixels)


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
    """Counts, unreadable files, image/mask size mismatches, unclean (non-binary) and empty masks.

    Masks are read through each sample's mask encoding (``Sample.mask_encoding``), so an
    inverted, colour-coded or three-level mask is judged by what it decodes to.
    """
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
    if dataset.expected_counts is not None:
        found, published = (report.n_tampered, report.n_authentic), tuple(dataset.expected_counts)
        if found != published:
            report.add("count differs from the published release",
                       f"found {found[0]} tampered / {found[1]} authentic, published "
                       f"{published[0]} / {published[1]}: a partial unpack, or another variant")
    for s in samples:
        try:
            with open_decoded(s.image_path, "image") as im:
                size = im.size
        except DatasetError as exc:  # also decompression bombs, as the runner would see them
            report.add("unreadable image", str(exc))
            continue
        if s.mask_path is not None:
            _check_mask(s, size, report)
    return report


def _check_mask(s: Sample, image_size: tuple[int, int], report: CheckReport) -> None:
    encoding = mask_encoding(s.mask_encoding)
    try:
        pixels = read_mask_pixels(s.mask_path, encoding.channels)
    except DatasetError as exc:
        report.add("unreadable mask", str(exc))
        return
    msize = (pixels.shape[1], pixels.shape[0])
    if msize != image_size:
        report.add("size mismatch", f"{s.image_path.name} {image_size[0]}x{image_size[1]} vs mask "
                                    f"{msize[0]}x{msize[1]}")
    issue = encoding.unclean(pixels)
    if issue:
        report.add("non-binary mask", f"{s.mask_path.name}: {issue}; decoded as "
                                      f"{encoding.name!r} ({encoding.description})")
    mask = encoding.decode(pixels)
    if not mask.any():
        report.add("empty mask on tampered image", f"{s.mask_path.name} (read as {encoding.name!r})")
    elif mask.all():  # a whole-image manipulation is rare; an inverted polarity is not
        report.add("mask covers the whole image", f"{s.mask_path.name} (read as {encoding.name!r}); "
                   "check the mask polarity")


def render_report(report: CheckReport) -> str:
    from tabulate import tabulate

    rows = [["tampered images", report.n_tampered], ["authentic images", report.n_authentic]]
    rows += [[kind, n] for kind, n in sorted(report.problems.items())]
    text = f"{report.dataset}: {'OK' if report.ok else 'PROBLEMS FOUND'}\n"
    text += tabulate(rows, headers=["check", "count"], tablefmt="github") + "\n"
    for kind, ex in sorted(report.examples.items()):
        text += f"  {kind}, e.g.: " + "; ".join(ex) + "\n"
    return text
