"""PDM descriptor: textbook coordinations, cutoff rules, and agreement with pymatgen counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from amloop.generator.pdm import (
    RADII_SHELL_FACTOR,
    closest_pair_distances,
    coordination_matrix,
    pair_labels,
    partial_rdf,
    pdm,
    pdm_labels,
    radii_cutoffs,
    shell_cutoffs,
    site_shell_cutoffs,
)
from amloop.generator.solid_solution import random_solid_solution

FCC_SITES = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]


def l12_ni3fe(a: float = 3.56) -> Structure:
    """Ordered L1₂ Ni₃Fe: Fe on the cube corners, Ni on the face centres."""
    return Structure(Lattice.cubic(a), ["Fe", "Ni", "Ni", "Ni"], FCC_SITES)


def test_fcc_nickel_has_twelve_neighbours() -> None:
    nickel = Structure(Lattice.cubic(3.52), ["Ni"] * 4, FCC_SITES)
    assert pdm(nickel, ["Ni"]) == pytest.approx([12.0])
    # the first minimum lies in the gap between the 1st (a/√2) and 2nd (a) shells
    assert 3.52 / math.sqrt(2) < shell_cutoffs(nickel, ["Ni"])[0, 0] < 3.52


def test_bcc_iron_first_shell_is_eight() -> None:
    iron = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert pdm(iron, ["Fe"]) == pytest.approx([8.0])


def test_l12_ni3fe_partial_coordinations() -> None:
    elements = ["Ni", "Fe"]
    matrix = coordination_matrix(l12_ni3fe(), elements)
    assert matrix[0, 0] == pytest.approx(8.0)  # Ni around Ni
    assert matrix[0, 1] == pytest.approx(4.0)  # Fe around Ni
    assert matrix[1, 0] == pytest.approx(12.0)  # Ni around Fe
    assert matrix[1, 1] == pytest.approx(0.0)  # Fe around Fe: no Fe in the first shell
    assert pair_labels(elements) == ["Ni-Ni", "Ni-Fe", "Fe-Fe"]
    assert pdm(l12_ni3fe(), elements) == pytest.approx([8.0, 4.0, 0.0])


def b2_crni(a: float = 2.87) -> Structure:
    """Ordered B2 CrNi (CsCl type) as a 3x3x3 supercell of the cubic cell, 54 atoms."""
    cell = Structure(Lattice.cubic(a), ["Cr", "Ni"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return cell * (3, 3, 3)


@pytest.mark.parametrize(
    ("cell", "elements", "kind", "expected"),
    [
        (b2_crni(), ["Cr", "Ni"], "bcc", [0.0, 8.0, 0.0]),  # every first neighbour unlike
        (l12_ni3fe() * (2, 2, 2), ["Ni", "Fe"], "fcc", [8.0, 4.0, 0.0]),
    ],
)
def test_site_cutoffs_count_the_lattice_first_shell_of_a_displaced_cell(
    cell: Structure, elements: list[str], kind: str, expected: list[float]
) -> None:
    """A relaxation's displacements (0.08 Å here) blur BCC's first two shells (8 unlike and 6
    like neighbours, 15 % apart) into one peak, so the cell's own RDF minimum moves past the
    second (B2 CrNi then shows 6 Cr-Cr neighbours); the lattice's first shell counts the
    ordering exactly, before and after."""
    displaced = cell.copy()
    displaced.perturb(0.08)
    for structure in (cell, displaced):
        cutoffs = site_shell_cutoffs(structure, kind, len(elements))  # type: ignore[arg-type]
        assert pdm(structure, elements, cutoffs=cutoffs) == pytest.approx(expected)
    if kind == "bcc":
        assert pdm(displaced, elements) == pytest.approx([6.0, 8.0, 6.0])


def test_unresolvable_pair_falls_back_to_the_radii_rule() -> None:
    elements = ["Ni", "Fe"]
    cutoffs = shell_cutoffs(l12_ni3fe(), elements)
    radii = radii_cutoffs(elements)
    # Fe-Fe starts at the second shell (a = 3.56 Å), beyond the first-shell window
    assert cutoffs[1, 1] == pytest.approx(radii[1, 1])
    assert radii[1, 1] == pytest.approx(RADII_SHELL_FACTOR * 2 * 1.26)
    assert np.allclose(cutoffs, cutoffs.T)


def test_pdm_equals_a_direct_pymatgen_neighbour_count() -> None:
    elements = ["Ni", "Fe", "Cr"]
    ordered = random_solid_solution(
        {"Ni": 0.5, "Fe": 0.3, "Cr": 0.2}, "fcc", 54, np.random.default_rng(3)
    )
    displacement = np.random.default_rng(4).normal(0.0, 0.02, (len(ordered), 3))  # thermal-like
    structure = Structure(ordered.lattice, ordered.species, ordered.frac_coords + displacement)
    cutoffs = np.array([[3.0, 3.1, 3.2], [3.1, 2.9, 3.05], [3.2, 3.05, 3.3]])
    got = pdm(structure, elements, cutoffs=cutoffs)
    symbols = [site.specie.symbol for site in structure]
    expected = []
    for a, centre in enumerate(elements):
        for b in range(a, len(elements)):
            sites = [k for k, s in enumerate(symbols) if s == centre]
            counts = [
                sum(
                    n.specie.symbol == elements[b]
                    for n in structure.get_neighbors(structure[k], cutoffs[a, b])
                )
                for k in sites
            ]
            expected.append(np.mean(counts))
    assert got == pytest.approx(expected)


def test_absent_elements_give_zeros_and_fixed_length() -> None:
    vector = pdm(l12_ni3fe(), ["Cr", "Ni", "Fe"])
    assert vector.shape == (6,)
    assert vector[:3] == pytest.approx([0.0, 0.0, 0.0])  # Cr-Cr, Cr-Ni, Cr-Fe
    assert vector[3:] == pytest.approx([8.0, 4.0, 0.0])


def test_rdf_bins_are_appended_with_labels() -> None:
    vector = pdm(l12_ni3fe(), ["Ni", "Fe"], rdf_bins=20)
    labels = pdm_labels(["Ni", "Fe"], rdf_bins=20)
    assert vector.shape == (3 + 3 * 20,) == (len(labels),)
    assert labels[3] == "g(Ni-Ni)[0]"


def test_partial_rdf_tends_to_one_for_an_ideal_gas() -> None:
    rng = np.random.default_rng(0)
    gas = [Structure(Lattice.cubic(12.0), ["Ni"] * 100, rng.random((100, 3))) for _ in range(5)]
    r, g = partial_rdf(gas, ["Ni"], r_max=5.0, bin_width=0.5)
    assert np.mean(g[0, 0, r > 2.0]) == pytest.approx(1.0, abs=0.1)


def test_unknown_element_is_refused() -> None:
    with pytest.raises(ValueError, match="not among the elements"):
        pdm(l12_ni3fe(), ["Ni"])


def test_closest_pair_distances_of_l12() -> None:
    closest = closest_pair_distances([l12_ni3fe(3.56)], ["Ni", "Fe", "Cr"])
    nearest = 3.56 / math.sqrt(2)
    assert closest[0, 0] == pytest.approx(nearest)  # Ni-Ni on the faces
    assert closest[0, 1] == closest[1, 0] == pytest.approx(nearest)
    assert closest[1, 1] == pytest.approx(3.56)  # Fe-Fe only across the cube edge
    assert closest[2].tolist() == [0.0, 0.0, 0.0]  # Cr absent
