"""Loop steps that need no oracle call: which expensive oracles an iteration runs, when to stop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pymatgen.core import Structure

from amloop.acquisition.propose import Proposal
from amloop.generator.cdvae import CondCDVAE
from amloop.generator.data import DataSpec
from amloop.generator.pdm import pdm, site_shell_cutoffs
from amloop.generator.solid_solution import (
    mean_metallic_radius,
    random_solid_solution,
    supercell_shape,
    two_atom_cell,
)
from amloop.loop.campaigns import init_campaign
from amloop.loop.steps import (
    GATE_ORACLE,
    CampaignRun,
    EvaluationTask,
    ensure_generator,
    expensive_tasks,
    finetuning_subset,
    on_lattice,
    seed_sources,
    stop_reason,
    training_pairs,
)
from amloop.loop.steps.crafting import exhausted_starts
from amloop.state.schema import Candidate, Cost, Evaluation, PropertyValue
from amloop.state.settings import Settings

CONFIG = Path(__file__).parents[1] / "data" / "loop_nifecr.yaml"


@pytest.fixture
def run(tmp_path, monkeypatch):
    """The test campaign plus a dear oracle that alone measures a second objective."""
    data = yaml.safe_load(CONFIG.read_text())
    dear = dict(data["oracles"][0], name="lammps_dear", cost={"core_s": 600.0})
    data["oracles"].append(dear)
    data["objectives"].append(
        {"property": "shear_modulus", "direction": "maximize", "oracle": "lammps_dear"}
    )
    data["budget"]["evaluations"]["lammps_dear"] = 1
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    handle = init_campaign(path, Settings())
    return CampaignRun(handle.store(), handle.config, handle.directory)


def _candidates(run: CampaignRun, n: int) -> list[Candidate]:
    rng = np.random.default_rng(0)
    return [
        run.store.add_candidate(
            Candidate(
                structure=random_solid_solution({"Ni": 0.5, "Fe": 0.5}, "fcc", 32, rng),
                origin="generated",
                iteration=0,
                provenance={"proposal_index": 0},
            )
        )
        for _ in range(n)
    ]


def _done(
    run: CampaignRun,
    candidate: Candidate,
    oracle: str,
    iteration: int | None = 0,
    error: str | None = None,
    **values: float,
) -> None:
    """A finished call (``error``: a failed one, e.g. a gate rejection)."""
    run.store.record_evaluation(
        Evaluation(
            candidate_hash=candidate.content_hash,
            oracle=oracle,
            fidelity=0.6,
            status="failed" if error else "done",
            properties={k: PropertyValue(value=v, unit="GPa") for k, v in values.items()},
            error=error,
            cost=Cost(core_s=1.0),
            iteration=iteration,
        )
    )


def test_a_dear_oracle_that_alone_measures_an_objective_runs_on_the_best_survivor(run):
    low, high = _candidates(run, 2)
    _done(run, low, "lammps_meam", bulk_modulus=160.0)
    _done(run, high, "lammps_meam", bulk_modulus=190.0)
    proposal = Proposal({"Ni": 0.5, "Fe": 0.5, "Cr": 0.0}, None, 0.6, "lammps_meam", 0.0)
    tasks = expensive_tasks(run, 0, [proposal], [low, high])
    assert tasks == [EvaluationTask("lammps_dear", high.content_hash)]

    # a cell the gate rejected is no survivor: the dear call goes to the best one that passed
    _done(run, high, GATE_ORACLE, error="relaxed energy -4.01 eV/atom > training maximum -4.03")
    tasks = expensive_tasks(run, 0, [proposal], [low, high])
    assert tasks == [EvaluationTask("lammps_dear", low.content_hash)]


def test_the_generator_is_fine_tuned_only_once_the_data_has_grown_enough(run):
    """finetune_growth 0.25: 8 scored seed structures train iteration 0's weights; 9 keep them for
    iteration 1 (free, nothing new registered); 10 (= 1.25 x 8) fine-tune for iteration 2. Each
    iteration sees the evaluations of the iterations before it only."""
    candidates = _candidates(run, 10)
    for index in range(3):
        run.store.start_iteration(index)
    for k, candidate in enumerate(candidates[:8]):
        _done(run, candidate, "lammps_meam", iteration=None, bulk_modulus=160.0 + k)
    _done(run, candidates[8], "lammps_meam", iteration=0, bulk_modulus=190.0)
    first = ensure_generator(run, 0)
    kept = ensure_generator(run, 1)
    assert kept.checkpoint_sha256 == first.checkpoint_sha256
    iterations = {r.index: r for r in run.store.iterations()}
    assert iterations[1].metadata["trained_generator"]["kept_from"] == 0
    assert iterations[1].training_cost.core_s == 0.0
    assert [a.iteration for a in run.store.artifacts(kind="generator_checkpoint")] == [0]
    _done(run, candidates[9], "lammps_meam", iteration=1, bulk_modulus=195.0)
    tuned = ensure_generator(run, 2)
    assert tuned.checkpoint_sha256 != first.checkpoint_sha256
    assert run.store.iterations()[2].training_cost.core_s > 0.0
    trained = run.store.artifacts(kind="generator_checkpoint")
    assert [(a.iteration, a.metadata["trained_on"]) for a in trained] == [(0, 8), (2, 10)]


def test_a_spread_finetuning_gives_the_weights_of_one_done_at_once(run):
    """finetune_epochs_per_iteration 1 of 2 epochs: the fine-tuning that is due in iteration 1
    trains its first epoch there (iteration 1 keeps iteration 0's weights, the epoch's cost
    recorded), its second in iteration 2, which gets exactly the weights of both epochs at once
    on iteration 1's data; the next iteration without new data keeps them."""
    generator = run.config.generator.model_copy(
        update={"finetune_epochs": 2, "finetune_epochs_per_iteration": 1}
    )
    run = CampaignRun(
        run.store, run.config.model_copy(update={"generator": generator}), run.directory
    )
    candidates = _candidates(run, 12)
    for index in range(4):
        run.store.start_iteration(index)
    for k, candidate in enumerate(candidates[:8]):
        _done(run, candidate, "lammps_meam", iteration=None, bulk_modulus=160.0 + k)
    first = ensure_generator(run, 0)
    for k, candidate in enumerate(candidates[8:10]):
        _done(run, candidate, "lammps_meam", iteration=0, bulk_modulus=190.0 + k)
    kept = ensure_generator(run, 1)  # 10 >= 1.25 x 8: due, one epoch of two done
    assert kept.checkpoint_sha256 == first.checkpoint_sha256
    iterations = {r.index: r for r in run.store.iterations()}
    assert iterations[1].metadata["trained_generator"]["kept_from"] == 0
    assert iterations[1].training_cost.core_s > 0.0
    _done(run, candidates[10], "lammps_meam", iteration=1, bulk_modulus=195.0)
    tuned = ensure_generator(run, 2)  # iteration 1's data, not the newer structure
    assert tuned.checkpoint_sha256 != first.checkpoint_sha256
    assert not (run.directory / "generator" / "finetune").exists()
    at_once = CondCDVAE.load(run.generator_dir(0))
    at_once.finetune(
        finetuning_subset(training_pairs(run.store, 0), 256, run.config.seed + 1), epochs=2
    )
    for name, weights in at_once.model.state_dict().items():
        assert torch.equal(weights, tuned.model.state_dict()[name]), name
    trained = run.store.artifacts(kind="generator_checkpoint")
    assert [(a.iteration, a.metadata["trained_on"]) for a in trained] == [(0, 8), (2, 10)]
    assert ensure_generator(run, 3).checkpoint_sha256 == tuned.checkpoint_sha256  # 11 < 12.5


