"""Training data of the surrogates, read from a campaign store.

Each point is one property value of one composition at one fidelity. Its feature vector is

``x = [x_e for e in elements] + [PDM entries] + [lattice one-hot] + [fidelity]``, shape ``(d,)``
with ``d = n + n (n + 1) / 2 + 1`` for ``n`` campaign elements (``d = n + 1`` without PDM; the
lattice block only in a campaign of several lattices, ``cell.lattice: [fcc, bcc]``):

- composition: atomic fractions on the campaign's elements, summing to 1;
- PDM: :func:`generator.pdm.pdm` of the evaluated structure (the oracle's relaxed structure when
  it returned one, else the candidate's), with per-structure cutoffs. In a lattice campaign
  whose cells go onto the lattice's sites (``generator.snap_to_lattice``, :func:`site_lattices`)
  it is the ordering on those sites instead: the candidate's cell with the lattice's own first
  shell (:func:`generator.pdm.site_shell_cutoffs`), the convention in which the generator
  matches a PDM target there (a relaxed BCC cell's first two shells, 8 and 6 neighbours 15 %
  apart, merge in some cells and not in others, so per-structure cutoffs count 8 to 14
  neighbours and a target meant nothing to the swaps that realise it). A measurement without a
  structure has no PDM; it gets the **mean PDM of the points that have one** (zeros when none
  has), a neutral imputation that keeps the matrix NaN-free and lets the composition dimensions
  carry the measurement;
- lattice: 1 in the column of the evaluated cell's lattice (:func:`candidate_lattice`); a
  measurement without a structure gets ``1 / L`` in each of the ``L`` columns;
- fidelity: the evaluation's fidelity (the oracle's, in ``[0, 1]``); measurements are ``1.0``.

Targets are the values of the modelled properties (objectives and ``constraints``) in the
configured unit (converted with
:func:`state.units.to_canonical` when the unit differs), with the variance ``σ²`` where an
uncertainty was reported. Failed evaluations are not dropped: they and the done ones form the
feasibility labels (``1`` = the oracle succeeded).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from pymatgen.core import Structure

from amloop.generator.data import composition_vector
from amloop.generator.pdm import pdm, pdm_labels, site_shell_cutoffs
from amloop.generator.phase import classify_phase
from amloop.generator.solid_solution import LatticeKind
from amloop.state.config import CampaignConfig
from amloop.state.memo import BoundedMemo
from amloop.state.schema import Candidate, Evaluation
from amloop.state.store import CampaignStore
from amloop.state.structures import structure_digest
from amloop.state.units import UnitError, to_canonical, uncertainty_to_canonical

#: Fidelity of an experimental measurement (the most trusted source).
MEASUREMENT_FIDELITY = 1.0


@dataclass
class ObjectiveData:
    """Training points of one objective.

    Attributes:
        X: Features, shape ``(k, d)``.
        Y: Property values in the objective's unit, shape ``(k,)``.
        Yvar: Variances ``σ²`` (unit²), shape ``(k,)``, NaN where no uncertainty was reported.
    """

    X: np.ndarray
    Y: np.ndarray
    Yvar: np.ndarray

    def __len__(self) -> int:
        return len(self.Y)


@dataclass
class TrainingSet:
    """Features and targets of a campaign (see the module docstring for the layout).

    Attributes:
        elements: The campaign's elements, the order of the composition dimensions.
        feature_names: Names of the ``d`` feature dimensions.
        objectives: Property name → its training points.
        feasibility_X: Features of every finished oracle call, shape ``(f, d)``.
        feasibility_y: ``1.0`` where the call succeeded, ``0.0`` where it failed, shape ``(f,)``.
        lattices: The lattices of the one-hot block (empty: one lattice, no block).
    """

    elements: list[str]
    feature_names: list[str]
    objectives: dict[str, ObjectiveData]
    feasibility_X: np.ndarray
    feasibility_y: np.ndarray
    lattices: list[str] = field(default_factory=list)

    @property
    def n_elements(self) -> int:
        """Number of composition dimensions (the first ones)."""
        return len(self.elements)

    @property
    def pdm_slice(self) -> slice:
        """Columns of the PDM entries (empty without PDM)."""
        return slice(self.n_elements, self.lattice_slice.start)

    @property
    def lattice_slice(self) -> slice:
        """Columns of the lattice one-hot block (empty with one lattice)."""
        return slice(self.dim - 1 - len(self.lattices), self.dim - 1)

    @property
    def fidelity_index(self) -> int:
        """Column of the fidelity (the last one)."""
        return self.dim - 1

    @property
    def dim(self) -> int:
        """Number of feature dimensions ``d``."""
        return len(self.feature_names)

    @property
    def use_pdm(self) -> bool:
        """Whether the features include the PDM."""
        return self.dim > self.n_elements + len(self.lattices) + 1

    def all_X(self) -> np.ndarray:
        """Distinct feature rows over all objectives, shape ``(u, d)``."""
        rows = [data.X for data in self.objectives.values() if len(data)]
        if not rows:
            return np.zeros((0, self.dim))
        return np.unique(np.concatenate(rows), axis=0)


@dataclass
class _Point:
    composition: np.ndarray
    pdm: np.ndarray | None
    fidelity: float
    values: dict[str, tuple[float, float]]  # property -> (value, variance or NaN)
    lattice: np.ndarray  # one-hot over the campaign's lattices (empty with one)


def candidate_lattice(candidate: Candidate, lattices: Sequence[str]) -> str:
    """The lattice of a lattice campaign's cell: the one its seed recipe or snap named
    (provenance ``lattice`` / ``snapped_to``), else the phase its sites classify as
    (:func:`generator.phase.classify_phase`, a local-search child keeps its parent's), else the
    first of ``lattices``."""
    named = candidate.provenance.get("lattice") or candidate.provenance.get("snapped_to")
    if named in lattices:
        return str(named)
    phase = classify_phase(candidate.structure)
    return phase if phase in lattices else lattices[0]


def _in_unit(
    prop: str, value: float, unit: str, sigma: float | None, target: str
) -> tuple[float, float]:
    if unit != target:
        try:
            value = to_canonical(prop, value, unit)
            sigma = None if sigma is None else uncertainty_to_canonical(prop, sigma, unit)
        except UnitError:
            raise ValueError(
                f"{prop}: value in '{unit}' cannot be converted to the objective's '{target}'"
            ) from None
    return value, (math.nan if sigma is None else sigma**2)


#: PDMs kept by :func:`structure_pdm` (least recently used dropped).
PDM_CACHE_SIZE = 200_000
_pdm_cache: BoundedMemo[np.ndarray] = BoundedMemo(PDM_CACHE_SIZE)


def structure_pdm(
    structure: Structure, elements: Sequence[str], lattice: LatticeKind | None = None
) -> np.ndarray:
    """:func:`generator.pdm.pdm` of ``structure`` (shape ``(n (n + 1) / 2,)``, neighbours), with
    its own cutoffs or, for a cell on the sites of ``lattice``, that lattice's first shell
    (:func:`generator.pdm.site_shell_cutoffs`); remembered by the structure's content (lattice,
    species, fractional coordinates), since every acquisition reads all stored structures again
    (2-3 ms each at 54 atoms)."""

    def compute() -> np.ndarray:
        cutoffs = None if lattice is None else site_shell_cutoffs(structure, lattice, len(elements))
        return np.asarray(pdm(structure, elements, cutoffs=cutoffs), dtype=float)

    key = structure_digest(structure, *elements, *([lattice] if lattice else []))
    return _pdm_cache.get(key, compute).copy()


def pdm_on_sites(config: CampaignConfig) -> bool:
    """Whether ``config``'s cells sit on lattice sites, so their PDM is read there (a lattice
    campaign with ``generator.snap_to_lattice``)."""
    return not config.cell.amorphous and config.generator.snap_to_lattice


def site_lattices(store: CampaignStore, config: CampaignConfig) -> dict[str, LatticeKind] | None:
    """The lattice whose sites each candidate of a lattice campaign sits on (content hash to
    lattice; :func:`candidate_lattice`), or ``None`` where cells keep their own positions (an
    amorphous campaign, or ``generator.snap_to_lattice`` off)."""
    if not pdm_on_sites(config):
        return None
    lattices = list(config.cell.lattices)
    if len(lattices) == 1:
        return {
            content_hash: cast(LatticeKind, lattices[0])
            for content_hash in store.candidate_compositions()
        }
    return {
        c.content_hash: cast(LatticeKind, candidate_lattice(c, lattices))
        for c in store.candidates()
    }


#: PDMs of finished evaluations kept by :func:`build_training_set`, by the evaluation's identity
#: (store, campaign, row, status, finish time, element order): each acquisition reads the
#: structures of the evaluations it has not seen only (a failed evaluation recorded again as done
#: is a new one).
EVALUATION_PDM_CACHE_SIZE = 200_000
#: Most content hashes named in one query (SQLite's bound-parameter limit; a full scan above).
MAX_LISTED_HASHES = 500
_evaluation_pdms: BoundedMemo[np.ndarray] = BoundedMemo(EVALUATION_PDM_CACHE_SIZE)


def evaluation_pdms(
    store: CampaignStore,
    evaluations: Sequence[Evaluation],
    elements: Sequence[str],
    sites: Mapping[str, LatticeKind] | None = None,
) -> dict[int | None, np.ndarray]:
    """PDM (shape ``(n (n + 1) / 2,)``, neighbours) of the structure each finished evaluation's
    features describe: its relaxed structure when it is done and returned one, else its
    candidate's; with ``sites`` (:func:`site_lattices`), the candidate's cell on its lattice's
    sites; by evaluation id. Remembered by the evaluation's identity (see
    :data:`EVALUATION_PDM_CACHE_SIZE`); the others' structures are read in two queries."""
    scope = f"{store.engine.url}|{store.campaign_id}|{','.join(elements)}|{sites is not None}"
    keys = {e.id: f"{scope}|{e.id}|{e.status}|{e.finished_at}" for e in evaluations}
    missing = [e for e in evaluations if keys[e.id] not in _evaluation_pdms]
    relaxed: dict[int | None, Structure] = {}
    originals: dict[str, Structure] = {}
    if missing:
        hashes = {e.candidate_hash for e in missing}
        wanted = hashes if len(hashes) <= MAX_LISTED_HASHES else None  # else all: one scan
        relaxed = (
            {
                e.id: e.relaxed_structure
                for e in store.evaluations(candidates=wanted, status="done")
                if e.relaxed_structure is not None and e.candidate_hash in hashes
            }
            if sites is None
            else {}
        )
        originals = {
            c.content_hash: c.structure
            for c in store.candidates(hashes=wanted)
            if c.content_hash in hashes
        }

    def described_pdm(evaluation: Evaluation) -> Callable[[], np.ndarray]:
        structure = relaxed.get(evaluation.id) if evaluation.status == "done" else None
        lattice = None if sites is None else sites[evaluation.candidate_hash]
        return lambda: structure_pdm(
            structure or originals[evaluation.candidate_hash], elements, lattice
        )

    return {e.id: _evaluation_pdms.get(keys[e.id], described_pdm(e)).copy() for e in evaluations}


