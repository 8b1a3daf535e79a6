"""Local search over atomic orderings (seed 001): swap pairs of unlike atoms, keep the best.

Each step tries ``n_swaps`` random transpositions of two atoms of different elements in the
current structure, relaxes and evaluates every child with an oracle, and keeps the best of the
parent and its children for the objective. The composition never changes, and the returned
structure is never worse than the start (the parent survives unless a child beats it).

This is a plain function around any :class:`~oracles.base.Oracle`: the loop uses it as a
crafting step (every evaluation it made is returned, to be stored) and the benchmarks use it as
a baseline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pymatgen.core import Structure

from amloop.oracles.base import Oracle, OracleFailed
from amloop.state.schema import Candidate, Evaluation

logger = logging.getLogger(__name__)


@dataclass
class LocalSearchStep:
    """One step: the parent, the children tried and what was kept.

    Attributes:
        index: Step number, from 0.
        parent_value: Objective of the parent at the start of the step (property's unit).
        swaps: Site-index pairs swapped to make each child, ``(n_children, 2)``.
        child_values: Objective of each child, ``None`` where its evaluation failed.
        best_value: Objective of the structure kept for the next step.
        improved: Whether a child replaced the parent.
    """

    index: int
    parent_value: float
    swaps: list[tuple[int, int]]
    child_values: list[float | None]
    best_value: float
    improved: bool


@dataclass
class LocalSearchResult:
    """Outcome of :func:`local_search`.

    Attributes:
        best: The best candidate found (the start itself if nothing beat it).
        evaluation: Its evaluation (holds the relaxed structure when the oracle relaxes).
        start_value: Objective of the starting structure.
        trajectory: One entry per step.
        evaluated: Every candidate evaluated, with its evaluation, in order (start first).
        stopped_early: The search ended before its last step because ``evaluate`` declined a
            child (a budget spent).
    """

    best: Candidate
    evaluation: Evaluation
    start_value: float
    trajectory: list[LocalSearchStep] = field(default_factory=list)
    evaluated: list[tuple[Candidate, Evaluation]] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def best_value(self) -> float:
        """Objective of :attr:`best`."""
        return self.trajectory[-1].best_value if self.trajectory else self.start_value


def unlike_pairs(structure: Structure) -> np.ndarray:
    """All site-index pairs ``i < j`` holding different elements, ``(n_pairs, 2)``."""
    symbols = np.array([site.specie.symbol for site in structure])
    i, j = np.triu_indices(len(symbols), k=1)
    unlike = symbols[i] != symbols[j]
    return np.stack([i[unlike], j[unlike]], axis=1)


def swap_sites(structure: Structure, i: int, j: int) -> Structure:
    """A copy of ``structure`` with the species of sites ``i`` and ``j`` exchanged."""
    child = structure.copy()
    child.replace(i, structure[j].species)
    child.replace(j, structure[i].species)
    return child


def local_search(
    start: Structure | Candidate,
    oracle: Oracle,
    *,
    objective: str = "bulk_modulus",
    direction: Literal["max", "min"] = "max",
    n_swaps: int = 20,
    n_steps: int = 20,
    rng: np.random.Generator | int | None = None,
    start_evaluation: Evaluation | None = None,
    evaluate: Callable[[list[Candidate]], list[Evaluation | None]] | None = None,
) -> LocalSearchResult:
    """Improve ``start`` by swapping pairs of unlike atoms, relaxing and evaluating each.

    Children are made from the parent's relaxed structure when the oracle returns one (the
    swap is applied to the relaxed geometry), else from the parent's own structure.

    Args:
        start: Starting structure (or candidate).
        oracle: Oracle that relaxes and scores a candidate, e.g. ``LammpsOracle``.
        objective: Property to optimise; must be among the oracle's properties.
        direction: ``"max"`` to maximise the objective, ``"min"`` to minimise it.
        n_swaps: Children (random distinct unlike-atom swaps) tried per step.
        n_steps: Number of steps.
        rng: Random generator or seed for the choice of swaps.
        start_evaluation: The oracle's evaluation of ``start`` if already made (saves a call).
        evaluate: How a step's children are evaluated, all at once (default
            ``oracle.evaluate`` on each in turn); the loop passes one that stores them and
            runs their calls through its task runner within the campaign's budget, ``None``
            for a call the budget declined, which ends the search after that step.

    Returns:
        The best candidate with its evaluation, the per-step trajectory and every evaluation.

    Raises:
        ValueError: ``objective`` is not a property of ``oracle``, bad direction or counts.
        OracleFailed: the starting structure itself failed (nothing to search from).
        OracleSetupError: from the oracle (e.g. an element the potential does not cover).
    """
    if objective not in oracle.properties:
        raise ValueError(
            f"objective '{objective}' is not computed by oracle '{oracle.name}'; "
            f"it computes {', '.join(oracle.properties)}"
        )
    if n_swaps < 1 or n_steps < 0 or direction not in ("max", "min"):
        raise ValueError("need n_swaps >= 1, n_steps >= 0 and direction 'max' or 'min'")
    generator = np.random.default_rng(rng)
    sign = 1.0 if direction == "max" else -1.0
    call = evaluate or (lambda children: [oracle.evaluate(child) for child in children])

    def value_of(evaluation: Evaluation) -> float | None:
        prop = evaluation.properties.get(objective)
        return prop.value if evaluation.status == "done" and prop is not None else None

    parent = start if isinstance(start, Candidate) else Candidate(structure=start, origin="seed")
    parent_eval = start_evaluation or oracle.evaluate(parent)
    parent_value = value_of(parent_eval)
    if parent_value is None:
        reason = parent_eval.error or f"the oracle returned no '{objective}'"
        raise OracleFailed(f"the starting structure failed: {reason}")
    result = LocalSearchResult(
        best=parent,
        evaluation=parent_eval,
        start_value=parent_value,
        evaluated=[(parent, parent_eval)],
    )

    for index in range(n_steps):
        base = parent_eval.relaxed_structure or parent.structure
        pairs = unlike_pairs(base)
        if len(pairs) == 0:
            logger.info("local search: no unlike atoms to swap; stopping")
            break
        chosen = pairs[generator.choice(len(pairs), size=min(n_swaps, len(pairs)), replace=False)]
        swaps = [(int(i), int(j)) for i, j in chosen]
        best, best_eval, best_value = parent, parent_eval, parent_value
        child_values: list[float | None] = []
        children = [
            Candidate(
                structure=swap_sites(base, i, j),
                origin="local_search",
                parent_hash=parent.content_hash,
                iteration=parent.iteration,
            )
            for i, j in swaps
        ]
        for child, child_eval in zip(children, call(children), strict=True):
            if child_eval is None:  # the budget declined this call: the search ends here
                result.stopped_early = True
                continue
            result.evaluated.append((child, child_eval))
            value = value_of(child_eval)
            child_values.append(value)
            if value is not None and sign * value > sign * best_value:
                best, best_eval, best_value = child, child_eval, value
        result.trajectory.append(
            LocalSearchStep(
                index=index,
                parent_value=parent_value,
                swaps=swaps,
                child_values=child_values,
                best_value=best_value,
                improved=best is not parent,
            )
        )
        logger.info(
            "local search step %d: %s %.4g -> %.4g", index, objective, parent_value, best_value
        )
        parent, parent_eval, parent_value = best, best_eval, best_value
        if result.stopped_early:
            break

    result.best, result.evaluation = parent, parent_eval
    return result
