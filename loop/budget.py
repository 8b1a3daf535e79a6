"""The campaign's budget: what it has spent against its limits, read once from the store.

One object answers every budget question: does one more oracle call fit, may the generator
still be trained, and the spent/limit/left lines that ``amloop status``, the live display and
the report show.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from amloop.state.config import BudgetConfig, CampaignConfig, OracleConfig
from amloop.state.schema import Cost
from amloop.state.store import CampaignStore

#: Seconds per hour: budgets are set in hours, costs measured in seconds.
HOUR_S = 3600.0


@dataclass(frozen=True)
class BudgetLine:
    """Spent vs limit for one budget item."""

    item: str
    spent: float
    limit: float | None
    unit: str

    @property
    def left(self) -> float | None:
        """What is left (``None`` when unlimited)."""
        return None if self.limit is None else max(self.limit - self.spent, 0.0)


@dataclass(frozen=True)
class _Hours:
    """One hour-denominated limit (core- or GPU-hours)."""

    label: str  # "core-hour"
    unit: str  # "core"
    spent_s: float
    limit_h: float | None


@dataclass(frozen=True)
class Budget:
    """The campaign's limits and what it has spent, at one moment.

    Attributes:
        limits: The config's ``budget`` section.
        spent: Compute spent so far (oracle calls and generator trainings).
        calls: Finished and running evaluations per oracle name.
    """

    limits: BudgetConfig
    spent: Cost
    calls: dict[str, int]

    @classmethod
    def of(cls, store: CampaignStore, config: CampaignConfig) -> Budget:
        """The budget of ``store``'s campaign now."""
        return cls(config.budget, store.spent(), store.evaluation_counts())

    def _hours(self) -> Iterator[_Hours]:
        yield _Hours("core-hour", "core", self.spent.core_s, self.limits.core_hours)
        yield _Hours("GPU-hour", "GPU", self.spent.gpu_s, self.limits.gpu_hours)

    def call_refused(self, oracle: OracleConfig) -> str | None:
        """Why one more call of ``oracle`` (its expected ``cost``) would exceed the budget:
        core- or GPU-hours left, or its call cap; ``None`` if it fits."""
        needs = (oracle.cost.core_s, oracle.cost.gpu_s)
        for hours, need_s in zip(self._hours(), needs, strict=True):
            if hours.limit_h is not None and hours.spent_s + need_s > hours.limit_h * HOUR_S:
                return (
                    f"{hours.label} budget: {hours.spent_s / HOUR_S:.4g} of {hours.limit_h:g} "
                    f"{hours.unit}-h spent; a {oracle.name} call needs ~{need_s:g} {hours.unit}-s"
                )
        cap = self.limits.evaluations.get(oracle.name)
        if cap is not None and self.calls.get(oracle.name, 0) >= cap:
            return f"{oracle.name} call cap of {cap} evaluations reached"
        return None

    def training_refused(self) -> str | None:
        """Why the generator may not be trained now (core- or GPU-hours spent), or ``None``."""
        for hours in self._hours():
            if hours.limit_h is not None and hours.spent_s >= hours.limit_h * HOUR_S:
                return (
                    f"{hours.label} budget spent ({hours.spent_s / HOUR_S:.4g} of "
                    f"{hours.limit_h:g} h)"
                )
        return None

    def lines(self, oracles: Sequence[OracleConfig]) -> list[BudgetLine]:
        """Spent and limit of core-hours, GPU-hours and the calls of each of ``oracles``."""
        core, gpu = self._hours()
        return [
            BudgetLine("compute", core.spent_s / HOUR_S, core.limit_h, "core-h"),
            BudgetLine("gpu", gpu.spent_s / HOUR_S, gpu.limit_h, "GPU-h"),
            *(
                BudgetLine(
                    f"{o.name} calls",
                    self.calls.get(o.name, 0),
                    self.limits.evaluations.get(o.name),
                    "evaluations",
                )
                for o in oracles
            ),
        ]


#: How the pseudo-oracles that are not calls are named among the activities.
ACTIVITY_NAMES = {
    "quality_gate": "quality gate",
    "refine": "refinement of generated cells",
    "melt_quench": "seed melt-quenches",
    "prior_seed": "seed cells from the generator prior",
}


def spent_by_activity(store: CampaignStore) -> dict[str, float]:
    """Core-seconds spent per activity: each oracle's calls, the quality gate, seed
    melt-quenches, the refinement of generated cells, generator training and sampling, and the
    campaign's share of its generator prior
    (whose whole cost is shown beside it, ``generator prior (whole)``, not counted)."""
    spent: dict[str, float] = {}
    for evaluation in store.evaluations(structures=False):
        name = ACTIVITY_NAMES.get(evaluation.oracle, f"{evaluation.oracle} calls")
        spent[name] = spent.get(name, 0.0) + evaluation.cost.core_s
    training = share = whole = 0.0
    for iteration in store.iterations():
        prior = iteration.metadata.get("generator_prior", {})
        share += float(prior.get("share_core_s", 0.0))
        whole = max(whole, float(prior.get("core_s", 0.0)))
        training += iteration.training_cost.core_s
    spent["generator training and sampling"] = training - share
    if whole:
        spent["generator prior (share)"] = share
        spent["generator prior (whole)"] = whole
    return spent
