"""Feasibility model: where generation or the oracles fail.

A ``SingleTaskGP`` on the success indicator ``s ∈ {0, 1}`` of every finished oracle call and
quality-gate verdict (a call that scored a structure the gate rejected counts as a failure;
:attr:`TrainingSet.feasibility_X` / ``feasibility_y``), a GP classifier in the least-squares
sense. Failures of any oracle count against their region: the fidelity column is set to 1.0,
so the model is one map over composition (+ PDM).

The acquisition uses it through BoTorch's outcome-constraint machinery: the model is appended
to the objectives' ``ModelListGP`` as an :class:`~acquisition.outcome_constraints.OutcomeConstraint`
that marks a Monte-Carlo sample feasible where its ``s ≥ 1/2``; qLogNEI / qLogNEHVI weight each sample's improvement by that
(sigmoid-smoothed) indicator, so the acquisition value is multiplied by ``P(s ≥ 1/2)``; qUCB
gets it through a ``ConstrainedMCObjective``. It is only fitted when both failures and
successes exist.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from amloop.acquisition.features import ObjectiveData, TrainingSet
from amloop.acquisition.outcome_constraints import OutcomeConstraint
from amloop.acquisition.surrogate import HyperparameterReuse, fit_property_gp

#: A sample of the success indicator at or above this counts as feasible.
FEASIBLE_LEVEL = 0.5
#: The feasibility GP's name in :class:`~acquisition.surrogate.HyperparameterReuse`.
FEASIBILITY_GP = "feasible"


def fit_feasibility(
    training: TrainingSet, bounds: Tensor, reuse: HyperparameterReuse | None = None
) -> OutcomeConstraint | None:
    """GP on the success indicator as the constraint ``s >= 1/2``, or ``None`` unless there
    are failures and successes.

    Args:
        training: The campaign's training set (its ``feasibility_X`` / ``feasibility_y``).
        bounds: Normalisation box of the inputs, shape ``(2, d)``.
        reuse: Kept hyper-parameters (name :data:`FEASIBILITY_GP`); ``None`` fits them.

    Returns:
        The fitted constraint (model output: the success indicator, ``0`` to ``1``) or ``None``.
    """
    y = training.feasibility_y
    if not (np.any(y == 0.0) and np.any(y == 1.0)):
        return None
    X = training.feasibility_X.copy()
    X[:, training.fidelity_index] = 1.0
    data = ObjectiveData(X=X, Y=y, Yvar=np.full(len(y), np.nan))
    return OutcomeConstraint(
        name="feasible",
        model=fit_property_gp(data, bounds, reuse=reuse, name=FEASIBILITY_GP),
        lower=FEASIBLE_LEVEL,
        upper=None,
        label="feasible",
    )
