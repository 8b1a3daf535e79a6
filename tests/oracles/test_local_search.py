"""Seed-001 local search with the LAMMPS oracle on a 16-atom FCC Ni-Fe-Cr cell."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from amloop.oracles.lammps import LammpsOracle
from amloop.oracles.local_search import local_search, swap_sites, unlike_pairs

FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]


@pytest.fixture(scope="module")
def nifecr16() -> Structure:
    """16-atom FCC cell (2x2x1 conventional cells) with a random Ni6Fe5Cr5 ordering."""
    cell = Structure(Lattice.cubic(3.56), ["Ni"] * 4, FCC)
    cell.make_supercell((2, 2, 1))
    species = np.random.default_rng(7).permutation(["Ni"] * 6 + ["Fe"] * 5 + ["Cr"] * 5)
    return Structure(cell.lattice, list(species), cell.frac_coords)


@pytest.fixture(scope="module")
def oracle() -> LammpsOracle:
    return LammpsOracle(potential="MoCoNiVFeAlCr_2nn.meam")


def test_swaps_only_exchange_unlike_atoms(nifecr16: Structure) -> None:
    pairs = unlike_pairs(nifecr16)
    assert len(pairs) == 6 * 5 + 6 * 5 + 5 * 5
    i, j = pairs[0]
    child = swap_sites(nifecr16, int(i), int(j))
    assert child[i].specie == nifecr16[j].specie and child[j].specie == nifecr16[i].specie
    assert child.composition == nifecr16.composition


def test_local_search_never_returns_worse_than_its_start(
    nifecr16: Structure, oracle: LammpsOracle
) -> None:
    result = local_search(nifecr16, oracle, n_swaps=3, n_steps=2, rng=0)
    assert len(result.trajectory) == 2
    assert len(result.evaluated) == 1 + 2 * 3
    assert result.evaluation.status == "done"
    best = result.evaluation.properties["bulk_modulus"].value
    assert best == result.best_value >= result.start_value
    kept = [step.best_value for step in result.trajectory]
    assert kept == sorted(kept)
    for step in result.trajectory:
        tried = [v for v in step.child_values if v is not None]
        assert step.best_value == max([step.parent_value, *tried])
    assert result.best.composition == pytest.approx({"Ni": 6 / 16, "Fe": 5 / 16, "Cr": 5 / 16})
    children = [candidate for candidate, _ in result.evaluated[1:]]
    assert all(c.origin == "local_search" and c.parent_hash for c in children)


def test_local_search_is_reproducible_and_can_minimise(
    nifecr16: Structure, oracle: LammpsOracle
) -> None:
    options = {"objective": "energy_per_atom", "direction": "min", "n_swaps": 2, "n_steps": 1}
    first = local_search(nifecr16, oracle, rng=3, **options)
    again = local_search(nifecr16, oracle, rng=3, **options)
    assert first.trajectory[0].swaps == again.trajectory[0].swaps
    assert first.best_value == pytest.approx(again.best_value)
    assert first.best_value <= first.start_value
    resumed = local_search(
        nifecr16, oracle, rng=3, start_evaluation=first.evaluated[0][1], **options
    )
    assert len(resumed.evaluated) == 1 + 2  # the given start evaluation is reused, not redone
    assert resumed.best_value == pytest.approx(first.best_value)


def test_unknown_objective_is_rejected(nifecr16: Structure, oracle: LammpsOracle) -> None:
    with pytest.raises(ValueError, match="not computed"):
        local_search(nifecr16, oracle, objective="band_gap")
