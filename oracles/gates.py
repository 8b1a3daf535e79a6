"""Structure gates shared by the oracles: refuse what no oracle should run, drop what failed.

- :func:`check_min_distance` refuses overlapping atoms before any work is spent on them.
- :func:`energy_gate` is the energy filter of seed paper 001 (section 4.3) for decoded
  structures: after relaxation the per-atom energy must not exceed the highest per-atom energy
  of the training data, and the structure as decoded (before relaxation) must already be within
  a margin of that threshold, so that only near-relaxed decodes count as correct.
- :class:`EnergyReference` is that threshold, the seed set's highest energy or, for a family
  whose elements bind very differently, the seeds' energies fitted linearly in composition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pymatgen.core import Structure

from amloop.oracles.base import OracleFailed
from amloop.state.structures import closest_distance


def check_min_distance(structure: Structure, min_distance: float) -> None:
    """Refuse overlapping atoms (periodic images included).

    Args:
        structure: Periodic structure.
        min_distance: Closest allowed interatomic distance (Å).

    Raises:
        OracleFailed: two atoms are closer than ``min_distance``.
    """
    closest = closest_distance(structure, search_radius=min_distance)
    if closest < min_distance:
        raise OracleFailed(f"atoms too close: {closest:.3f} Å < min_distance {min_distance} Å")


def energy_gate(
    relaxed_energy_per_atom: float,
    raw_energy_per_atom: float,
    *,
    training_max_energy_per_atom: float,
    raw_margin_eV: float = 10.0,
    natoms: int | None = None,
) -> tuple[bool, str]:
    """Seed 001's energy filter for decoded structures.

    A structure is kept when its relaxed per-atom energy is at most the training set's highest
    per-atom energy (the threshold), and its raw (decoded, unrelaxed) energy is at most
    ``raw_margin_eV`` above that threshold. Seed 001 words the second rule as "the structure's
    total energy can be at most 10 eV above the final threshold": pass ``natoms`` to apply the
    margin to the total energy (``N * E_raw <= N * threshold + margin``, i.e. ``margin / N``
    per atom); without it the margin applies per atom.

    Args:
        relaxed_energy_per_atom: Energy after relaxation (eV/atom).
        raw_energy_per_atom: Energy of the structure as decoded, before relaxation (eV/atom).
        training_max_energy_per_atom: Highest per-atom energy in the training data (eV/atom),
            computed with the same oracle.
        raw_margin_eV: Allowed excess of the raw energy over the threshold (eV; per atom
            unless ``natoms`` is given).
        natoms: Number of atoms, to apply the margin to the total energy.

    Returns:
        ``(kept, reason)``; ``reason`` is empty when the structure is kept.
    """
    threshold = training_max_energy_per_atom
    if not math.isfinite(relaxed_energy_per_atom) or not math.isfinite(raw_energy_per_atom):
        return False, (
            f"non-finite energy: relaxed {relaxed_energy_per_atom}, raw {raw_energy_per_atom} eV/atom"
        )
    if relaxed_energy_per_atom > threshold:
        return False, (
            f"relaxed energy {relaxed_energy_per_atom:.4f} eV/atom > training maximum "
            f"{threshold:.4f} eV/atom"
        )
    margin = raw_margin_eV / natoms if natoms else raw_margin_eV
    if raw_energy_per_atom > threshold + margin:
        per = f"{raw_margin_eV} eV / {natoms} atoms" if natoms else f"{raw_margin_eV} eV/atom"
        return False, (
            f"raw (unrelaxed) energy {raw_energy_per_atom:.4f} eV/atom > training maximum "
            f"{threshold:.4f} + margin {margin:.4f} eV/atom ({per}): decode not near a minimum"
        )
    return True, ""


#: How the energy gate's reference is taken from the seed set (``quality.energy_reference``).
EnergyReferenceMode = Literal["seed_max", "composition_fit"]


@dataclass(frozen=True)
class EnergyReference:
    """The energy per atom (eV/atom) a structure of a given composition is compared with.

    ``seed_max`` (seed 001): the seed set's highest energy, whatever the composition.
    ``composition_fit``: ``sum_i x_i mu_i + offset``, with per-element energies ``mu_i``
    fitted to the seed energies by least squares and ``offset`` the seeds' largest residual, so
    every seed lies on or below it. In a family whose elements bind very differently (Al-Cu-Mg:
    Cu -3.5, Mg -1.5 eV/atom) the highest seed energy is that of the seed richest in the weakly
    bound element, and a composition-blind threshold would reject every cell richer in it.

    Attributes:
        elements: Element order of ``potentials``.
        potentials: Fitted ``mu_i`` (eV/atom), or ``None`` for ``seed_max``.
        offset: Highest seed energy (``seed_max``) or largest residual (eV/atom).
    """

    elements: tuple[str, ...]
    potentials: tuple[float, ...] | None
    offset: float

    @classmethod
    def from_seeds(
        cls,
        compositions: Sequence[Mapping[str, float]],
        energies: Sequence[float],
        mode: EnergyReferenceMode = "seed_max",
    ) -> EnergyReference:
        """The reference of seeds with these atomic fractions and energies (eV/atom).

        Raises:
            ValueError: no seeds, or lengths differ.
        """
        if not energies or len(compositions) != len(energies):
            raise ValueError(
                f"need one composition per seed energy, got {len(compositions)} and {len(energies)}"
            )
        if mode == "seed_max":
            return cls((), None, float(max(energies)))
        elements = tuple(sorted({el for c in compositions for el in c}))
        fractions = np.array([[c.get(el, 0.0) for el in elements] for c in compositions])
        values = np.asarray(energies, dtype=float)
        potentials, *_ = np.linalg.lstsq(fractions, values, rcond=None)
        residual = float(np.max(values - fractions @ potentials))
        return cls(elements, tuple(float(mu) for mu in potentials), residual)

    def at(self, composition: Mapping[str, float]) -> float:
        """The reference energy (eV/atom) at these atomic fractions (elements the seeds lacked
        count at the mean fitted energy)."""
        if self.potentials is None:
            return self.offset
        mu = dict(zip(self.elements, self.potentials, strict=True))
        fallback = float(np.mean(self.potentials))
        total = sum(composition.values())
        return self.offset + sum(x * mu.get(el, fallback) for el, x in composition.items()) / total
