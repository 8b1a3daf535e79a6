"""The next conditions to generate: a batch of compositions (and PDM targets) from the surrogates.

``propose(store, config)`` reads the campaign's data (:func:`build_training_set`), and
:func:`propose_from_training` does the rest:

1. above ``acquisition.max_points`` values per objective, a subsample (:func:`subsample`);
2. one GP per objective (:mod:`acquisition.surrogate`), one per ``constraints:`` entry with
   enough values and, where some oracle calls failed and others succeeded, a GP on the success
   indicator (:mod:`acquisition.feasibility`); the last two are outcome constraints
   (:mod:`acquisition.outcome_constraints`); given the previous acquisition's hyper-parameters
   (``hyperparameters``), a GP whose data grew by less than ``acquisition.refit_growth`` keeps
   them (:class:`acquisition.surrogate.HyperparameterReuse`);
3. a BoTorch acquisition function, maximised with :func:`botorch.optim.optimize_acqf` over the
   search space of :mod:`acquisition.constraints` (bounded simplex, PDM cone, fidelity fixed
   at 1.0): one objective ``qLogNoisyExpectedImprovement`` (``qUpperConfidenceBound`` with
   strategy ``qUCB``); several ``qLogNoisyExpectedHypervolumeImprovement`` with the reference
   point from the objectives' ``threshold`` (else 10 % of the observed range below the worst
   value). Submitted, not yet evaluated compositions are ``X_pending``. The batch is built by
   sequential greedy (each point with the pending and earlier ones as ``X_pending``). When
   ``max_elements`` binds, each point is optimised on the support of the best raw sample
   (itself a sparse projection), the other elements and their PDM pairs fixed at 0 (as the
   ``fixed_features_list`` of :func:`botorch.optim.optimize_acqf_mixed`); in a campaign of
   several lattices, on the lattice of the best raw sample (spread over them); every point is
   finally projected onto the feasible set (:meth:`SearchSpace.project`); in a lattice
   campaign the acquisition is evaluated, and the targets returned, at the realised PDM
   (:meth:`SearchSpace.realise`: every row of the full matrix sums to the first shell);
4. the oracle of each proposal by value per cost (:mod:`acquisition.fidelity`).

With fewer than :data:`MIN_POINTS` values for some objective, a space-filling design is returned
instead: greedy max-min distance picks (away from data and pending points) among samples of the
constrained simplex. Strategy ``random`` returns samples of the constrained simplex (the random
baseline); ``acquisition.features: composition`` drops the PDM (the composition-only baseline).
All paths are deterministic for a given ``seed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from botorch.acquisition import (
    AcquisitionFunction,
    qLogNoisyExpectedImprovement,
    qUpperConfidenceBound,
)
from botorch.acquisition.multi_objective import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
from botorch.acquisition.objective import ConstrainedMCObjective, GenericMCObjective
from botorch.acquisition.utils import get_infeasible_cost, prune_inferior_points
from botorch.models import ModelListGP
from botorch.models.model import Model
from botorch.optim import optimize_acqf
from botorch.optim.initializers import initialize_q_batch
from botorch.sampling import SobolQMCNormalSampler
from torch import Tensor

from amloop.acquisition.constraints import SearchSpace
from amloop.acquisition.feasibility import FEASIBILITY_GP, fit_feasibility
from amloop.acquisition.features import TrainingSet, build_training_set
from amloop.acquisition.fidelity import OracleSource, choose_oracles, oracle_sources
from amloop.acquisition.outcome_constraints import (
    OutcomeConstraint,
    constraint_gp,
    fit_config_constraints,
)
from amloop.acquisition.surrogate import (
    DTYPE,
    HyperparameterReuse,
    Surrogate,
    fit_surrogate,
    input_bounds,
    subsample,
)
from amloop.generator.data import composition_vector
from amloop.state.config import CampaignConfig
from amloop.state.store import CampaignStore

#: Fewest values per objective for which a GP is fitted; below, a space-filling design.
MIN_POINTS = 3
#: Monte-Carlo samples of the qLog(N)E(HV)I estimators.
MC_SAMPLES = 64
#: Restarts and raw samples of ``optimize_acqf``.
NUM_RESTARTS = 4
RAW_SAMPLES = 256
#: Iterations of SLSQP per restart (measured on a 860-point Ni-Fe-Cr campaign, 8 seeds: 30 gives
#: a mean log-EI of the proposed point 0.012 below 100's, EI 1 % lower, in half the time, while
#: the restarts spread it by 0.05; on a 476-point set with a feasibility GP the same points);
#: raw q-batches per acquisition call.
MAX_ITER = 30
RAW_BATCH = 64
#: Cheaper settings for qLogNEHVI (its box decompositions dominate the cost).
MC_SAMPLES_MO = 32
NUM_RESTARTS_MO = 4
RAW_SAMPLES_MO = 128
#: Most baseline points of qLogNEI: those most often the best in posterior samples (BoTorch's
#: pruning, capped). Each evaluation takes the joint posterior of the baseline and the batch,
#: so its cost grows with the square of the baseline; measured on task A at 1000 calls, the
#: pruned baseline kept 129 of 395 points and the optimisation took ~34 s per batch of 4.
MAX_BASELINE = 32
#: Exploration weight of qUCB.
UCB_BETA = 2.0


@dataclass
class Proposal:
    """One proposed condition for the generator, with why it was chosen.

    Attributes:
        composition: Atomic fractions over the campaign's elements (sum 1).
        pdm_target: PDM vector to condition on (order of :func:`generator.pdm.pdm_labels`), or
            ``None`` when the features have no PDM or no model was fitted.
        fidelity: Fidelity of :attr:`oracle`, the source to run.
        oracle: The configured oracle to run (:mod:`acquisition.fidelity`); ``None`` only when
            the config has no oracle.
        score: Acquisition value of this point alone (log-EI / log-EHVI / UCB, feasibility
            included); for a space-filling design the distance (fractions) to the nearest data
            or pending point; 0 for random.
        mean: Posterior mean per objective property at fidelity 1.0, in its unit (empty
            without a model).
        sigma: Posterior σ per objective property at fidelity 1.0, in its unit (empty without
            a model).
        reason: How it was chosen, in words.
        lattice: The lattice to generate on (a campaign of several lattices), else ``None``.
    """

    composition: dict[str, float]
    pdm_target: list[float] | None
    fidelity: float
    oracle: str | None
    score: float
    mean: dict[str, float] = field(default_factory=dict)
    sigma: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    lattice: str | None = None


def propose(
    store: CampaignStore,
    config: CampaignConfig,
    *,
    q: int | None = None,
    seed: int = 0,
    use_pdm: bool | None = None,
    pending: Sequence[Mapping[str, float]] | None = None,
    hyperparameters: dict[str, Any] | None = None,
    through_iteration: int | None = None,
) -> list[Proposal]:
    """The next ``q`` conditions for the campaign, best first for a fitted model.

    Args:
        store: The campaign's store (done/failed evaluations, measurements, oracle costs).
        config: The campaign's config (elements, bounds, objectives, acquisition settings).
        q: Batch size; default ``config.acquisition.batch_size``.
        seed: Seed of every random choice (samplers, restarts, designs).
        use_pdm: Include the PDM in the features and propose PDM targets (``False``: the
            composition-only baseline); default from ``config.acquisition.features``.
        pending: Compositions submitted but not yet evaluated (fractions by element).
        hyperparameters: The previous acquisition's GP hyper-parameters
            (:attr:`HyperparameterReuse.fitted`), updated in place with this one's; ``None``
            fits every GP.
        through_iteration: Fit on the evaluations up to this iteration only (``None``: all).

    Returns:
        ``q`` :class:`Proposal` records.
    """
    if use_pdm is None:
        use_pdm = config.acquisition.features == "composition+pdm"
    training = build_training_set(
        store, config, use_pdm=use_pdm, through_iteration=through_iteration
    )
    return propose_from_training(
        training,
        config,
        sources=oracle_sources(config, store),
        q=q,
        seed=seed,
        pending=pending,
        hyperparameters=hyperparameters,
    )


def propose_from_training(
    training: TrainingSet,
    config: CampaignConfig,
    *,
    sources: list[OracleSource] | None = None,
    q: int | None = None,
    seed: int = 0,
    pending: Sequence[Mapping[str, float]] | None = None,
    hyperparameters: dict[str, Any] | None = None,
) -> list[Proposal]:
    """:func:`propose` on a ready training set.

    Args:
        training: Features and targets (:func:`build_training_set`).
        config: The campaign's config.
        sources: Candidate oracles (:func:`oracle_sources`); default from the config alone.
        q: Batch size; default ``config.acquisition.batch_size``.
        seed: Seed of every random choice.
        pending: Compositions submitted but not yet evaluated.
        hyperparameters: As for :func:`propose`.

    Returns:
        ``q`` :class:`Proposal` records.
    """
    q = q or config.acquisition.batch_size
    reuse = None
    if hyperparameters is not None:
        reuse = HyperparameterReuse(
            config.acquisition.refit_growth, _gp_sizes(training), hyperparameters
        )
    sources = sources if sources is not None else oracle_sources(config)
    elements = list(config.elements)
    n_el = len(elements)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        training = subsample(training, config)
        space = SearchSpace.build(training, config)
        observed = training.all_X()
        mean_pdm = (
            observed[:, training.pdm_slice].mean(axis=0)
            if len(observed)
            else np.zeros(training.pdm_slice.stop - training.pdm_slice.start)
        )
        pending_comp = np.array([composition_vector(p, elements) for p in pending or []])
        pending_comp = pending_comp.reshape(len(pending_comp), n_el)
        counts = [len(training.objectives[o.property]) for o in config.objectives]
        enough = min(counts) >= MIN_POINTS

        if config.acquisition.strategy == "random" or not enough:
            pool = space.sample(max(RAW_SAMPLES, 4 * q), seed)
            if config.acquisition.strategy == "random":
                compositions, scores = pool[:q], np.zeros(q)
                reason = "random: uniform on the constrained simplex"
            else:
                existing = np.vstack([observed[:, :n_el], pending_comp])
                compositions, scores = _space_filling(existing, pool, q)
                reason = f"space-filling: too few data ({min(counts)} < {MIN_POINTS} values)"
            surrogate = fit_surrogate(training, config, reuse) if enough else None
            X = space.pending_features(compositions, mean_pdm)
            return _records(
                X, None, scores, surrogate, elements, sources, [reason] * q, training.lattices
            )

        surrogate = fit_surrogate(training, config, reuse)
        bounds = input_bounds(training, config)
        feasibility = fit_feasibility(training, bounds, reuse)
        outcome_constraints = fit_config_constraints(training, config, bounds, reuse)
        if feasibility is not None:
            outcome_constraints.append(feasibility)
        X_pending = None
        if len(pending_comp):
            pending_X = space.pending_features(pending_comp, mean_pdm)
            X_pending = space.realise(torch.tensor(pending_X, dtype=DTYPE))
        acqf, name = _acquisition(surrogate, outcome_constraints, training, config, seed, X_pending)
        if space.coordination:
            acqf = _OnRealisedTargets(acqf, space)
        X = _optimise(acqf, space, q, seed, X_pending, multi=len(config.objectives) > 1)
        X = space.realise(torch.tensor(X, dtype=DTYPE)).numpy()
        with torch.no_grad():
            scores = acqf(torch.tensor(X, dtype=DTYPE).unsqueeze(1)).numpy()
        order = np.argsort(-scores, kind="stable")
        X = X[order]
        reason = f"{name} on {sum(counts)} values of {', '.join(surrogate.properties)}"
        if X_pending is not None:
            reason += f", {len(X_pending)} pending"
        reasons = [reason] * q
        for constraint in outcome_constraints:
            if constraint is feasibility:
                failed = int(np.sum(training.feasibility_y == 0))
                what = f"P(feasible) {{p:.2f}} ({failed} failed calls fitted)"
            else:
                what = f"P({constraint.label}) {{p:.2f}}"
            reasons = [
                f"{r}, {what.format(p=p)}"
                for r, p in zip(reasons, constraint.probability(X), strict=True)
            ]
        pdm_targets = X[:, training.pdm_slice] if training.use_pdm else None
        return _records(
            X, pdm_targets, scores[order], surrogate, elements, sources, reasons, training.lattices
        )


def _gp_sizes(training: TrainingSet) -> dict[str, int]:
    """Training points of every GP an acquisition may fit, by its name in
    :class:`HyperparameterReuse` (before :func:`subsample`)."""
    sizes = {prop: len(data) for prop, data in training.objectives.items()}
    sizes |= {constraint_gp(prop): len(data) for prop, data in training.objectives.items()}
    return sizes | {FEASIBILITY_GP: len(training.feasibility_y)}


def _space_filling(existing: np.ndarray, pool: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy max-min picks of ``q`` rows of ``pool`` away from ``existing`` and each other."""
    chosen: list[int] = []
    scores: list[float] = []
    reference = existing.copy()
    for _ in range(q):
        if len(reference):
            distance = np.linalg.norm(pool[:, None, :] - reference[None, :, :], axis=-1).min(1)
        else:
            distance = np.linalg.norm(pool - pool.mean(axis=0), axis=1)  # start at the centre
            distance = -distance
        distance[chosen] = -np.inf
        best = int(np.argmax(distance))
        chosen.append(best)
        scores.append(float(max(distance[best], 0.0)))
        reference = np.vstack([reference, pool[best][None]]) if len(reference) else pool[[best]]
    return pool[chosen], np.array(scores)


