"""The campaign report behind ``amloop report``: ``report.md`` and ``report.html`` with PNG figures.

Everything comes from the store: the summary (budget, evaluations per oracle, best value per
objective), the best value so far against the compute spent, the Pareto front (two or more
objectives), a composition map, the PDM and partial RDFs of the best structures against the seed
set, the compute per oracle, failures grouped by reason (quality-gate rejections included), the
PDOS of every DFT calculation and what each iteration proposed and why.

A section without data says so in one line (a campaign that only holds injected measurements
still gets a report). Figures are drawn with matplotlib's object API on the Agg canvas (no
pyplot state); the HTML embeds them, the Markdown links them.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from pymatgen.core import Structure
from scipy.ndimage import gaussian_filter1d

from amloop.generator.pdm import pair_indices, partial_rdf, pdm, pdm_labels, shell_cutoffs
from amloop.loop.budget import Budget
from amloop.loop.history import best_per_objective
from amloop.oracles.dos_descriptors import ProjectedDos
from amloop.state.composition import formula
from amloop.state.config import CampaignConfig, ObjectiveConfig, parse_config
from amloop.state.schema import (
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
#: Oracle name under which the loop stores quality-gate rejections.
QUALITY_GATE = "quality_gate"
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


# --------------------------------------------------------------------------- document model
@dataclass(frozen=True)
class Table:
    """A table: header cells and rows of already formatted cells."""

    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Plot:
    """A PNG in the output folder with its caption."""

    file: Path
    caption: str


Block = str | Table | Plot


@dataclass(frozen=True)
class Section:
    """One report section: a title and its paragraphs, tables and figures in order."""

    title: str
    blocks: list[Block]


# --------------------------------------------------------------------------- campaign data
@dataclass
class _Point:
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
class _Campaign:
    """Everything the report reads, loaded once."""

    info: CampaignRecord
    config: CampaignConfig
    candidates: dict[str, Candidate]
    evaluations: list[Evaluation]
    measurements: list[Measurement]
    iterations: list[IterationRecord]
    artifacts: list[Artifact]

    @classmethod
    def load(cls, store: CampaignStore) -> _Campaign:
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

    def points(self) -> list[_Point]:
        """Materials with at least one value: candidates by hash, measured compositions by formula."""
        points: dict[str, _Point] = {}
        for evaluation in self.evaluations:
            if evaluation.status != "done" or not evaluation.properties:
                continue
            candidate = self.candidates[evaluation.candidate_hash]
            point = points.setdefault(
                candidate.content_hash,
                _Point(candidate.formula, candidate.composition, candidate),
            )
            for name, value in evaluation.properties.items():
                point.set(name, evaluation.fidelity, value.value)
        for measurement in self.measurements:
            structure = self.candidates.get(measurement.candidate_hash or "")
            key = structure.content_hash if structure else formula(measurement.composition)
            point = points.setdefault(
                key,
                _Point(formula(measurement.composition), measurement.composition, structure),
            )
            point.measured = True
            point.set(measurement.property, EXPERIMENT_RANK, measurement.value)
        return list(points.values())

    def ranked(self, objective: ObjectiveConfig) -> list[_Point]:
        """Points with a value of ``objective``, best first."""
        sign = -objective.sign
        having = [p for p in self.points() if p.value(objective.property) is not None]
        return sorted(having, key=lambda p: sign * (p.value(objective.property) or 0.0))


def _fractions(composition: dict[str, float], elements: Sequence[str]) -> np.ndarray:
    """Atomic fractions over ``elements`` ``(n,)``, renormalised to sum 1."""
    x = np.array([composition.get(el, 0.0) for el in elements], dtype=float)
    return x / x.sum() if x.sum() > 0 else x


def _unit(objective: ObjectiveConfig) -> str:
    return objective.unit or "a.u."


def _axis_label(objective: ObjectiveConfig) -> str:
    return f"{objective.property} ({_unit(objective)})"


def _short(content_hash: str) -> str:
    return content_hash[:12]


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _save(figure: Figure, out_dir: Path, name: str) -> Path:
    path = out_dir / name
    figure.savefig(path, dpi=110)
    return path


# --------------------------------------------------------------------------- best so far
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
    return _best_so_far(_Campaign.load(store))


def _best_so_far(campaign: _Campaign) -> list[BestCurve]:
    epoch = datetime.min.replace(tzinfo=UTC)
    events: list[tuple[datetime, float, dict[str, float], str]] = []
    for evaluation in campaign.evaluations:
        if evaluation.status in ("done", "failed"):
            values = (
                {k: v.value for k, v in evaluation.properties.items()}
                if evaluation.status == "done"
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


def _best_so_far_section(campaign: _Campaign, out_dir: Path) -> Section:
    title = "Best so far vs compute"
    curves = _best_so_far(campaign)
    if not curves:
        return Section(title, ["No objective value yet."])
    if all(curve.total_core_h == 0.0 for curve in curves):
        return Section(title, ["No compute recorded: every value so far comes from measurements."])
    figure = Figure(figsize=(7.0, 3.0 * len(curves)), layout="constrained")
    axes = figure.subplots(len(curves), 1, squeeze=False)[:, 0]
    for ax, curve in zip(axes, curves, strict=True):
        x = np.append(curve.cost_core_h, max(curve.total_core_h, curve.cost_core_h[-1]))
        y = np.append(curve.best, curve.best[-1])
        for source in dict.fromkeys(curve.source):
            mask = np.array([s == source for s in curve.source])
            ax.scatter(curve.cost_core_h[mask], curve.value[mask], s=14, alpha=0.5, label=source)
        ax.step(x, y, where="post", color="black", label="best so far")
        ax.set_xlabel("cumulative compute (core-h)")
        ax.set_ylabel(_axis_label(curve.objective))
        ax.set_title(f"{curve.objective.property} ({curve.objective.direction})")
        ax.legend(fontsize="small")
    plot = Plot(
        _save(figure, out_dir, "best_so_far.png"),
        "Best value so far (line) and every value found (points, by source) against the "
        "compute spent when it arrived (oracle calls, failed ones included, and training).",
    )
    return Section(title, [plot])


# --------------------------------------------------------------------------- Pareto front
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


def _pareto_section(campaign: _Campaign, out_dir: Path) -> Section | None:
    objectives = campaign.config.objectives
    if len(objectives) < 2:
        return None
    title = "Pareto front"
    names = [o.property for o in objectives]
    points = [p for p in campaign.points() if all(p.value(n) is not None for n in names)]
    if not points:
        return Section(title, ["No material has values of every objective yet."])
    values = np.array([[p.value(n) or 0.0 for n in names] for p in points])
    front = pareto_front(values, [o.direction for o in objectives])
    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))][:3]
    figure = Figure(figsize=(5.0 * len(pairs), 4.2), layout="constrained")
    axes = figure.subplots(1, len(pairs), squeeze=False)[0]
    for ax, (i, j) in zip(axes, pairs, strict=True):
        ax.scatter(values[~front, i], values[~front, j], s=14, color="0.6", label="dominated")
        ax.scatter(values[front, i], values[front, j], s=30, color="tab:red", label="front")
        if len(names) == 2:
            order = np.argsort(values[front, i])
            ax.plot(values[front, i][order], values[front, j][order], color="tab:red", lw=1)
        ax.set_xlabel(f"{_axis_label(objectives[i])}, {objectives[i].direction}")
        ax.set_ylabel(f"{_axis_label(objectives[j])}, {objectives[j].direction}")
        ax.legend(fontsize="small")
    plot = Plot(
        _save(figure, out_dir, "pareto.png"),
        f"{int(front.sum())} of {len(points)} materials with all objectives are "
        "non-dominated (front computed over all objectives, directions applied).",
    )
    rows = [
        [
            p.label,
            _short(p.candidate.content_hash) if p.candidate else "measured",
            *(_num(p.value(n), 5) for n in names),
        ]
        for p, on_front in zip(points, front, strict=True)
        if on_front
    ]
    header = ["composition", "candidate", *(f"{o.property} ({_unit(o)})" for o in objectives)]
    return Section(title, [plot, Table(header, rows)])


# --------------------------------------------------------------------------- composition map
def _ternary(x: np.ndarray) -> np.ndarray:
    """Fractions ``(n, 3)`` to 2-D points ``(n, 2)`` in an equilateral triangle."""
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3.0) / 2.0]])
    return x @ corners


def _draw_triangle(ax: Axes, elements: Sequence[str]) -> None:
    corners = _ternary(np.eye(3))
    ax.plot(*np.vstack([corners, corners[:1]]).T, color="black", lw=1)
    for k in range(3):
        others = [j for j in range(3) if j != k]
        for level in (0.2, 0.4, 0.6, 0.8):
            ends = np.zeros((2, 3))
            ends[:, k] = level
            ends[0, others[0]] = ends[1, others[1]] = 1.0 - level
            ax.plot(*_ternary(ends).T, color="0.85", lw=0.6, zorder=0)
    offsets = [(-0.04, -0.05), (0.04, -0.05), (0.0, 0.04)]
    for (cx, cy), (dx, dy), element in zip(corners, offsets, elements, strict=True):
        ax.text(cx + dx, cy + dy, f"{element} (x = 1)", ha="center", va="center")
    ax.set_aspect("equal")
    ax.set_axis_off()


def _composition_section(campaign: _Campaign, out_dir: Path) -> Section:
    title = "Composition map"
    elements = campaign.config.elements
    objective = campaign.config.objectives[0]
    points = campaign.points()
    evaluated = {p.candidate.content_hash for p in points if p.candidate}
    untested = [
        _Point(c.formula, c.composition, c)
        for h, c in campaign.candidates.items()
        if h not in evaluated
    ]
    everything = points + untested
    if len(elements) < 2:
        return Section(title, ["A one-element campaign has no composition space to map."])
    if not everything:
        return Section(title, ["No candidate or measurement yet."])
    if len(elements) == 2:  # the property against the fraction: only materials with a value
        everything = [p for p in everything if p.value(objective.property) is not None]
        if not everything:
            return Section(title, [f"No {objective.property} value yet."])
    x = np.array([_fractions(p.composition, elements) for p in everything])
    values = np.array([_nan(p.value(objective.property)) for p in everything])
    measured = np.array([p.measured for p in everything])
    figure = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = figure.subplots()
    if len(elements) == 2:
        xy = np.column_stack([x[:, 1], values])
        ax.set_xlabel(f"x_{elements[1]} (atomic fraction)")
        ax.set_ylabel(_axis_label(objective))
        how = f"{objective.property} against the {elements[1]} fraction"
    elif len(elements) == 3:
        xy = _ternary(x)
        _draw_triangle(ax, elements)
        how = "ternary projection of the atomic fractions"
    else:
        xy, loadings = _pca(x)
        labels = []
        for k in range(2):
            top = np.argsort(-np.abs(loadings[k]))[:3]
            terms = " ".join(f"{loadings[k, t]:+.2f}·{elements[t]}" for t in top)
            labels.append(f"PC{k + 1} (atomic fraction): {terms}")
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        how = "first two principal components of the atomic fractions"
    known = ~np.isnan(values)
    if (~known).any():
        hollow = xy[~known]
        ax.scatter(
            hollow[:, 0], hollow[:, 1], s=16, facecolors="none", edgecolors="0.5", label="no value"
        )
    if known.any():
        norm = Normalize(float(np.nanmin(values)), float(np.nanmax(values)))
        for mask, marker, label in ((~measured, "o", "computed"), (measured, "s", "measured")):
            chosen = known & mask
            if chosen.any():
                ax.scatter(
                    xy[chosen, 0], xy[chosen, 1], c=values[chosen], cmap="viridis", norm=norm,
                    marker=marker, s=36, label=label,
                )  # fmt: skip
        figure.colorbar(ScalarMappable(norm, "viridis"), ax=ax, label=_axis_label(objective))
    ax.legend(fontsize="small", loc="upper right")
    plot = Plot(
        _save(figure, out_dir, "composition_map.png"),
        f"Every candidate and measured composition: {how}, coloured by {objective.property} "
        "(most trusted value of each material; hollow: not evaluated yet).",
    )
    return Section(title, [plot])


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First two principal components: scores ``(n, 2)`` and loadings ``(2, n_elements)``."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    loadings = np.zeros((2, x.shape[1]))
    loadings[: min(2, len(vt))] = vt[:2]
    return centred @ loadings.T, loadings


# --------------------------------------------------------------------------- structure sections
def _best_candidates(campaign: _Campaign) -> list[tuple[Candidate, str]]:
    """The best candidates by the first objective, plus the best of every other, with labels."""
    chosen: dict[str, tuple[Candidate, str]] = {}
    for rank, objective in enumerate(campaign.config.objectives):
        having = [p for p in campaign.ranked(objective) if p.candidate is not None]
        for point in having[: TOP_STRUCTURES if rank == 0 else 1]:
            assert point.candidate is not None
            value = point.value(objective.property)
            label = f"{point.label} {_short(point.candidate.content_hash)[:8]} "
            label += f"({objective.property} {_num(value)} {_unit(objective)})"
            chosen.setdefault(point.candidate.content_hash, (point.candidate, label))
    return list(chosen.values())


def _seed_structures(campaign: _Campaign) -> list[Structure]:
    seeds = [c.structure for c in campaign.candidates.values() if c.origin == "seed"]
    step = max(1, math.ceil(len(seeds) / MAX_REFERENCE_STRUCTURES))
    return seeds[::step]


def _pdm_section(
    campaign: _Campaign, best: list[tuple[Candidate, str]], seeds: list[Structure], out_dir: Path
) -> Section:
    title = "PDM of the best structures"
    if not best:
        return Section(title, ["No evaluated structure yet."])
    elements = campaign.config.elements
    cutoffs = shell_cutoffs(seeds or [c.structure for c, _ in best], elements)
    rows = [pdm(c.structure, elements, cutoffs=cutoffs) for c, _ in best]
    labels = [label for _, label in best]
    if seeds:
        rows.append(np.mean([pdm(s, elements, cutoffs=cutoffs) for s in seeds], axis=0))
        labels.append(f"seed set mean ({len(seeds)} structures)")
    matrix = np.array(rows)
    pairs = pdm_labels(elements)
    figure = Figure(
        figsize=(max(5.0, 0.7 * len(pairs) + 3.5), 1.0 + 0.45 * len(rows)), layout="constrained"
    )
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="magma", aspect="auto")
    ax.set_xticks(range(len(pairs)), pairs, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("pair a-b: b neighbours per a atom (atoms)")
    ax.set_ylabel("structure")
    if matrix.size <= 400:
        middle = 0.5 * (matrix.max() + matrix.min())
        for (i, j), value in np.ndenumerate(matrix):
            color = "black" if value > middle else "white"
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7, color=color)
    figure.colorbar(image, ax=ax, label="first-shell coordination number (atoms)")
    source = "the seed set's" if seeds else "these structures'"
    plot = Plot(
        _save(figure, out_dir, "pdm_best.png"),
        f"Pair distribution matrix of the best structures as generated (first-shell cutoffs "
        f"from {source} pooled partial RDFs).",
    )
    return Section(title, [plot])


def _rdf_section(
    campaign: _Campaign, best: list[tuple[Candidate, str]], seeds: list[Structure], out_dir: Path
) -> Section:
    title = "RDF of the best structures vs the seed set"
    if not best:
        return Section(title, ["No evaluated structure yet."])
    elements = campaign.config.elements
    sets = {f"best {len(best)}": [c.structure for c, _ in best]}
    if seeds:
        sets[f"seed set ({len(seeds)})"] = seeds
    curves = {}
    for name, structures in sets.items():
        r, g = partial_rdf(structures, elements, r_max=RDF_R_MAX, bin_width=RDF_BIN_WIDTH)
        x = np.mean([_fractions(s.composition.get_el_amt_dict(), elements) for s in structures], 0)
        total = np.einsum("a,b,abr->r", x, x, g)
        curves[name] = (r, gaussian_filter1d(total, 1.0), gaussian_filter1d(g, 1.0, axis=2))
    present = [
        (a, b)
        for a, b in pair_indices(len(elements))
        if any(np.any(c[2][a, b] > 0) for c in curves.values())
    ]
    panels = [None, *present]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.0 * columns, 2.8 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, pair in zip(axes, panels, strict=False):
        for name, (r, total, partial) in curves.items():
            ax.plot(r, total if pair is None else partial[pair[0], pair[1]], label=name, lw=1.2)
        ax.set_title("total" if pair is None else f"{elements[pair[0]]}-{elements[pair[1]]}")
        ax.set_xlabel("r (Å)")
        ax.set_ylabel("g(r) (dimensionless)")
        ax.axhline(1.0, color="0.7", lw=0.6)
    axes[0].legend(fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    note = "" if seeds else " The campaign has no seed set to compare with."
    plot = Plot(
        _save(figure, out_dir, "rdf_best_vs_seed.png"),
        "Total (concentration-weighted) and partial radial distribution functions pooled over "
        f"the best structures and over the seed set, structures as generated.{note}",
    )
    return Section(title, [plot])


# --------------------------------------------------------------------------- costs and failures
def _cost_section(campaign: _Campaign, out_dir: Path) -> Section:
    title = "Compute per oracle"
    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for evaluation in campaign.evaluations:
        entry = per[evaluation.oracle]
        entry[evaluation.status] += 1
        entry[f"core_{evaluation.status}"] += evaluation.cost.core_s
        entry["gpu_s"] += evaluation.cost.gpu_s
    training_core = sum(i.training_cost.core_s for i in campaign.iterations)
    training_gpu = sum(i.training_cost.gpu_s for i in campaign.iterations)
    if training_core or training_gpu:
        per["training (generator)"]["core_done"] = training_core
        per["training (generator)"]["gpu_s"] = training_gpu
    if not per:
        return Section(title, ["No oracle call or training recorded yet."])
    names = list(per)
    rows = []
    for name in names:
        entry = per[name]
        core = entry["core_done"] + entry["core_failed"]
        calls = entry["done"] + entry["failed"]
        rows.append(
            [
                name,
                f"{int(entry['done'])}",
                f"{int(entry['failed'])}",
                f"{int(entry['pending'] + entry['running'])}",
                f"{core:.4g}",
                f"{core / 3600:.4g}",
                f"{entry['gpu_s']:.4g}",
                _num(core / calls) if calls else "-",
            ]
        )
    table = Table(
        ["oracle", "done", "failed", "pending/running", "core-s", "core-h", "GPU-s", "core-s/call"],
        rows,
    )
    blocks: list[Block] = [table]
    if sum(per[n]["core_done"] + per[n]["core_failed"] for n in names) > 0:
        figure = Figure(figsize=(max(5.0, 1.1 * len(names) + 2.5), 3.8), layout="constrained")
        ax = figure.subplots()
        done = np.array([per[n]["core_done"] for n in names])
        failed = np.array([per[n]["core_failed"] for n in names])
        ax.bar(names, done, label="done", color="tab:blue")
        ax.bar(names, failed, bottom=done, label="failed", color="tab:red")
        ax.set_xlabel("oracle")
        ax.set_ylabel("compute (core-s)")
        ax.tick_params(axis="x", labelrotation=30)
        ax.legend(fontsize="small")
        blocks.append(
            Plot(
                _save(figure, out_dir, "oracle_costs.png"),
                "Compute spent per oracle (finished and failed calls) and on generator training.",
            )
        )
    return Section(title, blocks)


def failure_reason(error: str | None) -> str:
    """The grouping key of a failure: the first non-empty line of its error, shortened."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    reason = lines[0] if lines else "(no reason recorded)"
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"


