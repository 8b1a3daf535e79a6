"""Gaussian-process surrogates of the objectives: one BoTorch ``SingleTaskGP`` per objective.

Inputs are normalised to the unit cube with :class:`~botorch.models.transforms.input.Normalize`
over fixed bounds (composition ``[0, 1]``, PDM entries their training range, fidelity ``[0, 1]``),
so a prediction at fidelity 1.0 stays in range even when all data come from cheaper oracles.
Outcomes are standardised (:class:`~botorch.models.transforms.outcome.Standardize`).

Multi-fidelity treatment (simple): the fidelity is one more input dimension of the GP's kernel,
so cheap and expensive values of the same property inform each other as far as the learnt
length scale along fidelity allows; predictions and acquisition are made at fidelity 1.0
(experiment, the most trusted source). Noise is heteroscedastic (``train_Yvar``) for an
objective whose every point reports an uncertainty; otherwise a homoscedastic noise is learnt.

Hyper-parameters: maximum marginal likelihood with L-BFGS-B capped at :data:`FIT_MAXITER`
iterations (unbounded it takes ~600 here; the cap changes the log-likelihood per point by < 0.02).
A fit costs ~1.7 s at 500 points and a warm start does not shorten it, so across iterations
:class:`HyperparameterReuse` re-optimises a GP only once its data has grown by
``acquisition.refit_growth`` since its last fit; in between, the exact GP on all current data
takes the previous fit's hyper-parameters (as the generator keeps its weights,
``generator.finetune_growth``).

Scale: an exact GP costs ``O(k³)`` per fit step (measured here, one core: ~0.2 s per step at
1000 points, so the default limit is 500). Above ``acquisition.max_points`` values of an
objective (or feasibility labels), :func:`subsample` keeps ``max_points`` of them: the best
quarter (highest in maximisation space; for feasibility, the failures first), the most recent
quarter (rows are oldest first), and the rest by greedy farthest-point (max-min distance)
selection in the min-max scaled inputs, so that every explored region keeps a representative.
The dropped points are the old, low-value ones in densely sampled regions, where they change
the posterior least.

The models work in *maximisation* space: a minimised objective's values are negated before
fitting, so that every BoTorch acquisition function maximises; :meth:`Surrogate.predict` turns
predictions back into the property's sign and unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.model import Model
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.posteriors import GPyTorchPosterior
from gpytorch.mlls import ExactMarginalLogLikelihood
from scipy.spatial.distance import cdist
from torch import Tensor

from amloop.acquisition.features import ObjectiveData, TrainingSet
from amloop.state.config import CampaignConfig

DTYPE = torch.float64
#: Most L-BFGS-B iterations of a hyper-parameter fit.
FIT_MAXITER = 100
#: Smallest width of a PDM dimension's normalisation range (coordination numbers).
MIN_PDM_RANGE = 1e-3


@dataclass
class Surrogate:
    """Fitted GPs of a campaign's objectives.

    Attributes:
        model: A ``SingleTaskGP`` (one objective) or ``ModelListGP`` (several), with outputs in
            maximisation space (minimised objectives negated), shape of the output ``(m,)``.
        properties: Objective property names, the order of the model's outputs.
        signs: ``+1`` for maximised, ``-1`` for minimised objectives, shape ``(m,)``.
        bounds: Input bounds used for normalisation, shape ``(2, d)``.
        fidelity_index: Column of the fidelity in the inputs.
    """

    model: Model
    properties: list[str]
    signs: Tensor
    bounds: Tensor
    fidelity_index: int

    @property
    def models(self) -> list[SingleTaskGP]:
        """The per-objective GPs, order of :attr:`properties`."""
        if isinstance(self.model, ModelListGP):
            return [cast(SingleTaskGP, m) for m in self.model.models]
        return [cast(SingleTaskGP, self.model)]

    def predict(self, X: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation in the properties' units.

        Args:
            X: Features, shape ``(n, d)``; the fidelity column is overwritten with 1.0.

        Returns:
            ``(mean, sigma)``, each of shape ``(n, m)`` (``m`` objectives, order of
            :attr:`properties`); ``sigma`` is the latent function's σ (without observation
            noise).
        """
        X = torch.as_tensor(X, dtype=DTYPE).clone()
        X[..., self.fidelity_index] = 1.0
        with torch.no_grad():
            posterior = cast(GPyTorchPosterior, self.model.posterior(X))
            mean = posterior.mean * self.signs
            sigma = posterior.variance.clamp_min(0.0).sqrt()
        return mean.numpy(), sigma.numpy()


