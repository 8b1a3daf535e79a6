"""Chemical ordering towards a PDM target: swaps of unlike atoms at fixed positions.

The decoder places atoms; which element sits on which site is what the PDM's chemical part
(Cu-Cu against Cu-Zr neighbours, say) measures. Above ``type_denoising_max_atoms`` the decoder
does not re-assign types at all (the types keep their random start order), and below it the
type head is only as good as its training, so a PDM target is often missed by its chemical
part. Here, as in reverse-Monte-Carlo and short-range-order-targeted swap Monte Carlo, the
elements of two unlike atoms are exchanged whenever that lowers the squared PDM error
``sum_ab (C_ab - T_ab)^2`` (pairs ``a <= b``, :mod:`generator.pdm`). Positions, cell and
composition never change, so geometry-set parts of the target (total coordination) stay as the
decoder made them. An exchange that would put a pair closer than the shortest distance of that
pair in the training data (``min_distances``: O-O at a Si-O bond length, Zr-Zr at a Cu-Cu one)
is refused, so the chemistry stays compatible with the geometry. The counts are updated from
the edges of the two swapped atoms only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from amloop.generator.pdm import pair_indices


@dataclass(frozen=True)
class OrderingResult:
    """A structure re-ordered towards a PDM target.

    Attributes:
        structure: Same lattice, positions and composition; elements exchanged between sites.
        error_before: Mean absolute PDM error before the swaps (neighbours).
        error_after: Mean absolute PDM error after them (neighbours).
        swaps: Accepted exchanges.
    """

    structure: Structure
    error_before: float
    error_after: float
    swaps: int


class _PairCounts:
    """First-shell pair counts ``(n, n)`` of a fixed set of edges under changing species."""

    def __init__(
        self, structure: Structure, species: np.ndarray, cutoffs: np.ndarray, n_elements: int
    ) -> None:
        centre, neighbour, _, distance = structure.get_neighbor_list(
            float(cutoffs.max()), exclude_self=True
        )
        self.centre, self.neighbour, self.distance = centre, neighbour, distance
        self.cutoffs, self.n = cutoffs, n_elements
        order = np.argsort(np.concatenate([centre, neighbour]), kind="stable")
        edges = np.concatenate([np.arange(centre.size)] * 2)[order]
        bounds = np.searchsorted(
            np.concatenate([centre, neighbour])[order], np.arange(len(species) + 1)
        )
        self.incident = [np.unique(edges[bounds[k] : bounds[k + 1]]) for k in range(len(species))]
        self.counts = self.of_edges(np.arange(centre.size), species)

    def too_close(self, edges: np.ndarray, species: np.ndarray, minimum: np.ndarray) -> int:
        """How many of ``edges`` are shorter than ``minimum[a, b]`` (Å) of their elements."""
        a, b = species[self.centre[edges]], species[self.neighbour[edges]]
        return int(np.count_nonzero(self.distance[edges] < minimum[a, b]))

    def of_swap(self, i: int, j: int) -> np.ndarray:
        """The edges that touch atom ``i`` or ``j``, each once."""
        of_j = self.incident[j]
        return np.concatenate(
            [self.incident[i], of_j[(self.centre[of_j] != i) & (self.neighbour[of_j] != i)]]
        )

    def change(self, edges: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Counts ``(n, n)`` of ``edges`` with atoms of elements ``after`` less those with
        ``before`` (one histogram of both)."""
        removed, added = self._shell_keys(edges, before), self._shell_keys(edges, after)
        signs = np.concatenate([np.full(removed.size, -1.0), np.ones(added.size)])
        flat = np.bincount(
            np.concatenate([removed, added]), weights=signs, minlength=self.n * self.n
        )
        return flat.reshape(self.n, self.n)

    def of_edges(self, edges: np.ndarray, species: np.ndarray) -> np.ndarray:
        """Counts ``(n, n)`` contributed by ``edges`` with atoms of elements ``species``."""
        flat = np.bincount(self._shell_keys(edges, species), minlength=self.n * self.n)
        return flat.reshape(self.n, self.n).astype(float)

    def _shell_keys(self, edges: np.ndarray, species: np.ndarray) -> np.ndarray:
        """Flat pair index ``a n + b`` of each of ``edges`` within its elements' cutoff."""
        a, b = species[self.centre[edges]], species[self.neighbour[edges]]
        inside = self.distance[edges] <= self.cutoffs[a, b]
        return a[inside] * self.n + b[inside]


