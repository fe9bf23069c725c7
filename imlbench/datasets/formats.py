"""Readers for datasets on disk, and :func:`resolve_dataset` (registered name or path).

Layouts (every reader lists samples sorted by sample id):

- IMDL-BenCo JSON: ``[[image, mask | "Negative"], ...]``. Absolute paths are used as
  written; relative ones are resolved against the JSON file's folder, and one that climbs
  out of it with ``..`` is refused unless ``allow_outside=True``. Ids: the path as written
  if absolute, else relative to the JSON folder.
- IMDL-BenCo folder: ``<root>/Tp/`` tampered images, ``<root>/Gt/`` their masks, and
  optionally ``<root>/Au/`` authentic images. Ids: ``Tp/<file>``, ``Au/<file>``.
- Image/mask folders: ``<images>/`` and ``<masks>/``; ``resolve_dataset`` finds them as
  ``<root>/images`` and ``<root>/masks``. Ids: the image file name.

Masks are matched to images by file stem: a mask named ``<image stem><suffix>.<ext>`` with a
suffix from :data:`MASK_SUFFIXES` (``a.jpg`` <- ``a.png``, ``a_gt.png`` or ``a_mask.tif``).
Images and masks may use any extension in :data:`IMAGE_EXTENSIONS` (any case). Folders are
not searched recursively; hidden files and OS clutter are skipped, anything else is an error.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from imlbench.datasets.base import Dataset, DatasetError, Sample
from imlbench.registry import DATASETS, RegistryError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
MASK_SUFFIXES = ("", "_gt", "_mask")
NEGATIVE = "Negative"
"""BenCo's mask entry for an authentic image."""
_OS_CLUTTER = {"Thumbs.db", "desktop.ini"}

LAYOUTS = ("an IMDL-BenCo JSON file ([[image, mask or \"Negative\"], ...])",
           "a folder with Tp/ and Gt/ (and optionally Au/) subfolders (IMDL-BenCo)",
           "a folder with images/ and masks/ subfolders (masks named <image stem>[_gt|_mask].<ext>)")


class UnknownDatasetError(DatasetError, RegistryError):
    """Neither a registered name nor a dataset on disk (catchable as either parent)."""


def _few(items: Sequence[object], n: int = 5) -> str:
    shown = ", ".join(str(i) for i in items[:n])
    return f"{len(items)} ({shown}{', ...' if len(items) > n else ''})"


# -- folders ------------------------------------------------------------------------------
def list_images(folder: Path, *, skip_other_files: bool = False) -> dict[str, Path]:
    """``{stem: path}`` of the image files directly in ``folder``, sorted by stem.

    Entries without an image extension are an error (a user-made folder should hold only its
    images), or skipped with ``skip_other_files`` (archives ship read-mes, lists, sub-folders).
    Hidden files are always skipped. Two images with one stem are an error (masks match by stem).
    """
    if not folder.is_dir():
        raise DatasetError(f"expected a folder of images at {folder}, but it does not exist")
    images: dict[str, Path] = {}
    others, clashes = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name in _OS_CLUTTER:
            continue
        if not (path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS):
            if not skip_other_files:
                others.append(path.name)
        elif path.stem in images:
            clashes.append(f"{images[path.stem].name}/{path.name}")
        else:
            images[path.stem] = path
    if others:
        raise DatasetError(f"{folder} holds entries that are not images "
                           f"({'/'.join(IMAGE_EXTENSIONS)}): {_few(others)}; move them out")
    if clashes:
        raise DatasetError(f"{folder} has files that differ only by extension, so masks cannot be "
                           f"matched to them: {_few(clashes)}; rename or remove one of each")
    return images