@dataclass
class HyperparameterReuse:
    """Hyper-parameters of a campaign's GPs carried from one acquisition to the next.

    A GP named ``name`` takes the hyper-parameters of :attr:`fitted` ``[name]`` without
    re-optimising them while its data (:attr:`sizes`, counted before :func:`subsample`) is below
    ``(1 + growth)`` times the count they were fitted on; otherwise it is fitted and the entry
    replaced. JSON-ready, so the loop stores it with each iteration and a resumed campaign
    reuses exactly what an uninterrupted one would.

    Attributes:
        growth: ``acquisition.refit_growth``; 0 refits every time.
        sizes: Training points per GP name in this acquisition.
        fitted: ``name -> {"n_points": int, "parameters": {state-dict key: nested list}}``:
            the previous acquisition's on input, this one's after the fits.
        refitted: Names whose hyper-parameters were optimised in this acquisition.
    """

    growth: float
    sizes: dict[str, int]
    fitted: dict[str, dict[str, Any]] = field(default_factory=dict)
    refitted: list[str] = field(default_factory=list)

    def fit(self, name: str, model: SingleTaskGP) -> None:
        """Give ``model`` the kept hyper-parameters of ``name`` or fit them; eval mode after."""
        n_points = self.sizes[name]
        kept = self.fitted.get(name)
        if (
            kept is not None
            and n_points < (1.0 + self.growth) * kept["n_points"]
            and _load_hyperparameters(model, kept["parameters"])
        ):
            model.eval()
            return
        fit_mll(model)
        self.fitted[name] = {"n_points": n_points, "parameters": _hyperparameters(model)}
        self.refitted.append(name)


def _hyperparameters(model: SingleTaskGP) -> dict[str, Any]:
    """The fitted raw parameters of ``model`` (not the data-derived buffers), as lists."""
    return {key: value.tolist() for key, value in model.named_parameters()}


def _load_hyperparameters(model: SingleTaskGP, parameters: dict[str, Any]) -> bool:
    """Set ``model``'s raw parameters from :func:`_hyperparameters`'s output; ``False`` (model
    unchanged) when they do not fit its parameters (another input dimension or noise model)."""
    own = dict(model.named_parameters())
    if set(own) != set(parameters) or any(
        tuple(own[key].shape) != tuple(torch.tensor(value).shape)
        for key, value in parameters.items()
    ):
        return False
    with torch.no_grad():
        for key, value in parameters.items():
            own[key].copy_(torch.tensor(value, dtype=own[key].dtype))
    return True


def input_bounds(training: TrainingSet, config: CampaignConfig) -> Tensor:
    """Normalisation box of the inputs, shape ``(2, d)``: element bounds from ``config``
    (widened to cover the data), PDM entries over their training range (at least
    :data:`MIN_PDM_RANGE` wide), fidelity ``[0, 1]``."""
    lower = np.zeros(training.dim)
    upper = np.ones(training.dim)
    for k, element in enumerate(training.elements):
        lower[k], upper[k] = config.element_bounds(element)
    X = training.all_X()
    if len(X):  # data outside the config's bounds (e.g. seed structures) widen the box
        n = training.n_elements
        lower[:n] = np.minimum(lower[:n], X[:, :n].min(axis=0))
        upper[:n] = np.maximum(upper[:n], X[:, :n].max(axis=0))
    pdm = training.pdm_slice
    if training.use_pdm and len(X):
        lower[pdm] = X[:, pdm].min(axis=0)
        upper[pdm] = np.maximum(X[:, pdm].max(axis=0), lower[pdm] + MIN_PDM_RANGE)
    return torch.tensor(np.stack([lower, upper]), dtype=DTYPE)


def fit_surrogate(
    training: TrainingSet, config: CampaignConfig, reuse: HyperparameterReuse | None = None
) -> Surrogate:
    """Fit one GP per objective of ``config`` on ``training`` (maximum marginal likelihood).

    Args:
        training: The campaign's training set; each objective needs at least one point.
        config: The campaign's config (objective directions and element bounds).
        reuse: Kept hyper-parameters (GP names: the objective properties); ``None`` fits all.

    Returns:
        The fitted :class:`Surrogate`.

    Raises:
        ValueError: an objective has no training point.
    """
    bounds = input_bounds(training, config)
    models: list[SingleTaskGP] = []
    signs = []
    for objective in config.objectives:
        data = training.objectives[objective.property]
        if len(data) == 0:
            raise ValueError(f"objective '{objective.property}' has no data to fit a surrogate on")
        sign = objective.sign
        signs.append(sign)
        models.append(
            fit_property_gp(data, bounds, sign=sign, reuse=reuse, name=objective.property)
        )
    combined: Model = models[0] if len(models) == 1 else ModelListGP(*models)
    return Surrogate(
        model=combined,
        properties=list(config.objective_properties),
        signs=torch.tensor(signs, dtype=DTYPE),
        bounds=bounds,
        fidelity_index=training.fidelity_index,
    )


