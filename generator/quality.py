"""Structure-quality metrics of seed 002 (Dismai-Bench): compare a generated set to a reference.

A generated set of disordered structures is judged by how close its *average* descriptors are to
those of the reference (training) set, as Euclidean distances between the set averages:

- **RDF**: total radial distribution function ``g(r)`` on 0-10 Å in 0.02 Å bins (per structure,
  then averaged), and the partial ``g_ab(r)`` per element pair (:func:`generator.pdm.partial_rdf`,
  periodic images included, so ``r`` may exceed half the cell).
- **Bond angles**: the distribution (0.5° bins, normalised to sum 1 per structure) of the angles
  between every two neighbours of each atom, neighbours from pymatgen's ``CrystalNN`` at its most
  likely coordination number, set up as seed 002's scripts set it up (no distance cutoffs, no
  electronegativity weight, no porous adjustment: :data:`ANGLE_CRYSTALNN`).
- **Motifs**: the ``CrystalNNFingerprint`` of each site (matminer's ``"ops"`` preset: for every
  coordination number 1-24 its CrystalNN likelihood ``wt``, and ``wt`` times the local structure
  order parameter of each target motif), averaged over the sites of each element and of all
  sites. Built here from pymatgen's ``CrystalNN``, ``LocalStructOrderParams`` (one object per
  motif, as matminer makes them) and ``CN_OPT_PARAMS`` (matminer itself pins ``pandas<3``);
  ``tests/generator/test_quality_vs_peer.py`` holds the three distances within 1 % of seed
  002's own scripts (vasppy, matminer). With
  ``oxidation_states`` only cation-anion bonds count (``CrystalNN(cation_anion=True)``), only
  cations are fingerprinted, and the fraction of each anion among the neighbours is appended, as
  for Dismai-Bench's interface dataset.
- **Lattice alloys**: Warren-Cowley short-range order ``α_l^{AB} = 1 - P(B | A, shell l) / c_B``
  and the cluster fingerprint (monomer fractions ``c_A``, then for each shell the fraction of its
  pairs that are ``A-B``), on neighbour shells found from a (near-)ideal lattice.
- **PDM conditioning error** ``|PDM(generated) - PDM(target)|`` per pair and its mean.
- **Failures and relaxation steps** are counted by the caller (push-apart, MLP relaxation) and
  passed in; nothing here runs a potential.

Every distance comes with a 95 % bootstrap interval: both sets resampled, the 2.5-97.5 % spread
of the resampled distances recentred on the estimate, clipped at 0 (:func:`set_distance`).
Seed 002 resamples the generated set only and reports the pivotal interval
``[2 d - q_97.5, 2 d - q_2.5]`` (Wasserman, *All of Statistics*, eq. 8.6); a distance between
two noisy averages is biased upwards by their sampling noise, so where the noise dominates (few
or small cells) that interval lies below the estimate rather than around it. Means (Warren-Cowley
parameters, PDM errors) get the pivotal interval (:func:`mean_interval`).
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymatgen.analysis.local_env import CN_OPT_PARAMS, CrystalNN, LocalStructOrderParams
from pymatgen.core import Element, Structure

from amloop.generator.pdm import pair_indices, partial_rdf

#: Range (Å) and bin width (Å) of the RDFs (seed 002).
RDF_R_MAX = 10.0
RDF_BIN_WIDTH = 0.02
#: Bin width of the bond-angle distribution (degrees, seed 002).
ANGLE_BIN_WIDTH = 0.5
#: Largest coordination number of the motif fingerprint (matminer's ``"ops"`` preset).
MAX_CN = 24
#: Target motifs per coordination number beyond pymatgen's ``CN_OPT_PARAMS`` (matminer).
EXTRA_MOTIFS: dict[int, list[str]] = {
    1: ["sgl_bd"],
    9: ["q2", "q4", "q6"],
    10: ["q2", "q4", "q6"],
    11: ["q2", "q4", "q6"],
    12: ["q2", "q4", "q6"],
}
#: Pair distances closer than this (Å) belong to one neighbour shell of a lattice.
SHELL_TOLERANCE = 0.1
#: Bootstrap resamples and confidence level of the intervals.
N_BOOTSTRAP = 1000
CONFIDENCE = 0.95


# ------------------------------------------------------------------------------ RDFs


def element_order(structures: Sequence[Structure]) -> list[str]:
    """Elements present in ``structures``, by atomic number."""
    present = {el.symbol for s in structures for el in s.composition.elements}
    return sorted(present, key=lambda symbol: Element(symbol).Z)


def rdf_grid(r_max: float = RDF_R_MAX, bin_width: float = RDF_BIN_WIDTH) -> np.ndarray:
    """Bin centres ``r`` (Å) of the RDFs, shape ``(bins,)``."""
    edges = np.arange(0.0, r_max + 0.5 * bin_width, bin_width)
    return 0.5 * (edges[1:] + edges[:-1])


def structure_rdfs(
    structure: Structure,
    elements: Sequence[str],
    *,
    r_max: float = RDF_R_MAX,
    bin_width: float = RDF_BIN_WIDTH,
) -> tuple[np.ndarray, np.ndarray]:
    """Total and partial RDFs of one structure.

    Returns:
        Total ``g(r) = Σ_ab x_a x_b g_ab(r)``, shape ``(bins,)``, and partials ``g_ab`` for the
        pairs ``a <= b`` in :func:`generator.pdm.pair_indices` order, shape ``(pairs, bins)``.
    """
    _, g = partial_rdf(structure, elements, r_max=r_max, bin_width=bin_width)
    amounts = structure.composition.get_el_amt_dict()
    x = np.array([amounts.get(el, 0.0) for el in elements]) / len(structure)
    total = np.einsum("a,b,abr->r", x, x, g)
    pairs = np.array([g[a, b] for a, b in pair_indices(len(elements))])
    return total, pairs


# ------------------------------------------------------------------------------ CrystalNN


@functools.cache
def _order_parameters() -> dict[int, list[tuple[str, LocalStructOrderParams]]]:
    """Per coordination number: each target motif with its own ``LocalStructOrderParams``.

    One object per motif, as matminer's ``CrystalNNFingerprint`` builds them: pymatgen applies
    the "south pole" contributions of an object only to its last order-parameter type, so one
    object holding all of a coordination number's types gives other values for the rest.
    """
    table: dict[int, list[tuple[str, LocalStructOrderParams]]] = {}
    for cn in range(1, MAX_CN + 1):
        names = list(CN_OPT_PARAMS.get(cn, {})) + EXTRA_MOTIFS.get(cn, [])
        motifs = []
        for name in names:
            spec = CN_OPT_PARAMS.get(cn, {}).get(name, [name])
            parameters = spec[1] if len(spec) > 1 else None
            ops = LocalStructOrderParams([str(spec[0])], parameters=[parameters])  # type: ignore[list-item]
            motifs.append((name, ops))
        table[cn] = motifs
    return table


def fingerprint_labels(anions: Sequence[str] = ()) -> list[str]:
    """Names of the motif-fingerprint entries (``"wt CN_4"``, ``"tetrahedral CN_4"``, ...)."""
    labels = []
    for cn, motifs in _order_parameters().items():
        labels += [f"wt CN_{cn}"] + [f"{name} CN_{cn}" for name, _ in motifs]
    return labels + [f"fraction {anion}" for anion in anions]


@dataclass
class LocalEnvironments:
    """CrystalNN analysis of one structure, computed once and shared by the metrics.

    Attributes:
        elements: Element of each fingerprinted site, shape ``(sites,)``.
        fingerprints: Motif fingerprint per fingerprinted site, shape ``(sites, features)``.
        angles: Every bond angle (degrees) at every site, shape ``(angles,)``.
    """

    elements: np.ndarray
    fingerprints: np.ndarray
    angles: np.ndarray


#: CrystalNN of the bond angles, as Dismai-Bench's ``get_a_Si_bond_angle.py`` sets it up: no
#: distance cutoffs, no electronegativity weighting, no porous adjustment.
ANGLE_CRYSTALNN = {"distance_cutoffs": None, "x_diff_weight": 0, "porous_adjustment": False}


def local_environments(
    structure: Structure,
    *,
    oxidation_states: Mapping[str, float] | None = None,
    angles: bool = True,
) -> LocalEnvironments:
    """CrystalNN motif fingerprints and bond angles of every site (about 1 s per 64 atoms each).

    The fingerprint is matminer's ``CrystalNNFingerprint`` (``"ops"`` preset, CrystalNN at its
    defaults); the angles are those between every two neighbours at the most likely
    coordination number of a CrystalNN set up as :data:`ANGLE_CRYSTALNN`, as in seed 002's
    scripts. The two neighbour sets differ (in a random cell, most sites).

    Args:
        structure: Ordered periodic structure.
        oxidation_states: Element -> oxidation state; when given, bonds are cation-anion only,
            only cations (state > 0) are fingerprinted and the fraction of each anion among the
            neighbours is appended.
        angles: Compute the bond angles too (a second CrystalNN pass).
    """
    anions: list[str] = []
    if oxidation_states is not None:
        structure = structure.copy()
        structure.add_oxidation_state_by_element(dict(oxidation_states))
        anions = sorted(el for el, state in oxidation_states.items() if state < 0)
    cation_anion = oxidation_states is not None
    motif_nn = CrystalNN(cation_anion=cation_anion)
    angle_nn = CrystalNN(cation_anion=cation_anion, **ANGLE_CRYSTALNN)  # type: ignore[arg-type]
    symbols, rows, site_angles = [], [], []
    for index, site in enumerate(structure):
        if oxidation_states is not None and oxidation_states[site.specie.symbol] <= 0:
            continue
        with warnings.catch_warnings():  # "cannot locate an appropriate radius" for metals
            warnings.simplefilter("ignore", UserWarning)
            data = motif_nn.get_nn_data(structure, index)
            bonded = angle_nn.get_nn_info(structure, index) if angles else []
        rows.append(_fingerprint(site, data, anions))
        symbols.append(site.specie.symbol)
        if len(bonded) > 1:
            site_angles.append(_angles(np.array([e["site"].coords - site.coords for e in bonded])))
    width = len(fingerprint_labels(anions))
    return LocalEnvironments(
        elements=np.array(symbols, dtype=object),
        fingerprints=np.array(rows, dtype=float).reshape(-1, width),
        angles=np.concatenate(site_angles) if site_angles else np.zeros(0),
    )


def _fingerprint(site: Any, data: Any, anions: Sequence[str]) -> list[float]:
    """One site's motif fingerprint from its CrystalNN data (``CrystalNN.NNData``)."""
    row: list[float] = []
    for cn, motifs in _order_parameters().items():
        weight = float(data.cn_weights.get(cn, 0.0))
        row.append(weight)
        if weight == 0.0:
            row += [0.0] * len(motifs)
            continue
        neighbours = [entry["site"] for entry in data.cn_nninfo[cn]]
        for _, ops in motifs:
            (value,) = ops.get_order_parameters(  # a site list, as pymatgen's docstring allows
                [site, *neighbours],  # type: ignore[arg-type]
                0,
                indices_neighs=list(range(1, len(neighbours) + 1)),
            )
            row.append(weight * (value or 0.0))
    for anion in anions:
        row.append(
            sum(
                weight * np.mean([e["site"].specie.symbol == anion for e in data.cn_nninfo[cn]])
                for cn, weight in data.cn_weights.items()
                if data.cn_nninfo[cn]
            )
        )
    return row


