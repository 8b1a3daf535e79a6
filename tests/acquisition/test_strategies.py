"""Acquisition on analytic functions over a composition simplex: BO against random search,
multi-fidelity transfer, pending points, feasibility, constraints, cost-aware oracle choice and
the large-data subsample. Training sets are built directly (no store) unless the store is what
is tested."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure

from amloop.acquisition.constraints import SearchSpace
from amloop.acquisition.features import ObjectiveData, TrainingSet
from amloop.acquisition.fidelity import choose_oracles, oracle_sources
from amloop.acquisition.propose import Proposal, propose_from_training
from amloop.acquisition.surrogate import fit_surrogate, subsample
from amloop.generator.pdm import pair_indices, pair_labels
from amloop.state.config import CampaignConfig, ConstraintConfig
from amloop.state.schema import Candidate, Cost, Evaluation, PropertyValue
from amloop.state.store import CampaignStore

torch.set_num_threads(1)

ELEMENTS = ["Ni", "Fe", "Cr"]
#: Peaks of the analytic objective: (centre, height, width).
PEAKS = [((0.6, 0.1, 0.3), 1.0, 0.3), ((0.1, 0.75, 0.15), 0.6, 0.15)]


def make_config(elements: list[str] = ELEMENTS, **acquisition: Any) -> CampaignConfig:
    return CampaignConfig.model_validate(
        {
            "name": "t",
            "elements": elements,
            "objectives": [{"property": "bulk_modulus", "direction": "maximize"}],
            "oracles": [{"name": "lab", "type": "experiment", "fidelity": 1.0}],
            "budget": {"evaluations": {"lab": 100}},
            "acquisition": acquisition,
        }
    )


def peaked(x: np.ndarray) -> np.ndarray:
    """Two Gaussian bumps on the simplex, shape ``(m,)`` for ``x`` of ``(m, 3)``."""
    return sum(
        height * np.exp(-np.sum((x - np.array(centre)) ** 2, axis=-1) / (2 * width**2))
        for centre, height, width in PEAKS
    )


def synthetic_pdm(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A composition-consistent PDM: ``C_ab = 12 x_b (1 ± 0.2)``, 0 for absent elements."""
    pairs = pair_indices(x.shape[1])
    pdm = np.array([[12 * row[b] * (row[a] > 0) for a, b in pairs] for row in x])
    return pdm * rng.uniform(0.8, 1.2, size=pdm.shape)