def _failure_section(campaign: _Campaign) -> Section:
    title = "Failures by reason"
    groups: dict[tuple[str, str], list[Evaluation]] = defaultdict(list)
    for evaluation in campaign.evaluations:
        if evaluation.status == "failed":
            groups[(evaluation.oracle, failure_reason(evaluation.error))].append(evaluation)
    if not groups:
        return Section(title, ["No failed evaluation and no quality-gate rejection."])
    rows = []
    for (oracle, reason), failed in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        iterations = sorted({e.iteration for e in failed if e.iteration is not None})
        rows.append(
            [
                "quality gate" if oracle == QUALITY_GATE else oracle,
                reason,
                str(len(failed)),
                ", ".join(str(i) for i in iterations) or "-",
                ", ".join(_short(e.candidate_hash) for e in failed[:3])
                + (" …" if len(failed) > 3 else ""),
            ]
        )
    total = sum(len(v) for v in groups.values())
    gated = sum(len(v) for (o, _), v in groups.items() if o == QUALITY_GATE)
    text = f"{total} failure(s), of which {gated} quality-gate rejection(s)."
    return Section(
        title,
        [text, Table(["oracle", "reason (first line)", "count", "iterations", "candidates"], rows)],
    )


# --------------------------------------------------------------------------- PDOS
def _pdos_sources(campaign: _Campaign) -> list[tuple[Path, str, str]]:
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