def match_masks(images: dict[str, Path], masks: dict[str, Path], masks_dir: Path,
                ) -> tuple[dict[str, Path], list[str]]:
    """``({image stem: mask path}, [image stems without a mask])``.

    Errors for masks that match no image, or more than one image / an image matched by more
    than one mask (e.g. both ``a.png`` and ``a_gt.png``).
    """
    matched: dict[str, Path] = {}
    unmatched_images, ambiguous = [], []
    claimed: dict[str, str] = {}
    for stem in images:
        found = [masks[stem + sfx] for sfx in MASK_SUFFIXES if stem + sfx in masks]
        if len(found) > 1:
            ambiguous.append(f"{stem}: {'/'.join(p.name for p in found)}")
        elif found:
            matched[stem] = found[0]
            if found[0].stem in claimed:
                ambiguous.append(f"{found[0].name}: images {claimed[found[0].stem]} and {stem}")
            claimed[found[0].stem] = stem
        else:
            unmatched_images.append(stem)
    if ambiguous:
        raise DatasetError(f"ambiguous image/mask names in {masks_dir}: {_few(ambiguous)}; "
                           "keep exactly one mask per image")
    orphans = [masks[s].name for s in masks if s not in claimed]
    if orphans:
        raise DatasetError(f"masks in {masks_dir} match no image: {_few(orphans)}. A mask must be "
                           f"named <image stem>{{{','.join(MASK_SUFFIXES)}}}.<ext>")
    return matched, unmatched_images


def read_benco_folder(root: str | Path, *, name: str | None = None) -> Dataset:
    """IMDL-BenCo ``ManiDataset`` layout: ``Tp/`` + ``Gt/`` (+ optional ``Au/``).

    Unlike BenCo, which pairs the sorted listings by position, masks are matched by stem,
    so a missing mask is reported instead of shifting every pair after it.
    """
    root = Path(root)
    for sub in ("Tp", "Gt"):
        if not (root / sub).is_dir():
            raise DatasetError(f"{root} is not an IMDL-BenCo folder: {root / sub} is missing")
    name = name or path_dataset_name(root)

    def lister() -> list[Sample]:
        tampered = list_images(root / "Tp")
        masks, unmatched = match_masks(tampered, list_images(root / "Gt"), root / "Gt")
        if unmatched:
            raise DatasetError(f"images in {root / 'Tp'} have no mask in {root / 'Gt'}: "
                               f"{_few([tampered[s].name for s in unmatched])}; add their masks, "
                               f"or move authentic images to {root / 'Au'}")
        samples = [Sample(f"Tp/{p.name}", p, masks[s], 1, name) for s, p in tampered.items()]
        if (root / "Au").is_dir():
            samples += [Sample(f"Au/{p.name}", p, None, 0, name)
                        for p in list_images(root / "Au").values()]
        return sorted(samples, key=lambda s: s.sample_id)

    return Dataset(name, lister, f"IMDL-BenCo folder {root}", root.is_dir)


def read_image_mask_folders(images_dir: str | Path, masks_dir: str | Path, *,
                            name: str | None = None,
                            authentic_without_mask: bool = False) -> Dataset:
    """Images in one folder, masks in another, matched by stem (see module docstring).

    An image without a mask is an error unless ``authentic_without_mask`` says that such
    images are authentic (label 0).
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    name = name or path_dataset_name(images_dir.parent if images_dir.name == "images" else images_dir)

    def lister() -> list[Sample]:
        images = list_images(images_dir)
        masks, unmatched = match_masks(images, list_images(masks_dir), masks_dir)
        if unmatched and not authentic_without_mask:
            raise DatasetError(f"images in {images_dir} have no mask in {masks_dir}: "
                               f"{_few([images[s].name for s in unmatched])}. Add their masks, or, "
                               "if they are authentic, pass authentic_without_mask=True")
        samples = [Sample(p.name, p, masks.get(s), int(s in masks), name) for s, p in images.items()]
        return sorted(samples, key=lambda s: s.sample_id)

    return Dataset(name, lister, f"images {images_dir}, masks {masks_dir}",
                   lambda: images_dir.is_dir() and masks_dir.is_dir())


# -- IMDL-BenCo JSON ----------------------------------------------------------------------
def read_benco_json(path: str | Path, *, name: str | None = None,
                    allow_outside: bool = False) -> Dataset:
    """An IMDL-BenCo JSON list ``[[image, mask | "Negative"], ...]``, read as it is."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"IMDL-BenCo JSON file not found: {path}")
    base = Path(os.path.abspath(path)).parent
    name = name or path_dataset_name(path)

    def lister() -> list[Sample]:
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(entries, list):
            raise DatasetError(f"{path} must hold a JSON list of [image, mask] pairs, "
                               f"got a {type(entries).__name__}")
        samples, missing = [], []
        for i, entry in enumerate(entries):
            if not (isinstance(entry, list) and len(entry) == 2
                    and all(isinstance(x, str) and x for x in entry)):
                raise DatasetError(f"{path}, entry {i}: expected [image path, mask path or "
                                   f"\"{NEGATIVE}\"], got {entry!r}")
            image, sample_id = _resolve_entry(entry[0], base, path, allow_outside)
            mask = None if entry[1] == NEGATIVE else _resolve_entry(entry[1], base, path, allow_outside)[0]
            missing += [p for p in (image, mask) if p is not None and not p.is_file()]
            samples.append(Sample(sample_id, image, mask, int(mask is not None), name))
        if missing:
            raise DatasetError(f"files listed in {path} do not exist: {_few(missing)}")
        return sorted(samples, key=lambda s: s.sample_id)

    return Dataset(name, lister, f"IMDL-BenCo JSON {path}", path.is_file)


