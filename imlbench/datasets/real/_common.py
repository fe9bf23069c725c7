"""What every real-dataset adapter shares: finding the unpacked archive under the data root,
listing image files leniently, and pairing images with masks.

An adapter is a :class:`RealDataset` (the registered factory). Building it touches no disk;
``is_available()`` costs a few ``stat`` calls (one per candidate folder, a few more for the
folder that exists); the files are listed only when the samples are first needed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from imlbench.datasets.base import Dataset, DatasetError, Sample
from imlbench.datasets.formats import _few, list_images
from imlbench.paths import DATA_ROOT_ENV, data_root

@dataclass(frozen=True)
class Layout:
    """One way an archive unpacks: ``roles`` maps a role (``"tampered"``, ``"masks"``,
    ``"authentic"``, ``"csv"``...) to a path relative to the dataset folder, or to a tuple of
    alternatives (the first that exists is used); the layout matches a folder where every
    role in ``required`` exists."""

    name: str
    roles: Mapping[str, str | tuple[str, ...]]
    required: tuple[str, ...]

    def alternatives(self, role: str) -> tuple[str, ...]:
        rel = self.roles.get(role, ())
        return (rel,) if isinstance(rel, str) else rel

    def missing(self, folder: Path) -> str | None:
        """The first required path absent from ``folder``, or ``None`` (each check is a stat;
        a ``*`` pattern such as ``*/tampered-realistic`` lists one folder)."""
        for role in self.required:
            if not any(_find(folder, rel) for rel in self.alternatives(role)):
                return " or ".join(self.alternatives(role))
        return None


def _find(folder: Path, rel: str) -> Path | None:
    if "*" in rel:
        return next(iter(sorted(folder.glob(rel))), None)
    path = Path(os.path.normpath(folder / rel))  # roles may step out: "../Gt folder"
    return path if path.exists() else None


@dataclass(frozen=True)
class Located:
    """A dataset folder and the layout it matched."""

    folder: Path
    layout: Layout

    def path(self, role: str) -> Path | None:
        """Absolute path of ``role``, or ``None`` if the layout has no such role or it is absent
        (optional roles, e.g. a release without its authentic images)."""
        for rel in self.layout.alternatives(role):
            found = _find(self.folder, rel)
            if found is not None:
                return found
        return None

    def rel(self, path: Path) -> str:
        """``path`` relative to the dataset folder, POSIX-style: the sample id."""
        return path.relative_to(self.folder).as_posix()

    def tampered(self, path: Path, mask: Path, source: str,
                 mask_encoding: str = "binary") -> Sample:
        """The tampered sample of image ``path`` (id: its path in the dataset folder)."""
        return Sample(self.rel(path), path, mask, 1, source, mask_encoding)

    def authentic(self, paths: Iterable[Path], dataset: str) -> list[Sample]:
        """Authentic samples of ``paths`` (no mask; source ``<dataset>/authentic``)."""
        return [Sample(self.rel(p), p, None, 0, f"{dataset}/authentic") for p in paths]

    def authentic_folder(self, dataset: str, role: str = "authentic") -> list[Sample]:
        """Authentic samples of every image in the folder of ``role``; none when the release
        lacks that folder (tampered only, which ``data check`` reports as a short count)."""
        folder = self.path(role)
        return [] if folder is None else self.authentic(image_files(folder).values(), dataset)


Lister = Callable[[Located, str], Sequence[Sample]]
"""``(located, dataset name) -> samples`` (any order; the factory sorts them by id)."""


@dataclass(frozen=True)
class RealDataset:
    """Registered factory of one real dataset, found under the data root.

    ``folders`` are candidate dataset folder names under the data root (tried in order),
    ``layouts`` the ways the archive may unpack inside such a folder.
    ``DATASETS.build(name)`` reads the root from ``$IMLBENCH_DATA``; ``root=`` overrides it,
    ``folder=`` names the dataset folder itself (then only the layouts are tried).
    """

    name: str
    title: str
    folders: tuple[str, ...]
    layouts: tuple[Layout, ...]
    lister: Lister = field(repr=False)
    expected_counts: tuple[int, int] | None
    description: str
    test_set: bool = True

    def __call__(self, root: str | Path | None = None, *, folder: str | Path | None = None) -> Dataset:
        candidates = self._candidates(root, folder)

        def lister() -> list[Sample]:
            located = self.locate(candidates)
            if located is None:
                raise DatasetError(self.not_found_message(candidates, root, folder))
            samples = sorted(self.lister(located, self.name), key=lambda s: s.sample_id)
            if not samples:
                raise DatasetError(f"{self.title} at {located.folder} ({located.layout.name} layout) "
                                   "holds no images; is the archive fully unpacked?")
            return samples

        return Dataset(self.name, lister, self.description,
                       lambda: self.locate(candidates) is not None, self.expected_counts)

    def _candidates(self, root: str | Path | None, folder: str | Path | None) -> list[Path]:
        if folder is not None:
            return [Path(folder).expanduser()]
        base = data_root(root)
        return [] if base is None else [base / name for name in self.folders]

    def locate(self, candidates: Sequence[Path]) -> Located | None:
        for folder in candidates:
            if not folder.is_dir():
                continue
            for layout in self.layouts:
                if layout.missing(folder) is None:
                    return Located(folder, layout)
        return None

    def not_found_message(self, candidates: Sequence[Path], root: str | Path | None,
                          folder: str | Path | None) -> str:
        if not candidates:
            return (f"{self.title} ({self.name!r}) is read from a data root, and none is set: pass "
                    f"--data-root DIR or set ${DATA_ROOT_ENV} to the folder holding the unpacked "
                    f"archive as one of: {', '.join(repr(f) for f in self.folders)}")
        tried = []
        for path in candidates:
            if not path.is_dir():
                tried.append(f"{path} (no such folder)")
                continue
            lacks = "; ".join(f"{layout.name} layout lacks {layout.missing(path)!r}"
                              for layout in self.layouts)
            tried.append(f"{path} ({lacks})")
        where = f"folder {folder}" if folder is not None else f"data root {data_root(root)}"
        return (f"{self.title} ({self.name!r}) not found under {where}. Tried:\n  "
                + "\n  ".join(tried)
                + f"\nUnpack the archive into one of these folders (see imlbench/datasets/real/"
                  f"{self.lister.__module__.rsplit('.', 1)[-1]}.py for the expected files).")


# -- listing -------------------------------------------------------------------------------
def image_files(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the image files directly in ``folder``, sorted by name.

    Lenient, unlike a user folder: archives ship read-me, list and ``.mat`` files and
    sub-folders (``edgemask/``) beside their images, so anything without an image extension
    (any case) is skipped, and so are hidden files, such as the AppleDouble ``._x.png`` a macOS
    unzip leaves. Two images with the same stem are an error (masks are matched by stem).
    """
    return list_images(folder, skip_other_files=True)