def test_stop_when_the_cheap_oracles_budget_is_spent(run):
    assert stop_reason(run, None) is None
    for candidate in _candidates(run, 40):  # the cap of lammps_meam is 40 calls
        _done(run, candidate, "lammps_meam", bulk_modulus=170.0)
    reason = stop_reason(run, None)
    assert reason is not None and "lammps_meam call cap of 40" in reason


def test_dft_pdos_is_stored_as_an_artifact_and_plotted(tmp_path, monkeypatch):
    """Issue [4 of 10]: the PDOS arrays of a DFT evaluation become an artifact of the campaign
    and a figure of `amloop report`."""
    from pymatgen.core import Lattice, Structure

    from amloop.loop.report import write_report
    from amloop.loop.steps import evaluate
    from amloop.oracles.base import OracleSetupError
    from amloop.oracles.dft import probe_gpaw

    try:
        probe_gpaw("/usr/bin/python3", "PBE")
    except OracleSetupError as exc:
        pytest.skip(f"needs Debian's gpaw: {exc}")
    data = {
        "name": "ni-dft",
        "elements": ["Ni"],
        "objectives": [{"property": "d_band_center", "direction": "minimize", "oracle": "gpaw"}],
        "oracles": [
            {
                "name": "gpaw",
                "type": "dft",
                "cost": {"core_s": 600.0},
                "options": {"ecut": 300, "kpts": "4x4x4", "workdir": str(tmp_path / "dft")},
            }
        ],
        "budget": {"core_hours": 1.0},
    }
    path = tmp_path / "ni.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    handle = init_campaign(path, Settings())
    h = 3.52 / 2
    ni = Structure(Lattice([[0, h, h], [h, 0, h], [h, h, 0]]), ["Ni"], [[0, 0, 0]])
    candidate = handle.store().add_candidate(Candidate(structure=ni, origin="seed"))
    evaluation = evaluate(
        handle.store(), handle.config, handle.config.oracles[0], candidate.content_hash, 0
    )
    assert evaluation is not None and evaluation.status == "done", evaluation
    assert evaluation.properties["d_band_center"].value < 0  # below E_F for Ni
    (artifact,) = handle.store().artifacts(kind="pdos")
    assert Path(artifact.path).name == "pdos.npz"
    assert artifact.metadata["candidate_hash"] == candidate.content_hash
    report = write_report(handle.store(), tmp_path / "report")
    assert "pdos" in report.read_text().lower()
    assert any("pdos" in png.name for png in (tmp_path / "report").glob("*.png"))


