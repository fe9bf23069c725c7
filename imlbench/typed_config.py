"""Config values checked against their declared types: method options, recipes, ``--config``.

A config's schema is the type annotations of the dataclass or constructor that takes it; no
second schema is written by hand. :func:`coerce` turns one value into the annotated type, or
raises a :class:`~imlbench.errors.ConfigError` naming the field, the expected type and the
allowed values. Supported annotations: ``int``, ``float``, ``bool``, ``str``, ``Path``,
``Literal[...]``, ``X | None`` and other unions, ``tuple[X, ...]`` / ``tuple[X, Y]``,
``list[X]``, ``dict[K, V]`` and ``Any`` (anything else: an ``isinstance`` check).

Text (from ``--config key=value``, or a string where a number is declared) is parsed for the
declared type: ``1e-3`` is the float 0.001 for a ``float`` field, ``true``/``false`` a bool,
``none``/``null`` is ``None`` where ``None`` is allowed, ``[64, 32]`` or ``64,32`` a tuple.
YAML files are read with :func:`load_yaml`, which resolves numbers as YAML 1.2 does
(PyYAML's YAML 1.1 reads ``1e-3`` as the *string* ``'1e-3'``).

A method's options (:func:`method_options`) are the keyword parameters of its ``__init__``,
followed up the class hierarchy while an ``__init__`` takes ``**kwargs``, plus the fields of
its config dataclass: ``config_class`` if the class sets one, else a dataclass named
``<Class>Config`` in the module of the class or of a base class (``NCLConfig``, ``MPCConfig``).
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Union

from imlbench.errors import ConfigError, UnknownOptionError

NONE_WORDS = ("none", "null", "~")
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


class CommandLineValue(str):
    """A value typed on the command line (``--config key=value``): text to parse for the
    declared type; where no type is declared it is read as YAML (``8`` → 8, ``[1, 2]``)."""


# -- YAML with YAML 1.2 numbers ------------------------------------------------------------
def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader whose floats follow YAML 1.2: ``1e-3`` and ``1E5`` are numbers."""

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return Loader


_LOADER = None


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with YAML 1.2 floats (``lr: 1e-3`` is 0.001, not ``'1e-3'``)."""
    import yaml

    global _LOADER
    if _LOADER is None:
        _LOADER = _yaml_loader()
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a SafeLoader subclass)


# -- one value -----------------------------------------------------------------------------
def describe(annotation: Any) -> str:
    """Readable name of an annotation: ``float``, ``int or None``, ``one of 'a', 'b'``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return "any value"
    if annotation is type(None):
        return "None"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe(args[0])}"
        return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})"
    if origin is list:
        return f"a list of {describe(args[0]) if args else 'values'}"
    if origin is dict:
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


def coerce(value: Any, annotation: Any, field_name: str) -> Any:
    """``value`` as ``annotation`` says, else :class:`ConfigError` naming ``field_name``."""
    try:
        return _coerce(value, annotation)
    except _Mismatch:
        raise ConfigError(f"{field_name}: expected {describe(annotation)}, got {_show(value)}") \
            from None


class _Mismatch(Exception):
    pass


def _show(value: Any) -> str:
    kind = "text" if isinstance(value, str) else type(value).__name__
    return f"{value!r} ({kind})"


