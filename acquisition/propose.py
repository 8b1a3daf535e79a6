"""The next conditions to generate: a batch of compositions (and PDM targets) from the surrogates.

``propose(store, config)`` reads the campaign's data, fits the surrogates
(:mod:`acquisition.surrogate`) and maximises a BoTorch acquisition function over the feasible
inputs with :func:`botorch.optim.optimize_acqf`:

- composition: the simplex ``Σ x_e = 1`` (equality constraint) inside ``config.bounds``;
- PDM entries: inside the range seen in the training data;
- fidelity: fixed at 1.0 (predictions for the most trusted source).

One objective: ``qLogNoisyExpectedImprovement`` (``qUpperConfidenceBound`` with strategy
``qUCB``); several: ``qLogNoisyExpectedHypervolumeImprovement`` with the reference point from
the objectives' ``threshold`` (else 10 % of the observed range below the worst value). With fewer
than :data:`MIN_POINTS` values for some objective, a space-filling design is returned instead:
greedy max-min distance picks among hit-and-run samples of the constrained simplex. Strategy
``random`` returns uniform samples of the constrained simplex. All paths are deterministic for
a given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from botorch.acquisition import (
    AcquisitionFunction,
    qLogNoisyExpectedImprovement,
    qUpperConfidenceBound,
)
from botorch.acquisition.multi_objective import qLogNoisyExpectedHypervolumeImprovement
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler
from botorch.utils.sampling import get_polytope_samples
from torch import Tensor

from acquisition.features import MEASUREMENT_FIDELITY, TrainingSet, build_training_set
from acquisition.surrogate import DTYPE, Surrogate, fit_surrogate, input_bounds
from state.config import CampaignConfig
from state.store import CampaignStore

#: Fewest values per objective for which a GP is fitted; below, a space-filling design.
MIN_POINTS = 3
#: Monte-Carlo samples of the qLog(N)E(HV)I estimators.
MC_SAMPLES = 128
#: Restarts and raw samples of ``optimize_acqf``.
NUM_RESTARTS = 8
RAW_SAMPLES = 256
#: Cheaper settings for qLogNEHVI (its box decompositions dominate the cost).
MC_SAMPLES_MO = 32
NUM_RESTARTS_MO = 4
RAW_SAMPLES_MO = 128
#: Exploration weight of qUCB.
UCB_BETA = 2.0


@dataclass
class Proposal:
    """One proposed condition for the generator, with why it was chosen.

    Attributes:
        composition: Atomic fractions over the campaign's elements (sum 1).
        pdm_target: PDM vector to condition on (order of :func:`generator.pdm.pdm_labels`), or
            ``None`` when the features have no PDM or no model was fitted.
        fidelity: Fidelity the prediction refers to (1.0 = experiment, the most trusted).
        oracle: The configured oracle of that fidelity, ``None`` when none has it (the loop
            then runs its configured oracles).
        score: Acquisition value of this point alone (log-EI / log-EHVI / UCB); for a
            space-filling design the distance (fractions) to the nearest data point; 0 for
            random.
        mean: Posterior mean per objective property, in its unit (empty without a model).
        sigma: Posterior σ per objective property, in its unit (empty without a model).
        reason: How it was chosen, in words.
    """

    composition: dict[str, float]
    pdm_target: list[float] | None
    fidelity: float
    oracle: str | None
    score: float
    mean: dict[str, float] = field(default_factory=dict)
    sigma: dict[str, float] = field(default_factory=dict)
    reason: str = ""


def simplex_constraint(n_elements: int) -> list[tuple[Tensor, Tensor, float]]:
    """Equality constraint ``Σ_{e < n} x_e = 1`` in BoTorch's ``(indices, coefficients, rhs)``."""
    return [
        (
            torch.arange(n_elements, dtype=torch.long),
            torch.ones(n_elements, dtype=DTYPE),
            1.0,
        )
    ]


def sample_compositions(config: CampaignConfig, n: int, seed: int) -> np.ndarray:
    """Uniform (hit-and-run) samples of the bounded simplex, shape ``(n, len(elements))``."""
    n_el = len(config.elements)
    if n_el == 1:
        return np.ones((n, 1))
    bounds = torch.tensor(
        [config.element_bounds(el) for el in config.elements], dtype=DTYPE
    ).T.contiguous()
    samples = get_polytope_samples(
        n,
        bounds,
        equality_constraints=simplex_constraint(n_el),
        seed=seed,
        n_burnin=1000,
        n_thinning=16,
    )
    x = samples.numpy().clip(bounds[0].numpy(), bounds[1].numpy())
    return x / x.sum(axis=1, keepdims=True)


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


def _top_oracle(config: CampaignConfig) -> str | None:
    names = [o.name for o in config.oracles if o.fidelity >= MEASUREMENT_FIDELITY]
    return names[0] if names else None


def _reference_point(training: TrainingSet, config: CampaignConfig) -> list[float]:
    point = []
    for objective in config.objectives:
        sign = 1.0 if objective.direction == "maximize" else -1.0
        if objective.threshold is not None:
            point.append(sign * objective.threshold)
            continue
        values = sign * training.objectives[objective.property].Y
        span = float(values.max() - values.min()) or 1.0
        point.append(float(values.min()) - 0.1 * span)
    return point


