"""An amloop oracle around an ASE calculator (EMT): the example of docs/guide.md, "Adding an oracle".

A plugin distribution (``pip install examples/emt_plugin``): its ``amloop.oracles`` entry point
makes the YAML type ``emt`` known to every amloop process, nothing to import by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import numpy as np
from ase.calculators.emt import EMT, parameters
from ase.eos import EquationOfState
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE
from ase.units import GPa
from pydantic import Field
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from amloop.oracles.base import (
    Oracle,
    OracleFailed,
    OracleOptions,
    OracleResult,
    OracleSetupError,
)
from amloop.state.schema import PropertyValue


class EmtOptions(OracleOptions):
    """Options of the ``emt`` oracle: validated, with defaults, in the provenance."""

    fmax: float = Field(0.02, gt=0, description="force tolerance of the FIRE relaxation (eV/Å)")
    max_steps: int = Field(300, ge=1, description="most relaxation steps; more: failed")


class EmtOracle(Oracle):
    """Relaxed energy (eV/atom) and bulk modulus (GPa, Birch-Murnaghan) with ASE's EMT."""

    type_name: ClassVar[str] = "emt"
    properties: ClassVar[dict[str, str]] = {"energy_per_atom": "eV/atom", "bulk_modulus": "GPa"}
    Options: ClassVar[type[EmtOptions]] = EmtOptions
    default_fidelity: ClassVar[float] = 0.2
    default_timeout_s: ClassVar[float] = 60.0
    options: EmtOptions

    def check_elements(self, elements: Iterable[str]) -> None:
        """Fail fast (``amloop seed`` calls this first) on elements EMT has no parameters for."""
        if missing := sorted(set(elements) - set(parameters)):
            raise OracleSetupError(f"EMT has no parameters for {', '.join(missing)}")

    def compute(self, structure: Structure) -> OracleResult:
        self.check_elements(el.symbol for el in structure.composition.elements)
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = EMT()
        relax = FIRE(FrechetCellFilter(atoms), logfile=None)
        if not relax.run(fmax=self.options.fmax, steps=self.options.max_steps):
            raise OracleFailed(
                f"no convergence in {self.options.max_steps} steps"
            )  # stored as data
        energy = atoms.get_potential_energy() / len(atoms)
        cell = atoms.get_cell()
        relaxed = AseAtomsAdaptor.get_structure(atoms.copy())  # the copy has no calculator
        volumes, energies = [], []
        for scale in np.linspace(0.98, 1.02, 7):  # ±6 % in volume around the relaxed cell
            atoms.set_cell(cell * scale, scale_atoms=True)
            volumes.append(atoms.get_volume())
            energies.append(atoms.get_potential_energy())
        _, _, b0 = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
        return OracleResult(
            properties={
                "energy_per_atom": PropertyValue(value=float(energy), unit="eV/atom"),
                "bulk_modulus": PropertyValue(value=float(b0 / GPa), unit="GPa"),
            },
            relaxed_structure=relaxed,
            provenance={"code": "ase.calculators.emt", **self.options.parameters()},
        )
