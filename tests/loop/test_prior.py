"""The generator prior: a space-filling composition design, glass snapshots kept along a
melt-quench, the corpus and training (resumable), the data card, and a prior that has never
seen a campaign's property learning its scale in the campaign's fine-tuning."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from amloop.generator.cdvae import CondCDVAE
from amloop.generator.config import CondCDVAEConfig
from amloop.loop.prior import CORPUS_DIR, corpus_pairs, pretrain, prior_compositions
from amloop.oracles.md import (
    Deadline,
    LammpsEngine,
    MDOracle,
    MeltQuench,
    SnapshotPlan,
    random_packing,
    run_melt_quench,
)
from amloop.oracles.registry import oracle_from_config
from amloop.state.config import parse_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "cuzr-glass.yaml"
QUICK = {"melt_ps": 1, "volume_ps": 1, "anneal_ps": 1, "quench_rate_K_per_ps": 1000}


def _config(n_atoms: int = 32):
    data = yaml.safe_load(EXAMPLE.read_text())
    data["cell"]["n_atoms"] = n_atoms
    data["generator"].pop("prior", None)
    data["generator"].pop("refine", None)
    data["oracles"][1]["options"].update(QUICK, pressure_tolerance_GPa=1.5)
    return parse_config(data)


def test_compositions_fill_the_bounded_simplex():
    config = _config()
    points = prior_compositions(config, 8, seed=0)
    assert points == prior_compositions(config, 8, seed=0)  # deterministic
    cu = sorted(p.get("Cu", 0.0) for p in points)
    for point in points:
        assert sum(point.values()) == pytest.approx(1.0, abs=0.011)
        assert 0.3 - 0.005 <= point.get("Cu", 0.0) <= 0.8 + 0.005
    # spread over the Cu range [0.3, 0.8]: both ends reached, no two points closer than 0.05
    assert cu[0] <= 0.32 and cu[-1] >= 0.78
    assert min(b - a for a, b in itertools.pairwise(cu)) >= 0.05


def test_snapshots_are_kept_along_the_quench_and_anneal():
    protocol = MeltQuench(
        melt_temperature_K=2000, final_temperature_K=300, melt_ps=1, volume_ps=1,
        pressure_tolerance_GPa=1.5, quench_rate_K_per_ps=500, anneal_ps=2,
    )  # fmt: skip
    plan = SnapshotPlan(every_ps=0.5, below_K=1000.0)
    start = random_packing({"Cu": 0.5, "Zr": 0.5}, 32, seed=0)
    with LammpsEngine.factory("CuZr_mm.eam.fs")(start) as engine:
        report = run_melt_quench(engine, protocol, np.random.default_rng(0), Deadline(600), plan)
    snapshots = report.snapshots
    # 1000 -> 300 K at 500 K/ps is 1.4 ps, then a 2 ps anneal: 3 + 4 snapshots, 0.5 ps apart
    assert len(snapshots) >= 6
    assert all(s.temperature_K <= 1000.0 for s in snapshots)
    times = [s.time_ps for s in snapshots]
    assert all(b - a >= 0.5 - 1e-9 for a, b in itertools.pairwise(times))
    assert [s.temperature_K for s in snapshots][-4:] == [300.0] * 4
    assert len({s.structure.lattice.volume for s in snapshots}) > 1  # rescaled while quenching


def test_pretrain_builds_a_corpus_a_generator_and_a_card_and_resumes(tmp_path):
    config = _config()
    md = oracle_from_config(config.oracles[1])
    assert isinstance(md, MDOracle)
    plan = SnapshotPlan(every_ps=0.5, below_K=800.0)
    card = pretrain(tmp_path, config, md, n_compositions=2, snapshots=plan, epochs=2)
    data = json.loads((tmp_path / "card.json").read_text())
    assert data["melt_quenches"] == {"done": 2, "failed": []}
    assert data["structures"] == len(corpus_pairs(tmp_path)) >= 6
    assert data["energy_labels"] is True  # lammps_eam runs the md oracle's potential
    assert data["cost_core_s"]["total"] == pytest.approx(
        data["cost_core_s"]["corpus"] + data["cost_core_s"]["training"]
    )
    assert data["potential"]["potential"].endswith("CuZr_mm.eam.fs")
    assert "Cu-Zr" in card.read_text()
    for structure, values in corpus_pairs(tmp_path):  # relaxed Cu-Zr glass snapshots
        # a glass lies a little above fcc Cu (-3.28 eV/atom with this potential) and hcp Zr
        # (-6.47 eV/atom) mixed by its composition: 0.03-0.08 eV/atom in 54-atom cells
        x = structure.composition.fractional_composition
        mixture = -3.28 * x["Cu"] - 6.47 * x["Zr"]
        assert 0.0 < values["energy_per_atom"] - mixture < 0.2
        assert len(structure) == 32
    model = CondCDVAE.load(tmp_path)
    assert model.spec.properties == ["bulk_modulus", "energy_per_atom"]
    assert model.spec.property_counts == [0, data["structures"]]
    assert not (tmp_path / "training.pt").exists()
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / CORPUS_DIR).iterdir()}
    stamps["model.pt"] = (tmp_path / "model.pt").stat().st_mtime_ns
    pretrain(tmp_path, config, md, n_compositions=2, snapshots=plan, epochs=2)  # resumed: done
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / CORPUS_DIR).iterdir()}
    assert after == {k: v for k, v in stamps.items() if k != "model.pt"}
    assert (tmp_path / "model.pt").stat().st_mtime_ns == stamps["model.pt"]


def test_a_property_the_prior_never_saw_takes_its_scale_from_the_finetuning():
    rng = np.random.default_rng(0)
    cells = [random_packing({"Cu": 0.5, "Zr": 0.5}, 16, seed=s) for s in range(6)]
    unlabelled = [(cell, {"energy_per_atom": float(-4.8 + 0.05 * rng.normal())}) for cell in cells]
    model = CondCDVAE(CondCDVAEConfig.tiny(), seed=0)
    model.fit(unlabelled, epochs=1, property_names=["bulk_modulus", "energy_per_atom"])
    assert model.spec.property_counts == [0, 6]
    assert model.spec.property_scale.mean[0] == 0.0  # a placeholder
    energy_scale = (model.spec.property_scale.mean[1], model.spec.property_scale.std[1])
    labelled = [(cell, {"bulk_modulus": 100.0 + 10.0 * k}) for k, cell in enumerate(cells[:4])]
    model.finetune(labelled, epochs=1)
    assert model.spec.property_counts == [4, 6]
    assert model.spec.property_scale.mean[0] == pytest.approx(115.0)
    assert model.spec.property_scale.std[0] == pytest.approx(np.std([100, 110, 120, 130]))
    assert (model.spec.property_scale.mean[1], model.spec.property_scale.std[1]) == energy_scale


def test_a_campaign_names_its_prior_relative_to_its_yaml(tmp_path):
    from amloop.state.config import load_config

    data = yaml.safe_load(EXAMPLE.read_text())
    data["generator"]["prior"] = "priors/family"
    path = tmp_path / "sub" / "campaign.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    assert load_config(path).generator.prior == str(tmp_path / "sub" / "priors" / "family")


def test_a_campaign_fine_tunes_its_prior_and_charges_its_share(tmp_path, monkeypatch):
    """Iteration 0 fine-tunes the prior (no training from scratch), and the budget is charged
    the prior's cost over ``prior_campaigns``; status shows the share and the whole."""
    from amloop.loop.budget import spent_by_activity
    from amloop.loop.campaigns import init_campaign
    from amloop.loop.steps import CampaignRun, ensure_generator
    from amloop.state.schema import Candidate, Cost, Evaluation, PropertyValue
    from amloop.state.settings import Settings

    config = _config()
    md = oracle_from_config(config.oracles[1])
    assert isinstance(md, MDOracle)
    prior = tmp_path / "prior"
    pretrain(prior, config, md, n_compositions=2, snapshots=SnapshotPlan(0.5, 800.0), epochs=2)
    whole = json.loads((prior / "card.json").read_text())["cost_core_s"]["total"]
    data = yaml.safe_load(EXAMPLE.read_text())
    data["cell"]["n_atoms"] = 32
    data["generator"] |= {"prior": str(prior), "prior_campaigns": 4, "finetune_epochs": 1}
    data["generator"].pop("refine")
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    handle = init_campaign(path, Settings())
    run = CampaignRun(handle.store(), handle.config, handle.directory)
    run.store.start_iteration(0)
    for seed, bulk in ((5, 110.0), (6, 120.0)):
        cell = random_packing({"Cu": 0.5, "Zr": 0.5}, 32, seed=seed)
        candidate = run.store.add_candidate(Candidate(structure=cell, origin="seed"))
        run.store.record_evaluation(
            Evaluation(
                candidate_hash=candidate.content_hash,
                oracle="lammps_eam",
                fidelity=0.5,
                status="done",
                properties={"bulk_modulus": PropertyValue(value=bulk, unit="GPa")},
                cost=Cost(core_s=1.0),
                attempts=1,
            )
        )
    model = ensure_generator(run, 0)
    assert model.spec.properties == ["bulk_modulus", "energy_per_atom"]
    assert model.spec.property_scale.mean[0] == pytest.approx(115.0)  # learnt from the campaign
    (record,) = run.store.iterations()
    assert record.metadata["generator_prior"]["share_core_s"] == pytest.approx(whole / 4)
    assert record.training_cost.core_s > whole / 4
    activities = spent_by_activity(run.store)
    assert activities["generator prior (share)"] == pytest.approx(whole / 4)
    assert activities["generator prior (whole)"] == pytest.approx(whole)
    assert run.store.spent().core_s == pytest.approx(2.0 + record.training_cost.core_s)


