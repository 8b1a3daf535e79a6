"""The ``md`` oracle: melt-quench (or a given structure), then per temperature the diffusivity of every species and the Arrhenius activation energy."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any, ClassVar, Literal

import ase
import numpy as np
from ase.calculators.calculator import Calculator
from pydantic import AfterValidator, BeforeValidator, Field
from pymatgen.core import Structure

from amloop.oracles.base import (
    Oracle,
    OracleFailed,
    OracleOptions,
    OracleResult,
    OracleSetupError,
    element_symbol,
)
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
from amloop.oracles.mlp.committee import CommitteeCalculator
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
        raise ValueError(f"expected numbers, got {value!r}") from None


Numbers = Annotated[tuple[float, ...], BeforeValidator(_floats)]


class MDOptions(OracleOptions):
    """Options of the ``md`` oracle."""

    engine: Literal["lammps", "ase"] = Field(
        "lammps",
        description="`lammps` (classical potential, in-process) or `ase` (any ASE calculator)",
    )
    potential: str | None = Field(
        None, description="the LAMMPS potential (as for `lammps`), `engine: lammps`"
    )
    pair_style: str | None = Field(None, description="as for `lammps`")
    library: str | None = Field(None, description="as for `lammps`")
    meam_elements: str | None = Field(None, description="as for `lammps`")
    calculator: str | Calculator | None = Field(
        None,
        description="`engine: ase`: `chgnet`, `7net-0` (the MLPs), `emt`, `campaign` (the "
        "campaign's own committee, `amloop mlp fit`) or `committee:/path`; more through "
        "`amloop.calculators` entry points (§6)",
    )
    committee_md: Literal["mean", "one_member"] = Field(
        "mean",
        description="with a committee calculator (`campaign`, `committee:/path`): integrate "
        "with the members' mean (one force call per member and step) or with its first member "
        "alone (as many times faster; benchmarks/mlp.py measures both)",
    )
    temperatures: Numbers = Field(
        (1500.0,), description='diffusion temperatures (K): a number, a list or `"1000,1500,2000"`'
    )
    species: Annotated[str | None, AfterValidator(element_symbol)] = Field(
        None,
        description="element whose D is `diffusivity`",
        json_schema_extra={"default": "all atoms"},
    )
    report_temperature_K: float | None = Field(
        None,
        gt=0,
        description="temperature of `diffusivity` (K); interpolated through the Arrhenius fit "
        "if not simulated",
        json_schema_extra={"default": "lowest temperature"},
    )
    timestep_fs: float = Field(2.0, gt=0, le=10, description="time step (fs)")
    equilibration_ps: float = Field(
        5.0, gt=0, description="NVT before each volume search / production (ps)"
    )
    production_ps: float = Field(
        20.0, gt=0, description="NVT production per temperature (ps; MPMorph: 20)"
    )
    sample_interval_fs: float = Field(50.0, gt=0, description="time between stored frames (fs)")
    volume_search: bool = Field(
        True, description="search the zero-pressure volume at every temperature"
    )
    volume_factors: Numbers = Field(
        (0.8, 1.0, 1.2), description="first volumes of a search (factors of V)"
    )
    volume_ps: float = Field(4.0, gt=0, description="length of each volume-search run (ps)")
    pressure_tolerance_GPa: float = Field(
        0.5, gt=0, description="accepted mean pressure at the volume found (GPa)"
    )
    do_melt_quench: bool = Field(
        False, description="melt-quench the input before the diffusion runs"
    )
    melt_temperature_K: float = Field(2500.0, gt=0, description="melt temperature (K)")
    final_temperature_K: float = Field(
        300.0, gt=0, description="temperature the quench ends at (K)"
    )
    melt_ps: float = Field(10.0, gt=0, description="NVT at the melt before its volume search (ps)")
    quench_rate_K_per_ps: float = Field(100.0, gt=0, description="cooling rate (K/ps)")
    anneal_ps: float = Field(5.0, gt=0, description="NVT at the final temperature (ps)")
    thermostat_damping_fs: float = Field(
        100.0, gt=0, description="Nosé-Hoover relaxation time (fs)"
    )
    n_blocks: int = Field(5, ge=1, description="blocks of the production run for the error of D")
    fit_start: float = Field(
        0.2, ge=0, lt=1, description="start of the fitted MSD lag window (fraction of a block)"
    )
    fit_end: float = Field(
        0.6, gt=0, le=1, description="end of the fitted MSD lag window (fraction of a block)"
    )
    seed: int = Field(0, ge=0, description="seed of the initial velocities")
    snapshots_per_temperature: int = Field(
        0,
        ge=0,
        description="production frames per temperature handed out unlabelled (candidates of "
        "origin `md_snapshot`) for the campaign potential's active learning (`mlp:`); 0: none",
    )


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
        **options: :class:`MDOptions`.
    """

    type_name: ClassVar[str] = "md"
    properties: ClassVar[dict[str, str]] = {
        "diffusivity": "cm^2/s",
        "activation_energy": "eV",
        "density": "g/cm^3",
    }

    Options: ClassVar[type[MDOptions]] = MDOptions

    default_timeout_s: ClassVar[float] = 3600.0
    options: MDOptions

    def __init__(self, **settings: Any):
        """``name``, ``fidelity``, ``timeout_s`` and the :class:`MDOptions`."""
        super().__init__(**settings)
        o = self.options
        if not o.temperatures or min(o.temperatures) <= 0:
            raise OracleSetupError(f"temperatures must be positive, got {o.temperatures!r}")
        self.report_temperature_K = o.report_temperature_K or min(o.temperatures)
        if self.report_temperature_K not in o.temperatures and len(o.temperatures) < 2:
            raise OracleSetupError(
                "report_temperature_K is not simulated: give two or more temperatures to "
                "interpolate D through the Arrhenius fit"
            )
        self.fit_window = (o.fit_start, o.fit_end)
        every = max(1, round(o.sample_interval_fs / o.timestep_fs))
        try:
            fit_lags(
                math.ceil(round(o.production_ps * 1000.0 / o.timestep_fs) / every),
                o.n_blocks,
                self.fit_window,
            )
        except ValueError as exc:
            raise OracleSetupError(f"production run too short for the MSD fit: {exc}") from None
        self.protocol = MeltQuench(
            melt_temperature_K=o.melt_temperature_K,
            final_temperature_K=o.final_temperature_K,
            melt_ps=o.melt_ps,
            volume_factors=o.volume_factors,
            volume_ps=o.volume_ps,
            pressure_tolerance_GPa=o.pressure_tolerance_GPa,
            quench_rate_K_per_ps=o.quench_rate_K_per_ps,
            anneal_ps=o.anneal_ps,
            thermostat_damping_fs=o.thermostat_damping_fs,
            sample_interval_fs=o.sample_interval_fs,
        )
        self._engine_provenance: dict[str, Any]
        self.make_engine: EngineFactory
        self.potential: LammpsOracle | None = None
        if o.engine == "lammps":
            if o.potential is None:
                raise OracleSetupError("engine 'lammps' needs a potential (file or shipped name)")
            self.potential = LammpsOracle(
                potential=o.potential,
                pair_style=o.pair_style,
                library=o.library,
                meam_elements=o.meam_elements,
                timeout_s=self.timeout_s,
            )
            self.make_engine = functools.partial(
                LammpsEngine, potential=self.potential, timestep_fs=o.timestep_fs
            )
            self._engine_provenance = self.potential.potential_provenance()
        else:
            calc = self._calculator(o.calculator)
            if isinstance(calc, CommitteeCalculator) and o.committee_md == "one_member":
                calc = calc.members[0]
            self.make_engine = AseEngine.factory(calc, timestep_fs=o.timestep_fs)
            self._engine_provenance = {
                "code": "ase",
                "version": ase.__version__,
                "calculator": f"{type(calc).__module__}.{type(calc).__qualname__}",
                **({"calculator_name": o.calculator} if isinstance(o.calculator, str) else {}),
                "calculator_package": _calculator_package(calc),
                "committee_md": o.committee_md,
            }

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
        rng = np.random.default_rng(self.options.seed)
        provenance: dict[str, Any] = {"natoms": len(structure)}
        with self.make_engine(structure) as engine:
            if self.options.do_melt_quench:
                report = run_melt_quench(engine, self.protocol, rng, deadline)
                provenance["melt_quench"] = asdict(report)
            start = engine.get_cell(), engine.get_positions()
            quenched = engine.get_structure()
            runs, last_frames, snapshots = [], [], []
            for temperature in self.options.temperatures:
                run, frames = self._diffuse(engine, start, temperature, rng, deadline)
                runs.append(run)
                snapshots.extend(frames)
                last_frames.append(engine.get_structure())
        if self.options.do_melt_quench:
            relaxed = quenched
        elif self.report_temperature_K in self.options.temperatures:
            relaxed = last_frames[self.options.temperatures.index(self.report_temperature_K)]
        else:
            relaxed = last_frames[0]
        properties, tables = self._properties(runs)
        if self.options.do_melt_quench:
            properties["density"] = PropertyValue(value=float(relaxed.density), unit="g/cm^3")
        provenance.update(tables)
        provenance["wall_s"] = time.perf_counter() - deadline.started
        return OracleResult(
            properties=properties,
            relaxed_structure=relaxed,
            provenance=provenance,
            snapshots=snapshots,
        )

    def _diffuse(
        self,
        engine: MDEngine,
        start: tuple[np.ndarray, np.ndarray],
        temperature: float,
        rng: np.random.Generator,
        deadline: Deadline,
    ) -> tuple[TemperatureRun, list[Structure]]:
        """Equilibrate, search the volume (optionally) and run production at one temperature;
        with ``snapshots_per_temperature``, that many production frames spread evenly over the
        run (the last included), wrapped into the cell."""
        every = sample_every(engine, self.options.sample_interval_fs)
        engine.set_configuration(*start)
        engine.set_velocities(maxwell_boltzmann(engine.masses, temperature, rng))
        engine.set_thermostat(temperature, self.options.thermostat_damping_fs)
        common: dict[str, Any] = {
            "every": every,
            "temperature_K": temperature,
            "deadline": deadline,
        }
        simulate(engine, steps_for(self.options.equilibration_ps, engine), **common)
        search = None
        if self.options.volume_search:
            search = volume_search(
                engine,
                temperature,
                factors=self.options.volume_factors,
                duration_ps=self.options.volume_ps,
                every=every,
                deadline=deadline,
                tolerance_GPa=self.options.pressure_tolerance_GPa,
            )
        frames = math.ceil(steps_for(self.options.production_ps, engine) / every)
        trace = simulate(engine, frames * every, record_positions=True, **common)
        assert trace.positions is not None
        fits = fit_diffusivities(
            trace.positions,
            engine.symbols,
            engine.masses,
            every * engine.timestep_fs / 1000.0,
            n_blocks=self.options.n_blocks,
            fit_window=self.fit_window,
        )
        run = TemperatureRun(
            temperature_K=temperature,
            mean_temperature_K=float(trace.temperature_K.mean()),
            volume_A3=engine.get_volume(),
            mean_pressure_GPa=float(trace.pressure_GPa.mean()),
            volume=search,
            fits=fits,
        )
        wanted = min(self.options.snapshots_per_temperature, len(trace.positions))
        picked = np.linspace(len(trace.positions) - 1, 0, wanted, endpoint=False)[::-1]
        cell = engine.get_cell()
        snapshots = [
            Structure(
                cell,
                engine.symbols,
                trace.positions[k],
                coords_are_cartesian=True,
                to_unit_cell=True,
            )
            for k in picked.round().astype(int)
        ]
        return run, snapshots

    def _properties(
        self, runs: list[TemperatureRun]
    ) -> tuple[dict[str, PropertyValue], dict[str, Any]]:
        """Properties at the report temperature, and D(T) and Arrhenius tables for provenance.

        Every element gets ``diffusivity_<El>`` (and ``activation_energy_<El>``); the primary
        group (``species``, or all atoms) is also reported without suffix. An element whose D
        cannot be given at the report temperature (not simulated there, no Arrhenius fit) is
        left out; for the primary group that fails the evaluation.
        """
        primary = self.options.species or "all"
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
            "engine": self.options.engine,
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
                **self.options.parameters(
                    exclude={"potential", "pair_style", "library", "meam_elements", "calculator"}
                ),
                "melt_quench": asdict(self.protocol),
            },
        }


def _calculator_package(calc: Calculator) -> str:
    """``package version`` of the library whose class the calculator is (or wraps: the first
    class of its MRO outside amloop), e.g. ``chgnet 0.4.2``."""
    from amloop.oracles.mlp.backends import package_version

    for cls in type(calc).__mro__:
        package = cls.__module__.split(".")[0]
        if package not in ("amloop", "builtins"):
            return f"{package} {package_version(package)}"
    return "amloop"


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