def test_seed_oracles_of_the_config_score_the_seed_set(run):
    """By default only the cheap oracle scores seeds; ``acquisition.seed_oracles`` adds the dear
    one (so its objective starts with values), and a command-line choice overrides both."""
    cheap = [o.name for o in run.config.oracles if o.name != "lammps_dear"]
    assert [c.name for c, _ in seed_sources(run.config)[0]] == cheap
    acquisition = run.config.acquisition.model_copy(update={"seed_oracles": ["lammps_dear"]})
    config = run.config.model_copy(update={"acquisition": acquisition})
    assert [c.name for c, _ in seed_sources(config)[0]] == ["lammps_dear"]
    assert [c.name for c, _ in seed_sources(config, cheap)[0]] == cheap


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("fcc", [4.0, 8.0, 0.0]), ("bcc", [0.0, 8.0, 0.0])],  # Ni-Ni, Ni-Fe, Ni-Cr
)
def test_a_generated_cell_put_on_lattice_sites_is_reordered_towards_its_pdm_target(
    run, kind, expected
):
    """The ordered NiFe of the lattice as the target (FCC: L1_0, alternate (001) layers, 4 like
    and 8 unlike first neighbours; BCC: B2, 8 unlike), counted in the lattice's first shell as
    the acquisition's features are: a displaced, re-numbered random Ni16Fe16 cell snaps onto
    the sites and its elements are exchanged there until its PDM is the target's."""
    elements = run.config.elements
    rng = np.random.default_rng(5)
    references = [random_solid_solution({"Ni": 0.5, "Fe": 0.5}, kind, 32, rng) for _ in range(3)]
    spec = DataSpec.from_data(references, [{}] * 3, elements=elements)
    ordered = two_atom_cell(kind, mean_metallic_radius({"Ni": 0.5, "Fe": 0.5}))
    ordered.replace_species({"H": "Ni"})
    ordered.replace(1, "Fe")
    ordered.make_supercell(supercell_shape(32))

    def on_sites(structure: Structure) -> np.ndarray:
        return pdm(structure, elements, cutoffs=site_shell_cutoffs(structure, kind, len(elements)))

    target = on_sites(ordered)
    assert target[: len(elements)] == pytest.approx(expected)
    generated = references[0].copy()
    generated.perturb(0.2)
    order = rng.permutation(len(generated))
    generated = Structure.from_sites([generated[int(k)] for k in order])
    candidate = Candidate(structure=generated, origin="generated", provenance={"seed": 1})
    snapped_only = on_lattice(run.config, candidate, spec, lattice=kind)
    reordered = on_lattice(run.config, candidate, spec, list(target), sweeps=20, lattice=kind)
    assert reordered.structure.composition == generated.composition
    assert np.array_equal(reordered.structure.frac_coords, snapped_only.structure.frac_coords)
    assert np.abs(on_sites(snapped_only.structure) - target).mean() > 0.5
    assert on_sites(reordered.structure) == pytest.approx(target, abs=1e-9)
    assert reordered.provenance["pdm_error_on_lattice"] == pytest.approx(0.0, abs=1e-9)
    assert reordered.provenance["snapped_to"] == kind


def test_a_finetuning_keeps_the_newest_half_and_samples_the_older_structures():
    cell = random_solid_solution({"Ni": 0.5, "Fe": 0.5}, "fcc", 16, np.random.default_rng(0))
    data = [(cell, {"order": float(k)}) for k in range(10)]
    subset = finetuning_subset(data, 6, seed=3)
    order = [values["order"] for _, values in subset]
    assert len(order) == 6 and order == sorted(order)
    assert order[3:] == [7.0, 8.0, 9.0]  # the newest three, always
    assert set(order[:3]) < {float(k) for k in range(7)}
    assert finetuning_subset(data, 6, seed=3) == subset  # seeded
    assert finetuning_subset(data, None, seed=3) == data
    assert finetuning_subset(data, 10, seed=3) == data


def test_crafting_passes_a_cell_over_after_patience_unimproved_searches():
    def search(start: str, improved: bool) -> dict:
        return {"start": start, "start_value": 1.0, "best_value": 2.0 if improved else 1.0}

    metadata = [
        {"local_search": {"searches": [search("a", False), search("b", True)]}},
        {"local_search": {"searches": [search("a", False), {"start": "c", "error": "no value"}]}},
        {"proposals": []},  # an iteration without crafting
        {"local_search": {"searches": [search("a", False), search("d", False)]}},
    ]
    assert exhausted_starts(metadata[:2], patience=3) == {"c"}  # an error: at once
    assert exhausted_starts(metadata, patience=3) == {"a", "c"}  # improved "b" stays eligible
    assert exhausted_starts(metadata, patience=1) == {"a", "c", "d"}