def _pdos_section(campaign: _Campaign, out_dir: Path) -> Section | None:
    sources = _pdos_sources(campaign)
    if not sources:
        return None
    blocks: list[Block] = []
    unreadable = []
    for path, candidate_hash, oracle in sources[:MAX_PDOS_PLOTS]:
        try:
            dos = ProjectedDos.load(path)
        except (OSError, ValueError, KeyError) as exc:
            unreadable.append(f"{path}: {failure_reason(str(exc))}")
            continue
        candidate = campaign.candidates.get(candidate_hash)
        name = candidate.formula if candidate else "/".join(dos.elements)
        tag = f"{_short(candidate_hash) or path.parent.name}_{oracle or 'dft'}"
        figure = _pdos_figure(dos, f"{name} {_short(candidate_hash)} ({oracle or 'PDOS'})")
        blocks.append(
            Plot(
                _save(figure, out_dir, f"pdos_{_file_safe(tag)}.png"),
                f"Projected DOS of {name} (candidate {_short(candidate_hash) or '?'}, oracle "
                f"{oracle or '?'}, file {path}): total per cell, then per atom of each element "
                "by orbital (e_g = d_z² + d_x²−y², t2g = d_xy + d_yz + d_xz), spins summed.",
            )
        )
    if len(sources) > MAX_PDOS_PLOTS:
        blocks.append(f"{len(sources) - MAX_PDOS_PLOTS} more PDOS file(s) not plotted.")
    if unreadable:
        blocks.append("Unreadable PDOS files: " + "; ".join(unreadable))
    return Section("Projected densities of states", blocks)