def _angles(vectors: np.ndarray) -> np.ndarray:
    """Angles (degrees) between every two of ``vectors``, shape ``(k (k - 1) / 2,)``."""
    if len(vectors) < 2:
        return np.zeros(0)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    first, second = np.triu_indices(len(vectors), k=1)
    cosines = np.clip(np.einsum("ij,ij->i", unit[first], unit[second]), -1.0, 1.0)
    return np.degrees(np.arccos(cosines))


def angle_grid(bin_width: float = ANGLE_BIN_WIDTH) -> np.ndarray:
    """Bin centres (degrees) of the bond-angle distribution on 0-180°, shape ``(bins,)``."""
    return np.arange(0.5 * bin_width, 180.0, bin_width)


def angle_distribution(angles: np.ndarray, bin_width: float = ANGLE_BIN_WIDTH) -> np.ndarray:
    """Fraction of ``angles`` (degrees) per bin of :func:`angle_grid`, shape ``(bins,)``.

    Bins are closed on the right, the first on both sides (``pandas.cut(...,
    include_lowest=True)`` as seed 002 bins them): 90° falls in 89.5-90°, 0° in the first bin.
    """
    n_bins = round(180.0 / bin_width)
    index = np.ceil(np.asarray(angles, float) / bin_width).astype(int) - 1
    counts = np.bincount(np.clip(index, 0, n_bins - 1), minlength=n_bins)
    return counts / max(counts.sum(), 1)


