"""Surrogates and proposals on real data: 36 Ni-Fe-Cr cells relaxed by the LAMMPS oracle
(``tests/data/nifecr_relaxed.extxyz``, 2NN-MEAM bulk and shear moduli)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymatgen.core import Structure

from amloop.acquisition import features
from amloop.acquisition.features import build_training_set, structure_pdm
from amloop.acquisition.propose import propose
from amloop.acquisition.surrogate import HyperparameterReuse, fit_surrogate
from amloop.generator.data import read_training_data
from amloop.generator.pdm import pdm, site_shell_cutoffs
from amloop.generator.solid_solution import (
    mean_metallic_radius,
    random_solid_solution,
    two_atom_cell,
)
from amloop.loop.history import best_per_objective
from amloop.loop.steps.run import CampaignRun
from amloop.loop.steps.sampling import best_structures
from amloop.loop.steps.training import scored_count, training_pairs
from amloop.state.config import CampaignConfig
from amloop.state.database import dispose_engines
from amloop.state.memo import BoundedMemo
from amloop.state.schema import GATE_ORACLE, Candidate, Evaluation, Measurement, PropertyValue
from amloop.state.store import CampaignStore

DATA = Path(__file__).parents[1] / "data" / "nifecr_relaxed.extxyz"
ELEMENTS = ["Ni", "Fe", "Cr"]
BOUNDS = {"Cr": (0.0, 0.6)}


def config_dict(objectives: list[dict[str, Any]], **acquisition: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "elements": ELEMENTS,
        "bounds": {k: list(v) for k, v in BOUNDS.items()},
        "objectives": objectives,
        "oracles": [{"name": "lammps", "type": "lammps", "fidelity": 0.6}],
        "budget": {"evaluations": {"lammps": 100}},
        "acquisition": {"batch_size": 3, **acquisition},
    }


BULK = {"property": "bulk_modulus", "direction": "maximize"}
SHEAR = {"property": "shear_modulus", "direction": "maximize"}


@pytest.fixture(scope="module")
def frames() -> list[tuple[Structure, dict[str, float]]]:
    return read_training_data(DATA)


def make_store(
    tmp_path: Path, frames: list[tuple[Structure, dict[str, float]]], config: dict[str, Any]
) -> tuple[CampaignStore, CampaignConfig]:
    store = CampaignStore.create(f"sqlite:///{tmp_path}/c.db", "t", config)
    for structure, values in frames:
        candidate = store.add_candidate(Candidate(structure=structure, origin="seed"))
        record_moduli(store, candidate, {n: values[n] for n in ("bulk_modulus", "shear_modulus")})
    return store, CampaignConfig.model_validate(config)


def record_moduli(
    store: CampaignStore,
    candidate: Candidate,
    moduli: dict[str, float],
    uncertainty: float | None = None,
    relaxed: Structure | None = None,
) -> None:
    """A finished ``lammps`` call of ``candidate`` with ``moduli`` (GPa, by property) and the
    ``relaxed`` cell it returned, if any."""
    store.record_evaluation(
        Evaluation(
            candidate_hash=candidate.content_hash,
            oracle="lammps",
            fidelity=0.6,
            status="done",
            relaxed_structure=relaxed,
            properties={
                name: PropertyValue(value=value, unit="GPa", uncertainty=uncertainty)
                for name, value in moduli.items()
            },
        )
    )


@pytest.fixture(autouse=True)
def _dispose() -> Any:
    yield
    dispose_engines()


def check_feasible(proposals: list[Any]) -> None:
    for proposal in proposals:
        fractions = np.array([proposal.composition[el] for el in ELEMENTS])
        assert fractions.sum() == pytest.approx(1.0, abs=1e-6)
        assert np.all(fractions >= -1e-6)
        assert proposal.composition["Cr"] <= 0.6 + 1e-6
        assert (proposal.oracle, proposal.fidelity) == ("lammps", 0.6)


def test_gp_predicts_held_out_points(tmp_path: Path, frames: list) -> None:
    train, test = frames[::3] + frames[1::3], frames[2::3]
    store, config = make_store(tmp_path, train, config_dict([BULK]))
    training = build_training_set(store, config)
    n_distinct = len(store.candidates())  # two frames may relax to the same structure
    assert training.objectives["bulk_modulus"].X.shape == (n_distinct, 3 + 6 + 1)
    surrogate = fit_surrogate(training, config)
    (tmp_path / "held").mkdir()
    test_store, _ = make_store(tmp_path / "held", test, config_dict([BULK]))
    held = build_training_set(test_store, config).objectives["bulk_modulus"]
    mean, sigma = surrogate.predict(held.X)
    rmse = float(np.sqrt(np.mean((mean[:, 0] - held.Y) ** 2)))
    assert rmse < float(np.std(held.Y))
    assert np.all(sigma > 0)


def test_gp_hyperparameters_are_kept_until_the_data_grows_by_refit_growth(
    tmp_path: Path, frames: list
) -> None:
    train, test = frames[::3] + frames[1::3], frames[2::3]
    config = CampaignConfig.model_validate(config_dict([BULK], refit_growth=0.25))
    growth = config.acquisition.refit_growth

    def fit_on(n: int, kept: dict[str, Any]) -> tuple[Any, HyperparameterReuse]:
        (tmp_path / str(n)).mkdir()
        store, _ = make_store(tmp_path / str(n), train[:n], config_dict([BULK]))
        training = build_training_set(store, config)
        reuse = HyperparameterReuse(
            growth, {"bulk_modulus": len(training.objectives["bulk_modulus"])}, kept
        )
        return fit_surrogate(training, config, reuse), reuse

    kept: dict[str, Any] = {}
    _, first = fit_on(16, kept)
    n_first = first.sizes["bulk_modulus"]  # two frames may relax to the same structure
    assert first.refitted == ["bulk_modulus"] and kept["bulk_modulus"]["n_points"] == n_first
    stored = json.loads(json.dumps(kept))  # as the loop keeps them: iteration metadata
    surrogate, second = fit_on(19, stored)  # kept, conditioned on all the data
    n_second = second.sizes["bulk_modulus"]
    assert n_first < n_second < (1 + growth) * n_first
    assert second.refitted == [] and stored == kept
    own = {k: v.tolist() for k, v in surrogate.models[0].named_parameters()}
    assert own == kept["bulk_modulus"]["parameters"]
    assert surrogate.models[0].train_targets.shape == (n_second,)
    (tmp_path / "held").mkdir()
    test_store, _ = make_store(tmp_path / "held", test, config_dict([BULK]))
    held = build_training_set(test_store, config).objectives["bulk_modulus"]
    mean, _ = surrogate.predict(held.X)
    assert float(np.sqrt(np.mean((mean[:, 0] - held.Y) ** 2))) < float(np.std(held.Y))
    _, third = fit_on(len(train), stored)  # grown by more than refit_growth: refitted
    n_third = third.sizes["bulk_modulus"]
    assert n_third >= (1 + growth) * n_first
    assert third.refitted == ["bulk_modulus"] and stored["bulk_modulus"]["n_points"] == n_third


def test_proposals_feasible_distinct_and_deterministic(tmp_path: Path, frames: list) -> None:
    store, config = make_store(tmp_path, frames[:15], config_dict([BULK]))
    first = propose(store, config, seed=1)
    assert len(first) == 3
    check_feasible(first)
    points = np.array([[p.composition[el] for el in ELEMENTS] for p in first])
    assert (
        np.min(np.linalg.norm(points[:, None] - points[None], axis=-1)[np.triu_indices(3, 1)])
        > 1e-4
    )
    assert all(p.reason.startswith("qLogNEI") and p.pdm_target is not None for p in first)
    assert all(set(p.mean) == {"bulk_modulus"} and p.sigma["bulk_modulus"] > 0 for p in first)
    again = propose(store, config, seed=1)
    assert [p.composition for p in again] == [p.composition for p in first]


def test_measurement_changes_prediction(tmp_path: Path, frames: list) -> None:
    store, config = make_store(tmp_path, frames[:15], config_dict([BULK]))
    structure, values = frames[20]
    composition = {
        el.symbol: float(x) for el, x in structure.composition.fractional_composition.items()
    }
    before = fit_surrogate(build_training_set(store, config), config)
    x = build_training_set(store, config).all_X()[:1].copy()
    x[0, :3] = [composition.get(el, 0.0) for el in ELEMENTS]
    value = values["bulk_modulus"] + 30.0  # an experiment far above the simulations
    store.add_measurements(
        [
            Measurement(
                composition=composition,
                property="bulk_modulus",
                value=value,
                unit="GPa",
                uncertainty=1.0,
                source="lab",
                raw_value=value,
                raw_unit="GPa",
            )
        ]
    )
    training = build_training_set(store, config)
    assert training.objectives["bulk_modulus"].X[-1, -1] == 1.0  # top fidelity
    after = fit_surrogate(training, config)
    x[0, 3:9] = training.objectives["bulk_modulus"].X[-1, 3:9]  # the imputed (mean) PDM
    shift = after.predict(x)[0][0, 0] - before.predict(x)[0][0, 0]
    assert shift > 5.0


def test_space_filling_with_too_few_points(tmp_path: Path, frames: list) -> None:
    store, config = make_store(tmp_path, frames[:2], config_dict([BULK]))
    proposals = propose(store, config, q=4, seed=0)
    check_feasible(proposals)
    assert all(p.reason.startswith("space-filling: too few data") for p in proposals)
    assert [p.composition for p in propose(store, config, q=4, seed=0)] == [
        p.composition for p in proposals
    ]


def test_random_strategy(tmp_path: Path, frames: list) -> None:
    store, config = make_store(tmp_path, frames[:10], config_dict([BULK], strategy="random"))
    proposals = propose(store, config, q=5, seed=3)
    check_feasible(proposals)
    assert all(p.reason.startswith("random") for p in proposals)
    assert len({tuple(p.composition.values()) for p in proposals}) == 5


def test_two_objectives_use_qlognehvi(tmp_path: Path, frames: list) -> None:
    store, config = make_store(tmp_path, frames[:12], config_dict([BULK, SHEAR]))
    proposals = propose(store, config, q=2, seed=0)
    assert len(proposals) == 2
    check_feasible(proposals)
    assert all(p.reason.startswith("qLogNEHVI") for p in proposals)
    assert all(set(p.mean) == {"bulk_modulus", "shear_modulus"} for p in proposals)


def test_failures_and_uncertainties(tmp_path: Path, frames: list) -> None:
    store, config = make_store(tmp_path, [], config_dict([BULK]))
    for structure, values in frames[:6]:
        candidate = store.add_candidate(Candidate(structure=structure, origin="seed"))
        record_moduli(store, candidate, {"bulk_modulus": values["bulk_modulus"]}, 2.0)
    failed = store.add_candidate(Candidate(structure=frames[7][0], origin="seed"))
    store.record_evaluation(
        Evaluation(
            candidate_hash=failed.content_hash,
            oracle="lammps",
            fidelity=0.6,
            status="failed",
            error="lost atoms",
        )
    )
    training = build_training_set(store, config)
    assert training.feasibility_y.tolist().count(0.0) == 1
    assert training.feasibility_X.shape == (7, 10)
    assert np.allclose(training.objectives["bulk_modulus"].Yvar, 4.0)
    surrogate = fit_surrogate(training, config)  # heteroscedastic: train_Yvar given
    mean, _ = surrogate.predict(training.objectives["bulk_modulus"].X)
    assert np.all(np.isfinite(mean))


def test_composition_only_baseline_from_config(tmp_path: Path, frames: list) -> None:
    store, config = make_store(tmp_path, frames[:8], config_dict([BULK], features="composition"))
    proposals = propose(store, config, q=2, seed=0)
    check_feasible(proposals)
    assert all(p.pdm_target is None and p.reason.startswith("qLogNEI") for p in proposals)


@pytest.mark.parametrize("stiffer", ["fcc", "bcc"])
def test_each_point_goes_to_the_lattice_the_surrogate_prefers(
    tmp_path: Path, frames: list, stiffer: str
) -> None:
    """`cell.lattice: [fcc, bcc]`: the lattice is a categorical input, and each point is
    optimised on the lattice of its best raw sample. The same cells on both lattices (the
    other one 2 % larger), 30 GPa apart: every proposal is on the stiffer lattice."""
    config = config_dict([BULK]) | {"cell": {"n_atoms": 32, "lattice": ["fcc", "bcc"]}}
    store = CampaignStore.create(f"sqlite:///{tmp_path}/c.db", "t", config)
    for structure, values in frames[:8]:
        for lattice in ("fcc", "bcc"):
            cell = structure.copy()
            if lattice != stiffer:
                cell.scale_lattice(cell.volume * 1.02**3)
            candidate = store.add_candidate(
                Candidate(structure=cell, origin="seed", provenance={"lattice": lattice})
            )
            shift = 0.0 if lattice == stiffer else -30.0
            record_moduli(store, candidate, {"bulk_modulus": values["bulk_modulus"] + shift})
    proposals = propose(store, CampaignConfig.model_validate(config), seed=0)
    check_feasible(proposals)
    assert [p.lattice for p in proposals] == [stiffer] * 3


def test_training_set_reads_each_finished_evaluation_once_and_again_when_it_changes(
    tmp_path: Path, frames: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evaluation PDM memo: features equal to a cold read's (by a full scan); a failed call
    recorded again as done (with a relaxed structure) is read anew (by its hash): its row
    carries the returned cell's PDM."""
    store, config = make_store(tmp_path, frames[:5], config_dict([BULK]))
    warm = build_training_set(store, config)
    monkeypatch.setattr(features, "_evaluation_pdms", BoundedMemo(100))
    monkeypatch.setattr(features, "MAX_LISTED_HASHES", 1)  # 5 unseen: read by a full scan
    cold = build_training_set(store, config)
    assert np.array_equal(warm.objectives["bulk_modulus"].X, cold.objectives["bulk_modulus"].X)
    rng = np.random.default_rng(4)
    structure = random_solid_solution({"Ni": 0.5, "Fe": 0.25, "Cr": 0.25}, "fcc", 32, rng)
    candidate = store.add_candidate(Candidate(structure=structure, origin="seed"))
    failed = Evaluation(
        candidate_hash=candidate.content_hash, oracle="lammps", fidelity=0.6, status="failed"
    )
    store.record_evaluation(failed.model_copy(update={"error": "lost"}))
    training = build_training_set(store, config)
    assert training.feasibility_y.tolist() == [1.0] * 5 + [0.0]
    pair_part = training.feasibility_X[-1, training.pdm_slice]
    assert pair_part == pytest.approx(pdm(structure, ELEMENTS))
    relaxed = structure.copy()  # another ordering stands in for what the oracle returned
    unlike = next(k for k in range(len(structure)) if structure[k].specie != structure[0].specie)
    relaxed.replace(0, structure[unlike].specie)
    relaxed.replace(unlike, structure[0].specie)
    done = failed.model_copy(
        update={
            "status": "done",
            "relaxed_structure": relaxed,
            "properties": {"bulk_modulus": PropertyValue(value=190.0, unit="GPa")},
        }
    )
    store.record_evaluation(done)
    training = build_training_set(store, config)
    assert training.feasibility_y.tolist() == [1.0] * 6
    bulk = training.objectives["bulk_modulus"]
    (row,) = bulk.X[bulk.Y == 190.0]
    assert row[training.pdm_slice] == pytest.approx(pdm(relaxed, ELEMENTS))
    assert not np.allclose(pdm(relaxed, ELEMENTS), pdm(structure, ELEMENTS))