def _file_safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def _pdos_figure(dos: ProjectedDos, title: str) -> Figure:
    elements = dos.elements
    figure = Figure(figsize=(7.0, 2.2 * (len(elements) + 1)), layout="constrained")
    axes = figure.subplots(len(elements) + 1, 1, sharex=True, squeeze=False)[:, 0]
    e = dos.energies
    axes[0].plot(e, dos.total.sum(axis=0), color="black", lw=1)
    axes[0].set_ylabel("DOS (states/eV/cell)")
    axes[0].set_title(title)
    for ax, element in zip(axes[1:], elements, strict=True):
        for group in ("s", "p", "d"):
            curve = dos.element_dos(element, group)
            if np.any(curve > 1e-6 * max(1.0, float(np.abs(curve).max()))):
                ax.plot(e, curve, lw=1, label=f"{element} {group}")
        if np.abs(dos.element_dos(element, "d")).max() > 1e-3:
            for group, style in (("eg", "--"), ("t2g", ":")):
                ax.plot(e, dos.element_dos(element, group), ls=style, lw=1, label=group)
        ax.set_ylabel("PDOS (states/eV/atom)")
        ax.legend(fontsize="small", loc="upper right")
    for ax in axes:
        ax.axvline(0.0, color="0.5", lw=0.7, ls="--")
    axes[-1].set_xlabel("E − E_F (eV)")
    return figure