# ------------------------------------------------------------------------------ lattice alloys


def shell_edges(
    structure: Structure, n_shells: int = 2, *, tolerance: float = SHELL_TOLERANCE
) -> np.ndarray:
    """Upper edges (Å) of the first ``n_shells`` neighbour shells of a (near-)ideal lattice.

    Pair distances within ``tolerance`` (Å) of each other form one shell; each edge lies halfway
    between a shell's largest and the next shell's smallest distance. Shape ``(n_shells,)``.

    Raises:
        ValueError: fewer than ``n_shells + 1`` shells within the search radius.
    """
    _, _, _, first = structure.get_neighbor_list(6.0, exclude_self=True)
    radius = float(first.min()) * (1.0 + math.sqrt(n_shells + 1.0))
    _, _, _, distances = structure.get_neighbor_list(radius, exclude_self=True)
    values = np.sort(distances)
    breaks = np.flatnonzero(np.diff(values) > tolerance)
    if len(breaks) < n_shells:
        raise ValueError(
            f"found {len(breaks)} neighbour shells (gaps > {tolerance} Å) within {radius:.2f} Å, "
            f"need {n_shells + 1}: is this a lattice?"
        )
    return np.array([0.5 * (values[k] + values[k + 1]) for k in breaks[:n_shells]])


