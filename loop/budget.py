"""Budget checks: does one more oracle call fit in what the campaign has left?"""

from __future__ import annotations

from state.config import CampaignConfig, OracleConfig
from state.store import CampaignStore


def budget_exhausted_reason(
    store: CampaignStore, config: CampaignConfig, oracle: OracleConfig
) -> str | None:
    """Why one more call of ``oracle`` would exceed the budget, or ``None`` if it fits.

    Uses the oracle's expected cost (``oracle.cost``) against core-hours and GPU-hours left,
    and its per-oracle call cap.
    """
    budget = config.budget
    spent = store.spent()
    if budget.core_hours is not None:
        limit_s = budget.core_hours * 3600.0
        if spent.core_s + oracle.cost.core_s > limit_s:
            return (
                f"core-hour budget: {spent.core_s / 3600:.4g} of {budget.core_hours:g} core-h "
                f"spent; a {oracle.name} call needs ~{oracle.cost.core_s:g} core-s"
            )
    if budget.gpu_hours is not None:
        limit_s = budget.gpu_hours * 3600.0
        if spent.gpu_s + oracle.cost.gpu_s > limit_s:
            return (
                f"GPU-hour budget: {spent.gpu_s / 3600:.4g} of {budget.gpu_hours:g} GPU-h "
                f"spent; a {oracle.name} call needs ~{oracle.cost.gpu_s:g} GPU-s"
            )
    cap = budget.evaluations.get(oracle.name)
    if cap is not None and store.evaluation_counts().get(oracle.name, 0) >= cap:
        return f"{oracle.name} call cap of {cap} evaluations reached"
    return None
