"""Protocols as data: which datasets train a method, select its checkpoints, and test it.

A protocol is a YAML file in ``imlbench/configs/protocols/<name>.yaml``::

    name: mvss
    description: ...
    train: [casia2]                      # dataset entries (below)
    val: null                            # or entries; null needs val_holdout
    val_holdout: {fraction: 0.05, seed: 0}   # or {count: 100, seed: 0}: per training set
    test: [casia1, columbia, coverage, nist16, imd2020]
    sampling: {mode: concat}             # or {mode: balanced, per_dataset: 1840, replacement: true}
    references: [...]

A dataset entry is a registered dataset name, or a path (IMDL-BenCo JSON list or folder, see
:func:`imlbench.datasets.resolve_dataset`) relative to the data root (``--data-root`` /
``$IMLBENCH_DATA``). Validation never uses a test set: without a published validation
split, ``val_holdout`` holds out a seeded, label-stratified part of each training set, and
test sets may not appear in ``train`` or ``val``.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Sequence

from imlbench.datasets.base import Dataset, DatasetError, Sample
from imlbench.datasets.formats import resolve_dataset
from imlbench.errors import ConfigError
from imlbench.paths import DATA_ROOT_ENV, data_root
from imlbench.registry import DATASETS
from imlbench.seeding import rng_for, stable_seed

PROTOCOLS_DIR = Path(__file__).resolve().parent.parent / "configs" / "protocols"


class ProtocolError(ConfigError):
    """A protocol file is malformed or names datasets that cannot be used as it says."""


# -- validation split ---------------------------------------------------------------------
@dataclass(frozen=True)
class ValHoldout:
    """Validation samples held out of each training set: ``fraction`` of it, or ``count``
    samples, chosen per label (so val keeps the set's tampered/authentic ratio) as those
    ranked first by a stable hash of ``(set, seed, sample_id)``: the same split on every
    machine and in any listing order, and a few files more or less only move samples at the
    margin of the ranking. Each label group of two or more samples gives at least one to val
    and keeps at least one for training."""

    fraction: float | None = None
    count: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.count is None):
            raise ProtocolError(f"val_holdout needs exactly one of fraction or count, got "
                                f"fraction={self.fraction}, count={self.count}")
        if self.fraction is not None and not 0 < self.fraction < 1:
            raise ProtocolError(f"val_holdout.fraction must be in (0, 1), got {self.fraction}")
        if self.count is not None and self.count < 1:
            raise ProtocolError(f"val_holdout.count must be >= 1, got {self.count}")

    def split(self, samples: Sequence[Sample], key: str) -> tuple[list[Sample], list[Sample]]:
        """``(train, val)`` of one training set called ``key``; both keep the input order."""
        share = self.fraction
        if share is None:
            share = min(1.0, self.count / max(1, len(samples)))
        val_ids: set[str] = set()
        for label in (0, 1):
            group = [s for s in samples if s.label == label]
            if len(group) < 2:
                continue
            n = min(len(group) - 1, max(1, round(share * len(group))))
            ranked = sorted(group, key=lambda s: stable_seed("imlbench.val-holdout", key, self.seed,
                                                             s.sample_id))
            val_ids.update(s.sample_id for s in ranked[:n])
        return ([s for s in samples if s.sample_id not in val_ids],
                [s for s in samples if s.sample_id in val_ids])


# -- training-set sampling ----------------------------------------------------------------
@dataclass(frozen=True)
class Sampling:
    """How an epoch is drawn from several training sets.

    ``concat``: every sample of every set once (the trainer shuffles). ``balanced``
    (CAT-Net, IMDL-BenCo's ``BalancedDataset``): ``per_dataset`` samples from *each* set, so
    small and huge sets weigh the same; with ``replacement`` (BenCo) each draw is uniform over
    the set, without it (CAT-Net) each set is permuted and its first ``per_dataset`` taken.
    Draws are seeded by ``(seed, epoch, set index)``.
    """

    mode: Literal["concat", "balanced"] = "concat"
    per_dataset: int | None = None
    replacement: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("concat", "balanced"):
            raise ProtocolError(f"sampling.mode must be 'concat' or 'balanced', got {self.mode!r}")
        if self.mode == "balanced" and not (self.per_dataset and self.per_dataset > 0):
            raise ProtocolError("sampling.mode 'balanced' needs per_dataset > 0 (samples drawn "
                                "from each training set per epoch)")
        if self.mode == "concat" and self.per_dataset is not None:
            raise ProtocolError("sampling.per_dataset only applies to mode 'balanced'")

    def epoch(self, parts: Sequence[Sequence[Sample]], epoch: int, seed: int) -> list[Sample]:
        """The samples of ``epoch``: ``parts`` are the training sets' sample lists."""
        if self.mode == "concat":
            return [s for part in parts for s in part]
        out: list[Sample] = []
        for i, part in enumerate(parts):
            n = self.per_dataset
            if not part:
                raise DatasetError(f"training set {i} has no samples to draw from")
            rng = rng_for("imlbench.balanced", seed, epoch, i)
            if self.replacement:
                picks = rng.integers(0, len(part), size=n)
            elif len(part) >= n:
                picks = rng.permutation(len(part))[:n]
            else:
                raise DatasetError(f"training set {i} has {len(part)} samples, fewer than the "
                                   f"{n} drawn per epoch without replacement; set "
                                   "sampling.replacement: true or lower per_dataset")
            out += [part[int(j)] for j in picks]
        return out


# -- protocol -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Protocol:
    """Train, validation and test datasets of a benchmark protocol (see the module docstring)."""

    name: str
    description: str
    train: tuple[str, ...]
    val: tuple[str, ...] | None
    test: tuple[str, ...]
    val_holdout: ValHoldout | None = None
    sampling: Sampling = field(default_factory=Sampling)
    references: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"protocol {self.name!r}"
        if not self.train or not self.test:
            raise ProtocolError(f"{where}: train and test must each name at least one dataset")
        if (self.val is None) == (self.val_holdout is None):
            raise ProtocolError(f"{where}: give either val (datasets) or val_holdout (how to hold "
                                "validation samples out of the training sets), not both or neither")
        for entry in (*self.train, *(self.val or ()), *self.test):
            _check_entry(entry, where)
        leaked = sorted(set(self.test) & (set(self.train) | set(self.val or ())))
        if leaked:
            raise ProtocolError(f"{where}: {leaked} used both for testing and for training/validation")

    # -- datasets -------------------------------------------------------------------------
    def train_parts(self) -> list[Dataset]:
        """Each training set, without its validation hold-out (lazy: nothing is read yet)."""
        if self.val_holdout is None:
            return [_lazy(entry) for entry in self.train]
        return [_derived(entry, f"{entry} (train part)",
                         lambda d, e=entry: self.val_holdout.split(d.samples, e)[0])
                for entry in self.train]

    def train_dataset(self) -> Dataset:
        """All training samples as one dataset. A single set without hold-out is returned as it
        is (same name and ids); otherwise ``<protocol>-train`` with ids ``<entry>/<sample id>``."""
        if len(self.train) == 1 and self.val_holdout is None:
            return resolve_entry(self.train[0])
        return _merged(f"{self.name}-train", list(zip(self.train, self.train_parts())))

    def val_dataset(self) -> Dataset:
        """The validation samples: the ``val`` sets (one is returned as it is), or the hold-out
        of the training sets as ``<protocol>-val`` with ids ``<entry>/<sample id>``."""
        if self.val is not None:
            if len(self.val) == 1:
                return resolve_entry(self.val[0])
            return _merged(f"{self.name}-val", [(e, _lazy(e)) for e in self.val])
        held = [(e, _derived(e, f"{e} (val part)",
                             lambda d, e=e: self.val_holdout.split(d.samples, e)[1]))
                for e in self.train]
        return _merged(f"{self.name}-val", held)

    def epoch_samples(self, epoch: int, seed: int,
                      parts: Sequence[Dataset] | None = None) -> list[Sample]:
        """The training samples of one epoch under :attr:`sampling` (ids as in the sets).
        Pass ``parts=self.train_parts()`` made once, so the sets are not listed every epoch."""
        parts = self.train_parts() if parts is None else parts
        return self.sampling.epoch([part.samples for part in parts], epoch, seed)

    def test_datasets(self) -> list[Dataset]:
        return [resolve_entry(entry) for entry in self.test]

    def available_test_sets(self) -> list[str]:
        """Test entries whose data is present (cheap: a few stat calls each)."""
        return [e for e in self.test if entry_available(e)]

    def missing_datasets(self) -> list[str]:
        """Entries of any split whose data is absent (what to unpack before running)."""
        entries = dict.fromkeys((*self.train, *(self.val or ()), *self.test))
        return [e for e in entries if not entry_available(e)]


# -- dataset entries ------------------------------------------------------------------------
def _is_path(entry: str) -> bool:
    return "/" in entry or entry.lower().endswith(".json")


def _check_entry(entry: str, where: str) -> None:
    if not isinstance(entry, str) or not entry:
        raise ProtocolError(f"{where}: dataset entries must be non-empty strings, got {entry!r}")
    if entry not in DATASETS and not _is_path(entry):
        close = difflib.get_close_matches(entry, DATASETS.list(), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ProtocolError(f"{where}: {entry!r} is neither a registered dataset nor a path "
                            f"(a path contains '/' or ends in .json).{hint} Registered: "
                            f"{', '.join(DATASETS.list())}")


def resolve_entry(entry: str) -> Dataset:
    """A protocol's dataset entry as a :class:`Dataset`: a registered name, else a path
    (relative paths are under the data root)."""
    if entry in DATASETS:
        return DATASETS.build(entry)
    path = Path(entry).expanduser()
    if not path.is_absolute():
        root = data_root()
        if root is None:
            raise DatasetError(f"dataset {entry!r} is a path under the data root, and none is set: "
                               f"pass --data-root DIR or set ${DATA_ROOT_ENV}")
        path = root / path
    return resolve_dataset(path)


def entry_available(entry: str) -> bool:
    """Whether an entry's data is present (a few stat calls; never lists files)."""
    if entry in DATASETS:
        return DATASETS.build(entry).is_available()
    path = Path(entry).expanduser()
    if not path.is_absolute():
        root = data_root()
        if root is None:
            return False
        path = root / path
    return path.exists()


def _lazy(entry: str) -> Dataset:
    """``resolve_entry`` deferred to the first listing (a path entry reads its file then)."""
    return Dataset(entry, lambda: resolve_entry(entry).samples, f"protocol entry {entry}",
                   lambda: entry_available(entry))


def _derived(entry: str, name: str, pick) -> Dataset:
    return Dataset(name, lambda: pick(resolve_entry(entry)), f"{name} of {entry}",
                   lambda: entry_available(entry))


def _merged(name: str, parts: list[tuple[str, Dataset]]) -> Dataset:
    def lister() -> list[Sample]:
        return [replace(s, sample_id=f"{entry}/{s.sample_id}") for entry, d in parts for s in d.samples]
    return Dataset(name, lister, f"{name}: " + " + ".join(e for e, _ in parts),
                   lambda: all(d.is_available() for _, d in parts))


# -- loading --------------------------------------------------------------------------------
def list_protocols() -> list[str]:
    """Names of the protocols shipped in ``imlbench/configs/protocols``."""
    return sorted(p.stem for p in PROTOCOLS_DIR.glob("*.yaml"))


def load_protocol(name: str | Path) -> Protocol:
    """A shipped protocol by name (``mvss``), or a protocol YAML file by path."""
    path = PROTOCOLS_DIR / f"{name}.yaml"
    if not path.is_file():
        candidate = Path(name).expanduser()
        if candidate.suffix.lower() in (".yaml", ".yml") and candidate.is_file():
            path = candidate
        else:
            close = difflib.get_close_matches(str(name), list_protocols(), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ProtocolError(f"unknown protocol {str(name)!r}.{hint} Available: "
                                f"{', '.join(list_protocols())}; or pass a protocol .yaml file")
    protocol = protocol_from_dict(_read_yaml(path), source=path)
    if path.parent == PROTOCOLS_DIR and protocol.name != path.stem:
        raise ProtocolError(f"{path}: name {protocol.name!r} differs from the file name {path.stem!r}")
    return protocol


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ProtocolError(f"{path}: expected a mapping of protocol fields, got {type(data).__name__}")
    return data


def protocol_from_dict(data: dict[str, Any], source: str | Path = "<dict>") -> Protocol:
    """Build a :class:`Protocol` from parsed YAML; unknown keys are an error."""
    known = {f.name for f in fields(Protocol)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProtocolError(f"{source}: unknown key(s) {unknown}; expected {sorted(known)}")
    missing = sorted({"name", "train", "test"} - set(data))
    if missing:
        raise ProtocolError(f"{source}: missing key(s) {missing}")

    def entries(key: str) -> tuple[str, ...] | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise ProtocolError(f"{source}: {key} must be a list of dataset entries, got {value!r}")
        return tuple(value)

    def sub(cls, key: str):
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ProtocolError(f"{source}: {key} must be a mapping, got {value!r}")
        allowed = {f.name for f in fields(cls)}
        if set(value) - allowed:
            raise ProtocolError(f"{source}: unknown {key} key(s) {sorted(set(value) - allowed)}; "
                                f"expected {sorted(allowed)}")
        return cls(**value)

    return Protocol(name=str(data["name"]), description=str(data.get("description", "")).strip(),
                    train=entries("train") or (), val=entries("val"), test=entries("test") or (),
                    val_holdout=sub(ValHoldout, "val_holdout"),
                    sampling=sub(Sampling, "sampling") or Sampling(),
                    references=tuple(data.get("references") or ()))
