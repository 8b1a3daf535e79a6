"""Which oracle runs a proposal: the one that tells most about the truth per unit cost.

The acquisition picks *where* to look at the top fidelity (1.0, experiment). For a proposal
``x`` and each candidate oracle ``o`` (fidelity ``s_o``, cost ``c_o``) the surrogate gives the
joint posterior of ``f(x, 1)`` and ``f(x, s_o)``; one call of ``o`` removes the fraction

``v_o(x) = Cov[f(x, 1), f(x, s_o)]² / ((Var[f(x, s_o)] + σ²_n) Var[f(x, 1)])``

of the posterior variance of ``f(x, 1)`` (``σ²_n`` the objective's observation noise), summed
over the objectives ``o`` measures. **Rule:** run ``argmax_o v_o(x) / c_o`` (the cheaper on a
tie). A one-step, variance-reduction form of cost-aware multi-fidelity acquisition (as in
multi-fidelity knowledge gradient / MF-GP-UCB): a cheap oracle wins while it still correlates
with the truth at ``x`` and is uncertain there; an expensive one (DFT, long MD, a lab request)
only where the cheap one has little left to say, i.e. its ``v`` is below ``c_cheap / c_o`` of
the expensive one's — typically at the best proposals, close to data already taken cheaply.
Without a model (space-filling or random designs) the cheapest oracle runs.

Costs ``c_o`` (core-s + GPU-s per call): the mean measured ``cost`` of ``o``'s done evaluations in
the store; the config's ``cost`` when none is measured. An ``experiment`` (a lab request) costs
its configured ``cost`` when one is given, else ``acquisition.lab_request_core_s``.

Which objectives ``o`` measures: those it has reported in the store, those naming it as their
``oracle``, and for an experiment its ``properties`` option; an oracle with none of these counts
for the objectives that name no oracle. Oracles whose evaluation budget is spent are left out
(unless all are). When no oracle measures an objective, all are candidates, so a proposal
always names a configured oracle.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from botorch.posteriors import GPyTorchPosterior

from amloop.acquisition.surrogate import DTYPE, Surrogate, observation_noise
from amloop.state.config import CampaignConfig, OracleConfig
from amloop.state.store import CampaignStore

#: Oracle type of the lab.
EXPERIMENT = "experiment"
#: Smallest cost of a call (core-s), so a free oracle does not divide by zero.
MIN_COST_S = 1e-3


@dataclass(frozen=True)
class OracleSource:
    """A configured oracle as a source of objective values.

    Attributes:
        name: The oracle's name in the config.
        fidelity: Its fidelity in ``[0, 1]``.
        cost_s: Cost of one call (core-s + GPU-s).
        measured: Whether ``cost_s`` is the mean of measured costs (else from the config).
        properties: Objective properties it measures.
    """

    name: str
    fidelity: float
    cost_s: float
    measured: bool
    properties: frozenset[str]


def oracle_sources(
    config: CampaignConfig, store: CampaignStore | None = None
) -> list[OracleSource]:
    """The candidate oracles of ``config``, cheapest first (see the module docstring).

    Args:
        config: The campaign's config (oracles, objectives, budget).
        store: The campaign's store for measured costs, reported properties and spent budgets;
            ``None``: the config alone.
    """
    costs: dict[str, list[float]] = defaultdict(list)
    reported: dict[str, set[str]] = defaultdict(set)
    counts: dict[str, int] = {}
    if store is not None:
        for evaluation in store.evaluations(status="done", structures=False):
            costs[evaluation.oracle].append(evaluation.cost.core_s + evaluation.cost.gpu_s)
            reported[evaluation.oracle].update(evaluation.properties)
        counts = store.evaluation_counts()
    objectives = set(config.objective_properties)
    unnamed = frozenset(o.property for o in config.objectives if o.oracle is None)
    sources = []
    for oracle in config.oracles:
        measures = (reported[oracle.name] | _named(oracle, config)) & objectives
        cost, measured = _cost(oracle, costs[oracle.name], config)
        sources.append(
            OracleSource(
                name=oracle.name,
                fidelity=oracle.fidelity,
                cost_s=max(cost, MIN_COST_S),
                measured=measured,
                properties=frozenset(measures) or unnamed,
            )
        )
    limits = config.budget.evaluations
    open_ = [s for s in sources if counts.get(s.name, 0) < limits.get(s.name, np.inf)]
    useful = [s for s in open_ or sources if s.properties]
    if not useful:
        useful = [
            OracleSource(s.name, s.fidelity, s.cost_s, s.measured, frozenset(objectives))
            for s in open_ or sources
        ]
    return sorted(useful, key=lambda s: s.cost_s)


def _named(oracle: OracleConfig, config: CampaignConfig) -> set[str]:
    """Objective properties assigned to ``oracle`` by the config."""
    named = {o.property for o in config.objectives if o.oracle == oracle.name}
    if oracle.type == EXPERIMENT:
        listed = oracle.options.get("properties", [])
        named.update(listed.split(",") if isinstance(listed, str) else listed)
    return {p.strip() for p in named}


def _cost(
    oracle: OracleConfig, measured: list[float], config: CampaignConfig
) -> tuple[float, bool]:
    """Cost of one call of ``oracle`` (core-s + GPU-s) and whether it was measured."""
    if oracle.type == EXPERIMENT:
        if "cost" in oracle.model_fields_set:
            return oracle.cost.core_s + oracle.cost.gpu_s, False
        return config.acquisition.lab_request_core_s, False
    positive = [c for c in measured if c > 0]
    if positive:
        return float(np.mean(positive)), True
    return oracle.cost.core_s + oracle.cost.gpu_s, False


def variance_removed(
    surrogate: Surrogate, X: np.ndarray, sources: list[OracleSource]
) -> np.ndarray:
    """``v_o(x)``: fraction of the top-fidelity posterior variance one call of each source
    removes, summed over the objectives it measures.

    Args:
        surrogate: The fitted objectives' GPs.
        X: Proposals, shape ``(m, d)`` (the fidelity column is overwritten).
        sources: Candidate oracles, ``O`` of them.

    Returns:
        Shape ``(m, O)``.
    """
    fidelities = torch.tensor([1.0] + [s.fidelity for s in sources], dtype=DTYPE)
    points = torch.as_tensor(X, dtype=DTYPE).unsqueeze(1).repeat(1, len(fidelities), 1)
    points[..., surrogate.fidelity_index] = fidelities
    value = torch.zeros(len(X), len(sources), dtype=DTYPE)
    for prop, model in zip(surrogate.properties, surrogate.models, strict=True):
        with torch.no_grad():
            posterior = cast(GPyTorchPosterior, model.posterior(points))
            cov = posterior.distribution.covariance_matrix  # (m, 1 + O, 1 + O)
        top = cov[:, 0, 0].clamp_min(1e-18)
        cross = cov[:, 0, 1:]
        own = torch.diagonal(cov, dim1=-2, dim2=-1)[:, 1:].clamp_min(0.0)
        fraction = cross**2 / ((own + observation_noise(model)) * top.unsqueeze(-1))
        measures = torch.tensor([prop in s.properties for s in sources], dtype=DTYPE)
        value += fraction.clamp(0.0, 1.0) * measures
    return value.numpy()


def choose_oracles(
    surrogate: Surrogate | None, X: np.ndarray, sources: list[OracleSource]
) -> list[tuple[OracleSource, str]]:
    """The oracle to run at each proposal and why (the rule of the module docstring).

    Args:
        surrogate: The fitted GPs; ``None``: the cheapest source for every proposal.
        X: Proposals, shape ``(m, d)`` (only ``m`` is used without a model).
        sources: Candidate oracles, cheapest first (:func:`oracle_sources`).

    Returns:
        ``m`` pairs (source, explanation).
    """
    if surrogate is None:
        return [(sources[0], f"{sources[0].name}: cheapest oracle (no model yet)")] * len(X)
    value = variance_removed(surrogate, X, sources)
    per_cost = value / np.array([s.cost_s for s in sources])
    choices = []
    for row_value, row_ratio in zip(value, per_cost, strict=True):
        best = int(np.argmax(row_ratio))
        terms = ", ".join(
            f"{s.name} {v:.0%} / {s.cost_s:.3g} core-s"
            for s, v in zip(sources, row_value, strict=True)
        )
        choices.append((sources[best], f"{sources[best].name} by σ² removed per cost ({terms})"))
    return choices
