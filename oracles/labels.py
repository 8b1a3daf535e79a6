"""Force labels from an ASE calculation: energy, forces and stress of a structure as the
calculator attached to its atoms computes them (the training labels of ``amloop mlp fit``)."""

from __future__ import annotations

from typing import Literal

from ase import Atoms, units
from pymatgen.core import Structure

from amloop.state.schema import ForceLabel


def ase_label(
    atoms: Atoms,
    structure: Structure,
    source: Literal["final", "relaxation", "snapshot"] = "final",
) -> ForceLabel:
    """The label of ``atoms`` (their calculator attached; ``structure``: the same cell as a
    pymatgen structure). Energy in eV, forces in eV/Å, stress in GPa (Voigt, ASE's sign)."""
    return ForceLabel(
        structure=structure,
        energy_eV=float(atoms.get_potential_energy()),
        forces_eV_per_A=atoms.get_forces().tolist(),
        stress_GPa=(atoms.get_stress(voigt=True) / units.GPa).tolist(),
        source=source,
    )
