"""What the report shows, read once from the store: every scored point with its values by fidelity, best-so-far curves, the Pareto front, failures, proposals."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure

from amloop.state.composition import formula
from amloop.state.config import CampaignConfig, ObjectiveConfig, parse_config
from amloop.state.schema import (
    GATE_ORACLE,
    Artifact,
    CampaignRecord,
    Candidate,
    Evaluation,
    IterationRecord,
    Measurement,
)
from amloop.state.store import CampaignStore

#: File names written into the output folder.
REPORT_MD = "report.md"


REPORT_HTML = "report.html"


#: How many of the best candidates (by the first objective) the PDM and RDF sections show.
TOP_STRUCTURES = 5


#: At most this many seed structures are pooled for the reference RDF and PDM cutoffs.
MAX_REFERENCE_STRUCTURES = 200


#: At most this many PDOS files are plotted (the first ones found).
MAX_PDOS_PLOTS = 20


#: Range (Å) and bin width (Å) of the RDF plots.
RDF_R_MAX = 6.0


RDF_BIN_WIDTH = 0.05


#: Longest failure reason shown (characters of its first line).
MAX_REASON_CHARS = 160


#: A measurement outranks every computed fidelity when a candidate has both.
EXPERIMENT_RANK = math.inf


@dataclass
class Point:
    """One material with values: a candidate, or a measured composition without structure."""

    label: str
    composition: dict[str, float]
    candidate: Candidate | None
    values: dict[str, tuple[float, float]] = field(default_factory=dict)  # prop -> (rank, value)
    measured: bool = False

    def set(self, prop: str, rank: float, value: float) -> None:
        """Keep the value of the most trusted source (later ones win ties)."""
        if prop not in self.values or rank >= self.values[prop][0]:
            self.values[prop] = (rank, value)

    def value(self, prop: str) -> float | None:
        """The kept value of ``prop``, if any."""
        kept = self.values.get(prop)
        return None if kept is None else kept[1]


@dataclass(frozen=True)
class CampaignData:
    """Everything the report reads, loaded once."""

    info: CampaignRecord
    config: CampaignConfig
    candidates: dict[str, Candidate]
    evaluations: list[Evaluation]
    measurements: list[Measurement]
    iterations: list[IterationRecord]
    artifacts: list[Artifact]

    @classmethod
    def load(cls, store: CampaignStore) -> CampaignData:
        info = store.info()
        return cls(
            info=info,
            config=parse_config(info.config, source=f"campaign '{info.name}'"),
            candidates={c.content_hash: c for c in store.candidates()},
            evaluations=store.evaluations(),
            measurements=store.measurements(),
            iterations=store.iterations(),
            artifacts=store.artifacts(kind="pdos"),
        )

    @property
    def gate_rejected(self) -> set[str]:
        """Hashes of the candidates the quality gate rejected (no best, no ranked value)."""
        return {
            e.candidate_hash
            for e in self.evaluations
            if e.oracle == GATE_ORACLE and e.status == "failed"
        }

    def points(self) -> list[Point]:
        """Materials with at least one value: candidates by hash (not those the quality gate
        rejected), measured compositions by formula."""
        points: dict[str, Point] = {}
        rejected = self.gate_rejected
        for evaluation in self.evaluations:
            if evaluation.status != "done" or not evaluation.properties:
                continue
            if evaluation.candidate_hash in rejected:
                continue
            candidate = self.candidates[evaluation.candidate_hash]
            point = points.setdefault(
                candidate.content_hash,
                Point(candidate.formula, candidate.composition, candidate),
            )
            for name, value in evaluation.properties.items():
                point.set(name, evaluation.fidelity, value.value)
        for measurement in self.measurements:
            structure = self.candidates.get(measurement.candidate_hash or "")
            key = structure.content_hash if structure else formula(measurement.composition)
            point = points.setdefault(
                key,
                Point(formula(measurement.composition), measurement.composition, structure),
            )
            point.measured = True
            point.set(measurement.property, EXPERIMENT_RANK, measurement.value)
        return list(points.values())

    def ranked(self, objective: ObjectiveConfig) -> list[Point]:
        """Points with a value of ``objective``, best first."""
        sign = -objective.sign
        having = [p for p in self.points() if p.value(objective.property) is not None]
        return sorted(having, key=lambda p: sign * (p.value(objective.property) or 0.0))


def fractions(composition: dict[str, float], elements: Sequence[str]) -> np.ndarray:
    """Atomic fractions over ``elements`` ``(n,)``, renormalised to sum 1."""
    x = np.array([composition.get(el, 0.0) for el in elements], dtype=float)
    return x / x.sum() if x.sum() > 0 else x


def unit_of(objective: ObjectiveConfig) -> str:
    return objective.unit or "a.u."


def axis_label(objective: ObjectiveConfig) -> str:
    return f"{objective.property} ({unit_of(objective)})"


def short_hash(content_hash: str) -> str:
    return content_hash[:12]


def num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


@dataclass(frozen=True)
class BestCurve:
    """Best value of one objective against the cumulative compute spent when it was found.

    Attributes:
        objective: The objective (property, direction, unit).
        cost_core_h: Cumulative compute (core-h, oracle calls and training) when each value
            arrived, ``(n,)``, non-decreasing.
        value: The value that arrived, ``(n,)``, in the objective's unit.
        best: Best value so far, ``(n,)``: non-decreasing for ``maximize``, non-increasing for
            ``minimize``.
        source: Oracle name or ``experiment`` for each value.
        total_core_h: Compute spent in all (core-h).
    """

    objective: ObjectiveConfig
    cost_core_h: np.ndarray
    value: np.ndarray
    best: np.ndarray
    source: list[str]
    total_core_h: float


def best_so_far(store: CampaignStore) -> list[BestCurve]:
    """Best-so-far curves of the campaign's objectives (those with at least one value).

    Events are ordered by when they finished: oracle calls (done or failed; failed ones only
    add cost), training of each iteration, and measurements (no compute cost).
    """
    return best_curves(CampaignData.load(store))


def best_curves(campaign: CampaignData) -> list[BestCurve]:
    epoch = datetime.min.replace(tzinfo=UTC)
    events: list[tuple[datetime, float, dict[str, float], str]] = []
    rejected = campaign.gate_rejected  # their calls cost, their values count for nothing
    for evaluation in campaign.evaluations:
        if evaluation.status in ("done", "failed"):
            values = (
                {k: v.value for k, v in evaluation.properties.items()}
                if evaluation.status == "done" and evaluation.candidate_hash not in rejected
                else {}
            )
            moment = evaluation.finished_at or evaluation.created_at or epoch
            events.append((moment, evaluation.cost.core_s, values, evaluation.oracle))
    for measurement in campaign.measurements:
        moment = measurement.created_at or epoch
        events.append((moment, 0.0, {measurement.property: measurement.value}, "experiment"))
    for iteration in campaign.iterations:
        moment = iteration.finished_at or iteration.started_at or epoch
        events.append((moment, iteration.training_cost.core_s, {}, "training"))
    events.sort(key=lambda event: event[0])  # stable: ties keep the order above
    cumulative = np.cumsum([event[1] for event in events]) / 3600.0
    total = float(cumulative[-1]) if events else 0.0
    curves = []
    for objective in campaign.config.objectives:
        pick = np.fmax if objective.direction == "maximize" else np.fmin
        picked = [
            (float(cumulative[i]), event[2][objective.property], event[3])
            for i, event in enumerate(events)
            if objective.property in event[2]
        ]
        if not picked:
            continue
        value = np.array([p[1] for p in picked])
        curves.append(
            BestCurve(
                objective=objective,
                cost_core_h=np.array([p[0] for p in picked]),
                value=value,
                best=pick.accumulate(value),
                source=[p[2] for p in picked],
                total_core_h=total,
            )
        )
    return curves


def pareto_front(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Mask of the non-dominated rows.

    Args:
        values: Objective values ``(n, m)``.
        directions: ``"maximize"`` or ``"minimize"`` per column, ``(m,)``.

    Returns:
        Boolean mask ``(n,)``: no other row is at least as good in every objective and better
        in one.
    """
    import torch
    from botorch.utils.multi_objective.pareto import is_non_dominated

    signs = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    gains = torch.as_tensor(values * signs, dtype=torch.float64)
    return is_non_dominated(gains, deduplicate=False).numpy()


