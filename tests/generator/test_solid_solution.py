"""Random solid solutions of seed paper 001: cell sizes, compositions, geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from amloop.generator.pdm import pdm
from amloop.generator.solid_solution import (
    composition_grid,
    mean_metallic_radius,
    random_solid_solution,
    snap_to_lattice,
    supercell_shape,
)
from amloop.state.composition import atom_counts


@pytest.mark.parametrize(
    ("n", "shape"), [(54, (3, 3, 3)), (16, (2, 2, 2)), (128, (4, 4, 4)), (36, (2, 3, 3))]
)
def test_supercell_shape(n, shape):
    assert supercell_shape(n) == shape


def test_odd_cell_size_is_refused_with_a_hint():
    with pytest.raises(ValueError, match="use an even number"):
        supercell_shape(27)


def test_atom_counts_sum_and_round_to_nearest():
    counts = atom_counts({"Ni": 0.4, "Fe": 0.3, "Cr": 0.3}, 54)
    assert sum(counts.values()) == 54
    assert counts == {"Ni": 22, "Fe": 16, "Cr": 16}  # 21.6, 16.2, 16.2


@pytest.mark.parametrize(("kind", "neighbours"), [("fcc", 12), ("bcc", 8), ("hcp", 12)])
def test_lattices_have_their_coordination_and_touching_spheres(kind, neighbours):
    fractions = {"Ni": 0.5, "Fe": 0.25, "Cr": 0.25}
    structure = random_solid_solution(fractions, kind, 54, np.random.default_rng(0))
    assert len(structure) == 54
    radius = mean_metallic_radius(fractions)
    shortest = np.sort(structure.distance_matrix[0])[1]
    assert shortest == pytest.approx(2 * radius, rel=1e-6)  # nearest neighbours touch
    shell = [n for n in structure.get_neighbors(structure[0], shortest * 1.05)]
    assert len(shell) == neighbours


def test_orderings_differ_but_composition_is_fixed():
    fractions = {"Ni": 0.4, "Fe": 0.3, "Cr": 0.3}
    rng = np.random.default_rng(1)
    first, second = (random_solid_solution(fractions, "fcc", 54, rng) for _ in range(2))
    assert first.composition == second.composition
    assert [s.specie for s in first] != [s.specie for s in second]


def test_composition_grid_covers_the_simplex_within_bounds():
    grid = composition_grid(["Ni", "Fe", "Cr"], {}, step=0.1)
    assert len(grid) == math.comb(12, 2)  # 66 points on a ternary 0.1 grid
    assert all(sum(c.values()) == pytest.approx(1.0) for c in grid)
    bounded = composition_grid(["Ni", "Fe", "Cr"], {"Cr": (0.2, 0.4), "Ni": (0.3, 1.0)}, step=0.1)
    assert bounded and all(
        0.2 - 1e-9 <= c["Cr"] <= 0.4 + 1e-9 and c["Ni"] >= 0.3 - 1e-9 for c in bounded
    )


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_snap_to_lattice_recovers_a_thermally_displaced_ordering(kind):
    """A solid solution with every atom displaced by up to 0.15 Å and the cell strained by 3 % snaps
    back onto its own sites: same species on every site, so the same PDM (who neighbours whom),
    and an RMS displacement of the size of the perturbation."""
    rng = np.random.default_rng(3)
    ordered = random_solid_solution({"Ni": 0.5, "Fe": 0.3, "Cr": 0.2}, kind, 54, rng)
    displaced = ordered.copy()
    displaced.apply_strain(0.03)
    displaced.perturb(0.15)
    order = rng.permutation(len(displaced))  # the generator's atom order is arbitrary
    shuffled = Structure.from_sites([displaced[int(k)] for k in order])
    snapped, rms = snap_to_lattice(shuffled, kind)
    assert [site.specie.symbol for site in snapped] == [site.specie.symbol for site in ordered]
    assert np.allclose(snapped.lattice.matrix, ordered.lattice.matrix, rtol=1e-2)  # radii mix
    elements = ["Ni", "Fe", "Cr"]
    assert np.allclose(pdm(snapped, elements), pdm(ordered, elements))
    assert 0.05 < rms < 0.15  # displacements uniform in [0, 0.15] Å: RMS 0.087


def test_snap_to_lattice_keeps_the_composition_of_an_amorphous_cell():
    glass = Structure(
        Lattice.cubic(7.0), ["Ni"] * 16 + ["Cr"] * 16, np.random.default_rng(0).random((32, 3))
    )
    snapped, _ = snap_to_lattice(glass, "fcc")
    assert snapped.composition == glass.composition
    assert len(snapped) == 32
