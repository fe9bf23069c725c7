"""Severity grids for robustness sweeps, and the ``--perturb`` argument grammar.

``GRIDS[grid][perturbation]`` lists the severities a sweep evaluates, mildest first:

* ``default``: jpeg quality 90..30, resize 0.25/0.5/0.75/1.5, blur kernel 3..15, noise std 2..16.
* ``benco``: IMDL-BenCo's ``test_robust.py`` grid — jpeg 100..50 step 10, blur kernel
  3/7/11/15/19/23, noise *variance* 3/7/11/15/19/23 (``gaussian_noise_var``, see
  :mod:`imlbench.robustness.perturbations` for the exact mapping). BenCo has no resize attack;
  the default resize grid is included so ``all`` covers the same kinds of perturbation.

A plug-in perturbation joins ``all`` by adding its severities: ``GRIDS["default"]["mine"] = (...)``.

``--perturb`` grammar (items separated by commas; the clean cell is never included, the sweep
adds it)::

    arg   := item ("," item)*
    item  := NAME                      every severity of NAME in the chosen grid
           | NAME ":" SEV ("," SEV)*   user severities; bare numbers extend the item before them
           | NAME ":" SEV ("+" NAME ":" SEV)+   one chain cell, applied left to right
           | "all"                     every perturbation of the chosen grid
           | "none"                    no cells (clean is always evaluated)

``jpeg:50,70,resize,gaussian_noise:4`` is jpeg 50 and 70, resize's grid, noise std 4. A bare
number can only follow ``NAME:SEV`` (names are never numbers, so this is unambiguous); a
chain takes exactly one severity per step, so ``resize:0.5+jpeg:75,90`` is refused — write
each cell in full. Repeated cells are kept once, in first-seen order.
"""
from __future__ import annotations

import difflib
import re

from imlbench.registry import PERTURBATIONS
from imlbench.robustness.base import (CLEAN_NAME, SEVERITY_SEP, STEP_SEP, PerturbationError,
                                      PerturbationSpec, Severity, format_severity, parse_severity,
                                      parse_spec)

_RESIZE = (0.25, 0.5, 0.75, 1.5)

GRIDS: dict[str, dict[str, tuple[Severity, ...]]] = {
    "default": {
        "jpeg": (90, 75, 60, 45, 30),
        "resize": _RESIZE,
        "gaussian_blur": (3, 5, 7, 11, 15),
        "gaussian_noise": (2, 4, 8, 16),
    },
    "benco": {
        "jpeg": (100, 90, 80, 70, 60, 50),
        "resize": _RESIZE,
        "gaussian_blur": (3, 7, 11, 15, 19, 23),
        "gaussian_noise_var": (3, 7, 11, 15, 19, 23),
    },
}

ALL = "all"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def grid_cells(name: str, grid: str = "default") -> list[PerturbationSpec]:
    """One single-step cell per severity of ``name`` in ``grid``, in grid order."""
    severities = _grid(grid).get(name)
    if severities is None:
        PERTURBATIONS.get(name)  # an unknown name gets the registry's "did you mean" error
        having = [g for g, table in GRIDS.items() if name in table]
        raise PerturbationError(
            f"grid {grid!r} has no severities for {name!r}; give them explicitly "
            f"({name}{SEVERITY_SEP}<severity>,<severity>...)"
            + (f" or choose a grid that has it: {', '.join(having)}" if having else ""))
    return [PerturbationSpec(((name, s),)) for s in severities]


def parse_perturb_arg(text: str, grid: str = "default") -> list[PerturbationSpec]:
    """Expand a ``--perturb`` value into sweep cells (grammar in the module docstring)."""
    cells: list[PerturbationSpec] = []
    open_name: str | None = None  # NAME of the last NAME:SEV item; bare numbers extend it
    after_chain = False
    for token in (t.strip() for t in text.split(",")):
        if not token:
            raise PerturbationError(f"--perturb {text!r} has an empty item; remove the extra comma")
        if _NUMBER.fullmatch(token):
            if open_name is None:
                raise PerturbationError(_orphan_number_message(text, token, after_chain))
            cells.append(PerturbationSpec(((open_name, parse_severity(token, f"--perturb {text!r}")),)))
            continue
        open_name, after_chain = None, False
        if token == ALL:
            cells += [cell for name in _grid(grid) for cell in grid_cells(name, grid)]
        elif token == CLEAN_NAME:
            continue
        elif STEP_SEP in token:
            cells.append(parse_spec(token))
            after_chain = True
        elif SEVERITY_SEP in token:
            cell = parse_spec(token)
            cells.append(cell)
            open_name = cell.steps[0][0]
        else:
            cells += grid_cells(token, grid)
    return list(dict.fromkeys(cells))


def _grid(grid: str) -> dict[str, tuple[Severity, ...]]:
    try:
        return GRIDS[grid]
    except KeyError:
        close = difflib.get_close_matches(grid, list(GRIDS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PerturbationError(f"unknown severity grid {grid!r}.{hint} "
                                f"Available: {', '.join(GRIDS)}.") from None


def _orphan_number_message(text: str, token: str, after_chain: bool) -> str:
    if after_chain:
        return (f"--perturb {text!r}: severity {token} follows a chain; a chain cell takes one "
                f"severity per step, so write each chain in full (e.g. resize:0.5+jpeg:{token})")
    example = format_severity(GRIDS["default"]["jpeg"][0])
    return (f"--perturb {text!r}: severity {token} does not follow a name:severity item; "
            f"write e.g. jpeg:{example},{token}")