# --------------------------------------------------------------------------- summary, iterations
def _summary_section(campaign: _Campaign, store: CampaignStore) -> Section:
    config, info = campaign.config, campaign.info
    objectives = ", ".join(f"{o.direction} {o.property} ({_unit(o)})" for o in config.objectives)
    origins = Counter(c.origin for c in campaign.candidates.values())
    text = (
        f"Campaign {info.name} ({info.status}), created {info.created_at:%Y-%m-%d %H:%M} UTC. "
        + (f"{config.description.rstrip('.')}. " if config.description else "")
        + f"Elements: {', '.join(config.elements)}. Objectives: {objectives}. "
        f"{len(campaign.candidates)} candidate(s)"
        + (f" ({', '.join(f'{n} {o}' for o, n in origins.items())})" if origins else "")
        + f", {len(campaign.evaluations)} evaluation(s), {len(campaign.measurements)} "
        f"measurement(s), {len(campaign.iterations)} iteration(s)."
    )
    budget = Table(
        ["budget", "spent", "limit", "left", "unit"],
        [
            [
                line.item,
                f"{line.spent:.4g}",
                _num(line.limit),
                _num(line.left),
                line.unit,
            ]
            for line in Budget.of(store, config).lines(config.oracles)
        ],
    )
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for evaluation in campaign.evaluations:
        counts[evaluation.oracle][evaluation.status] += 1
    evaluations = Table(
        ["oracle", "done", "failed", "pending/running"],
        [
            [name, str(c["done"]), str(c["failed"]), str(c["pending"] + c["running"])]
            for name, c in counts.items()
        ],
    )
    by_prefix = {_short(h): c for h, c in campaign.candidates.items()}
    best_rows = []
    for best in best_per_objective(store, config):
        candidate = by_prefix.get(best.candidate)
        origin: str = "experiment" if candidate is None else candidate.origin
        if candidate is not None and candidate.iteration is not None:
            origin += f", iteration {candidate.iteration}"
        best_rows.append(
            [
                best.property,
                best.direction,
                f"{best.value:.5g} {best.unit}",
                best.formula,
                best.candidate or "-",
                best.source,
                origin,
            ]
        )
    blocks: list[Block] = [text, budget]
    if counts:
        blocks.append(evaluations)
    if best_rows:
        header = ["objective", "direction", "best", "composition", "candidate", "from", "origin"]
        blocks.append(Table(header, best_rows))
    else:
        blocks.append("No objective value yet.")
    return Section("Summary", blocks)


