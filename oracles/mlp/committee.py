"""A committee of matgl potentials as one ASE calculator: the members' mean energy, forces and
stress, and their spread as the uncertainty (``amloop mlp fit`` writes the committees, see
:mod:`oracles.campaign_potential`; the ``mlp`` oracle with ``model: campaign`` loads the newest)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes


@dataclass(frozen=True)
class Spread:
    """The committee's disagreement on one structure.

    Attributes:
        energy_eV_per_atom: Standard deviation of the members' energies per atom (eV/atom).
        force_eV_per_A: Largest over atoms of the norm of the members' force standard
            deviation (eV/Å): where a structure is least known.
    """

    energy_eV_per_atom: float
    force_eV_per_A: float


class CommitteeCalculator(Calculator):
    """Mean of the members' energy (eV), forces (eV/Å) and stress (eV/Å³, Voigt); the spread
    of the last calculation is :attr:`spread`."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]  # noqa: RUF012

    def __init__(self, members: Sequence[Calculator], **kwargs: Any):
        if len(members) < 2:
            raise ValueError(f"a committee needs at least 2 members, got {len(members)}")
        super().__init__(**kwargs)
        self.members = list(members)
        self.spread = Spread(0.0, 0.0)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = tuple(all_changes),
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None
        energies, forces, stresses = [], [], []
        for member in self.members:
            copy = self.atoms.copy()
            copy.calc = member
            energies.append(copy.get_potential_energy())
            forces.append(copy.get_forces())
            stresses.append(copy.get_stress(voigt=True))
        n_atoms = len(self.atoms)
        force_std = np.std(forces, axis=0)
        self.spread = Spread(
            energy_eV_per_atom=float(np.std(energies)) / n_atoms,
            force_eV_per_A=float(np.linalg.norm(force_std, axis=1).max()),
        )
        energy = float(np.mean(energies))
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": np.mean(forces, axis=0),
            "stress": np.mean(stresses, axis=0),
        }
