"""The end of an iteration and of the campaign: the best values recorded, the budget, iteration and patience rules."""

from __future__ import annotations

from amloop.loop.budget import Budget
from amloop.loop.history import best_per_objective
from amloop.loop.runs import iteration_limit_reason
from amloop.loop.steps.run import CampaignRun, is_cheap
from amloop.loop.steps.sampling import timings
from amloop.oracles.experiment import ExperimentOracle
from amloop.state.config import CampaignConfig


def finish_iteration(run: CampaignRun, index: int, timings_s: dict[str, float]) -> None:
    """Mark iteration ``index`` done, adding ``timings_s`` to its phase timings."""
    run.store.update_iteration(
        index, phase="done", metadata={"timings_s": {**timings(run, index), **timings_s}}
    )


def record(run: CampaignRun, index: int, phase_seconds: dict[str, float]) -> dict[str, float]:
    """Store the best value per objective after iteration ``index``; returns it."""
    best = {b.property: b.value for b in best_per_objective(run.store, run.config)}
    counts: dict[str, int] = {}
    for evaluation in run.store.evaluations(iteration=index):
        counts[evaluation.status] = counts.get(evaluation.status, 0) + 1
    run.store.update_iteration(
        index,
        phase="retrain",
        metadata={
            "best": best,
            "evaluations": counts,
            "timings_s": {**timings(run, index), **phase_seconds},
        },
    )
    return best


def stop_reason(run: CampaignRun, max_iterations: int | None) -> str | None:
    """Why the campaign should not start another iteration, or ``None``."""
    computing = [o for o in run.config.oracles if o.type != ExperimentOracle.type_name]
    cheap = [o for o in computing if is_cheap(o)] or computing
    budget = Budget.of(run.store, run.config)
    reasons = [budget.call_refused(o) for o in cheap]
    if cheap and all(reasons):
        return f"budget spent: {reasons[0]}"
    done = [r for r in run.store.iterations() if r.phase == "done"]
    if (reason := iteration_limit_reason(len(done), max_iterations)) is not None:
        return reason
    patience = run.config.acquisition.patience
    if len(done) > patience:
        history = [r.metadata.get("best", {}) for r in done]
        if not any(
            _improved(run.config, history[-patience - 1], later) for later in history[-patience:]
        ):
            return f"no improvement in the last {patience} iteration(s) (acquisition.patience)"
    return None


def _improved(config: CampaignConfig, before: dict[str, float], after: dict[str, float]) -> bool:
    for objective in config.objectives:
        old, new = before.get(objective.property), after.get(objective.property)
        if new is None:
            continue
        if old is None:
            return True
        sign = objective.sign
        if sign * (new - old) > 1e-9 * max(abs(old), 1.0):
            return True
    return False
