"""The MPMorph-style protocol on any engine: NVT runs, the Birch-Murnaghan volume search, the staged quench with volume rescaling, the anneal, and melt-quench from a random packing."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import units
from pymatgen.core import Structure
from scipy.optimize import least_squares

from amloop.oracles.base import OracleFailed, OracleSetupError
from amloop.oracles.md.engines import (
    Deadline,
    EngineFactory,
    MDEngine,
    Trace,
    maxwell_boltzmann,
    steps_for,
)
from amloop.oracles.md.packing import random_packing

logger = logging.getLogger(__name__)


#: Smallest temperature step (K) of the quench stages, between which the volume is rescaled.
QUENCH_STAGE_K = 25.0


#: Shortest quench stage, in thermostat relaxation times: every stage starts a new thermostat
#: (both engines reset the Nosé-Hoover chain with its target), which needs about one relaxation
#: time to act; stages of a few steps (25 K at 4000 K/ps) left a fast quench uncooled.
QUENCH_STAGE_DAMPINGS = 2.0


#: Largest relative volume change of one pressure rescaling step.
MAX_RESCALE = 0.02


#: Simulated time between volume rescalings during the quench (ps).
RESCALE_PS = 0.5


def simulate(
    engine: MDEngine,
    steps: int,
    *,
    every: int,
    temperature_K: float | None,
    deadline: Deadline,
    record_positions: bool = False,
    max_energy_per_atom: float = 20.0,
) -> Trace:
    """Run ``steps`` steps with the engine's current thermostat, sampling every ``every``.

    Args:
        engine: The engine, thermostat already set.
        steps: Number of steps; the last interval is shorter when ``every`` does not divide it.
        every: Steps between samples.
        temperature_K: Target temperature (K) for the blow-up check; ``None`` in NVE, where the
            starting temperature is the reference.
        deadline: Wall-clock budget, checked after every chunk.
        record_positions: Whether to keep the unwrapped positions of every sample.
        max_energy_per_atom: Energies beyond ± this (eV/atom) count as exploded.

    Raises:
        OracleFailed: NaN, exploding energy, a temperature beyond ``3 T + 1000 K``, the timeout.
    """
    reference = engine.get_temperature() if temperature_K is None else temperature_K
    limit = 3.0 * reference + 1000.0
    ends = np.append(np.arange(every, steps, every), steps)
    columns = np.zeros((4, len(ends)))
    frames = np.zeros((len(ends), engine.n_atoms, 3)) if record_positions else None
    done = 0
    for i, end in enumerate(ends):
        engine.run(int(end - done))
        done = end
        deadline.check()
        potential, kinetic = engine.get_potential_energy(), engine.get_kinetic_energy()
        temperature = 2.0 * kinetic / ((3 * engine.n_atoms - 3) * units.kB)
        if not (math.isfinite(potential) and math.isfinite(kinetic)):
            raise OracleFailed(f"NaN in the MD energies after {done} steps")
        if abs(potential) / engine.n_atoms > max_energy_per_atom:
            raise OracleFailed(f"exploding energy: {potential / engine.n_atoms:.3g} eV/atom")
        if temperature > limit:
            raise OracleFailed(
                f"temperature blow-up: {temperature:.0f} K with target {reference:.0f} K"
            )
        columns[:, i] = temperature, potential, potential + kinetic, engine.get_pressure()
        if frames is not None:
            frames[i] = engine.get_positions()
            if not np.all(np.isfinite(frames[i])):
                raise OracleFailed(f"NaN in the positions after {done} steps")
    time_ps = ends * engine.timestep_fs / 1000.0
    return Trace(time_ps, columns[0], columns[1], columns[2], columns[3], positions=frames)


def birch_murnaghan_pressure(
    volume: np.ndarray, v0: float, b0: float, b0_prime: float
) -> np.ndarray:
    """Third-order Birch-Murnaghan pressure (units of ``b0``) at ``volume`` (units of ``v0``)."""
    x = (v0 / volume) ** (2.0 / 3.0)
    return 1.5 * b0 * (x**3.5 - x**2.5) * (1.0 + 0.75 * (b0_prime - 4.0) * (x - 1.0))


def fit_pressure_volume(
    volumes: Sequence[float], pressures: Sequence[float]
) -> tuple[float, float]:
    """Zero-pressure volume and bulk modulus from P(V) points, as MPMorph fits them.

    A straight line gives the starting guess; with three or more points the third-order
    Birch-Murnaghan P(V) is fitted from there (the line is kept if that fit fails).

    Args:
        volumes: Volumes (Å³).
        pressures: Mean pressures (GPa) at those volumes.

    Returns:
        ``(V0, B0)``: zero-pressure volume (Å³) and bulk modulus there (GPa).

    Raises:
        OracleFailed: pressure does not fall with volume (no equation of state to fit).
    """
    v, p = np.asarray(volumes, dtype=float), np.asarray(pressures, dtype=float)
    slope, intercept = np.polyfit(v, p, 1)
    if slope >= 0.0:
        raise OracleFailed(
            f"volume search: pressure does not fall with volume (P {p.round(2).tolist()} GPa "
            f"at V {v.round(1).tolist()} Å³)"
        )
    v0 = -intercept / slope
    b0 = -slope * v0
    if len(v) >= 3:
        lower, upper = np.array([0.3 * v.min(), 1e-3, 1.0]), np.array([3.0 * v.max(), 1e4, 20.0])
        # a nearly flat line puts its zero far outside the fit's bounds: start from inside them
        start = np.clip(
            [v0, b0, 4.0], lower + 1e-6 * (upper - lower), upper - 1e-6 * (upper - lower)
        )
        fit = least_squares(
            lambda q: birch_murnaghan_pressure(v, *q) - p, x0=start, bounds=(lower, upper)
        )
        if fit.success:
            v0, b0 = float(fit.x[0]), float(fit.x[1])
    return float(v0), float(b0)


@dataclass
class VolumeSearch:
    """Outcome of :func:`volume_search`.

    Attributes:
        volume_A3: Zero-pressure volume found (Å³).
        bulk_modulus_GPa: Bulk modulus of the P(V) fit at that volume (GPa); ``None`` when the
            volume was found without a fit (:func:`next_volume`).
        pressure_GPa: Mean pressure over the second half of the last run, at that volume (GPa).
        pressure_error_GPa: Its standard error (GPa).
        temperature_K: Mean kinetic temperature of the last run (K).
        potential_energy_per_atom: Mean potential energy of the last run (eV/atom).
        points: ``(volume Å³, mean pressure GPa)`` of every run, in order.
    """

    volume_A3: float
    bulk_modulus_GPa: float | None
    pressure_GPa: float
    pressure_error_GPa: float
    temperature_K: float
    potential_energy_per_atom: float
    points: list[tuple[float, float]] = field(default_factory=list)


def next_volume(
    points: Sequence[tuple[float, float]], reference_volume: float, factors: Sequence[float]
) -> tuple[float, float | None]:
    """Where the volume search runs next (Å³), and the bulk modulus of its P(V) fit (GPa).

    Where P(V) falls with volume, the zero of its fit (:func:`fit_pressure_volume`), kept within
    20 % of the reference volume outside the explored range (MPMorph widens its search so). A
    small cell's P(V) may not fall, for two reasons: every run is under tension (a liquid
    started too dilute cavitates and its pressure stops depending on volume) or every run is
    under compression, and the search steps outside the explored range by the widest of
    ``factors``; or the pressures scatter around zero by more than their trend, and the search
    runs again at the explored volume with the smallest |P|. The bulk modulus is ``None``
    where no fit exists.

    Args:
        points: ``(volume Å³, mean pressure GPa)`` of the runs so far.
        reference_volume: Volume the search started from (Å³).
        factors: Volume factors of the first runs.
    """
    volumes = [v for v, _ in points]
    pressures = [p for _, p in points]
    try:
        volume, bulk = fit_pressure_volume(volumes, pressures)
    except OracleFailed:
        if max(pressures) < 0.0:
            return min(volumes) * min(factors), None
        if min(pressures) > 0.0:
            return max(volumes) * max(factors), None
        return min(points, key=lambda point: abs(point[1]))[0], None
    limits = (min(volumes) - 0.2 * reference_volume, max(volumes) + 0.2 * reference_volume)
    return min(max(volume, limits[0]), limits[1]), bulk


def volume_search(
    engine: MDEngine,
    temperature_K: float,
    *,
    factors: Sequence[float] = (0.8, 1.0, 1.2),
    duration_ps: float = 4.0,
    every: int,
    deadline: Deadline,
    tolerance_GPa: float = 0.5,
    max_iterations: int = 4,
) -> VolumeSearch:
    """MPMorph's equilibrium-volume search at one temperature, in NVT.

    From the current configuration (kept as the reference), runs NVT at each scaled volume,
    fits P(V) (:func:`fit_pressure_volume`), runs at the fitted zero-pressure volume, and
    repeats with that point added until its mean pressure is within ``tolerance_GPa``
    (:func:`next_volume` says where to go when P(V) does not fall with volume). The engine is
    left at the end of the last run, at the volume found.

    Args:
        engine: The engine, thermostat set to ``temperature_K``.
        temperature_K: Temperature (K).
        factors: Volume factors of the first runs, relative to the current volume.
        duration_ps: Length of each run (ps); the pressure is averaged over its second half.
        every: Steps between samples.
        deadline: Wall-clock budget.
        tolerance_GPa: Accepted |mean pressure| at the volume found (GPa).
        max_iterations: Most fits (each followed by a run at its volume).

    Raises:
        OracleFailed: no convergence.
    """
    ref_cell, ref_positions = engine.get_cell(), engine.get_positions()
    ref_volume = engine.get_volume()
    steps = steps_for(duration_ps, engine)
    points: list[tuple[float, float]] = []

    def run_at(volume: float) -> Trace:
        stretch = (volume / ref_volume) ** (1.0 / 3.0)
        engine.set_configuration(ref_cell * stretch, ref_positions * stretch)
        trace = simulate(engine, steps, every=every, temperature_K=temperature_K, deadline=deadline)
        points.append((volume, trace.mean_pressure()[0]))
        return trace

    for factor in factors:
        run_at(factor * ref_volume)
    for _ in range(max_iterations):
        volume, bulk = next_volume(points, ref_volume, factors)
        trace = run_at(volume)
        pressure, error = trace.mean_pressure()
        if abs(pressure) <= tolerance_GPa:
            return VolumeSearch(
                volume_A3=volume,
                bulk_modulus_GPa=bulk,
                pressure_GPa=pressure,
                pressure_error_GPa=error,
                temperature_K=float(trace.temperature_K.mean()),
                potential_energy_per_atom=float(trace.potential_energy.mean()) / engine.n_atoms,
                points=points,
            )
    raise OracleFailed(
        f"volume search at {temperature_K:.0f} K did not reach |P| <= {tolerance_GPa} GPa in "
        f"{max_iterations} fits: (V, P) = {[(round(v, 1), round(p, 2)) for v, p in points]}"
    )


def rescale_to_pressure(
    engine: MDEngine, pressure_GPa: float, bulk_modulus_GPa: float | None
) -> None:
    """Scale the volume by ``exp(P / 2B)`` (at most ±2 %) towards zero pressure.

    Half the linear-response step, since the bulk modulus of the fit (at the melt) is lower than
    the solid's on cooling: the correction then converges instead of overshooting. With an
    unknown bulk modulus (``None``: the melt's volume search found no P(V) fit) the step is ±2 %.
    """
    if bulk_modulus_GPa is None:
        change = math.copysign(MAX_RESCALE, pressure_GPa)
    else:
        change = max(-MAX_RESCALE, min(MAX_RESCALE, 0.5 * pressure_GPa / bulk_modulus_GPa))
    engine.scale_volume(math.exp(change))


@dataclass(frozen=True)
class MeltQuench:
    """An MPMorph-style melt-quench protocol (temperatures in K, durations in ps).

    Attributes:
        melt_temperature_K: Temperature of the melt and of its volume search.
        final_temperature_K: Temperature the quench ends at, and of the anneal.
        melt_ps: NVT at the melt temperature before the volume search.
        volume_factors: Volume factors of the first runs of the volume search at the melt.
        anneal_volume_factors: The same for the volume search that ends the anneal (narrower:
            a glass is stiffer than its melt, and expanding it by 20 % would break it).
        volume_ps: Length of each volume-search run (MPMorph: 4 ps).
        pressure_tolerance_GPa: Accepted |mean pressure| at the volumes found.
        quench_rate_K_per_ps: Cooling rate (K/ps; 100 K/ps = 1e14 K/s).
        anneal_ps: NVT at the final temperature before its volume search.
        thermostat_damping_fs: Relaxation time of the Nosé-Hoover thermostat (fs).
        sample_interval_fs: Time between samples of the thermodynamic state (fs).
    """

    melt_temperature_K: float = 2500.0
    final_temperature_K: float = 300.0
    melt_ps: float = 10.0
    volume_factors: tuple[float, ...] = (0.8, 1.0, 1.2)
    anneal_volume_factors: tuple[float, ...] = (0.96, 1.0, 1.04)
    volume_ps: float = 4.0
    pressure_tolerance_GPa: float = 0.5
    quench_rate_K_per_ps: float = 100.0
    anneal_ps: float = 5.0
    thermostat_damping_fs: float = 100.0
    sample_interval_fs: float = 50.0

    def __post_init__(self) -> None:
        if not 0.0 < self.final_temperature_K < self.melt_temperature_K:
            raise OracleSetupError("need 0 < final_temperature_K < melt_temperature_K")
        if min(self.quench_rate_K_per_ps, self.melt_ps, self.volume_ps, self.anneal_ps) <= 0:
            raise OracleSetupError("quench rate, melt_ps, volume_ps and anneal_ps must be positive")
        for factors in (self.volume_factors, self.anneal_volume_factors):
            if len(factors) < 2 or min(factors) <= 0:
                raise OracleSetupError("volume factors need two or more positive numbers")


@dataclass(frozen=True)
class SnapshotPlan:
    """Which configurations of a melt-quench are kept (as generator training structures).

    Attributes:
        every_ps: Simulated time between two kept configurations (ps): decorrelated frames.
        below_K: Keep from the first quench stage whose target is at or below this (K) on,
            through the anneal (the supercooled liquid and the glass).
    """

    every_ps: float = 1.0
    below_K: float = 1000.0


@dataclass(frozen=True)
class Snapshot:
    """One kept configuration: when (ps since the start of the quench), at which thermostat
    target (K), and the cell (atoms wrapped, as simulated: not relaxed)."""

    time_ps: float
    temperature_K: float
    structure: Structure


@dataclass
class MeltQuenchReport:
    """What :func:`run_melt_quench` did.

    Attributes:
        melt_volume: The volume search at the melt temperature.
        final_volume: The volume search at the end of the anneal; its last run is the final
            state (mean pressure, temperature and potential energy).
        simulated_ps: Total simulated time (ps).
        snapshots: The configurations kept under a :class:`SnapshotPlan`, oldest first.
    """

    melt_volume: VolumeSearch
    final_volume: VolumeSearch
    simulated_ps: float
    snapshots: list[Snapshot] = field(default_factory=list)


def sample_every(engine: MDEngine, interval_fs: float) -> int:
    return max(1, round(interval_fs / engine.timestep_fs))


#: The start is relaxed (FIRE, fixed cell) to this max force (eV/Å), in at most this many steps,
#: before the melt: a random packing's close contacts would otherwise release eV per atom into
#: the first picoseconds (CHGNet Li-Si-O packings melted at 2500 K reached 5000-9700 K).
START_FMAX_EV_A = 0.5


START_MIN_STEPS = 100


def cooling_stages(
    start_K: float, end_K: float, rate_K_per_ps: float, damping_fs: float
) -> list[tuple[float, float]]:
    """Thermostat target (K) and duration (ps) of each stage of a cooling from ``start_K`` to
    ``end_K`` at ``rate_K_per_ps``.

    Steps of 25 K at that rate, or fewer, larger steps where 25 K would last less than
    :data:`QUENCH_STAGE_DAMPINGS` thermostat relaxation times (``damping_fs``); the stages take
    ``(start_K - end_K) / rate_K_per_ps`` in all.
    """
    drop = start_K - end_K
    shortest_ps = QUENCH_STAGE_DAMPINGS * damping_fs / 1000.0
    step_K = max(QUENCH_STAGE_K, rate_K_per_ps * shortest_ps)
    n_stages = max(1, math.floor(drop / step_K + 1e-9))
    stage_ps = drop / n_stages / rate_K_per_ps
    return [(start_K - (k + 1) * drop / n_stages, stage_ps) for k in range(n_stages)]


def quench_schedule(protocol: MeltQuench) -> list[tuple[float, float]]:
    """The quench stages of ``protocol`` (:func:`cooling_stages` from the melt down)."""
    p = protocol
    return cooling_stages(
        p.melt_temperature_K, p.final_temperature_K, p.quench_rate_K_per_ps, p.thermostat_damping_fs
    )


def run_melt_quench(
    engine: MDEngine,
    protocol: MeltQuench,
    rng: np.random.Generator,
    deadline: Deadline,
    snapshots: SnapshotPlan | None = None,
) -> MeltQuenchReport:
    """Relax the start, melt, find the zero-pressure volume, quench, anneal and find it again.

    The quench lowers the thermostat's target in steps of 25 K at the set rate, or in larger
    steps where 25 K would last less than two thermostat relaxation times; every 0.5 ps
    of it the volume is rescaled by the mean pressure of that time (:func:`rescale_to_pressure`),
    so the glass forms near zero pressure. The anneal ends with a volume search at the final
    temperature, which leaves the engine at the zero-pressure volume. With ``snapshots``, a
    configuration is kept every ``every_ps`` from the quench stage at ``below_K`` through the
    anneal (the anneal then runs in pieces of that length, each restarting the thermostat's
    chain as a quench stage does).

    Raises:
        OracleFailed: the MD failed (NaN, blow-up, lost atoms), no volume was found, timeout.
    """
    p = protocol
    every = sample_every(engine, p.sample_interval_fs)
    started_steps, started = engine.steps_run, time.perf_counter()

    def nvt(temperature: float, duration_ps: float) -> Trace:
        engine.set_thermostat(temperature, p.thermostat_damping_fs)
        return simulate(
            engine,
            steps_for(duration_ps, engine),
            every=every,
            temperature_K=temperature,
            deadline=deadline,
        )

    def search(temperature: float, factors: tuple[float, ...]) -> VolumeSearch:
        return volume_search(
            engine,
            temperature,
            factors=factors,
            duration_ps=p.volume_ps,
            every=every,
            deadline=deadline,
            tolerance_GPa=p.pressure_tolerance_GPa,
        )

    kept: list[Snapshot] = []
    clock = {"ps": 0.0, "last": -math.inf}

    def keep(temperature: float, duration_ps: float) -> None:
        clock["ps"] += duration_ps
        if snapshots is None or temperature > snapshots.below_K:
            return
        if clock["ps"] - clock["last"] >= snapshots.every_ps - 1e-9:
            kept.append(Snapshot(clock["ps"], temperature, engine.get_structure()))
            clock["last"] = clock["ps"]

    engine.minimize(START_FMAX_EV_A, START_MIN_STEPS)
    engine.set_velocities(maxwell_boltzmann(engine.masses, p.melt_temperature_K, rng))
    nvt(p.melt_temperature_K, p.melt_ps)
    melt = search(p.melt_temperature_K, p.volume_factors)
    pressures: list[np.ndarray] = []
    for target_K, stage_ps in quench_schedule(p):
        pressures.append(nvt(target_K, stage_ps).pressure_GPa)
        keep(target_K, stage_ps)
        if len(pressures) * stage_ps >= RESCALE_PS:
            mean = float(np.concatenate(pressures).mean())
            rescale_to_pressure(engine, mean, melt.bulk_modulus_GPa)
            pressures = []
    pieces = 1 if snapshots is None else max(1, round(p.anneal_ps / snapshots.every_ps))
    for _ in range(pieces):
        nvt(p.final_temperature_K, p.anneal_ps / pieces)
        keep(p.final_temperature_K, p.anneal_ps / pieces)
    final = search(p.final_temperature_K, p.anneal_volume_factors)
    logger.info(
        "melt-quench of %d atoms: V_melt %.1f Å³, V_final %.1f Å³ at %.2f ± %.2f GPa, %.1f s",
        engine.n_atoms,
        melt.volume_A3,
        final.volume_A3,
        final.pressure_GPa,
        final.pressure_error_GPa,
        time.perf_counter() - started,
    )
    return MeltQuenchReport(
        melt_volume=melt,
        final_volume=final,
        simulated_ps=(engine.steps_run - started_steps) * engine.timestep_fs / 1000.0,
        snapshots=kept,
    )


def melt_quench(
    composition: Mapping[str, float],
    n_atoms: int,
    engine: EngineFactory,
    protocol: MeltQuench | None = None,
    *,
    volume_per_atom_A3: float | None = None,
    seed: int = 0,
    timeout_s: float = math.inf,
) -> Structure:
    """A melt-quenched amorphous cell of ``composition`` from a PACKMOL start.

    Args:
        composition: Element -> amount, e.g. ``{"Cu": 50, "Zr": 50}``.
        n_atoms: Number of atoms.
        engine: Makes the MD engine for a structure, e.g.
            ``LammpsEngine.factory("CuZr_mm.eam.fs")`` or ``AseEngine.factory(calculator)``.
        protocol: The melt-quench protocol (defaults of :class:`MeltQuench` if omitted).
        volume_per_atom_A3: Starting volume per atom (Å³); estimated if omitted.
        seed: Seed of the packing and of the initial velocities.
        timeout_s: Wall-clock limit (s).

    Returns:
        The last configuration at the final temperature and its zero-pressure volume (atoms
        wrapped).

    Raises:
        OracleSetupError: bad composition or engine configuration.
        OracleFailed: packing or MD failed, or the timeout.
    """
    start = random_packing(composition, n_atoms, volume_per_atom_A3=volume_per_atom_A3, seed=seed)
    with engine(start) as md:
        run_melt_quench(
            md, protocol or MeltQuench(), np.random.default_rng(seed), Deadline(timeout_s)
        )
        return md.get_structure()
