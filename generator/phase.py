"""Phase label of a structure (FCC, BCC, HCP or amorphous) from bond-angle histograms.

The P-CDVAE phase head (seed 001) needs a phase for every training structure; data from the
loop carries none, so it is derived here. Per atom, the neighbour shell follows Ackland & Jones
(PRB 73, 054104, 2006): ``r0²`` is the mean squared distance of the 6 nearest neighbours and the
shell holds every neighbour with ``r² < 1.55 r0²``. The cosines of all angles between shell
bonds are counted in Ackland & Jones's eight bins (``χ0 ... χ7``) and the atom takes the ideal
lattice (FCC, HCP with 12 neighbours, BCC with 14) whose histogram is nearest in L1 distance,
when the shell size matches and the distance is at most :data:`MAX_MISMATCH` of the number of
angles; otherwise it is "other". The structure's phase is the most common lattice label when at
least :data:`MIN_MAJORITY` of the atoms carry it, else ``"amorphous"``.
"""

from __future__ import annotations

from typing import Literal, cast

import numpy as np
from pymatgen.core import Structure

from amloop.state.memo import BoundedMemo
from amloop.state.structures import structure_digest

Phase = Literal["fcc", "bcc", "hcp", "amorphous"]
#: Phase classes of the phase head, in its output order.
PHASES: tuple[Phase, ...] = ("fcc", "bcc", "hcp", "amorphous")
#: Bin edges of bond-angle cosines (Ackland & Jones, Table I).
COSINE_EDGES = np.array([-1.0, -0.945, -0.915, -0.755, -0.195, 0.195, 0.245, 0.795, 1.0])
#: Ideal histograms (χ0 ... χ7) of the perfect lattices.
IDEAL: dict[str, np.ndarray] = {
    "fcc": np.array([6, 0, 0, 24, 12, 0, 24, 0]),
    "hcp": np.array([3, 0, 6, 21, 12, 0, 24, 0]),
    "bcc": np.array([7, 0, 0, 36, 12, 0, 36, 0]),
}
#: Largest L1 histogram distance, as a fraction of the number of angles, to accept a lattice.
MAX_MISMATCH = 0.15
#: Fraction of atoms that must share a lattice label for the structure to take it.
MIN_MAJORITY = 0.5
_SHELL_FACTOR = 1.55


def _shells(structure: Structure) -> list[np.ndarray]:
    """Bond vectors (Å) of every atom's Ackland-Jones shell, one ``(k, 3)`` array per atom."""
    radius = 2.0 * (structure.volume / len(structure)) ** (1.0 / 3.0)
    while True:
        centres, neighbours, images, _ = structure.get_neighbor_list(radius, exclude_self=True)
        if np.bincount(centres, minlength=len(structure)).min() >= 6:
            break
        radius *= 1.5
    frac = structure.frac_coords
    vectors = structure.lattice.get_cartesian_coords(frac[neighbours] + images - frac[centres])
    shells = []
    for atom in range(len(structure)):
        bonds = vectors[centres == atom]
        squared = np.einsum("ij,ij->i", bonds, bonds)
        r0_squared = np.sort(squared)[:6].mean()
        shells.append(bonds[squared < _SHELL_FACTOR * r0_squared])
    return shells


def atom_labels(structure: Structure) -> list[str]:
    """Per-atom lattice label: ``"fcc"``, ``"bcc"``, ``"hcp"`` or ``"other"``."""
    labels = []
    for bonds in _shells(structure):
        unit = bonds / np.linalg.norm(bonds, axis=1, keepdims=True)
        upper = np.triu_indices(len(unit), k=1)
        cosines = np.clip((unit @ unit.T)[upper], -1.0, 1.0)
        chi, _ = np.histogram(cosines, bins=COSINE_EDGES)
        best, best_mismatch = "other", MAX_MISMATCH
        for name, ideal in IDEAL.items():
            if ideal.sum() != cosines.size:
                continue
            mismatch = np.abs(chi - ideal).sum() / cosines.size
            if mismatch <= best_mismatch:
                best, best_mismatch = name, mismatch
        labels.append(best)
    return labels


#: Phases kept by :func:`classify_phase` (least recently used dropped).
PHASE_CACHE_SIZE = 100_000
_phases: BoundedMemo[Phase] = BoundedMemo(PHASE_CACHE_SIZE)


def classify_phase(structure: Structure) -> Phase:
    """Phase of ``structure``: its majority lattice, or ``"amorphous"`` (see module docstring).

    Remembered by the structure's content (:func:`state.structures.structure_digest`): every
    fine-tuning of the generator labels its data again (6 ms per 54-atom structure)."""
    return _phases.get(structure_digest(structure), lambda: _majority_phase(structure))


def _majority_phase(structure: Structure) -> Phase:
    names, counts = np.unique(
        [label for label in atom_labels(structure) if label != "other"], return_counts=True
    )
    if counts.size and counts.max() >= MIN_MAJORITY * len(structure):
        return cast(Phase, str(names[int(np.argmax(counts))]))
    return "amorphous"
