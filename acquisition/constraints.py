"""The feasible inputs of the acquisition: compositions and reachable PDM targets.

Composition ``x`` (atomic fractions over the campaign's ``n`` elements):

- simplex ``Σ x_e = 1`` inside the per-element bounds ``[lo_e, hi_e]`` of the config;
- an element is *present* when ``x_e ≥ x_min = 1 / (2 N)`` (half an atom of the campaign's
  ``N``-atom cell); smaller fractions are set to 0 (the element is absent);
- cardinality: at most ``K = acquisition.max_elements`` present elements (and never more than
  ``N``). The optimiser enforces it on a *support*, a subset of elements whose others are fixed
  at 0 (BoTorch ``fixed_features``); the support of a point is chosen by the sparse projection
  rule of Kyrillidis et al. (ICML 2013): the elements with a lower bound > 0, then the largest
  present fractions, up to ``K``. :meth:`SearchSpace.project` is the Euclidean projection onto
  the bounded simplex of that support (a shift ``τ`` found by bisection, ``x = clip(y - τ)``).

PDM target (entries ``C_ab``, ``a ≤ b``: mean number of ``b`` neighbours of an ``a`` atom):

- entries of a pair with an absent element are 0 (as :func:`generator.pdm.pdm` gives them);
- reachable region: ``r_lo(ab) x_b ≤ C_ab ≤ r_hi(ab) x_b``, with ``[r_lo, r_hi]`` the range of
  ``C_ab / x_b`` over the evaluated structures (``Z_a (1 - α_ab)`` with the Warren-Cowley
  short-range order ``α_ab``) widened on each side by ``acquisition.pdm_margin`` times its
  width (times its mid-value when that is larger, e.g. for a pair seen in one structure).
  This box of composition-normalised coordinations contains the convex hull of the observed
  PDMs (in those coordinates), is linear in ``(x, C)`` (BoTorch ``inequality_constraints``) and
  makes ``C_ab`` vanish with ``x_b``. Pairs never observed with both elements present use the
  range over all pairs.
- coordination (a lattice campaign whose PDM is read on the sites,
  :func:`acquisition.features.pdm_on_sites`): an ``a`` atom has ``Z`` first neighbours (8 in
  BCC, 12 in FCC and HCP; :data:`generator.pdm.FIRST_SHELL`; more where evaluated cells off
  the ideal sites show more), so the entries of its row that are features obey
  ``Σ_{b ≥ a} C_ab ≤ Z`` (with several lattices ``Z = Σ_L Z_L l_L`` over the lattice one-hot
  ``l``, still linear). The per-pair box alone admits targets no ordering reaches (a Ni atom
  with 10 Cr neighbours in BCC), where the GP extrapolates freely and the acquisition's
  optimum, composition included, follows that extrapolation. The acquisition is evaluated,
  and its targets returned, at :meth:`SearchSpace.realise` of each point: the unlike pairs as
  chosen (capped where FCC and HCP triangles forbid more, scaled into the shell), the like
  pairs the rest of the shell, so every row of the full matrix sums to ``Z`` as on a filled
  lattice; the like pairs are then derived, not boxed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from botorch.utils.sampling import get_polytope_samples
from torch import Tensor

from amloop.acquisition.features import TrainingSet, pdm_on_sites
from amloop.generator.pdm import FIRST_SHELL, MOST_UNLIKE_BONDS, pair_indices
from amloop.state.config import CampaignConfig

DTYPE = torch.float64
#: Bisection steps of the simplex projection (the shift is exact to ~1e-15).
BISECTION_STEPS = 80
#: Least widening of a ``C_ab / x_b`` range, so the reachable region keeps an interior.
MIN_RATIO_WIDENING = 1e-3
#: Hit-and-run burn-in and thinning of the composition samples.
HIT_AND_RUN_BURNIN = 500
HIT_AND_RUN_THINNING = 4
#: Tolerance of the constraint checks (fractions, coordination numbers).
TOLERANCE = 1e-9
#: Row totals up to this far above the first shell count as the first shell (rounding).
COORDINATION_SLACK = 1e-6

Constraint = tuple[Tensor, Tensor, float]


@dataclass
class SearchSpace:
    """Constraints of the acquisition's inputs (layout of :class:`TrainingSet` features).

    Attributes:
        lower: Lower fraction bounds per element, shape ``(n,)``.
        upper: Upper fraction bounds per element, shape ``(n,)``.
        max_elements: Most present elements per point.
        min_fraction: Smallest fraction of a present element ``x_min``.
        pairs: Element-index pairs ``(a, b)`` of the PDM entries (empty without PDM).
        ratio: ``[r_lo, r_hi]`` of ``C_ab / x_b`` per PDM entry, shape ``(2, p)``.
        dim: Number of feature dimensions ``d`` (the last one is the fidelity).
        lattices: The lattices of the one-hot block before the fidelity (empty: one lattice).
        coordination: First-shell coordination ``Z`` of each of the campaign's lattices (one
            value with one lattice), or empty where the PDM is not read on lattice sites.
        unlike_bonds: Largest ``x_a C_ab / Z`` of an unlike pair on each of those lattices
            (:data:`generator.pdm.MOST_UNLIKE_BONDS`), empty with ``coordination``.
    """

    lower: np.ndarray
    upper: np.ndarray
    max_elements: int
    min_fraction: float
    pairs: list[tuple[int, int]]
    ratio: np.ndarray
    dim: int
    lattices: tuple[str, ...] = ()
    coordination: tuple[float, ...] = ()
    unlike_bonds: tuple[float, ...] = ()

    @classmethod
    def build(cls, training: TrainingSet, config: CampaignConfig) -> SearchSpace:
        """The search space of ``config`` with PDM ranges from ``training``'s structures.

        Raises:
            ValueError: ``max_elements`` is below the number of elements with a lower bound
                > 0, or no ``max_elements`` elements can sum to 1 within their upper bounds.
        """
        n = training.n_elements
        bounds = np.array([config.element_bounds(el) for el in training.elements])
        n_atoms = config.cell.n_atoms
        limit = min(config.acquisition.max_elements or n, n, n_atoms)
        mandatory = int(np.sum(bounds[:, 0] > 0))
        best_upper = np.sort(bounds[bounds[:, 0] == 0, 1])[::-1][: max(limit - mandatory, 0)]
        if mandatory > limit or bounds[bounds[:, 0] > 0, 1].sum() + best_upper.sum() < 1 - 1e-9:
            raise ValueError(
                f"acquisition.max_elements = {limit}: no composition of at most {limit} "
                f"elements satisfies the bounds {config.bounds}; raise it or loosen the bounds"
            )
        pairs = pair_indices(n) if training.use_pdm else []
        coordination = _coordination(training, config, pairs)
        return cls(
            lower=bounds[:, 0],
            upper=bounds[:, 1],
            max_elements=limit,
            min_fraction=0.5 / n_atoms,
            pairs=pairs,
            ratio=_ratio_range(training, pairs, config.acquisition.pdm_margin),
            dim=training.dim,
            lattices=tuple(training.lattices),
            coordination=coordination,
            unlike_bonds=tuple(MOST_UNLIKE_BONDS[kind] for kind in config.cell.lattices)
            if coordination
            else (),
        )

    @property
    def n_elements(self) -> int:
        """Number of composition dimensions ``n``."""
        return len(self.lower)

    @property
    def fidelity_index(self) -> int:
        """Column of the fidelity."""
        return self.dim - 1

    @property
    def lattice_slice(self) -> slice:
        """Columns of the lattice one-hot block (empty with one lattice)."""
        return slice(self.dim - 1 - len(self.lattices), self.dim - 1)

    def with_lattice(self, X: np.ndarray, lattice: int) -> np.ndarray:
        """Rows of ``X`` (shape ``(m, d)``) on lattice number ``lattice`` (one-hot)."""
        X = np.array(X, dtype=float, copy=True)
        X[:, self.lattice_slice] = np.eye(len(self.lattices))[lattice]
        return X

    @property
    def present_lower(self) -> np.ndarray:
        """Lower bound of each element when present, ``max(lo, x_min)`` (≤ ``hi``), ``(n,)``."""
        return np.minimum(np.maximum(self.lower, self.min_fraction), self.upper)

    def support(self, fractions: np.ndarray) -> np.ndarray:
        """Elements kept by the sparse projection of ``fractions`` (shape ``(n,)``), boolean."""
        mandatory = self.lower > 0
        free = np.flatnonzero(~mandatory & (fractions >= self.min_fraction))
        room = self.max_elements - int(mandatory.sum())
        keep = mandatory.copy()
        keep[free[np.argsort(-fractions[free], kind="stable")][:room]] = True
        if self.upper[keep].sum() < 1 - 1e-9 or not keep.any():  # widest feasible support
            keep = mandatory.copy()
            others = np.flatnonzero(~mandatory)
            keep[others[np.argsort(-self.upper[others], kind="stable")][:room]] = True
        return keep

    def bounds(self, support: np.ndarray | None = None) -> Tensor:
        """Box of the inputs, shape ``(2, d)``; with ``support`` absent elements and their
        pairs are pinned at 0 and present ones start at ``x_min``; fidelity ``[0, 1]``."""
        lower = np.zeros(self.dim)
        upper = np.ones(self.dim)
        n = self.n_elements
        lower[:n], upper[:n] = self.lower, self.upper
        if support is not None:
            lower[:n] = np.where(support, self.present_lower, 0.0)
            upper[:n] = np.where(support, self.upper, 0.0)
        for j, (a, b) in enumerate(self.pairs):
            present = support is None or (support[a] and support[b])
            upper[n + j] = self.ratio[1, j] * upper[b] if present else 0.0
        return torch.tensor(np.stack([lower, upper]), dtype=DTYPE)

    def equality_constraints(self) -> list[Constraint]:
        """``Σ_e x_e = 1`` in BoTorch's ``(indices, coefficients, rhs)`` form."""
        n = self.n_elements
        return [(torch.arange(n), torch.ones(n, dtype=DTYPE), 1.0)]

    def inequality_constraints(self, support: np.ndarray | None = None) -> list[Constraint]:
        """The PDM cone ``C_ab - r_lo x_b ≥ 0`` and ``r_hi x_b - C_ab ≥ 0`` per present pair."""
        constraints: list[Constraint] = []
        n = self.n_elements
        for j, (a, b) in enumerate(self.pairs):
            if support is not None and not (support[a] and support[b]):
                continue
            index = torch.tensor([n + j, b])
            constraints.append((index, torch.tensor([-1.0, self.ratio[1, j]], dtype=DTYPE), 0.0))
            if self.ratio[0, j] > 0:
                constraints.append(
                    (index, torch.tensor([1.0, -self.ratio[0, j]], dtype=DTYPE), 0.0)
                )
        lattice = list(range(self.lattice_slice.start, self.lattice_slice.stop))
        for columns in self._coordination_rows(support):
            # Z - Σ_b C_ab ≥ 0, Z = Σ_L Z_L l_L with several lattices
            coefficients = [-1.0] * len(columns) + list(self.coordination if lattice else [])
            rhs = 0.0 if lattice else -self.coordination[0]
            constraints.append(
                (
                    torch.tensor(columns + lattice),
                    torch.tensor(coefficients, dtype=DTYPE),
                    rhs,
                )
            )
        return constraints

    def _coordination_rows(self, support: np.ndarray | None = None) -> list[list[int]]:
        """Feature columns of each element's PDM row (pairs ``a ≤ b`` both in ``support``)
        under the coordination bound; empty without one."""
        if not self.coordination or not self.pairs:
            return []
        rows: dict[int, list[int]] = {}
        for j, (a, b) in enumerate(self.pairs):
            if support is None or (support[a] and support[b]):
                rows.setdefault(a, []).append(self.n_elements + j)
        return list(rows.values())

    def _coordination_of(self, X: np.ndarray) -> np.ndarray:
        """``Z`` of each row of ``X`` (shape ``(m, d)``): its lattice's, shape ``(m,)``."""
        if len(self.coordination) == 1:
            return np.full(len(X), self.coordination[0])
        return X[:, self.lattice_slice] @ np.array(self.coordination)

    def fixed_features(
        self, support: np.ndarray | None = None, lattice: int | None = None
    ) -> dict[int, float]:
        """Features pinned during optimisation: fidelity 1, absent elements and their pairs 0,
        the lattice block at lattice number ``lattice``."""
        fixed = {self.fidelity_index: 1.0}
        if lattice is not None:
            start = self.lattice_slice.start
            fixed.update({start + k: float(k == lattice) for k in range(len(self.lattices))})
        if support is not None:
            n = self.n_elements
            fixed.update({e: 0.0 for e in range(n) if not support[e]})
            fixed.update(
                {
                    n + j: 0.0
                    for j, (a, b) in enumerate(self.pairs)
                    if not (support[a] and support[b])
                }
            )
        return fixed

    def project(self, X: np.ndarray, support: np.ndarray | None = None) -> np.ndarray:
        """Rows of ``X`` (shape ``(m, d)`` or ``(m, n)``) moved onto the feasible set.

        Compositions: Euclidean projection onto the bounded simplex of their support (given,
        or each row's own by :meth:`support`); PDM entries (when ``X`` has them): 0 for pairs
        with an absent element, else clipped into ``[r_lo x_b, r_hi x_b]``. Other columns are
        kept.
        """
        X = np.array(X, dtype=float, copy=True)
        n = self.n_elements
        keep = np.array([self.support(row[:n]) if support is None else support for row in X])
        keep = keep.reshape(len(X), n)
        X[:, :n] = _project_simplex(
            X[:, :n], keep, np.where(keep, self.present_lower, 0.0), np.where(keep, self.upper, 0.0)
        )
        if X.shape[1] > n:
            low, high = np.zeros((2, len(X), len(self.pairs)))
            present = np.zeros((len(X), len(self.pairs)), dtype=bool)
            for j, (a, b) in enumerate(self.pairs):
                low[:, j], high[:, j] = self.ratio[:, j, None] * X[:, b]
                present[:, j] = keep[:, a] & keep[:, b]
            C = np.where(present, np.clip(X[:, n:][:, : len(self.pairs)], low, high), 0.0)
            if self.coordination:  # a row above Z: the closest point of its face Σ C = Z
                limit = self._coordination_of(X)[:, None]
                for columns in self._coordination_rows():
                    row = np.array(columns) - n
                    over = C[:, row].sum(axis=1, keepdims=True) > limit
                    on_face = _project_simplex(
                        C[:, row], present[:, row], low[:, row], high[:, row], limit
                    )
                    C[:, row] = np.where(over, on_face, C[:, row])
            X[:, n : n + len(self.pairs)] = C
        return X

    def realise(self, X: Tensor) -> Tensor:
        """``X`` (shape ``(..., d)``) with each PDM target made that of a filled lattice:
        every row of the full matrix sums to ``Z`` (``x_a C_ab = x_b C_ba``), as it does for
        every ordering on the sites (necessary, not sufficient: FCC and HCP frustration enters
        only through the triangle cap below).

        The unlike pairs are the free variables: their bond fractions ``p_ab = x_a C_ab / Z``
        are kept, capped at the lattice's :attr:`unlike_bonds` (FCC and HCP triangles: at most
        1/3), and scaled by ``min(s_a, s_b)`` with ``s_a = min(1, x_a / Σ_b p_ab)`` where an
        element's unlike contacts overfill its shell; the like pair is the rest of the shell,
        ``C_aa = Z (x_a - Σ_b p_ab) / x_a``. Differentiable, so the acquisition is optimised
        over what the generator can realise (the box and the bound ``Σ_{b ≥ a} C_ab ≤ Z``
        alone let the optimiser pick e.g. FCC Ni0.39Fe0.02Cr0.59 with 10.1 Cr neighbours per Ni
        atom and 3.1 per Cr atom, where the Cr atoms' shells leave 5.0 to Cr, and the GP's
        extrapolation there led the campaign). Unchanged without the coordination bound
        (amorphous or off-site PDMs)."""
        if not self.coordination or not self.pairs:
            return X
        n = self.n_elements
        x = X[..., :n]
        if len(self.coordination) == 1:
            shell = torch.full_like(X[..., 0], self.coordination[0])
            most = torch.full_like(X[..., 0], self.unlike_bonds[0])
        else:
            shell = X[..., self.lattice_slice] @ X.new_tensor(self.coordination)
            most = X[..., self.lattice_slice] @ X.new_tensor(self.unlike_bonds)
        present = x > 0
        safe_x = torch.where(present, x, torch.ones_like(x))
        unlike = [(j, a, b) for j, (a, b) in enumerate(self.pairs) if a != b]

        def of_element(fractions: dict[int, Tensor], e: int) -> Tensor:
            """Sum of the unlike pairs' bond fractions that involve element ``e``."""
            return sum((fractions[j] for j, a, b in unlike if e in (a, b)), torch.zeros_like(shell))

        bonds = {j: torch.minimum(x[..., a] * X[..., n + j] / shell, most) for j, a, _ in unlike}
        scale = [
            torch.clamp(x[..., e] / of_element(bonds, e).clamp_min(TOLERANCE), max=1.0)
            for e in range(n)
        ]
        kept = {j: bonds[j] * torch.minimum(scale[a], scale[b]) for j, a, b in unlike}
        columns = []
        for j, (a, b) in enumerate(self.pairs):
            if a != b:
                value = shell * kept[j] / safe_x[..., a]
            else:
                # a shell the unlike pairs fill leaves 0, not -1e-15
                rest = torch.clamp(x[..., a] - of_element(kept, a), min=0.0)
                value = shell * rest / safe_x[..., a]
            columns.append(torch.where(present[..., a], value, torch.zeros_like(value)))
        start = n + len(self.pairs)
        return torch.cat([x, torch.stack(columns, dim=-1), X[..., start:]], dim=-1)

    def violations(self, X: np.ndarray) -> list[str]:
        """Constraints that rows of ``X`` (shape ``(m, d)`` or ``(m, n)``) break, in words."""
        problems = []
        n = self.n_elements
        for i, row in enumerate(np.atleast_2d(X)):
            x = row[:n]
            present = x > 0
            if abs(x.sum() - 1) > 1e-6:
                problems.append(f"row {i}: fractions sum to {x.sum()}")
            if np.any(x < self.lower - TOLERANCE) or np.any(x > self.upper + TOLERANCE):
                problems.append(f"row {i}: fractions {x} outside their bounds")
            if np.any(present & (x < self.min_fraction - TOLERANCE)):
                problems.append(f"row {i}: a fraction below {self.min_fraction}")
            if present.sum() > self.max_elements:
                problems.append(f"row {i}: {present.sum()} > {self.max_elements} elements")
            if len(row) == n:
                continue
            for j, (a, b) in enumerate(self.pairs):
                c = row[n + j]
                absent = not (present[a] and present[b])
                if absent and c != 0.0:
                    problems.append(f"row {i}: PDM entry {j} of an absent element is {c}")
                low, high = self.ratio[:, j] * x[b]
                derived = a == b and bool(self.coordination)  # the rest of the shell (realise)
                if not absent and not derived and not low - 1e-6 <= c <= high + 1e-6:
                    problems.append(f"row {i}: PDM entry {j} = {c} outside [{low}, {high}]")
            if self.coordination:
                limit = float(self._coordination_of(row[None, :])[0])
                for columns in self._coordination_rows():
                    if row[columns].sum() > limit + 1e-6:
                        problems.append(f"row {i}: PDM row {columns} sums above Z = {limit}")
        return problems

    def sample(self, count: int, seed: int) -> np.ndarray:
        """``count`` compositions, shape ``(count, n)``: uniform (hit-and-run) samples of the
        bounded simplex, then projected (cardinality, absent elements)."""
        n = self.n_elements
        if n == 1:
            return np.ones((count, 1))
        bounds = torch.tensor(np.stack([self.lower, self.upper]), dtype=DTYPE)
        samples = get_polytope_samples(
            count,
            bounds,
            equality_constraints=self.equality_constraints(),
            seed=seed,
            n_burnin=HIT_AND_RUN_BURNIN,
            n_thinning=HIT_AND_RUN_THINNING,
        )
        return self.project(samples.numpy())

    def sample_features(
        self, count: int, seed: int, support: np.ndarray | None = None
    ) -> np.ndarray:
        """``count`` feasible feature rows, shape ``(count, d)``: :meth:`sample` compositions
        (projected onto ``support`` when given), PDM entries uniform in their cone interval,
        lattices in turn, fidelity 1."""
        X = np.zeros((count, self.dim))
        X[:, : self.n_elements] = self.sample(count, seed)
        X[:, self.fidelity_index] = 1.0
        if self.lattices:
            X[:, self.lattice_slice] = np.eye(len(self.lattices))[
                np.arange(count) % len(self.lattices)
            ]
        rng = np.random.default_rng(seed)
        for j, (_, b) in enumerate(self.pairs):
            low, high = self.ratio[:, j]
            X[:, self.n_elements + j] = rng.uniform(low, high, size=count) * X[:, b]
        return self.project(X, support)

    def pending_features(self, compositions: np.ndarray, pdm_mean: np.ndarray) -> np.ndarray:
        """Features of submitted compositions (shape ``(m, n)``): the mean PDM made consistent
        with each composition (:meth:`project`), lattices in turn, fidelity 1; shape
        ``(m, d)``."""
        m = len(compositions)
        lattice = (
            np.eye(len(self.lattices))[np.arange(m) % len(self.lattices)]
            if self.lattices
            else np.zeros((m, 0))
        )
        fidelity = np.ones((m, 1))
        return self.project(np.hstack([compositions, np.tile(pdm_mean, (m, 1)), lattice, fidelity]))