def _shell_counts(structure: Structure, elements: Sequence[str], edges: np.ndarray) -> np.ndarray:
    """Ordered pair counts ``N[l, a, b]`` (b around a) per shell, shape ``(shells, n, n)``."""
    index = {el: k for k, el in enumerate(elements)}
    species = np.array([index[site.specie.symbol] for site in structure])
    centres, neighbours, _, distances = structure.get_neighbor_list(
        float(edges[-1]), exclude_self=True
    )
    shell = np.searchsorted(edges, distances)
    counts = np.zeros((len(edges), len(elements), len(elements)))
    np.add.at(counts, (shell, species[centres], species[neighbours]), 1.0)
    return counts


def warren_cowley(structure: Structure, elements: Sequence[str], edges: np.ndarray) -> np.ndarray:
    """Warren-Cowley parameters ``α_l^{AB} = 1 - P(B around A in shell l) / c_B``.

    Args:
        structure: Structure on a lattice (ordered).
        elements: Element order of the result.
        edges: Upper shell edges (Å), shape ``(shells,)`` (see :func:`shell_edges`).

    Returns:
        ``α`` of shape ``(shells, n, n)``; ``NaN`` where ``A`` or ``B`` is absent. 0 for a random
        solution, negative for attraction (-1 when every neighbour of A is B and ``c_B = 1/2``).
    """
    counts = _shell_counts(structure, elements, edges)
    amounts = structure.composition.get_el_amt_dict()
    c = np.array([amounts.get(el, 0.0) for el in elements]) / len(structure)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts / counts.sum(axis=2, keepdims=True)
        return np.where(c[None, None, :] > 0, 1.0 - p / c[None, None, :], np.nan)


def cluster_fingerprint(
    structure: Structure, elements: Sequence[str], edges: np.ndarray
) -> np.ndarray:
    """Monomer and dimer probabilities of seed 002's alloy metric.

    Returns:
        ``c_A`` for each element, then for each shell the fraction of its (unordered) pairs
        that are ``A-B`` for ``A <= B``; shape ``(n + shells · n (n + 1) / 2,)``.
    """
    counts = _shell_counts(structure, elements, edges)
    amounts = structure.composition.get_el_amt_dict()
    parts = [np.array([amounts.get(el, 0.0) for el in elements]) / len(structure)]
    for shell in counts:
        pairs = np.array(
            [shell[a, b] + (shell[b, a] if a != b else 0.0) for a, b in pair_indices(len(elements))]
        )
        parts.append(pairs / max(shell.sum(), 1.0))
    return np.concatenate(parts)