def match_pdm(
    structure: Structure,
    target: Sequence[float],
    elements: Sequence[str],
    cutoffs: np.ndarray,
    *,
    min_distances: np.ndarray | None = None,
    sweeps: int = 20,
    seed: int = 0,
) -> OrderingResult:
    """Exchange elements between sites until the PDM is as close to ``target`` as swaps get.

    Args:
        structure: An ordered structure whose elements are all in ``elements``.
        target: PDM vector in the campaign's order; entries past the ``n (n + 1) / 2`` pair
            coordinations (appended RDF bins) are ignored.
        elements: The campaign's elements, in their fixed order.
        cutoffs: First-shell cutoffs (Å), shape ``(n, n)`` (the campaign's, as in the PDM).
        min_distances: Shortest allowed distance per element pair (Å), shape ``(n, n)``; an
            exchange that adds pairs below it is refused. ``None``: no limit.
        sweeps: Proposed exchanges per atom (random unlike pairs; only improvements kept).
        seed: Seed of the proposals.

    Raises:
        ValueError: ``target`` is shorter than the pair part of the PDM, or an element of
            ``structure`` is not in ``elements``.
    """
    pairs = pair_indices(len(elements))
    if len(target) < len(pairs):
        raise ValueError(f"PDM target has {len(target)} entries; {len(pairs)} pairs needed")
    index = {symbol: k for k, symbol in enumerate(elements)}
    unknown = {site.specie.symbol for site in structure} - set(index)
    if unknown:
        raise ValueError(f"structure holds {sorted(unknown)}, not among the elements {elements}")
    species = np.array([index[site.specie.symbol] for site in structure])
    rows, cols = (np.array(side) for side in zip(*pairs, strict=True))
    wanted = np.asarray(target[: len(pairs)], dtype=float)
    numbers = np.bincount(species, minlength=len(elements)).astype(float)
    present = numbers[rows] > 0
    per_centre = np.where(numbers > 0, numbers, 1.0)[:, None]

    def error(counts: np.ndarray) -> np.ndarray:
        return np.where(present, (counts / per_centre)[rows, cols] - wanted, 0.0)

    counts = _PairCounts(structure, species, cutoffs, len(elements))
    minimum = np.zeros_like(cutoffs) if min_distances is None else np.asarray(min_distances)
    loss = float(np.sum(error(counts.counts) ** 2))
    before = float(np.abs(error(counts.counts)).sum() / max(present.sum(), 1))
    rng = np.random.default_rng(seed)
    swaps = 0
    for _ in range(sweeps * len(species) if len(set(species.tolist())) > 1 else 0):
        i = int(rng.integers(len(species)))
        unlike = np.flatnonzero(species != species[i])
        j = int(unlike[rng.integers(unlike.size)])
        edges = counts.of_swap(i, j)
        swapped = species.copy()
        swapped[i], swapped[j] = species[j], species[i]
        trial = counts.counts + counts.change(edges, species, swapped)
        trial_loss = float(np.sum(error(trial) ** 2))
        if trial_loss < loss - 1e-12 and counts.too_close(
            edges, swapped, minimum
        ) <= counts.too_close(edges, species, minimum):
            species, counts.counts, loss = swapped, trial, trial_loss
            swaps += 1
    after = float(np.abs(error(counts.counts)).sum() / max(present.sum(), 1))
    reordered = Structure(structure.lattice, [elements[k] for k in species], structure.frac_coords)
    return OrderingResult(reordered, before, after, swaps)
