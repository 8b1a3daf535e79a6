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
    for label, unit, used_s, limit_h, need_s in (
        ("core-hour", "core", spent.core_s, budget.core_hours, oracle.cost.core_s),
        ("GPU-hour", "GPU", spent.gpu_s, budget.gpu_hours, oracle.cost.gpu_s),
    ):
        if limit_h is not None and used_s + need_s > limit_h * 3600.0:
            return (
                f"{label} budget: {used_s / 3600:.4g} of {limit_h:g} {unit}-h spent; "
                f"a {oracle.name} call needs ~{need_s:g} {unit}-s"
            )
    cap = budget.evaluations.get(oracle.name)
    if cap is not None and store.evaluation_counts().get(oracle.name, 0) >= cap:
        return f"{oracle.name} call cap of {cap} evaluations reached"
    return None