def fit_property_gp(
    data: ObjectiveData,
    bounds: Tensor,
    *,
    sign: float = 1.0,
    reuse: HyperparameterReuse | None = None,
    name: str = "",
) -> SingleTaskGP:
    """A fitted ``SingleTaskGP`` of one property's values times ``sign``.

    Args:
        data: The property's training points (``k >= 1`` rows).
        bounds: Input normalisation box, shape ``(2, d)`` (:func:`input_bounds`).
        sign: ``-1`` to model a minimised property in maximisation space.
        reuse: Kept hyper-parameters, looked up under ``name``; ``None`` fits them.
        name: The GP's name in ``reuse``.

    Returns:
        The GP in eval mode; heteroscedastic when every point has a variance.
    """
    X = torch.tensor(data.X, dtype=DTYPE)
    Y = torch.tensor(sign * data.Y, dtype=DTYPE).unsqueeze(-1)
    heteroscedastic = bool(np.all(np.isfinite(data.Yvar)))
    Yvar = (
        torch.tensor(data.Yvar, dtype=DTYPE).clamp_min(1e-12).unsqueeze(-1)
        if heteroscedastic
        else None
    )
    model = SingleTaskGP(
        X,
        Y,
        train_Yvar=Yvar,
        input_transform=Normalize(d=bounds.shape[-1], bounds=bounds),
        outcome_transform=Standardize(m=1),
    )
    if reuse is None:
        fit_mll(model)
    else:
        reuse.fit(name, model)
    return model


def fit_mll(model: SingleTaskGP) -> None:
    """Fit ``model``'s hyper-parameters (exact marginal likelihood, at most
    :data:`FIT_MAXITER` L-BFGS-B iterations) and put it in eval mode."""
    fit_gpytorch_mll(
        ExactMarginalLogLikelihood(model.likelihood, model),
        optimizer_kwargs={"options": {"maxiter": FIT_MAXITER}},
    )
    model.eval()


def observation_noise(model: SingleTaskGP) -> float:
    """Mean observation-noise variance of a fitted GP, in its outcome's unit² (the learnt
    homoscedastic noise, or the mean of the given ``train_Yvar``)."""
    noise = model.likelihood.noise.detach().mean()
    if isinstance(model.outcome_transform, Standardize):
        noise = noise * model.outcome_transform.stdvs.detach().squeeze() ** 2
    return float(noise)


def subsample(training: TrainingSet, config: CampaignConfig) -> TrainingSet:
    """``training`` with at most ``config.acquisition.max_points`` rows per objective and of
    feasibility labels (see the module docstring); unchanged below that."""
    limit = config.acquisition.max_points
    signs = {o.property: o.sign for o in config.objectives}
    objectives = {}
    for prop, data in training.objectives.items():
        keep = _subsample_indices(data.X, signs.get(prop, 1.0) * data.Y, limit)
        objectives[prop] = ObjectiveData(X=data.X[keep], Y=data.Y[keep], Yvar=data.Yvar[keep])
    keep = _subsample_indices(training.feasibility_X, -training.feasibility_y, limit)
    return replace(
        training,
        objectives=objectives,
        feasibility_X=training.feasibility_X[keep],
        feasibility_y=training.feasibility_y[keep],
    )


def _subsample_indices(X: np.ndarray, priority: np.ndarray, limit: int) -> np.ndarray:
    """Sorted indices of ``limit`` rows of ``X`` (shape ``(k, d)``): the top quarter by
    ``priority``, the last quarter, then farthest-point picks; all rows when ``k ≤ limit``."""
    k = len(X)
    if k <= limit:
        return np.arange(k)
    chosen = np.zeros(k, dtype=bool)
    chosen[np.argsort(-priority, kind="stable")[: limit // 4]] = True
    chosen[np.flatnonzero(~chosen)[-(limit // 4) :]] = True
    span = X.max(axis=0) - X.min(axis=0)
    Z = (X - X.min(axis=0)) / np.where(span > 0, span, 1.0)
    distance = cdist(Z, Z[chosen]).min(axis=1)
    for _ in range(limit - int(chosen.sum())):
        pick = int(np.argmax(np.where(chosen, -1.0, distance)))
        chosen[pick] = True
        distance = np.minimum(distance, np.linalg.norm(Z - Z[pick], axis=1))
    return np.flatnonzero(chosen)
