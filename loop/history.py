"""What a campaign has done, as flat rows: the data behind ``amloop history``/``status``/``export``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from amloop.state.composition import formula
from amloop.state.config import CampaignConfig
from amloop.state.schema import GATE_ORACLE, Candidate, Evaluation, Measurement
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


#: The history's fixed columns, in the order tables show them (property columns follow
#: ``status``); a terminal too narrow for all keeps them in this priority.
FIXED_COLUMNS = (
    "stage", "candidate", "formula", "origin", "oracle", "fidelity", "status",
    "gate", "gate_reason", "failure", "cost_core_s", "source",
)  # fmt: skip


def history_records(
    store: CampaignStore,
    config: CampaignConfig | None = None,
    *,
    iteration: int | None = None,
    oracle: str | None = None,
    status: str | None = None,
    best: int | None = None,
    provenance: bool = False,
) -> list[dict[str, Any]]:
    """The campaign's history, one record per oracle call or measurement, oldest first.

    Keys: ``stage`` (``seed``, ``iteration K`` or ``measurement``), ``iteration`` (``None``
    for seeds), ``candidate`` (content-hash prefix), ``formula``, ``origin``, ``oracle``
    (``experiment`` for a measurement), ``fidelity`` (a number: measurements 1.0), ``status``,
    one key per property ``"name [unit]"`` (and ``"name σ"`` where an uncertainty is given),
    ``gate`` / ``gate_reason`` (the quality gate's verdict on the candidate: ``pass`` or
    ``reject``), ``failure`` (why a call failed), ``cost_core_s``, ``source`` (a
    measurement's), and with ``provenance`` the call's provenance. Gate checks are not records
    of their own. Filters: ``iteration``, ``oracle``, ``status``; ``best``: the ``best``
    records of the first objective of ``config``, best first.
    """
    candidates = {c.content_hash: c for c in store.candidates()}
    gates = {e.candidate_hash: e for e in store.evaluations(oracle=GATE_ORACLE, structures=False)}
    records = [
        _call_record(e, candidates[e.candidate_hash], gates.get(e.candidate_hash), provenance)
        for e in store.evaluations(iteration=iteration, structures=False)
        if e.oracle != GATE_ORACLE and (oracle is None or e.oracle == oracle)
    ]
    if oracle in (None, "experiment"):
        records += [
            _measurement_record(m, provenance)
            for m in store.measurements()
            if iteration is None or m.iteration == iteration
        ]
    if status is not None:
        records = [r for r in records if r["status"] == status]
    if best is not None:
        if config is None:
            raise ValueError("best records need the campaign config (its first objective)")
        objective = config.objectives[0]
        keys = {k for r in records for k in r if k.split(" [")[0] == objective.property}
        scored = [(r[k], r) for r in records for k in keys if r.get(k) is not None]
        records = [r for _, r in sorted(scored, key=lambda pair: -objective.sign * pair[0])]
        records = records[:best]
    return records


def history_frame(store: CampaignStore) -> pd.DataFrame:
    """:func:`history_records` as a DataFrame (``iteration`` nullable integer, property
    columns numeric, NaN where a record has no such value)."""
    import pandas as pd

    frame = pd.DataFrame(history_records(store))
    if not frame.empty:
        frame["iteration"] = frame["iteration"].astype("Int64")
    return frame


def _call_record(
    evaluation: Evaluation, candidate: Candidate, gate: Evaluation | None, provenance: bool
) -> dict[str, Any]:
    iteration = evaluation.iteration
    record: dict[str, Any] = {
        "stage": "seed" if iteration is None else f"iteration {iteration}",
        "iteration": iteration,
        "candidate": candidate.content_hash[:12],
        "formula": candidate.formula,
        "origin": candidate.origin,
        "oracle": evaluation.oracle,
        "fidelity": evaluation.fidelity,
        "status": evaluation.status,
    }
    for name, value in evaluation.properties.items():
        record[f"{name} [{value.unit}]" if value.unit else name] = value.value
        if value.uncertainty is not None:
            record[f"{name} σ"] = value.uncertainty
    record |= {
        "gate": "" if gate is None else "pass" if gate.status == "done" else "reject",
        "gate_reason": gate.error or "" if gate is not None and gate.status == "failed" else "",
        "failure": evaluation.error or "",
        "cost_core_s": evaluation.cost.core_s,
        "source": "",
    }
    if provenance:
        record["provenance"] = evaluation.provenance
    return record


def _measurement_record(measurement: Measurement, provenance: bool) -> dict[str, Any]:
    name = measurement.property
    record: dict[str, Any] = {
        "stage": "measurement",
        "iteration": measurement.iteration,
        "candidate": (measurement.candidate_hash or "")[:12],
        "formula": formula(measurement.composition),
        "origin": "experiment",
        "oracle": "experiment",
        "fidelity": 1.0,
        "status": "done",
        f"{name} [{measurement.unit}]": measurement.value,
    }
    if measurement.uncertainty is not None:
        record[f"{name} σ"] = measurement.uncertainty
    record |= {"gate": "", "gate_reason": "", "failure": "", "cost_core_s": 0.0}
    record["source"] = measurement.source
    if provenance:
        where = f"{measurement.source_file}:{measurement.source_row}"
        record["provenance"] = {
            "file": where if measurement.source_file else None,
            "given_as": f"{measurement.raw_value:g} {measurement.raw_unit}",
            "file_sha256": measurement.source_file_sha256,
            "method": measurement.method,
        }
    return record


def record_columns(records: list[dict[str, Any]], first: Sequence[str] = ()) -> list[str]:
    """All keys of ``records`` in table order: the fixed columns with the property columns
    after ``status`` (those of the properties named in ``first``, e.g. the objectives, before
    the others); ``iteration`` and ``provenance`` left out."""
    properties: dict[str, None] = {}
    for record in records:
        for key in record:
            if key not in FIXED_COLUMNS and key not in ("iteration", "provenance"):
                properties[key] = None
    ranked = sorted(properties, key=lambda key: key.split(" [")[0].split(" σ")[0] not in first)
    at = FIXED_COLUMNS.index("status") + 1
    return [*FIXED_COLUMNS[:at], *ranked, *FIXED_COLUMNS[at:]]


def column_priority(columns: Sequence[str], first: Sequence[str] = ()) -> list[str]:
    """``columns`` in the order a narrow table keeps them: where and what (stage, candidate,
    formula), the properties of ``first``, the verdicts, then the rest."""

    def rank(column: str) -> int:
        name = column.split(" [")[0].split(" σ")[0]
        order = ["stage", "candidate", "formula", "*first", "status", "gate", "oracle", "origin"]
        if name in first:
            return order.index("*first")
        return order.index(column) if column in order else len(order)

    return sorted(columns, key=rank)


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
    """Best value of each objective among finished evaluations of candidates the quality gate
    did not reject, and measurements (the one best value of the campaign: status, the live
    display, the report and the stall rule use it)."""
    compositions = store.candidate_compositions()  # no structure is read
    found: list[Best] = []
    rejected = store.gate_rejected()
    evaluations = [
        e
        for e in store.evaluations(status="done", structures=False)
        if e.candidate_hash not in rejected
    ]
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
