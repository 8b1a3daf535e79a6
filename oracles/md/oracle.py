"""The ``md`` oracle: melt-quench (or a given structure), then per temperature the diffusivity of every species and the Arrhenius activation energy."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import ase
import numpy as np
from ase.calculators.calculator import Calculator
from pymatgen.core import Element, Structure

from amloop.oracles.base import Oracle, OracleFailed, OracleResult, OracleSetupError
from amloop.oracles.diffusion import (
    ArrheniusFit,
    DiffusionFit,
    arrhenius_fit,
    fit_diffusivities,
    fit_lags,
)
from amloop.oracles.lammps import LammpsOracle
from amloop.oracles.md.engines import (
    AseEngine,
    Deadline,
    EngineFactory,
    LammpsEngine,
    MDEngine,
    calculator_names,
    maxwell_boltzmann,
    named_calculator,
    steps_for,
)
from amloop.oracles.md.protocol import (
    MeltQuench,
    VolumeSearch,
    run_melt_quench,
    sample_every,
    simulate,
    volume_search,
)
from amloop.state.schema import PropertyValue


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
        every = sample_every(engine, self.sample_interval_fs)
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