def _format_spread(mean: Any, sigma: Any) -> str:
    """``mean ± σ`` of a proposal, per property when they are mappings."""
    if isinstance(mean, dict):
        sigmas = sigma if isinstance(sigma, dict) else {}
        return "; ".join(
            f"{name} {_format_spread(value, sigmas.get(name))}" for name, value in mean.items()
        )
    if isinstance(mean, int | float):
        return _num(float(mean)) + (
            f" ± {_num(float(sigma))}" if isinstance(sigma, int | float) else ""
        )
    return "-"


def _proposal_rows(campaign: _Campaign) -> list[list[str]]:
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
                    f"{proposal.get('oracle') or '-'} ({_format_value(fidelity)})",
                    _format_value(score),
                    _format_spread(proposal.get("mean"), proposal.get("sigma")),
                    str(proposal.get("reason") or ""),
                ]
            )
    return rows


def _iteration_section(campaign: _Campaign) -> Section:
    title = "Iterations"
    if not campaign.iterations:
        return Section(title, ["The loop has not run an iteration yet."])
    rows = []
    for record in campaign.iterations:
        evaluations = [e for e in campaign.evaluations if e.iteration == record.index]
        generated = [c for c in campaign.candidates.values() if c.iteration == record.index]
        timings = record.metadata.get("timings_s") or {}
        best = record.metadata.get("best") or {}
        duration = (
            (record.finished_at - record.started_at).total_seconds()
            if record.finished_at and record.started_at
            else None
        )
        rows.append(
            [
                str(record.index),
                record.phase,
                _num(duration),
                str(len(generated)),
                str(sum(e.status == "done" for e in evaluations)),
                str(sum(e.status == "failed" for e in evaluations)),
                f"{record.training_cost.core_s:.4g}",
                ", ".join(
                    f"{k} {_num(v)}" for k, v in timings.items() if isinstance(v, int | float)
                )
                or "-",
                ", ".join(f"{k}: {_format_value(v)}" for k, v in best.items()) or "-",
            ]
        )
    header = [
        "iteration", "phase", "wall (s)", "candidates", "done", "failed", "training core-s",
        "timings (s)", "best",
    ]  # fmt: skip
    blocks: list[Block] = [Table(header, rows)]
    proposals = _proposal_rows(campaign)
    if proposals:
        blocks.append("Proposals (acquisition decisions):")
        blocks.append(
            Table(
                [
                    "iteration",
                    "#",
                    "composition",
                    "oracle (fidelity)",
                    "score",
                    "mean ± σ",
                    "reason",
                ],
                proposals,
            )
        )
    return Section(title, blocks)


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