def _coerce(value: Any, ann: Any) -> Any:
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    text = isinstance(value, str)
    if ann is Any or ann is object or ann is inspect.Parameter.empty:
        return load_yaml(value) if isinstance(value, CommandLineValue) else value
    if ann is type(None):
        if value is None or (text and value.strip().lower() in NONE_WORDS):
            return None
        raise _Mismatch
    if origin is Literal:
        for allowed in args:
            if isinstance(allowed, str) and text and value == allowed:
                return allowed
            if not isinstance(allowed, str) and (
                    (value == allowed and type(value) is type(allowed))
                    or (text and value.strip().lower() == str(allowed).lower())):
                return allowed  # Literal[True, 4]: also "true" / "4" on the command line
        raise _Mismatch
    if origin in (Union, types.UnionType):
        # None first (so "none" is not the string "none" where None is allowed), then numbers
        # and the rest, str and Path last (so "0.5" is the float where a number is allowed).
        order = sorted(args, key=lambda a: (a is not type(None), a in (str, Path), a is Path))
        for member in order:
            try:
                return _coerce(value, member)
            except _Mismatch:
                continue
        raise _Mismatch
    if ann is bool:
        if isinstance(value, bool):
            return value
        if text and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise _Mismatch
    if ann is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if text:
            try:
                return int(value.strip())
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if ann is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if text:
            try:
                return float(value.strip())
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if ann is str:
        if text:
            return str(value)
        raise _Mismatch
    if ann is Path:  # kept as given: a str stays JSON-able for run sidecars and hashes
        if isinstance(value, (str, Path)):
            return str(value) if isinstance(value, CommandLineValue) else value
        raise _Mismatch
    if origin in (tuple, list):
        items = _sequence(value)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis) and args:
            if len(items) != len(args):
                raise _Mismatch
            return tuple(_coerce(v, a) for v, a in zip(items, args))
        member = args[0] if args else Any
        out = [_coerce(v, member) for v in items]
        return tuple(out) if origin is tuple else out
    if origin is dict or ann is dict:
        if text:
            value = load_yaml(value)
        if not isinstance(value, Mapping):
            raise _Mismatch
        key_ann, val_ann = args if args else (Any, Any)
        return {_coerce(k, key_ann): _coerce(v, val_ann) for k, v in value.items()}
    if isinstance(ann, type):
        if isinstance(value, ann):
            return value
        raise _Mismatch
    return value  # an annotation we cannot check (a TypeVar, a Protocol): take it as given


def _sequence(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        parsed = load_yaml(value) if value.strip().startswith("[") else None
        if isinstance(parsed, list):
            return [CommandLineValue(v) if isinstance(v, str) else v for v in parsed]
        return [CommandLineValue(v.strip()) for v in value.split(",") if v.strip()]
    raise _Mismatch


# -- many values ---------------------------------------------------------------------------
def coerce_fields(values: Mapping[str, Any], fields: Mapping[str, Any], owner: str, *,
                  allow_unknown: bool = False, kind: str = "option") -> dict[str, Any]:
    """Every value of ``values`` coerced to its field's annotation; an unknown key is an
    :class:`~imlbench.errors.UnknownOptionError` listing the known ones (unless
    ``allow_unknown``: then it is kept, parsed as YAML if it came from the command line)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            if allow_unknown:
                out[key] = _coerce(value, Any)
                continue
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownOptionError(f"{owner} has no {kind} {key!r}.{hint} Known: "
                                     f"{', '.join(fields) or '(none)'}.")
        out[key] = coerce(value, fields[key], f"{owner} {kind} {key!r}")
    return out


def dataclass_fields(cls: type) -> dict[str, Any]:
    """``{field name: annotation}`` of a dataclass (string annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def method_options(cls: type) -> tuple[dict[str, Any], bool]:
    """``({option: annotation}, complete)`` of a method class (see the module docstring).
    ``complete`` is False when some ``**kwargs`` lead nowhere we can read: unknown keys are
    then passed on for the constructor to judge."""
    options: dict[str, Any] = {}
    open_kwargs = False
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object or klass.__module__.split(".")[0] == "torch":
            break  # nn.Module's arguments are no method options
        params = inspect.signature(init).parameters
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # an annotation that does not resolve: check nothing for it
            hints = {}
        for name, p in list(params.items())[1:]:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                options.setdefault(name, hints.get(name, Any))
        open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        if not open_kwargs:
            break
    config_class = _config_class(cls)
    if config_class is not None:
        for name, ann in dataclass_fields(config_class).items():
            options.setdefault(name, ann)
    return options, not open_kwargs or config_class is not None


def _config_class(cls: type) -> type | None:
    explicit = getattr(cls, "config_class", None)
    if explicit is not None:
        return explicit
    for klass in cls.__mro__:
        module = sys.modules.get(klass.__module__)
        candidate = getattr(module, f"{klass.__name__}Config", None) if module else None
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def method_config(name: str, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options of registered method ``name`` checked and converted to their types."""
    from imlbench.registry import METHODS

    options, complete = method_options(METHODS.get(name))
    return coerce_fields(dict(config or {}), options, f"method {name!r}",
                         allow_unknown=not complete)


__all__ = ["CommandLineValue", "coerce", "coerce_fields", "dataclass_fields", "describe",
           "load_yaml", "method_config", "method_options"]
