"""The ``mlp`` oracle: energy, relaxation and formation energy with a machine-learned potential, batched where the model allows."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ase import Atoms, units
from ase.units import GPa as EV_PER_A3_PER_GPA
from pydantic import Field
from pymatgen.core import Lattice, Structure

from amloop.oracles.base import Oracle, OracleFailed, OracleOptions, OracleResult, OracleSetupError
from amloop.oracles.campaign_potential import CAMPAIGN_MODEL, COMMITTEE_PREFIX
from amloop.oracles.gates import check_min_distance
from amloop.oracles.labels import ase_label
from amloop.oracles.mlp.backends import (
    DEFAULT_MODEL,
    load_backend,
    resolve_device,
)
from amloop.oracles.mlp.references import (
    REFERENCE_FMAX,
    REFERENCE_MAX_STEPS,
    REFERENCE_PROTOCOL,
    ReferenceCache,
    ReferenceEnergy,
    default_cache_dir,
    reference_candidates,
)
from amloop.oracles.mlp.relaxation import Optimizer, energy_per_atom, relax
from amloop.state.schema import Candidate, Cost, Evaluation, ForceLabel, PropertyValue

#: Relaxation steps whose energy, forces and stress are kept as labels besides the relaxed
#: cell's: the input and two decorrelated points on the way.
RELAXATION_LABEL_STEPS = (0, 10, 40)


def structure_of(atoms: Atoms) -> Structure:
    """The current cell and positions of ``atoms`` as a pymatgen structure."""
    return Structure(
        Lattice(np.array(atoms.cell)), atoms.get_chemical_symbols(), atoms.get_scaled_positions()
    )


class MLPOptions(OracleOptions):
    """Options of the ``mlp`` oracle."""

    model: str = Field(
        DEFAULT_MODEL,
        description="`chgnet` (CHGNet 0.3.0), `7net-0` (`sevennet` extra), "
        "`matgl:/path/to/model_dir`, `committee:/path` or `campaign` (the newest committee "
        "that `amloop mlp fit` fitted in the campaign; its spread is the uncertainty)",
    )
    device: str | None = Field(
        None,
        description="`auto`, `cpu`, `cuda[:N]`",
        json_schema_extra={"default": "`AMLOOP_DEVICE`"},
    )
    optimizer: Optimizer = Field("FIRE", description="`FIRE` or `BFGS`")
    relax_cell: bool = Field(True, description="relax the cell as well (FrechetCellFilter)")
    fmax: float = Field(
        0.05,
        gt=0,
        description="force tolerance (eV/Å); the cell converges to a stress of about "
        "fmax·N/V (~0.7 GPa at 0.05 eV/Å for a metal)",
    )
    max_steps: int = Field(
        500, ge=1, description="relaxation steps; still above `fmax` after them: failed"
    )
    min_distance: float = Field(
        0.8, ge=0, description="closest distance before and after relaxation (Å)"
    )
    max_abs_energy_per_atom: float = Field(
        20.0, gt=0, description="exploded beyond ± this (eV/atom)"
    )
    batch_size: int = Field(16, ge=1, description="structures per batched model call")
    cache_dir: str | None = Field(
        None,
        description="folder of the elemental reference cache",
        json_schema_extra={"default": "`~/.cache/amloop`"},
    )
    disk_cache: bool = Field(True, description="keep elemental references on disk across processes")


class MLPOracle(Oracle):
    """Relaxed energy and formation energy with a machine-learned interatomic potential.

    Properties: ``energy_per_atom`` (eV/atom, relaxed), ``formation_energy_per_atom``
    (eV/atom, relaxed, against the elemental references relaxed with the same potential) and
    ``pressure`` (GPa, of the relaxed cell). The per-structure provenance adds
    ``raw_energy_per_atom_eV`` (the structure as given, before relaxation),
    ``max_force_eV_per_A`` (after relaxation), ``relaxation_steps``, ``volume_ratio``
    (relaxed/input), the references used and their energies.

    Args:
        name: Name of this oracle in the campaign (defaults to ``"mlp"``).
        fidelity: Fidelity level in [0, 1].
        timeout_s: Wall-clock limit per structure (s).
        **options: :class:`MLPOptions`.
    """

    type_name: ClassVar[str] = "mlp"
    properties: ClassVar[dict[str, str]] = {
        "energy_per_atom": "eV/atom",
        "formation_energy_per_atom": "eV/atom",
        "pressure": "GPa",
    }

    Options: ClassVar[type[MLPOptions]] = MLPOptions

    options: MLPOptions

    def __init__(self, **settings: Any):
        """``name``, ``fidelity``, ``timeout_s`` and the :class:`MLPOptions`."""
        super().__init__(**settings)
        model, device = self.options.model, self.options.device
        cache_dir, disk_cache = self.options.cache_dir, self.options.disk_cache
        if model == CAMPAIGN_MODEL:
            raise OracleSetupError(
                "model: campaign names the campaign's own committee potential, which only a "
                "campaign's run resolves (to committee:<campaign folder>/mlp); outside a "
                "campaign give model: committee:/path/to/folder"
            )
        self.model = str(model)
        self.device = resolve_device(device)
        self.backend = load_backend(self.model, self.device)
        folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.references = ReferenceCache(folder / "mlp_references.json" if disk_cache else None)
        self._raw_energies: dict[int, float] = {}  # id(structure) -> eV/atom, see evaluate_many

    def _refresh_committee(self) -> None:
        """A committee folder's newest version (a refit is used from the next call on)."""
        if self.model.startswith(COMMITTEE_PREFIX):
            self.backend = load_backend(self.model, self.device)

    # -- elements and references -----------------------------------------------------------

    def check_elements(self, elements: Sequence[str]) -> None:
        """Fail fast when the potential lacks an element; relax the references of the others.

        Raises:
            OracleSetupError: an element is not covered by the model, or its reference fails.
        """
        missing = sorted(set(elements) - self.backend.elements)
        if missing:
            raise OracleSetupError(
                f"model '{self.model}' has no parameters for {', '.join(missing)} (it covers "
                f"{len(self.backend.elements)} elements)"
            )
        for symbol in elements:
            self.reference_energy(symbol)

    def reference_energy(self, symbol: str) -> ReferenceEnergy:
        """Relaxed energy (eV/atom) of ``symbol``'s reference structure, cached.

        Raises:
            OracleSetupError: no reference structure relaxes with this potential.
        """
        key = ReferenceCache.key(self.backend.identity, symbol)
        cached = self.references.get(key)
        if cached is not None:
            return cached
        found: list[ReferenceEnergy] = []
        problems: list[str] = []
        for reference in reference_candidates(symbol):
            atoms = reference.build()
            try:
                with self._calculator_on(atoms):
                    outcome = relax(
                        atoms,
                        fmax=REFERENCE_FMAX,
                        max_steps=REFERENCE_MAX_STEPS,
                        relax_cell=reference.relax_cell,
                        optimizer="BFGS",  # small cells near a minimum: fewer steps than FIRE
                        max_abs_energy=self.options.max_abs_energy_per_atom,
                        min_distance=self.options.min_distance,
                    )
                    energy = energy_per_atom(
                        atoms, max_abs=self.options.max_abs_energy_per_atom, stage="reference"
                    )
            except OracleFailed as exc:
                problems.append(f"{reference.label}: {exc}")
                continue
            if not outcome.converged:
                problems.append(f"{reference.label}: not converged in {outcome.steps} steps")
                continue
            found.append(ReferenceEnergy(energy, reference.label))
        if not found:
            raise OracleSetupError(
                f"no elemental reference of {symbol} relaxes with model '{self.model}': "
                + "; ".join(problems)
            )
        best = min(found, key=lambda r: r.energy_per_atom)
        self.references.put(key, best)
        return best

    # -- the computation -------------------------------------------------------------------

    @contextlib.contextmanager
    def _calculator_on(self, atoms: Atoms) -> Iterator[None]:
        """Attach the potential to ``atoms`` for the duration, holding the backend's lock."""
        with self.backend.lock, self.backend.device_context():
            atoms.calc = self.backend.calculator
            try:
                yield
            finally:
                atoms.calc = None

    def _prepare(self, structure: Structure) -> Atoms:
        """Checks before any model call, and the ASE atoms of ``structure``.

        Raises:
            OracleSetupError: an element the model does not cover.
            OracleFailed: partial occupancy or overlapping atoms.
        """
        if not structure.is_ordered:
            raise OracleFailed(
                "structure has partially occupied sites; the potential needs one atom each"
            )
        self.check_elements(sorted({site.specie.symbol for site in structure}))
        check_min_distance(structure, self.options.min_distance)
        return Atoms(
            symbols=[site.specie.symbol for site in structure],
            scaled_positions=structure.frac_coords,
            cell=structure.lattice.matrix,
            pbc=True,
        )

    def compute(self, structure: Structure) -> OracleResult:
        """Relax ``structure`` and compute its energy and formation energy per atom.

        Raises:
            OracleSetupError: an element the model does not cover, or whose reference fails.
            OracleFailed: partial occupancy, overlapping atoms, NaN or exploding energy, no
                convergence within ``max_steps``, a collapsed or exploded cell, lost
                composition, or the timeout.
        """
        started = time.perf_counter()
        self._refresh_committee()
        atoms = self._prepare(structure)
        natoms = len(atoms)
        references = {el.symbol: self.reference_energy(el.symbol) for el in structure.composition}
        with self._calculator_on(atoms):
            raw = self._raw_energies.pop(id(structure), None)
            if raw is None:
                raw = energy_per_atom(
                    atoms, max_abs=self.options.max_abs_energy_per_atom, stage="raw"
                )
            elif not (math.isfinite(raw) and abs(raw) <= self.options.max_abs_energy_per_atom):
                raise OracleFailed(f"non-finite or exploding energy (raw): {raw:.4g} eV/atom")
            on_the_way: list[ForceLabel] = []

            def keep(step: int) -> None:  # the input and a few decorrelated steps
                if step in RELAXATION_LABEL_STEPS:
                    on_the_way.append(ase_label(atoms, structure_of(atoms), "relaxation"))

            outcome = relax(
                atoms,
                fmax=self.options.fmax,
                max_steps=self.options.max_steps,
                relax_cell=self.options.relax_cell,
                optimizer=self.options.optimizer,
                max_abs_energy=self.options.max_abs_energy_per_atom,
                min_distance=self.options.min_distance,
                deadline=started + self.timeout_s,
                observe=keep,
            )
            energy = energy_per_atom(
                atoms, max_abs=self.options.max_abs_energy_per_atom, stage="relaxed"
            )
            max_force = float(np.linalg.norm(atoms.get_forces(), axis=1).max())
            stress = atoms.get_stress(voigt=False)
        if not outcome.converged:
            stress_GPa = float(np.abs(stress).max()) / units.GPa
            raise OracleFailed(
                f"no convergence: max force {max_force:.3g} eV/Å, max |stress| "
                f"{stress_GPa:.3g} GPa after {outcome.steps} steps (fmax {self.options.fmax} eV/Å"
                + (" on atoms and the cell" if self.options.relax_cell else "")
                + f", max_steps {self.options.max_steps})"
            )
        relaxed = structure_of(atoms)
        if relaxed.composition != structure.composition.element_composition:
            raise OracleFailed(
                f"composition lost: {structure.composition.formula} -> {relaxed.composition.formula}"
            )
        with self._calculator_on(atoms):
            label = ase_label(atoms, relaxed)
            spread = getattr(self.backend.calculator, "spread", None)  # a committee's
        formation = energy - sum(
            amount * references[el.symbol].energy_per_atom
            for el, amount in structure.composition.fractional_composition.items()
        )
        pressure = -float(np.trace(stress)) / 3.0 / EV_PER_A3_PER_GPA
        sigma = spread.energy_eV_per_atom if spread is not None else None
        committee = (
            {"committee_force_spread_eV_per_A": spread.force_eV_per_A} if spread is not None else {}
        )
        wall = time.perf_counter() - started
        return OracleResult(
            properties={
                "energy_per_atom": PropertyValue(value=energy, unit="eV/atom", uncertainty=sigma),
                "formation_energy_per_atom": PropertyValue(
                    value=float(formation), unit="eV/atom", uncertainty=sigma
                ),
                "pressure": PropertyValue(value=pressure, unit="GPa"),
            },
            relaxed_structure=relaxed,
            labels=[*on_the_way, label],
            provenance={
                "natoms": natoms,
                "raw_energy_per_atom_eV": raw,
                "max_force_eV_per_A": max_force,
                "relaxation_steps": outcome.steps,
                "volume_ratio": relaxed.volume / structure.volume,
                "elemental_references": {
                    symbol: {"energy_per_atom_eV": ref.energy_per_atom, "structure": ref.structure}
                    for symbol, ref in references.items()
                },
                "wall_s": wall,
                **committee,
            },
            gpu_s=wall if self.device.startswith("cuda") else 0.0,
        )

    # -- batches ---------------------------------------------------------------------------

    def raw_energies_per_atom(self, structures: Sequence[Structure]) -> list[float]:
        """Single-point energies (eV/atom) of ``structures`` as given, batched where possible.

        With a backend that batches (CHGNet) this is one model call per ``batch_size``
        structures; otherwise one calculator call each. Unchecked: may hold NaN.
        """
        if self.backend.batch_energies is not None:
            with self.backend.lock, self.backend.device_context():
                return self.backend.batch_energies(structures, self.options.batch_size)
        energies = []
        for structure in structures:
            atoms = Atoms(
                symbols=[site.specie.symbol for site in structure],
                scaled_positions=structure.frac_coords,
                cell=structure.lattice.matrix,
                pbc=True,
            )
            with self._calculator_on(atoms):
                energies.append(float(atoms.get_potential_energy()) / len(atoms))
        return energies

    def evaluate_many(self, candidates: Sequence[Candidate]) -> list[Evaluation]:
        """Evaluate ``candidates``, with their raw single points in batched model calls.

        The results are those of :meth:`~oracles.base.Oracle.evaluate` on each candidate (the
        relaxations run one by one); the batched call's CPU time is shared out over the
        candidates in proportion to their atoms.

        Raises:
            OracleSetupError: as :meth:`evaluate`.
        """
        runnable: list[Structure] = []
        for candidate in candidates:
            try:
                self._prepare(candidate.structure)
            except OracleFailed:  # evaluate() records the failure
                continue
            runnable.append(candidate.structure)
        shares: dict[int, float] = {}
        if runnable:
            cpu0 = time.process_time()
            energies = self.raw_energies_per_atom(runnable)
            spent = time.process_time() - cpu0
            total_atoms = sum(len(s) for s in runnable)
            for structure, energy in zip(runnable, energies, strict=True):
                self._raw_energies[id(structure)] = energy
                shares[id(structure)] = spent * len(structure) / total_atoms
        try:
            evaluations = []
            for candidate in candidates:
                evaluation = self.evaluate(candidate)
                share = shares.get(id(candidate.structure), 0.0)
                evaluations.append(
                    evaluation.model_copy(update={"cost": evaluation.cost + Cost(core_s=share)})
                )
            return evaluations
        finally:
            self._raw_energies.clear()

    def provenance(self) -> dict[str, Any]:
        """Code, version, weights file with its sha256, device and relaxation parameters."""
        return {
            **super().provenance(),
            **self.backend.provenance,
            "model": self.model,
            "device": self.device,
            "parameters": {
                **self.options.parameters(exclude={"model", "device", "cache_dir", "disk_cache"}),
                "reference_fmax_eV_per_A": REFERENCE_FMAX,
                "reference_optimizer": "BFGS",
                "reference_protocol": REFERENCE_PROTOCOL,
            },
        }
