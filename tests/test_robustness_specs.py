"""Sweep cells: PerturbationSpec naming, parse_spec, grids and the ``--perturb`` grammar."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from imlbench.registry import PERTURBATIONS, RegistryError
from imlbench.robustness import (CLEAN, GRIDS, PerturbationError, PerturbationSpec, format_severity,
                                 grid_cells, parse_perturb_arg, parse_spec)


def labels(cells):
    return [c.label() for c in cells]


# -- PerturbationSpec ------------------------------------------------------------------------
def test_clean_cell_names():
    assert (CLEAN.name, CLEAN.severity, CLEAN.label()) == ("none", "", "none")
    assert not CLEAN.changes_geometry and parse_spec(" none ") == CLEAN


@pytest.mark.parametrize("text, name, severity, geometry", [
    ("jpeg:75", "jpeg", "75", False),
    ("jpeg:75.0", "jpeg", "75", False),
    ("resize:0.5", "resize", "0.5", True),
    ("resize:2.0", "resize", "2", True),
    ("gaussian_noise:2.5", "gaussian_noise", "2.5", False),
    ("resize:0.5+jpeg:75", "resize+jpeg", "0.5+75", True),
    (" jpeg : 75 + gaussian_blur:3", "jpeg+gaussian_blur", "75+3", False),
])
def test_spec_names_and_round_trip(text, name, severity, geometry):
    spec = parse_spec(text)
    assert (spec.name, spec.severity, spec.changes_geometry) == (name, severity, geometry)
    assert spec.label() == "+".join(f"{n}:{s}" for n, s in zip(name.split("+"), severity.split("+")))
    assert parse_spec(spec.label()) == spec and str(spec) == spec.label()


def test_equal_cells_compare_and_hash_equal():
    a, b = parse_spec("jpeg:75"), PerturbationSpec((("jpeg", 75.0),))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert parse_spec("resize:0.5+jpeg:75") != parse_spec("jpeg:75+resize:0.5")


def test_spec_survives_pickling_for_dataloader_workers():
    spec = parse_spec("gaussian_noise:4+jpeg:75")
    copy = pickle.loads(pickle.dumps(spec))
    image = np.full((8, 8, 3), 100, np.uint8)
    assert copy == spec and np.array_equal(copy.apply(image, "s"), spec.apply(image, "s"))


@pytest.mark.parametrize("value, text", [(75, "75"), (75.0, "75"), (0.5, "0.5"), (1.5, "1.5"),
                                         (0.1, "0.1"), (1e-05, "1e-05"), (2.0, "2")])
def test_format_severity(value, text):
    assert format_severity(value) == text


@pytest.mark.parametrize("text, error, match", [
    ("jpg:75", RegistryError, "Did you mean 'jpeg'"),
    ("jpeg", PerturbationError, r"no severity.*\[1, 100\]"),
    ("jpeg:", PerturbationError, "no severity"),
    ("jpeg:abc", PerturbationError, "not a number"),
    ("jpeg:0", PerturbationError, r"\[1, 100\]"),
    ("gaussian_blur:4", PerturbationError, "odd"),
    ("none+jpeg:75", PerturbationError, "cannot be a step"),
    ("jpeg:75+", RegistryError, "unknown perturbation ''"),
    ("", PerturbationError, "empty"),
])
def test_parse_spec_errors(text, error, match):
    with pytest.raises(error, match=match):
        parse_spec(text)


def test_spec_step_validation():
    with pytest.raises(PerturbationError, match="cannot be a step"):
        PerturbationSpec((("none", 0),))
    with pytest.raises(PerturbationError, match="tuple"):
        PerturbationSpec(("jpeg",))  # type: ignore[arg-type]


# -- grids -----------------------------------------------------------------------------------
def test_benco_grid_matches_imdl_benco_test_robust():
    benco = GRIDS["benco"]
    assert benco["jpeg"] == (100, 90, 80, 70, 60, 50)
    assert benco["gaussian_blur"] == (3, 7, 11, 15, 19, 23)
    assert benco["gaussian_noise_var"] == (3, 7, 11, 15, 19, 23)
    assert benco["resize"] == GRIDS["default"]["resize"] == (0.25, 0.5, 0.75, 1.5)


def test_every_registered_perturbation_has_a_grid():
    in_grids = {name for grid in GRIDS.values() for name in grid}
    assert set(PERTURBATIONS.list()) <= in_grids
    assert in_grids <= set(PERTURBATIONS.list(include_test_only=True))


def test_grid_cells():
    assert labels(grid_cells("jpeg", "benco"))[:2] == ["jpeg:100", "jpeg:90"]
    with pytest.raises(PerturbationError, match="benco"):
        grid_cells("gaussian_noise_var", "default")
    with pytest.raises(RegistryError, match="Did you mean"):
        grid_cells("gausian_blur")


# -- --perturb ---------------------------------------------------------------------------------
def test_perturb_names_take_their_grid():
    assert labels(parse_perturb_arg("jpeg,resize")) == (
        [f"jpeg:{q}" for q in GRIDS["default"]["jpeg"]] + ["resize:0.25", "resize:0.5", "resize:0.75",
                                                          "resize:1.5"])
    assert labels(parse_perturb_arg("gaussian_noise_var", grid="benco")) == [
        f"gaussian_noise_var:{v}" for v in (3, 7, 11, 15, 19, 23)]


@pytest.mark.parametrize("grid", list(GRIDS))
def test_perturb_all_is_every_cell_of_the_grid_and_round_trips(grid):
    cells = parse_perturb_arg("all", grid=grid)
    assert len(cells) == sum(len(s) for s in GRIDS[grid].values())
    assert {c.name for c in cells} == set(GRIDS[grid])
    assert CLEAN not in cells
    assert parse_perturb_arg(",".join(labels(cells))) == cells
    assert all(parse_spec(c.label()) == c for c in cells)


def test_perturb_user_grid_mixed_items_and_chains():
    cells = parse_perturb_arg("jpeg:50,70,90, gaussian_blur ,gaussian_noise:4,resize:0.5+jpeg:75,none")
    assert labels(cells) == (["jpeg:50", "jpeg:70", "jpeg:90"]
                             + [f"gaussian_blur:{k}" for k in GRIDS["default"]["gaussian_blur"]]
                             + ["gaussian_noise:4", "resize:0.5+jpeg:75"])
    assert parse_perturb_arg("none") == []


def test_perturb_repeated_cells_are_kept_once_in_first_seen_order():
    assert labels(parse_perturb_arg("jpeg:30,jpeg:75,30,jpeg")) == (
        ["jpeg:30", "jpeg:75"] + [f"jpeg:{q}" for q in GRIDS["default"]["jpeg"] if q not in (30, 75)])


@pytest.mark.parametrize("text, grid, error, match", [
    ("50,jpeg", "default", PerturbationError, "does not follow a name:severity"),
    ("resize,0.5", "default", PerturbationError, "does not follow a name:severity"),
    ("resize:0.5+jpeg:75,90", "default", PerturbationError, "write each chain in full"),
    ("jpeg,,resize", "default", PerturbationError, "empty item"),
    ("jpeg", "benko", PerturbationError, "Did you mean 'benco'"),
    ("gaussian_noise_var", "default", PerturbationError, "choose a grid that has it: benco"),
    ("gaussian_noise", "benco", PerturbationError, "give them explicitly"),
    ("jpg:50", "default", RegistryError, "Did you mean 'jpeg'"),
    ("blur", "default", RegistryError, "unknown perturbation 'blur'"),
    ("jpeg:50,0", "default", PerturbationError, r"\[1, 100\]"),
])
def test_perturb_errors(text, grid, error, match):
    with pytest.raises(error, match=match):
        parse_perturb_arg(text, grid=grid)
