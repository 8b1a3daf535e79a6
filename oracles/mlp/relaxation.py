"""Relaxation on a potential (FIRE or BFGS, positions and cell), watched for exploding energies, collapsing cells and fused atoms."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ase import Atoms
from ase.filters import FrechetCellFilter
from ase.neighborlist import neighbor_list
from ase.optimize import BFGS, FIRE

from amloop.oracles.base import OracleFailed

Optimizer = Literal["FIRE", "BFGS"]


OPTIMIZERS = {"FIRE": FIRE, "BFGS": BFGS}


@dataclass(frozen=True)
class Relaxation:
    """Outcome of one relaxation.

    Attributes:
        steps: Optimiser steps taken.
        converged: Whether the largest force (and cell force) fell below ``fmax``.
    """

    steps: int
    converged: bool


def energy_per_atom(atoms: Atoms, *, max_abs: float, stage: str) -> float:
    """Potential energy per atom (eV/atom) of ``atoms`` with its calculator, checked.

    Raises:
        OracleFailed: NaN or infinite energy, or ``|E| > max_abs`` eV/atom (exploding).
    """
    energy = float(atoms.get_potential_energy()) / len(atoms)
    if not math.isfinite(energy):
        raise OracleFailed(f"non-finite energy ({stage}): {energy} eV/atom")
    if abs(energy) > max_abs:
        raise OracleFailed(f"exploding energy ({stage}): {energy:.4g} eV/atom, |E| > {max_abs}")
    return energy


def relax(
    atoms: Atoms,
    *,
    fmax: float,
    max_steps: int,
    relax_cell: bool = True,
    optimizer: Optimizer = "FIRE",
    max_abs_energy: float = 20.0,
    min_distance: float = 0.0,
    deadline: float = math.inf,
    observe: Callable[[int], None] | None = None,
) -> Relaxation:
    """Relax ``atoms`` (with its calculator attached) in place, watching every step.

    Args:
        atoms: Structure with an ASE calculator.
        fmax: Force tolerance (eV/Å; with ``relax_cell`` also on the cell degrees of freedom).
        max_steps: Most optimiser steps.
        relax_cell: Relax the cell too (:class:`~ase.filters.FrechetCellFilter`, to zero stress).
        optimizer: ASE optimiser, ``"FIRE"`` or ``"BFGS"``.
        max_abs_energy: Energies beyond ± this (eV/atom) count as exploded.
        min_distance: Two atoms closer than this (Å) count as collapsed.
        deadline: ``time.perf_counter()`` value after which the relaxation is abandoned.
        observe: Called with the step index at the start and after every step, with the
            energy and forces of the current positions computed (e.g. to keep labels).

    Raises:
        OracleFailed: at the first step where the energy is non-finite or exploded, two atoms
            fused (the short-range holes of universal potentials), the volume left
            ``(V0 / 2, 2 V0)``, or the deadline passed.
    """
    volume0 = atoms.get_volume()

    def watch() -> None:
        energy_per_atom(atoms, max_abs=max_abs_energy, stage="during relaxation")
        ratio = atoms.get_volume() / volume0
        if not 0.5 < ratio < 2.0:
            raise OracleFailed(f"cell collapsed or exploded: V/V_input = {ratio:.3f}")
        distances = neighbor_list("d", atoms, min_distance) if min_distance > 0 else []
        if len(distances):
            raise OracleFailed(
                f"atoms collapsed during relaxation: {min(distances):.3f} Å < "
                f"min_distance {min_distance} Å"
            )
        if time.perf_counter() > deadline:
            raise OracleFailed("timeout during relaxation")

    target = FrechetCellFilter(atoms) if relax_cell else atoms
    opt = OPTIMIZERS[optimizer](target, logfile=None)
    opt.attach(watch, interval=1)
    if observe is not None:
        opt.attach(lambda: observe(int(opt.nsteps)), interval=1)
    converged = bool(opt.run(fmax=fmax, steps=max_steps))
    return Relaxation(steps=int(opt.nsteps), converged=converged)
