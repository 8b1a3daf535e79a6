"""Pair distribution matrix (PDM): partial first-shell coordination numbers of a structure.

For a campaign with elements ``E = (e_0, ..., e_{n-1})`` (fixed order), the PDM of a structure is
the vector of ``C[a, b]`` for all pairs ``a <= b``: the mean number of ``e_b`` neighbours around
an ``e_a`` atom within the first-shell cutoff ``r_c(a, b)``. Its length ``n (n + 1) / 2`` is
fixed by the campaign's elements (absent elements give zeros), which is what lets it condition
the generator and serve as an acquisition target. The other half of the matrix follows from
``C[b, a] = C[a, b] x_a / x_b`` (``x`` the atomic fractions); :func:`coordination_matrix` gives
the full matrix.

Cutoffs ``r_c(a, b)`` (Å), symmetric in ``a, b``:

1. **First minimum of the partial RDF** ``g_ab(r)`` (histogram with ``bin_width``, Gaussian
   smoothing ``smoothing``), where it is resolvable: ``g_ab`` has its first peak inside the
   first-shell window (below the radii rule's cutoff) and falls after it to a minimum no higher
   than half that peak before rising again within ``r_max``. The minimum is the centre of the
   points within 2 % of the peak height above the lowest value between the peak and that rise,
   so a flat gap between the shells of a crystal gives its middle.
2. **Radii rule** otherwise: ``r_c = (1 + √2) / 2 · (R_a + R_b)`` with ``R`` the metallic radius
   (atomic radius where none is tabulated), i.e. halfway between the first (``R_a + R_b``) and
   second (``√2 (R_a + R_b)``) shells of close-packed touching spheres. This is the case of
   pairs that are not nearest neighbours at all (Fe-Fe in L1₂ Ni₃Fe has no first shell, so its
   partial RDF starts at the second shell and is counted as 0) and of pairs too rare to show a
   minimum.

A campaign fixes its cutoffs once with :func:`shell_cutoffs` over a reference set of structures
(their pooled partial RDFs) and passes them to :func:`pdm`; without them each structure's own
RDF is used. A cell on the sites of an ideal lattice has its first shell by construction:
:func:`site_shell_cutoffs` puts the cutoff halfway between the lattice's first and second
neighbour shells (8 neighbours in BCC, whose second shell is only 15 % further out, 12 in FCC
and HCP). Neighbours come from pymatgen's ``Structure.get_neighbor_list`` (periodic images
included).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from pymatgen.core import Structure
from scipy.ndimage import gaussian_filter1d

from amloop.generator.solid_solution import LatticeKind, element_radius

#: Largest distance of the partial RDFs the cutoffs are searched in (Å).
DEFAULT_R_MAX = 6.0
#: Bin width of the partial RDFs (Å).
DEFAULT_BIN_WIDTH = 0.02
#: Standard deviation of the Gaussian smoothing of the partial RDFs (Å).
DEFAULT_SMOOTHING = 0.1
#: Radii rule: cutoff = this x (R_a + R_b), halfway between the 1st and 2nd close-packed shells.
RADII_SHELL_FACTOR = (1.0 + math.sqrt(2.0)) / 2.0
#: A minimum counts as resolved when it is at most this fraction of the first peak's height.
MAX_MINIMUM_DEPTH = 0.5
#: Points within this fraction of the peak height above the lowest value form the minimum.
MINIMUM_TOLERANCE = 0.02
#: First-neighbour distance of each ideal lattice over the cube root of its volume per atom.
NEAREST_PER_SPACING: dict[str, float] = {
    "fcc": 2.0 ** (1.0 / 6.0),
    "bcc": math.sqrt(3.0) / 2.0 * 2.0 ** (1.0 / 3.0),
    "hcp": 2.0 ** (1.0 / 6.0),
}
#: First-shell coordination number of each ideal lattice.
FIRST_SHELL: dict[str, float] = {"fcc": 12.0, "bcc": 8.0, "hcp": 12.0}
#: Largest share ``x_a C_ab / Z`` of one unlike pair's first-shell bonds per atom, half its
#: share of all bonds: every bond of FCC and HCP lies in triangles, of which one pair holds at
#: most two bonds (2/3 of all bonds: L1_0 at 50 %); BCC's first shell is bipartite (all: B2).
MOST_UNLIKE_BONDS: dict[str, float] = {"fcc": 1.0 / 3.0, "bcc": 0.5, "hcp": 1.0 / 3.0}
#: Second- to first-neighbour distance of each ideal lattice (HCP with ideal c/a).
SHELL_RATIO: dict[str, float] = {
    "fcc": math.sqrt(2.0),
    "bcc": 2.0 / math.sqrt(3.0),
    "hcp": math.sqrt(2.0),
}


def pair_indices(n_elements: int) -> list[tuple[int, int]]:
    """Element-index pairs ``(a, b)`` with ``a <= b``, in PDM order."""
    return [(a, b) for a in range(n_elements) for b in range(a, n_elements)]


def pair_labels(elements: Sequence[str]) -> list[str]:
    """Names of the PDM entries: ``"Ni-Fe"`` is the mean number of Fe around a Ni atom."""
    return [f"{elements[a]}-{elements[b]}" for a, b in pair_indices(len(elements))]


def pdm_labels(elements: Sequence[str], rdf_bins: int = 0) -> list[str]:
    """Names of all entries of :func:`pdm`'s vector: pairs, then ``g(Ni-Fe)[k]`` RDF bins."""
    pairs = pair_labels(elements)
    return pairs + [f"g({pair})[{k}]" for pair in pairs for k in range(rdf_bins)]