# ------------------------------------------------------------------------------ PDM error


def pdm_errors(generated: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean absolute PDM conditioning error per pair (neighbours).

    Args:
        generated: PDMs of the generated structures, shape ``(structures, pairs)``.
        targets: The PDM each was conditioned on, same shape.

    Returns:
        ``mean |PDM(generated) - PDM(target)|`` over structures, shape ``(pairs,)``.
    """
    return np.abs(np.asarray(generated) - np.asarray(targets)).mean(axis=0)


# ------------------------------------------------------------------------------ sets and distances


@dataclass
class SetDescriptors:
    """Per-structure descriptors of a set of structures (rows = structures).

    Attributes:
        elements: Element order of the partial RDFs, motifs and alloy metrics.
        rdf: Total ``g(r)``, shape ``(structures, bins)`` on :func:`rdf_grid`.
        partial_rdf: Pair label (``"Cu-Zr"``) -> ``g_ab(r)``, shape ``(structures, bins)``.
        angles: Bond-angle distributions, shape ``(structures, bins)`` on :func:`angle_grid`;
            ``None`` when not computed.
        motifs: ``"all"`` and each (fingerprinted) element -> mean site fingerprint per
            structure, shape ``(structures, features)``, ``NaN`` rows where the element is absent.
        sro: Warren-Cowley ``α``, shape ``(structures, shells, n, n)``; ``None`` unless a lattice.
        clusters: Cluster fingerprints, shape ``(structures, features)``; ``None`` unless a
            lattice.
    """

    elements: list[str]
    rdf: np.ndarray
    partial_rdf: dict[str, np.ndarray]
    angles: np.ndarray | None = None
    motifs: dict[str, np.ndarray] = field(default_factory=dict)
    sro: np.ndarray | None = None
    clusters: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rdf)

    def subset(self, indices: Sequence[int] | np.ndarray) -> SetDescriptors:
        """The descriptors of the structures at ``indices``."""
        rows = np.asarray(indices, dtype=int)
        return SetDescriptors(
            elements=self.elements,
            rdf=self.rdf[rows],
            partial_rdf={k: v[rows] for k, v in self.partial_rdf.items()},
            angles=None if self.angles is None else self.angles[rows],
            motifs={k: v[rows] for k, v in self.motifs.items()},
            sro=None if self.sro is None else self.sro[rows],
            clusters=None if self.clusters is None else self.clusters[rows],
        )


def describe(
    structures: Sequence[Structure],
    elements: Sequence[str] | None = None,
    *,
    local: bool = True,
    oxidation_states: Mapping[str, float] | None = None,
    lattice_edges: np.ndarray | None = None,
) -> SetDescriptors:
    """Descriptors of every structure of a set (CrystalNN once per structure).

    Args:
        structures: The set (at least one structure).
        elements: Element order (default: those present, by atomic number).
        local: Compute the CrystalNN bond angles and motif fingerprints (about 1 s per 64 atoms).
        oxidation_states: Cation-anion motifs (see :func:`local_environments`).
        lattice_edges: Shell edges (Å) of a lattice alloy (:func:`shell_edges`); given, the
            Warren-Cowley parameters and cluster fingerprints are computed too.
    """
    if not structures:
        raise ValueError("need at least one structure")
    order = list(elements) if elements is not None else element_order(structures)
    labels = [f"{order[a]}-{order[b]}" for a, b in pair_indices(len(order))]
    totals, partials = zip(*(structure_rdfs(s, order) for s in structures), strict=True)
    partial_stack = np.stack(partials)
    result = SetDescriptors(
        elements=order,
        rdf=np.stack(totals),
        partial_rdf={label: partial_stack[:, k] for k, label in enumerate(labels)},
    )
    if local:
        envs = [local_environments(s, oxidation_states=oxidation_states) for s in structures]
        result.angles = np.stack([angle_distribution(env.angles) for env in envs])
        width = envs[0].fingerprints.shape[1]
        groups = ["all", *(el for el in order if any((env.elements == el).any() for env in envs))]
        for group in groups:
            rows = []
            for env in envs:
                chosen = (
                    env.fingerprints if group == "all" else env.fingerprints[env.elements == group]
                )
                rows.append(chosen.mean(axis=0) if len(chosen) else np.full(width, np.nan))
            result.motifs[group] = np.stack(rows)
    if lattice_edges is not None:
        result.sro = np.stack([warren_cowley(s, order, lattice_edges) for s in structures])
        result.clusters = np.stack(
            [cluster_fingerprint(s, order, lattice_edges) for s in structures]
        )
    return result


def _resample_weights(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap counts of each of ``n`` items in ``draws`` resamples, shape ``(draws, n)``."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=draws).astype(float)


def _weighted_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """NaN-aware means of ``values (n, d)`` under ``weights (draws, n)``: ``(draws, d)``."""
    valid = ~np.isnan(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (weights @ np.where(valid, values, 0.0)) / (weights @ valid)


def set_distance(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    n_bootstrap: int = N_BOOTSTRAP,
    rng: np.random.Generator | None = None,
) -> tuple[float, float, float]:
    """Euclidean distance between the set averages and its 95 % bootstrap interval.

    Resampling both sets adds their sampling noise to the distance, so bootstrap distances lie
    above the estimate whenever the sets' true distance is not large against that noise (the
    usual case for a good generator); percentile or pivotal intervals would then miss the
    estimate. The interval is the bootstrap distribution's 2.5-97.5 % spread recentred on the
    estimate (its mean moved onto it), clipped at 0.

    Args:
        reference: Descriptors of the reference set, shape ``(n_ref, d)`` (``NaN`` rows skipped).
        generated: Descriptors of the generated set, shape ``(n_gen, d)``.
        n_bootstrap: Resamples of both sets (0: no interval, the estimate is repeated).
        rng: Random generator of the resamples (default: seeded with 0).

    Returns:
        ``(distance, low, high)`` in the descriptors' units.
    """
    reference, generated = np.asarray(reference, float), np.asarray(generated, float)
    estimate = float(np.linalg.norm(np.nanmean(reference, 0) - np.nanmean(generated, 0)))
    if n_bootstrap <= 0:
        return estimate, estimate, estimate
    rng = rng or np.random.default_rng(0)
    means_ref = _weighted_means(reference, _resample_weights(len(reference), n_bootstrap, rng))
    means_gen = _weighted_means(generated, _resample_weights(len(generated), n_bootstrap, rng))
    distances = np.linalg.norm(np.nan_to_num(means_ref - means_gen), axis=1)
    tail = 0.5 * (1.0 - CONFIDENCE)
    q_low, q_high = np.quantile(distances, [tail, 1.0 - tail]) - distances.mean() + estimate
    return estimate, max(0.0, float(q_low)), max(0.0, float(q_high))


def mean_interval(
    values: np.ndarray, *, n_bootstrap: int = N_BOOTSTRAP, rng: np.random.Generator | None = None
) -> tuple[float, float, float]:
    """Mean of ``values`` (shape ``(n,)``, ``NaN`` skipped) and its 95 % bootstrap interval."""
    values = np.asarray(values, float)[:, None]
    estimate = float(np.nanmean(values))
    if n_bootstrap <= 0:
        return estimate, estimate, estimate
    rng = rng or np.random.default_rng(0)
    means = _weighted_means(values, _resample_weights(len(values), n_bootstrap, rng))[:, 0]
    tail = 0.5 * (1.0 - CONFIDENCE)
    q_low, q_high = np.nanquantile(means, [tail, 1.0 - tail])
    return estimate, 2.0 * estimate - float(q_high), 2.0 * estimate - float(q_low)


# ------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class MetricRow:
    """One line of a quality table.

    Attributes:
        metric: Name (``"d_rdf"``, ``"d_motif Cu"``, ``"alpha1 Cu-Zr"``, ``"% failed"``, ...).
        value: The generated set's value (a distance to the reference, or a mean).
        low: Lower end of the 95 % bootstrap interval (``NaN`` where none applies).
        high: Upper end of the interval.
        reference: The reference set's own value where one exists (Warren-Cowley means).
    """

    metric: str
    value: float
    low: float = math.nan
    high: float = math.nan
    reference: float | None = None


def quality_table(
    reference: SetDescriptors,
    generated: SetDescriptors,
    *,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    pdm: tuple[np.ndarray, np.ndarray] | None = None,
    pdm_labels: Sequence[str] | None = None,
    n_failed: int | None = None,
    n_attempted: int | None = None,
    relaxation_steps: Sequence[int] | None = None,
) -> list[MetricRow]:
    """Seed 002's metrics of ``generated`` against ``reference``, one row each.

    Distances (``d_*``) are Euclidean between set averages of ``g(r)`` (dimensionless, 0.02 Å
    bins), bond-angle fractions (0.5° bins), motif and cluster fingerprints; Warren-Cowley rows
    give the generated mean with the reference mean alongside.

    Args:
        reference: Descriptors of the reference (training) set.
        generated: Descriptors of the generated set, same elements.
        n_bootstrap: Bootstrap resamples of each interval.
        seed: Seed of the resamples.
        pdm: ``(generated PDMs, target PDMs)``, each ``(structures, pairs)``: adds the
            conditioning error per pair and its mean (neighbours).
        pdm_labels: Names of the PDM entries (default ``pdm[k]``).
        n_failed: Structures that failed post-processing or relaxation.
        n_attempted: Structures attempted (for ``% failed``).
        relaxation_steps: Steps each successful relaxation took.
    """
    if reference.elements != generated.elements:
        raise ValueError(f"element orders differ: {reference.elements} vs {generated.elements}")
    rng = np.random.default_rng(seed)

    def distance(name: str, ref: np.ndarray, gen: np.ndarray) -> MetricRow:
        return MetricRow(name, *set_distance(ref, gen, n_bootstrap=n_bootstrap, rng=rng))

    rows = [distance("d_rdf", reference.rdf, generated.rdf)]
    rows += [
        distance(f"d_rdf {pair}", reference.partial_rdf[pair], generated.partial_rdf[pair])
        for pair in reference.partial_rdf
        if len(reference.partial_rdf) > 1
    ]
    if reference.angles is not None and generated.angles is not None:
        rows.append(distance("d_angle", reference.angles, generated.angles))
    rows += [
        distance(f"d_motif {group}", reference.motifs[group], generated.motifs[group])
        for group in reference.motifs
        if group in generated.motifs
    ]
    if reference.clusters is not None and generated.clusters is not None:
        rows.append(distance("d_cluster", reference.clusters, generated.clusters))
    if reference.sro is not None and generated.sro is not None:
        n = len(reference.elements)
        for shell, a, b in itertools.product(range(reference.sro.shape[1]), range(n), range(n)):
            if a > b:
                continue
            pair = f"{reference.elements[a]}-{reference.elements[b]}"
            values = generated.sro[:, shell, a, b]
            rows.append(
                MetricRow(
                    f"alpha{shell + 1} {pair}",
                    *mean_interval(values, n_bootstrap=n_bootstrap, rng=rng),
                    reference=float(np.nanmean(reference.sro[:, shell, a, b])),
                )
            )
    if pdm is not None:
        errors = np.abs(np.asarray(pdm[0]) - np.asarray(pdm[1]))
        labels = list(pdm_labels) if pdm_labels else [f"pdm[{k}]" for k in range(errors.shape[1])]
        rows += [
            MetricRow(
                f"pdm error {label}", *mean_interval(errors[:, k], n_bootstrap=n_bootstrap, rng=rng)
            )
            for k, label in enumerate(labels)
        ]
        rows.append(
            MetricRow(
                "pdm MAE", *mean_interval(errors.mean(axis=1), n_bootstrap=n_bootstrap, rng=rng)
            )
        )
    if n_failed is not None and n_attempted:
        rows.append(MetricRow("% failed", 100.0 * n_failed / n_attempted))
    if relaxation_steps:
        steps = np.asarray(relaxation_steps, float)
        rows.append(
            MetricRow("relaxation steps", *mean_interval(steps, n_bootstrap=n_bootstrap, rng=rng))
        )
    return rows