def nan_for_none(value: float | None) -> float:
    return math.nan if value is None else value


def pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First two principal components: scores ``(n, 2)`` and loadings ``(2, n_elements)``."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    loadings = np.zeros((2, x.shape[1]))
    loadings[: min(2, len(vt))] = vt[:2]
    return centred @ loadings.T, loadings


def best_candidates(campaign: CampaignData) -> list[tuple[Candidate, str]]:
    """The best candidates by the first objective, plus the best of every other, with labels."""
    chosen: dict[str, tuple[Candidate, str]] = {}
    for rank, objective in enumerate(campaign.config.objectives):
        having = [p for p in campaign.ranked(objective) if p.candidate is not None]
        for point in having[: TOP_STRUCTURES if rank == 0 else 1]:
            assert point.candidate is not None
            value = point.value(objective.property)
            label = f"{point.label} {short_hash(point.candidate.content_hash)[:8]} "
            label += f"({objective.property} {num(value)} {unit_of(objective)})"
            chosen.setdefault(point.candidate.content_hash, (point.candidate, label))
    return list(chosen.values())


def seed_structures(campaign: CampaignData) -> list[Structure]:
    seeds = [c.structure for c in campaign.candidates.values() if c.origin == "seed"]
    step = max(1, math.ceil(len(seeds) / MAX_REFERENCE_STRUCTURES))
    return seeds[::step]