def _reference_point(training: TrainingSet, config: CampaignConfig) -> list[float]:
    point = []
    for objective in config.objectives:
        sign = objective.sign
        if objective.threshold is not None:
            point.append(sign * objective.threshold)
            continue
        values = sign * training.objectives[objective.property].Y
        span = float(values.max() - values.min()) or 1.0
        point.append(float(values.min()) - 0.1 * span)
    return point


def _acquisition(
    surrogate: Surrogate,
    outcome_constraints: Sequence[OutcomeConstraint],
    training: TrainingSet,
    config: CampaignConfig,
    seed: int,
    X_pending: Tensor | None,
) -> tuple[AcquisitionFunction, str]:
    """The acquisition function (with the outcome constraints: the config's and feasibility)
    and its name."""
    baseline = torch.tensor(training.all_X(), dtype=DTYPE)
    baseline[:, training.fidelity_index] = 1.0
    baseline = torch.unique(baseline, dim=0)
    m = len(surrogate.properties)
    model: Model = surrogate.model
    constraints = None
    if outcome_constraints:
        model = ModelListGP(*surrogate.models, *(c.model for c in outcome_constraints))
        constraints = [f for k, c in enumerate(outcome_constraints) for f in c.callables(m + k)]
    n_mc = MC_SAMPLES_MO if m > 1 else MC_SAMPLES
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([n_mc]), seed=seed)
    if m > 1:
        ref = _reference_point(training, config)
        acqf: AcquisitionFunction = qLogNoisyExpectedHypervolumeImprovement(
            model=model,
            ref_point=ref,
            X_baseline=baseline,
            sampler=sampler,
            objective=IdentityMCMultiOutputObjective(outcomes=list(range(m))),
            constraints=constraints,
            X_pending=X_pending,
            prune_baseline=True,
        )
        return acqf, f"qLogNEHVI (reference point {[round(r, 4) for r in ref]})"

    def first(samples: Tensor, X: Tensor | None = None) -> Tensor:
        return samples[..., 0]

    if config.acquisition.strategy == "qUCB":
        objective = (
            GenericMCObjective(first)
            if constraints is None
            else ConstrainedMCObjective(
                first, constraints, infeasible_cost=get_infeasible_cost(baseline, model, first)
            )
        )
        acqf = qUpperConfidenceBound(
            model, beta=UCB_BETA, sampler=sampler, objective=objective, X_pending=X_pending
        )
        return acqf, "qUCB"
    objective = GenericMCObjective(first)
    acqf = qLogNoisyExpectedImprovement(
        model,
        X_baseline=prune_inferior_points(
            model,
            baseline,
            objective=objective,
            constraints=constraints,
            max_frac=min(1.0, MAX_BASELINE / len(baseline)),
        ),
        sampler=sampler,
        objective=objective,
        constraints=constraints,
        X_pending=X_pending,
        prune_baseline=False,
    )
    return acqf, "qLogNEI"


