"""Feasibility model: where generation or the oracles fail.

A ``SingleTaskGP`` on the success indicator ``s ∈ {0, 1}`` of every finished oracle call
(:attr:`TrainingSet.feasibility_X` / ``feasibility_y``), a GP classifier in the least-squares
sense. Failures of any oracle count against their region: the fidelity column is set to 1.0,
so the model is one map over composition (+ PDM).

The acquisition uses it through BoTorch's outcome-constraint machinery: the model is appended
to the objectives' ``ModelListGP`` and :func:`feasibility_constraint` marks a Monte-Carlo sample
feasible where its ``s ≥ 1/2``; qLogNEI / qLogNEHVI weight each sample's improvement by that
(sigmoid-smoothed) indicator, so the acquisition value is multiplied by ``P(s ≥ 1/2)``; qUCB
gets it through a ``ConstrainedMCObjective``. It is only fitted when both failures and
successes exist.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from botorch.models import SingleTaskGP
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from torch import Tensor
from torch.distributions import Normal

from acquisition.features import TrainingSet
from acquisition.surrogate import fit_mll

DTYPE = torch.float64
#: A sample of the success indicator at or above this counts as feasible.
FEASIBLE_LEVEL = 0.5


def fit_feasibility(training: TrainingSet, bounds: Tensor) -> SingleTaskGP | None:
    """GP on the success indicator, or ``None`` unless there are failures and successes.

    Args:
        training: The campaign's training set (its ``feasibility_X`` / ``feasibility_y``).
        bounds: Normalisation box of the inputs, shape ``(2, d)``.

    Returns:
        The fitted model (output: the success indicator, ``0`` to ``1``) or ``None``.
    """
    y = training.feasibility_y
    if not (np.any(y == 0.0) and np.any(y == 1.0)):
        return None
    X = torch.tensor(training.feasibility_X, dtype=DTYPE)
    X[:, training.fidelity_index] = 1.0
    model = SingleTaskGP(
        X,
        torch.tensor(y, dtype=DTYPE).unsqueeze(-1),
        input_transform=Normalize(d=training.dim, bounds=bounds),
        outcome_transform=Standardize(m=1),
    )
    fit_mll(model)
    return model


def feasibility_constraint(output: int) -> Callable[[Tensor], Tensor]:
    """BoTorch outcome constraint (feasible where ``≤ 0``) on model output ``output``: the
    success indicator's sample is at least :data:`FEASIBLE_LEVEL`."""

    def constraint(samples: Tensor) -> Tensor:
        return FEASIBLE_LEVEL - samples[..., output]

    return constraint


def probability_feasible(model: SingleTaskGP, X: Tensor | np.ndarray) -> np.ndarray:
    """``P(s(x) ≥ 1/2)`` under the model's posterior, shape ``(m,)`` for ``X`` of ``(m, d)``
    (fidelity column set to 1.0)."""
    X = torch.as_tensor(X, dtype=DTYPE).clone()
    X[..., -1] = 1.0
    with torch.no_grad():
        posterior = model.posterior(X)
        mean = posterior.mean[..., 0]
        sigma = posterior.variance[..., 0].clamp_min(1e-18).sqrt()
    return Normal(0.0, 1.0).cdf((mean - FEASIBLE_LEVEL) / sigma).numpy()
