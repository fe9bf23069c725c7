"""The one key mapping between the released PSCC-Net files and our ``pscc_net`` state_dict.

The authors release three files (github.com/proteus1991/PSCC-Net, ``checkpoint/``), each a
bare state_dict saved from an ``nn.DataParallel`` wrapper (``train.py:251-253``), so every
key starts with ``module.``; they load with ``torch.load(weights_only=True)``:

==========================  ===================  ==========================================
file                        network              our sub-module (prefix)
==========================  ===================  ==========================================
``HRNet.pth``               ``HighResolutionNet``  ``backbone.``  (:class:`HRNet`)
``NLCDetection.pth``        ``NLCDetection``       ``localizer.`` (:class:`ProgressiveMaskHead`)
``DetectionHead.pth``       ``DetectionHead``      ``detector.``  (:class:`DetectionHead`)
==========================  ===================  ==========================================

Mapping: ``module.<name>`` in file F → ``<prefix of F><name>``; below the prefix our names are
the official ones. A checkpoint folder holds the three files side by side, or in the
repository's own layout ``HRNet_checkpoint/HRNet.pth``, ``NLCDetection_checkpoint/...``,
``DetectionHead_checkpoint/...`` (what ``test.py`` reads), also under ``checkpoint/`` of a
clone of the repository.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Callable, Mapping

from torch import Tensor

from imlbench.errors import CheckpointError, CheckpointNotFoundError

OFFICIAL_FILES: dict[str, str] = {"backbone": "HRNet", "localizer": "NLCDetection",
                                  "detector": "DetectionHead"}
"""Our sub-module → the official network name (file ``<name>.pth``)."""

WRAPPER = "module."
"""``nn.DataParallel``'s prefix on every released key."""


def layouts_text() -> str:
    flat = ", ".join(f"{n}.pth" for n in OFFICIAL_FILES.values())
    nested = ", ".join(f"{n}_checkpoint/{n}.pth" for n in OFFICIAL_FILES.values())
    return (f"either {flat} side by side, or the official layout {nested} "
            f"(also under checkpoint/ of a clone of the repository)")


def find_official_files(folder: Path) -> dict[str, Path]:
    """Our sub-module name → the path of its released file inside ``folder`` (either layout).
    Raises ``CheckpointNotFoundError`` (one line) naming the expected files when one is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointNotFoundError(
            f"pscc_net: --checkpoint {folder} is not a folder; PSCC-Net's released weights are "
            f"three files: give the folder holding {layouts_text()}")
    found, missing = {}, []
    for ours, name in OFFICIAL_FILES.items():
        candidates = [folder / f"{name}.pth", folder / f"{name}_checkpoint" / f"{name}.pth",
                      folder / "checkpoint" / f"{name}_checkpoint" / f"{name}.pth"]
        hits = [p for p in candidates if p.is_file()]
        if len(hits) > 1:
            raise CheckpointError(f"pscc_net: {folder} holds both {hits[0]} and {hits[1]}; keep one")
        if hits:
            found[ours] = hits[0]
        else:
            missing.append(f"{name}.pth")
    if missing:
        raise CheckpointNotFoundError(
            f"pscc_net: {folder} lacks {', '.join(missing)}; expected {layouts_text()}")
    return found


def from_official(read: Callable[[Path], Mapping[str, Tensor]],
                  files: Mapping[str, Path]) -> dict[str, Tensor]:
    """Read each file with ``read`` and map its keys onto ours (``module.x`` → ``<prefix>x``).
    A key without the ``module.`` prefix is an error naming the file (not a released file)."""
    state: dict[str, Tensor] = {}
    for ours, path in files.items():
        part = read(path)
        unwrapped = [k for k in part if not k.startswith(WRAPPER)]
        if unwrapped:
            raise CheckpointError(f"pscc_net: {path} has keys without the {WRAPPER!r} prefix of the "
                             f"released files (e.g. {unwrapped[0]!r}); expected the authors' "
                             f"{OFFICIAL_FILES[ours]}.pth as saved by their train.py")
        state.update({f"{ours}.{k[len(WRAPPER):]}": v for k, v in part.items()})
    return state


def to_official(state: Mapping[str, Tensor]) -> dict[str, OrderedDict[str, Tensor]]:
    """Ours → the three released state_dicts, keyed by file name (``HRNet.pth``, ...)."""
    files: dict[str, OrderedDict[str, Tensor]] = {f"{n}.pth": OrderedDict()
                                                  for n in OFFICIAL_FILES.values()}
    for key, value in state.items():
        ours, _, rest = key.partition(".")
        if ours not in OFFICIAL_FILES:
            raise ValueError(f"pscc_net: key {key!r} belongs to none of {sorted(OFFICIAL_FILES)}")
        files[f"{OFFICIAL_FILES[ours]}.pth"][WRAPPER + rest] = value
    return files
