"""The exceptions of expected, user-facing failures: one base class, one meaning.

Everything raised as an :class:`ImlbenchError` is a failure the user can act on (a wrong name,
a bad config value, a missing file, a device that is not there); its message says what was
given, what was expected and what to do next. The CLI prints it as one line
(``imlbench: error: ...``, exit status 2); anything else is a bug and keeps its traceback.

Each class also derives from the built-in exception that callers caught before it existed
(``ConfigError`` is a ``ValueError``, ``DeviceError`` a ``RuntimeError`` ...), so ``except
ValueError`` keeps working. This module imports nothing from imlbench: every layer may use it.
"""
from __future__ import annotations


class ImlbenchError(Exception):
    """Base of every expected failure; ``str()`` is the complete one-line message."""

    def __str__(self) -> str:  # a KeyError subclass would otherwise repr() its message
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ConfigError(ImlbenchError, ValueError):
    """A config value of the wrong type or outside its allowed values, or an unknown key
    (method options, ``--config``, recipe and protocol files); the message names the field."""


class UnknownOptionError(ConfigError, TypeError):
    """A keyword a method or config does not take (``TypeError``, as Python's own)."""


class UsageError(ImlbenchError, ValueError):
    """Command-line options that do not go together, or a needed one that is missing."""


class DeviceError(ImlbenchError, RuntimeError):
    """The requested device does not exist here (``--device cuda`` without CUDA)."""


class CheckpointError(ImlbenchError, ValueError):
    """A weights file that cannot be used: wrong method, wrong shapes, wrong container."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A weights file or folder that does not exist."""


class RunExistsError(ImlbenchError, FileExistsError):
    """A training run folder already holds a run, and ``--resume`` was not given."""


class TrainingDivergedError(ImlbenchError, FloatingPointError):
    """A loss became NaN or infinite during training."""


class MethodContractError(ImlbenchError, ValueError):
    """A method's output breaks the documented contract (prediction shapes, loss terms)."""


class ResultsError(ImlbenchError, ValueError):
    """Result records that cannot be rendered as asked (no such metric, duplicated cells)."""


class MissingDependencyError(ImlbenchError, ImportError):
    """An optional package a method needs is not installed; the message says what to install."""


class PluginError(ImlbenchError, RuntimeError):
    """A third-party plug-in (``imlbench.plugins`` entry point) failed to import."""


def all_error_classes() -> list[type[ImlbenchError]]:
    """Every subclass of :class:`ImlbenchError` defined so far (recursively), sorted by name."""
    seen: dict[str, type[ImlbenchError]] = {}
    todo = [ImlbenchError]
    while todo:
        cls = todo.pop()
        seen[f"{cls.__module__}.{cls.__qualname__}"] = cls
        todo.extend(cls.__subclasses__())
    return [seen[k] for k in sorted(seen)]
