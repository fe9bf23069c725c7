"""Robustness layer: registered perturbations, chains of them (sweep cells) and severity grids.

Importing this package registers the built-in perturbations in ``PERTURBATIONS``.
"""
from __future__ import annotations

from imlbench.robustness import perturbations as _builtin  # noqa: F401  (registers built-ins)
from imlbench.robustness.base import (CLEAN, Perturbation, PerturbationError, PerturbationSpec,
                                      format_severity, parse_spec)
from imlbench.robustness.grids import GRIDS, grid_cells, parse_perturb_arg

__all__ = ["CLEAN", "GRIDS", "Perturbation", "PerturbationError", "PerturbationSpec",
           "format_severity", "grid_cells", "parse_perturb_arg", "parse_spec"]
