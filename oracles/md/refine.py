"""Refinement of a generated amorphous cell: relax, anneal briefly (optionally cooling down to
room temperature at a melt-quench's rate), relax.

A denoised glass from the generator tends to have the right pair distances on average but
strained local environments, and a volume pulled towards its family's mean (a Cu-rich Cu-Zr
cell decoded at -9 GPa, a Zr-rich one at +7 GPa), so its energy lies well above a
melt-quenched cell's. A short relaxation (FIRE) removes the close contacts and rescales the
cell to zero pressure, a short NVT anneal lets strained clusters rearrange (an anneal near the
glass transition followed by a cooling at the melt-quench's rate repeats the part of the quench
that sets a glass's energy), and a final relaxation (again to zero pressure) brings the cell to its local minimum: what a melt-quench's
last stages and volume search do, for a fraction of its cost. Whether the cell crystallised on the
way is checked by its bond-angle phase (:func:`generator.phase.classify_phase`).

Units: forces in eV/Å, temperatures in K, durations in ps, energies in eV/atom.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from amloop.generator.phase import Phase, atom_labels, classify_phase
from amloop.oracles.md.engines import (
    Deadline,
    EngineFactory,
    MDEngine,
    maxwell_boltzmann,
    steps_for,
)
from amloop.oracles.md.protocol import cooling_stages, sample_every, simulate


@dataclass(frozen=True)
class RefineProtocol:
    """The refinement's settings.

    Attributes:
        fmax_eV_A: Both relaxations stop when every force is below this (eV/Å).
        max_relax_steps: ... or after this many FIRE steps each.
        anneal_ps: NVT between the relaxations (ps); 0 relaxes once only.
        anneal_temperature_K: Thermostat target of the anneal (K).
        cooling_rate_K_per_ps: After the anneal, cool from ``anneal_temperature_K`` to
            ``final_temperature_K`` at this rate (K/ps, in stages as a melt-quench's,
            :func:`oracles.md.protocol.cooling_stages`); ``None`` relaxes straight from the
            anneal.
        final_temperature_K: Where the cooling ends (K).
        thermostat_damping_fs: Relaxation time of the thermostat (fs).
        pressure_tolerance_GPa: Each relaxation rescales the cell (isotropically) until the
            relaxed cell's |pressure| is below this (GPa); ``None`` keeps the cell as given.
        max_volume_steps: Most rescalings per relaxation.
    """

    fmax_eV_A: float = 0.05
    max_relax_steps: int = 500
    anneal_ps: float = 2.0
    anneal_temperature_K: float = 300.0
    cooling_rate_K_per_ps: float | None = None
    final_temperature_K: float = 300.0
    thermostat_damping_fs: float = 100.0
    pressure_tolerance_GPa: float | None = 0.5
    max_volume_steps: int = 8

    def schedule(self) -> list[tuple[float, float]]:
        """Thermostat target (K) and duration (ps) of every NVT stage: the anneal, then the
        cooling stages (if any)."""
        stages = [(self.anneal_temperature_K, self.anneal_ps)] if self.anneal_ps > 0 else []
        if (
            stages
            and self.cooling_rate_K_per_ps
            and self.anneal_temperature_K > (self.final_temperature_K)
        ):
            stages += cooling_stages(
                self.anneal_temperature_K,
                self.final_temperature_K,
                self.cooling_rate_K_per_ps,
                self.thermostat_damping_fs,
            )
        return stages


@dataclass(frozen=True)
class Refinement:
    """What :func:`refine_cell` did to one cell.

    Attributes:
        structure: The refined cell (atoms wrapped).
        energy_before: Energy per atom of the cell as given (eV/atom).
        energy_after: Energy per atom of the refined cell (eV/atom).
        relax_steps: FIRE steps of both relaxations.
        anneal_ps: Simulated anneal and cooling time (ps).
        pressure_GPa: Pressure of the refined cell (GPa).
        volume_change: Relative volume change of the cell, refined over given.
        phase: Phase of the refined cell (``"amorphous"`` unless it crystallised).
        crystalline_fraction: Fraction of atoms with an FCC/BCC/HCP environment.
        core_s: CPU seconds the refinement took in this process.
    """

    structure: Structure
    energy_before: float
    energy_after: float
    relax_steps: int
    anneal_ps: float
    pressure_GPa: float
    volume_change: float
    phase: Phase
    crystalline_fraction: float
    core_s: float

    @property
    def crystallised(self) -> bool:
        return self.phase != "amorphous"

    def summary(self) -> dict[str, float | int | str]:
        """The numbers, for a candidate's provenance (units in the keys)."""
        return {
            "energy_before_eV_per_atom": self.energy_before,
            "energy_after_eV_per_atom": self.energy_after,
            "relax_steps": self.relax_steps,
            "anneal_ps": self.anneal_ps,
            "pressure_GPa": self.pressure_GPa,
            "volume_change": self.volume_change,
            "phase": self.phase,
            "crystalline_fraction": self.crystalline_fraction,
            "core_s": self.core_s,
        }


