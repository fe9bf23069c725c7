"""One registry type for every plug-in kind: methods, datasets, perturbations, metrics.

Modelled on timm's flat registry: names map to factories, ``list`` takes shell wildcards,
a duplicate name is an error, and an unknown name is answered with the closest matches.
We do not use mmengine's ``Registry`` for our own plug-ins: it would make ``import imlbench``
pull in mmengine (and OpenCV) for every CLI call; mmseg models keep their own registry.

Built-in plug-ins register themselves when their module is imported; a registry imports
its built-in modules lazily on first lookup, and then every ``imlbench.plugins`` entry
point (third-party packages) once.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Generic, Iterator, TypeVar

from imlbench.errors import ImlbenchError, PluginError

T = TypeVar("T")

PLUGIN_GROUP = "imlbench.plugins"


class RegistryError(ImlbenchError, KeyError):
    """Raised for an unknown or duplicate name; ``str()`` is the full, actionable message."""


@dataclass
class Entry(Generic[T]):
    name: str
    obj: T
    test_only: bool = False
    """Sanity plug-ins (oracles, constants) that tests use; hidden from ``list`` and ``all``."""
    description: str = ""


@dataclass
class Registry(Generic[T]):
    kind: str
    builtin_modules: tuple[str, ...] = ()
    _entries: dict[str, Entry[T]] = field(default_factory=dict)
    _loaded: bool = False
    _loading: bool = False

    # -- registration -------------------------------------------------------------------
    def register(self, name: str | None = None, *, test_only: bool = False,
                 description: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@METHODS.register("ela")``. Name defaults to ``obj.name``/``__name__``."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or getattr(obj, "__name__")
            self.add(key, obj, test_only=test_only, description=description)
            return obj

        return deco

    def add(self, name: str, obj: T, *, test_only: bool = False,
            description: str | None = None) -> None:
        if name in self._entries and self._entries[name].obj is not obj:
            raise RegistryError(
                f"{self.kind} {name!r} is already registered (by {_origin(self._entries[name].obj)});"
                f" choose another name for {_origin(obj)}.")
        doc = description if description is not None else _first_line(getattr(obj, "__doc__", None))
        self._entries[name] = Entry(name, obj, test_only, doc)

    def remove(self, name: str) -> None:
        """Unregister (used by tests that register temporary plug-ins)."""
        self._entries.pop(name, None)

    # -- lookup -------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        """Import the built-in modules, then the entry points; loaded only once all succeed.

        A module that fails to import is re-raised with its name, and the next lookup tries
        again, rather than answering "unknown method" from a half-filled registry. Lookups
        made while the modules import (a module asking ``name in METHODS``) see what is there.
        """
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for mod in self.builtin_modules:
                try:
                    importlib.import_module(mod)
                except Exception as exc:  # a bug or a broken install: keep the traceback
                    raise ImportError(f"imlbench's built-in {self.kind} module {mod!r} failed to "
                                      f"import ({type(exc).__name__}: {exc}); the {self.kind}s "
                                      "it registers are unavailable until it imports",
                                      name=mod) from exc
            _load_entry_points()
        finally:
            self._loading = False
        self._loaded = True

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        self._ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            pass
        names = sorted(self._entries)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(
            f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(self.list()) or '(none)'}."
            f" Run `imlbench list {self.kind}s` to see them all.") from None

    def build(self, name: str, **kwargs: Any) -> Any:
        """Call the registered factory with ``kwargs``."""
        return self.get(name)(**kwargs)  # type: ignore[operator]

    def list(self, pattern: str = "*", *, include_test_only: bool = False) -> list[str]:
        """Sorted names matching a shell wildcard (``'n*'``, ``'synth-*'``)."""
        self._ensure_loaded()
        return sorted(n for n, e in self._entries.items()
                      if fnmatch.fnmatchcase(n, pattern) and (include_test_only or not e.test_only))

    def entries(self, pattern: str = "*", *, include_test_only: bool = False) -> list[Entry[T]]:
        """The entries :meth:`list` names, in the same order."""
        return [self._entries[n] for n in self.list(pattern, include_test_only=include_test_only)]

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())


_entry_points_loaded = False


def _load_entry_points() -> None:
    """Import every module declared under the ``imlbench.plugins`` entry-point group once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    for ep in metadata.entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken third-party plug-in must say which one it is
            raise PluginError(
                f"imlbench plug-in {ep.name!r} ({ep.value}) failed to import: {exc}. "
                f"Fix or uninstall the package that declares it.") from exc
    _entry_points_loaded = True  # only once every plug-in imported: a failure is raised again


def _origin(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""


METHODS: Registry[Any] = Registry("method", ("imlbench.methods",))
DATASETS: Registry[Any] = Registry("dataset", ("imlbench.datasets",))
PERTURBATIONS: Registry[Any] = Registry("perturbation", ("imlbench.robustness",))
METRICS: Registry[Any] = Registry("metric", ("imlbench.metrics",))
AUGMENTATIONS: Registry[Any] = Registry("augmentation", ("imlbench.robustness.augmentations",))

REGISTRIES: dict[str, Registry[Any]] = {
    "methods": METHODS, "datasets": DATASETS, "perturbations": PERTURBATIONS, "metrics": METRICS,
    "augmentations": AUGMENTATIONS,
}
