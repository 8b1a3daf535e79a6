"""Records from rows: the pydantic records of :mod:`amloop.state.schema` read from the SQL
rows of :mod:`amloop.state.models` (UTC datetimes, structures from JSON, costs from two
columns)."""

from __future__ import annotations

from datetime import UTC, datetime

from amloop.state.models import (
    ArtifactRow,
    CandidateRow,
    EvaluationRow,
    EventRow,
    IterationRow,
    LabelRow,
    MeasurementRow,
)
from amloop.state.schema import (
    Artifact,
    Candidate,
    Cost,
    Evaluation,
    Event,
    ForceLabel,
    IterationRecord,
    Measurement,
)


def aware(moment: datetime | None) -> datetime | None:
    """A stored datetime in UTC (SQLite returns naive ones; everything amloop stores is UTC),
    for arithmetic on a row; records convert theirs when validated."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def candidate_record(row: CandidateRow) -> Candidate:
    """The candidate of a row (its structure read from the stored JSON)."""
    return Candidate.model_validate(row, from_attributes=True)


def evaluation_record(
    row: EvaluationRow, candidate_hash: str, structures: bool = True
) -> Evaluation:
    """The evaluation of a row, of the candidate ``candidate_hash``; without the relaxed
    structure unless ``structures``."""
    fields = {name: getattr(row, name) for name in _EVALUATION_COLUMNS}
    return Evaluation.model_validate(
        {
            **fields,
            "candidate_hash": candidate_hash,
            "cost": Cost(core_s=row.cost_core_s, gpu_s=row.cost_gpu_s),
            "relaxed_structure": row.relaxed_structure if structures else None,
        }
    )


def label_record(row: LabelRow, candidate_hash: str) -> ForceLabel:
    """The force label of a row, of the candidate ``candidate_hash``."""
    return ForceLabel.model_validate(
        {
            "structure": row.structure,
            "energy_eV": row.energy_eV,
            "forces_eV_per_A": row.forces_eV_per_A,
            "stress_GPa": row.stress_GPa,
            "source": row.source,
            "oracle": row.oracle,
            "candidate_hash": candidate_hash,
            "evaluation_id": row.evaluation_id,
            "id": row.id,
            "created_at": row.created_at,
        }
    )


def measurement_record(row: MeasurementRow) -> Measurement:
    """The measurement of a row."""
    return Measurement.model_validate(row, from_attributes=True)


def iteration_record(row: IterationRow) -> IterationRecord:
    """The iteration of a row (its training cost from two columns)."""
    return IterationRecord(
        index=row.index,
        phase=row.phase,  # type: ignore[arg-type]
        metadata=row.meta,
        training_cost=Cost(core_s=row.training_core_s, gpu_s=row.training_gpu_s),
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def artifact_record(row: ArtifactRow) -> Artifact:
    """The artifact of a row."""
    return Artifact.model_validate(row, from_attributes=True)


def event_record(row: EventRow) -> Event:
    """The audit-log line of a row."""
    return Event.model_validate(row, from_attributes=True)


#: Evaluation fields stored as columns of the same name.
_EVALUATION_COLUMNS = (
    "id", "oracle", "fidelity", "status", "properties", "error", "traceback", "attempts",
    "provenance", "iteration", "created_at", "started_at", "finished_at",
)  # fmt: skip
