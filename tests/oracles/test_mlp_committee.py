"""The campaign's own potential at tiny size: force labels from ASE's EMT (a real classical
potential, standing in for DFT) on rattled Cu-Ni cells, a committee of two small M3GNets fitted
by matgl's trainer, resumed after a kill, loaded as the ``mlp`` oracle's ``model: campaign``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from pymatgen.io.ase import AseAtomsAdaptor
from typer.testing import CliRunner

from amloop.loop.cli import app
from amloop.loop.steps.potential import labelling_tasks, refit_due
from amloop.loop.steps.run import CampaignRun, oracle_config, oracle_instance
from amloop.oracles.campaign_potential import committee_versions, member_folders
from amloop.oracles.labels import ase_label
from amloop.oracles.md.engines import named_calculator
from amloop.oracles.mlp.committee import CommitteeCalculator
from amloop.oracles.mlp.training import (
    MEMBER_FILE,
    fit_committee,
    fit_key,
    load_member,
    partial_folder,
    split_labels,
)
from amloop.state.config import PotentialFitConfig
from amloop.state.schema import Candidate, Evaluation, ForceLabel
from amloop.state.settings import Settings
from amloop.state.store import CampaignStore

TINY = PotentialFitConfig(
    train_on=["chgnet"], committee=2, units=8, blocks=1, epochs=2, batch_size=4, min_labels=4
)


def emt_labels(count: int, seed: int = 0) -> list[ForceLabel]:
    """EMT labels of ``count`` rattled, strained 8-atom Cu-Ni FCC cells."""
    rng = np.random.default_rng(seed)
    labels = []
    for index in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        symbols = atoms.get_chemical_symbols()
        for site in rng.choice(len(atoms), size=int(rng.integers(1, 7)), replace=False):
            symbols[site] = "Ni"
        atoms.set_chemical_symbols(symbols)
        atoms.rattle(0.08, seed=seed * 1000 + index)
        atoms.set_cell(atoms.cell * rng.uniform(0.97, 1.03), scale_atoms=True)
        atoms.calc = EMT()
        labels.append(ase_label(atoms, AseAtomsAdaptor.get_structure(atoms)))
    return labels


def test_split_keeps_a_labels_side_as_the_set_grows() -> None:
    labels = emt_labels(30)
    train, held = split_labels(labels[:20], 0.2)
    bigger_train, bigger_held = split_labels(labels, 0.2)
    assert held and train and len(train) + len(held) == 20
    assert all(label in bigger_held for label in held)
    assert all(label in bigger_train for label in train)


def test_committee_fit_resumes_and_predicts_with_spread(tmp_path: Path) -> None:
    labels = emt_labels(12)
    root = tmp_path / "mlp"
    # a fit killed after its first member: the member is kept and not trained again
    fit_committee(labels, root, TINY.model_copy(update={"committee": 2}), seed=0)
    (v001,) = committee_versions(root)
    partial = partial_folder(root, fit_key(labels[:10], TINY, 0))
    (partial / "member-0").mkdir()
    for item in member_folders(v001)[0].iterdir():
        (partial / "member-0" / item.name).write_bytes(item.read_bytes())
    kept = json.loads((partial / "member-0" / MEMBER_FILE).read_text())
    fit = fit_committee(labels[:10], root, TINY, seed=0)
    assert fit.version.name == "v002" and not partial.exists()
    assert json.loads((fit.version / "member-0" / MEMBER_FILE).read_text()) == kept
    assert fit.n_train + fit.n_validation == 10 and fit.core_s > kept["core_s"]
    summary = json.loads((fit.version / "committee.json").read_text())
    assert summary["elements"] == ["Cu", "Ni"] and summary["committee"]["force_eV_per_A"] > 0

    members = [load_member(folder) for folder in member_folders(fit.version)]
    committee = CommitteeCalculator(members)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    energies = []
    for member in members:
        copy = atoms.copy()
        copy.calc = member
        energies.append(copy.get_potential_energy())
    atoms.calc = committee
    assert atoms.get_potential_energy() == pytest.approx(np.mean(energies), abs=1e-6)
    assert committee.spread.energy_eV_per_atom == pytest.approx(np.std(energies) / 8, abs=1e-7)
    # forces are gradients: zero on the perfect lattice whatever the weights; stress hydrostatic
    assert np.abs(atoms.get_forces()).max() < 1e-4
    # the md oracle's calculator: campaign / committee:PATH; NVE conserves the committee's energy
    md = named_calculator(f"committee:{root}")
    assert isinstance(md, CommitteeCalculator) and md is not committee
    moving = emt_labels(1, seed=5)[0].structure
    hot = AseAtomsAdaptor.get_atoms(moving)
    hot.calc = md
    MaxwellBoltzmannDistribution(hot, temperature_K=600, rng=np.random.default_rng(0))
    start = hot.get_total_energy()
    VelocityVerlet(hot, timestep=1.0 * units.fs).run(50)
    assert abs(hot.get_total_energy() - start) / len(hot) < 2e-3  # eV/atom over 50 fs
    xx, yy, zz, *shear = atoms.get_stress(voigt=True)
    assert yy == pytest.approx(xx, rel=1e-3, abs=1e-6)
    assert zz == pytest.approx(xx, rel=1e-3, abs=1e-6) and np.abs(shear).max() < 1e-6


CAMPAIGN = {
    "name": "own-potential",
    "elements": ["Cu", "Ni"],
    "cell": {"n_atoms": 8, "lattice": "fcc"},
    "objectives": [
        {"property": "formation_energy_per_atom", "direction": "minimize", "oracle": "chgnet"}
    ],
    "oracles": [
        {"name": "chgnet", "type": "mlp", "fidelity": 0.5, "options": {"model": "chgnet"}},
        {
            "name": "own",
            "type": "mlp",
            "fidelity": 0.3,
            "options": {"model": "campaign", "fmax": 2.0, "max_steps": 20, "relax_cell": False},
        },
    ],
    "budget": {"core_hours": 1.0},
    "mlp": TINY.model_dump(mode="json"),
}


def test_mlp_fit_command_and_the_campaign_oracle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    config = tmp_path / "campaign.yaml"
    config.write_text(yaml.safe_dump(CAMPAIGN))
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(config)]).exit_code == 0
    result = runner.invoke(app, ["mlp", "fit", "-c", "own-potential"])
    assert result.exit_code == 0 and "0 label(s) of chgnet, 4 needed" in result.output

    settings = Settings()
    store = CampaignStore.open(settings.database_url_for("own-potential"), "own-potential")
    for label in emt_labels(6, seed=1):  # labels as the chgnet oracle's calls would keep them
        candidate = store.add_candidate(Candidate(structure=label.structure, origin="seed"))
        store.record_evaluation(
            Evaluation(
                candidate_hash=candidate.content_hash,
                oracle="chgnet",
                fidelity=0.5,
                status="done",
                labels=[label],
            )
        )
    result = runner.invoke(app, ["mlp", "fit", "-c", "own-potential"])
    assert result.exit_code == 0, result.output
    assert "fitted" in result.output and "meV/atom" in result.output
    url, folder = settings.database_url_for("own-potential"), settings.campaign_dir("own-potential")
    run = CampaignRun.open(url, "own-potential", folder)
    assert refit_due(run) == (False, "6 labels, v001 fitted on 6; refit at 7")
    (artifact,) = store.artifacts(kind="mlp_committee")
    assert artifact.metadata["n_train"] + artifact.metadata["n_validation"] == 6
    assert store.events(kind="mlp_fit")

    # active learning: the committee ranks unlabelled cells; a perfect lattice (zero forces for
    # every member by symmetry, so no spread) is never chosen over rattled ones
    perfect = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1)))
    pool = [perfect, *(label.structure for label in emt_labels(3, seed=3))]
    for structure in pool:
        store.add_candidate(Candidate(structure=structure, origin="generated", iteration=0))
    store.start_iteration(0)
    mlp = run.config.mlp.model_copy(update={"label_per_iteration": 2})
    active = CampaignRun(store, run.config.model_copy(update={"mlp": mlp}), run.directory)
    tasks = labelling_tasks(active, 0)
    assert len(tasks) == 2 and {t.oracle for t in tasks} == {"chgnet"}
    assert Candidate(structure=perfect, origin="seed").content_hash not in {
        t.candidate_hash for t in tasks
    }
    (record,) = store.iterations()
    spreads = [entry["force_spread_eV_per_A"] for entry in record.metadata["labelling"]]
    assert spreads == sorted(spreads, reverse=True) and spreads[-1] > 0
    assert len(store.events(kind="label_request")) == 2
    assert labelling_tasks(active, 0) == tasks  # kept: a resumed iteration labels the same

    own = oracle_instance(oracle_config(run.config, "own"))
    evaluation = own.evaluate(
        Candidate(structure=emt_labels(1, seed=2)[0].structure, origin="seed")
    )
    assert evaluation.status == "done", evaluation.error
    energy = evaluation.properties["energy_per_atom"]
    assert energy.uncertainty is not None and energy.uncertainty > 0
    assert evaluation.provenance["committee"].endswith("v001")
    assert evaluation.labels[-1].source == "final"  # after the input's (and steps on the way)
    assert {label.oracle for label in evaluation.labels} == {"own"}
