"""The seed set: structures a campaign starts from, scored by its cheap oracles.

Crystalline campaigns get random solid solutions on a composition grid (seed paper 001:
20 orderings per composition, 54-atom cells). The plan is a pure function of the config and
its seed, so an interrupted build re-creates the same plan and only runs what is missing:
finished and failed evaluations are kept, never redone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from generator.solid_solution import composition_grid, random_solid_solution
from loop.budget import budget_exhausted_reason
from oracles.base import Oracle
from state.config import CampaignConfig, OracleConfig
from state.schema import Candidate
from state.store import CampaignStore

#: Called after each structure: (structures finished, total, last message).
ProgressCallback = Callable[[int, int, str], None]


@dataclass
class SeedReport:
    """What one seed build did."""

    planned: int = 0
    evaluated: int = 0
    skipped_done: int = 0
    failed: int = 0
    stopped_reason: str | None = None
    failures: list[str] = field(default_factory=list)


def seed_plan(
    config: CampaignConfig, n: int, *, orderings: int = 20, step: float = 0.1
) -> list[Candidate]:
    """``n`` seed candidates: ``orderings`` random orderings per grid composition.

    Grid compositions (multiples of ``step`` inside the campaign's bounds) are visited in an
    order shuffled by ``config.seed``; each composition has its own seeded generator, so a
    larger ``n`` extends a smaller plan instead of replacing it. When the grid has fewer than
    ``n / orderings`` points, each composition gets more orderings.

    Raises:
        ValueError: amorphous campaigns (they need melt-quenched seeds) or an empty grid.
    """
    kind = config.cell.lattice
    if kind == "amorphous":
        raise ValueError(
            "amorphous campaigns are seeded with melt-quenched cells, which need the MD oracle "
            "(issue '[3 of 10]'); set cell.lattice to fcc, bcc or hcp for a crystalline seed set"
        )
    grid = composition_grid(config.elements, dict(config.bounds), step=step)
    if not grid:
        raise ValueError(f"no composition on a {step:g} grid satisfies the bounds {config.bounds}")
    visit = np.random.default_rng(config.seed).permutation(len(grid))
    per_composition = max(orderings, math.ceil(n / len(grid)))
    plan: list[Candidate] = []
    for index in visit[: math.ceil(n / per_composition)]:
        rng = np.random.default_rng([config.seed, int(index)])
        for _ in range(per_composition):
            structure = random_solid_solution(grid[index], kind, config.cell.n_atoms, rng)
            plan.append(Candidate(structure=structure, origin="seed"))
    return plan[:n]


def build_seed_set(
    store: CampaignStore,
    config: CampaignConfig,
    plan: list[Candidate],
    oracles: list[tuple[OracleConfig, Oracle]],
    *,
    progress: ProgressCallback | None = None,
) -> SeedReport:
    """Store ``plan`` and score every candidate with each oracle, resuming where a previous
    build stopped; stops cleanly when the budget would be exceeded.
    """
    report = SeedReport(planned=len(plan))
    for _, oracle in oracles:
        check = getattr(oracle, "check_elements", None)
        if check is not None:
            check(config.elements)  # OracleSetupError before any budget is spent
    finished = {
        (e.candidate_hash, e.oracle) for e in store.evaluations() if e.status in ("done", "failed")
    }
    for index, candidate in enumerate(plan, start=1):
        stored = store.add_candidate(candidate)
        message = stored.formula
        for oracle_config, oracle in oracles:
            if (stored.content_hash, oracle.name) in finished:
                report.skipped_done += 1
                continue
            reason = budget_exhausted_reason(store, config, oracle_config)
            if reason is not None:
                report.stopped_reason = reason
                store.log_event("seed_stopped", f"seed build stopped: {reason}")
                return report
            store.claim_evaluation(stored.content_hash, oracle.name, oracle.fidelity)
            evaluation = store.record_evaluation(oracle.evaluate(stored))
            report.evaluated += 1
            if evaluation.status == "failed":
                report.failed += 1
                report.failures.append(f"{stored.formula} {oracle.name}: {evaluation.error}")
            message = f"{stored.formula} {oracle.name}: {evaluation.status}"
        if progress is not None:
            progress(index, len(plan), message)
    return report