def training_set(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    elements: list[str] = ELEMENTS,
    pdm: np.ndarray | None = None,
    fidelity: np.ndarray | float = 1.0,
    feasibility: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainingSet:
    """A one-objective (``bulk_modulus``) training set of compositions ``X`` (``(k, n)``)."""
    fid = np.broadcast_to(np.asarray(fidelity, dtype=float), (len(X),))[:, None]
    parts = [X] + ([pdm] if pdm is not None else []) + [fid]
    features = np.hstack(parts)
    names = [*elements, *(pair_labels(elements) if pdm is not None else []), "fidelity"]
    feas_X, feas_y = feasibility if feasibility is not None else (features, np.ones(len(X)))
    return TrainingSet(
        elements=elements,
        feature_names=names,
        objectives={"bulk_modulus": ObjectiveData(X=features, Y=Y, Yvar=np.full(len(Y), np.nan))},
        feasibility_X=feas_X,
        feasibility_y=feas_y,
    )


# ------------------------------------------------------------------------- BO against random
def optimum() -> float:
    grid = np.random.default_rng(0).dirichlet(np.ones(3), size=200_000)
    return float(peaked(grid).max())


def random_evaluations(seed: int, target: float, limit: int = 5000) -> int:
    """Uniform samples of the simplex until one reaches ``target``."""
    samples = np.random.default_rng(1000 + seed).dirichlet(np.ones(3), size=limit)
    hits = np.flatnonzero(peaked(samples) >= target)
    return int(hits[0]) + 1 if len(hits) else limit


def bo_evaluations(seed: int, target: float, limit: int, q: int = 4) -> int:
    """Composition-only qLogNEI from 4 random points until a value reaches ``target``."""
    config = make_config(features="composition", batch_size=q)
    X = np.random.default_rng(seed).dirichlet(np.ones(3), size=4)
    while len(X) < limit:
        Y = peaked(X)
        if Y.max() >= target:
            break
        proposals = propose_from_training(training_set(X, Y), config, q=q, seed=seed)
        X = np.vstack([X, [[p.composition[el] for el in ELEMENTS] for p in proposals]])
    hits = np.flatnonzero(peaked(X) >= target)
    return int(hits[0]) + 1 if len(hits) else limit


def compare_bo_random(bo_seeds: range) -> tuple[float, float]:
    """Median evaluations to reach 99 % of the optimum: BO over ``bo_seeds``, random search
    over 10 seeds (it costs nothing)."""
    target = 0.99 * optimum()
    random_needs = float(np.median([random_evaluations(s, target) for s in range(10)]))
    limit = int(random_needs // 3) + 4
    bo_needs = float(np.median([bo_evaluations(s, target, limit) for s in bo_seeds]))
    return bo_needs, random_needs


def test_bo_beats_random_three_seeds() -> None:
    bo_needs, random_needs = compare_bo_random(range(3))
    assert bo_needs <= random_needs / 3, (bo_needs, random_needs)


@pytest.mark.slow
def test_bo_beats_random_ten_seeds() -> None:
    bo_needs, random_needs = compare_bo_random(range(10))
    assert bo_needs <= random_needs / 3, (bo_needs, random_needs)


# ------------------------------------------------------------------------ multi-fidelity
def test_cheap_data_improve_expensive_prediction() -> None:
    rng = np.random.default_rng(0)
    config = make_config()

    def expensive(x: np.ndarray) -> np.ndarray:
        return 100 * peaked(x)

    def cheap(x: np.ndarray) -> np.ndarray:  # correlated: scaled, shifted, a small tilt
        return 0.8 * expensive(x) + 10 + 5 * x[:, 0]

    X_cheap = rng.dirichlet(np.ones(3), size=60)
    X_dear = rng.dirichlet(np.ones(3), size=6)
    X_test = rng.dirichlet(np.ones(3), size=300)
    both = training_set(
        np.vstack([X_cheap, X_dear]),
        np.concatenate([cheap(X_cheap), expensive(X_dear)]),
        fidelity=np.concatenate([np.full(60, 0.5), np.ones(6)]),
    )
    alone = training_set(X_dear, expensive(X_dear))
    test_X = np.hstack([X_test, np.ones((300, 1))])
    errors = []
    for training in (both, alone):
        mean, _ = fit_surrogate(training, config).predict(test_X)
        errors.append(float(np.sqrt(np.mean((mean[:, 0] - expensive(X_test)) ** 2))))
    assert errors[0] < 0.7 * errors[1], errors


# --------------------------------------------------------------------- pending, feasibility
def test_pending_points_change_the_batch() -> None:
    X = np.random.default_rng(1).dirichlet(np.ones(3), size=10)
    training = training_set(X, peaked(X))
    config = make_config(features="composition")
    free = propose_from_training(training, config, q=2, seed=0)
    first = free[0].composition
    blocked = propose_from_training(training, config, q=2, seed=0, pending=[first])
    assert [p.composition for p in blocked] != [p.composition for p in free]
    assert all("1 pending" in p.reason for p in blocked)
    distance = [np.linalg.norm([p.composition[el] - first[el] for el in ELEMENTS]) for p in blocked]
    assert min(distance) > 0.02


def test_failures_steer_away() -> None:
    rng = np.random.default_rng(2)
    X = rng.dirichlet(np.ones(3), size=40)
    X = X[X[:, 2] < 0.5][:12]
    Y = 100 * X[:, 2]  # better with more Cr ...
    failed = rng.dirichlet(np.ones(3), size=60)
    failed = failed[failed[:, 2] > 0.55][:10]  # ... but Cr-rich cells fail
    feature = np.hstack([np.vstack([X, failed]), np.ones((len(X) + len(failed), 1))])
    labels = np.concatenate([np.ones(len(X)), np.zeros(len(failed))])
    config = make_config(features="composition")
    naive = propose_from_training(training_set(X, Y), config, q=3, seed=0)
    careful = propose_from_training(
        training_set(X, Y, feasibility=(feature, labels)), config, q=3, seed=0
    )
    assert all("P(feasible)" in p.reason for p in careful)
    # the best point leaves the failed region; a later one of the batch (its predecessors
    # pending) may still try the far corner the failures do not reach (pure Cr)
    assert careful[0].composition["Cr"] < 0.55 < naive[0].composition["Cr"]

    def in_failed_region(proposals: list[Proposal]) -> int:
        return sum(p.composition["Cr"] > 0.55 for p in proposals)

    assert in_failed_region(careful) < in_failed_region(naive)


def test_outcome_constraint_keeps_proposals_where_it_holds() -> None:
    """The best peak (Cr 0.3) violates ``formation_energy_per_atom <= 0`` (here ``E_f = x_Cr - 0.15``
    eV/atom): with the constraint the proposals stay Cr-poor, without it they go to the peak."""
    rng = np.random.default_rng(4)
    X = rng.dirichlet(np.ones(3), size=24)
    formation = X[:, 2] - 0.15
    training = training_set(X, peaked(X))
    features = training.objectives["bulk_modulus"].X
    training.objectives["formation_energy_per_atom"] = ObjectiveData(
        X=features, Y=formation, Yvar=np.full(len(X), np.nan)
    )
    free_config = make_config(features="composition")
    constrained_config = make_config(features="composition")
    constrained_config.constraints = [
        ConstraintConfig(property="formation_energy_per_atom", upper=0.0),
    ]
    free = propose_from_training(training, free_config, q=3, seed=0)
    constrained = propose_from_training(training, constrained_config, q=3, seed=0)
    assert all("P(formation_energy_per_atom <= 0 eV/atom)" in p.reason for p in constrained)
    assert max(p.composition["Cr"] for p in constrained) < 0.2
    assert max(p.composition["Cr"] for p in free) > 0.25


def test_constraint_config_errors() -> None:
    with pytest.raises(ValueError, match="has no bound: set lower and/or upper"):
        ConstraintConfig(property="formation_energy_per_atom")
    with pytest.raises(ValueError, match="lower 1 > upper 0"):
        ConstraintConfig(property="formation_energy_per_atom", lower=1.0, upper=0.0)
    with pytest.raises(ValueError, match="'bulk_modulus' is an objective"):
        make_config().model_validate(
            {
                **make_config().model_dump(),
                "constraints": [{"property": "bulk_modulus", "upper": 1}],
            }
        )


# ---------------------------------------------------------------------------- constraints
@st.composite
def campaigns(draw: st.DrawFn) -> tuple[CampaignConfig, TrainingSet]:
    n = draw(st.integers(2, 4))
    elements = ["Ni", "Fe", "Cr", "Co"][:n]
    bounds: dict[str, list[float]] = {}
    if draw(st.booleans()):
        bounds[elements[0]] = [draw(st.sampled_from([0.0, 0.05, 0.2])), 1.0]
    if draw(st.booleans()):
        bounds[elements[-1]] = [0.0, draw(st.sampled_from([0.1, 0.4]))]
    max_elements = draw(st.one_of(st.none(), st.integers(1, n)))
    seed = draw(st.integers(0, 1000))
    data = {
        "name": "t",
        "elements": elements,
        "bounds": bounds,
        # on FCC sites the PDM rows obey Σ_b C_ab <= 12 (synthetic_pdm's rows reach 14.4)
        "cell": {"n_atoms": draw(st.sampled_from([8, 54])),
                 "lattice": draw(st.sampled_from(["amorphous", "fcc"]))},
        "objectives": [{"property": "bulk_modulus", "direction": "maximize"}],
        "oracles": [{"name": "lammps", "type": "lammps", "fidelity": 0.6}],
        "budget": {"evaluations": {"lammps": 10}},
        "acquisition": {"max_elements": max_elements, "strategy": draw(st.sampled_from(
            ["qLogNEI", "qUCB", "random"]))},
    }  # fmt: skip
    config = CampaignConfig.model_validate(data)
    rng = np.random.default_rng(seed)
    X = rng.dirichlet(np.ones(n), size=8)
    X[rng.random(X.shape) < 0.3] = 0.0  # some absent elements
    X[X.sum(axis=1) == 0, 0] = 1.0
    X /= X.sum(axis=1, keepdims=True)
    training = training_set(X, rng.normal(size=8), elements=elements, pdm=synthetic_pdm(X, rng))
    return config, training


def independent_violations(config: CampaignConfig, proposal: Any) -> list[str]:
    """Constraint checks written without :class:`SearchSpace`."""
    x = np.array([proposal.composition[el] for el in config.elements])
    problems = []
    if abs(x.sum() - 1) > 1e-6:
        problems.append(f"sum {x.sum()}")
    for el, value in zip(config.elements, x, strict=True):
        low, high = config.element_bounds(el)
        if not low - 1e-9 <= value <= high + 1e-9:
            problems.append(f"{el} = {value} outside [{low}, {high}]")
    limit = config.acquisition.max_elements or len(x)
    if np.count_nonzero(x) > limit:
        problems.append(f"{np.count_nonzero(x)} elements > {limit}")
    if proposal.pdm_target is not None:
        for (a, b), c in zip(pair_indices(len(x)), proposal.pdm_target, strict=True):
            if (x[a] == 0 or x[b] == 0) and c != 0:
                problems.append(f"PDM entry {a}-{b} = {c} with an absent element")
            if c < 0:
                problems.append(f"PDM entry {a}-{b} = {c} < 0")
    if proposal.oracle not in {o.name for o in config.oracles}:
        problems.append(f"oracle {proposal.oracle}")
    return problems


def _space_or_discard(config: CampaignConfig, training: TrainingSet) -> SearchSpace:
    """The search space of a generated campaign; hypothesis discards infeasible draws."""
    try:
        return SearchSpace.build(training, config)
    except ValueError:
        assume(False)
        raise


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(campaigns())
def test_proposals_never_violate_constraints(campaign: tuple[CampaignConfig, TrainingSet]) -> None:
    config, training = campaign
    space = _space_or_discard(config, training)
    proposals = propose_from_training(training, config, q=2, seed=0)
    for proposal in proposals:
        assert independent_violations(config, proposal) == []
        row = [proposal.composition[el] for el in config.elements]
        if proposal.pdm_target is not None:
            row += proposal.pdm_target
        assert space.violations(np.array([row])) == []
        if space.coordination and proposal.pdm_target is not None:  # realisable on the sites
            x = np.array(row[: space.n_elements])
            shell = dict(zip(config.cell.lattices, space.coordination, strict=True))
            totals = shell_totals(x, np.array(proposal.pdm_target))
            assert totals[x > 0] == pytest.approx(
                shell[proposal.lattice or config.cell.lattices[0]]
            )


def shell_totals(x: np.ndarray, pdm: np.ndarray) -> np.ndarray:
    """Neighbours per atom of each element, shape ``(n,)``: the rows of the full matrix of the
    PDM vector ``pdm`` (pairs ``a <= b``), ``C_ba = x_a C_ab / x_b``."""
    totals = np.zeros(len(x))
    for (a, b), c in zip(pair_indices(len(x)), pdm, strict=True):
        totals[a] += c
        if a != b and x[b] > 0:
            totals[b] += x[a] * c / x[b]
    return totals


@settings(max_examples=60, deadline=None)
@given(campaigns(), st.integers(0, 100))
def test_projection_and_samples_are_feasible(
    campaign: tuple[CampaignConfig, TrainingSet], seed: int
) -> None:
    config, training = campaign
    space = _space_or_discard(config, training)
    rng = np.random.default_rng(seed)
    raw = np.hstack(
        [rng.uniform(-0.2, 1.2, size=(5, space.n_elements)), rng.uniform(-5, 20, (5, len(space.pairs)))]
    )  # fmt: skip
    assert space.violations(space.project(raw)) == []
    assert space.violations(space.sample(8, seed)) == []


def test_cardinality_limits_the_elements() -> None:
    elements = ["Ni", "Fe", "Cr", "Co"]
    rng = np.random.default_rng(3)
    X = rng.dirichlet(np.ones(4), size=12)
    centre = np.full(4, 0.25)
    Y = np.exp(-np.sum((X - centre) ** 2, axis=1) / 0.1)  # best: all four elements
    config = make_config(elements, max_elements=2, features="composition")
    proposals = propose_from_training(training_set(X, Y, elements=elements), config, q=3)
    for p in proposals:
        assert sum(v > 0 for v in p.composition.values()) <= 2
        assert p.reason.startswith("qLogNEI")


def test_pdm_targets_follow_composition() -> None:
    rng = np.random.default_rng(4)
    X = rng.dirichlet(np.ones(3), size=10)
    config = make_config(max_elements=2)
    training = training_set(X, peaked(X), pdm=synthetic_pdm(X, rng))
    space = SearchSpace.build(training, config)
    ratios = training.feasibility_X[:, 3:-1] / X[:, [b for _, b in pair_indices(3)]]
    assert np.all(space.ratio[0] <= ratios.min(axis=0) + 1e-9)  # the cone holds the data
    assert np.all(space.ratio[1] >= ratios.max(axis=0) - 1e-9)
    for p in propose_from_training(training, config, q=2):
        assert p.pdm_target is not None
        row = np.array([[p.composition[el] for el in ELEMENTS] + p.pdm_target])
        assert space.violations(row) == []


def bcc_site_pdm(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PDMs of BCC cells with short-range order: bonds per atom ``N_ab = x_a C_ab`` start at the
    random alloy's ``8 x_a x_b``; each unlike pair trades up to half its bonds with the two like
    pairs (``N_ab + δ``, ``N_aa - δ``, ``N_bb - δ``), so every atom keeps 8 neighbours."""
    pairs = pair_indices(x.shape[1])
    rows = []
    for fractions in x:
        bonds = 8.0 * np.outer(fractions, fractions)
        for a, b in pairs:
            if a != b:
                room = min(bonds[a, a], bonds[b, b], 0.5 * bonds[a, b])
                delta = rng.uniform(-0.5, 1.0) * room
                bonds[a, b] += delta
                bonds[b, a] += delta
                bonds[a, a] -= delta
                bonds[b, b] -= delta
        C = np.divide(
            bonds, fractions[:, None], out=np.zeros_like(bonds), where=fractions[:, None] > 0
        )
        rows.append([C[a, b] for a, b in pairs])
    return np.array(rows)


def test_pdm_targets_keep_to_the_bcc_first_shell() -> None:
    """A BCC campaign (PDM read on the sites: 8 first neighbours) whose objective rises with the
    unlike neighbours of Ni: the targets go to the bound, never past it (the per-pair box
    alone admits a Ni atom with more than 8 neighbours, each pair's largest ratio at once)."""
    rng = np.random.default_rng(6)
    X = rng.dirichlet(np.ones(3), size=16)
    pdm = bcc_site_pdm(X, rng)
    ni_row = [j for j, (a, _) in enumerate(pair_indices(3)) if a == 0]  # Ni-Ni, Ni-Fe, Ni-Cr
    assert pdm[:, ni_row].sum(axis=1) == pytest.approx(8.0)
    data = make_config().model_dump() | {"bounds": {"Ni": [0.2, 1.0]}}
    config = CampaignConfig.model_validate(data | {"cell": {"lattice": "bcc", "n_atoms": 54}})
    training = training_set(X, pdm[:, ni_row[1:]].sum(axis=1), pdm=pdm)
    space = SearchSpace.build(training, config)
    assert space.coordination == (8.0,)
    assert space.ratio[1, ni_row[1:]].min() > 8.0  # Ni-Fe + Ni-Cr alone could exceed the shell
    totals = []
    for p in propose_from_training(training, config, q=3):
        assert p.pdm_target is not None
        row = np.array([[p.composition[el] for el in ELEMENTS] + p.pdm_target])
        assert space.violations(row) == []
        present = row[0, :3] > 0
        assert shell_totals(row[0, :3], row[0, 3:])[present] == pytest.approx(8.0)  # filled
        totals.append(sum(p.pdm_target[j] for j in ni_row))
    assert max(totals) <= 8.0 + 1e-6


def test_a_target_is_realised_as_an_ordering_on_the_lattice_has_it() -> None:
    """FCC Ni0.39Fe0.02Cr0.59 with 3.1 Cr neighbours per Cr atom (an optimum the loop chose):
    its unlike contacts leave 5.0 of the Cr atoms' 12 to Cr; realised, the unlike contacts are
    kept and Cr gets the rest of its shell. Unlike contacts that overfill a shell are scaled
    into it, and in FCC no pair holds more bonds than the triangles allow (both chosen by the
    loop in task A before this)."""
    space = SearchSpace(
        lower=np.zeros(3),
        upper=np.ones(3),
        max_elements=3,
        min_fraction=0.01,
        pairs=pair_indices(3),
        ratio=np.array([[0.0] * 6, [20.0] * 6]),
        dim=3 + 6 + 2 + 1,
        lattices=("fcc", "bcc"),
        coordination=(12.0, 8.0),
        unlike_bonds=(1.0 / 3.0, 0.5),
    )
    chosen = [0.39, 0.02, 0.59, 0.4, 0.1, 10.1, 0.6, 9.1, 3.1, 1.0, 0.0, 1.0]
    overfilled = [0.5, 0.0, 0.5, 0.0, 0.0, 11.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]  # bcc: 11 > 8
    frustrated = [0.46, 0.0, 0.54, 0.8, 0.0, 11.2, 0.0, 0.0, 2.2, 1.0, 0.0, 1.0]  # fcc
    rows = torch.tensor([chosen, overfilled, frustrated], dtype=torch.float64)
    realised = space.realise(rows).numpy()
    assert realised[0, [4, 5, 7]] == pytest.approx([0.1, 10.1, 9.1])  # unlike pairs kept
    assert realised[0, 8] == pytest.approx(12 * (0.59 - 0.39 * 10.1 / 12 - 0.02 * 9.1 / 12) / 0.59)
    assert realised[0, 8] == pytest.approx(5.02, abs=0.01)
    assert shell_totals(realised[0, :3], realised[0, 3:9]) == pytest.approx(12.0)
    assert realised[1, 3:9] == pytest.approx([0.0, 0.0, 8.0, 0.0, 0.0, 0.0])  # B2
    # FCC triangles: at most 2/3 of all bonds Ni-Cr (L1_0), so 12 / (3 x_Ni) Cr per Ni atom
    assert realised[2, 5] == pytest.approx(12.0 / (3 * 0.46))
    assert shell_totals(realised[2, :3], realised[2, 3:9])[[0, 2]] == pytest.approx(12.0)
    assert realised[:, 9:] == pytest.approx(rows[:, 9:].numpy())


# ------------------------------------------------------------------- cost-aware fidelity
def fidelity_config(**oracles: Any) -> CampaignConfig:
    return CampaignConfig.model_validate(
        {
            "name": "t",
            "elements": ELEMENTS,
            "objectives": [{"property": "bulk_modulus", "direction": "maximize"}],
            "oracles": [
                {"name": "cheap", "type": "lammps", "fidelity": 0.5, "cost": {"core_s": 1.0}},
                {"name": "dft", "type": "dft", "fidelity": 0.9, "cost": {"core_s": 20.0}},
                {"name": "lab", "type": "experiment", "fidelity": 1.0, **oracles},
            ],
            "budget": {"evaluations": {"cheap": 1000}},
        }
    )


def test_costs_measured_from_the_store(sqlite_url: str) -> None:
    config = fidelity_config(options={"properties": ["bulk_modulus"]})
    store = CampaignStore.create(sqlite_url, "t", config.model_dump())
    for k, core_s in enumerate([5.0, 7.0]):
        structure = Structure(Lattice.cubic(3.5 + 0.1 * k), ["Ni"], [[0, 0, 0]])
        candidate = store.add_candidate(Candidate(structure=structure, origin="seed"))
        store.record_evaluation(
            Evaluation(
                candidate_hash=candidate.content_hash,
                oracle="cheap",
                fidelity=0.5,
                status="done",
                cost=Cost(core_s=core_s),
                properties={"bulk_modulus": PropertyValue(value=180.0, unit="GPa")},
            )
        )
    sources = {s.name: s for s in oracle_sources(config, store)}
    assert (sources["cheap"].cost_s, sources["cheap"].measured) == (6.0, True)
    assert (sources["dft"].cost_s, sources["dft"].measured) == (20.0, False)
    assert sources["lab"].cost_s == config.acquisition.lab_request_core_s  # no cost given
    assert sources["dft"].properties == {"bulk_modulus"}  # no objective names an oracle
    spent = fidelity_config().model_copy(
        update={"budget": config.budget.model_copy(update={"evaluations": {"cheap": 2}})}
    )
    assert "cheap" not in {s.name for s in oracle_sources(spent, store)}  # budget spent


def test_expensive_oracle_only_where_it_pays() -> None:
    rng = np.random.default_rng(5)
    dense = np.array([0.6, 0.1, 0.3]) + rng.normal(0, 0.01, size=(40, 3))
    dense = np.clip(dense, 0, None)
    dense /= dense.sum(axis=1, keepdims=True)
    spread = rng.dirichlet(np.ones(3), size=8)
    X = np.vstack([dense, spread[:4], spread[4:]])
    fid = np.concatenate([np.full(44, 0.5), np.full(4, 0.9)])
    Y = 100 * peaked(X) + np.where(fid < 0.9, 10 * X[:, 1], 0.0)
    config = fidelity_config(cost={"core_s": 1e5})
    surrogate = fit_surrogate(training_set(X, Y, fidelity=fid), config)
    sources = oracle_sources(config)
    assert [s.name for s in sources] == ["cheap", "dft", "lab"]
    probe = np.array([[0.6, 0.1, 0.3, 1.0], [0.1, 0.2, 0.7, 1.0]])  # sampled cheaply / not at all
    chosen = [source.name for source, _ in choose_oracles(surrogate, probe, sources)]
    assert chosen == ["dft", "cheap"]
    proposals = propose_from_training(training_set(X, Y, fidelity=fid), config, q=3, seed=0)
    fidelities = {"cheap": 0.5, "dft": 0.9, "lab": 1.0}
    assert all(p.oracle is not None and p.fidelity == fidelities[p.oracle] for p in proposals)


# ------------------------------------------------------------------------------------ scale
def test_subsample_keeps_best_recent_and_spread() -> None:
    rng = np.random.default_rng(6)
    X = rng.dirichlet(np.ones(3), size=3000)
    Y = peaked(X)
    config = make_config(max_points=200)
    reduced = subsample(training_set(X, Y), config).objectives["bulk_modulus"]
    assert len(reduced) == 200
    assert Y.max() in reduced.Y
    assert np.all(np.isin(Y[-50:], reduced.Y))  # the most recent quarter
    assert np.linalg.norm(X[:, None] - reduced.X[None, :, :3], axis=-1).min(1).max() < 0.15
