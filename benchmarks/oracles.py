"""Throughput of the LAMMPS oracle against ASE's LAMMPSlib route, measured in the same run.

The calculation: a random equiatomic 54-atom Ni-Fe-Cr FCC cell with the shipped 2NN-MEAM
potential, positions + cell relaxed, then the elastic tensor from ±strain along the six Voigt
directions with internal positions relaxed at each strain, and the Voigt bulk modulus.

- ours: :class:`oracles.lammps.LammpsOracle` (all in LAMMPS: ``fix box/relax``, CG minimiser,
  ``change_box``), one LAMMPS instance per structure;
- baseline: the same protocol through :class:`ase.calculators.lammpslib.LAMMPSlib` (the same
  LAMMPS library as the force engine) with ASE's BFGS on a ``FrechetCellFilter`` for the
  relaxation and BFGS at fixed cell for each strained configuration.

Both run pinned to one core. Usage: ``python benchmarks/oracles.py [--repeats N]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
# run as a file (python benchmarks/NAME.py): the repository root on sys.path for `benchmarks.*`
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import math
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.calculators.lammpslib import LAMMPSlib
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS
from ase.units import GPa
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from amloop.oracles.lammps import LammpsOracle, lammps_version, load_mpi, resolve_potential_file
from amloop.state.schema import Candidate

#: Target wall time (s) of one 54-atom relax + elastic through the oracle, on one core.
TARGET_S = 2.0
STRAIN = 1e-3
#: Force tolerance of the ASE route (eV/Å, largest atomic force; stress x volume for the cell).
ASE_FMAX = 1e-3
LIBRARY = "library_2nn.meam"
PARAMETERS = "MoCoNiVFeAlCr_2nn.meam"
LIBRARY_ENTRIES = "Mo Co Ni V Fe Al Cr"


def random_nifecr54(seed: int = 0) -> Structure:
    """Random equiatomic 54-atom FCC Ni-Fe-Cr cell: 3x3x3 two-atom tetragonal cells (seed 001)."""
    a = 3.56
    cell = Structure(Lattice.tetragonal(a / math.sqrt(2), a), ["Ni", "Ni"], [[0, 0, 0], [0.5] * 3])
    cell.make_supercell((3, 3, 3))
    species = np.random.default_rng(seed).permutation(["Ni"] * 18 + ["Fe"] * 18 + ["Cr"] * 18)
    return Structure(cell.lattice, list(species), cell.frac_coords)


def oracle_route(structure: Structure) -> float:
    """Voigt bulk modulus (GPa) through the LAMMPS oracle."""
    evaluation = LammpsOracle(potential=PARAMETERS, method="elastic").evaluate(
        Candidate(structure=structure, origin="seed")
    )
    if evaluation.status != "done":
        raise RuntimeError(evaluation.error)
    return evaluation.properties["bulk_modulus"].value


def ase_route(structure: Structure) -> float:
    """Voigt bulk modulus (GPa) through ASE's LAMMPSlib calculator and ASE optimisers."""
    atoms: Atoms = AseAtomsAdaptor.get_atoms(structure)
    elements = sorted(set(atoms.get_chemical_symbols()))
    library, parameters = resolve_potential_file(LIBRARY), resolve_potential_file(PARAMETERS)
    calc = LAMMPSlib(
        lmpcmds=[
            "pair_style meam",
            f"pair_coeff * * {library} {LIBRARY_ENTRIES} {parameters} {' '.join(elements)}",
        ],
        atom_types={element: i for i, element in enumerate(elements, 1)},
        keep_alive=True,
    )
    atoms.calc = calc
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=ASE_FMAX, steps=2000)
    slots = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
    stiffness = np.zeros((6, 6))
    for i, slot in enumerate(slots):
        stresses = []
        for sign in (1.0, -1.0):
            deformation = np.eye(3)
            deformation[slot] += sign * STRAIN
            strained = atoms.copy()
            strained.calc = calc
            strained.set_cell(atoms.cell[:] @ deformation.T, scale_atoms=True)
            BFGS(strained, logfile=None).run(fmax=ASE_FMAX, steps=2000)
            stresses.append(strained.get_stress(voigt=True))
        stiffness[i] = (stresses[0] - stresses[1]) / (2.0 * STRAIN) / GPa
    stiffness = 0.5 * (stiffness + stiffness.T)
    return float(stiffness[:3, :3].sum() / 9.0)


def timed(
    route: Callable[[Structure], float], structure: Structure, repeats: int
) -> tuple[float, float]:
    """Median wall time (s) over ``repeats`` runs, and the bulk modulus (GPa) of the last."""
    times, bulk = [], float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        bulk = route(structure)
        times.append(time.perf_counter() - start)
    return statistics.median(times), bulk


def main() -> None:
    """Time both routes on the same structure and print times, ratio and target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per route (median)")
    args = parser.parse_args()
    # scipy's logm inside ASE's FrechetCellFilter warns about 1e-13 round-off at every step
    warnings.filterwarnings("ignore", message="logm result may be inaccurate")
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    load_mpi()
    lammps_version()  # MPI and LAMMPS start-up once, outside both timings
    structure = random_nifecr54()
    ours, bulk_ours = timed(oracle_route, structure, args.repeats)
    theirs, bulk_theirs = timed(ase_route, structure, args.repeats)
    print("54-atom Ni-Fe-Cr FCC, 2NN-MEAM, box relax + elastic (12 strained relaxations), 1 core")
    print(f"  LAMMPS oracle      : {ours:7.3f} s   B = {bulk_ours:.2f} GPa")
    print(f"  ASE LAMMPSlib route: {theirs:7.3f} s   B = {bulk_theirs:.2f} GPa")
    print(f"  speed-up           : {theirs / ours:7.1f}x")
    verdict = "met" if ours <= TARGET_S else "MISSED"
    print(f"  target             : <= {TARGET_S:.1f} s per structure ({verdict})")


if __name__ == "__main__":
    main()