def test_a_lattice_campaign_reads_the_ordering_on_the_sites_not_the_relaxed_cell(
    tmp_path: Path,
) -> None:
    """In a BCC campaign the PDM features of a cell are its ordering on the lattice's first shell
    (B2 NiFe: 8 unlike neighbours), the convention the generator matches targets in: the relaxed
    cell the oracle returned (displaced 0.08 Å, its own RDF minimum past the second shell: 6
    like neighbours more) is not read."""
    config = config_dict([BULK]) | {"cell": {"lattice": "bcc", "n_atoms": 54}}
    store = CampaignStore.create(f"sqlite:///{tmp_path}/c.db", "t", config)
    cell = two_atom_cell("bcc", mean_metallic_radius({"Ni": 0.5, "Fe": 0.5}))
    cell.replace_species({"H": "Ni"})
    cell.replace(1, "Fe")
    cell.make_supercell((3, 3, 3))
    candidate = store.add_candidate(Candidate(structure=cell, origin="seed"))
    relaxed = cell.copy()
    relaxed.perturb(0.08)
    record_moduli(store, candidate, {"bulk_modulus": 190.0}, relaxed=relaxed)
    training = build_training_set(store, CampaignConfig.model_validate(config))
    (row,) = training.objectives["bulk_modulus"].X
    on_sites = pdm(cell, ELEMENTS, cutoffs=site_shell_cutoffs(cell, "bcc", len(ELEMENTS)))
    assert row[training.pdm_slice] == pytest.approx(on_sites)
    assert row[training.pdm_slice][:3] == pytest.approx([0.0, 8.0, 0.0])  # Ni-Ni, Ni-Fe, Ni-Cr
    assert pdm(relaxed, ELEMENTS)[:3] == pytest.approx([6.0, 8.0, 0.0])


