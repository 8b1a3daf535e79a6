"""The report's figures (matplotlib, PNG): best so far against compute, Pareto front, composition map, PDM heatmap, RDFs, cost per oracle, PDOS."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from pymatgen.core import Structure
from scipy.ndimage import gaussian_filter1d

from amloop.generator.pdm import pair_indices, partial_rdf, pdm, pdm_labels, shell_cutoffs
from amloop.loop.report.data import (
    MAX_PDOS_PLOTS,
    RDF_BIN_WIDTH,
    RDF_R_MAX,
    CampaignData,
    Point,
    axis_label,
    best_curves,
    failure_reason,
    file_safe,
    fractions,
    nan_for_none,
    num,
    pareto_front,
    pca,
    pdos_sources,
    short_hash,
    unit_of,
)
from amloop.loop.report.document import Block, Plot, Section, Table
from amloop.oracles.dos_descriptors import ProjectedDos
from amloop.state.schema import (
    GATE_ORACLE,
    Candidate,
    Evaluation,
)


def _save(figure: Figure, out_dir: Path, name: str) -> Path:
    path = out_dir / name
    figure.savefig(path, dpi=110)
    return path


def best_so_far_section(campaign: CampaignData, out_dir: Path) -> Section:
    title = "Best so far vs compute"
    curves = best_curves(campaign)
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
        ax.set_ylabel(axis_label(curve.objective))
        ax.set_title(f"{curve.objective.property} ({curve.objective.direction})")
        ax.legend(fontsize="small")
    plot = Plot(
        _save(figure, out_dir, "best_so_far.png"),
        "Best value so far (line) and every value found (points, by source) against the "
        "compute spent when it arrived (oracle calls, failed ones included, and training).",
    )
    return Section(title, [plot])


def pareto_section(campaign: CampaignData, out_dir: Path) -> Section | None:
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
        ax.set_xlabel(f"{axis_label(objectives[i])}, {objectives[i].direction}")
        ax.set_ylabel(f"{axis_label(objectives[j])}, {objectives[j].direction}")
        ax.legend(fontsize="small")
    plot = Plot(
        _save(figure, out_dir, "pareto.png"),
        f"{int(front.sum())} of {len(points)} materials with all objectives are "
        "non-dominated (front computed over all objectives, directions applied).",
    )
    rows = [
        [
            p.label,
            short_hash(p.candidate.content_hash) if p.candidate else "measured",
            *(num(p.value(n), 5) for n in names),
        ]
        for p, on_front in zip(points, front, strict=True)
        if on_front
    ]
    header = ["composition", "candidate", *(f"{o.property} ({unit_of(o)})" for o in objectives)]
    return Section(title, [plot, Table(header, rows)])


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
    for k in range(3):  # fraction ticks of element k along the edge it rises on
        rises_from = (k + 1) % 3
        for level in (0.2, 0.4, 0.6, 0.8):
            at = np.zeros(3)
            at[k], at[rises_from] = level, 1.0 - level
            (tx, ty), centre = _ternary(at[None])[0], _ternary(np.full((1, 3), 1 / 3))[0]
            away = (np.array([tx, ty]) - centre) * 0.12
            ax.text(tx + away[0], ty + away[1], f"{level:.1f}", fontsize=7, color="0.35",
                    ha="center", va="center")  # fmt: skip
    ax.set_aspect("equal")
    ax.set_axis_off()


def _draw_bounds(ax: Axes, elements: Sequence[str], bounds: dict[str, tuple[float, float]]) -> None:
    """The campaign's composition bounds on the ternary map: each limit as a dashed line where
    that element's fraction equals it, labelled (``Cr <= 0.6``)."""
    for k, element in enumerate(elements):
        low, high = bounds.get(element, (0.0, 1.0))
        for level, sign in ((low, ">="), (high, "<=")):
            if (sign == ">=" and level <= 0.0) or (sign == "<=" and level >= 1.0):
                continue
            others = [j for j in range(3) if j != k]
            ends = np.zeros((2, 3))
            ends[:, k] = level
            ends[0, others[0]] = ends[1, others[1]] = 1.0 - level
            line = _ternary(ends)
            ax.plot(*line.T, color="tab:red", lw=1.0, ls="--")
            mid_x, mid_y = line.mean(axis=0)
            ax.text(mid_x, mid_y, f"{element} {sign} {level:g}", color="tab:red",
                    fontsize=8, ha="center", va="bottom")  # fmt: skip


