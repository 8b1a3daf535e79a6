"""A committee of matgl potentials as one ASE calculator: the members' mean energy, forces and
stress, and their spread as the uncertainty (``amloop mlp fit`` writes the committees; the
``mlp`` oracle with ``model: campaign`` loads the newest one)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from amloop.oracles.md.engines import COMMITTEE_PREFIX
from amloop.oracles.mlp.backends import CAMPAIGN_COMMITTEE_DIR, CAMPAIGN_MODEL
from amloop.state.config import CampaignConfig, OracleConfig

#: A finished committee version folder: ``v001``, ``v002``, ...
VERSION_PATTERN = re.compile(r"^v(\d{3,})$")
#: The summary every finished version holds (settings, labels, metrics, cost).
SUMMARY_FILE = "committee.json"


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


def committee_versions(root: Path) -> list[Path]:
    """Finished committee versions under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)]
    return sorted(found, key=lambda p: int(p.name[1:]))


def newest_committee(root: Path) -> Path | None:
    """The newest finished committee version under ``root``, or ``None``."""
    versions = committee_versions(root)
    return versions[-1] if versions else None


def committee_summary(version: Path) -> dict[str, Any]:
    """The summary of a finished committee version (:data:`SUMMARY_FILE`)."""
    return dict(json.loads((version / SUMMARY_FILE).read_text()))


def member_folders(version: Path) -> list[Path]:
    """The member model folders of a committee version (``member-0``, ``member-1``, ...)."""
    return sorted(version.glob("member-*"), key=lambda p: int(p.name.split("-")[1]))


def with_campaign_committee(config: CampaignConfig, directory: Path) -> CampaignConfig:
    """``config`` with every ``mlp`` oracle's ``model: campaign`` and every ``md`` oracle's
    ``calculator: campaign`` resolved to the committees ``amloop mlp fit`` writes in
    ``directory`` (``committee:<directory>/mlp``)."""
    if not uses_campaign_committee(config):
        return config
    committee = f"{COMMITTEE_PREFIX}{(directory / CAMPAIGN_COMMITTEE_DIR).resolve()}"
    oracles = [
        o.model_copy(update={"options": {**o.options, CAMPAIGN_OPTION[o.type]: committee}})
        if uses_campaign_committee(o)
        else o
        for o in config.oracles
    ]
    return config.model_copy(update={"oracles": oracles})


#: The option that names the potential, per oracle type that can run the campaign's own.
CAMPAIGN_OPTION = {"mlp": "model", "md": "calculator"}


def uses_campaign_committee(config: CampaignConfig | OracleConfig) -> bool:
    """Whether the oracle (or any oracle of the campaign) runs the campaign's own committee."""
    if isinstance(config, CampaignConfig):
        return any(uses_campaign_committee(o) for o in config.oracles)
    option = CAMPAIGN_OPTION.get(config.type)
    return option is not None and config.options.get(option) == CAMPAIGN_MODEL


def committee_missing(config: OracleConfig) -> bool:
    """Whether the oracle runs a committee folder (``committee:/path``, as ``campaign``
    resolves) in which no committee has been fitted yet: it cannot be called until
    ``amloop mlp fit`` (or the loop) fits one."""
    option = CAMPAIGN_OPTION.get(config.type)
    value = config.options.get(option) if option else None
    if not (isinstance(value, str) and value.startswith(COMMITTEE_PREFIX)):
        return False
    return newest_committee(Path(value.removeprefix(COMMITTEE_PREFIX)).expanduser()) is None
