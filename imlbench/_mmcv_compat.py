"""The one place where imlbench adapts mmcv-lite so that mmsegmentation's models import.

Why: the ``mmseg`` extra installs ``mmcv-lite==2.1.0``, which is mmcv without its compiled
C++/CUDA extension ``mmcv._ext``. ``import mmseg.models`` imports ``mmcv.ops`` (through
``mmseg.utils.mask_classification`` and some heads), and every ``mmcv.ops`` module calls
``ext_loader.load_ext("_ext", [...])`` at import time, which fails with
``ModuleNotFoundError: No module named 'mmcv._ext'``, even for models that never use a
compiled op (SegFormer, DeepLabV3+, ...).

What is patched: only when ``mmcv._ext`` cannot be found, a stand-in module is registered as
``sys.modules["mmcv._ext"]``. Every attribute of it is a function that raises
:class:`MissingCompiledOpError` naming the op, so ``load_ext``'s ``hasattr`` checks pass and
the import succeeds (mmengine's ``mmcv_full_available()`` still answers False), while a model
that really calls a compiled op (deformable convolution,
CARAFE, point sampling in Mask2Former, ...) fails at that call with an actionable message.
Nothing else in mmcv, mmengine or mmseg is changed. With a full mmcv build installed, nothing
is patched at all.

Nothing here runs at ``import imlbench``: :func:`import_mmseg` is called when an mmseg-based
method is built.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from typing import Any, Callable

from imlbench.errors import ImlbenchError, MissingDependencyError

INSTALL_HINT = "pip install 'imlbench[mmseg]'"
EXT_MODULE = "mmcv._ext"


class MissingCompiledOpError(ImlbenchError, RuntimeError):
    """A model called an mmcv op that needs the compiled extension mmcv-lite lacks."""


class _MissingExtension(types.ModuleType):
    """Stand-in for ``mmcv._ext``: each attribute is an op that raises when called."""

    def __getattr__(self, op: str) -> Callable[..., Any]:
        if op.startswith("__"):  # keep module introspection (copy, pickle, inspect) truthful
            raise AttributeError(op)

        def missing(*args: Any, **kwargs: Any) -> Any:
            raise MissingCompiledOpError(
                f"mmcv op {op!r} needs mmcv's compiled extension (mmcv._ext), which mmcv-lite "
                "does not ship. Choose a model without compiled ops (SegFormer, DeepLabV3+ and "
                "other pure-PyTorch models work), or install a full mmcv 2.1 build for your "
                "torch/CUDA (see https://mmcv.readthedocs.io/en/latest/get_started/installation.html).")

        missing.__name__ = op
        return missing


def _install_ext_stand_in() -> None:
    if EXT_MODULE in sys.modules:
        return
    try:
        found = importlib.util.find_spec(EXT_MODULE) is not None
    except ImportError:  # the parent package mmcv itself is missing
        found = False
    if not found:
        stand_in = _MissingExtension(EXT_MODULE)
        # A spec without a loader: mmengine's ``mmcv_full_available()`` (pkgutil.find_loader)
        # then answers False, as it should, instead of failing on a spec-less module.
        stand_in.__spec__ = importlib.machinery.ModuleSpec(EXT_MODULE, None,
                                                           origin="imlbench stand-in")
        sys.modules[EXT_MODULE] = stand_in


def import_mmseg() -> Any:
    """Import ``mmseg.models`` (registering its modules) and return mmseg's ``MODELS`` registry."""
    try:
        import mmcv  # noqa: F401
        import mmengine  # noqa: F401
        import mmseg  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"mmsegmentation models need the optional mmseg "
                                     f"dependencies ({exc.name} is missing): {INSTALL_HINT}",
                                     name=exc.name) from exc
    _install_ext_stand_in()
    import mmseg.models  # noqa: F401  (registers backbones, heads and segmentors)
    from mmseg.registry import MODELS

    return MODELS

