"""Push-apart post-processing: no pair closer than the minimum, composition and cell kept."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from amloop.generator.push_apart import PushApartError, push_apart
from amloop.state.structures import closest_distance


@pytest.mark.parametrize("n", [16, 64, 256])
def test_random_points_are_separated(n: int) -> None:
    rng = np.random.default_rng(n)
    edge = (n * 11.5) ** (1 / 3)
    species = rng.choice(["Ni", "Fe", "Cr"], size=n).tolist()
    crowded = Structure(Lattice.cubic(edge), species, rng.random((n, 3)))
    assert closest_distance(crowded) < 1.0
    separated = push_apart(crowded, 2.0)
    assert closest_distance(separated) >= 2.0
    assert separated.composition == crowded.composition
    assert separated.lattice == crowded.lattice
    assert np.all((separated.frac_coords >= 0) & (separated.frac_coords < 1))


def test_coincident_atoms_and_periodic_images() -> None:
    lattice = Lattice.orthorhombic(4.0, 5.0, 6.0)
    structure = Structure(lattice, ["Ni", "Fe", "Cr"], [[0, 0, 0], [0, 0, 0], [0.99, 0.0, 0.0]])
    assert closest_distance(push_apart(structure, 1.5)) >= 1.5


def test_well_separated_structure_is_unchanged() -> None:
    fcc = Structure(
        Lattice.cubic(3.52), ["Ni"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )
    assert np.allclose(push_apart(fcc, 1.5).frac_coords, fcc.frac_coords)


def test_impossible_requests_fail_clearly() -> None:
    tiny_cell = Structure(Lattice.cubic(1.2), ["Ni"], [[0, 0, 0]])
    with pytest.raises(PushApartError, match="shorter than the minimum"):
        push_apart(tiny_cell, 1.5)
    packed = Structure(Lattice.cubic(3.0), ["Ni"] * 8, np.random.default_rng(0).random((8, 3)))
    with pytest.raises(PushApartError, match="too dense"):
        push_apart(packed, 2.5, max_rounds=50)