def build_training_set(
    store: CampaignStore,
    config: CampaignConfig,
    *,
    use_pdm: bool = True,
    through_iteration: int | None = None,
) -> TrainingSet:
    """Training set of ``config``'s objectives from ``store``'s done evaluations (but not of
    candidates the quality gate rejected) and measurements; every finished call and gate
    verdict trains the feasibility model (a call on a rejected candidate as a failure).

    Args:
        store: The campaign's store.
        config: The campaign's config (elements, objectives and their units).
        use_pdm: Include the PDM vector in the features (``False``: composition-only baseline).
        through_iteration: Leave out the evaluations of later iterations (``None``: all).

    Returns:
        The :class:`TrainingSet`; objectives without data have zero rows.
    """
    elements = list(config.elements)
    units = config.modelled_units
    compositions = store.candidate_compositions()
    lattices = list(config.cell.lattices) if len(config.cell.lattices) > 1 else []
    one_hot = {name: np.eye(len(lattices))[k] for k, name in enumerate(lattices)}
    neutral = np.full(len(lattices), 1.0 / len(lattices)) if lattices else np.zeros(0)
    sites = site_lattices(store, config) if use_pdm or lattices else None
    lattice_of: dict[str, np.ndarray] = {}
    if lattices:
        kinds: Mapping[str, str] = sites or {
            c.content_hash: candidate_lattice(c, lattices) for c in store.candidates()
        }
        lattice_of = {content_hash: one_hot[kind] for content_hash, kind in kinds.items()}

    def pdm_of(structure: Structure | None) -> np.ndarray | None:
        if not use_pdm or structure is None:
            return None
        return structure_pdm(structure, elements)

    rejected = store.gate_rejected()
    points: list[_Point] = []
    feasibility: list[tuple[np.ndarray, np.ndarray | None, np.ndarray, float, float]] = []
    # in the order the candidates were made, not the calls finished: a cluster finishes them
    # in any order, and the fit must not depend on it
    rank = {content_hash: k for k, content_hash in enumerate(compositions)}
    finished = sorted(
        (
            e
            for e in store.evaluations(through_iteration=through_iteration, structures=False)
            if e.status in ("done", "failed") and e.candidate_hash in compositions
        ),
        key=lambda e: (rank[e.candidate_hash], e.oracle, e.fidelity),
    )
    pdms = evaluation_pdms(store, finished, elements, sites) if use_pdm else {}
    for evaluation in finished:
        composition = composition_vector(compositions[evaluation.candidate_hash], elements)
        lattice = lattice_of.get(evaluation.candidate_hash, neutral)
        if evaluation.status == "failed":
            feasibility.append(
                (composition, pdms.get(evaluation.id), lattice, evaluation.fidelity, 0.0)
            )
            continue
        values = {
            prop: _in_unit(prop, pv.value, pv.unit, pv.uncertainty, units[prop])
            for prop, pv in evaluation.properties.items()
            if prop in units and math.isfinite(pv.value)
        }
        point = _Point(composition, pdms.get(evaluation.id), evaluation.fidelity, values, lattice)
        valid = evaluation.candidate_hash not in rejected  # an invalid structure's value misleads
        if valid:
            points.append(point)
        # a call that scored a rejected structure is no success: labelled 1 beside its verdict's
        # 0 it left P(feasible) ~ 1/2 there, and the loop kept proposing gate-rejected regions
        feasibility.append((composition, point.pdm, lattice, evaluation.fidelity, float(valid)))
    for measurement in store.measurements():
        if measurement.property not in units or not math.isfinite(measurement.value):
            continue
        value = _in_unit(
            measurement.property,
            measurement.value,
            measurement.unit,
            measurement.uncertainty,
            units[measurement.property],
        )
        points.append(
            _Point(
                composition_vector(measurement.composition, elements),
                pdm_of(measurement.structure),
                MEASUREMENT_FIDELITY,
                {measurement.property: value},
                neutral,
            )
        )

    n_pdm = len(pdm_labels(elements)) if use_pdm else 0
    known = [p.pdm for p in points if p.pdm is not None]
    mean_pdm = np.mean(known, axis=0) if known else np.zeros(n_pdm)

    def row(
        composition: np.ndarray, pdm_vec: np.ndarray | None, lattice: np.ndarray, fidelity: float
    ) -> np.ndarray:
        pdm_part = (pdm_vec if pdm_vec is not None else mean_pdm) if use_pdm else np.zeros(0)
        return np.concatenate([composition, pdm_part, lattice, [fidelity]])

    feature_names = [
        *elements,
        *(pdm_labels(elements) if use_pdm else []),
        *(f"lattice:{name}" for name in lattices),
        "fidelity",
    ]
    objectives: dict[str, ObjectiveData] = {}
    for prop in units:
        mine = [p for p in points if prop in p.values]
        objectives[prop] = ObjectiveData(
            X=np.array([row(p.composition, p.pdm, p.lattice, p.fidelity) for p in mine]).reshape(
                len(mine), len(feature_names)
            ),
            Y=np.array([p.values[prop][0] for p in mine], dtype=float),
            Yvar=np.array([p.values[prop][1] for p in mine], dtype=float),
        )
    fx = [row(c, p, lat, f) for c, p, lat, f, _ in feasibility]
    return TrainingSet(
        elements=elements,
        feature_names=feature_names,
        objectives=objectives,
        feasibility_X=np.array(fx).reshape(len(fx), len(feature_names)),
        feasibility_y=np.array([label for *_, label in feasibility], dtype=float),
        lattices=lattices,
    )