def test_remembered_pdms_follow_the_structure_content():
    """The PDM cache of the training set: the same content gives the same PDM, an exchange of
    two unlike atoms or a moved atom is a new structure (its own PDM)."""
    elements = ["Ni", "Fe", "Cr"]
    rng = np.random.default_rng(2)
    cell = random_solid_solution({"Ni": 0.5, "Fe": 0.25, "Cr": 0.25}, "fcc", 32, rng)
    first = structure_pdm(cell, elements)
    assert first == pytest.approx(pdm(cell, elements))
    assert structure_pdm(cell.copy(), elements) == pytest.approx(first)
    unlike = next(k for k in range(len(cell)) if cell[k].specie != cell[0].specie)
    exchanged = cell.copy()
    exchanged.replace(0, cell[unlike].specie)
    exchanged.replace(unlike, cell[0].specie)
    assert structure_pdm(exchanged, elements) == pytest.approx(pdm(exchanged, elements))
    assert not np.allclose(structure_pdm(exchanged, elements), first)
    moved = cell.copy()
    moved.perturb(0.3)
    assert structure_pdm(moved, elements) == pytest.approx(pdm(moved, elements))


def test_a_cell_the_gate_rejected_is_no_best_no_start_and_no_training_value(
    tmp_path: Path, frames: list
) -> None:
    """The energy gate rejects a scored cell (its oracle call is done, its verdict failed):
    its value must not become the campaign's best, a crafting start, a surrogate target or a
    generator training example; the rejection, and the call on it, train the feasibility model."""
    store, config = make_store(tmp_path, frames[:12], config_dict([BULK]))
    best_value = max(v["bulk_modulus"] for _, v in frames[:12])
    invalid = store.add_candidate(Candidate(structure=frames[12][0], origin="generated"))
    store.record_evaluation(
        Evaluation(
            candidate_hash=invalid.content_hash,
            oracle="lammps",
            fidelity=0.6,
            status="done",
            properties={"bulk_modulus": PropertyValue(value=best_value + 50.0, unit="GPa")},
        )
    )
    before = build_training_set(store, config)
    assert best_per_objective(store, config)[0].value == best_value + 50.0  # no verdict yet
    store.record_evaluation(
        Evaluation(
            candidate_hash=invalid.content_hash,
            oracle=GATE_ORACLE,
            fidelity=0.0,
            status="failed",
            error="relaxed energy above the threshold",
        )
    )
    assert store.gate_rejected() == {invalid.content_hash}
    assert best_per_objective(store, config)[0].value == pytest.approx(best_value)
    (start_hash, _), *_ = best_structures(
        CampaignRun(store, config, tmp_path), 3, before_iteration=10
    )
    assert start_hash != invalid.content_hash
    after = build_training_set(store, config)
    assert len(after.objectives["bulk_modulus"].Y) == len(before.objectives["bulk_modulus"].Y) - 1
    assert after.objectives["bulk_modulus"].Y.max() == pytest.approx(best_value)
    # the verdict and the call that scored the rejected cell: both infeasible (a success label
    # beside the verdict's failure would leave P(feasible) ~ 1/2 in the rejected region)
    assert (before.feasibility_y == 0.0).sum() == 0
    assert (after.feasibility_y == 0.0).sum() == 2
    assert scored_count(store) == len(training_pairs(store)) == len(store.candidates()) - 1