def radii_cutoffs(elements: Sequence[str]) -> np.ndarray:
    """Radii-rule first-shell cutoffs ``(1 + √2) / 2 · (R_a + R_b)`` (Å), shape ``(n, n)``."""
    radii = np.array([element_radius(symbol) for symbol in elements])
    return RADII_SHELL_FACTOR * (radii[:, None] + radii[None, :])


def _species_indices(structure: Structure, elements: Sequence[str]) -> np.ndarray:
    index = {symbol: k for k, symbol in enumerate(elements)}
    try:
        return np.array([index[site.specie.symbol] for site in structure], dtype=int)
    except KeyError as exc:
        raise ValueError(
            f"structure holds {exc.args[0]}, which is not among the elements {list(elements)}"
        ) from None


def _pair_distances(
    structure: Structure, elements: Sequence[str], r_max: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Species of every atom and (centre species, neighbour species, distance) of all pairs."""
    species = _species_indices(structure, elements)
    centres, neighbours, _, distances = structure.get_neighbor_list(r_max, exclude_self=True)
    return species, species[centres], species[neighbours], distances


def _histograms(
    structures: Iterable[Structure], elements: Sequence[str], r_max: float, bin_width: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled pair histograms ``(n, n, bins)``, their ideal-gas norms ``(n, n)``, bin edges."""
    n = len(elements)
    edges = np.arange(0.0, r_max + 0.5 * bin_width, bin_width)
    counts = np.zeros((n, n, edges.size - 1))
    norms = np.zeros((n, n))
    for structure in structures:
        species, a, b, distances = _pair_distances(structure, elements, r_max)
        bins = np.minimum((distances / bin_width).astype(int), edges.size - 2)
        np.add.at(counts, (a, b, bins), 1.0)
        numbers = np.bincount(species, minlength=n).astype(float)
        norms += np.outer(numbers, numbers) / structure.volume  # N_a · ρ_b
    return counts, norms, edges


def partial_rdf(
    structures: Structure | Iterable[Structure],
    elements: Sequence[str],
    *,
    r_max: float = DEFAULT_R_MAX,
    bin_width: float = DEFAULT_BIN_WIDTH,
) -> tuple[np.ndarray, np.ndarray]:
    """Partial radial distribution functions ``g_ab(r)``, pooled over ``structures``.

    Returns:
        Bin centres ``r`` (Å), shape ``(bins,)``, and ``g`` of shape ``(n, n, bins)``, normalised
        so that ``g_ab -> 1`` for an uncorrelated mixture (0 where either element is absent).
    """
    if isinstance(structures, Structure):
        structures = [structures]
    counts, norms, edges = _histograms(structures, elements, r_max, bin_width)
    shells = 4.0 / 3.0 * math.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(norms[:, :, None] > 0, counts / (norms[:, :, None] * shells), 0.0)
    return 0.5 * (edges[1:] + edges[:-1]), g


def first_minimum(r: np.ndarray, g: np.ndarray, peak_limit: float) -> float | None:
    """Position (Å) of the first minimum after the first peak of a smoothed RDF, if resolvable.

    Args:
        r: Bin centres (Å), shape ``(bins,)``.
        g: Smoothed RDF on ``r``, shape ``(bins,)``.
        peak_limit: The first peak must lie at or below this distance (Å).

    Returns:
        ``None`` when there is no peak within ``peak_limit``, or no minimum at most
        :data:`MAX_MINIMUM_DEPTH` of the peak followed by a rise before the last bin.
    """
    window = r <= peak_limit
    if not window.any() or g[window].max() <= 0.0:
        return None
    peak = int(np.argmax(np.where(window, g, -np.inf)))
    while peak + 1 < g.size and g[peak + 1] > g[peak]:  # climb to the top if it lies beyond
        peak += 1
    if r[peak] > peak_limit:
        return None
    tolerance = MINIMUM_TOLERANCE * g[peak]
    lowest, end = g[peak], peak
    while end + 1 < g.size and g[end + 1] <= lowest + tolerance:
        end += 1
        lowest = min(lowest, g[end])
    if end + 1 >= g.size or lowest > MAX_MINIMUM_DEPTH * g[peak]:
        return None
    segment = slice(peak, end + 1)
    near = g[segment] <= lowest + tolerance
    return float(r[segment][near].mean())


def shell_cutoffs(
    structures: Structure | Iterable[Structure],
    elements: Sequence[str],
    *,
    r_max: float = DEFAULT_R_MAX,
    bin_width: float = DEFAULT_BIN_WIDTH,
    smoothing: float = DEFAULT_SMOOTHING,
) -> np.ndarray:
    """First-shell cutoffs ``r_c(a, b)`` (Å), shape ``(n, n)``, symmetric.

    First minimum of the pooled, smoothed partial RDF of ``structures`` where resolvable, else
    the radii rule (see the module docstring).
    """
    r, g = partial_rdf(structures, elements, r_max=r_max, bin_width=bin_width)
    cutoffs = radii_cutoffs(elements)
    for a, b in pair_indices(len(elements)):
        smooth = gaussian_filter1d(g[a, b], smoothing / bin_width, mode="constant")
        found = first_minimum(r, smooth, peak_limit=float(cutoffs[a, b]))
        if found is not None:
            cutoffs[a, b] = cutoffs[b, a] = found
    return cutoffs


def site_shell_cutoffs(structure: Structure, kind: LatticeKind, n_elements: int) -> np.ndarray:
    """First-shell cutoffs (Å), shape ``(n_elements, n_elements)``, of a cell on the sites of the
    lattice ``kind``: halfway between the first and second neighbour distances of the ideal
    lattice of the cell's volume per atom (:data:`NEAREST_PER_SPACING`, :data:`SHELL_RATIO`),
    the same for every pair, so the PDM counts the lattice's first shell whatever the ordering
    (and whatever small displacements a relaxation made)."""
    spacing = (structure.volume / len(structure)) ** (1.0 / 3.0)
    nearest = NEAREST_PER_SPACING[kind] * spacing
    return np.full((n_elements, n_elements), 0.5 * nearest * (1.0 + SHELL_RATIO[kind]))


def closest_pair_distances(
    structures: Iterable[Structure], elements: Sequence[str], *, r_max: float = DEFAULT_R_MAX
) -> np.ndarray:
    """Shortest ``a``-``b`` distance (Å) found in ``structures``, shape ``(n, n)``, symmetric;
    0 for pairs never found within ``r_max``."""
    n = len(elements)
    closest = np.full((n, n), np.inf)
    for structure in structures:
        _, a, b, distances = _pair_distances(structure, elements, r_max)
        np.minimum.at(closest, (a, b), distances)
    return np.where(np.isfinite(closest), closest, 0.0)


def coordination_matrix(
    structure: Structure, elements: Sequence[str], cutoffs: np.ndarray | None = None
) -> np.ndarray:
    """Mean number of ``b`` neighbours around an ``a`` atom within ``cutoffs[a, b]``.

    Args:
        structure: An ordered structure whose elements are all in ``elements``.
        elements: The campaign's elements, in their fixed order.
        cutoffs: First-shell cutoffs (Å), shape ``(n, n)``; ``None`` takes
            :func:`shell_cutoffs` of ``structure`` alone.

    Returns:
        ``C`` of shape ``(n, n)``; rows of absent elements are 0.
    """
    if cutoffs is None:
        cutoffs = shell_cutoffs(structure, elements)
    n = len(elements)
    species, a, b, distances = _pair_distances(structure, elements, float(cutoffs.max()))
    inside = distances <= cutoffs[a, b]
    counts = np.zeros((n, n))
    np.add.at(counts, (a[inside], b[inside]), 1.0)
    numbers = np.bincount(species, minlength=n).astype(float)
    return np.divide(
        counts, numbers[:, None], out=np.zeros_like(counts), where=numbers[:, None] > 0
    )


def pdm(
    structure: Structure,
    elements: Sequence[str],
    *,
    cutoffs: np.ndarray | None = None,
    rdf_bins: int = 0,
    r_max: float = DEFAULT_R_MAX,
) -> np.ndarray:
    """The PDM vector of ``structure`` for the campaign's ``elements``.

    Args:
        structure: An ordered structure whose elements are all in ``elements``.
        elements: The campaign's elements, in their fixed order.
        cutoffs: First-shell cutoffs (Å), shape ``(n, n)``, fixed for a campaign (see
            :func:`shell_cutoffs`); ``None`` derives them from ``structure`` alone.
        rdf_bins: When positive, the partial RDFs of the pairs ``a <= b`` on this many bins of
            ``[0, r_max]`` are appended (pair-major), for a richer target.
        r_max: Range of the appended partial RDFs (Å).

    Returns:
        ``C[a, b]`` for the pairs ``a <= b`` (order of :func:`pair_labels`), shape
        ``(n (n + 1) / 2 + rdf_bins · n (n + 1) / 2,)``.
    """
    matrix = coordination_matrix(structure, elements, cutoffs)
    pairs = pair_indices(len(elements))
    vector = np.array([matrix[a, b] for a, b in pairs])
    if rdf_bins <= 0:
        return vector
    _, g = partial_rdf(structure, elements, r_max=r_max, bin_width=r_max / rdf_bins)
    return np.concatenate([vector, *(g[a, b] for a, b in pairs)])
