"""Chemical ordering towards a PDM target: known orderings are recovered from shuffled ones."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from amloop.generator.pdm import pdm, radii_cutoffs, shell_cutoffs
from amloop.generator.pdm_ordering import match_pdm
from amloop.generator.solid_solution import random_solid_solution


def b2_supercell() -> Structure:
    """B2 NiAl (CsCl type, a = 2.887 Å) as a 3x3x3 supercell of 54 atoms."""
    cell = Structure(Lattice.cubic(2.887), ["Ni", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return cell.make_supercell([3, 3, 3], in_place=False)


def shuffled(structure: Structure, seed: int) -> Structure:
    species = [site.specie.symbol for site in structure]
    order = np.random.default_rng(seed).permutation(len(species))
    return Structure(structure.lattice, [species[k] for k in order], structure.frac_coords)


def test_b2_order_is_recovered_from_a_random_arrangement() -> None:
    elements = ["Ni", "Al"]
    b2 = b2_supercell()
    cutoffs = np.full((2, 2), 2.7)  # between the 1st (2.50 Å) and 2nd (2.887 Å) shells
    target = pdm(b2, elements, cutoffs=cutoffs)
    assert target == pytest.approx([0.0, 8.0, 0.0])  # every first neighbour is unlike
    start = shuffled(b2, seed=1)
    result = match_pdm(start, target, elements, cutoffs, sweeps=40, seed=0)
    assert result.error_before > 2.0  # a random arrangement has ~4 unlike of 8
    assert result.error_after == pytest.approx(0.0, abs=1e-9)
    assert pdm(result.structure, elements, cutoffs=cutoffs) == pytest.approx(target)
    assert result.structure.composition == start.composition
    assert np.array_equal(result.structure.frac_coords, start.frac_coords)
    assert result.swaps > 0


def test_a_clustering_target_is_approached_in_an_amorphous_like_cell() -> None:
    """Fe-Ni on a distorted 128-atom BCC cell: ask for strong Ni-Ni clustering."""
    elements = ["Ni", "Fe"]
    rng = np.random.default_rng(3)
    cell = random_solid_solution({"Ni": 0.5, "Fe": 0.5}, "bcc", 128, rng)
    cell.perturb(0.15, min_distance=0.05)
    cutoffs = radii_cutoffs(elements)
    start = pdm(cell, elements, cutoffs=cutoffs)
    total = start[0] + start[1]  # Ni's coordination, fixed by the geometry
    target = [0.8 * total, 0.2 * total, 0.8 * (start[2] + start[1])]
    result = match_pdm(cell, target, elements, cutoffs, sweeps=20, seed=1)
    assert result.error_after < 0.25 * result.error_before
    reached = pdm(result.structure, elements, cutoffs=cutoffs)
    assert reached[0] > start[0] + 1.5  # more Ni around Ni than at random


def test_single_element_and_bad_targets() -> None:
    nickel = Structure(
        Lattice.cubic(3.52), ["Ni"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )
    cutoffs = shell_cutoffs(nickel, ["Ni"])
    result = match_pdm(nickel, [12.0], ["Ni"], cutoffs)
    assert result.swaps == 0 and result.error_after == pytest.approx(0.0)
    with pytest.raises(ValueError, match="3 pairs needed"):
        match_pdm(nickel, [12.0], ["Ni", "Fe"], radii_cutoffs(["Ni", "Fe"]))
    with pytest.raises(ValueError, match="not among the elements"):
        match_pdm(nickel, [12.0, 0.0, 0.0], ["Fe", "Cr"], radii_cutoffs(["Fe", "Cr"]))


def test_exchanges_that_bring_a_pair_too_close_are_refused() -> None:
    """Rock salt asked to put O around O: refused when O-O may not come as close as Mg-O."""
    rocksalt = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    cell = rocksalt.make_supercell([2, 2, 2], in_place=False)
    elements = ["Mg", "O"]
    cutoffs = np.full((2, 2), 2.5)  # first shell only: the 6 unlike neighbours at 2.105 Å
    target = [3.0, 3.0, 3.0]  # half of the first shell alike
    free = match_pdm(cell, target, elements, cutoffs, seed=0)
    assert free.error_after < 0.5 * free.error_before
    closest = np.array([[2.9, 2.1], [2.1, 2.9]])  # alike pairs never closer than 2.9 Å
    limited = match_pdm(cell, target, elements, cutoffs, min_distances=closest, seed=0)
    assert limited.swaps == 0
    assert limited.structure == cell
