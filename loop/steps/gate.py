"""The quality gate of an iteration: crystallised refinements, push-apart, closest pair, structure metrics and the seed-001 energy rule; every verdict stored."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymatgen.core import Structure

from amloop.generator.quality_gate import QualityGate
from amloop.loop.steps.calls import EvaluationTask, TaskRunner, evaluate
from amloop.loop.steps.run import CampaignRun, oracle_config
from amloop.oracles.gates import EnergyReference, energy_gate
from amloop.state.composition import structure_fractions
from amloop.state.schema import GATE_ORACLE, Candidate, Cost, Evaluation


def gate(
    run: CampaignRun,
    index: int,
    candidates: Sequence[Candidate],
    run_tasks: TaskRunner | None = None,
) -> list[Candidate]:
    """Apply the quality gate to the iteration's candidates; returns the survivors.

    Each verdict is stored once as a ``quality_gate`` evaluation (``failed`` with the reason when
    rejected). The structural checks of :class:`generator.quality_gate.QualityGate` (push-apart,
    closest pair, RDF and motif distances to the seed set) come first; then, with
    ``quality.energy_oracle`` set, that oracle scores the structures that passed (through
    ``run_tasks``: on the flow's workers, all at once; else here, one after another) and
    seed 001's energy rule applies: relaxed energy per atom at most the reference
    (``quality.energy_reference``: the seed set's highest, or the seeds' fit in composition at
    the candidate's) plus ``max_energy_above_reference`` (and the unrelaxed energy at most
    10 eV above it, per cell).
    """
    verdicts = judge(run, index, candidates, run_tasks=run_tasks)
    survivors = [c for c in candidates if verdicts.get(c.content_hash) == "done"]
    run.store.update_iteration(
        index,
        phase="evaluate",
        metadata={"gate": {"candidates": len(candidates), "passed": len(survivors)}},
    )
    return survivors


def judge(
    run: CampaignRun,
    index: int,
    candidates: Sequence[Candidate],
    *,
    structural: bool = True,
    run_tasks: TaskRunner | None = None,
) -> dict[str, str]:
    """The gate's verdict on each candidate (``done``, ``failed``, or ``skipped`` when the
    energy oracle's budget is spent), by content hash; a stored verdict is reused, a new one
    stored. ``structural=False`` applies only the energy rule (for atom-swap children of a
    cell that passed: same geometry, new ordering)."""
    verdicts: dict[str, str] = {
        e.candidate_hash: e.status
        for e in run.store.evaluations(
            oracle=GATE_ORACLE, candidates=[c.content_hash for c in candidates], structures=False
        )
    }
    pending = [c for c in candidates if c.content_hash not in verdicts]
    if not pending:
        return verdicts
    checks = (
        QualityGate.from_reference(
            run.config.quality, [s for _, s in seed_structures(run)], elements=run.config.elements
        )
        if structural
        else None
    )
    first = {c.content_hash: _structural_check(run, c, checks) for c in pending}
    reference = seed_energy_reference(run)
    energy_oracle = run.config.quality.energy_oracle
    if reference is not None and energy_oracle is not None and run_tasks is not None:
        run_tasks(
            [EvaluationTask(energy_oracle, h) for h, check in first.items() if check.reason is None]
        )
    for candidate in pending:
        verdicts[candidate.content_hash] = _verdict(
            run, index, candidate, first[candidate.content_hash], reference
        )
    return verdicts


def seed_energy_reference(run: CampaignRun) -> EnergyReference | None:
    """The energy rule's reference (``quality.energy_reference``) from the relaxed energies per
    atom of the seed structures under the gate's energy oracle, or ``None`` when there is no
    energy gate or no such value yet."""
    quality = run.config.quality
    if quality.energy_oracle is None or quality.max_energy_above_reference is None:
        return None
    seeds = {c.content_hash: c for c in run.store.candidates(origin="seed")}
    scored = [
        (
            structure_fractions(seeds[e.candidate_hash].structure),
            e.properties["energy_per_atom"].value,
        )
        for e in run.store.evaluations(
            oracle=quality.energy_oracle, status="done", candidates=list(seeds), structures=False
        )
        if "energy_per_atom" in e.properties
    ]
    if not scored:
        return None
    compositions, energies = zip(*scored, strict=True)
    return EnergyReference.from_seeds(compositions, energies, quality.energy_reference)


def seed_structures(run: CampaignRun) -> list[tuple[str, Structure]]:
    """``(candidate hash, structure)`` of the seed set, relaxed where an oracle relaxed it."""
    seeds = run.store.candidates(origin="seed")
    relaxed = {
        e.candidate_hash: e.relaxed_structure
        for e in run.store.evaluations(status="done", candidates=[c.content_hash for c in seeds])
        if e.relaxed_structure is not None
    }
    return [(c.content_hash, relaxed.get(c.content_hash) or c.structure) for c in seeds]


@dataclass
class _StructuralCheck:
    """The structural half of a verdict: why it failed (``None``: passed), its metrics and
    its cost (core-s)."""

    reason: str | None
    metrics: dict[str, Any]
    core_s: float


def _structural_check(
    run: CampaignRun, candidate: Candidate, checks: QualityGate | None
) -> _StructuralCheck:
    cpu0 = time.process_time()
    if checks is None:
        return _StructuralCheck(None, {}, 0.0)
    verdict = checks.check(candidate.structure)
    reason = crystallised(run, candidate) or verdict.reason
    return _StructuralCheck(reason, dict(verdict.metrics), time.process_time() - cpu0)


def _verdict(
    run: CampaignRun,
    index: int,
    candidate: Candidate,
    check: _StructuralCheck,
    reference: EnergyReference | None,
) -> str:
    """The energy rule on a structure that passed the structural checks (its energy call
    made here unless it was made already), then the verdict stored."""
    quality = run.config.quality
    reason, metrics = check.reason, dict(check.metrics)
    if reason is None and reference is not None and quality.energy_oracle is not None:
        evaluation = evaluate(
            run.store,
            run.config,
            oracle_config(run.config, quality.energy_oracle),
            candidate.content_hash,
            index,
        )
        if evaluation is None:
            return "skipped"  # out of budget: decided on a later run
        if evaluation.status != "done" or "energy_per_atom" not in evaluation.properties:
            reason = f"energy oracle {quality.energy_oracle} failed: {evaluation.error}"
        else:
            relaxed = evaluation.properties["energy_per_atom"].value
            raw = float(evaluation.provenance.get("raw_energy_per_atom_eV", relaxed))
            threshold = reference.at(structure_fractions(candidate.structure)) + (
                quality.max_energy_above_reference or 0.0
            )
            kept, why = energy_gate(
                relaxed,
                raw,
                training_max_energy_per_atom=threshold,
                natoms=len(candidate.structure),
            )
            metrics |= {"energy_per_atom_eV": relaxed, "threshold_eV_per_atom": threshold}
            reason = None if kept else why
    run.store.record_evaluation(
        Evaluation(
            candidate_hash=candidate.content_hash,
            oracle=GATE_ORACLE,
            fidelity=0.0,
            status="failed" if reason else "done",
            error=reason,
            cost=Cost(core_s=check.core_s),  # the energy oracle's call is its own
            provenance=metrics,
            iteration=index,
            attempts=1,
        )
    )
    return "failed" if reason else "done"


def crystallised(run: CampaignRun, candidate: Candidate) -> str | None:
    """Why a refined cell that crystallised is rejected (``generator.refine.reject_crystallised``),
    or ``None``."""
    settings = run.config.generator.refine
    refinement = candidate.provenance.get("refinement") or {}
    phase = refinement.get("phase", "amorphous")
    if settings is None or not settings.reject_crystallised or phase == "amorphous":
        return None
    return (
        f"crystallised ({phase}) during refinement: "
        f"{refinement.get('crystalline_fraction', 1.0):.0%} of the atoms in a crystal environment"
    )
