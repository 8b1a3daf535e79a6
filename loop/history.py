"""What a campaign has done, as flat rows: the data behind ``amloop history``/``status``/``export``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from amloop.state.composition import formula
from amloop.state.config import CampaignConfig
from amloop.state.schema import Candidate, Evaluation, Measurement
from amloop.state.store import CampaignStore

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class HistoryRow:
    """One value in the campaign's history: an oracle result, a failure or a measurement."""

    iteration: int | None
    kind: str  # "evaluation" | "measurement"
    candidate: str  # content hash prefix ("" for a measurement without structure)
    formula: str
    origin: str  # candidate origin, or "experiment"
    source: str  # oracle name, or the measurement's source
    fidelity: str
    status: str
    property: str
    value: float | None
    unit: str
    uncertainty: float | None
    reason: str
    cost_core_s: float
    provenance: str

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for CSV/JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class Best:
    """The best value found so far for one objective."""

    property: str
    direction: str
    value: float
    unit: str
    formula: str
    source: str
    candidate: str


def history_rows(store: CampaignStore, *, iteration: int | None = None) -> list[HistoryRow]:
    """Every evaluation (one row per property, one per failure) and measurement, in order."""
    candidates = {c.content_hash: c for c in store.candidates()}
    rows: list[HistoryRow] = []
    for evaluation in store.evaluations(iteration=iteration):
        rows.extend(_evaluation_rows(evaluation, candidates[evaluation.candidate_hash]))
    for measurement in store.measurements():
        if iteration is None or measurement.iteration == iteration:
            rows.append(_measurement_row(measurement))
    return rows


def history_frame(store: CampaignStore) -> pd.DataFrame:
    """The campaign's history as a DataFrame: one row per evaluation or measurement.

    Columns: ``candidate`` (content-hash prefix), ``iteration`` (``<NA>`` for the seed set),
    ``kind``, ``formula``, ``origin``, ``source`` (oracle or measurement source), ``fidelity``
    (a number; measurements 1.0), ``status``, ``reason``, ``cost_core_s``, then one column per
    property named ``"property [unit]"`` (NaN where a row has no such value).
    """
    import pandas as pd

    candidates = {c.content_hash: c for c in store.candidates()}
    groups = [
        _evaluation_rows(evaluation, candidates[evaluation.candidate_hash])
        for evaluation in store.evaluations(structures=False)
    ]
    groups += [[_measurement_row(measurement)] for measurement in store.measurements()]
    frame = pd.DataFrame([_frame_record(rows) for rows in groups])
    if not frame.empty:
        frame["iteration"] = frame["iteration"].astype("Int64")
    return frame


def _frame_record(rows: list[HistoryRow]) -> dict[str, Any]:
    """One evaluation's rows (one per property) as one record with a column per property."""
    first = rows[0]
    record: dict[str, Any] = {
        "candidate": first.candidate,
        "iteration": first.iteration,
        "kind": first.kind,
        "formula": first.formula,
        "origin": first.origin,
        "source": first.source,
        "fidelity": 1.0 if first.kind == "measurement" else float(first.fidelity),
        "status": first.status,
        "reason": first.reason,
        "cost_core_s": first.cost_core_s,
    }
    for row in rows:
        if row.property:
            record[f"{row.property} [{row.unit}]" if row.unit else row.property] = row.value
    return record


def _evaluation_rows(evaluation: Evaluation, candidate: Candidate) -> list[HistoryRow]:
    base = HistoryRow(
        iteration=evaluation.iteration,
        kind="evaluation",
        candidate=candidate.content_hash[:12],
        formula=candidate.formula,
        origin=candidate.origin,
        source=evaluation.oracle,
        fidelity=f"{evaluation.fidelity:g}",
        status=evaluation.status,
        property="",
        value=None,
        unit="",
        uncertainty=None,
        reason=evaluation.error or "",
        cost_core_s=evaluation.cost.core_s,
        provenance=", ".join(f"{k}={v}" for k, v in sorted(evaluation.provenance.items())),
    )
    if not evaluation.properties:
        return [base]
    return [
        replace(base, property=name, value=v.value, unit=v.unit, uncertainty=v.uncertainty)
        for name, v in evaluation.properties.items()
    ]


def _measurement_row(measurement: Measurement) -> HistoryRow:
    where = f"{measurement.source_file}:{measurement.source_row}" if measurement.source_file else ""
    return HistoryRow(
        iteration=measurement.iteration,
        kind="measurement",
        candidate=(measurement.candidate_hash or "")[:12],
        formula=formula(measurement.composition),
        origin="experiment",
        source=measurement.source,
        fidelity="experiment",
        status="done",
        property=measurement.property,
        value=measurement.value,
        unit=measurement.unit,
        uncertainty=measurement.uncertainty,
        reason="",
        cost_core_s=0.0,
        provenance=f"{where} (given as {measurement.raw_value:g} {measurement.raw_unit}, "
        f"sha256 {str(measurement.source_file_sha256)[:12]})",
    )


def best_per_objective(store: CampaignStore, config: CampaignConfig) -> list[Best]:
    """Best value of each objective among finished evaluations and measurements (the one best
    value of the campaign: status, the live display, the report and the stall rule use it)."""
    compositions = store.candidate_compositions()  # no structure is read
    found: list[Best] = []
    evaluations = store.evaluations(status="done", structures=False)
    measurements = store.measurements()
    for objective in config.objectives:
        sign = objective.sign
        options: list[Best] = []
        for evaluation in evaluations:
            value = evaluation.properties.get(objective.property)
            if value is not None:
                options.append(
                    Best(
                        objective.property,
                        objective.direction,
                        value.value,
                        value.unit,
                        formula(compositions[evaluation.candidate_hash]),
                        evaluation.oracle,
                        evaluation.candidate_hash[:12],
                    )
                )
        for measurement in measurements:
            if measurement.property == objective.property:
                options.append(
                    Best(
                        objective.property,
                        objective.direction,
                        measurement.value,
                        measurement.unit,
                        formula(measurement.composition),
                        f"experiment ({measurement.source})",
                        (measurement.candidate_hash or "")[:12],
                    )
                )
        if options:
            found.append(max(options, key=lambda best: sign * best.value))
    return found