def _resolve_entry(text: str, base: Path, json_path: Path, allow_outside: bool) -> tuple[Path, str]:
    """``(path, sample id)`` of one JSON path: absolute as written, relative against ``base``."""
    if os.path.isabs(text):
        return Path(text), text
    # Lexical normalisation: judges the ``..`` in the entry itself, not where symlinks lead.
    resolved = Path(os.path.normpath(base / text))
    relative = Path(os.path.relpath(resolved, base)).as_posix()
    if relative.split("/")[0] == ".." and not allow_outside:
        raise DatasetError(f"{json_path}: relative path {text!r} leaves the JSON file's folder "
                           f"{base} (resolves to {resolved}). Use an absolute path, move the "
                           "JSON file up, or pass allow_outside=True if this is intended")
    return resolved, relative


# -- names and paths ----------------------------------------------------------------------
def path_dataset_name(path: str | Path) -> str:
    """Short name of a dataset given as a path: the JSON file's stem or the folder's name
    (``/data/casia2/list.json`` → ``list``, ``/data/my_set/`` → ``my_set``). Tables and records
    show this name, never a machine's path; the full path goes to the records' provenance, and
    :meth:`~imlbench.results.store.ResultStore.unique_dataset_name` keeps it unique in a store."""
    path = Path(os.path.abspath(Path(path).expanduser()))
    return path.stem if path.suffix.lower() == ".json" else path.name


def resolve_dataset(name_or_path: str | Path, *, allow_outside: bool = False,
                    authentic_without_mask: bool = False) -> Dataset:
    """A registered dataset name, or a path in one of :data:`LAYOUTS`.

    ``allow_outside`` applies to BenCo JSON files, ``authentic_without_mask`` to
    ``images/`` + ``masks/`` folders. A path dataset is named by :func:`path_dataset_name` and
    keeps its absolute path in ``Dataset.path``.
    """
    text = str(name_or_path)
    if text in DATASETS:
        return DATASETS.build(text)
    path = Path(text).expanduser()
    name, where = path_dataset_name(path), str(Path(os.path.abspath(path)))
    if path.is_file() and path.suffix.lower() == ".json":
        return replace(read_benco_json(path, name=name, allow_outside=allow_outside), path=where)
    if path.is_dir() and (path / "Tp").is_dir() and (path / "Gt").is_dir():
        return replace(read_benco_folder(path, name=name), path=where)
    if path.is_dir() and (path / "images").is_dir() and (path / "masks").is_dir():
        return replace(read_image_mask_folders(path / "images", path / "masks", name=name,
                                               authentic_without_mask=authentic_without_mask),
                       path=where)
    expected = "; or ".join(LAYOUTS)
    if path.exists():
        raise DatasetError(f"{path} is not a dataset layout imlbench reads; expected {expected}")
    raise UnknownDatasetError(f"{_registry_message(text)} No file or folder {str(path)!r} exists "
                              f"either; a path must lead to {expected}.")


def _registry_message(name: str) -> str:
    """The registry's own "unknown dataset ... did you mean ..." text for ``name``."""
    try:
        DATASETS.entry(name)
    except RegistryError as exc:
        return str(exc)
    return f"dataset {name!r} is registered."
