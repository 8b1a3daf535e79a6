"""How a running campaign reports itself: a snapshot of its state read from the store (for the
live display on a terminal) and, where the output is a file or a pipe (a batch job), one
timestamped line per event as it happens."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from amloop.loop.budget import Budget
from amloop.loop.history import Best, best_per_objective
from amloop.state.config import CampaignConfig
from amloop.state.schema import GATE_ORACLE
from amloop.state.store import CampaignStore

#: A batch log reports the oracle calls every this many finished ones.
CALLS_EVERY = 10
#: A batch log reports the core-hour budget when it crosses these shares of it.
BUDGET_MARKS = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class RunState:
    """A campaign's progress at one moment.

    Attributes:
        elapsed_s: Wall time since this run started (s).
        iteration: Index and phase of the newest iteration, ``None`` while seeding.
        max_iterations: The run's iteration limit, if any.
        calls: Oracle calls by status (``done``, ``failed``, ``running``), gate checks apart.
        gate: Quality-gate checks: ``passed`` and ``rejected``.
        seeds: Seed-set calls finished so far, and the seed set's size.
        best: The best value of each objective so far.
        core_h: Core-hours spent, and the budget's limit.
        call_s: Mean wall time of this run's finished oracle calls (s), ``None`` before one.
    """

    elapsed_s: float
    iteration: tuple[int, str] | None
    max_iterations: int | None
    calls: dict[str, int]
    gate: dict[str, int]
    seeds: tuple[int, int]
    best: list[Best] = field(default_factory=list)
    core_h: tuple[float, float | None] = (0.0, None)
    call_s: float | None = None

    @property
    def calls_finished(self) -> int:
        return self.calls.get("done", 0) + self.calls.get("failed", 0)

    def eta_s(self, config: CampaignConfig) -> float | None:
        """Seconds left at the measured call rate until the oracle-call caps are spent, where
        the campaign caps its calls; ``None`` otherwise."""
        caps = sum(config.budget.evaluations.values())
        if not caps or self.call_s is None:
            return None
        return max(0, caps - self.calls_finished) * self.call_s


def read_state(
    store: CampaignStore, config: CampaignConfig, started: float, max_iterations: int | None
) -> RunState:
    """The campaign's :class:`RunState` now (``started``: ``time.monotonic()`` at the run's
    start)."""
    iterations = store.iterations()
    calls: dict[str, int] = {}
    gate = {"passed": 0, "rejected": 0}
    seeds_done = 0
    durations = []
    for evaluation in store.evaluations(structures=False):
        if evaluation.oracle == GATE_ORACLE:
            gate["passed" if evaluation.status == "done" else "rejected"] += 1
            continue
        calls[evaluation.status] = calls.get(evaluation.status, 0) + 1
        finished = evaluation.status in ("done", "failed")
        seeds_done += evaluation.iteration is None and finished
        if finished and evaluation.started_at and evaluation.finished_at:
            durations.append((evaluation.finished_at - evaluation.started_at).total_seconds())
    spent = Budget.of(store, config).lines(config.oracles)[0]
    return RunState(
        elapsed_s=time.monotonic() - started,
        iteration=(iterations[-1].index, iterations[-1].phase) if iterations else None,
        max_iterations=max_iterations,
        calls=calls,
        gate=gate,
        seeds=(seeds_done, config.acquisition.n_initial),
        best=best_per_objective(store, config),
        core_h=(spent.spent, spent.limit),
        call_s=sum(durations[-50:]) / len(durations[-50:]) if durations else None,
    )


def clock(seconds: float) -> str:
    """``h:mm:ss`` of a duration."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def event_lines(before: RunState | None, now: RunState) -> list[str]:
    """What happened between two states, one line each: iteration starts and ends, every
    :data:`CALLS_EVERY` oracle calls, new best values, budget marks crossed."""
    lines = []
    old_iteration = before.iteration if before else None
    if now.iteration != old_iteration and now.iteration is not None:
        index, phase = now.iteration
        of = f" of {now.max_iterations}" if now.max_iterations else ""
        if old_iteration is None or old_iteration[0] != index:
            if old_iteration is not None and old_iteration[1] not in ("done", "failed"):
                lines.append(f"iteration {old_iteration[0]} done")
            lines.append(f"iteration {index} started ({index + 1}{of})")
        if phase in ("done", "failed"):
            lines.append(f"iteration {index} {phase}")
    old_calls = before.calls_finished if before else 0
    if now.calls_finished // CALLS_EVERY > old_calls // CALLS_EVERY or (
        before is None and now.calls_finished
    ):
        lines.append(
            f"oracle calls: {now.calls.get('done', 0)} done, {now.calls.get('failed', 0)} "
            f"failed; gate: {now.gate['passed']} passed, {now.gate['rejected']} rejected"
        )
    old_best = {b.property: b.value for b in before.best} if before else {}
    for best in now.best:
        if old_best.get(best.property) != best.value:
            lines.append(
                f"best {best.property}: {best.value:.5g} {best.unit} ({best.formula}, "
                f"{best.source})"
            )
    spent, limit = now.core_h
    if limit:
        old_share = before.core_h[0] / limit if before else 0.0
        for mark in BUDGET_MARKS:
            if old_share < mark <= spent / limit:
                lines.append(f"budget: {mark:.0%} of {limit:g} core-h spent")
    return lines


def stamped(line: str) -> str:
    """``line`` after the UTC time (a batch log's line)."""
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} {line}"