def _acquisition(
    surrogate: Surrogate, training: TrainingSet, config: CampaignConfig, seed: int
) -> tuple[AcquisitionFunction, str]:
    baseline = torch.tensor(training.all_X(), dtype=DTYPE)
    baseline[:, training.fidelity_index] = 1.0
    baseline = torch.unique(baseline, dim=0)
    multi = len(config.objectives) > 1
    n_mc = MC_SAMPLES_MO if multi else MC_SAMPLES
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([n_mc]), seed=seed)
    if multi:
        ref = _reference_point(training, config)
        acqf: AcquisitionFunction = qLogNoisyExpectedHypervolumeImprovement(
            model=surrogate.model,
            ref_point=ref,
            X_baseline=baseline,
            sampler=sampler,
            prune_baseline=True,
        )
        return acqf, f"qLogNEHVI (reference point {[round(r, 4) for r in ref]})"
    if config.acquisition.strategy == "qUCB":
        return qUpperConfidenceBound(surrogate.model, beta=UCB_BETA, sampler=sampler), "qUCB"
    acqf = qLogNoisyExpectedImprovement(
        surrogate.model, X_baseline=baseline, sampler=sampler, prune_baseline=True
    )
    return acqf, "qLogNEI"


def propose(
    store: CampaignStore,
    config: CampaignConfig,
    *,
    q: int | None = None,
    seed: int = 0,
    use_pdm: bool = True,
) -> list[Proposal]:
    """The next ``q`` conditions for the campaign, best first for a fitted model.

    Args:
        store: The campaign's store (done/failed evaluations and measurements).
        config: The campaign's config (elements, bounds, objectives, acquisition settings).
        q: Batch size; default ``config.acquisition.batch_size``.
        seed: Seed of every random choice (samplers, restarts, designs).
        use_pdm: Include the PDM in the features and propose PDM targets (``False``: the
            composition-only baseline).

    Returns:
        ``q`` :class:`Proposal` records.
    """
    q = q or config.acquisition.batch_size
    elements = list(config.elements)
    oracle = _top_oracle(config)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        training = build_training_set(store, config, use_pdm=use_pdm)
        counts = [len(training.objectives[o.property]) for o in config.objectives]
        enough = min(counts) >= MIN_POINTS
        surrogate = fit_surrogate(training, config) if enough else None

        if config.acquisition.strategy == "random" or not enough:
            pool = sample_compositions(config, max(RAW_SAMPLES, 4 * q), seed)
            if config.acquisition.strategy == "random":
                compositions, scores = pool[:q], np.zeros(q)
                reason = "random: uniform on the constrained simplex"
            else:
                existing = training.all_X()[:, : len(elements)]
                compositions, scores = _space_filling(existing, pool, q)
                reason = f"space-filling: too few data ({min(counts)} < {MIN_POINTS} values)"
            X = None
            if surrogate is not None:
                mean_pdm = training.all_X()[:, training.pdm_slice].mean(axis=0)
                X = np.hstack(
                    [compositions, np.tile(mean_pdm, (q, 1)), np.ones((q, 1))]
                )  # PDM unknown: predict at the training mean
            return _records(compositions, None, scores, X, surrogate, elements, oracle, reason)

        assert surrogate is not None
        acqf, name = _acquisition(surrogate, training, config, seed)
        multi = len(config.objectives) > 1
        restarts = NUM_RESTARTS_MO if multi else NUM_RESTARTS
        search = surrogate.bounds.clone()  # composition within the config's bounds
        for k, element in enumerate(elements):
            search[0, k], search[1, k] = config.element_bounds(element)
        candidates, _ = optimize_acqf(
            acqf,
            bounds=search,
            q=q,
            num_restarts=restarts,
            raw_samples=RAW_SAMPLES_MO if multi else RAW_SAMPLES,
            equality_constraints=simplex_constraint(len(elements)),
            fixed_features={training.fidelity_index: 1.0},
            options={"seed": seed, "batch_limit": restarts, "maxiter": 100 if multi else 200},
        )
        candidates = candidates.detach()
        with torch.no_grad():
            scores = acqf(candidates.unsqueeze(1)).numpy()
        order = np.argsort(-scores, kind="stable")
        X = candidates.numpy()[order]
        n_el = len(elements)
        compositions = X[:, :n_el].clip(search[0, :n_el].numpy(), search[1, :n_el].numpy())
        compositions = compositions / compositions.sum(axis=1, keepdims=True)
        pdm_targets = X[:, training.pdm_slice] if training.use_pdm else None
        reason = f"{name} on {sum(counts)} values of {', '.join(surrogate.properties)}"
        return _records(
            compositions, pdm_targets, scores[order], X, surrogate, elements, oracle, reason
        )


def _records(
    compositions: np.ndarray,
    pdm_targets: np.ndarray | None,
    scores: np.ndarray,
    X: np.ndarray | None,
    surrogate: Surrogate | None,
    elements: list[str],
    oracle: str | None,
    reason: str,
) -> list[Proposal]:
    means: np.ndarray | None = None
    sigmas: np.ndarray | None = None
    if surrogate is not None and X is not None:
        means, sigmas = surrogate.predict(X)
    proposals = []
    for i, fractions in enumerate(compositions):
        proposals.append(
            Proposal(
                composition={el: float(x) for el, x in zip(elements, fractions, strict=True)},
                pdm_target=None if pdm_targets is None else [float(v) for v in pdm_targets[i]],
                fidelity=MEASUREMENT_FIDELITY,
                oracle=oracle,
                score=float(scores[i]),
                mean={}
                if means is None or surrogate is None
                else dict(zip(surrogate.properties, map(float, means[i]), strict=True)),
                sigma={}
                if sigmas is None or surrogate is None
                else dict(zip(surrogate.properties, map(float, sigmas[i]), strict=True)),
                reason=reason,
            )
        )
    return proposals


__all__ = ["Proposal", "input_bounds", "propose", "sample_compositions", "simplex_constraint"]