class _OnRealisedTargets(AcquisitionFunction):
    """``acqf`` at :meth:`SearchSpace.realise` of its inputs (and pending points): the PDM
    targets an ordering on the lattice can have, which is what the generator will make."""

    def __init__(self, acqf: AcquisitionFunction, space: SearchSpace) -> None:
        super().__init__(model=acqf.model)
        self.acqf = acqf
        self.space = space

    def forward(self, X: Tensor) -> Tensor:
        return self.acqf(self.space.realise(X))

    def set_X_pending(self, X_pending: Tensor | None = None) -> None:
        self.acqf.set_X_pending(None if X_pending is None else self.space.realise(X_pending))


def _optimise(
    acqf: AcquisitionFunction,
    space: SearchSpace,
    q: int,
    seed: int,
    X_pending: Tensor | None,
    *,
    multi: bool,
) -> np.ndarray:
    """Maximise ``acqf`` over ``space`` by sequential greedy (BoTorch's ``sequential=True``):
    one point at a time with the earlier ones pending. Shape ``(q, d)``, projected.

    Start points: BoTorch's ``initialize_q_batch`` among raw samples of the feasible set
    (:meth:`SearchSpace.sample_features`, each on its own sparse support). When the
    cardinality binds, the point is optimised on the support of the best raw sample (the other
    elements and their PDM pairs fixed at 0), with the raw samples projected onto it. In a
    campaign of several lattices the raw samples go to the lattices in turn and the point is
    optimised on the lattice of the best (its one-hot fixed): one search instead of one per
    lattice, the lattice chosen like the support (task A, FCC + BCC: the searches per lattice
    were 36 of the acquisition's 48 s over its first 150 calls)."""
    restarts = NUM_RESTARTS_MO if multi else NUM_RESTARTS
    raw = torch.tensor(
        space.sample_features(RAW_SAMPLES_MO if multi else RAW_SAMPLES, seed), dtype=DTYPE
    ).unsqueeze(1)  # (r, 1, d)
    options: dict[str, bool | float | int | str] = {"batch_limit": restarts, "maxiter": MAX_ITER}

    def values(X: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.cat([acqf(chunk) for chunk in X.split(RAW_BATCH)])

    def optimise_on(lattice: int | None, start: Tensor, start_values: Tensor) -> np.ndarray:
        support = None
        if space.max_elements < space.n_elements:
            best = start[int(torch.argmax(start_values)), 0, : space.n_elements].numpy()
            support = space.support(best)
            start = torch.tensor(space.project(start[:, 0].numpy(), support)).unsqueeze(1)
            start_values = values(start)
        initial, _ = initialize_q_batch(start, start_values, n=restarts)
        candidates, _ = optimize_acqf(
            acqf,
            bounds=space.bounds(support),
            q=1,
            num_restarts=restarts,
            batch_initial_conditions=initial,
            equality_constraints=space.equality_constraints(),
            inequality_constraints=space.inequality_constraints(support) or None,
            fixed_features=space.fixed_features(support, lattice),
            options=options,
        )
        return space.project(candidates.detach().numpy())[0]

    def optimise() -> np.ndarray:
        """The best point, optimised on the lattice of the best raw sample (a categorical
        dimension: the raw samples go to the lattices in turn, one search on the best's)."""
        if not space.lattices:
            return optimise_on(None, raw, values(raw))
        n = len(space.lattices)
        rows_on = [np.arange(k, len(raw), n) for k in range(n)]
        start = raw[:, 0].numpy().copy()
        for k, rows in enumerate(rows_on):
            start[rows] = space.with_lattice(start[rows], k)
        starts = torch.tensor(start, dtype=DTYPE).unsqueeze(1)
        start_values = values(starts)
        best = int(torch.argmax(start_values)) % n
        return optimise_on(best, starts[rows_on[best]], start_values[rows_on[best]])

    chosen: list[np.ndarray] = []
    for _ in range(q):
        if chosen:
            earlier = torch.tensor(np.array(chosen), dtype=DTYPE)
            acqf.set_X_pending(earlier if X_pending is None else torch.cat([X_pending, earlier]))
        chosen.append(optimise())
    acqf.set_X_pending(X_pending)
    return np.array(chosen)


def _records(
    X: np.ndarray,
    pdm_targets: np.ndarray | None,
    scores: np.ndarray,
    surrogate: Surrogate | None,
    elements: list[str],
    sources: list[OracleSource],
    reasons: list[str],
    lattices: Sequence[str] = (),
) -> list[Proposal]:
    """Proposals for the feature rows ``X`` (shape ``(q, d)``), one reason each; with
    ``lattices``, each on the lattice of its one-hot block (the columns before the fidelity)."""
    lattice_slice = slice(X.shape[1] - 1 - len(lattices), X.shape[1] - 1)
    means: np.ndarray | None = None
    sigmas: np.ndarray | None = None
    if surrogate is not None:
        means, sigmas = surrogate.predict(X)
    choices = choose_oracles(surrogate, X, sources) if sources else []
    proposals = []
    for i, row in enumerate(X):
        oracle, why = choices[i] if choices else (None, "no oracle configured")
        proposals.append(
            Proposal(
                lattice=lattices[int(np.argmax(row[lattice_slice]))] if lattices else None,
                composition={el: float(x) for el, x in zip(elements, row, strict=False)},
                pdm_target=None if pdm_targets is None else [float(v) for v in pdm_targets[i]],
                fidelity=1.0 if oracle is None else oracle.fidelity,
                oracle=None if oracle is None else oracle.name,
                score=float(scores[i]),
                mean={}
                if means is None or surrogate is None
                else dict(zip(surrogate.properties, map(float, means[i]), strict=True)),
                sigma={}
                if sigmas is None or surrogate is None
                else dict(zip(surrogate.properties, map(float, sigmas[i]), strict=True)),
                reason=f"{reasons[i]}; {why}",
            )
        )
    return proposals


__all__ = ["Proposal", "propose", "propose_from_training"]