# --------------------------------------------------------------------------- rendering
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, sections: Sequence[Section]) -> str:
    """The report as Markdown; figures are linked by file name (relative to the report)."""
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
                lines.append("|" + "---|" * len(block.header))
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            elif isinstance(block, Plot):
                lines.append(f"![{block.file.stem}]({block.file.name})")
                lines += ["", f"*{block.caption}*"]
            else:
                lines.append(block)
            lines.append("")
    return "\n".join(lines)


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1em;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0}figure{margin:1em 0}img{max-width:100%}"
    "figcaption{font-size:0.9em;color:#555}"
)


def render_html(title: str, sections: Sequence[Section]) -> str:
    """The report as one self-contained HTML page (figures embedded as base64 PNG)."""
    out = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        out.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                out.append("<table><tr>")
                out += [f"<th>{html.escape(h)}</th>" for h in block.header]
                out.append("</tr>")
                for row in block.rows:
                    out.append(
                        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                    )
                out.append("</table>")
            elif isinstance(block, Plot):
                data = base64.b64encode(block.file.read_bytes()).decode("ascii")
                caption = html.escape(block.caption)
                out.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                    f"<figcaption>{caption}</figcaption></figure>"
                )
            else:
                out.append(f"<p>{html.escape(block)}</p>")
    out.append("</body></html>")
    return "\n".join(out)


