"""The report's tables: summary, iterations and their proposals."""

from __future__ import annotations

from collections import Counter, defaultdict

from amloop.loop.budget import Budget
from amloop.loop.history import best_per_objective
from amloop.loop.report.data import (
    CampaignData,
    format_value,
    num,
    proposal_rows,
    short_hash,
    unit_of,
)
from amloop.loop.report.document import Block, Section, Table
from amloop.state.store import CampaignStore


def summary_section(campaign: CampaignData, store: CampaignStore) -> Section:
    config, info = campaign.config, campaign.info
    objectives = ", ".join(f"{o.direction} {o.property} ({unit_of(o)})" for o in config.objectives)
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
                num(line.limit),
                num(line.left),
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
    by_prefix = {short_hash(h): c for h, c in campaign.candidates.items()}
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


def iteration_section(campaign: CampaignData) -> Section:
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
                num(duration),
                str(len(generated)),
                str(sum(e.status == "done" for e in evaluations)),
                str(sum(e.status == "failed" for e in evaluations)),
                f"{record.training_cost.core_s:.4g}",
                ", ".join(f"{k} {num(v)}" for k, v in timings.items() if isinstance(v, int | float))
                or "-",
                ", ".join(f"{k}: {format_value(v)}" for k, v in best.items()) or "-",
            ]
        )
    header = [
        "iteration", "phase", "wall (s)", "candidates", "done", "failed", "training core-s",
        "timings (s)", "best",
    ]  # fmt: skip
    blocks: list[Block] = [Table(header, rows)]
    proposals = proposal_rows(campaign)
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