def failure_reason(error: str | None) -> str:
    """The grouping key of a failure: the first non-empty line of its error, shortened."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    reason = lines[0] if lines else "(no reason recorded)"
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"


def pdos_sources(campaign: CampaignData) -> list[tuple[Path, str, str]]:
    """``(path, candidate hash, oracle)`` of every PDOS file, artifacts first, no duplicates."""
    found: dict[str, tuple[Path, str, str]] = {}
    for artifact in campaign.artifacts:
        path = Path(artifact.path)
        meta = artifact.metadata
        found.setdefault(
            str(path.resolve()),
            (path, str(meta.get("candidate_hash", "")), str(meta.get("oracle", ""))),
        )
    for evaluation in campaign.evaluations:
        pdos_file = evaluation.provenance.get("pdos_file")
        if evaluation.status == "done" and pdos_file:
            path = Path(str(pdos_file))
            found.setdefault(
                str(path.resolve()), (path, evaluation.candidate_hash, evaluation.oracle)
            )
    return list(found.values())


def file_safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def _format_spread(mean: Any, sigma: Any) -> str:
    """``mean ± σ`` of a proposal, per property when they are mappings."""
    if isinstance(mean, dict):
        sigmas = sigma if isinstance(sigma, dict) else {}
        return "; ".join(
            f"{name} {_format_spread(value, sigmas.get(name))}" for name, value in mean.items()
        )
    if isinstance(mean, int | float):
        return num(float(mean)) + (
            f" ± {num(float(sigma))}" if isinstance(sigma, int | float) else ""
        )
    return "-"


def proposal_rows(campaign: CampaignData) -> list[list[str]]:
    """Rows of the proposals table: from the iteration metadata, else from the candidates'
    ``provenance["proposal"]`` (each distinct proposal once)."""
    by_iteration: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in campaign.iterations:
        by_iteration[record.index] = list(record.metadata.get("proposals") or [])
    recorded = {index for index, proposals in by_iteration.items() if proposals}
    seen: set[str] = set()
    for candidate in campaign.candidates.values():
        proposal = candidate.provenance.get("proposal")
        index = candidate.iteration
        if not isinstance(proposal, dict) or index is None or index in recorded:
            continue
        key = json.dumps([index, proposal], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            by_iteration[index].append(proposal)
    rows = []
    for index in sorted(by_iteration):
        for k, proposal in enumerate(by_iteration[index]):
            composition = proposal.get("composition")
            fidelity, score = proposal.get("fidelity"), proposal.get("score")
            rows.append(
                [
                    str(index),
                    str(k),
                    formula(composition) if isinstance(composition, dict) else str(composition),
                    f"{proposal.get('oracle') or '-'} ({format_value(fidelity)})",
                    format_value(score),
                    _format_spread(proposal.get("mean"), proposal.get("sigma")),
                    str(proposal.get("reason") or ""),
                ]
            )
    return rows


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return num(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)