def build_sections(store: CampaignStore, out_dir: Path) -> list[Section]:
    """Compute every section of the report, writing its figures into ``out_dir``."""
    campaign = _Campaign.load(store)
    best = _best_candidates(campaign)
    seeds = _seed_structures(campaign)
    sections: list[Section | None] = [
        _summary_section(campaign, store),
        _best_so_far_section(campaign, out_dir),
        _pareto_section(campaign, out_dir),
        _composition_section(campaign, out_dir),
        _pdm_section(campaign, best, seeds, out_dir),
        _rdf_section(campaign, best, seeds, out_dir),
        _cost_section(campaign, out_dir),
        _failure_section(campaign),
        _pdos_section(campaign, out_dir),
        _iteration_section(campaign),
    ]
    return [section for section in sections if section is not None]


def write_report(store: CampaignStore, out_dir: Path) -> Path:
    """Write ``report.md``, ``report.html`` and their PNG figures into ``out_dir``.

    Returns:
        The path of ``report.md``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = build_sections(store, out_dir)
    title = f"amloop campaign report: {store.name} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)"
    markdown = out_dir / REPORT_MD
    markdown.write_text(render_markdown(title, sections), encoding="utf-8")
    (out_dir / REPORT_HTML).write_text(render_html(title, sections), encoding="utf-8")
    return markdown