def test_a_campaign_seeds_from_its_prior_at_a_fraction_of_a_melt_quench(tmp_path, monkeypatch):
    """``acquisition.seed_from: prior``: the seed cells are the committed Cu-Zr prior's
    samples, refined with the campaign's EAM; each is charged as a prior seed (no
    melt-quench), is a relaxed glass near the corpus's energies, and costs far less than one of
    the prior's melt-quenches."""
    from amloop.loop.budget import spent_by_activity
    from amloop.loop.campaigns import init_campaign
    from amloop.loop.seeding import MELT_QUENCH, PRIOR_SEED
    from amloop.loop.steps import CampaignRun, seed
    from amloop.state.settings import Settings

    data = yaml.safe_load(EXAMPLE.read_text())
    data["generator"]["prior"] = str(EXAMPLE.parent / "priors" / "cuzr-glass")
    data["generator"]["refine"] = {"oracle": "md", "anneal_ps": 0.5}
    data["acquisition"] |= {"n_initial": 3, "seed_from": "prior"}
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AMLOOP_HOME", str(tmp_path / "home"))
    handle = init_campaign(path, Settings())
    run = CampaignRun(handle.store(), handle.config, handle.directory)
    seed(run)
    seeds = run.store.candidates(origin="seed")
    assert 3 <= len(seeds) <= 5  # a cell whose elastic tensor is unstable: the next recipe
    assert all(c.provenance["builder"].startswith("generator prior") for c in seeds)
    made = run.store.evaluations(oracle=PRIOR_SEED, structures=False)
    assert {e.candidate_hash for e in made} == {c.content_hash for c in seeds}
    assert not run.store.evaluations(oracle=MELT_QUENCH, structures=False)
    card = json.loads((EXAMPLE.parent / "priors" / "cuzr-glass" / "card.json").read_text())
    per_melt_quench = card["cost_core_s"]["corpus"] / card["melt_quenches"]["done"]
    assert 0 < max(e.cost.core_s for e in made) < per_melt_quench / 2
    assert spent_by_activity(run.store)["seed cells from the generator prior"] == pytest.approx(
        sum(e.cost.core_s for e in made)
    )
    scored = run.store.evaluations(oracle="lammps_eam", status="done", structures=False)
    assert len(scored) == 3
    for evaluation in scored:  # relaxed glasses: just above the Cu/Zr mixture line (see above)
        candidate = run.store.candidate(evaluation.candidate_hash)
        assert candidate is not None and len(candidate.structure) == 54
        x = candidate.structure.composition.fractional_composition
        mixture = -3.28 * x["Cu"] - 6.47 * x["Zr"]
        assert 0.0 < evaluation.properties["energy_per_atom"].value - mixture < 0.2
        assert 60 < evaluation.properties["bulk_modulus"].value < 160  # GPa, Cu-Zr glasses


def test_seeding_from_a_prior_needs_a_prior():
    data = yaml.safe_load(EXAMPLE.read_text())
    data["generator"].pop("prior")
    data["acquisition"]["seed_from"] = "prior"
    with pytest.raises(ValueError, match="seed_from: prior draws amorphous seed cells"):
        parse_config(data)
