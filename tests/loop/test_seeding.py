"""Seed sets scored by the real LAMMPS oracle: plan, resume, budget, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from amloop.loop.campaigns import init_campaign, resolve_campaign
from amloop.loop.seeding import build_seed_set, make_structure, seed_plan
from amloop.oracles.registry import oracle_from_config
from amloop.state.database import dispose_engines
from amloop.state.settings import Settings
from amloop.state.structures import content_hash

ROOT = Path(__file__).resolve().parents[2]


def _config_file(tmp_path: Path, **budget) -> Path:
    data = yaml.safe_load((ROOT / "examples" / "nifecr.yaml").read_text())
    data["cell"]["n_atoms"] = 16
    data["oracles"][0]["options"]["method"] = "eos"
    data["budget"] = budget or {"core_hours": 1.0}
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def handle(tmp_path):
    settings = Settings(home=tmp_path / "home")
    yield init_campaign(_config_file(tmp_path), settings)
    dispose_engines()


def test_plan_is_deterministic_and_larger_plans_extend_smaller_ones(handle):
    small = seed_plan(handle.config, 5, orderings=2)
    large = seed_plan(handle.config, 9, orderings=2)
    assert small == large[:5]
    structures = [make_structure(recipe) for recipe in large]
    assert len({content_hash(s) for s in structures}) == 9
    assert content_hash(make_structure(large[3])) == content_hash(structures[3])  # reproducible
    for recipe, structure in zip(large, structures, strict=True):
        assert len(structure) == 16 and recipe.lattice == "fcc"
        assert structure.composition.fractional_composition["Cr"] <= 0.6 + 1e-9


def test_seed_build_scores_with_lammps_and_resumes_without_redoing(handle):
    store = handle.store()
    oracles = [(o, oracle_from_config(o)) for o in handle.config.oracles]
    plan = seed_plan(handle.config, 3, orderings=2)
    first = build_seed_set(store, handle.config, plan, oracles)
    assert (first.evaluated, first.failed, first.skipped_done) == (3, 0, 0)
    moduli = [e.properties["bulk_modulus"].value for e in store.evaluations(status="done")]
    assert all(140 < b < 260 for b in moduli)  # Ni-Fe-Cr FCC/BCC with the 2NN-MEAM

    again = build_seed_set(store, handle.config, seed_plan(handle.config, 4, orderings=2), oracles)
    assert (again.evaluated, again.skipped_done) == (1, 3)
    assert len(store.evaluations()) == 4 and len(store.candidates()) == 4
    assert {c.origin for c in store.candidates()} == {"seed"}


def test_seed_build_stops_cleanly_at_the_call_cap(tmp_path):
    settings = Settings(home=tmp_path / "home")
    handle = init_campaign(_config_file(tmp_path, evaluations={"lammps_meam": 2}), settings)
    store = handle.store()
    oracles = [(o, oracle_from_config(o)) for o in handle.config.oracles]
    report = build_seed_set(store, handle.config, seed_plan(handle.config, 4, orderings=2), oracles)
    assert report.evaluated == 2
    assert report.stopped_reason == "lammps_meam call cap of 2 evaluations reached"
    assert [e.kind for e in store.events(kind="seed_stopped")] == ["seed_stopped"]
    dispose_engines()


@pytest.mark.slow
def test_seed_killed_with_sigkill_resumes_without_duplicates(tmp_path):
    config = _config_file(tmp_path)
    env = {**os.environ, "AMLOOP_HOME": str(tmp_path / "home")}
    amloop = [sys.executable, "-m", "amloop"]
    subprocess.run([*amloop, "init", str(config)], env=env, check=True, capture_output=True)
    command = [*amloop, "seed", "--n", "8", "--orderings", "2"]
    writer = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    handle = resolve_campaign(None, Settings(home=tmp_path / "home"))
    store = handle.store()
    deadline = time.monotonic() + 60
    while len(store.evaluations(status="done")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    interrupted = len(store.evaluations(status="done"))
    assert 2 <= interrupted < 8
    subprocess.run(command, env=env, check=True, capture_output=True)
    evaluations = store.evaluations()
    assert len(evaluations) == 8 and {e.status for e in evaluations} == {"done"}
    assert len({e.candidate_hash for e in evaluations}) == 8
    assert max(e.attempts for e in evaluations) <= 2  # only the interrupted one ran twice
    dispose_engines()


def test_amorphous_seed_cells_are_melt_quenched_and_scored(tmp_path):
    data = yaml.safe_load((ROOT / "examples" / "cuzr-glass.yaml").read_text())
    data["cell"]["n_atoms"] = 32
    data["generator"].pop("prior")  # the example's prior is of 54-atom cells
    # 32 atoms and 1 ps runs: the mean pressure at the melt scatters by ~1 GPa between volumes;
    # at 1000 K/ps and a 0.5 ps anneal both cells came out mechanically unstable with today's
    # packages (numpy 2.4.6, lammps 2025.7.22.4): 500 K/ps and 1 ps give stable glasses
    quick = {"melt_ps": 1, "volume_ps": 1, "anneal_ps": 1, "quench_rate_K_per_ps": 500}
    quick["pressure_tolerance_GPa"] = 1.5
    data["oracles"][1]["options"].update(quick)
    path = tmp_path / "cuzr.yaml"
    path.write_text(yaml.safe_dump(data))
    handle = init_campaign(path, Settings(home=tmp_path / "home"))
    store = handle.store()
    lammps_config, md_config = handle.config.oracles
    md = oracle_from_config(md_config)
    plan = seed_plan(handle.config, 2, orderings=1)
    report = build_seed_set(
        store, handle.config, plan, [(lammps_config, oracle_from_config(lammps_config))], md=md
    )
    assert (report.structures_made, report.evaluated) == (2, 2), report.failures
    for candidate in store.candidates():
        assert candidate.provenance["builder"].startswith("melt-quench")
        distances = candidate.structure.distance_matrix[candidate.structure.distance_matrix > 0]
        assert distances.min() > 2.0  # no overlapping atoms in a Cu-Zr glass
    quenches = store.evaluations(oracle="melt_quench")  # each melt-quench's cost, charged
    assert len(quenches) == 2 and all(e.cost.core_s > 0 for e in quenches)
    evaluations = store.evaluations(oracle=lammps_config.name)
    assert any(e.status == "done" for e in evaluations), [e.error for e in evaluations]
    for evaluation in evaluations:
        if evaluation.status == "done":  # Cu-Zr glasses: ~100-120 GPa
            assert 60 < evaluation.properties["bulk_modulus"].value < 160
        else:  # fast-quenched 32-atom glasses can be mechanically unstable: stored as data
            assert "mechanically unstable" in evaluation.error
    again = build_seed_set(
        store, handle.config, plan, [(lammps_config, oracle_from_config(lammps_config))], md=md
    )
    assert (again.structures_made, again.evaluated, again.skipped_done) == (0, 0, 2)
    dispose_engines()


def test_failed_seed_recipes_are_replaced_by_the_next_ones_of_the_plan(handle, monkeypatch):
    """Two of the first three melt-quench-like builds fail: ``steps.seed`` tries further recipes
    of the same plan until three seed structures are scored, without retrying a failed one."""
    from amloop.loop import seeding, steps
    from amloop.oracles.base import OracleFailed

    real = seeding.make_structure
    attempts: list[str] = []
    doomed = {recipe.key for recipe in seed_plan(handle.config, 3, orderings=1)[:2]}

    def flaky(recipe, md=None, prior=None):
        attempts.append(recipe.key)
        if recipe.key in doomed:
            raise OracleFailed("temperature blow-up: 9000 K with target 2500 K")
        return real(recipe, md, prior)

    monkeypatch.setattr(seeding, "make_structure", flaky)
    config = handle.config.model_copy(deep=True)
    config.acquisition.n_initial = 3
    run = steps.CampaignRun(handle.store(), config, handle.directory)
    report = steps.seed(run)
    assert steps.scored_seed_count(run.store, {"lammps_meam"}) == 3
    assert sorted(report.failed_recipes) == sorted(doomed)
    assert steps.seed(run).failed_recipes == report.failed_recipes  # a rerun retries none
    assert len(attempts) == len(set(attempts)) == 5  # 3 planned + 2 replacements, none twice
    events = [e.message for e in run.store.events() if e.kind == "seed_extended"]
    assert events == ["2 seed structure(s) short: trying 5 recipes"]
