"""What a campaign has done, as flat rows: the data behind ``amloop history``/``status``/``export``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from state.composition import formula
from state.config import CampaignConfig
from state.schema import Candidate, Cost, Evaluation, Measurement
from state.store import CampaignStore


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
    """Best value of each objective among finished evaluations and measurements."""
    candidates = {c.content_hash: c for c in store.candidates()}
    found: list[Best] = []
    evaluations = store.evaluations(status="done", structures=False)
    measurements = store.measurements()
    for objective in config.objectives:
        sign = 1.0 if objective.direction == "maximize" else -1.0
        options: list[Best] = []
        for evaluation in evaluations:
            value = evaluation.properties.get(objective.property)
            if value is not None:
                candidate = candidates[evaluation.candidate_hash]
                options.append(
                    Best(
                        objective.property,
                        objective.direction,
                        value.value,
                        value.unit,
                        candidate.formula,
                        evaluation.oracle,
                        candidate.content_hash[:12],
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


@dataclass(frozen=True)
class BudgetLine:
    """Spent vs limit for one budget item."""

    item: str
    spent: float
    limit: float | None
    unit: str

    @property
    def left(self) -> float | None:
        """What is left (``None`` when unlimited)."""
        return None if self.limit is None else max(self.limit - self.spent, 0.0)


def budget_lines(store: CampaignStore, config: CampaignConfig) -> list[BudgetLine]:
    """Budget spent and left: core-hours, GPU-hours and calls per capped oracle."""
    spent: Cost = store.spent()
    counts = store.evaluation_counts()
    lines = [
        BudgetLine("compute", spent.core_s / 3600.0, config.budget.core_hours, "core-h"),
        BudgetLine("gpu", spent.gpu_s / 3600.0, config.budget.gpu_hours, "GPU-h"),
    ]
    for oracle in config.oracles:
        limit = config.budget.evaluations.get(oracle.name)
        lines.append(
            BudgetLine(f"{oracle.name} calls", counts.get(oracle.name, 0), limit, "evaluations")
        )
    return lines
