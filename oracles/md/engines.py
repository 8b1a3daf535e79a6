"""MD engines behind one interface: LAMMPS in-process and any ASE calculator (named calculators from entry points), with the thermostat, velocities and trajectory record they share."""

from __future__ import annotations

import functools
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import units
from ase.calculators.calculator import Calculator
from ase.md.nose_hoover_chain import NoseHooverChainNVT
from ase.md.verlet import VelocityVerlet
from ase.optimize import FIRE
from pymatgen.core import Element, Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from amloop.oracles.base import OracleFailed, OracleSetupError
from amloop.oracles.campaign_potential import COMMITTEE_PREFIX
from amloop.oracles.lammps import BAR_TO_GPA, LammpsOracle, LammpsSession
from amloop.oracles.registry import load_entry_point, plugin_entry_points

#: Kinetic energy (eV) of 1 amu moving at 1 Å/ps.
AMU_A2_PER_PS2_TO_EV = 1.0 / (1000.0 * units.fs) ** 2


EngineFactory = Callable[[Structure], "MDEngine"]


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
    """A new calculator of the name registered here or by an ``amloop.calculators`` entry point,
    or (``committee:/path``) the newest committee potential fitted in that folder.

    Raises:
        OracleSetupError: no such name, or its entry point does not load.
    """
    if name.startswith(COMMITTEE_PREFIX):  # the campaign's own potential (amloop mlp fit)
        from amloop.oracles.mlp.backends import committee_calculator

        return committee_calculator(name.removeprefix(COMMITTEE_PREFIX))
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
