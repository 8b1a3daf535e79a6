"""The quality metrics equal seed 002's own scripts (Dismai-Bench's a-Si benchmark: vasppy RDF,
CrystalNN bond angles, matminer motif fingerprints): d_rdf, d_angle and d_motif between Si sets
within 1 % of the values those scripts give (``tests/data/make_quality_peer_reference.py``
made both the sets and the values)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from amloop.generator.quality import (
    angle_grid,
    describe,
    fingerprint_labels,
    local_environments,
    set_distance,
)

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(scope="module")
def si_sets():
    sets: dict[str, list[Structure]] = {}
    for atoms in read(DATA / "si_quality_sets.extxyz", index=":"):
        sets.setdefault(atoms.info["set"], []).append(AseAtomsAdaptor.get_structure(atoms))
    return {name: describe(cells, ["Si"]) for name, cells in sets.items()}


def test_distances_equal_the_peer_scripts_within_1_percent(si_sets):
    peer = json.loads((DATA / "si_quality_peer.json").read_text())
    reference = si_sets["rattled_a"]
    for name, expected in peer.items():
        other = si_sets[name]
        ours = {
            "rdf": set_distance(reference.rdf, other.rdf, n_bootstrap=0)[0],
            "angle": set_distance(reference.angles, other.angles, n_bootstrap=0)[0],
            "motif": set_distance(reference.motifs["all"], other.motifs["all"], n_bootstrap=0)[0],
        }
        for metric, value in expected.items():
            assert ours[metric] == pytest.approx(value, rel=0.01), (name, metric, ours[metric])


def test_perfect_diamond_si_is_tetrahedral_under_both_neighbour_settings():
    """Every Si has 4 neighbours at 109.47° from each other: all angles in one bin, and the
    fingerprint's CN-4 likelihood and tetrahedral order parameter both 1."""
    cell = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.431), ["Si"], [[0, 0, 0]])
    env = local_environments(cell)
    assert len(env.angles) == 6 * len(cell)
    assert np.allclose(env.angles, 109.4712, atol=1e-3)
    grid = angle_grid()
    (occupied,) = np.flatnonzero(np.histogram(env.angles, bins=len(grid), range=(0, 180))[0])
    assert grid[occupied] == pytest.approx(109.25)
    labels = fingerprint_labels()
    row = dict(zip(labels, env.fingerprints.mean(axis=0), strict=True))
    assert row["wt CN_4"] == pytest.approx(1.0)
    assert row["tetrahedral CN_4"] == pytest.approx(1.0, abs=1e-3)