def composition_section(campaign: CampaignData, out_dir: Path) -> Section:
    title = "Composition map"
    elements = campaign.config.elements
    objective = campaign.config.objectives[0]
    points = campaign.points()
    evaluated = {p.candidate.content_hash for p in points if p.candidate}
    untested = [
        Point(c.formula, c.composition, c)
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
    x = np.array([fractions(p.composition, elements) for p in everything])
    values = np.array([nan_for_none(p.value(objective.property)) for p in everything])
    measured = np.array([p.measured for p in everything])
    figure = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = figure.subplots()
    if len(elements) == 2:
        xy = np.column_stack([x[:, 1], values])
        ax.set_xlabel(f"x_{elements[1]} (atomic fraction)")
        ax.set_ylabel(axis_label(objective))
        how = f"{objective.property} against the {elements[1]} fraction"
    elif len(elements) == 3:
        xy = _ternary(x)
        _draw_triangle(ax, elements)
        _draw_bounds(ax, elements, campaign.config.bounds)
        how = (
            "ternary projection of the atomic fractions (edge ticks: the fraction of the "
            "element that edge rises towards; dashed: the campaign's bounds)"
        )
    else:
        xy, loadings = pca(x)
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
        figure.colorbar(ScalarMappable(norm, "viridis"), ax=ax, label=axis_label(objective))
    ax.legend(fontsize="small", loc="upper right")
    plot = Plot(
        _save(figure, out_dir, "composition_map.png"),
        f"Every candidate and measured composition: {how}, coloured by {objective.property} "
        "(most trusted value of each material; hollow: not evaluated yet).",
    )
    return Section(title, [plot])


def pdm_section(
    campaign: CampaignData, best: list[tuple[Candidate, str]], seeds: list[Structure], out_dir: Path
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


def rdf_section(
    campaign: CampaignData, best: list[tuple[Candidate, str]], seeds: list[Structure], out_dir: Path
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
        x = np.mean([fractions(s.composition.get_el_amt_dict(), elements) for s in structures], 0)
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
        absent = []
        for name, (r, total, partial) in curves.items():
            curve = total if pair is None else partial[pair[0], pair[1]]
            if pair is not None and not np.any(curve > 0):
                absent.append(name)
            ax.plot(r, curve, label=name, lw=1.2)
        if absent:
            ax.text(0.97, 0.95, "no such pairs in\n" + ", ".join(absent), transform=ax.transAxes,
                    ha="right", va="top", fontsize=7, color="0.35")  # fmt: skip
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


def cost_section(campaign: CampaignData, out_dir: Path) -> Section:
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
        per["generator (training, sampling, prior share)"]["core_done"] = training_core
        per["generator (training, sampling, prior share)"]["gpu_s"] = training_gpu
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
                num(core / calls) if calls else "-",
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
        spent = (done + failed)[(done + failed) > 0]
        if spent.max() / spent.min() > 30:  # values over decades: the small bars visible too
            ax.set_yscale("log")
            ax.set_ylabel("compute (core-s, log scale)")
        ax.tick_params(axis="x", labelrotation=30)
        ax.legend(fontsize="small")
        blocks.append(
            Plot(
                _save(figure, out_dir, "oracle_costs.png"),
                "Compute spent per oracle (finished and failed calls) and on generator training.",
            )
        )
    return Section(title, blocks)


def failure_section(campaign: CampaignData, out_dir: Path) -> Section:
    """Failures and gate rejections grouped by kind (the reason with its numbers taken out),
    the numbers shown as their range and median, and a bar figure of the counts."""
    title = "Failures by reason"
    groups: dict[tuple[str, str], list[tuple[Evaluation, list[float]]]] = defaultdict(list)
    for evaluation in campaign.evaluations:
        if evaluation.status == "failed":
            kind, numbers = failure_kind(failure_reason(evaluation.error))
            groups[(evaluation.oracle, kind)].append((evaluation, numbers))
    if not groups:
        return Section(title, ["No failed evaluation and no quality-gate rejection."])
    rows = []
    ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    for (oracle, kind), failed in ranked:
        iterations = sorted({e.iteration for e, _ in failed if e.iteration is not None})
        rows.append(
            [
                "quality gate" if oracle == GATE_ORACLE else oracle,
                kind,
                str(len(failed)),
                number_spread([numbers for _, numbers in failed]),
                ", ".join(str(i) for i in iterations) or "-",
                ", ".join(short_hash(e.candidate_hash) for e, _ in failed[:3])
                + (" …" if len(failed) > 3 else ""),
            ]
        )
    total = sum(len(v) for v in groups.values())
    gated = sum(len(v) for (o, _), v in groups.items() if o == GATE_ORACLE)
    text = f"{total} failure(s), of which {gated} quality-gate rejection(s)."
    columns = ["oracle", "reason (numbers as N)", "count", "N: min – max (median)", "iterations"]
    table = Table([*columns, "candidates"], rows)
    figure = Figure(figsize=(7.0, 0.45 * len(ranked) + 1.2), layout="constrained")
    ax = figure.subplots()
    labels = [f"{'gate' if o == GATE_ORACLE else o}: {k[:60]}" for (o, k), _ in ranked]
    ax.barh(labels[::-1], [len(v) for _, v in ranked][::-1], color="tab:red")
    ax.set_xlabel("failures (count)")
    ax.tick_params(axis="y", labelsize=7)
    plot = Plot(
        _save(figure, out_dir, "failures.png"),
        "Failed oracle calls and quality-gate rejections per kind of reason.",
    )
    return Section(title, [text, table, plot])


#: A number inside a failure reason (a distance, an energy, a step count).
NUMBER = re.compile(r"(?<![\w.+-])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


def failure_kind(reason: str) -> tuple[str, list[float]]:
    """``reason`` with its numbers replaced by ``N`` (its kind), and the numbers."""
    numbers = [float(n) for n in NUMBER.findall(reason)]
    return NUMBER.sub("N", reason), numbers


def number_spread(numbers: list[list[float]]) -> str:
    """Range and median of each failure's first number, ``-`` where a kind has none."""
    first = [n[0] for n in numbers if n]
    if not first:
        return "-"
    if len(set(first)) == 1:
        return f"{first[0]:.4g}"
    return f"{min(first):.4g} – {max(first):.4g} ({float(np.median(first)):.4g})"


def pdos_section(campaign: CampaignData, out_dir: Path) -> Section | None:
    sources = pdos_sources(campaign)
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
        tag = f"{short_hash(candidate_hash) or path.parent.name}_{oracle or 'dft'}"
        figure = _pdos_figure(dos, f"{name} {short_hash(candidate_hash)} ({oracle or 'PDOS'})")
        blocks.append(
            Plot(
                _save(figure, out_dir, f"pdos_{file_safe(tag)}.png"),
                f"Projected DOS of {name} (candidate {short_hash(candidate_hash) or '?'}, oracle "
                f"{oracle or '?'}, file {path}): total per cell, then per atom of each element "
                "by orbital (e_g = d_z² + d_x²−y², t2g = d_xy + d_yz + d_xz), spins summed.",
            )
        )
    if len(sources) > MAX_PDOS_PLOTS:
        blocks.append(f"{len(sources) - MAX_PDOS_PLOTS} more PDOS file(s) not plotted.")
    if unreadable:
        blocks.append("Unreadable PDOS files: " + "; ".join(unreadable))
    return Section("Projected densities of states", blocks)


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
