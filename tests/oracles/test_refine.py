"""Refinement of generated amorphous cells (relax, low-temperature anneal, relax) with a real
potential: the Mendelev Cu-Zr EAM through the LAMMPS engine, and EMT through ASE."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.emt import EMT
from pymatgen.core import Lattice, Structure

from amloop.oracles.md import AseEngine, LammpsEngine, random_packing
from amloop.oracles.md.refine import RefineProtocol, refine_cell
from amloop.state.structures import closest_distance

CUZR = LammpsEngine.factory("CuZr_mm.eam.fs")


def test_a_random_cuzr_packing_refines_into_a_low_energy_glass():
    """A PACKMOL packing (no relaxation) sits ~1.8 eV/atom above a Cu50Zr50 glass under this
    potential; refined, it lies within 0.1 eV/atom of 54-atom glasses melt-quenched at 100 K/ps
    and relaxed (-4.84 and -4.85 eV/atom, seeds 0 and 1), stays amorphous and has no close
    contacts."""
    start = random_packing({"Cu": 0.5, "Zr": 0.5}, 54, seed=1)
    refinement = refine_cell(start, CUZR, seed=0)
    assert refinement.energy_before > -3.5
    assert -4.95 < refinement.energy_after < -4.75
    assert refinement.energy_after < refinement.energy_before - 1.0
    assert refinement.phase == "amorphous" and not refinement.crystallised
    assert refinement.crystalline_fraction < 0.3
    assert closest_distance(refinement.structure) > 2.2
    assert refinement.anneal_ps == pytest.approx(2.0)
    assert refinement.relax_steps > 0 and refinement.core_s > 0
    assert refinement.structure.composition == start.composition


def test_a_rattled_crystal_is_recognised_as_crystallised():
    cell = Structure(
        Lattice.cubic(3.615), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )
    cell.make_supercell(3)
    rattled = cell.cart_coords + np.random.default_rng(0).normal(0.0, 0.15, (len(cell), 3))
    start = Structure(cell.lattice, cell.species, rattled, coords_are_cartesian=True)
    refinement = refine_cell(start, CUZR, seed=0)
    assert refinement.crystallised and refinement.phase == "fcc"
    assert refinement.crystalline_fraction > 0.9


def test_relaxing_only_keeps_the_cell_and_lowers_the_energy_with_an_ase_calculator():
    start = random_packing({"Cu": 0.5, "Ni": 0.5}, 32, seed=2)
    protocol = RefineProtocol(
        anneal_ps=0.0, fmax_eV_A=0.05, max_relax_steps=2000, pressure_tolerance_GPa=None
    )
    refinement = refine_cell(start, AseEngine.factory(EMT()), protocol)
    assert refinement.anneal_ps == 0.0
    assert refinement.energy_after < refinement.energy_before
    assert np.allclose(refinement.structure.lattice.matrix, start.lattice.matrix)
    engine = AseEngine(refinement.structure, EMT())
    forces = engine.atoms.get_forces()
    assert np.abs(forces).max() < 0.06  # eV/Å: relaxed to fmax


def test_a_strained_glass_is_refined_to_zero_pressure_and_a_lower_energy():
    """A Cu50Zr50 glass stretched by 15 % in volume (a decoded cell's volume is pulled towards
    its family's mean): refined at fixed cell it stays under tension; refined with the volume
    steps it ends within the tolerance of zero pressure, near its own volume, lower in
    energy."""
    glass = refine_cell(random_packing({"Cu": 0.5, "Zr": 0.5}, 54, seed=1), CUZR, seed=0)
    assert abs(glass.pressure_GPa) <= 0.5
    stretched = glass.structure.copy()
    stretched.scale_lattice(1.15 * glass.structure.volume)
    fixed = refine_cell(stretched, CUZR, RefineProtocol(pressure_tolerance_GPa=None), seed=0)
    rescaled = refine_cell(stretched, CUZR, seed=0)
    assert fixed.pressure_GPa < -3.0 and fixed.volume_change == pytest.approx(0.0, abs=1e-9)
    assert abs(rescaled.pressure_GPa) <= 0.5
    assert rescaled.volume_change == pytest.approx(1 / 1.15 - 1, abs=0.04)
    assert rescaled.energy_after < fixed.energy_after - 0.02  # eV/atom


def test_an_anneal_near_the_glass_transition_and_a_cooling_lower_a_glass_further():
    """A relaxed random packing of Cu50Zr50 (a glass quenched infinitely fast) annealed at
    750 K, near this potential's glass transition, and cooled at 100 K/ps ends lower in energy
    than the same cell annealed as long at 300 K: the cooling repeats the part of a
    melt-quench that sets a glass's energy."""
    protocol = RefineProtocol(
        anneal_ps=2.0, anneal_temperature_K=750.0, cooling_rate_K_per_ps=100.0
    )
    stages = protocol.schedule()
    assert stages[0] == (750.0, 2.0) and stages[-1][0] == pytest.approx(300.0)
    assert sum(ps for _, ps in stages) == pytest.approx(2.0 + 450.0 / 100.0)
    start = random_packing({"Cu": 0.5, "Zr": 0.5}, 54, seed=3)
    cooled = refine_cell(start, CUZR, protocol, seed=0)
    room = refine_cell(start, CUZR, RefineProtocol(anneal_ps=6.5), seed=0)
    assert cooled.anneal_ps == pytest.approx(6.5) and room.anneal_ps == pytest.approx(6.5)
    assert cooled.energy_after < room.energy_after - 0.005  # eV/atom
    assert not cooled.crystallised and abs(cooled.pressure_GPa) <= 0.5
