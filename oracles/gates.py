"""Structure gates shared by the oracles: refuse what no oracle should run, drop what failed.

- :func:`check_min_distance` refuses overlapping atoms before any work is spent on them.
- :func:`energy_gate` is the energy filter of seed paper 001 (section 4.3) for decoded
  structures: after relaxation the per-atom energy must not exceed the highest per-atom energy
  of the training data, and the structure as decoded (before relaxation) must already be within
  a margin of that threshold, so that only near-relaxed decodes count as correct.
"""

from __future__ import annotations

import math

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