def refine_cell(
    structure: Structure,
    make_engine: EngineFactory,
    protocol: RefineProtocol | None = None,
    *,
    seed: int = 0,
    timeout_s: float = math.inf,
) -> Refinement:
    """Relax ``structure``, anneal it (and cool it, with ``protocol.cooling_rate_K_per_ps``)
    and relax it again.

    Args:
        structure: A generated cell (periodic, ordered).
        make_engine: Makes the MD engine for a structure (the campaign's cheap potential), e.g.
            ``LammpsEngine.factory("CuZr_mm.eam.fs")`` or the ``md`` oracle's ``make_engine``.
        protocol: The settings (defaults of :class:`RefineProtocol` if omitted).
        seed: Seed of the anneal's initial velocities.
        timeout_s: Wall-clock limit (s).

    Raises:
        OracleFailed: the MD failed (NaN, blow-up) or the timeout passed.
    """
    p = protocol or RefineProtocol()
    started = time.process_time()
    deadline = Deadline(timeout_s)
    n = len(structure)
    with make_engine(structure) as engine:
        engine.run(0)  # LAMMPS tallies energies only on a step it has run
        before = engine.get_potential_energy() / n
        volume = engine.get_volume()
        steps = relax(engine, p)
        stages = p.schedule()
        annealed_ps = 0.0
        if stages:
            engine.set_velocities(
                maxwell_boltzmann(
                    engine.masses, p.anneal_temperature_K, np.random.default_rng(seed)
                )
            )
            for temperature_K, duration_ps in stages:
                engine.set_thermostat(temperature_K, p.thermostat_damping_fs)
                n_steps = steps_for(duration_ps, engine)
                simulate(
                    engine,
                    n_steps,
                    every=sample_every(engine, 50.0),
                    temperature_K=temperature_K,
                    deadline=deadline,
                )
                annealed_ps += n_steps * engine.timestep_fs / 1000.0
            engine.set_velocities(np.zeros((n, 3)))
            steps += relax(engine, p)
        deadline.check()
        engine.run(0)
        after = engine.get_potential_energy() / n
        pressure = engine.get_pressure()
        volume_change = engine.get_volume() / volume - 1.0
        refined = engine.get_structure()
    labels = atom_labels(refined)
    return Refinement(
        structure=refined,
        energy_before=before,
        energy_after=after,
        relax_steps=steps,
        anneal_ps=annealed_ps,
        pressure_GPa=pressure,
        volume_change=volume_change,
        phase=classify_phase(refined),
        crystalline_fraction=sum(label != "other" for label in labels) / n,
        core_s=time.process_time() - started,
    )


#: Bulk modulus assumed for the first rescaling of :func:`relax` (GPa; metallic glasses and
#: oxides lie within 30-200); later steps use the secant of the pressures met.
BULK_GUESS_GPA = 100.0
#: Largest relative volume change of one rescaling.
MAX_VOLUME_STEP = 0.08


def relax(engine: MDEngine, protocol: RefineProtocol) -> int:
    """Relax the positions (FIRE) at rest and, with ``protocol.pressure_tolerance_GPa``,
    rescale the cell towards zero pressure between relaxations: a step of ``P / B`` in
    ``ln V`` (B from the secant of the last two relaxed pressures, :data:`BULK_GUESS_GPA`
    first), at most :data:`MAX_VOLUME_STEP`, until ``|P|`` is within the tolerance or
    ``protocol.max_volume_steps`` rescalings are done. Returns the FIRE steps taken."""
    steps = engine.minimize(protocol.fmax_eV_A, protocol.max_relax_steps)
    if protocol.pressure_tolerance_GPa is None:
        return steps
    engine.run(0)  # LAMMPS tallies the pressure only on a step it has run
    points = [(math.log(engine.get_volume()), engine.get_pressure())]
    for _ in range(protocol.max_volume_steps):
        pressure = points[-1][1]
        if abs(pressure) <= protocol.pressure_tolerance_GPa:
            break
        bulk = BULK_GUESS_GPA
        if len(points) > 1:
            (v0, p0), (v1, p1) = points[-2:]
            if v1 != v0 and (secant := -(p1 - p0) / (v1 - v0)) > 0:
                bulk = secant
        change = max(-MAX_VOLUME_STEP, min(MAX_VOLUME_STEP, pressure / bulk))
        engine.scale_volume(math.exp(change))
        steps += engine.minimize(protocol.fmax_eV_A, protocol.max_relax_steps)
        engine.run(0)
        points.append((math.log(engine.get_volume()), engine.get_pressure()))
    return steps
