"""Phase labels from bond-angle histograms."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from amloop.generator.phase import classify_phase
from amloop.generator.solid_solution import random_solid_solution


@pytest.mark.parametrize("kind", ["fcc", "bcc", "hcp"])
def test_ideal_lattices(kind: str) -> None:
    structure = random_solid_solution({"Ni": 0.5, "Fe": 0.5}, kind, 54, np.random.default_rng(0))  # type: ignore[arg-type]
    assert classify_phase(structure) == kind


def test_thermal_noise_keeps_the_lattice_random_packing_is_amorphous() -> None:
    rng = np.random.default_rng(1)
    fcc = random_solid_solution({"Ni": 1.0}, "fcc", 108, rng)
    noisy = Structure(fcc.lattice, fcc.species, fcc.frac_coords + rng.normal(0, 0.004, (108, 3)))
    assert classify_phase(noisy) == "fcc"
    gas = Structure(Lattice.cubic(10.0), ["Ni"] * 90, rng.random((90, 3)))
    assert classify_phase(gas) == "amorphous"


def test_remembered_phases_follow_the_structure_content() -> None:
    """classify_phase remembers by content: the same cell again (a copy) keeps its label, the
    same lattice and species on random positions are a new structure, labelled afresh."""
    rng = np.random.default_rng(3)
    fcc = random_solid_solution({"Ni": 0.5, "Fe": 0.5}, "fcc", 32, rng)
    assert classify_phase(fcc) == "fcc"
    assert classify_phase(fcc.copy()) == "fcc"
    scattered = Structure(fcc.lattice, fcc.species, rng.random((32, 3)))
    assert classify_phase(scattered) == "amorphous"
    assert classify_phase(fcc) == "fcc"