def image_files_in(folders: Sequence[Path]) -> dict[str, Path]:
    """:func:`image_files` of several folders merged; a stem in two folders is an error."""
    merged: dict[str, Path] = {}
    for folder in folders:
        for stem, path in image_files(folder).items():
            if stem in merged:
                raise DatasetError(f"image stem {stem!r} occurs twice: {merged[stem]} and {path}; "
                                   "remove the duplicate")
            merged[stem] = path
    return merged


def pair_masks(title: str, images: Mapping[str, Path], masks: Mapping[str, Path],
               masks_where: str, mask_rule: str,
               known_without_mask: Sequence[str] = ()) -> dict[str, Path]:
    """``{image stem: mask path}`` for ``images``; ``masks`` is keyed by the image stem each
    mask belongs to. Tampered images without a mask (other than the documented
    ``known_without_mask`` stems) and masks of no image are one error that lists both."""
    without = [images[s].name for s in images if s not in masks and s not in known_without_mask]
    orphans = [masks[k].name for k in masks if k not in images]
    if without or orphans:
        parts = []
        if without:
            parts.append(f"tampered images without a mask in {masks_where}: {_few(without)}")
        if orphans:
            parts.append(f"masks in {masks_where} that match no image: {_few(orphans)}")
        raise DatasetError(f"{title}: " + "; ".join(parts) + f". Expected mask name: {mask_rule}. "
                           "Restore the missing files or re-unpack the archive")
    return {s: masks[s] for s in images if s in masks}


def image_stem_before(suffix: str) -> Callable[[str], str | None]:
    """For :func:`masks_by_image_stem`: masks named ``<image stem><suffix>``."""
    return lambda mask_stem: mask_stem[: -len(suffix)] if mask_stem.endswith(suffix) else None


def masks_by_image_stem(title: str, masks: Mapping[str, Path],
                        image_stem_of: Callable[[str], str | None],
                        masks_where: str) -> dict[str, Path]:
    """Re-key ``{mask stem: path}`` by ``image_stem_of(mask stem)``, the stem of the image the
    mask belongs to (``None``: not a mask of this dataset, skipped). Two masks for one image
    are an error."""
    keyed: dict[str, Path] = {}
    clashes = []
    for stem, path in masks.items():
        key = image_stem_of(stem)
        if key is None:
            continue
        if key in keyed:
            clashes.append(f"{keyed[key].name}/{path.name}")
        keyed[key] = path
    if clashes:
        raise DatasetError(f"{title}: two masks for one image in {masks_where}: {_few(clashes)}; "
                           "keep one of each")
    return keyed
