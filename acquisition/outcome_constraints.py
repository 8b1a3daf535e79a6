"""Outcome constraints of the acquisition: GPs of constrained quantities and their bounds.

Two kinds share one form, :class:`OutcomeConstraint` (a fitted ``SingleTaskGP`` and a
``lower <= f(x) <= upper`` band):

- the campaign's ``constraints:`` (e.g. ``formation_energy <= 0 eV/atom``), one GP each on the
  property's values, fitted once it has :data:`MIN_CONSTRAINT_POINTS` values
  (:func:`fit_config_constraints`);
- the feasibility model of :mod:`acquisition.feasibility` (success indicator ``>= 1/2``).

The acquisition appends their models to the objectives' ``ModelListGP`` and passes
:meth:`OutcomeConstraint.callables` as BoTorch ``constraints``: a Monte-Carlo sample counts as
feasible where every callable is ``<= 0``, so qLogNEI / qLogNEHVI weight each sample's
improvement by the (sigmoid-smoothed) indicator and the acquisition value by
``P(constraints hold)``. Predictions are made at fidelity 1.0, like the objectives'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from botorch.models import SingleTaskGP
from torch import Tensor
from torch.distributions import Normal

from amloop.acquisition.features import TrainingSet
from amloop.acquisition.surrogate import DTYPE, HyperparameterReuse, fit_property_gp
from amloop.state.config import CampaignConfig

#: Fewest values of a constrained property for which its GP is fitted (below: unconstrained).
MIN_CONSTRAINT_POINTS = 3


@dataclass
class OutcomeConstraint:
    """A GP of one constrained quantity and the band it must stay in.

    Attributes:
        name: The quantity (a property name, or ``feasible``).
        model: Its fitted GP (outputs in the quantity's unit).
        lower: Lowest allowed value, or ``None``.
        upper: Highest allowed value, or ``None``.
        label: The constraint in words, for proposal reasons.
    """

    name: str
    model: SingleTaskGP
    lower: float | None
    upper: float | None
    label: str

    def callables(self, output: int) -> list[Callable[[Tensor], Tensor]]:
        """BoTorch outcome constraints (feasible where ``<= 0``) on model output ``output``."""

        def below_upper(samples: Tensor) -> Tensor:
            return samples[..., output] - self.upper  # type: ignore[operator]

        def above_lower(samples: Tensor) -> Tensor:
            return self.lower - samples[..., output]  # type: ignore[operator]

        return [
            f
            for f, bound in ((below_upper, self.upper), (above_lower, self.lower))
            if bound is not None
        ]

    def probability(self, X: Tensor | np.ndarray) -> np.ndarray:
        """``P(lower <= f(x) <= upper)`` under the posterior, shape ``(n,)`` for ``X`` of
        ``(n, d)`` (fidelity column, the last, set to 1.0)."""
        X = torch.as_tensor(X, dtype=DTYPE).clone()
        X[..., -1] = 1.0
        with torch.no_grad():
            posterior = self.model.posterior(X)
            mean = posterior.mean[..., 0]
            sigma = posterior.variance[..., 0].clamp_min(1e-18).sqrt()
        normal = Normal(0.0, 1.0)
        high = normal.cdf((self.upper - mean) / sigma) if self.upper is not None else 1.0
        low = normal.cdf((self.lower - mean) / sigma) if self.lower is not None else 0.0
        return torch.as_tensor(high - low).numpy()


def fit_config_constraints(
    training: TrainingSet,
    config: CampaignConfig,
    bounds: Tensor,
    reuse: HyperparameterReuse | None = None,
) -> list[OutcomeConstraint]:
    """GPs of ``config.constraints`` with at least :data:`MIN_CONSTRAINT_POINTS` values.

    Args:
        training: The campaign's training set (it holds the constrained properties' values).
        config: The campaign's config.
        bounds: Normalisation box of the inputs, shape ``(2, d)``.
        reuse: Kept hyper-parameters (names :func:`constraint_gp`); ``None`` fits them.

    Returns:
        One :class:`OutcomeConstraint` per constraint with enough data, in config order.
    """
    fitted = []
    for constraint in config.constraints:
        data = training.objectives.get(constraint.property)
        if data is None or len(data) < MIN_CONSTRAINT_POINTS:
            continue
        fitted.append(
            OutcomeConstraint(
                name=constraint.property,
                model=fit_property_gp(
                    data, bounds, reuse=reuse, name=constraint_gp(constraint.property)
                ),
                lower=constraint.lower,
                upper=constraint.upper,
                label=constraint.describe(),
            )
        )
    return fitted


def constraint_gp(prop: str) -> str:
    """The name of the constraint GP of property ``prop`` in
    :class:`~acquisition.surrogate.HyperparameterReuse` (apart from an objective's GP)."""
    return f"constraint:{prop}"


__all__ = ["MIN_CONSTRAINT_POINTS", "OutcomeConstraint", "constraint_gp", "fit_config_constraints"]