def _coordination(
    training: TrainingSet, config: CampaignConfig, pairs: list[tuple[int, int]]
) -> tuple[float, ...]:
    """``Z`` of each of the campaign's lattices for the coordination bound: its first shell
    (:data:`generator.pdm.FIRST_SHELL`) or, where evaluated cells of that lattice hold a larger
    row total (cells not quite on the sites), that total, so the bound keeps every observed
    PDM; ``()`` without PDM or where the PDM is not read on lattice sites."""
    if not pairs or not pdm_on_sites(config):
        return ()
    X = training.feasibility_X if len(training.feasibility_X) else training.all_X()
    n = training.n_elements
    totals = np.zeros((len(X), n))
    for j, (a, _) in enumerate(pairs):
        totals[:, a] += X[:, n + j]
    largest = totals.max(axis=1)
    lattices = config.cell.lattices
    on = X[:, training.lattice_slice] if training.lattices else np.ones((len(X), 1))
    return tuple(
        max([FIRST_SHELL[kind], *(largest[on[:, k] > 0.5] - COORDINATION_SLACK)])
        for k, kind in enumerate(lattices)
    )


def _ratio_range(training: TrainingSet, pairs: list[tuple[int, int]], margin: float) -> np.ndarray:
    """``[r_lo, r_hi]`` of ``C_ab / x_b`` per pair over the evaluated structures (see module)."""
    ratio = np.zeros((2, len(pairs)))
    if not pairs:
        return ratio
    X = training.feasibility_X if len(training.feasibility_X) else training.all_X()
    n = training.n_elements
    observed = []
    for j, (a, b) in enumerate(pairs):
        both = (X[:, a] > 0) & (X[:, b] > 0)
        observed.append(X[both, n + j] / X[both, b])
    pooled = np.concatenate(observed) if observed else np.zeros(0)
    fallback = (pooled.min(), pooled.max()) if len(pooled) else (0.0, 0.0)
    for j, values in enumerate(observed):
        low, high = (values.min(), values.max()) if len(values) else fallback
        # a range seen in one structure has no width: widen by its value instead
        widen = max(margin * max(high - low, 0.5 * (high + low)), MIN_RATIO_WIDENING)
        ratio[:, j] = max(low - widen, 0.0), high + widen
    return ratio


def _project_simplex(
    y: np.ndarray,
    keep: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    total: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Euclidean projections of the rows of ``y`` (shape ``(m, n)``) onto
    ``{Σ x = total, low ≤ x ≤ high}`` (``total`` per row, shape ``(m, 1)``, or one value) with
    ``x = 0`` off ``keep``: ``x = clip(y - τ, low, high)`` with one ``τ`` per row from
    bisection."""
    y = np.where(keep, y, 0.0)
    left = np.min(y - high, axis=1, keepdims=True) - 1.0
    right = np.max(y - low, axis=1, keepdims=True) + 1.0
    for _ in range(BISECTION_STEPS):
        tau = 0.5 * (left + right)
        over = np.clip(y - tau, low, high).sum(axis=1, keepdims=True) > total
        left = np.where(over, tau, left)
        right = np.where(over, right, tau)
    return np.where(keep, np.clip(y - 0.5 * (left + right), low, high), 0.0)
