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

from loop.campaigns import init_campaign, resolve_campaign
from loop.seeding import build_seed_set, seed_plan
from oracles.registry import oracle_from_config
from state.database import dispose_engines
from state.settings import Settings

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
    assert [c.content_hash for c in small] == [c.content_hash for c in large[:5]]
    assert len({c.content_hash for c in large}) == 9
    for candidate in large:
        assert len(candidate.structure) == 16
        assert candidate.composition.get("Cr", 0.0) <= 0.6 + 1e-9


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
    amloop = [sys.executable, "-m", "loop"]
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
